"""Compile a parsed query (``indexer.query``) into Whoosh query objects that keep to a deadline.

Whoosh spends a search's time inside its matchers, not only between the hits
a collector sees: a phrase matcher scans document after document for the
words side by side, in its constructor and between hits, and a
``TimeLimitCollector`` cannot stop that. So every term this module compiles
carries the search's ``Clock`` and its matcher reads the clock every few
hundred steps, raising ``TimeLimit`` wherever the time runs out.

The worst queries also do less work, with the same matches and scores as
Whoosh's own queries: a phrase runs ``ExactPhrase``, which reads each
distinct word's postings once (a phrase of 254 的 reads one posting list, not
254) and checks positions as sets; an AND runs ``AllOf``, which leapfrogs over
a flat list instead of a tree of intersections; and a word or phrase typed
many times is run once, its boost multiplied (``_merge_repeats``).
"""

from __future__ import annotations

import bisect
import copy
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from itertools import accumulate
from pickle import loads
from typing import Any, assert_never

from whoosh import formats, matching
from whoosh import query as wq
from whoosh.searching import TimeLimit
from whoosh.system import _INT_SIZE

from ...analysis import han_bigrams, identifier_pieces, subwords
from ...plan import MatchPlan, plan_match, plan_text, question_min_match
from ...query import And, DateRange, Filter, Node, Not, Or, Phrase, Text
from ...schema import CONTENT, CONTENT_BI, DATE, TITLE
from .scoring import CACHE_MIN_POSTINGS, AnyTerm, SizedLru, TermBlocks, read_block, shared_ids, term_blocks, term_scores
from .units import MatchUnits, UnitQuery

# A phrase start is keyed as docnum << _DOC_SHIFT plus its position (positions in a record stay far below 2**32).
_DOC_SHIFT = 32

# Weight of the dictionary words inside a long query word, for questions.
SUBWORD_BOOST = 0.3
# Weight of the character-bigram view of the text, for questions.
BIGRAM_BOOST = 0.5
# Extra weight of question words found in the title.
TITLE_BOOST = 0.6
# ``title:`` searches the title; plain words and ``body:`` search title and body together.
FIELD_FOR = {None: CONTENT, "title": TITLE, "body": CONTENT}
BIGRAM_FIELD_FOR = {CONTENT: CONTENT_BI}
# Matcher steps (postings advanced, documents tried for a phrase) between two readings of the clock.
CLOCK_EVERY = 256


class Clock:
    """A search's deadline (a ``time.monotonic()`` value), read every ``CLOCK_EVERY`` steps.

    Every matcher of one search counts down the same ``steps``, so reading
    the clock costs one subtraction per step.
    """

    __slots__ = ("deadline", "steps")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        # The first step reads the clock: a search that starts with no time left stops at once.
        self.steps = 1

    def tick(self) -> None:
        """Count one step; raise ``TimeLimit`` when a reading finds the deadline passed."""
        self.steps -= 1
        if self.steps <= 0:
            self.check()

    def check(self) -> None:
        """Read the clock now; raise ``TimeLimit`` once the deadline has passed."""
        self.steps = CLOCK_EVERY
        if time.monotonic() >= self.deadline:
            raise TimeLimit


class _ClockMatcher(matching.WrappingMatcher):  # type: ignore[misc]
    """A term's postings, counting each step (``next``, ``skip_to``) on the search's clock."""

    def __init__(self, child: Any, clock: Clock) -> None:
        super().__init__(child)
        self.clock = clock
        # The calls made for every posting go straight to the child, without a frame of ours.
        self.id, self.is_active, self.weight, self.score = child.id, child.is_active, child.weight, child.score

    def copy(self) -> _ClockMatcher:
        return _ClockMatcher(self.child.copy(), self.clock)

    def _replacement(self, newchild: Any) -> _ClockMatcher:
        return _ClockMatcher(newchild, self.clock)

    def next(self) -> Any:
        clock = self.clock
        clock.steps -= 1
        if clock.steps <= 0:
            clock.check()
        return self.child.next()

    def skip_to(self, id: int) -> Any:
        clock = self.clock
        clock.steps -= 1
        if clock.steps <= 0:
            clock.check()
        return self.child.skip_to(id)

    def all_ids(self) -> Iterator[int]:
        clock = self.clock
        for docnum in self.child.all_ids():
            clock.tick()
            yield docnum


