"""Compiling zhsearch's query tree for Typesense: which documents match, and in which order.

**Queries.** The parsed tree is compiled twice:

- *Which documents match* is an exact boolean ``filter_by`` over the
  ``_terms`` fields: AND, OR, NOT (pushed down to the leaves by De Morgan,
  since Typesense negates only single conditions), field restriction,
  source/tag filters and date ranges all keep Whoosh's meaning. ``total`` and
  facet counts are therefore the same as on Whoosh except where noted below.
- *In which order*: when every word must match, Typesense's own ranking of
  ``q`` (every word, and the quoted phrases and identifiers) over
  ``title_seq,body_seq``, title weighted 2:1, no typos, no prefixes, no
  token dropping, whose best 50 the store reorders by BM25 on their stored
  text (``scoring``). When not every word must match (``OR``, synonyms,
  questions, relaxed queries), Typesense's token dropping would rank by the
  longest run of words from the left, which orders questions almost at
  random; instead the store searches the query's units (``rank_units``, the
  units Whoosh scores) one by one, adds up their IDF, and reorders the best
  50 by BM25 on their stored text (``scoring``). Date order needs no ranking.

Where Typesense cannot say exactly what Whoosh says:

- Typesense's ranking has no IDF and no BM25 length normalisation; scores
  are its ``text_match`` numbers (or zhsearch's IDF sums and BM25, above),
  comparable only within one query. In the IDF merge a document that has only
  words too common to be among any word's best candidates counts in ``total``
  but is not listed.
- ``mode`` is ignored, and so is the filling of a short page: a keyword query lists its full
  matches only (Whoosh continues a page of fewer than 10 with the closest);
  a question lists every document with one of its words, ranked by score, as
  Whoosh does for a question with fewer than 40 full matches. ``total_full``
  is not counted.
- A phrase is exact only where every word must match (it then goes into
  ``q``); under ``OR`` or ``NOT`` it becomes "all of its words" without
  adjacency. ``title:"…"`` checks adjacency in either field (the words are
  still required in the title). A phrase does not match through a sub-word
  (``"开源 大模型"`` does not find 开源文心大模型).
- An identifier with pieces (``python3``) also matches documents that have
  its pieces side by side (``python 3``), through the joined pieces the
  documents hold; one of more than ``JOINED_UP_TO`` pieces needs each
  overlapping run of them, which can (rarely) be found apart.
- Minimum-should-match for long questions is a filter listing every
  combination of the required number of words; when that list would exceed
  ``MAX_COMBINATIONS``, fewer words are required (never more), so a long
  question can match more documents than on Whoosh.
- A source or tag value containing a backtick cannot be written in a
  Typesense filter and matches nothing.
- Typesense 0.24 reads at most ``MAX_FILTER_TOKENS`` conditions, operators
  and parentheses in a filter. Alternatives in one field share one condition
  (``body_terms:=[`a`,`b`]``), so a question of any length fits; about 17
  separate words or filters that must all match do not, and are refused with
  a ``QueryError`` that says so.
- ``size_bytes`` in ``info()`` is the memory the answering node's allocator
  holds (Typesense keeps everything in RAM on every node), not a disk size.
- There is no writer lock: run one ``build``/``add``/``delete`` at a time.
- Reads go to any node, and a follower applies a write milliseconds after
  the leader acknowledged it: a search right after ``add`` may not see the
  document yet on another node (a missing alias or metadata is re-read for
  up to ``REPLICATION_WAIT_S`` before it counts as missing).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import assert_never

from ...analysis import identifier_pieces
from ...errors import QueryError
from ...plan import plan_match, plan_text
from ...query import And, DateRange, Filter, Node, Not, Or, Phrase, Text, positive_texts
from .documents import DATE_FILTER_FIELD, JOINED_UP_TO, MISSING_DATE, TEXT_FIELDS, epoch, joined

FILTER_FIELD = {"source": "source", "tags": "tags"}
# Above this many "k of n words" combinations, a question requires fewer words.
MAX_COMBINATIONS = 128
# Typesense 0.24 answers "Filter expression is not valid." to a filter of more than 100 conditions,
# operators and parentheses (measured: 50 conditions OR'd pass, 51 fail; 16 groups of two pass, 17 fail).
MAX_FILTER_TOKENS = 100


# -- filter expressions --------------------------------------------------------


@dataclass(frozen=True)
class _Atom:
    """One Typesense condition, e.g. ``body_terms:=[`混合`]`` or ``date:>=1700000000``."""

    field: str
    op: str
    value: str

    def render(self) -> str:
        """The filter_by text."""
        if self.op in ("=", "!="):
            return f"{self.field}:{self.op}[`{self.value}`]"
        return f"{self.field}:{self.op}{self.value}"

    def negate(self) -> _Atom:
        """The condition that holds exactly when this one does not."""
        opposite = {"=": "!=", "!=": "=", ">=": "<", "<": ">=", ">": "<=", "<=": ">"}
        return _Atom(self.field, opposite[self.op], self.value)


@dataclass(frozen=True)
class _OneOf:
    """Alternatives in one field as one condition: ``body_terms:=[`a`,`b`]``."""

    field: str
    values: tuple[str, ...]

    def render(self) -> str:
        """The filter_by text."""
        return f"{self.field}:=[{','.join(f'`{v}`' for v in self.values)}]"


@dataclass(frozen=True)
class _All:
    children: tuple[Expr, ...]


@dataclass(frozen=True)
class _Any:
    children: tuple[Expr, ...]


Expr = _Atom | _OneOf | _All | _Any | bool


def _all(items: Iterable[Expr]) -> Expr:
    kept: list[Expr] = []
    for item in items:
        if item is False:
            return False
        if item is True:
            continue
        kept.extend(item.children if isinstance(item, _All) else (item,))
    if not kept:
        return True
    return kept[0] if len(kept) == 1 else _All(tuple(dict.fromkeys(kept)))


def _any(items: Iterable[Expr]) -> Expr:
    kept: list[Expr] = []
    for item in items:
        if item is True:
            return True
        if item is False:
            continue
        kept.extend(item.children if isinstance(item, _Any) else (item,))
    if not kept:
        return False
    return kept[0] if len(kept) == 1 else _Any(tuple(dict.fromkeys(kept)))


def _negate(expr: Expr) -> Expr:
    # Typesense has no NOT over a group, so push it down to the conditions (De Morgan).
    if isinstance(expr, bool):
        return not expr
    if isinstance(expr, _Atom):
        return expr.negate()
    if isinstance(expr, _OneOf):
        return _all(_Atom(expr.field, "!=", v) for v in expr.values)
    if isinstance(expr, _All):
        return _any(_negate(c) for c in expr.children)
    return _all(_negate(c) for c in expr.children)


def _shared(expr: Expr) -> Expr:
    """The same condition with each OR's equalities in one field joined into one ``_OneOf``."""
    if not isinstance(expr, _All | _Any):
        return expr
    children = [_shared(c) for c in expr.children]
    if isinstance(expr, _All):
        return _All(tuple(children))
    values: dict[str, list[str]] = {}
    kept: list[Expr] = []
    for child in children:
        if isinstance(child, _Atom) and child.op == "=":
            if child.field not in values:
                values[child.field] = []
                kept.append(_OneOf(child.field, ()))  # its place in the order; filled below
            values[child.field].append(child.value)
        else:
            kept.append(child)
    merged = [
        (
            _OneOf(c.field, tuple(values[c.field]))
            if len(values[c.field]) > 1
            else _Atom(c.field, "=", values[c.field][0])
        )
        if isinstance(c, _OneOf)
        else c
        for c in kept
    ]
    return merged[0] if len(merged) == 1 else _Any(tuple(merged))


