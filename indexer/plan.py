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

import math
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import opencc

from .analysis import (
    QUESTION_WORDS,
    STOP_WORDS,
    iter_terms,
    load_fold_tables,
    normalize,
    query_terms,
)
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


def highlight_forms(node: Node | None, mode: str = "auto") -> tuple[tuple[str, ...], ...]:
    """What to mark in titles and snippets: each counted unit's forms, folded terms that stand together.

    A typed run is marked only whole (大模型, never the 大 of 大会), and a
    lone character only when it was typed as a word of its own: a question's
    lone characters (有, 个) help rank but are not what was asked for.
    Excluded words and stop words alone are never marked.
    """
    plan = plan_match(positive_texts(node), mode)
    forms: dict[tuple[str, ...], None] = {}
    for unit in plan.units:
        if unit.counts:
            for form in unit.forms:
                if not (len(form) == 1 and form[0] in STOP_WORDS):
                    forms[form] = None
    return tuple(forms)


# -- what a query asks for: units, and how many of them an article must have ---------------------

# How the words of a query must match: "auto" shows the articles with every word (or, for a
# question, with most of its informative words) first and fills a short page with articles that
# have fewer; "all" shows only articles with every word.
MODES = ("auto", "all")
# With fewer full matches than this (a page at the default size), the closest articles follow them.
# One number for every page size, so that a query matches the same articles however it is paged.
FILL_BELOW = 10
# A question ranks by score alone, and an article that answers it often lacks one of its words (the
# 作者 of 《政府論》的作者是誰?): with fewer full matches than this, the ones with some of its words
# compete with them. 40 recovered every answer the full matches had pushed off the question
# benchmarks' top 10; a larger number changed nothing there.
QUESTION_FILL_BELOW = 40
# Up to this many informative words of a question must all match; above it, QUESTION_SHARE of them.
QUESTION_ALL_UP_TO = 3
QUESTION_SHARE = 0.6


@dataclass(frozen=True)
class Unit:
    """One thing the user asked for: a word, an identifier, a run of Chinese typed without spaces, a phrase.

    ``forms`` are the ways it may be written in the index (a regional
    variant, such as 软件 for 軟體): each is a sequence of terms that must
    sit side by side, one term for a plain word or identifier.
    """

    label: str
    forms: tuple[tuple[str, ...], ...]
    field: str | None = None
    # +word and quoted phrases: an article without it is never shown.
    required: bool = False
    # Counts toward the words an article must have; a lone character of a question
    # (有, 个, the 大 of 大模型) only adds to the score.
    counts: bool = True


@dataclass(frozen=True)
class MatchPlan:
    """The units of a query's words and phrases, and how many of the counted ones make a full match."""

    units: tuple[Unit, ...]
    min_match: int
    # A question ranks its full matches by score alone; keywords rank by how many units matched first.
    question: bool

    @property
    def counted(self) -> tuple[Unit, ...]:
        """The units that count toward a full match."""
        return tuple(u for u in self.units if u.counts)


_CONVERTERS: dict[str, opencc.OpenCC] = {}
_converters_lock = threading.Lock()


# The OpenCC configurations regional_forms uses.
_REGIONAL_CONFIGS = ("tw2sp", "s2twp", "s2t")


def _converter(config: str) -> opencc.OpenCC:
    converter = _CONVERTERS.get(config)
    if converter is None:
        with _converters_lock:
            converter = _CONVERTERS.setdefault(config, opencc.OpenCC(config))
    return converter


def _convert(config: str, text: str) -> str:
    return str(_converter(config).convert(text))


def load_tables() -> None:
    """Load the folding tables and OpenCC's phrase tables now, not inside the first query's time limit."""
    load_fold_tables()
    for config in _REGIONAL_CONFIGS:
        _converter(config)


def regional_forms(text: str) -> list[str]:
    """The folded ways of writing ``text`` in mainland and Taiwan vocabulary (軟體 ↔ 软件, 網路 ↔ 网络).

    Folding alone maps characters (軟體 → 软体); OpenCC's phrase tables map
    the words (TWPhrases, TWVariants). Text in traditional characters gets
    its mainland form; text in simplified characters gets its Taiwan form,
    and, when it has no mainland-only word in it, the mainland form of the
    Taiwan word it may be (网路 → 网络).
    """
    folded = normalize(text)
    forms = [folded]
    if not text.isprintable() or any("\ud800" <= ch <= "\udfff" for ch in text):
        return forms  # OpenCC takes UTF-8: a lone surrogate (from a broken client) is left as it is
    if any(normalize(ch) != ch.lower() and _is_han(ch) for ch in text):
        forms.append(normalize(_convert("tw2sp", text)))
    else:
        taiwan = _convert("s2twp", text)
        forms.append(normalize(taiwan))
        traditional = _convert("s2t", text)
        if taiwan == traditional:
            forms.append(normalize(_convert("tw2sp", traditional)))
    return list(dict.fromkeys(f for f in forms if f))


