"""The words of a query as units: full matches first, and a short page filled with the closest.

``indexer.plan.plan_match`` turns a query's typed words and phrases into
units (a word, an identifier, a run of Chinese typed without spaces whose
pieces must sit side by side, a quoted phrase) and says how many of the
counted units make a full match. ``MatchUnits`` runs them in one pass over
the whole index:

- it scores each unit in each document (the best of its written forms, such
  as 软件 or 软体), counts the units each document has, and keeps the
  documents that have every required unit (``+word``, phrases);
- the documents with at least ``min_match`` counted units are the full
  matches; when there are fewer than ``fill_below`` of them, the others
  that have some counted unit are kept too, ranked after them, the ones
  with more (and rarer) units first, in the way of Meilisearch's matching
  strategies;
- when a keyword query's page is filled, the tier (how many units a
  document has) is added to the score as a multiple of ``TIER``, so Whoosh's
  top-N collector ranks by tier, then by BM25. The store takes the tier back
  out before anyone sees the score. A question's page ranks by score alone.

Counting needs the whole index before the first segment is matched (whether
to fill depends on every segment's full matches), so the work is done once per
search, on the first call to ``matcher``, for all segments.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from whoosh import query as wq
from whoosh.matching import ListMatcher, NullMatcher, WrappingMatcher

from ...plan import QUESTION_FILL_BELOW
from .scoring import CachedBM25F, add_term_scores

# A unit written another way than typed (软体 for 软件, the other region's word) scores this much of
# the same match as typed: the word as typed is the surer sign of what the user meant.
OTHER_FORM_WEIGHT = 0.8
# A question's words found in more than this share of the documents only add to the score.
COMMON_SHARE = 0.2
# Added to a document's score once per tier: far above any BM25 sum (a score above 1e5 would need a
# query of hundreds of rare words, and queries are at most 256 characters).
TIER = 1e7


@dataclass(frozen=True)
class UnitQuery:
    """One unit of a query: the Whoosh queries of its written forms, and how it counts."""

    label: str
    forms: tuple[Any, ...]
    required: bool
    counts: bool


class MatchUnits(wq.Query):  # type: ignore[misc]
    """The documents that have the units of a query, tiered by how many; see the module docstring."""

    def __init__(
        self,
        units: Sequence[UnitQuery],
        min_match: int,
        *,
        tiered: bool,
        fill_below: int = 0,
        extras: Sequence[Any] = (),
        question_min_match: Callable[[int], int] | None = None,
        boost: float = 1.0,
    ) -> None:
        self.units = list(units)
        self.min_match = min_match
        self.tiered = tiered
        self.fill_below = fill_below
        self.extras = list(extras)
        # For a question: how many of n counted units make a full match, once its common words are set aside.
        self.question_min_match = question_min_match
        self._counted = [u.counts for u in self.units]
        self.boost = boost
        # Set by the first call to matcher: per segment reader, the documents and their scores.
        self._leaves: dict[int, tuple[list[int], list[float]]] | None = None
        # Per segment, in docnum order: its offset and each unit's scores (which units a document has).
        self._unit_leaves: list[tuple[int, list[dict[int, float]]]] = []
        # Per segment, in docnum order: its offset, the documents kept and their collected scores.
        self._ranked: list[tuple[int, list[int], list[float]]] = []
        # Per segment: its offset and how many counted units each document has.
        self._counts: list[tuple[int, Counter[int]]] = []
        self.total_full = 0

    def __repr__(self) -> str:
        return f"MatchUnits({[u.label for u in self.units]!r}, min_match={self.min_match})"

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def is_leaf(self) -> bool:
        return False

    def children(self) -> list[Any]:
        return [f for u in self.units for f in u.forms] + self.extras

    def estimate_size(self, ixreader: Any) -> int:
        return int(ixreader.doc_count_all())

    @property
    def prepared(self) -> bool:
        """True once a search has counted the matches (False when it stopped before)."""
        return self._leaves is not None

    def _choose_counted(self, top: Any, frequencies: list[int]) -> None:
        """Which units count toward a full match: for a question, not those in most of the collection.

        A question's common words (使用, 查看, Linux in a Linux collection) are
        scored but not required, as in Elasticsearch's common terms query:
        otherwise a question of common words matches most of the collection.
        """
        self._counted = [u.counts for u in self.units]
        if self.question_min_match is None:
            return
        limit = COMMON_SHARE * max(1, top.doc_count())
        rare = [u.counts and f <= limit for u, f in zip(self.units, frequencies, strict=True)]
        if any(rare):
            self._counted = rare
            self.min_match = self.question_min_match(sum(rare))

    def missing(self, docnum: int) -> tuple[str, ...]:
        """The labels of the counted units that document ``docnum`` (a top-level number) lacks; () for a full match.

        A question's full match may lack some of its words: it has enough of them.
        """
        mask = 0
        at = bisect.bisect_right([offset for offset, _ in self._unit_leaves], docnum) - 1
        if at >= 0:
            offset, unit_scores = self._unit_leaves[at]
            for i, scores in enumerate(unit_scores):
                if docnum - offset in scores:
                    mask |= 1 << i
        counted_units = [u for u, c in zip(self.units, self._counted, strict=True) if c]
        lacking = tuple(u.label for i, u in enumerate(self.units) if self._counted[i] and not mask >> i & 1)
        counted = len(counted_units)
        return lacking if counted - len(lacking) < self.min_match else ()

    def tier_of(self, score: float) -> tuple[int, float]:
        """Split a collected score into its tier and its BM25 part."""
        tier = int(score // TIER) if score >= TIER else 0
        return tier, score - tier * TIER

    def matcher(self, searcher: Any, context: Any = None) -> Any:
        top = searcher.get_parent()
        if self._leaves is None:
            self._prepare(top, context)
        assert self._leaves is not None
        ids, weights = self._leaves.get(id(searcher.reader()), ([], []))
        if not ids:
            return NullMatcher()
        m: Any = ListMatcher(ids, weights=weights)
        return WrappingMatcher(m, boost=self.boost) if self.boost != 1.0 else m

    def _prepare(self, top: Any, context: Any) -> None:
        weighting = context.weighting if context is not None else top.weighting
        required = [i for i, unit in enumerate(self.units) if unit.required]
        leaf_scores = [
            (leaf, offset, [_unit_scores(unit, leaf, context, weighting) for unit in self.units])
            for leaf, offset in top.leaf_searchers()
        ]
        self._choose_counted(top, [sum(len(s[i]) for _, _, s in leaf_scores) for i in range(len(self.units))])
        min_match = self.min_match
        found: list[tuple[Any, int, dict[int, float], Counter[int]]] = []
        total_full = 0
        for leaf, offset, unit_scores in leaf_scores:
            # Set and Counter operations run in C; a question of common words has a score per document
            # for hundreds of thousands of documents.
            score: dict[int, float] = {}
            for scores in unit_scores:
                if not score:
                    score = dict(scores)  # 0.0 + x is x: the sums are the same to the last bit
                    continue
                get = score.get
                for docnum, value in scores.items():
                    score[docnum] = get(docnum, 0.0) + value
            count: Counter[int] = Counter()
            for counts, scores in zip(self._counted, unit_scores, strict=True):
                if counts:
                    count.update(scores.keys())
            if required:
                allowed = set(unit_scores[required[0]]).intersection(*(unit_scores[i].keys() for i in required[1:]))
                for docnum in score.keys() - allowed:
                    del score[docnum]
                    count.pop(docnum, None)
            if min_match <= 0:
                total_full += len(score)
            else:
                total_full += sum(1 for c in count.values() if c >= min_match)
            found.append((leaf, offset, score, count))
            self._unit_leaves.append((offset, unit_scores))
            self._counts.append((offset, count))
        self.total_full = total_full
        fill_below = (
            max(self.fill_below, QUESTION_FILL_BELOW) if self.fill_below and not self.tiered else self.fill_below
        )
        short = fill_below > 0 and total_full < fill_below
        fill = short
        # Whether the page is filled with documents that are not full matches (only then are scores tiered).
        fill = fill and any(0 < c < min_match for _, _, _, count in found for c in count.values())
        # A question's page is filled with every document its words score in, down to a shared
        # character bigram (a name the segmenter cut differently), ranked after the full matches.
        loose = short and not self.tiered and not required
        fill = fill or (loose and bool(self.extras))
        leaves: dict[int, tuple[list[int], list[float]]] = {}
        for leaf, offset, score, count in found:
            if min_match <= 0:
                kept_set = set(score)
            elif fill:
                kept_set = set(count)
            else:
                kept_set = {d for d, c in count.items() if c >= min_match}
            if self.extras and (kept_set or loose):
                bonus: dict[int, float] = {}
                # Only the documents kept need the extras' scores, unless every document they score in is.
                only = None if loose else kept_set
                for q in self.extras:
                    _add_scores(bonus, q, leaf, context, weighting, only)
                if loose:
                    for d in bonus:
                        if d not in score:
                            score[d] = 0.0
                    kept_set.update(bonus)
                for d, value in bonus.items():
                    score[d] += value
            kept = sorted(kept_set)
            if fill and self.tiered:
                # Without filling, every document kept is a full match: the scores stay plain BM25. A
                # question's page ranks by score alone: its full matches are a count, not a tier (on the
                # question benchmarks, tiers put articles with more words above the one that answers).
                weights = [count.get(d, 0) * TIER + score[d] for d in kept]
            else:
                weights = [score[d] for d in kept]
            leaves[id(leaf.reader())] = (kept, weights)
            self._ranked.append((offset, kept, weights))
        self._leaves = leaves

    def matches(self, top: Any) -> tuple[list[int], list[float]]:
        """Every matching top-level docnum, ascending, and its collected score (tier included)."""
        if self._leaves is None:
            self._prepare(top, None)
        docnums: list[int] = []
        scores: list[float] = []
        for offset, kept, weights in self._ranked:
            docnums.extend([offset + d for d in kept] if offset else kept)
            scores.extend(weights)
        return docnums, scores

    def full_matches(self) -> set[int]:
        """The top-level docnums of the full matches (enough counted units), once prepared."""
        if self.min_match <= 0:
            return {offset + d for offset, kept, _ in self._ranked for d in kept}
        return {offset + d for offset, count in self._counts for d, c in count.items() if c >= self.min_match}


def _unit_scores(unit: UnitQuery, searcher: Any, context: Any, weighting: Any) -> dict[int, float]:
    """A unit's score in each document that has it: the best of its forms (软件 or 软体, not both added)."""
    if len(unit.forms) == 1:
        best: dict[int, float] = {}
        _add_scores(best, unit.forms[0], searcher, context, weighting)
        return best
    best = {}
    for i, form in enumerate(unit.forms):
        scores: dict[int, float] = {}
        _add_scores(scores, form, searcher, context, weighting)
        weight = 1.0 if i == 0 else OTHER_FORM_WEIGHT
        for docnum, value in scores.items():
            value *= weight
            if value > best.get(docnum, -1.0):
                best[docnum] = value
    return best


def _add_scores(
    scores: dict[int, float], q: Any, searcher: Any, context: Any, weighting: Any, only: set[int] | None = None
) -> None:
    """Add ``q``'s score in each matching document of this segment (of ``only``, when given) to ``scores``."""
    clock = getattr(q, "clock", None)
    if isinstance(q, wq.Term) and isinstance(weighting, CachedBM25F):
        if add_term_scores(scores, q, searcher, weighting, clock, only):
            return
    m = q.matcher(searcher, context)
    get = scores.get
    while m.is_active():
        docnum = m.id()
        if only is None or docnum in only:
            scores[docnum] = get(docnum, 0.0) + m.score()
        m.next()