class TimedTerm(wq.Term):  # type: ignore[misc]
    """A ``Term`` whose matcher counts its steps on ``clock`` (none: a plain ``Term``)."""

    def __init__(self, fieldname: str, text: str, boost: float = 1.0, clock: Clock | None = None) -> None:
        super().__init__(fieldname, text, boost=boost)
        self.clock = clock

    def matcher(self, searcher: Any, context: Any = None) -> Any:
        m = super().matcher(searcher, context)
        if self.clock is None or not m.is_active():
            return m
        return _ClockMatcher(m, self.clock)


class ExactPhrase(wq.Phrase):  # type: ignore[misc]
    """The words at successive positions: Whoosh's ``Phrase`` (slop 1), matched in bounded work.

    Matches and scores are those of ``Phrase`` (a document's score is the sum
    of the phrase's words' scores, a repeated word counted each time). Whoosh
    builds one posting reader per word of the phrase and a tree of
    intersections over them, and checks positions through ``Span`` objects;
    here each distinct word is read once, the documents that hold them all
    are found by leapfrogging from the rarest, and positions are checked as
    sets, starting with the word that occurs least in the document.
    """

    def __init__(self, fieldname: str, words: list[str], boost: float = 1.0, clock: Clock | None = None) -> None:
        super().__init__(fieldname, words, boost=boost)
        self.clock = clock

    def normalize(self) -> Any:
        return self if len(self.words) > 1 else super().normalize()

    def matcher(self, searcher: Any, context: Any = None) -> Any:
        return self.matcher_within(searcher, context, None)

    def matcher_within(self, searcher: Any, context: Any, only: set[int] | None) -> Any:
        """The phrase's matcher; with ``only``, it may leave out documents not in it (checking fewer)."""
        fieldname = self.fieldname
        if fieldname not in searcher.schema or not self.words:
            return matching.NullMatcher()
        field = searcher.schema[fieldname]
        if not field.format or not field.format.supports("positions"):
            return super().matcher(searcher, context)  # Whoosh's own answer (an error)
        reader = searcher.reader()
        distinct = list(dict.fromkeys(self.words))
        frequency: dict[str, int] = {}
        for word in distinct:
            try:
                btext = field.to_bytes(word)
            except ValueError:
                return matching.NullMatcher()
            if (fieldname, btext) not in reader:
                return matching.NullMatcher()
            frequency[word] = reader.doc_frequency(fieldname, btext)
        # The rarest word leads the leapfrog.
        distinct.sort(key=lambda w: frequency[w])
        candidates = None
        if frequency[distinct[-1]] >= CACHE_MIN_POSTINGS:
            # A common word (的 in 系统的启动速度, the pieces 3 and 0 of USB 3.0) would make the leapfrog
            # read most of its postings blocks: the documents that have every word come from the words'
            # document lists (cached for the common ones) in C, and positions are read for those alone.
            weighting = context.weighting if context is not None else searcher.weighting
            lists = [term_scores(searcher, weighting, fieldname, field.to_bytes(w), self.clock) for w in distinct]
            if all(found is not None for found in lists):
                if only is not None and len(only) < len(lists[0][0]):
                    found = shared_ids(only, [ids for ids, _ in lists])
                else:
                    found = shared_ids(lists[0][0], [ids for ids, _ in lists[1:]])
                    found = found if only is None else found & only
                candidates = sorted(found)
                if not candidates:
                    return matching.NullMatcher()
        index = {w: i for i, w in enumerate(distinct)}
        slots = [index[w] for w in self.words]
        decode = _decode_positions if type(field.format) is formats.Positions else None
        m: Any
        if candidates is not None and decode is not None:
            m = self._listed(searcher, field, distinct, slots, candidates, lists, decode)
        else:
            leaves = [TimedTerm(fieldname, w, clock=self.clock).matcher(searcher, context) for w in distinct]
            if not all(m.is_active() for m in leaves):
                return matching.NullMatcher()
            m = _PhraseMatcher(leaves, slots, self.clock, decode, candidates)
        if self.boost != 1.0:
            m = matching.WrappingMatcher(m, boost=self.boost)
        return m

    def _listed(
        self,
        searcher: Any,
        field: Any,
        distinct: list[str],
        slots: list[int],
        candidates: list[int],
        lists: list[Any],
        decode: Callable[[bytes], Iterable[int]],
    ) -> Any:
        """The phrase's documents among ``candidates`` and their scores, each word's blocks read once.

        Each place of the phrase (a word at an offset) says, per document,
        where the phrase would start: ``docnum << 32`` plus the word's
        position minus its offset. The phrase starts where every place
        agrees, so its documents come from one set intersection per place,
        in C, rather than a check per document in Python (several times
        faster with thousands of candidates). Words are read rarest first,
        and each later word only for the documents still in the running.
        The scores are the words' BM25 scores from ``lists`` (the same floats
        their matchers give), added as ``_PhraseMatcher`` adds them.
        """
        reader = searcher.reader()
        clock = self.clock
        counts = [slots.count(i) for i in range(len(distinct))]
        alive = candidates
        starts: set[int] | None = None
        for leaf, word in enumerate(distinct):
            btext = field.to_bytes(word)
            postings = reader.postings(self.fieldname, btext)
            blocks = term_blocks(searcher, self.fieldname, btext)
            cursor = _Cursor(postings.child if reader.deleted_docs_set else postings, blocks)
            offsets = [offset for offset, slot in enumerate(slots) if slot == leaf]
            keys: list[int] = []
            for docnum, value in cursor.values(alive):
                if clock is not None:
                    clock.tick()
                keys.extend(map((docnum << _DOC_SHIFT).__add__, decode(value)))
            present = set(keys)
            for offset in offsets:
                # A word repeated (的的的…) has a place per repetition: once few starts are left, each is
                # looked up rather than every occurrence shifted again.
                if clock is not None:
                    clock.check()
                if starts is None:
                    starts = set(map((-offset).__add__, present)) if offset else present
                elif len(starts) * 4 < len(present):
                    starts = {start for start in starts if start + offset in present}
                else:
                    starts = starts.intersection(map((-offset).__add__, present))
                if not starts:
                    return matching.NullMatcher()
            if leaf < len(distinct) - 1 and starts is not None:
                alive = sorted(set(map(_DOC_SHIFT.__rrshift__, starts)))
        assert starts is not None
        docs = sorted(set(map(_DOC_SHIFT.__rrshift__, starts)))
        weighted = list(zip(counts, lists, strict=True))
        scores = [float(sum(c * found[1][bisect.bisect_left(found[0], d)] for c, found in weighted)) for d in docs]
        return matching.ListMatcher(docs, weights=scores)


