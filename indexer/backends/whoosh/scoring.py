"""BM25F for Whoosh with each document's length normalisation computed once.

Whoosh's BM25F looks a document's field length up through several layers of
readers for every posting it scores; for a question that matches most of the
index that lookup is a third of the search. This scorer keeps the finished
normalisation per segment, field and document, all read at once from the
field's lengths the first time the field is scored in an open searcher.
Scores are identical to ``whoosh.scoring.BM25F``.
"""

from __future__ import annotations

import bisect
import math
import zlib
from array import array
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate
from pickle import loads
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from whoosh import columns, scoring
from whoosh import query as wq
from whoosh.codec.whoosh3 import LENGTHS_COLUMN, W3PerDocReader, _lenfield
from whoosh.matching import ListMatcher, NullMatcher, UnionMatcher, WrappingMatcher
from whoosh.util.numeric import byte_to_length

if TYPE_CHECKING:
    from .query import Clock

# Where the normalisations of one leaf searcher live (one array per field and parameters).
_CACHE_ATTR = "_zhsearch_length_norms"
_UNSET = -1.0

K = TypeVar("K")
V = TypeVar("V")
# A postings block as kept decoded: its document numbers and each document's encoded positions.
_Block = tuple[Sequence[int], Sequence[bytes]]


# Whoosh 3 pickles each postings block (ids, weights, values) with protocol 2, which writes every bytes
# value (a document's positions) as a call to _codecs.encode(text, "latin1"); with positions that call
# is most of the time of reading a block. str.encode makes the same bytes three times faster, so a
# block is unpickled with the global renamed to it (the name occurs once per block: later values refer
# to it by memo). Measured on a 128-posting block of a common word: 155 -> 90 us.
_CODECS_ENCODE = b"c_codecs\nencode\n"
_STR_ENCODE = b"c" + __name__.encode("ascii") + b"\n_latin1\n"
_latin1 = str.encode


def read_block(postings: Any) -> None:
    """Read the current block of Whoosh 3 postings, as its ``_read_ids`` does: the same data, faster."""
    if postings._data is None:
        data = postings._postfile.get(postings._dataoffset, postings._nextoffset - postings._dataoffset)
        if postings._compression:
            data = zlib.decompress(data)
        postings._data = loads(data.replace(_CODECS_ENCODE, _STR_ENCODE, 1))
    if postings._ids is None:
        ids = postings._data[0]
        # Whoosh's delta_decode is a Python generator; accumulate sums the same deltas in C.
        postings._ids = ids if postings._byteids else tuple(accumulate(ids))


class CachedBM25F(scoring.BM25F):  # type: ignore[misc]
    """``BM25F`` whose scorers share per-document length normalisations."""

    def scorer(self, searcher: Any, fieldname: str, text: str | bytes, qf: int = 1) -> Any:
        """A scorer for one term in one segment."""
        if not searcher.schema[fieldname].scorable:
            return scoring.WeightScorer.for_(searcher, fieldname, text)
        B = self._field_B.get(fieldname, self.B)
        return _CachedBM25FScorer(searcher, fieldname, text, B, self.K1, qf=qf)


class _CachedBM25FScorer(scoring.BM25FScorer):  # type: ignore[misc]
    def __init__(self, searcher: Any, fieldname: str, text: str | bytes, B: float, K1: float, qf: int = 1) -> None:
        super().__init__(searcher, fieldname, text, B, K1, qf=qf)
        cache: dict[tuple[str, float, float, float], array[float]] = searcher.__dict__.setdefault(_CACHE_ATTR, {})
        key = (fieldname, B, K1, self.avgfl)
        norms = cache.get(key)
        if norms is None:
            norms = cache[key] = _all_norms(searcher, fieldname, B, K1, self.avgfl)
        self._norms = norms
        self._k1_plus_1 = K1 + 1

    def norm(self, docnum: int) -> float:
        """The length normalisation of ``docnum``, computed on first use."""
        norm = self._norms[docnum]
        if norm < 0:
            # The same expression as whoosh.scoring.bm25, so scores match to the last bit.
            norm = self._norms[docnum] = self.K1 * ((1 - self.B) + self.B * self.dfl(docnum) / self.avgfl)
        return norm

    def score(self, matcher: Any) -> float:
        weight = matcher.weight()
        return float(self.idf * ((weight * self._k1_plus_1) / (weight + self.norm(matcher.id()))))


