"""Compile a parsed query (``indexer.query``) into Whoosh query objects."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, assert_never

from whoosh import query as wq

from ...analysis import han_bigrams, identifier_pieces, subwords
from ...plan import plan_text
from ...query import And, DateRange, Filter, Node, Not, Or, Phrase, Text
from ...schema import CONTENT, CONTENT_BI, DATE, TITLE
from .scoring import AnyTerm

# Weight of the dictionary words inside a long query word, for questions.
SUBWORD_BOOST = 0.3
# Weight of the character-bigram view of the text, for questions.
BIGRAM_BOOST = 0.5
# Extra weight of question words found in the title.
TITLE_BOOST = 0.6
# ``title:`` searches the title; plain words and ``body:`` search title and body together.
FIELD_FOR = {None: CONTENT, "title": TITLE, "body": CONTENT}
BIGRAM_FIELD_FOR = {CONTENT: CONTENT_BI}


def _term(field: str, text: str, boost: float = 1.0) -> Any:
    pieces = identifier_pieces(text)
    if pieces:
        # Python3 also finds "Python 3": the pieces sit at successive positions.
        return wq.Or([wq.Term(field, text, boost=boost), wq.Phrase(field, pieces, boost=boost)])
    return wq.Term(field, text, boost=boost)


def compile_text(node: Text) -> Any | None:
    """A typed chunk: its content terms (all, or for a question any), with adjacency bonuses."""
    plan = plan_text(node.text, node.relaxed)
    if not plan.content:
        return None
    field = FIELD_FOR.get(node.field, CONTENT)
    if len(plan.terms) == 1:
        return _term(field, plan.terms[0])
    terms = [_term(field, t) for t in plan.content]
    if plan.all_required:
        # The words typed side by side rank higher: see plan.rerank_by_proximity.
        return wq.And(terms) if len(terms) > 1 else terms[0]
    # A question: any word may match and BM25 ranks by how many (and how rare).
    # The words inside a long query word (学术研究 → 学术, 研究) and the
    # character bigrams count a little too, which helps where the text was
    # segmented differently from the question.
    extra: list[Any] = []
    if SUBWORD_BOOST > 0:
        extra += [wq.Term(field, sub, boost=SUBWORD_BOOST) for t in plan.content for sub in subwords(t)]
    if TITLE_BOOST > 0 and field == CONTENT:
        # A question names its subject, and the subject is often the title.
        extra += [wq.Term(TITLE, t, boost=TITLE_BOOST) for t in plan.content]
    bigram_field = BIGRAM_FIELD_FOR.get(field)
    if BIGRAM_BOOST > 0 and bigram_field:
        grams = dict.fromkeys(g for t in plan.content for g in han_bigrams(t))
        extra += [wq.Term(bigram_field, g, boost=BIGRAM_BOOST) for g in grams]
    # Word order counts afterwards: see plan.rerank_by_proximity.
    return AnyTerm(terms + extra)


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
        field = FIELD_FOR.get(node.field, CONTENT)
        if len(plan.terms) == 1:
            return _term(field, plan.terms[0])
        return wq.Phrase(field, list(plan.terms))
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
    assert_never(node)


def compile_request_query(node: Node | None) -> Any:
    """The query to run: a lone NOT matches everything else; nothing searchable matches nothing."""
    compiled = compile_node(node)
    if compiled is None:
        return wq.NullQuery
    if isinstance(compiled, wq.Not):
        return wq.AndNot(wq.Every(), compiled.query)
    return compiled