class _Cursor:
    """One word's postings read at ascending documents: each block's header read to skip it, its data once.

    With the word's ``TermBlocks`` (a common word), a block already walked
    past by an earlier phrase is reached directly, and a block read lately
    comes decoded from the cache.
    """

    def __init__(self, postings: Any, blocks: TermBlocks | None = None) -> None:
        self._postings = postings
        self._done = not postings.is_active()
        self._blocks = blocks
        self._start = postings._baseoffset  # where the current block starts
        if blocks is not None and not self._done:
            blocks.learn(self._start, postings._maxid)

    def at(self, docnum: int) -> int | None:
        """The document's place in the current block, moving forward to its block; None if it lacks the word."""
        p = self._postings
        if self._done:
            return None
        if p._maxid < docnum:
            blocks = self._blocks
            if blocks is not None:
                # The first known block that can hold docnum, or the last known one to walk on from.
                start = blocks.block_for(docnum)
                if start is not None and start > self._start:
                    self._start = start
                    p._goto(start)
            while p._maxid < docnum:
                if p._lastblock:
                    self._done = True
                    return None
                self._start = p._nextoffset
                p._goto(self._start)
                if blocks is not None:
                    blocks.learn(self._start, p._maxid)
        if p._ids is None:
            self._read()
        i = bisect.bisect_left(p._ids, docnum)
        return i if i < len(p._ids) and p._ids[i] == docnum else None

    def values(self, docnums: Iterable[int]) -> Iterator[tuple[int, bytes]]:
        """Each of ``docnums`` (ascending) that has the word, with its encoded positions."""
        p = self._postings
        ids: Any = None
        for docnum in docnums:
            if ids is None or p._maxid < docnum:
                # Another block (or none left): moved to and read as ``at`` does.
                i = self.at(docnum)
                if self._done:
                    return
                ids = p._ids
                if i is None:
                    continue
            else:
                # In the block already read: a lookup in C, no method call.
                i = bisect.bisect_left(ids, docnum)
                if i == len(ids) or ids[i] != docnum:
                    continue
            if p._values is None:
                p._read_values()
            yield docnum, p._values[i]

    def _read(self) -> None:
        p = self._postings
        blocks = self._blocks
        if blocks is None:
            read_block(p)
            return
        found = blocks.decoded(self._start)
        if found is not None:
            p._ids, p._values = found
            return
        read_block(p)
        p._read_values()
        blocks.keep(self._start, p._ids, p._values)