def _is_han(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or ch >= "\U00020000"


def _runs(text: str) -> list[tuple[str, list[str], bool]]:
    """The runs of a typed chunk: (text as typed, its query terms, is Chinese), in order.

    A run is a stretch of Chinese typed without a break, or one identifier.
    """
    runs: list[tuple[str, list[str], bool]] = []
    last_end = -1
    for term, _, start, end in iter_terms(text, "query"):
        han = not term.isascii() and _is_han(text[start])
        if han and runs and runs[-1][2] and start == last_end:
            runs[-1] = (runs[-1][0] + text[start:end], [*runs[-1][1], term], True)
        else:
            runs.append((text[start:end], [term], han))
        last_end = end
    return runs


# Words that frame a question without being asked about, beyond the stop words: the 指 of
# "樹坐指的是…" / "是指" (what a name refers to). A name run (樹坐) must not take it in.
_QUESTION_FILLER = STOP_WORDS | frozenset({"指"})


def _name_runs(terms: list[str]) -> list[list[str]]:
    """The terms of a Chinese run, with each stretch of single characters grouped when it reads as a name.

    A stretch counts when at least two of its characters are not stop words
    (额亦都 is one, though 都 is a stop word); 是谁 and 的 are not names.
    """
    groups: list[list[str]] = []
    for term in terms:
        if len(term) == 1 and groups and len(groups[-1][-1]) == 1 and _is_han(term) and _is_han(groups[-1][-1]):
            groups[-1].append(term)
        else:
            groups.append([term])
    out: list[list[str]] = []
    for group in groups:
        # A stop word at either end (前赵的, 米饼是) belongs to the sentence, not to the name.
        start, end = 0, len(group)
        while start < end and group[start] in _QUESTION_FILLER:
            start += 1
        while end > start and group[end - 1] in _QUESTION_FILLER:
            end -= 1
        name = group[start:end]
        if len(name) > 1 and sum(1 for t in name if t not in _QUESTION_FILLER) >= 2:
            out += [[t] for t in group[:start]] + [name] + [[t] for t in group[end:]]
        else:
            out.extend([t] for t in group)
    return out


def _forms(typed: str, terms: list[str], han: bool) -> tuple[tuple[str, ...], ...]:
    if not han:
        return ((terms[0],),) if len(terms) == 1 else (tuple(terms),)
    found = [tuple(query_terms(form)) for form in regional_forms(typed)]
    return tuple(dict.fromkeys(f for f in [tuple(terms), *found] if f))


def _text_units(item: Text, mode: str) -> tuple[list[Unit], bool]:
    """The units of one typed chunk, and whether it reads as a question."""
    runs = _runs(item.text)
    terms = [t for _, ts, _ in runs for t in ts]
    content = [t for t in terms if t not in _QUESTION_FILLER]
    question = (
        mode != "all"
        and not item.required
        and (is_question(item.text, terms) or len(dict.fromkeys(content)) > KEYWORD_TERMS)
    )
    units: list[Unit] = []
    if not question and not item.relaxed:
        # Keywords: each run typed without a break is one unit, its pieces side by side.
        for typed, ts, han in runs:
            if all(t in STOP_WORDS for t in ts) and len(runs) > 1:
                continue
            units.append(Unit(typed, _forms(typed, ts, han), item.field, required=item.required))
        return units, False
    # A question, or the loose fallback: each informative word is a unit.
    lone_alone = len(terms) == 1
    for typed, ts, han in runs:
        if not han:
            if ts[0] not in STOP_WORDS:
                units.append(Unit(typed, _forms(typed, ts, han), item.field, required=item.required))
            continue
        for group in _name_runs(ts):
            if len(group) > 1:
                # Single characters side by side are a word the dictionary lacks, most often a
                # name (津蓟, 额亦都, 高畠): one unit, its characters side by side. The characters
                # still score one by one below, as a question's other lone characters do.
                typed = "".join(group)
                units.append(Unit(typed, _forms(typed, group, True), item.field))
            for term in group:
                if term in _QUESTION_FILLER and not lone_alone:
                    continue
                lone = len(term) == 1 and not lone_alone
                if lone and item.relaxed:
                    continue  # the loose fallback never falls back to a lone character of a longer word
                units.append(Unit(term, _forms(term, [term], True), item.field, counts=not lone))
    if not units and not item.relaxed:
        # Stop words alone (是谁): they are all there is to search for.
        units = [Unit(t, ((t,),), item.field) for t in dict.fromkeys(terms)]
    return units, question


def plan_match(items: Iterable[Text | Phrase], mode: str = "auto") -> MatchPlan:
    """The units of a query's words and phrases, and how many of the counted ones an article needs."""
    units: list[Unit] = []
    question = False
    for item in items:
        if isinstance(item, Phrase):
            terms = query_terms(item.text)
            if terms:
                units.append(Unit(item.text, _forms(item.text, terms, True), item.field, required=True))
            continue
        found, is_q = _text_units(item, mode)
        units += found
        question = question or is_q
    merged: dict[tuple[tuple[tuple[str, ...], ...], str | None], Unit] = {}
    for u in units:
        key = (u.forms, u.field)
        seen = merged.get(key)
        if seen is None:
            merged[key] = u
        else:  # the same word typed twice is one unit; required or counted if either was
            merged[key] = Unit(seen.label, seen.forms, seen.field, seen.required or u.required, seen.counts or u.counts)
    kept = list(merged.values())
    if kept and not any(u.counts for u in kept):
        kept = [Unit(u.label, u.forms, u.field, u.required, True) for u in kept]
    n = sum(1 for u in kept if u.counts)
    need = n if mode == "all" or not question else question_min_match(n)
    return MatchPlan(tuple(kept), need, question)


def question_min_match(n: int) -> int:
    """How many of a question's ``n`` informative words a full match has: all of up to 3, else 60%."""
    return n if n <= QUESTION_ALL_UP_TO else math.ceil(QUESTION_SHARE * n)