def _tokens(expr: Expr) -> int:
    """What Typesense counts against ``MAX_FILTER_TOKENS``: conditions, operators and parentheses."""
    if not isinstance(expr, _All | _Any):
        return 1
    return len(expr.children) - 1 + sum(_tokens(c) + (2 if isinstance(c, _All | _Any) else 0) for c in expr.children)


def _render(expr: Expr) -> str:
    if isinstance(expr, bool):
        # Not reached for the top level (constants are folded before rendering).
        return "id:!=[]" if expr else "id:=[]"
    if isinstance(expr, _Atom | _OneOf):
        return expr.render()
    joiner = " && " if isinstance(expr, _All) else " || "
    return joiner.join(f"({_render(c)})" if isinstance(c, _All | _Any) else _render(c) for c in expr.children)


def render_filter(expr: Expr) -> str:
    """filter_by syntax; groups are parenthesised. Raises ``QueryError`` for one too long for Typesense."""
    shared = _shared(expr)
    if _tokens(shared) > MAX_FILTER_TOKENS:
        raise QueryError(
            "this query has too many separate words and filters for the Typesense backend: "
            f"it allows at most {MAX_FILTER_TOKENS} conditions, operators and parentheses in one search "
            f"and this one needs {_tokens(shared)}; search with fewer words, or join words that belong "
            "together without a space"
        )
    return _render(shared)