def _phrase_at(
    weights: list[float],
    positions_of: Callable[[int], set[int]],
    slots: list[int],
    first_offset: list[int],
    counts: list[int],
) -> bool:
    """True when a document has the words at successive positions (see ``_PhraseMatcher._accept``)."""
    # Start from the word that occurs least often here: its positions bound where the phrase can start.
    anchor = min(range(len(weights)), key=weights.__getitem__) if len(weights) > 1 else 0
    positions = {anchor: positions_of(anchor)}
    if len(positions[anchor]) < counts[anchor]:
        return False  # fewer occurrences than the phrase repeats the word
    first = first_offset[anchor]
    starts = positions[anchor] if first == 0 else set(map((-first).__add__, positions[anchor]))
    for offset, leaf in enumerate(slots):
        if offset == first:
            continue
        found = positions.get(leaf)
        if found is None:
            found = positions[leaf] = positions_of(leaf)
            if len(found) < counts[leaf]:
                return False
        if len(starts) > 16:
            # In C while many starts remain (a common word's every occurrence); a new set, not in place.
            starts = starts.intersection(map((-offset).__add__, found))
        else:
            starts = {s for s in starts if s + offset in found}
        if not starts:
            return False
    return True


def _decode_positions(value: bytes) -> Iterator[int]:
    """``formats.Positions.decode_positions`` with the running sum in C: the same positions, several times faster."""
    if not value.endswith(b"."):
        value += b"."
    return accumulate(loads(value[_INT_SIZE:]))


class AllOf(wq.And):  # type: ignore[misc]
    """An AND: Whoosh's ``And`` (same matches, scores summed), matched by leapfrogging over a flat list.

    Whoosh builds a tree of two-way intersections, so every step of a
    document goes up and down the tree; with many words (a query of 85
    common words took seconds to find that nothing has them all) that walk is
    the cost. Here the children are ordered rarest first and each moves
    straight to the document the others are on.
    """

    def __init__(self, subqueries: list[Any], boost: float = 1.0, clock: Clock | None = None) -> None:
        super().__init__(subqueries, boost=boost)
        self.clock = clock

    def _matcher(self, subs: list[Any], searcher: Any, context: Any) -> Any:
        reader = searcher.reader()
        ordered = sorted(subs, key=lambda q: q.estimate_size(reader))
        children = [q.matcher(searcher, context) for q in ordered]
        if not all(m.is_active() for m in children):
            return matching.NullMatcher()
        m: Any = _AllMatcher(children, self.clock)
        if self.boost != 1.0:
            m = matching.WrappingMatcher(m, boost=self.boost)
        return m


