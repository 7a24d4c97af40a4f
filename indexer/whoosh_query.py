"""Compile a parsed query (``indexer.query``) into Whoosh query objects."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from whoosh import query as wq

from .analysis import identifier_pieces
from .plan import plan_text
from .query import And, DateRange, Filter, Node, Not, Or, Phrase, Text
from .schema import BODY, DATE, SEARCH_FIELDS, TITLE

# An exact run of the typed words scores on top of the words themselves.
PHRASE_BOOST = 2.0
# For questions, adjacent pairs of words matching in order add a little.
PAIR_BOOST = 0.25
# Longer runs are questions, where the full phrase almost never occurs.
MAX_PHRASE_TERMS = 6


# A title match says more about what an article is about than a body match.
FIELD_BOOSTS = {TITLE: 1.0, BODY: 1.0}


def _fields(field: str | None) -> tuple[str, ...]:
    return (field,) if field else SEARCH_FIELDS


def _term(fields: tuple[str, ...], text: str) -> Any:
    pieces = identifier_pieces(text)
    if pieces:
        # Python3 also finds "Python 3": the pieces sit at successive positions.
        return wq.Or([_plain_term(fields, text), _phrase(fields, pieces)])
    return _plain_term(fields, text)


def _plain_term(fields: tuple[str, ...], text: str) -> Any:
    if len(fields) == 1:
        return wq.Term(fields[0], text, boost=FIELD_BOOSTS[fields[0]])
    return wq.Or([wq.Term(f, text, boost=FIELD_BOOSTS[f]) for f in fields])


def _phrase(fields: tuple[str, ...], terms: list[str], boost: float = 1.0) -> Any:
    if len(fields) == 1:
        return wq.Phrase(fields[0], terms, boost=boost * FIELD_BOOSTS[fields[0]])
    return wq.Or([wq.Phrase(f, terms, boost=boost * FIELD_BOOSTS[f]) for f in fields])


def compile_text(node: Text) -> Any | None:
    """A typed chunk: its content terms (all or most of them), with an adjacency bonus."""
    plan = plan_text(node.text, node.relaxed)
    if not plan.content:
        return None
    fields = _fields(node.field)
    if len(plan.terms) == 1:
        return _term(fields, plan.terms[0])
    terms = [_term(fields, t) for t in plan.content]
    if plan.all_required:
        core = wq.And(terms) if len(terms) > 1 else terms[0]
    else:
        core = wq.Or(terms)
    if len(plan.terms) <= MAX_PHRASE_TERMS:
        bonus = _phrase(fields, list(plan.terms), boost=PHRASE_BOOST)
    else:
        pairs = [
            _phrase(fields, [a, b], boost=PAIR_BOOST)
            for a, b in zip(plan.terms, plan.terms[1:], strict=False)
            if a in plan.content and b in plan.content
        ]
        if not pairs:
            return core
        bonus = wq.Or(pairs)
    return wq.AndMaybe(core, bonus)


def compile_node(node: Node | None) -> Any | None:
    """The Whoosh query for a tree; None when nothing in it can match anything."""
    if node is None:
        return None
    if isinstance(node, Text):
        return compile_text(node)
    if isinstance(node, Phrase):
        plan = plan_text(node.text)
        if not plan.terms:
            return None
        fields = _fields(node.field)
        if len(plan.terms) == 1:
            return _term(fields, plan.terms[0])
        return _phrase(fields, list(plan.terms))
    if isinstance(node, Filter):
        return wq.Term(node.field, node.value)
    if isinstance(node, DateRange):
        # Whoosh's DateRange end is inclusive; ours is exclusive.
        end = node.end - timedelta(microseconds=1) if node.end else None
        return wq.DateRange(DATE, node.start, end)
    if isinstance(node, Not):
        child = compile_node(node.child)
        return wq.Not(child) if child is not None else None
    if isinstance(node, Or):
        options = [q for q in (compile_node(c) for c in node.children) if q is not None]
        if not options:
            return None
        return options[0] if len(options) == 1 else wq.Or(options)
    if isinstance(node, And):
        positive: list[Any] = []
        negative: list[Any] = []
        for child in node.children:
            if isinstance(child, Not):
                compiled = compile_node(child.child)
                if compiled is not None:
                    negative.append(compiled)
            else:
                compiled = compile_node(child)
                if compiled is not None:
                    positive.append(compiled)
        if not positive and not negative:
            return None
        core = positive[0] if len(positive) == 1 else wq.And(positive) if positive else wq.Every()
        if negative:
            return wq.AndNot(core, negative[0] if len(negative) == 1 else wq.Or(negative))
        return core
    raise TypeError(f"unknown query node {node!r}")


def compile_request_query(node: Node | None) -> Any:
    """The query to run: a lone NOT matches everything else; nothing searchable matches nothing."""
    compiled = compile_node(node)
    if compiled is None:
        return wq.NullQuery
    if isinstance(compiled, wq.Not):
        return wq.AndNot(wq.Every(), compiled.query)
    return compiled
