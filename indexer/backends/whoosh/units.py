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
import heapq
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from whoosh import query as wq
from whoosh.matching import ListMatcher, NullMatcher, WrappingMatcher

from ...plan import QUESTION_FILL_BELOW
from .scoring import CachedBM25F, add_term_scores, term_ids, term_scores

# A unit written another way than typed (软体 for 软件, the other region's word) scores this much of
# the same match as typed: the word as typed is the surer sign of what the user meant.
OTHER_FORM_WEIGHT = 0.8
# A question's words found in more than this share of the documents only add to the score.
COMMON_SHARE = 0.2
# A question's common words and extras are read for at most this many documents (or 40 × the page's
# depth): those with the best scores from its informative words (see MatchUnits._score_rest).
RESCORE_CAP = 2000
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
        self._leaves: dict[int, tuple[Sequence[int], Sequence[float]]] | None = None
        # Per segment, in docnum order: its offset and each unit's scores (which units a document has).
        self._unit_leaves: list[tuple[int, list[dict[int, float]]]] = []
        # Per segment, in docnum order: its offset, the documents kept and their collected scores.
        self._ranked: list[tuple[int, Sequence[int], Sequence[float]]] = []
        # Per segment: its offset and how many counted units each document has.
        self._counts: list[tuple[int, Counter[int]]] = []
        # Set by the store when it reads only the best ``limit`` (with no filter to apply after): the
        # documents that cannot reach them need not be scored in full.
        self.limit: int | None = None
        self.total_full = 0
        # True when every document kept is a full match (a query of one word): nothing to count.
        self._all_full = False

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
        if self._all_full:
            return ()
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
        leaf_list = list(top.leaf_searchers())
        if self._prepare_one_word(leaf_list, weighting):
            return
        # Each unit's scores per segment; a question's common words are scored later, and only where needed.
        unit_scores: list[list[dict[int, float]]] = [[{} for _ in self.units] for _ in leaf_list]
        scored = [False] * len(self.units)
        if self.question_min_match is None:
            self._score_keywords(leaf_list, context, weighting, unit_scores, scored)
        frequencies = []
        for i, unit in enumerate(self.units):
            if scored[i]:
                frequencies.append(sum(len(per_unit[i]) for per_unit in unit_scores))
                continue
            term = _plain_term(unit) if self.question_min_match is not None else None
            if term is not None and not top.reader().has_deletions():
                frequencies.append(_doc_frequency(top, term))
                continue
            for per_unit, (leaf, _) in zip(unit_scores, leaf_list, strict=True):
                per_unit[i] = _unit_scores(unit, leaf, context, weighting)
            scored[i] = True
            frequencies.append(sum(len(per_unit[i]) for per_unit in unit_scores))
        self._choose_counted(top, frequencies)
        # What makes a document a match is scored everywhere; a question's common words only add to the
        # scores of the documents matched otherwise (as Elasticsearch's common terms query does).
        later = [i for i, u in enumerate(self.units) if not (self._counted[i] or u.required)]
        for i, unit in enumerate(self.units):
            if not scored[i] and i not in later:
                for per_unit, (leaf, _) in zip(unit_scores, leaf_list, strict=True):
                    per_unit[i] = _unit_scores(unit, leaf, context, weighting)
        common = COMMON_SHARE * max(1, top.doc_count())
        # A question with informative words is not filled with documents that only share a common
        # word's character bigram (系统 in a Linux collection): those are scored like common words.
        split = bool(later) or any(not c for c, u in zip(self._counted, self.units, strict=True) if u.counts)
        rare_extras = [q for q in self.extras if not split or not _is_common(top, q, common)]
        min_match = self.min_match
        found: list[tuple[Any, int, dict[int, float], Counter[int], list[dict[int, float]]]] = []
        total_full = 0
        for (leaf, offset), leaf_units in zip(leaf_list, unit_scores, strict=True):
            # Set and Counter operations run in C; a question of common words has a score per document
            # for hundreds of thousands of documents.
            score: dict[int, float] = {}
            for i, scores in enumerate(leaf_units):
                if i in later:
                    continue
                if not score:
                    score = dict(scores)  # 0.0 + x is x: the sums are the same to the last bit
                    continue
                get = score.get
                for docnum, value in scores.items():
                    score[docnum] = get(docnum, 0.0) + value
            count: Counter[int] = Counter()
            for counts, scores in zip(self._counted, leaf_units, strict=True):
                if counts:
                    count.update(scores.keys())
            if required:
                allowed = set(leaf_units[required[0]]).intersection(*(leaf_units[i].keys() for i in required[1:]))
                for docnum in score.keys() - allowed:
                    del score[docnum]
                    count.pop(docnum, None)
            if min_match <= 0:
                total_full += len(score)
            elif min_match == 1:
                total_full += len(count)  # every document counted has a unit
            else:
                total_full += sum(1 for c in count.values() if c >= min_match)
            found.append((leaf, offset, score, count, leaf_units))
            self._unit_leaves.append((offset, leaf_units))
            self._counts.append((offset, count))
        self.total_full = total_full
        fill_below = (
            max(self.fill_below, QUESTION_FILL_BELOW) if self.fill_below and not self.tiered else self.fill_below
        )
        short = fill_below > 0 and total_full < fill_below
        fill = short
        # Whether the page is filled with documents that are not full matches (only then are scores tiered).
        fill = fill and any(0 < c < min_match for _, _, _, count, _ in found for c in count.values())
        # A question's page is filled with every document its informative words score in, down to a
        # shared character bigram (a name the segmenter cut differently), ranked after the full matches.
        loose = short and not self.tiered and not required
        fill = fill or (loose and bool(self.extras))
        staged = []
        for leaf, offset, score, count, leaf_units in found:
            if min_match <= 0:
                kept_set = set(score)
            elif fill or min_match == 1:
                kept_set = set(count)
            else:
                kept_set = {d for d, c in count.items() if c >= min_match}
            bonus: dict[int, float] = {}
            scored_extras: list[Any] = []
            if loose and rare_extras:
                # Their documents are kept (read in C from the words' document lists); their scores
                # are added below, for the documents that can reach the page.
                lists = [_term_ids(q, leaf, weighting) for q in rare_extras]
                if all(ids is not None for ids in lists):
                    for ids in lists:
                        kept_set.update(ids)
                else:
                    for q in rare_extras:
                        _add_scores(bonus, q, leaf, context, weighting)
                    kept_set.update(bonus)
                    scored_extras = rare_extras
            staged.append((leaf, offset, score, count, leaf_units, kept_set, bonus, scored_extras))
        tiered = fill and self.tiered
        self._score_rest(top, context, weighting, staged, later, tiered)
        leaves: dict[int, tuple[Sequence[int], Sequence[float]]] = {}
        for leaf, offset, score, count, _, kept_set, bonus, _ in staged:
            # A document kept through an extra alone has no score of its own: 0.0 (0.0 + x is x).
            for d, value in bonus.items():
                score[d] = score.get(d, 0.0) + value
            kept = sorted(kept_set)
            if tiered:
                # Without filling, every document kept is a full match: the scores stay plain BM25. A
                # question's page ranks by score alone: its full matches are a count, not a tier (on the
                # question benchmarks, tiers put articles with more words above the one that answers).
                weights = [count.get(d, 0) * TIER + score.get(d, 0.0) for d in kept]
            else:
                weights = list(map(score.get, kept, repeat(0.0)))  # in C
            leaves[id(leaf.reader())] = (kept, weights)
            self._ranked.append((offset, kept, weights))
        self._leaves = leaves

    def _prepare_one_word(self, leaf_list: list[tuple[Any, int]], weighting: Any) -> bool:
        """A keyword query of one word written one way (Linux, title:Linux), prepared from its postings.

        Its documents and scores are the word's list as it is (cached for a
        common word), in docnum order: every one is a full match, so there is
        nothing to add up or count per document. A word in a third of a
        million documents spent most of its search on those steps. False when
        the query is anything else.
        """
        if len(self.units) != 1 or self.extras or self.question_min_match is not None or self.min_match != 1:
            return False
        unit = self.units[0]
        term = _plain_term(unit)
        if not unit.counts or term is None or term.boost != 1.0 or self.boost != 1.0:
            return False
        found = []
        for leaf, offset in leaf_list:
            if term.fieldname not in leaf.schema:
                return False
            try:
                text = leaf.schema[term.fieldname].to_bytes(term.text)
            except ValueError:
                return False
            lists = term_scores(leaf, weighting, term.fieldname, text, getattr(term, "clock", None))
            if lists is None:
                return False
            found.append((leaf, offset, lists))
        leaves: dict[int, tuple[Sequence[int], Sequence[float]]] = {}
        for leaf, offset, (ids, values) in found:
            leaves[id(leaf.reader())] = (ids, values)
            self._ranked.append((offset, ids, values))
        self.total_full = sum(len(ids) for _, _, (ids, _) in found)
        self._all_full = True
        self._leaves = leaves
        return True

    def _score_keywords(
        self,
        leaf_list: list[tuple[Any, int]],
        context: Any,
        weighting: Any,
        unit_scores: list[list[dict[int, float]]],
        scored: list[bool],
    ) -> None:
        """Score a keyword query's phrases (a typed run, an identifier's pieces) where its words all are.

        When every unit is needed for a full match, a phrase is checked only
        in the documents that have the other units: positions are read per
        document, and ``3`` and ``0`` of ``USB 3.0`` are in thousands that
        lack USB. A short page is filled with the closest documents, which
        need the phrase everywhere: then it is scored in full after all.
        """
        counted = [i for i, u in enumerate(self.units) if u.counts]
        phrases = [i for i in counted if not all(isinstance(f, wq.Term) for f in self.units[i].forms)]
        words = [i for i, u in enumerate(self.units) if i not in phrases and (u.counts or u.required)]
        if not phrases or not words or self.min_match < len(counted):
            return
        for i in words:
            for per_unit, (leaf, _) in zip(unit_scores, leaf_list, strict=True):
                per_unit[i] = _unit_scores(self.units[i], leaf, context, weighting)
            scored[i] = True
        full = 0
        withins = []
        for per_unit, (leaf, _) in zip(unit_scores, leaf_list, strict=True):
            within = set(per_unit[words[0]]).intersection(*(per_unit[i].keys() for i in words[1:]))
            for i in phrases:
                per_unit[i] = _unit_scores(self.units[i], leaf, context, weighting, within) if within else {}
                within &= per_unit[i].keys()
            full += len(within)
            withins.append(within)
        if self.fill_below and full < self.fill_below:
            for per_unit, (leaf, _) in zip(unit_scores, leaf_list, strict=True):
                for i in phrases:
                    per_unit[i] = _unit_scores(self.units[i], leaf, context, weighting)
        else:
            # No page to fill: the matches are the documents with every unit, so the words' other
            # documents (Linux's tens of thousands for Linux 4.4) need not be added up and counted.
            for per_unit, within in zip(unit_scores, withins, strict=True):
                for i in words:
                    if len(per_unit[i]) > len(within):
                        per_unit[i] = {d: per_unit[i][d] for d in within}
        for i in phrases:
            scored[i] = True

    def _score_rest(
        self, top: Any, context: Any, weighting: Any, staged: list[Any], later: list[int], tiered: bool
    ) -> None:
        """Add the lists scored only for kept documents: a question's common words, then the extras.

        Only the documents kept need them, and with a ``limit`` only those
        that can still reach the ``limit``-th best score: each list adds at
        most its upper bound (``_upper_bound``), so a document whose score so
        far plus the bounds of all of them is below the ``limit``-th best
        score so far cannot make the page (MaxScore's test). The bounds are
        loose (a title word alone can add 12), so when that leaves more than
        ``RESCORE_CAP`` (or 40 × ``limit``) documents, the lists are read for
        that many with the best scores so far: a candidate cap, as in
        Lucene's rescorers. The others keep the score they have.
        """
        if not later and not self.extras:
            return
        wanted = [item[5] for item in staged]
        total = sum(map(len, wanted))
        limit = self.limit
        if limit is not None and total > limit:
            rest = 0.0
            for i in later:
                rest += max(
                    _upper_bound(f, top, weighting) * (1.0 if n == 0 else OTHER_FORM_WEIGHT)
                    for n, f in enumerate(self.units[i].forms)
                )
            rest += sum(_upper_bound(q, top, weighting) for q in self.extras)
            cap = max(RESCORE_CAP, 40 * limit)
            # The score so far of each kept document that has one (the others, kept through an extra
            # alone, have 0), in parallel lists: a tuple per document cost more than the lists it saves.
            values: list[float] = []
            refs: list[tuple[int, int]] = []
            for n, (_, _, score, count, _, docs, bonus, _) in enumerate(staged):
                have = list(filter(docs.__contains__, score.keys() | bonus.keys() if bonus else score.keys()))
                if tiered or bonus:
                    values += [
                        (count.get(d, 0) * TIER if tiered else 0) + score.get(d, 0.0) + bonus.get(d, 0.0) for d in have
                    ]
                else:
                    values += map(score.__getitem__, have)  # 0 + x is x; in C
                refs += zip(repeat(n), have)
            unscored = total - len(values)
            least = heapq.nlargest(limit, values + [0.0] * min(unscored, limit))[-1]
            # A margin for rounding: a document that could tie is kept.
            least -= 1e-9 * abs(least) + rest * (1 + 1e-9)
            reach = [i for i, value in enumerate(values) if value >= least]
            if len(reach) > cap:
                reach = heapq.nlargest(cap, reach, key=values.__getitem__)
            if len(reach) + (unscored if least <= 0 else 0) < total:
                wanted = [set() for _ in staged]
                for i in reach:
                    n, d = refs[i]
                    wanted[n].add(d)
                room = cap - len(reach)
                if least <= 0 and room > 0:
                    # Those with nothing scored yet can still make the page: the first of them, as far as
                    # the cap allows.
                    for n, (_, _, score, _, _, docs, bonus, _) in enumerate(staged):
                        extra = sorted(d for d in docs if d not in score and d not in bonus)[:room]
                        wanted[n].update(extra)
                        room -= len(extra)
        for item, docs in zip(staged, wanted, strict=True):
            leaf, _, score, _, leaf_units, _, bonus, scored_extras = item
            if not docs:
                continue
            for i in later:
                leaf_units[i] = _unit_scores(self.units[i], leaf, context, weighting, docs)
                get = score.get
                for docnum, value in leaf_units[i].items():
                    score[docnum] = get(docnum, 0.0) + value
            for q in self.extras:
                if q not in scored_extras:
                    _add_scores(bonus, q, leaf, context, weighting, docs)

    def matches(self, top: Any) -> tuple[list[int], list[float]]:
        """Every matching top-level docnum, ascending, and its collected score (tier included)."""
        if self._leaves is None:
            self._prepare(top, None)
        docnums: list[int] = []
        scores: list[float] = []
        for offset, kept, weights in self._ranked:
            docnums.extend(map(offset.__add__, kept) if offset else kept)
            scores.extend(weights)
        return docnums, scores

    @property
    def every_match_full(self) -> bool:
        """True once prepared when every document kept is a full match (a query of one word)."""
        return self._all_full

    def full_matches(self) -> set[int]:
        """The top-level docnums of the full matches (enough counted units), once prepared."""
        if self.min_match <= 0 or self._all_full:
            found: set[int] = set()
            for offset, kept, _ in self._ranked:
                found.update(map(offset.__add__, kept) if offset else kept)
            return found
        return {offset + d for offset, count in self._counts for d, c in count.items() if c >= self.min_match}