class _AllMatcher(matching.Matcher):  # type: ignore[misc]
    """The documents every child matcher holds, found by leapfrogging from the first (the rarest).

    A document's score is the sum of the children's scores, child ``i``
    counted ``counts[i]`` times. Subclasses narrow the documents with
    ``_accept``.
    """

    def __init__(
        self,
        children: list[Any],
        clock: Clock | None,
        counts: list[int] | None = None,
        candidates: list[int] | None = None,
    ) -> None:
        self._children = children
        self._counts = counts or [1] * len(children)
        self._clock = clock
        self._active = True
        # When known, the documents (ascending) that every child holds: visited in turn, no leapfrog.
        self._candidates = candidates
        self._at = 0
        self._find()

    def _accept(self) -> bool:
        """True when the document all children are on is a match."""
        return True

    def _align(self) -> bool:
        """Move the children to the first document at or after the lead's that all hold; False if none."""
        children = self._children
        n = len(children)
        target = max(m.id() for m in children)
        agreed = i = 0
        while agreed < n:
            m = children[i]
            if m.id() < target:
                m.skip_to(target)
                if not m.is_active():
                    return False
            if m.id() > target:
                target, agreed = m.id(), 1
            else:
                agreed += 1
            i = (i + 1) % n
        return True

    def _find(self) -> None:
        """From the children's current documents, move to the first match."""
        clock = self._clock
        if self._candidates is not None:
            candidates, children = self._candidates, self._children
            while self._at < len(candidates):
                if clock is not None:
                    clock.tick()
                docnum = candidates[self._at]
                for m in children:
                    if m.id() < docnum:
                        m.skip_to(docnum)
                if self._accept():
                    return
                self._at += 1
            self._active = False
            return
        lead = self._children[0]
        while True:
            if clock is not None:
                clock.tick()
            if not self._align():
                self._active = False
                return
            if self._accept():
                return
            lead.next()
            if not lead.is_active():
                self._active = False
                return

    def is_active(self) -> bool:
        return self._active

    def id(self) -> int:
        return int(self._children[0].id())

    def next(self) -> None:
        if self._candidates is not None:
            self._at += 1
            self._find()
            return
        lead = self._children[0]
        lead.next()
        if not lead.is_active():
            self._active = False
            return
        self._find()

    def skip_to(self, id: int) -> None:
        if not self._active:
            raise matching.ReadTooFar
        if id <= self.id():
            return
        if self._candidates is not None:
            self._at = bisect.bisect_left(self._candidates, id, self._at)
            self._find()
            return
        for m in self._children:
            if m.id() < id:
                m.skip_to(id)
                if not m.is_active():
                    self._active = False
                    return
        self._find()

    def reset(self) -> None:
        for m in self._children:
            m.reset()
        self._active = True
        self._at = 0
        self._find()

    def copy(self) -> _AllMatcher:
        copied = type(self).__new__(type(self))
        copied.__dict__.update(self.__dict__)
        copied._children = [m.copy() for m in self._children]
        return copied

    def replace(self, minquality: float = 0) -> Any:
        return self if self._active else matching.NullMatcher()

    def children(self) -> list[Any]:
        return list(self._children)

    def supports_block_quality(self) -> bool:
        return False

    def max_quality(self) -> float:
        return float(sum(c * m.max_quality() for c, m in zip(self._counts, self._children, strict=True)))

    def supports(self, astype: str) -> bool:
        return False

    def value(self) -> Any:
        return None

    def value_as(self, astype: str) -> Any:
        raise NotImplementedError(astype)

    def weight(self) -> float:
        return float(sum(c * m.weight() for c, m in zip(self._counts, self._children, strict=True)))

    def score(self) -> float:
        return float(sum(c * m.score() for c, m in zip(self._counts, self._children, strict=True)))


class _PhraseMatcher(_AllMatcher):
    """Documents where the leaves' words stand in the order ``slots`` gives (see ``ExactPhrase``).

    The score counts each word once per time the phrase has it, as Whoosh's ``Phrase`` does.
    """

    def __init__(
        self,
        leaves: list[Any],
        slots: list[int],
        clock: Clock | None,
        decode: Callable[[bytes], Iterable[int]] | None = None,
        candidates: list[int] | None = None,
    ) -> None:
        # slots[i]: the leaf whose word is the phrase's i-th word.
        self._slots = slots
        self._first_offset = [slots.index(i) for i in range(len(leaves))]
        self._decode = decode
        super().__init__(leaves, clock, [slots.count(i) for i in range(len(leaves))], candidates)

    def _positions(self, leaf: int) -> set[int]:
        m = self._children[leaf]
        return set(self._decode(m.value()) if self._decode is not None else m.value_as("positions"))

    def _accept(self) -> bool:
        """True when the current document has the words at successive positions."""
        leaves = self._children
        weights = [m.weight() for m in leaves] if len(leaves) > 1 else [0.0]
        return _phrase_at(weights, self._positions, self._slots, self._first_offset, self._counts)


# Queries whose matcher multiplies every score by ``boost`` (an Or or And of two or more; ``_term`` makes no smaller).
_BOOST_SCALES = (TimedTerm, ExactPhrase, AnyTerm, wq.Or, AllOf)


def _term(field: str, text: str, boost: float = 1.0, clock: Clock | None = None) -> Any:
    pieces = identifier_pieces(text)
    if pieces:
        # Python3 also finds "Python 3": the pieces sit at successive positions.
        return wq.Or(
            [TimedTerm(field, text, boost=boost, clock=clock), ExactPhrase(field, pieces, boost=boost, clock=clock)]
        )
    return TimedTerm(field, text, boost=boost, clock=clock)