def _all_norms(searcher: Any, fieldname: str, B: float, K1: float, avgfl: float) -> array[float]:
    """Every document's length normalisation in one segment's ``fieldname``, or ``_UNSET`` where not read.

    Whoosh 3 stores a field's lengths as one byte per document (a column of ``B``), so a normalisation
    takes one of 256 values: the column is read in one call and mapped through that table. Looking
    each document up through Whoosh's readers as it was first scored made the first question after
    opening a 1,000,000-paragraph index take 5.3 s; it takes 2.1 s this way (the rest is reading its
    words' postings). A segment laid out otherwise is read lazily.
    """
    count: int = searcher.doc_count_all()
    lengths = _length_bytes(searcher.reader(), fieldname, count)
    if lengths is None:
        return array("d", [_UNSET]) * count
    # The same expression as whoosh.scoring.bm25 over byte_to_length, so scores match to the last bit.
    # Byte 0 is a document without the field, which has no postings in it to score.
    table = [K1 * ((1 - B) + B * byte_to_length(b) / avgfl) for b in range(256)]
    return array("d", map(table.__getitem__, lengths))


def _length_bytes(reader: Any, fieldname: str, count: int) -> bytes | None:
    # Whoosh 3's per-document reader and its lengths column, as doc_field_length reads them (the
    # version is pinned; anything unexpected falls back to per-document lookups).
    perdoc = getattr(reader, "_perdoc", None)
    if not isinstance(perdoc, W3PerDocReader) or not perdoc.has_column(_lenfield(fieldname)):
        return None
    column = perdoc._cached_reader(_lenfield(fieldname), LENGTHS_COLUMN)
    if not isinstance(column, columns.NumericColumn.Reader) or column._fixedlen != 1:
        return None
    stored = min(column._count, count)
    # Documents past the column's end have its default, 0.
    return bytes(column._dbfile.get(column._basepos, stored)) + bytes(count - stored)


class AnyTerm(wq.Or):  # type: ignore[misc]
    """An OR of terms, scored a term at a time: what a question runs.

    A question matches any of its words, so it reads most of the index;
    Whoosh's union matchers make several method calls per posting and per
    word. This query reads each word's postings a block at a time and adds up
    the same BM25 scores in one loop, then hands Whoosh the finished list.
    Anything other than a plain term, and any weighting other than
    ``CachedBM25F``, goes through Whoosh's own OR. With a ``clock``, the
    clock is read after every block of postings.
    """

    def __init__(self, subqueries: list[Any], boost: float = 1.0, clock: Clock | None = None) -> None:
        super().__init__(subqueries, boost=boost)
        self.clock = clock

    def _matcher(self, subs: list[Any], searcher: Any, context: Any) -> Any:
        weighting = context.weighting if context is not None else searcher.weighting
        terms = [q for q in subs if _is_plain_term(q)]
        others = [q for q in subs if not _is_plain_term(q)]
        if not terms or not isinstance(weighting, CachedBM25F) or not searcher.is_atomic():
            return super()._matcher(subs, searcher, context)
        scores: dict[int, float] = {}
        for q in terms:
            if not add_term_scores(scores, q, searcher, weighting, self.clock):
                return super()._matcher(subs, searcher, context)
        ids = sorted(scores)
        m: Any = ListMatcher(ids, weights=[scores[d] for d in ids]) if ids else NullMatcher()
        if others:
            m = UnionMatcher(m, wq.Or(others).matcher(searcher, context))
        if self.boost != 1.0:
            m = WrappingMatcher(m, boost=self.boost)
        return m


def _is_plain_term(q: Any) -> bool:
    # Whoosh has no Term subclasses; ours (query.TimedTerm) only reads the clock, which is read here per block.
    return isinstance(q, wq.Term)


