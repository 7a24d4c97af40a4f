"""Suggestions from the words in titles: complete as you type, and "did you mean" for empty results.

A ``Suggester`` is built from ``IndexStore.title_terms()``. Every term is
reachable by its own prefix, by the prefix of its pinyin (``damoxing``) and by
the prefix of its pinyin initials (``dmx``). Titles are segmented into short
dictionary words (文心大模型 → 文心 / 大 / 模型), so pinyin that spans several
terms is also composed from them the way an input method does (``dmx`` →
大 + 模型 → 大模型). Suggestions are ranked by how many titles hold them.

``SuggesterCache`` keeps one ``Suggester`` per index generation and rebuilds it
lazily after the index changed.
"""

from __future__ import annotations

import heapq
import math
import re
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .analysis import STOP_WORDS, normalize
from .store import IndexStore

# CJK ideographs: the characters that have a pinyin reading.
_HAN_RE = re.compile("[\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_LETTERS_RE = re.compile(r"[a-z]+")
# Pinyin typed with syllable separators: "xi'an", "da mo xing".
_PINYIN_SEPARATORS = str.maketrans("", "", "' ")
# A query word the language gives no special meaning (no field:, quotes, brackets or leading -).
_PLAIN_WORD_RE = re.compile(r'[^\s:"()（）“”：-][^\s:"()（）“”：]*')
_OPERATORS = frozenset({"AND", "OR", "NOT"})

# Composing pinyin from several terms: longer inputs cost more and are rarely pinyin.
MAX_COMPOSE_LETTERS = 30
_BEAM = 8
_PER_KEY = 4
# Each extra piece costs as much as a term about 20 times more frequent gains: prefer fewer, longer words.
_PIECE_PENALTY = 3.0


@dataclass(frozen=True)
class Suggestion:
    """One suggested word: the text to search for, its pinyin, and how many titles hold it."""

    text: str
    pinyin: str
    documents: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used by ``/api/suggest``."""
        return {"text": self.text, "pinyin": self.pinyin, "documents": self.documents}


@dataclass(frozen=True)
class QuerySuggestion:
    """A query close to one that found nothing, with how many documents it finds.

    ``kind`` is "respell" (from pinyin or a same-sounding word) or "drop"
    (one word left out, named in ``dropped``).
    """

    query: str
    total: int
    kind: str
    dropped: str | None = None


@dataclass(frozen=True)
class _Entry:
    term: str
    df: int
    pinyin: str  # syllables separated by spaces; "" when the term has no Han characters
    full: str
    initials: str


# Pinyin of every term seen, kept across rebuilds: pypinyin takes ~40 µs a term, and an index
# that changed keeps almost all of its title terms, so a rebuild only pays for the new ones.
_PINYIN_CACHE: dict[str, tuple[str, ...]] = {}
_PINYIN_CACHE_MAX = 500_000


def _syllables(text: str) -> tuple[str, ...]:
    """Toneless pinyin of each Han character (phrase-aware: 银行 → yin hang); other characters dropped."""
    found = _PINYIN_CACHE.get(text)
    if found is None:
        # Imported here: pypinyin's tables take 0.2 s to load, which every CLI command would pay.
        from pypinyin import lazy_pinyin

        if len(_PINYIN_CACHE) >= _PINYIN_CACHE_MAX:
            _PINYIN_CACHE.clear()
        found = _PINYIN_CACHE[text] = tuple(s.lower() for s in lazy_pinyin(text, errors="ignore"))
    return found


def _is_useful(term: str) -> bool:
    # Numbers, single letters and stop words complete nothing anyone types.
    if term in STOP_WORDS or not any(ch.isalpha() for ch in term):
        return False
    return len(term) >= 2 or bool(_HAN_RE.match(term))


class _PrefixIndex:
    """Sorted keys for prefix lookups with bisect."""

    def __init__(self, pairs: Iterable[tuple[str, int]]) -> None:
        ordered = sorted(pairs)
        self.keys = [k for k, _ in ordered]
        self.ids = [i for _, i in ordered]

    def matching(self, prefix: str) -> Iterable[int]:
        """Ids of every key that starts with ``prefix``."""
        i = bisect_left(self.keys, prefix)
        while i < len(self.keys) and self.keys[i].startswith(prefix):
            yield self.ids[i]
            i += 1


class Suggester:
    """Completes words from title terms by prefix, pinyin and pinyin initials, most frequent first."""

    def __init__(self, terms: Iterable[tuple[str, int]]) -> None:
        self._entries: list[_Entry] = []
        for term, df in terms:
            if df <= 0 or not _is_useful(term):
                continue
            if _HAN_RE.search(term):
                syllables = _syllables(term)
                initials = "".join(s[0] for s in syllables if s)
                self._entries.append(_Entry(term, df, " ".join(syllables), "".join(syllables), initials))
            else:
                self._entries.append(_Entry(term, df, "", "", ""))
        han = [i for i, e in enumerate(self._entries) if e.full]
        self._by_term = _PrefixIndex((e.term, i) for i, e in enumerate(self._entries))
        self._by_pinyin = _PrefixIndex(
            [(self._entries[i].full, i) for i in han] + [(self._entries[i].initials, i) for i in han]
        )
        # Exact pinyin or initials → Han terms, most frequent first, for composing.
        exact: dict[str, list[int]] = {}
        for i in han:
            for key in {self._entries[i].full, self._entries[i].initials}:
                exact.setdefault(key, []).append(i)
        self._exact = {k: sorted(v, key=lambda i: -self._entries[i].df)[:_PER_KEY] for k, v in exact.items()}
        self._max_key = max((len(k) for k in self._exact), default=0)

    @classmethod
    def from_store(cls, store: IndexStore) -> Suggester:
        """Build from the title terms of the store's live index."""
        return cls(store.title_terms())

    def __len__(self) -> int:
        return len(self._entries)

    def suggest(self, prefix: str, limit: int = 8, verify: Callable[[str], int] | None = None) -> list[Suggestion]:
        """Words that start with ``prefix``, or whose pinyin or initials do; most frequent first.

        Words composed of several title terms may not occur in any title;
        ``verify``, when given, counts the titles that hold one (e.g. with the
        phrase query ``title:"大模型"``), and those it finds in none are dropped.
        """
        text = normalize(prefix).strip()
        if not text or limit < 1:
            return []
        found: dict[str, Suggestion] = {}
        ids = set(self._by_term.matching(text))
        letters = text.translate(_PINYIN_SEPARATORS)
        is_pinyin = bool(_LETTERS_RE.fullmatch(letters))
        if is_pinyin:
            ids.update(self._by_pinyin.matching(letters))
        # A short prefix matches thousands of terms; only the best few can be shown.
        for i in heapq.nsmallest(limit, ids, key=self._rank):
            self._add(found, [i])
        if is_pinyin:
            for _, path in self._compose(letters, partial_last=True):
                if len(path) > 1:
                    self._add(found, list(path), verify)
        ranked = sorted(found.values(), key=lambda s: (-s.documents, len(s.text), s.text))
        return ranked[:limit]

    def convert(self, word: str, limit: int = 3) -> list[Suggestion]:
        """Han words for a whole pinyin word (``dmx``, ``damoxing``) or a same-sounding word (大魔型)."""
        text = normalize(word).strip()
        if _HAN_RE.search(text):
            if not all(_HAN_RE.match(ch) for ch in text):
                return []
            letters = "".join(_syllables(text))
        else:
            letters = text.translate(_PINYIN_SEPARATORS)
        if not _LETTERS_RE.fullmatch(letters):
            return []
        out: list[Suggestion] = []
        for _, path in self._compose(letters, partial_last=False):
            suggestion = self._make(list(path))
            if suggestion.text != text and suggestion.text not in {s.text for s in out}:
                out.append(suggestion)
        return out[:limit]

    def _rank(self, i: int) -> tuple[int, int, str]:
        entry = self._entries[i]
        return (-entry.df, len(entry.term), entry.term)

    def _make(self, path: list[int]) -> Suggestion:
        entries = [self._entries[i] for i in path]
        return Suggestion(
            text="".join(e.term for e in entries),
            pinyin=" ".join(e.pinyin for e in entries if e.pinyin),
            # Titles holding every piece are at most as many as those holding the rarest.
            documents=min(e.df for e in entries),
        )

    def _add(self, found: dict[str, Suggestion], path: list[int], verify: Callable[[str], int] | None = None) -> None:
        suggestion = self._make(path)
        if suggestion.text in found:
            return
        if verify is not None and len(path) > 1:
            documents = verify(suggestion.text)
            if documents <= 0:
                return
            suggestion = Suggestion(suggestion.text, suggestion.pinyin, documents)
        found[suggestion.text] = suggestion

    def _compose(self, letters: str, partial_last: bool) -> list[tuple[float, tuple[int, ...]]]:
        """Beam search for sequences of Han terms whose pinyin (or initials) spell ``letters``.

        With ``partial_last`` the last term only has to start with what is
        left, as when the user is still typing.
        """
        n = len(letters)
        if n == 0 or n > MAX_COMPOSE_LETTERS:
            return []
        states: list[list[tuple[float, tuple[int, ...]]]] = [[] for _ in range(n + 1)]
        states[0] = [(0.0, ())]
        done: list[tuple[float, tuple[int, ...]]] = []
        for pos in range(n):
            beam = heapq.nlargest(_BEAM, states[pos])
            if not beam:
                continue
            for end in range(pos + 1, min(n, pos + self._max_key) + 1):
                for i in self._exact.get(letters[pos:end], ()):
                    gain = math.log1p(self._entries[i].df) - _PIECE_PENALTY
                    states[end].extend((score + gain, path + (i,)) for score, path in beam)
            if partial_last and pos > 0:
                rest = letters[pos:]
                best = heapq.nlargest(_PER_KEY, set(self._by_pinyin.matching(rest)), key=lambda i: self._entries[i].df)
                for i in best:
                    gain = math.log1p(self._entries[i].df) - _PIECE_PENALTY
                    done.extend((score + gain, path + (i,)) for score, path in beam)
        done.extend(states[n])
        return heapq.nlargest(_BEAM, done)


def _is_plain_query(tokens: Sequence[str]) -> bool:
    return all(_PLAIN_WORD_RE.fullmatch(t) and t not in _OPERATORS for t in tokens)


def suggest_query(
    q: str,
    terms: Sequence[str],
    suggester: Suggester,
    count: Callable[[str], int],
    max_tries: int = 8,
    deadline: float | None = None,
) -> QuerySuggestion | None:
    """A query like ``q`` that finds something, or None.

    First each plain word is respelled (pinyin or a same-sounding word →
    title terms); failing that, each word in turn is left out and the variant
    with the most results wins. ``terms`` are the segmented words the query
    was understood as (``SearchPage.terms``); ``count`` runs a query and
    returns its total. At most ``max_tries`` queries are run, and none once
    ``deadline`` (a ``time.monotonic()`` value) has passed: ``count`` should
    search with the same deadline, so that the request keeps to one.
    """
    tokens = q.split()
    if not tokens:
        return None
    tries = 0

    def run(candidate: str) -> int:
        nonlocal tries
        tries += 1
        return count(candidate)

    def out_of_tries() -> bool:
        return tries >= max_tries or (deadline is not None and time.monotonic() >= deadline)

    def respellings() -> Iterator[str]:
        # Made as they are tried: converting each of many words costs time the request may not have.
        if len(tokens) > 1 and all(_LETTERS_RE.fullmatch(t.lower()) for t in tokens):
            # "da mo xing": syllables typed with spaces.
            yield from (s.text for s in suggester.convert("".join(tokens), limit=1))
        for i, token in enumerate(tokens):
            if out_of_tries():
                return
            if _PLAIN_WORD_RE.fullmatch(token) and token not in _OPERATORS:
                for s in suggester.convert(token, limit=2):
                    yield " ".join([*tokens[:i], s.text, *tokens[i + 1 :]])

    tried: set[str] = set()
    for candidate in respellings():
        if candidate in tried:
            continue
        tried.add(candidate)
        if out_of_tries():
            return None
        if candidate != q and (total := run(candidate)) > 0:
            return QuerySuggestion(candidate, total, "respell")

    best: QuerySuggestion | None = None
    for dropped, candidate in _drop_variants(q, tokens, terms):
        if out_of_tries():
            break
        total = run(candidate)
        if total > 0 and (best is None or total > best.total):
            best = QuerySuggestion(candidate, total, "drop", dropped)
    return best


def _drop_variants(q: str, tokens: Sequence[str], terms: Sequence[str]) -> list[tuple[str, str]]:
    """(word left out, query without it) for each word of the query."""
    variants: list[tuple[str, str]] = []
    if _is_plain_query(tokens) and len(terms) > 1:
        # Cut each segmented term out of the text the user typed; normalize() keeps offsets.
        folded = normalize(q)
        for term in dict.fromkeys(terms):
            at = folded.find(term)
            if at >= 0:
                rest = " ".join((q[:at] + " " + q[at + len(term) :]).split())
                if rest:
                    variants.append((q[at : at + len(term)], rest))
    elif len(tokens) > 1:
        for i, token in enumerate(tokens):
            variants.append((token, " ".join([*tokens[:i], *tokens[i + 1 :]])))
    return variants


class SuggesterCache:
    """One ``Suggester`` per index generation, rebuilt lazily on first use after the index changed.

    Whether the index changed is checked at most every ``recheck_s`` seconds.
    """

    def __init__(self, store: IndexStore, recheck_s: float = 2.0) -> None:
        self.store = store
        self.recheck_s = recheck_s
        self._lock = threading.Lock()
        self._suggester: Suggester | None = None
        self._key: tuple[object, ...] | None = None
        self._checked = -math.inf

    def _generation(self) -> tuple[object, ...]:
        info = self.store.info()
        return (info.built_at, info.updated_at, info.documents, info.size_bytes)

    def get(self) -> Suggester:
        """The suggester for the live index."""
        with self._lock:
            now = time.monotonic()
            if self._suggester is not None and now - self._checked < self.recheck_s:
                return self._suggester
            key = self._generation()
            self._checked = now
            if self._suggester is None or key != self._key:
                self._suggester = Suggester.from_store(self.store)
                self._key = key
            return self._suggester