def _merge_repeats(queries: list[Any], scored: bool = True) -> list[Any]:
    """Each distinct query once: a repeated one (a1 a1 a1 …) is run once with its boost times its count.

    An AND or OR adds its children's scores, so the scores are the same, and
    a query typed 128 times is read once instead of 128 times. Only queries
    whose boost scales their score are merged; ``scored=False`` (excluded
    queries) drops repeats outright.
    """
    merged: list[Any] = []
    counts: list[int] = []
    for q in queries:
        for i, seen in enumerate(merged):
            if type(seen) is type(q) and seen == q:
                counts[i] += 1
                break
        else:
            merged.append(q)
            counts.append(1)
    out: list[Any] = []
    for q, count in zip(merged, counts, strict=True):
        if count > 1 and scored:
            if not isinstance(q, _BOOST_SCALES):
                out.extend([q] * count)
                continue
            q = copy.copy(q)
            q.boost = q.boost * count
        out.append(q)
    return out


def compile_units(
    items: list[Text | Phrase], clock: Clock | None = None, mode: str = "auto", fill_below: int = 0
) -> MatchUnits | None:
    """Typed words and phrases as units (see ``units``): full matches first, a short page filled when asked."""
    plan = plan_match(items, mode)
    if not plan.units:
        return None
    units = [
        UnitQuery(
            u.label, tuple(_form(FIELD_FOR.get(u.field, CONTENT), f, clock) for f in u.forms), u.required, u.counts
        )
        for u in plan.units
    ]
    extras = _question_extras(plan, clock) if plan.question else []
    rule = question_min_match if plan.question and mode != "all" else None
    return MatchUnits(
        units, plan.min_match, tiered=not plan.question, fill_below=fill_below, extras=extras, question_min_match=rule
    )


def _form(field: str, terms: tuple[str, ...], clock: Clock | None) -> Any:
    return _term(field, terms[0], clock=clock) if len(terms) == 1 else ExactPhrase(field, list(terms), clock=clock)


def _question_extras(plan: MatchPlan, clock: Clock | None) -> list[Any]:
    """What a question's words add to the score, without counting as matches.

    The words inside a long query word (学术研究 → 学术, 研究) and the character
    bigrams count a little, which helps where the text was segmented
    differently from the question; a question names its subject, and the
    subject is often the title.
    """
    extra: list[Any] = []
    words = list(dict.fromkeys((u.field, t) for u in plan.units for t in u.forms[0]))
    for field_name, t in words:
        field = FIELD_FOR.get(field_name, CONTENT)
        if SUBWORD_BOOST > 0:
            extra += [TimedTerm(field, sub, SUBWORD_BOOST, clock) for sub in subwords(t)]
        if TITLE_BOOST > 0 and field == CONTENT:
            extra.append(TimedTerm(TITLE, t, TITLE_BOOST, clock))
    for field_name in dict.fromkeys(f for f, _ in words):
        field = FIELD_FOR.get(field_name, CONTENT)
        bigram_field = BIGRAM_FIELD_FOR.get(field)
        if BIGRAM_BOOST > 0 and bigram_field:
            grams = dict.fromkeys(g for f, t in words if f == field_name for g in han_bigrams(t))
            extra += [TimedTerm(bigram_field, g, BIGRAM_BOOST, clock) for g in grams]
    return extra


def find_units(q: Any) -> MatchUnits | None:
    """The query's top-level units (what ``compile_request_query`` built for its words), if any."""
    if isinstance(q, MatchUnits):
        return q
    if isinstance(q, wq.AndNot):
        return find_units(q.a)
    if isinstance(q, AllOf):
        return next((c for c in q.subqueries if isinstance(c, MatchUnits)), None)
    return None