def add_term_scores(
    scores: dict[int, float],
    q: Any,
    searcher: Any,
    weighting: CachedBM25F,
    clock: Clock | None = None,
    only: set[int] | None = None,
) -> bool:
    """Add ``q``'s scores per document (of ``only``, when given) to ``scores``; False when not Whoosh 3 blocks."""
    if q.fieldname not in searcher.schema:
        return True  # matches nothing, as in Whoosh
    field = searcher.schema[q.fieldname]
    if not field.scorable:
        return False
    try:
        text = field.to_bytes(q.text)
    except ValueError:
        return True
    boost = q.boost
    cached = _cache_get(searcher, (q.fieldname, text))
    if cached is not None:
        _add_cached(scores, cached, boost, only)
        return True
    reader = searcher.reader()
    if (q.fieldname, text) not in reader:
        return True
    scorer = weighting.scorer(searcher, q.fieldname, text)
    postings = reader.postings(q.fieldname, text)
    deleted = reader.deleted_docs_set
    if deleted:
        postings = postings.child
    if not isinstance(scorer, _CachedBM25FScorer) or not hasattr(postings, "_read_ids"):
        return False
    if reader.doc_frequency(q.fieldname, text) >= CACHE_MIN_POSTINGS:
        cached = _cached_scores(searcher, scorer, postings, deleted, (q.fieldname, text), clock)
        _add_cached(scores, cached, boost, only)
        return True
    idf, k1_plus_1, norms, norm_of = scorer.idf, scorer._k1_plus_1, scorer._norms, scorer.norm
    get = scores.get
    # Whoosh 3's block reader, a block at a time (zhsearch pins the version).
    # With ``only``, a block whose documents all come before the next wanted one is skipped unread: the
    # block header holds its last docnum, and reading a block unpickles its positions too.
    wanted = sorted(only) if only is not None else None
    at = 0
    while postings.is_active():
        if clock is not None:
            clock.check()
        if wanted is not None:
            if at == len(wanted):
                break
            if wanted[at] > postings._maxid:
                postings._next_block()
                continue
            at = bisect.bisect_right(wanted, postings._maxid, at)
        read_block(postings)
        postings._read_weights()
        for docnum, weight in zip(postings._ids, postings._weights, strict=True):
            if (deleted and docnum in deleted) or (only is not None and docnum not in only):
                continue
            norm = norms[docnum]
            if norm < 0:
                norm = norm_of(docnum)
            score = idf * ((weight * k1_plus_1) / (weight + norm))
            scores[docnum] = get(docnum, 0.0) + (score * boost if boost != 1.0 else score)
        postings._next_block()
    return True


# A word in at least this many documents of a segment keeps its scores in memory once read: reading a
# Whoosh postings block unpickles its positions too, so a common word's scores cost far more to read
# than to keep (12 bytes a document). The cache lives as long as the open searcher (one index
# generation) and holds at most CACHE_POSTINGS scores over all segments (72 MB), or CACHE_PER_DOCUMENT
# per document of the index if that is more, the least recently used dropped first. A common word's
# list grows with the collection: at 1,000,000 paragraphs the lists the 232 benchmark queries read
# came to 10.3 million scores, so a budget of 6 million dropped each before it was read again (a
# question took 3.8 s in a run of all of them, 0.23 s when repeated). 12 per document is 144 MB at
# 1,000,000 documents, a twelfth of that index's size on disk.
CACHE_MIN_POSTINGS = 1000
CACHE_POSTINGS = 6_000_000
CACHE_PER_DOCUMENT = 12
_TERM_CACHE_ATTR = "_zhsearch_term_scores"


class SizedLru(Generic[K, V]):
    """A cache of the most recently used entries, their sizes adding up to at most ``budget`` (and ``entries``).

    Every cache kept on a searcher is one of these. Like everything on a
    searcher it serves one search at a time: the server runs one request at a
    time per worker, since Whoosh's file reads are not safe from two threads
    (see indexer/server.py).
    """

    def __init__(self, budget: float, size: Callable[[V], int] = lambda _: 1, entries: float = math.inf) -> None:
        self._entries: dict[K, V] = {}
        self._size = size
        self.budget = budget
        self.max_entries = entries
        self.held = 0

    def get(self, key: K) -> V | None:
        """The value kept for ``key``, now the most recently used; None if not kept."""
        found = self._entries.pop(key, None)
        if found is not None:
            self._entries[key] = found  # the most recently used last
        return found

    def put(self, key: K, value: V) -> None:
        """Keep ``value``, dropping the least recently used entries until it fits (all of them if need be)."""
        if key in self._entries:
            self._entries[key] = self._entries.pop(key)
            return
        size = self._size(value)
        while self._entries and (self.held + size > self.budget or len(self._entries) >= self.max_entries):
            self.held -= self._size(self._entries.pop(next(iter(self._entries))))
        self._entries[key] = value
        self.held += size

    def __len__(self) -> int:
        return len(self._entries)


def _scores_cache(top: Any) -> SizedLru[tuple[int, str, bytes], tuple[array[int], array[float]]]:
    """The common words' scores of the index ``top`` searches, keyed by segment searcher, field and term."""
    cache: SizedLru[tuple[int, str, bytes], tuple[array[int], array[float]]] | None = top.__dict__.get(_TERM_CACHE_ATTR)
    if cache is None:
        budget = max(CACHE_POSTINGS, CACHE_PER_DOCUMENT * top.doc_count_all())
        cache = top.__dict__[_TERM_CACHE_ATTR] = SizedLru(budget, lambda found: len(found[0]))
    return cache