def _term_in(fields: tuple[str, ...], term: str) -> Expr:
    if "`" in term:
        return False
    return _any(_Atom(f"{f}_terms", "=", term) for f in fields)


def _term(fields: tuple[str, ...], term: str) -> Expr:
    """A query term; an identifier (x86_64) also matches its pieces side by side (x86 64), as on Whoosh."""
    pieces = identifier_pieces(term)
    plain = _term_in(fields, term)
    if not pieces:
        return plain
    # Its joined pieces, or every overlapping run of JOINED_UP_TO of them for a longer one (see documents).
    runs = [joined(pieces[i : i + JOINED_UP_TO]) for i in range(max(1, len(pieces) - JOINED_UP_TO + 1))]
    return _any([plain, *(_all(_term_in((f,), r) for r in runs) for f in fields)])


def _at_least(k: int, items: list[Expr]) -> Expr:
    n = len(items)
    # Require fewer words rather than send a filter with thousands of alternatives.
    while k > 1 and math.comb(n, k) > MAX_COMBINATIONS:
        k -= 1
    if k >= n:
        return _all(items)
    return _any(_all(combo) for combo in itertools.combinations(items, k))


def _fields(field: str | None) -> tuple[str, ...]:
    return (field,) if field else TEXT_FIELDS


def compile_filter(node: Node | None) -> Expr | None:
    """The exact match condition for a tree; None when nothing in it constrains anything."""
    if node is None:
        return None
    if isinstance(node, Text):
        plan = plan_text(node.text, node.relaxed)
        if not plan.content:
            return None
        fields = _fields(node.field)
        if len(plan.terms) == 1:
            return _term(fields, plan.terms[0])
        return _at_least(plan.min_match, [_term(fields, t) for t in plan.content])
    if isinstance(node, Phrase):
        plan = plan_text(node.text)
        if not plan.terms:
            return None
        fields = _fields(node.field)
        if len(plan.terms) == 1:
            return _term(fields, plan.terms[0])
        # Adjacency is checked by q where it can be (see the module docstring).
        return _any(_all(_term((f,), t) for t in plan.terms) for f in fields)
    if isinstance(node, Filter):
        name = FILTER_FIELD.get(node.field, node.field)
        return False if "`" in node.value else _Atom(name, "=", node.value)
    if isinstance(node, DateRange):
        # Days as written in each article (its offset ignored), as on Whoosh.
        parts: list[Expr] = [_Atom(DATE_FILTER_FIELD, ">", str(MISSING_DATE))]
        if node.start is not None:
            parts.append(_Atom(DATE_FILTER_FIELD, ">=", str(epoch(node.start))))
        if node.end is not None:
            parts.append(_Atom(DATE_FILTER_FIELD, "<", str(epoch(node.end))))
        return _all(parts)
    if isinstance(node, Not):
        child = compile_filter(node.child)
        return _negate(child) if child is not None else None
    if isinstance(node, Or):
        options = [c for c in (compile_filter(child) for child in node.children) if c is not None]
        return _any(options) if options else None
    if isinstance(node, And):
        compiled = [c for c in (compile_filter(child) for child in node.children) if c is not None]
        return _all(compiled) if compiled else None
    assert_never(node)


