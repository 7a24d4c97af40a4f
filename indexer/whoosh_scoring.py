"""BM25F for Whoosh with each document's length normalisation computed once.

Whoosh's BM25F looks a document's field length up through several layers of
readers for every posting it scores; for a question that matches most of the
index that lookup is a third of the search. This scorer keeps the finished
normalisation per segment, field and document, so each is computed at most
once per open searcher. Scores are identical to ``whoosh.scoring.BM25F``.
"""

from __future__ import annotations

from array import array
from typing import Any

from whoosh import scoring

# Where the normalisations of one leaf searcher live (one array per field and parameters).
_CACHE_ATTR = "_zhsearch_length_norms"
_UNSET = -1.0


class CachedBM25F(scoring.BM25F):  # type: ignore[misc]
    """``BM25F`` whose scorers share per-document length normalisations."""

    def scorer(self, searcher: Any, fieldname: str, text: str, qf: int = 1) -> Any:
        """A scorer for one term in one segment."""
        if not searcher.schema[fieldname].scorable:
            return scoring.WeightScorer.for_(searcher, fieldname, text)
        B = self._field_B.get(fieldname, self.B)
        return _CachedBM25FScorer(searcher, fieldname, text, B, self.K1, qf=qf)


class _CachedBM25FScorer(scoring.BM25FScorer):  # type: ignore[misc]
    def __init__(self, searcher: Any, fieldname: str, text: str, B: float, K1: float, qf: int = 1) -> None:
        super().__init__(searcher, fieldname, text, B, K1, qf=qf)
        cache: dict[tuple[str, float, float, float], array[float]] = searcher.__dict__.setdefault(_CACHE_ATTR, {})
        key = (fieldname, B, K1, self.avgfl)
        norms = cache.get(key)
        if norms is None:
            norms = cache[key] = array("d", [_UNSET]) * searcher.doc_count_all()
        self._norms = norms
        self._k1_plus_1 = K1 + 1

    def score(self, matcher: Any) -> float:
        weight = matcher.weight()
        docnum = matcher.id()
        norm = self._norms[docnum]
        if norm < 0:
            # The same expression as whoosh.scoring.bm25, so scores match to the last bit.
            length = self.dfl(docnum)
            norm = self._norms[docnum] = self.K1 * ((1 - self.B) + self.B * length / self.avgfl)
        return float(self.idf * ((weight * self._k1_plus_1) / (weight + norm)))