def _upper_bound(q: Any, top: Any, weighting: Any) -> float:
    """The most ``q`` can add to a document's score: BM25 of a word tends to idf × (k1 + 1) as it repeats."""
    if isinstance(q, wq.Term):
        if not isinstance(weighting, CachedBM25F):
            return math.inf
        if q.fieldname not in top.schema or not top.schema[q.fieldname].scorable:
            return math.inf
        return float(top.idf(q.fieldname, q.text) * (weighting.K1 + 1) * q.boost)
    if isinstance(q, wq.Phrase):
        # Whoosh's phrase score adds its words' scores, a repeated word each time.
        return float(sum(_upper_bound(wq.Term(q.fieldname, w), top, weighting) for w in q.words) * q.boost)
    if isinstance(q, wq.Or | wq.And):
        return float(sum(_upper_bound(c, top, weighting) for c in q.subqueries) * q.boost)
    return math.inf


def _term_ids(q: Any, searcher: Any, weighting: Any) -> Any:
    """The segment's documents with the term ``q``, ascending; None when they cannot be read that way."""
    if not isinstance(q, wq.Term) or q.fieldname not in searcher.schema:
        return None
    try:
        text = searcher.schema[q.fieldname].to_bytes(q.text)
    except ValueError:
        return None
    return term_ids(searcher, weighting, q.fieldname, text, getattr(q, "clock", None))