def compile_node(node: Node | None, clock: Clock | None = None) -> Any | None:
    """The Whoosh query for a tree; None when nothing in it can match anything.

    With a ``clock``, the query's matchers raise ``TimeLimit`` once its deadline has passed.
    """
    if node is None:
        return None
    if isinstance(node, Text):
        # Inside OR or NOT: the words of this chunk, strictly (a full match), with no page to fill.
        return compile_units([node], clock)
    if isinstance(node, Phrase):
        plan = plan_text(node.text)
        if not plan.terms:
            return None
        field = FIELD_FOR.get(node.field, CONTENT)
        if len(plan.terms) == 1:
            return _term(field, plan.terms[0], clock=clock)
        return ExactPhrase(field, list(plan.terms), clock=clock)
    if isinstance(node, Filter):
        return TimedTerm(node.field, node.value, clock=clock)
    if isinstance(node, DateRange):
        if node.end is not None and node.end <= datetime.min:
            return wq.NullQuery  # ends before the calendar starts: nothing is in it
        # Whoosh's DateRange end is inclusive; ours is exclusive.
        end = node.end - timedelta(microseconds=1) if node.end else None
        return wq.DateRange(DATE, node.start, end)
    if isinstance(node, Not):
        child = compile_node(node.child, clock)
        return wq.Not(child) if child is not None else None
    if isinstance(node, Or):
        options = _merge_repeats([q for q in (compile_node(c, clock) for c in node.children) if q is not None])
        if not options:
            return None
        if len(options) > 1 and all(isinstance(q, TimedTerm) for q in options):
            # Single words OR'd, as a relaxed retry of many words runs: scored a term at a time.
            return AnyTerm(options, clock=clock)
        return options[0] if len(options) == 1 else wq.Or(options)
    if isinstance(node, And):
        positive: list[Any] = []
        negative: list[Any] = []
        for child in node.children:
            if isinstance(child, Not):
                compiled = compile_node(child.child, clock)
                if compiled is not None:
                    negative.append(compiled)
            else:
                compiled = compile_node(child, clock)
                if compiled is not None:
                    positive.append(compiled)
        if not positive and not negative:
            return None
        positive, negative = _merge_repeats(positive), _merge_repeats(negative, scored=False)
        core = positive[0] if len(positive) == 1 else AllOf(positive, clock=clock) if positive else wq.Every()
        if negative:
            return wq.AndNot(core, negative[0] if len(negative) == 1 else wq.Or(negative))
        return core
    assert_never(node)


def compile_request_query(
    node: Node | None, deadline: float | None = None, mode: str = "auto", fill_below: int = 0
) -> Any:
    """The query to run: a lone NOT matches everything else; nothing searchable matches nothing.

    The words and phrases at the top of the query (not inside OR or NOT) are
    one set of units (``compile_units``): with ``fill_below``, fewer full
    matches than that fill up with the closest. With a ``deadline`` (a
    ``time.monotonic()`` value), running the query raises ``TimeLimit`` once
    it has passed, wherever the matchers are.
    """
    clock = Clock(deadline) if deadline is not None else None
    children = node.children if isinstance(node, And) else (node,) if node is not None else ()
    words = [c for c in children if isinstance(c, Text | Phrase)]
    if not words:
        compiled = compile_node(node, clock)
    else:
        units = compile_units(words, clock, mode, fill_below if mode == "auto" else 0)
        rest = [c for c in children if not isinstance(c, Text | Phrase)]
        if units is None:
            compiled = compile_node(_and(rest), clock) if rest else None
        elif not rest:
            compiled = units
        else:
            others = compile_node(_and(rest), clock)
            compiled = _with(units, others)
    if compiled is None:
        return wq.NullQuery
    if isinstance(compiled, wq.Not):
        return wq.AndNot(wq.Every(), compiled.query)
    return compiled


def _and(nodes: Sequence[Node]) -> Node:
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def _with(units: MatchUnits, others: Any | None) -> Any:
    """The units, narrowed by the rest of the query (filters, dates, ORs, exclusions)."""
    if others is None:
        return units
    if isinstance(others, wq.Not):
        return wq.AndNot(units, others.query)
    if isinstance(others, wq.AndNot) and isinstance(others.a, wq.Every):
        return wq.AndNot(units, others.b)
    if isinstance(others, wq.AndNot):
        return wq.AndNot(AllOf([units, others.a]), others.b)
    return AllOf([units, others])


def units_and_filters(q: Any, schema: Any) -> tuple[MatchUnits, list[Any], list[Any]] | None:
    """Split a compiled query into its units, the filters it must pass and the queries it must not match.

    None when anything else adds to the score (an OR of words beside the
    units, say): only then must Whoosh's matchers run the whole query.
    Filters (a source, a tag, a date range) add a constant to the score in
    Whoosh, which orders nothing; they are left out of the score here.
    """
    if isinstance(q, MatchUnits):
        return (q, [], []) if q.boost == 1.0 else None
    if isinstance(q, wq.AndNot):
        split = units_and_filters(q.a, schema)
        return (split[0], split[1], [*split[2], q.b]) if split is not None else None
    if isinstance(q, AllOf):
        units = [c for c in q.subqueries if isinstance(c, MatchUnits)]
        others = [c for c in q.subqueries if not isinstance(c, MatchUnits)]
        if len(units) == 1 and units[0].boost == 1.0 and q.boost == 1.0 and all(_is_filter(c, schema) for c in others):
            return units[0], others, []
    return None