# A phrase reads a common word's positions a block at a time, for the documents that have its other
# words. What a common word's blocks are (where each starts, its last docnum) is kept once walked, so
# later phrases jump to the block they need; the blocks read most recently are kept decoded, at most
# BLOCK_CACHE_POSTINGS postings over the whole index (about 91 bytes each: 45 MB), or
# BLOCK_CACHE_PER_DOCUMENT per document of the index if that is more, the least recently used dropped
# first. Kept for words in CACHE_MIN_POSTINGS documents or more, at most BLOCK_DIRECTORIES. At 1,000,000
# paragraphs, a run of the benchmark queries with 500,000 kept took 873 ms for a question that takes
# 258 ms with 1,500,000 (137 MB): common words' blocks grow with the collection, as their lists do.
BLOCK_CACHE_POSTINGS = 500_000
BLOCK_CACHE_PER_DOCUMENT = 1.5
BLOCK_DIRECTORIES = 20_000
_BLOCKS_ATTR = "_zhsearch_term_blocks"


class TermBlocks:
    """One word's postings blocks in one segment, as far as they have been walked, and its decoded blocks."""

    def __init__(self, cache: SizedLru[tuple[int, str, bytes, int], _Block], key: tuple[int, str, bytes]) -> None:
        self._starts: list[int] = []  # each block's offset in the postings file, ascending
        self._maxids: list[int] = []  # each block's last docnum
        self._cache = cache
        self._key = key

    def learn(self, start: int, maxid: int) -> None:
        """Note the block at ``start`` (ending at ``maxid``) when it is the next one after those known."""
        if not self._starts or start > self._starts[-1]:
            self._starts.append(start)
            self._maxids.append(maxid)

    def block_for(self, docnum: int) -> int | None:
        """Where the first known block that can hold ``docnum`` starts, else the last known one; None if none."""
        if not self._starts:
            return None
        return self._starts[min(bisect.bisect_left(self._maxids, docnum), len(self._starts) - 1)]

    def decoded(self, start: int) -> _Block | None:
        """The ids and encoded positions of the block at ``start``, if kept."""
        return self._cache.get((*self._key, start))

    def keep(self, start: int, ids: Sequence[int], values: Sequence[bytes]) -> None:
        """Keep a block's decoded ids and positions."""
        self._cache.put((*self._key, start), (ids, values))


def term_blocks(searcher: Any, fieldname: str, text: bytes) -> TermBlocks | None:
    """What is known of a common word's postings blocks in this segment; None for a word below the threshold."""
    reader = searcher.reader()
    if (fieldname, text) not in reader or reader.doc_frequency(fieldname, text) < CACHE_MIN_POSTINGS:
        return None
    top = searcher.get_parent()
    caches = top.__dict__.get(_BLOCKS_ATTR)
    if caches is None:
        budget = max(BLOCK_CACHE_POSTINGS, BLOCK_CACHE_PER_DOCUMENT * top.doc_count_all())
        caches = top.__dict__[_BLOCKS_ATTR] = (
            SizedLru(BLOCK_DIRECTORIES),  # each word's TermBlocks, counted one each
            SizedLru(budget, lambda block: len(block[0])),  # the decoded blocks, counted in postings
        )
    directories: SizedLru[tuple[int, str, bytes], TermBlocks] = caches[0]
    blocks: SizedLru[tuple[int, str, bytes, int], _Block] = caches[1]
    key = (id(searcher), fieldname, text)
    found = directories.get(key)
    if found is None:
        found = TermBlocks(blocks, key)
        directories.put(key, found)
    return found


def _cache_get(searcher: Any, key: tuple[str, bytes]) -> tuple[array[int], array[float]] | None:
    """The term's cached scores in this segment, if they are in the cache (before any reading of the term)."""
    cache = searcher.get_parent().__dict__.get(_TERM_CACHE_ATTR)
    return None if cache is None else cache.get((id(searcher), *key))


def _cached_scores(
    searcher: Any, scorer: Any, postings: Any, deleted: Any, key: tuple[str, bytes], clock: Clock | None
) -> tuple[array[int], array[float]]:
    """The term's BM25 score in each of the segment's live documents that has it, read once per searcher."""
    # One cache for the whole index, on the top searcher, which holds its segments' searchers.
    cache = _scores_cache(searcher.get_parent())
    entry = (id(searcher), *key)
    found = cache.get(entry)
    if found is None:
        found = _read_scores(scorer, postings, deleted, clock)
        cache.put(entry, found)
    return found