# -- ranking query --------------------------------------------------------------


@dataclass(frozen=True)
class RankQuery:
    """What goes into Typesense's ``q``: words (or phrases) and whether words may be dropped."""

    words: tuple[str, ...]
    phrases: tuple[tuple[str, ...], ...]
    strict: bool


def _q_tokens(term: str) -> list[str]:
    # The _seq fields hold an identifier's pieces at successive positions.
    return identifier_pieces(term) or [term]


def _all_required(node: Node | None) -> bool:
    """True when every positive word is required: only ANDs above it, no OR, no partial matching."""
    if node is None or isinstance(node, Filter | DateRange | Not):
        return True
    if isinstance(node, Text):
        return plan_text(node.text, node.relaxed).all_required
    if isinstance(node, Phrase):
        return True
    if isinstance(node, And):
        return all(_all_required(c) for c in node.children)
    return not positive_texts(node)


def q_form(terms: tuple[str, ...]) -> str:
    """Typesense ``q`` for terms that must stand side by side: one token, or a quoted phrase of the tokens.

    An identifier is the phrase of its pieces (``x86_64`` → ``"x 86 64"``),
    which the ``_seq`` fields hold side by side for the identifier as written
    and for ``x86 64``, as Whoosh's phrase of its pieces finds both.
    """
    tokens = [t for term in terms for t in _q_tokens(term)]
    return tokens[0] if len(tokens) == 1 else '"' + " ".join(tokens) + '"'


@dataclass(frozen=True)
class RankUnit:
    """One thing a query asks for: the ways it may be written (terms side by side), as typed first."""

    label: str
    forms: tuple[tuple[str, ...], ...]
    # Counts toward a full match (a question's lone characters only add to the score).
    counts: bool = True


def rank_units(node: Node | None, mode: str = "auto") -> tuple[tuple[RankUnit, ...], bool]:
    """The units to rank by, those Whoosh scores (``indexer.plan.plan_match``), and whether it is a question.

    A question's informative words, a name typed as single characters (one
    phrase), a run typed without spaces (its pieces side by side), an
    identifier (its pieces side by side), each with its other regional forms.
    """
    plan = plan_match(positive_texts(node), mode)
    return tuple(RankUnit(u.label, u.forms, u.counts) for u in plan.units), plan.question


def rank_query(node: Node | None) -> RankQuery:
    """The words to rank by, and whether Typesense must find all of them."""
    strict = _all_required(node)
    words: list[str] = []
    phrases: list[tuple[str, ...]] = []
    for item in positive_texts(node):
        if isinstance(item, Phrase):
            plan = plan_text(item.text)
            tokens = tuple(t for term in plan.terms for t in _q_tokens(term))
            if strict and len(tokens) > 1:
                phrases.append(tokens)
                continue
            words.extend(t for term in plan.content for t in _q_tokens(term))
            continue
        plan = plan_text(item.text, item.relaxed)
        chosen = plan.terms if len(plan.terms) == 1 else plan.content
        for term in chosen:
            pieces = tuple(_q_tokens(term))
            if strict and len(pieces) > 1:
                # An identifier's pieces side by side, as the filter requires them.
                phrases.append(pieces)
            else:
                words.extend(pieces)
    return RankQuery(tuple(dict.fromkeys(words)), tuple(dict.fromkeys(phrases)), strict)