def _is_filter(q: Any, schema: Any) -> bool:
    if q is wq.NullQuery or isinstance(q, wq.NumericRange):
        return True
    if isinstance(q, wq.Term):
        return q.fieldname in schema and not schema[q.fieldname].scorable
    if isinstance(q, wq.And | wq.Or):
        return all(_is_filter(c, schema) for c in q.subqueries)
    return False


# A filter's documents (a date range is hundreds of terms; title:Linux a list of hundreds of thousands
# at 1,000,000 documents) are kept for the life of the searcher, as Lucene's query cache keeps filters:
# at most FILTER_CACHE_DOCS document numbers over FILTER_CACHE_ENTRIES filters, 4 bytes each, the least
# recently used dropped first.
FILTER_CACHE_DOCS = 4_000_000
FILTER_CACHE_ENTRIES = 256
_FILTER_CACHE_ATTR = "_zhsearch_filters"


def filter_docs(q: Any, searcher: Any) -> set[int]:
    """``matching_docs`` of a filter or an excluded query, kept on the top searcher for the next search."""
    if isinstance(q, MatchUnits):
        return matching_docs(q, searcher)
    cache = searcher.__dict__.get(_FILTER_CACHE_ATTR)
    if cache is None:
        cache = searcher.__dict__[_FILTER_CACHE_ATTR] = SizedLru(FILTER_CACHE_DOCS, len, FILTER_CACHE_ENTRIES)
    key = repr(q)
    found = cache.get(key)
    if found is not None:
        return set(found)
    docs = matching_docs(q, searcher)
    if len(docs) <= FILTER_CACHE_DOCS:
        cache.put(key, array("i", sorted(docs)))
    return docs


def matching_docs(q: Any, searcher: Any) -> set[int]:
    """Every top-level docnum that ``q`` matches: terms read a postings block at a time, the rest by Whoosh.

    A date range is an OR of hundreds of terms, which Whoosh's union
    matchers walk one posting and several method calls at a time.
    """
    if q is wq.NullQuery:
        return set()
    if isinstance(q, MatchUnits):
        return set(q.matches(searcher)[0])
    if isinstance(q, wq.NumericRange):
        return matching_docs(q.simplify(searcher.reader()), searcher)
    if isinstance(q, wq.ConstantScoreQuery):
        return matching_docs(q.child, searcher)
    if isinstance(q, wq.Or):
        found: set[int] = set()
        for child in q.subqueries:
            found |= matching_docs(child, searcher)
        return found
    if isinstance(q, wq.And) and q.subqueries:
        first, *rest = (matching_docs(child, searcher) for child in q.subqueries)
        return first.intersection(*rest)
    if isinstance(q, wq.MultiTerm):
        reader = searcher.reader()
        terms: set[int] = set()
        for text in q._btexts(reader):
            terms |= _term_docs(wq.Term(q.fieldname, text), searcher)
        return terms
    if isinstance(q, wq.Term) and not isinstance(q.text, str):
        return _term_docs(q, searcher)
    if isinstance(q, wq.Term):
        try:
            text = searcher.schema[q.fieldname].to_bytes(q.text)
        except (KeyError, ValueError):
            return set()
        return _term_docs(wq.Term(q.fieldname, text), searcher)
    # Segment by segment: a query's matchers are made for one segment's searcher.
    return set(searcher.docs_for_query(q))


def _term_docs(q: Any, searcher: Any) -> set[int]:
    found: set[int] = set()
    for leaf, offset in searcher.leaf_searchers():
        reader = leaf.reader()
        if (q.fieldname, q.text) not in reader:
            continue
        postings = reader.postings(q.fieldname, q.text)
        deleted = reader.deleted_docs_set
        if deleted:
            postings = postings.child
        local: set[int] = set()
        if hasattr(postings, "_read_ids"):
            while postings.is_active():
                read_block(postings)
                local.update(postings._ids)
                postings._next_block()
        else:
            local.update(postings.all_ids())
        local -= deleted or set()
        found.update(map(offset.__add__, local) if offset else local)
    return found
