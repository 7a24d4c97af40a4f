"""From a parsed query to what a backend runs: synonyms, filters, terms and matching rules.

Everything here is backend-neutral, so the Whoosh backend and a remote
engine expand synonyms, require terms and highlight in the same way. It
plans queries only; re-ranking the hits a search returns is ``indexer.rank``.

**Synonyms** are expanded when a query is run, so editing the file needs no
re-index, and a running service notices the change within a second or two.
Set the file with ``ZHSEARCH_SYNONYMS``. One group per line, members
separated by commas (``,`` ``，`` ``、``) or semicolons; ``#`` starts a
comment::

    飞桨, PaddlePaddle
    大模型, LLM, 大语言模型
    混合专家, MoE
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .analysis import QUESTION_WORDS, STOP_WORDS, identifier_pieces, normalize, query_terms
from .query import And, DateRange, Filter, Node, Not, Or, Phrase, Text, positive_texts

SYNONYMS_ENV = "ZHSEARCH_SYNONYMS"
# How often a running process looks at the synonyms file's modification time.
RELOAD_CHECK_S = 1.0

_SPLIT_RE = re.compile(r"[,，、;；]")


def parse_synonyms(text: str) -> dict[str, tuple[str, ...]]:
    """Map each folded member of every group to the whole group (members as written)."""
    groups: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        members = [" ".join(m.split()) for m in _SPLIT_RE.split(line)]
        members = [m for m in members if m]
        if len(members) < 2:
            continue
        group = tuple(dict.fromkeys(members))
        for member in group:
            key = normalize(member)
            # A word in several groups gets the union of them.
            groups[key] = tuple(dict.fromkeys(groups.get(key, ()) + group))
    return groups


class Synonyms:
    """Synonym groups from a file, reloaded when the file changes."""

    def __init__(self, path: str | Path | None = None) -> None:
        chosen = str(path) if path else os.environ.get(SYNONYMS_ENV, "")
        self.path = Path(chosen) if chosen else None
        self._groups: dict[str, tuple[str, ...]] = {}
        self._mtime: float | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._reload()

    def _reload(self) -> None:
        if self.path is None:
            return
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._groups, self._mtime = {}, None
            return
        if mtime == self._mtime:
            return
        try:
            with open(self.path, encoding="utf-8-sig") as f:
                self._groups = parse_synonyms(f.read())
        except (OSError, UnicodeDecodeError):
            # Keep the last good groups rather than failing every query.
            return
        self._mtime = mtime

    def lookup(self, text: str) -> tuple[str, ...]:
        """The synonym group of ``text`` (folded, whitespace-collapsed), or ()."""
        if self.path is not None:
            now = time.monotonic()
            if now - self._checked >= RELOAD_CHECK_S:
                with self._lock:
                    self._checked = now
                    self._reload()
        return self._groups.get(normalize(" ".join(text.split())), ())


# A chunk typed without spaces that splits into more terms than this is read
# as a question: not every term has to match (see ``min_should_match``).
KEYWORD_TERMS = 3
# At most this many words of one chunk get synonym alternatives, which keeps
# the expanded query small.
MAX_SYNONYM_WORDS = 3


@dataclass(frozen=True)
class TextPlan:
    """How one typed chunk matches: its terms in order, the ones that count, and how many must match."""

    terms: tuple[str, ...]
    content: tuple[str, ...]
    min_match: int

    @property
    def all_required(self) -> bool:
        """True when every content term must match."""
        return self.min_match >= len(self.content)


def min_should_match(n: int) -> int:
    """How many of ``n`` content terms a document must contain.

    Up to three terms are keywords and all must match. A longer run, such as
    a question typed without spaces, needs only one: BM25 ranks the documents
    with the most (and rarest) of its words first, so one word the documents
    never use does not empty the result list. (Whoosh does not enforce a
    minimum above one inside an OR, so no backend is asked to.)
    """
    return n if n <= KEYWORD_TERMS else 1


def is_question(text: str, terms: Iterable[str]) -> bool:
    """True for a typed question (它是什么？): its words describe the answer loosely."""
    return text.rstrip().endswith(("?", "？")) or any(t in QUESTION_WORDS for t in terms)


def plan_text(text: str, relaxed: bool = False) -> TextPlan:
    """Analyse a chunk the way queries are analysed and decide how it must match."""
    terms = tuple(query_terms(text))
    content = tuple(dict.fromkeys(t for t in terms if t not in STOP_WORDS)) or tuple(dict.fromkeys(terms))
    loose = relaxed or (len(content) > 1 and is_question(text, terms))
    need = 1 if loose else min_should_match(len(content))
    return TextPlan(terms=terms, content=content, min_match=need)


def only_stop_words(node: Node) -> bool:
    """True for a typed chunk made of stop words alone (如何在, 的)."""
    if not isinstance(node, Text):
        return False
    terms = query_terms(node.text)
    return bool(terms) and all(t in STOP_WORDS for t in terms)


def drop_stop_chunks(node: Node | None) -> Node | None:
    """Leave out the chunks of stop words alone when the other chunks have words that count.

    Such a chunk (如何在 in 如何在 Ubuntu 上安装 Docker) says nothing about the
    documents wanted, yet nearly every document contains it: requiring it
    costs time and ranks nothing. A query of stop words alone keeps them.
    """
    if not isinstance(node, And):
        return node
    kept = tuple(c for c in node.children if not only_stop_words(c))
    if not any(isinstance(c, Text | Phrase) for c in kept):
        return node
    return kept[0] if len(kept) == 1 else And(kept)


def expand_synonyms(node: Node | None, synonyms: Synonyms | None) -> Node | None:
    """Replace each word or chunk that has synonyms with an OR of its alternatives."""
    if node is None or synonyms is None:
        return node
    if isinstance(node, Text):
        return _expand_text(node, synonyms)
    if isinstance(node, Phrase):
        group = synonyms.lookup(node.text)
        if not group:
            return node
        return Or(tuple(Phrase(alt, node.field) for alt in group))
    if isinstance(node, And):
        return And(tuple(_expanded(c, synonyms) for c in node.children))
    if isinstance(node, Or):
        return Or(tuple(_expanded(c, synonyms) for c in node.children))
    if isinstance(node, Not):
        return Not(_expanded(node.child, synonyms))
    return node


def _expanded(node: Node, synonyms: Synonyms) -> Node:
    result = expand_synonyms(node, synonyms)
    assert result is not None
    return result


def _expand_text(node: Text, synonyms: Synonyms) -> Node:
    group = synonyms.lookup(node.text)
    if group:
        return Or(tuple(Text(alt, node.field) for alt in group))
    # A synonym inside a longer chunk (飞桨框架): one variant per replaced word.
    terms = query_terms(node.text)
    variants: list[Node] = [node]
    replaced = 0
    for i, term in enumerate(terms):
        alternatives = [alt for alt in synonyms.lookup(term) if query_terms(alt) != [term]]
        if not alternatives:
            continue
        replaced += 1
        if replaced > MAX_SYNONYM_WORDS:
            break
        for alt in alternatives:
            words = [*terms[:i], alt, *terms[i + 1 :]]
            variants.append(Text(" ".join(words) if _needs_space(words) else "".join(words), node.field))
    return variants[0] if len(variants) == 1 else Or(tuple(variants))


def _needs_space(words: list[str]) -> bool:
    # Latin words next to each other must stay separate words.
    return any(w.isascii() for w in words)


def add_filters(
    node: Node | None,
    sources: Iterable[str] = (),
    tags: Iterable[str] = (),
    date_from: datetime | None = None,
    date_to: datetime | None = None,
) -> Node | None:
    """AND the page's and API's filter parameters onto a parsed query.

    Several sources (or several tags) are alternatives; sources, tags and
    the date range must all hold.
    """
    extra: list[Node] = []
    source_list = [s for s in sources if s]
    tag_list = [t for t in tags if t]
    if source_list:
        extra.append(_any(Filter("source", s) for s in source_list))
    if tag_list:
        extra.append(_any(Filter("tags", t) for t in tag_list))
    if date_from is not None or date_to is not None:
        extra.append(DateRange(date_from, date_to))
    if not extra:
        return node
    children = (node, *extra) if node is not None else tuple(extra)
    return children[0] if len(children) == 1 else And(tuple(children))


def _any(nodes: Iterable[Node]) -> Node:
    items = tuple(nodes)
    return items[0] if len(items) == 1 else Or(items)


def highlight_terms(node: Node | None) -> frozenset[str]:
    """The analysed terms to mark in titles and snippets (not excluded ones, not stop words)."""
    found: set[str] = set()
    for item in positive_texts(node):
        for term in query_terms(item.text):
            if term not in STOP_WORDS:
                found.add(term)
                found.update(identifier_pieces(term))
    return frozenset(found)