def term_scores(searcher: Any, weighting: Any, fieldname: str, text: bytes, clock: Clock | None = None) -> Any:
    """A segment's live documents with this term (ascending) and its BM25 score in each, as two arrays.

    Kept in the cache for a common term. None when the postings are not
    Whoosh 3 blocks scored by ``CachedBM25F``.
    """
    if not isinstance(weighting, CachedBM25F):
        return None
    cached = _cache_get(searcher, (fieldname, text))
    if cached is not None:
        return cached
    reader = searcher.reader()
    if (fieldname, text) not in reader:
        return array("i"), array("d")
    scorer = weighting.scorer(searcher, fieldname, text)
    postings = reader.postings(fieldname, text)
    deleted = reader.deleted_docs_set
    if deleted:
        postings = postings.child
    if not isinstance(scorer, _CachedBM25FScorer) or not hasattr(postings, "_read_ids"):
        return None
    key = (fieldname, text)
    if reader.doc_frequency(fieldname, text) >= CACHE_MIN_POSTINGS:
        return _cached_scores(searcher, scorer, postings, deleted, key, clock)
    return _read_scores(scorer, postings, deleted, clock)


def term_ids(searcher: Any, weighting: Any, fieldname: str, text: bytes, clock: Clock | None = None) -> Any:
    """The live documents of a segment with this term, ascending (see ``term_scores``)."""
    reader = searcher.reader()
    if (fieldname, text) in reader and reader.doc_frequency(fieldname, text) < CACHE_MIN_POSTINGS:
        # A word not worth caching: its documents only, a block at a time in C, with no score per document.
        postings = reader.postings(fieldname, text)
        deleted = reader.deleted_docs_set
        if deleted:
            postings = postings.child
        if isinstance(weighting, CachedBM25F) and hasattr(postings, "_read_ids"):
            ids: array[int] = array("i")
            while postings.is_active():
                if clock is not None:
                    clock.check()
                read_block(postings)
                if deleted:
                    ids.extend(d for d in postings._ids if d not in deleted)
                else:
                    ids.extend(postings._ids)
                postings._next_block()
            return ids
    found = term_scores(searcher, weighting, fieldname, text, clock)
    return None if found is None else found[0]


def shared_ids(first: Iterable[int], lists: Sequence[Sequence[int]]) -> set[int]:
    """The documents of ``first`` that are in every one of ``lists`` (each in ascending order)."""
    found = set(first)
    for ids in sorted(lists, key=len):
        if not found:
            break
        if len(found) * 16 < len(ids):
            # A few documents against a common word's many: look each one up instead of hashing every id.
            end = len(ids)
            found = {d for d in found if (at := bisect.bisect_left(ids, d)) < end and ids[at] == d}
        else:
            found = found.intersection(ids)  # in C
    return found


def _read_scores(scorer: Any, postings: Any, deleted: Any, clock: Clock | None) -> tuple[array[int], array[float]]:
    idf, k1_plus_1, norms, norm_of = scorer.idf, scorer._k1_plus_1, scorer._norms, scorer.norm
    ids: array[int] = array("i")
    values: array[float] = array("d")
    while postings.is_active():
        if clock is not None:
            clock.check()
        read_block(postings)
        postings._read_weights()
        for docnum, weight in zip(postings._ids, postings._weights, strict=True):
            if deleted and docnum in deleted:
                continue
            norm = norms[docnum]
            if norm < 0:
                norm = norm_of(docnum)
            ids.append(docnum)
            # The same expression as _CachedBM25FScorer.score: the same float.
            values.append(idf * ((weight * k1_plus_1) / (weight + norm)))
        postings._next_block()
    return ids, values


def _add_cached(
    scores: dict[int, float], cached: tuple[array[int], array[float]], boost: float, only: set[int] | None
) -> None:
    ids, values = cached
    get = scores.get
    if only is not None:
        if len(only) * 16 >= len(ids):
            only = only.intersection(ids)  # in C
        if len(only) * 4 < len(ids):
            # A few wanted documents among many: look each one up (the ids are in ascending order) rather
            # than step through every id of a common word in Python.
            end = len(ids)
            for docnum in only:
                at = bisect.bisect_left(ids, docnum)
                if at < end and ids[at] == docnum:
                    value = values[at]
                    scores[docnum] = get(docnum, 0.0) + (value * boost if boost != 1.0 else value)
            return
    if only is None and boost == 1.0 and not scores:
        scores.update(zip(ids, values, strict=True))  # 0.0 + x is x
        return
    for docnum, value in zip(ids, values, strict=True):
        if only is None or docnum in only:
            scores[docnum] = get(docnum, 0.0) + (value * boost if boost != 1.0 else value)
