"""Suggestions from the words in titles: complete as you type, and "did you mean" that is a correction.

A ``Suggester`` is built from the titles of the index (``IndexStore.titles()``).
It knows every analysed title term and the common title phrases: runs of two or
three adjacent segmented terms that several titles share (大模型 is 大 + 模型 to
jieba). Each is reachable by its own prefix, by the prefix of its pinyin
(``damoxing``) and by the prefix of its pinyin initials (``dmx``), and ranked by
how many titles hold it.

"Did you mean" (``did_you_mean``) respells a word from pinyin or a same-sounding
word into title words, or leaves one word out; it is shown only when the query
has no full match or the suggestion has at least three times as many, is never
a string of single characters and never more than a few characters (or pinyin
letters) away from what was typed.

``SuggesterCache`` keeps one ``Suggester`` per index generation and rebuilds it
after the index changed, in the background when it can open a store of its own.
"""

from __future__ import annotations

import heapq
import logging
import math
import re
import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .analysis import STOP_WORDS, iter_terms, normalize, query_terms
from .store import IndexStore

if TYPE_CHECKING:
    from .search import Searcher, SearchPage

# CJK ideographs: the characters that have a pinyin reading.
_HAN = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_HAN_RE = re.compile(f"[{_HAN}]")
_HAN_WORD_RE = re.compile(f"[{_HAN}]+")
# A capital Latin letter, half- or full-width.
_CAPITAL_RE = re.compile("[A-Z\uff21-\uff3a]")
_LETTERS_RE = re.compile(r"[a-z]+")
# Pinyin typed with syllable separators: "xi'an", "da mo xing".
_PINYIN_SEPARATORS = str.maketrans("", "", "' ")
# A query word the language gives no special meaning (no field:, quotes, brackets or leading -).
_PLAIN_WORD_RE = re.compile(r'[^\s:"()（）“”：-][^\s:"()（）“”：]*')
_OPERATORS = frozenset({"AND", "OR", "NOT"})

