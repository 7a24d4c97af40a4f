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
        self._masks: dict[int, int] = {}
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
        mask = self._masks.get(docnum, 0)
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
        required = 0
        for i, unit in enumerate(self.units):
            if unit.required:
                required |= 1 << i
        leaf_scores = [
            (leaf, offset, [_unit_scores(unit, leaf, context, weighting) for unit in self.units])
            for leaf, offset in top.leaf_searchers()
        ]
        self._choose_counted(top, [sum(len(s[i]) for _, _, s in leaf_scores) for i in range(len(self.units))])
        found: list[tuple[Any, int, dict[int, float], dict[int, int], dict[int, int]]] = []
        total_full = 0
        for leaf, offset, unit_scores in leaf_scores:
            score: dict[int, float] = {}
            count: dict[int, int] = {}
            mask: dict[int, int] = {}
            for i, scores in enumerate(unit_scores):
                bit, counts = 1 << i, self._counted[i]
                for docnum, value in scores.items():
                    score[docnum] = score.get(docnum, 0.0) + value
                    mask[docnum] = mask.get(docnum, 0) | bit
                    if counts:
                        count[docnum] = count.get(docnum, 0) + 1
            if required:
                for docnum in [d for d, m in mask.items() if m & required != required]:
                    del score[docnum], mask[docnum]
                    count.pop(docnum, None)
            total_full += sum(1 for d in score if count.get(d, 0) >= self.min_match)
            found.append((leaf, offset, score, count, mask))
        self.total_full = total_full
        fill_below = (
            max(self.fill_below, QUESTION_FILL_BELOW) if self.fill_below and not self.tiered else self.fill_below
        )
        short = fill_below > 0 and total_full < fill_below
        fill = short
        # Whether the page is filled with documents that are not full matches (only then are scores tiered).
        fill = fill and any(0 < count.get(d, 0) < self.min_match for _, _, score, count, _ in found for d in score)
        leaves: dict[int, tuple[list[int], list[float]]] = {}
        # A question's page is filled with every document its words score in, down to a shared
        # character bigram (a name the segmenter cut differently), ranked after the full matches.
        loose = short and not self.tiered and not required
        fill = fill or (loose and bool(self.extras))
        for leaf, offset, score, count, mask in found:
            kept_set = {d for d in score if count.get(d, 0) >= self.min_match or (fill and count.get(d, 0) > 0)}
            if self.extras and (kept_set or loose):
                bonus: dict[int, float] = {}
                for q in self.extras:
                    _add_scores(bonus, q, leaf, context, weighting)
                if loose:
                    for d in bonus:
                        if d not in score:
                            score[d], mask[d] = 0.0, 0
                    kept_set.update(bonus)
                for d in kept_set:
                    score[d] += bonus.get(d, 0.0)
            kept = sorted(kept_set)
            weights = []
            for d in kept:
                # Without filling, every document kept is a full match: the scores stay plain BM25. A
                # question's page ranks by score alone: its full matches are a count, not a tier (on the
                # question benchmarks, tiers put articles with more words above the one that answers).
                tier = count.get(d, 0) if fill and self.tiered else 0
                weights.append(tier * TIER + score[d])
                self._masks[offset + d] = mask[d]
            leaves[id(leaf.reader())] = (kept, weights)
        self._leaves = leaves


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


def _add_scores(scores: dict[int, float], q: Any, searcher: Any, context: Any, weighting: Any) -> None:
    """Add ``q``'s score in each matching document of this segment to ``scores``."""
    clock = getattr(q, "clock", None)
    if isinstance(q, wq.Term) and isinstance(weighting, CachedBM25F):
        if add_term_scores(scores, q, searcher, weighting, clock):
            return
    m = q.matcher(searcher, context)
    get = scores.get
    while m.is_active():
        docnum = m.id()
        scores[docnum] = get(docnum, 0.0) + m.score()
        m.next()
