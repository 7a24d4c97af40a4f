"""Re-ranking after the search: the best hits reordered by how close the query's words sit.

The store ranks by BM25; this step looks at the stored text of the best few
dozen hits only, so it needs no positions from any backend.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .analysis import folded_pattern
from .plan import plan_text
from .query import Node, Text, positive_texts
from .store import RawHit

# How much a question's score grows when all its adjacent word pairs occur
# side by side in a document (proportionally for some of them).
PROXIMITY_WEIGHT = 0.3
# How much a keyword chunk's score grows when the document has the chunk as
# typed (混合专家 rather than 混合 ... 专家).
EXACT_RUN_WEIGHT = 1.0
# Longer runs are questions, where the whole run almost never occurs.
MAX_RUN_TERMS = 6


@dataclass(frozen=True)
class Proximity:
    """What the best hits are checked for: a question's word pairs and keyword chunks as typed.

    Each is a joined string of Chinese query terms, found in a document when
    it occurs in the document's folded text; that needs no positions.
    """

    pairs: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.pairs or self.runs)


def proximity(node: Node | None) -> Proximity:
    """The word pairs of the question-like chunks and the runs of the keyword chunks in ``node``.

    Only Chinese words count: spacing between Latin words varies, and an
    identifier is already matched whole.
    """
    pairs: list[str] = []
    runs: list[str] = []
    for item in positive_texts(node):
        if not isinstance(item, Text):
            continue
        plan = plan_text(item.text, item.relaxed)
        if plan.all_required:
            if 1 < len(plan.terms) <= MAX_RUN_TERMS and not any(t.isascii() for t in plan.terms):
                runs.append("".join(plan.terms))
            continue
        for a, b in zip(plan.terms, plan.terms[1:], strict=False):
            if a in plan.content and b in plan.content and not (a.isascii() or b.isascii()):
                pairs.append(a + b)
    return Proximity(tuple(dict.fromkeys(pairs)), tuple(dict.fromkeys(runs)))


def rerank_by_proximity(hits: list[RawHit], near: Proximity) -> list[RawHit]:
    """Reorder hits, raising each score by the share of word pairs and runs found in it.

    Whoosh can score phrases itself, but checking a phrase in every matching
    document costs several times the search, and a question has many short
    phrases; checking the folded text of the best few dozen hits is cheap and
    ranks as well on the benchmarks.
    """
    if not near or not hits:
        return hits

    def share(found: tuple[str, ...], text: str) -> float:
        return sum(1 for p in found if folded_pattern(p).search(text)) / len(found) if found else 0.0

    def boosted(hit: RawHit) -> float:
        text = f"{hit.doc.title}\n{hit.doc.body}"
        bonus = PROXIMITY_WEIGHT * share(near.pairs, text) + EXACT_RUN_WEIGHT * share(near.runs, text)
        return hit.score * (1 + bonus)

    scored = [(boosted(h), i, h) for i, h in enumerate(hits)]
    # Within a tier only: a hit with fewer of the query's words never rises above one with more.
    scored.sort(key=lambda t: (-t[2].tier, -t[0], t[1]))
    return [replace(h, score=score) for score, _, h in scored]