# A title phrase: 2 or 3 adjacent terms, at most 8 characters, shared by at least 2 titles.
MIN_PHRASE_TITLES = 2
MAX_PHRASE_PIECES = 3
MAX_PHRASE_CHARS = 8
# Composing pinyin from several terms: longer inputs cost more and are rarely pinyin.
MAX_COMPOSE_LETTERS = 30
_BEAM = 8
_PER_KEY = 4
# Each extra piece costs as much as a term about 20 times more frequent gains: prefer fewer, longer words.
_PIECE_PENALTY = 3.0
# Completion composes words from several terms only when direct matches leave room, and checks
# at most this many with ``verify`` (each is a search).
_MAX_VERIFY = 4
# "Did you mean": how far a respelling may be from what was typed, and how much better it must do.
MAX_EDIT_CHARS = 2
MAX_EDIT_PINYIN = 2
BETTER_BY = 3


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
    """A query close to the one typed, with how many documents have all its words.

    ``kind`` is "respell" (from pinyin, a same-sounding word or a near spelling)
    or "drop" (one word left out, named in ``dropped``).
    """

    query: str
    total: int
    kind: str
    dropped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``did_you_mean`` in ``/api/search``."""
        return {"query": self.query, "total": self.total, "kind": self.kind, "dropped": self.dropped}


@dataclass(frozen=True)
class _Entry:
    term: str
    df: int
    pinyin: str  # syllables separated by spaces; "" when the term has no Han characters
    full: str
    initials: str
    pieces: int = 1  # how many segmented terms: 1 for a title word, 2 or 3 for a phrase


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


def title_vocabulary(titles: Iterable[str]) -> tuple[Counter[str], Counter[tuple[str, ...]]]:
    """Title terms and title phrases (runs of adjacent Han terms), each with how many titles hold it.

    Terms are the whole words of the title as a query is segmented (no sub-words or identifier
    parts: 释器 of 解释器 and 4o of GPT-4o complete nothing anyone types), so each is a word of
    the title field. A phrase is 2 or 3 adjacent terms with nothing between them, no stop word among them, and
    a last term of two characters or more (中国大 is a fragment; 大模型 is a word).
    """
    terms: Counter[str] = Counter()
    phrases: Counter[tuple[str, ...]] = Counter()
    for title in titles:
        seen: set[str] = set()
        runs: list[list[str]] = []
        run: list[str] = []
        last_end = -1
        for term, _, start, end in iter_terms(title, "query"):
            seen.add(term)
            if _HAN_WORD_RE.fullmatch(term) and term not in STOP_WORDS:
                if start != last_end:
                    run = []
                    runs.append(run)
                run.append(term)
            else:
                run = []
                runs.append(run)
            last_end = end
        grams: set[tuple[str, ...]] = set()
        for r in runs:
            for n in range(2, MAX_PHRASE_PIECES + 1):
                for i in range(len(r) - n + 1):
                    pieces = tuple(r[i : i + n])
                    if len(pieces[-1]) >= 2 and sum(map(len, pieces)) <= MAX_PHRASE_CHARS:
                        grams.add(pieces)
        terms.update(seen)
        phrases.update(grams)
    return terms, phrases


class _PrefixIndex:
    """Sorted keys for prefix lookups with bisect."""

    def __init__(self, pairs: Iterable[tuple[str, int]]) -> None:
        ordered = sorted(pairs)
        self.keys = [k for k, _ in ordered]
        self.ids = [i for _, i in ordered]

    def matching(self, prefix: str) -> Iterator[int]:
        """Ids of every key that starts with ``prefix``."""
        i = bisect_left(self.keys, prefix)
        while i < len(self.keys) and self.keys[i].startswith(prefix):
            yield self.ids[i]
            i += 1


class Suggester:
    """Completes words from title terms and title phrases by prefix, pinyin and initials, most frequent first."""

    def __init__(self, terms: Iterable[tuple[str, int]], phrases: Iterable[tuple[Sequence[str], int]] = ()) -> None:
        self._entries: list[_Entry] = []
        by_text: dict[str, int] = {}
        for term, df in terms:
            if df <= 0 or not _is_useful(term) or term in by_text:
                continue
            by_text[term] = len(self._entries)
            if _HAN_RE.search(term):
                syllables = _syllables(term)
                initials = "".join(s[0] for s in syllables if s)
                self._entries.append(_Entry(term, df, " ".join(syllables), "".join(syllables), initials))
            else:
                self._entries.append(_Entry(term, df, "", "", ""))
        for pieces, df in phrases:
            text = "".join(pieces)
            if df < MIN_PHRASE_TITLES or text in by_text:
                # A phrase that is also a word (jieba splits it in some titles only) stays the word.
                continue
            by_text[text] = len(self._entries)
            # Each piece's reading is cached already, as a term: composing them costs no pypinyin call.
            syllables = tuple(s for piece in pieces for s in _syllables(piece))
            initials = "".join(s[0] for s in syllables if s)
            self._entries.append(
                _Entry(text, df, " ".join(syllables), "".join(syllables), initials, pieces=len(pieces))
            )
        self._by_text = by_text
        han = [i for i, e in enumerate(self._entries) if e.full]
        self._by_term = _PrefixIndex((e.term, i) for i, e in enumerate(self._entries))
        self._by_pinyin = _PrefixIndex(
            [(self._entries[i].full, i) for i in han] + [(self._entries[i].initials, i) for i in han]
        )
        # Exact pinyin or initials → Han words, most frequent first, for composing and respelling.
        exact: dict[str, list[int]] = {}
        for i in han:
            for key in {self._entries[i].full, self._entries[i].initials}:
                exact.setdefault(key, []).append(i)
        self._exact = {k: sorted(v, key=self._rank) for k, v in exact.items()}
        # Pieces for composing: title words only, the few most frequent per key.
        self._pieces = {k: [i for i in v if self._entries[i].pieces == 1][:_PER_KEY] for k, v in self._exact.items()}
        self._max_key = max((len(k) for k in self._pieces), default=0)
        # Latin words by length, for near spellings (kubernets → kubernetes).
        self._latin: dict[int, list[int]] = {}
        for i, e in enumerate(self._entries):
            if not e.full and e.term.isascii() and e.term.isalpha():
                self._latin.setdefault(len(e.term), []).append(i)

    @classmethod
    def from_titles(cls, titles: Iterable[str]) -> Suggester:
        """Build from document titles: their terms and their common phrases."""
        terms, phrases = title_vocabulary(titles)
        return cls(terms.items(), phrases.items())

    @classmethod
    def from_store(cls, store: IndexStore) -> Suggester:
        """Build from the titles of the store's live index."""
        return cls.from_titles(store.titles())

    def __len__(self) -> int:
        return len(self._entries)

    def documents(self, word: str) -> int:
        """How many titles hold ``word`` (a title term or phrase, folded like the index); 0 if none."""
        i = self._by_text.get(normalize(word).strip())
        return 0 if i is None else self._entries[i].df

    def suggest(self, prefix: str, limit: int = 8, verify: Callable[[str], int] | None = None) -> list[Suggestion]:
        """Title words and phrases that start with ``prefix``, or whose pinyin or initials do; most frequent first.

        When these leave room, pinyin is also composed from several title
        words (for an index too small to have the phrase); ``verify``, when
        given, counts the titles that hold such a word (e.g. with the phrase
        query ``title:"大模型"``), and those it finds in none are dropped.
        """
        text = normalize(prefix).strip()
        if not text or limit < 1:
            return []
        found: dict[str, Suggestion] = {}
        ids = set(self._by_term.matching(text))
        letters = text.translate(_PINYIN_SEPARATORS)
        # Pinyin is typed in lower case: a capital (Lin, ERN) is the start of an English word, which
        # must not turn into the Chinese words that sound like it (Lin → 令人).
        is_pinyin = bool(_LETTERS_RE.fullmatch(letters)) and not _CAPITAL_RE.search(prefix)
        if is_pinyin:
            ids.update(self._by_pinyin.matching(letters))
        # A short prefix matches thousands of words; only the best few can be shown.
        for i in heapq.nsmallest(limit, ids, key=self._rank):
            entry = self._entries[i]
            found[entry.term] = Suggestion(entry.term, entry.pinyin, entry.df)
        if is_pinyin and len(found) < limit:
            checked = 0
            for _, path in self._compose(letters, partial_last=True):
                if len(path) < 2 or checked >= _MAX_VERIFY:
                    continue
                suggestion = self._make(list(path))
                if suggestion.text in found or _is_gibberish_path([self._entries[i].term for i in path]):
                    continue
                if verify is not None:
                    checked += 1
                    documents = verify(suggestion.text)
                    if documents <= 0:
                        continue
                    suggestion = Suggestion(suggestion.text, suggestion.pinyin, documents)
                found[suggestion.text] = suggestion
        ranked = sorted(found.values(), key=lambda s: (-s.documents, len(s.text), s.text))
        return ranked[:limit]

    def convert(self, word: str, limit: int = 3) -> list[Suggestion]:
        """Title words for a pinyin word (``dmx``, ``damoxing``), a same-sounding word (大魔型) or a near spelling.

        Never a string of single characters, and never ``word`` itself.
        """
        text = normalize(word).strip()
        if not text:
            return []
        out: list[Suggestion] = []

        def add(path: Sequence[int]) -> None:
            suggestion = self._make(list(path))
            if suggestion.text != text and suggestion.text not in {s.text for s in out}:
                out.append(suggestion)

        if _HAN_RE.search(text):
            if not _HAN_WORD_RE.fullmatch(text):
                return []
            syllables = _syllables(text)
            letters = "".join(syllables)
            # Only whole syllables and full pinyin: initials of loose characters glue gibberish.
            bounds = {0}
            for s in syllables:
                bounds.add(max(bounds) + len(s))
            exact = [i for i in self._exact.get(letters, ()) if self._entries[i].full == letters]
        else:
            letters = text.translate(_PINYIN_SEPARATORS)
            if not _LETTERS_RE.fullmatch(letters):
                return []
            bounds = None
            exact = list(self._exact.get(letters, ()))
            for i in self._near_spellings(letters):
                add([i])
        if len(letters) > MAX_COMPOSE_LETTERS:
            return out[:limit]
        for i in exact:
            add([i])
        for _, path in self._compose(letters, partial_last=False, bounds=bounds):
            if len(path) > 1 and not _is_gibberish_path([self._entries[i].term for i in path]):
                add(path)
        return out[:limit]

    def _near_spellings(self, word: str) -> list[int]:
        """Latin title words one edit (two, for long words) from ``word``, most frequent first."""
        if len(word) < 4 or word in self._by_text:
            return []
        most = 1 if len(word) < 8 else 2
        near = [
            i
            for n in range(len(word) - most, len(word) + most + 1)
            for i in self._latin.get(n, ())
            if _edit_distance(word, self._entries[i].term, most) <= most
        ]
        return sorted(near, key=self._rank)

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

    def _compose(
        self, letters: str, partial_last: bool, bounds: set[int] | None = None
    ) -> list[tuple[float, tuple[int, ...]]]:
        """Beam search for sequences of Han title words whose pinyin (or initials) spell ``letters``.

        With ``partial_last`` the last word only has to start with what is
        left, as when the user is still typing; with ``bounds`` pieces start
        and end only at those offsets (syllable boundaries) and match by full pinyin.
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
                if bounds is not None and end not in bounds:
                    continue
                key = letters[pos:end]
                for i in self._pieces.get(key, ()):
                    if bounds is not None and self._entries[i].full != key:
                        continue
                    gain = math.log1p(self._entries[i].df) - _PIECE_PENALTY
                    states[end].extend((score + gain, path + (i,)) for score, path in beam)
            if partial_last and pos > 0:
                rest = letters[pos:]
                matching = (i for i in self._by_pinyin.matching(rest) if self._entries[i].pieces == 1)
                for i in heapq.nsmallest(_PER_KEY, set(matching), key=self._rank):
                    gain = math.log1p(self._entries[i].df) - _PIECE_PENALTY
                    done.extend((score + gain, path + (i,)) for score, path in beam)
        done.extend(states[n])
        return heapq.nlargest(_BEAM, done)


def _edit_distance(a: str, b: str, most: int = 1_000_000) -> int:
    """Edits (insert, delete, replace, swap of neighbours) from ``a`` to ``b``; ``most + 1`` above ``most``."""
    if abs(len(a) - len(b)) > most:
        return most + 1
    before: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                # pyhton → python: two letters typed the wrong way round are one slip.
                cost = min(cost, before[j - 2] + 1)
            current.append(cost)
        if min(current) > most:
            return most + 1
        before, previous = previous, current
    return min(previous[-1], most + 1)


def _is_gibberish_path(pieces: Sequence[str]) -> bool:
    # Loose characters glued together (到+爱+们) read as nothing: a real word is mostly longer pieces.
    return len(pieces) > MAX_PHRASE_PIECES or sum(len(p) == 1 for p in pieces) > min(1, len(pieces) - 1)


def is_gibberish(query: str) -> bool:
    """True when ``query`` reads as loose characters: every segmented term one character, or most of three or more.

    它爱级地爱你 is 它 / 爱级 / 地 / 爱 / 你 to jieba; 大模型 (大 / 模型) and 开源代码 (开 / 源代码) are words.
    """
    terms = [t for t in query_terms(query) if t.strip()]
    if not terms:
        return True
    single = sum(len(t) == 1 for t in terms)
    return single == len(terms) or (len(terms) >= 3 and 2 * single > len(terms))


def _pinyin_letters(text: str) -> str:
    """``text`` with each Han character as its pinyin and no spaces: what a pinyin input method would type."""
    out: list[str] = []
    for m in re.finditer(f"[{_HAN}]+|[^{_HAN}]+", normalize(text)):
        chunk = m.group()
        out.append("".join(_syllables(chunk)) if _HAN_RE.match(chunk) else chunk.translate(_PINYIN_SEPARATORS))
    return "".join(out)


def _initials(text: str) -> str:
    return "".join(s[0] for s in _syllables(text) if s)


def is_near(typed: str, suggested: str) -> bool:
    """True when ``suggested`` is at most a few characters, or a few pinyin letters, from ``typed``.

    Pinyin typed for Chinese (``damoxing`` or its initials ``dmx``) is at distance 0 from the words it spells.
    """
    a = normalize(typed).translate(_PINYIN_SEPARATORS)
    b = normalize(suggested).translate(_PINYIN_SEPARATORS)
    # A third of the word at most: two characters of three is another word.
    most = min(MAX_EDIT_CHARS, max(1, len(a) // 3))
    if _edit_distance(a, b, most) <= most:
        return True
    if _LETTERS_RE.fullmatch(a) and _HAN_WORD_RE.fullmatch(b) and a == _initials(b):
        return True
    return _edit_distance(_pinyin_letters(a), _pinyin_letters(b), MAX_EDIT_PINYIN) <= MAX_EDIT_PINYIN


def _is_plain_query(tokens: Sequence[str]) -> bool:
    return all(_PLAIN_WORD_RE.fullmatch(t) and t not in _OPERATORS for t in tokens)


def titles_with(searcher: Searcher, deadline: float | None = None) -> Callable[[str], int]:
    """The ``verify`` of ``Suggester.suggest``: how many titles hold a word with its pieces side by side."""

    def count(text: str) -> int:
        # A word composed of several title terms counts only where they stand together.
        return searcher.search(f'title:"{text}"', size=1, facets=False, deadline=deadline).total

    return count


def full_matches(page: SearchPage) -> int:
    """The documents with every word of the query on ``page``: what a "did you mean" is counted by."""
    # Results that match only some of the words do not make a suggestion.
    return 0 if page.relaxed else page.total_full


def suggest_query(
    q: str,
    terms: Sequence[str],
    suggester: Suggester,
    count: Callable[[str], int],
    max_tries: int = 8,
    deadline: float | None = None,
    at_least: int = 1,
    drop: bool = True,
) -> QuerySuggestion | None:
    """A query like ``q`` with at least ``at_least`` full matches, or None.

    First each plain word is respelled (pinyin, a same-sounding word or a near
    spelling → title words); failing that, and with ``drop``, each word in turn
    is left out and the variant with the most results wins. A respelling is
    never a string of single characters nor more than a few characters or
    pinyin letters from the word typed. ``terms`` are the segmented words the
    query was understood as (``SearchPage.terms``); ``count`` runs a query and
    returns its full matches (``full_matches``). At most ``max_tries`` queries
    are run, and none once ``deadline`` (a ``time.monotonic()`` value) has
    passed: ``count`` should search with the same deadline, so that the
    request keeps to one.
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
            joined = "".join(tokens)
            yield from (s.text for s in suggester.convert(joined, limit=1) if is_near(joined, s.text))
        for i, token in enumerate(tokens):
            if out_of_tries():
                return
            if not _PLAIN_WORD_RE.fullmatch(token) or token in _OPERATORS:
                continue
            known = suggester.documents(token)
            for s in suggester.convert(token, limit=2):
                # A word the titles hold is respelled only into a much more common one.
                if s.documents >= BETTER_BY * known and is_near(token, s.text) and not is_gibberish(s.text):
                    yield " ".join([*tokens[:i], s.text, *tokens[i + 1 :]])

    tried: set[str] = set()
    for candidate in respellings():
        if candidate in tried or candidate == q:
            continue
        tried.add(candidate)
        if out_of_tries():
            return None
        if (total := run(candidate)) >= at_least:
            return QuerySuggestion(candidate, total, "respell")
    if not drop:
        return None

    best: QuerySuggestion | None = None
    for dropped, candidate in _drop_variants(q, tokens, terms):
        if is_gibberish(candidate):
            continue
        if out_of_tries():
            break
        total = run(candidate)
        if total >= at_least and (best is None or total > best.total):
            best = QuerySuggestion(candidate, total, "drop", dropped)
    return best