def _plain_term(unit: UnitQuery) -> Any | None:
    """The unit's one word, when it is written one way and is a plain term."""
    return unit.forms[0] if len(unit.forms) == 1 and isinstance(unit.forms[0], wq.Term) else None


def _doc_frequency(top: Any, term: Any) -> int:
    try:
        return int(top.doc_frequency(term.fieldname, term.text))
    except (KeyError, ValueError):
        return 0


def _is_common(top: Any, q: Any, common: float) -> bool:
    """True for a plain term in more than ``common`` documents."""
    return isinstance(q, wq.Term) and _doc_frequency(top, q) > common


def _unit_scores(
    unit: UnitQuery, searcher: Any, context: Any, weighting: Any, only: set[int] | None = None
) -> dict[int, float]:
    """A unit's score in each document (of ``only``) that has it: the best of its forms (软件 or 软体, not both)."""
    if len(unit.forms) == 1:
        best: dict[int, float] = {}
        _add_scores(best, unit.forms[0], searcher, context, weighting, only)
        return best
    best = {}
    for i, form in enumerate(unit.forms):
        scores: dict[int, float] = {}
        _add_scores(scores, form, searcher, context, weighting, only)
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
    if only is not None and hasattr(q, "matcher_within"):
        m = q.matcher_within(searcher, context, only)  # a phrase: positions read for ``only`` alone
    elif only is not None and not scores and type(q) is wq.Or and len(q.subqueries) == 2 and q.boost == 1.0:
        # An identifier's written form or its pieces side by side: Whoosh's OR adds the two scores (a + b
        # is b + a to the last bit), so each is scored for ``only`` alone.
        for child in q.subqueries:
            _add_scores(scores, child, searcher, context, weighting, only)
        return
    else:
        m = q.matcher(searcher, context)
    get = scores.get
    while m.is_active():
        docnum = m.id()
        if only is None or docnum in only:
            scores[docnum] = get(docnum, 0.0) + m.score()
        m.next()