# Queries understood as more words than this get no "did you mean".
MAX_SUGGEST_TERMS = 12


def did_you_mean(
    q: str,
    page: SearchPage,
    suggester: Suggester,
    count: Callable[[str], int],
    deadline: float | None = None,
    max_tries: int = 8,
) -> QuerySuggestion | None:
    """The "did you mean" for the results ``page`` of ``q``, or None; the page, the API and the bench all ask here.

    Shown only when ``q`` has no full match, or when the suggestion has at
    least ``BETTER_BY`` times as many as ``q``; only a respelling competes
    with a query that has full matches (leaving a word out always finds more).
    ``count`` returns a candidate's full matches (``full_matches`` of a search
    with the same filters and deadline).
    """
    if not q.strip() or page.partial:
        # A page cut short by the time limit has undercounted, and no time is left to try others.
        return None
    if len(page.terms) > MAX_SUGGEST_TERMS:
        # A long question or a pasted sentence is not a typo: respelling or dropping one of its many
        # words changes little, and each try is a whole search (a query of 80 words took 0.4 s).
        return None
    original = full_matches(page)
    if original == 0:
        return suggest_query(q, page.terms, suggester, count, max_tries=max_tries, deadline=deadline)
    better = BETTER_BY * original
    return suggest_query(q, page.terms, suggester, count, max_tries, deadline, at_least=better, drop=False)


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
    """One ``Suggester`` per index generation, rebuilt after the index changed.

    Whether the index changed is checked at most every ``recheck_s`` seconds.
    The first suggester is built on first use. A later one is built by a
    background thread while ``get`` keeps returning the one before: building
    takes seconds on a large index (1.5 s of CPU on 8,682 titles, more with
    reading them), far over a request's time limit, and suggestions a few
    seconds old are still good ones. The thread reads the titles through its
    own store from ``reopen``, because one index reader must not be used by two
    threads at once; without ``reopen`` the rebuild happens in ``get``.
    """

    def __init__(
        self, store: IndexStore, recheck_s: float = 2.0, reopen: Callable[[], IndexStore] | None = None
    ) -> None:
        self.store = store
        self.recheck_s = recheck_s
        self.reopen = reopen
        self._lock = threading.Lock()
        self._suggester: Suggester | None = None
        self._key: tuple[object, ...] | None = None
        self._checked = -math.inf
        self._building: threading.Thread | None = None

    @staticmethod
    def _generation(store: IndexStore) -> tuple[object, ...]:
        info = store.info()
        # Not the size: a Typesense node reports its allocator's bytes, which move with every search, and
        # rebuilding on each check (all titles exported) made one request in two take 1.6 s on 3,000 articles.
        return (info.built_at, info.updated_at, info.documents)

    def get(self) -> Suggester:
        """The suggester for the live index, or the one before while a new one is built."""
        with self._lock:
            now = time.monotonic()
            if self._suggester is not None and now - self._checked < self.recheck_s:
                return self._suggester
            self._checked = now
            key = self._generation(self.store)
            if self._suggester is None or (self.reopen is None and key != self._key):
                self._suggester, self._key = Suggester.from_store(self.store), key
            elif key != self._key and self._building is None:
                self._building = threading.Thread(target=self._rebuild, name="zhsearch-suggester", daemon=True)
                self._building.start()
            return self._suggester

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a rebuild under way, if any, to finish."""
        building = self._building
        if building is not None:
            building.join(timeout)

    def _rebuild(self) -> None:
        assert self.reopen is not None
        try:
            store = self.reopen()
            try:
                key = self._generation(store)
                suggester = Suggester.from_store(store)
            finally:
                store.close()
            with self._lock:
                self._suggester, self._key = suggester, key
        except Exception:  # noqa: BLE001 - keep the suggestions there are; the next check tries again
            logging.getLogger(__name__).exception("zhsearch: rebuilding the suggestions failed")
        finally:
            with self._lock:
                self._building = None
