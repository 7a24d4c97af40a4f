"""BM25 on the stored text of the best candidates, where Typesense's ranking has no term counts.

Typesense 0.24 ranks one word by the field it is in, not by how often it
occurs or how long the document is; Whoosh ranks by BM25, which looks at
both. So when not every word must match, the store ranks the candidates by
the IDF of the units they have (``store._search_some_words``), and then
reorders the best ``RERANK_WINDOW`` of them by BM25 computed here on their
stored title and body: each unit's count in the text (the best of its
written forms), against the length of the text. The page needs those
documents anyway, so this costs no request.

What differs from Whoosh's BM25: a unit is counted where its characters
stand in the text, not where jieba cut a word (地区 is also counted in
山地区域), and a document's length is estimated from its characters (``words``),
against the mean length of the documents reordered, not of the whole
collection.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from ...analysis import folded_pattern, identifier_pieces
from ...corpus import Article

# Whoosh's BM25F parameters (indexer/backends/whoosh/store.py).
K1 = 1.2
B = 0.75
# Extra weight of a unit found in the title (Whoosh's TITLE_BOOST, for questions only).
TITLE_WEIGHT = 0.6
# A unit written another way than typed scores this much (Whoosh's OTHER_FORM_WEIGHT).
OTHER_FORM_WEIGHT = 0.8
# Weight of the dictionary words inside a long query word (Whoosh's SUBWORD_BOOST for questions).
SUBWORD_WEIGHT = 0.3


@dataclass(frozen=True)
class ScoredUnit:
    """A unit of the query as reranking sees it: its written forms (terms side by side), IDF and weight.

    ``idf`` is None for a unit that no document holds as a term (jieba cut
    it differently in every document, as 坂里村 in 坂里村界於): it is then
    counted where its characters stand, with the IDF of the documents
    reordered that have them, as Whoosh's character bigrams find it.
    """

    forms: tuple[tuple[str, ...], ...]
    idf: float | None
    weight: float = 1.0


@lru_cache(maxsize=4096)
def form_pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    """A pattern for terms side by side in text as written (any width, case or script).

    Latin words and identifiers must stand alone (go is not in google), and an
    identifier's pieces may be joined by any separator (22.04, 22-04, 22 04).
    """
    parts: list[str] = []
    for term in terms:
        pieces = identifier_pieces(term) or [term]
        parts.append(r"[\W_]*".join(folded_pattern(p).pattern for p in pieces))
    body = r"\s*".join(parts)
    if terms[0][:1].isascii() and terms[0][:1].isalnum():
        body = r"(?<![A-Za-z0-9])" + body
    if terms[-1][-1:].isascii() and terms[-1][-1:].isalnum():
        body += r"(?![A-Za-z0-9])"
    return re.compile(body, re.IGNORECASE)


def _count(unit: ScoredUnit, text: str) -> float:
    """The unit's count in ``text``: its best form, another form weighing ``OTHER_FORM_WEIGHT``."""
    best = 0.0
    for i, form in enumerate(unit.forms):
        found = len(form_pattern(form).findall(text))
        best = max(best, found * (1.0 if i == 0 else OTHER_FORM_WEIGHT))
    return best


def _bm25(tf: float, length: float, mean_length: float) -> float:
    if tf <= 0:
        return 0.0
    return tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / mean_length))


# A Latin word or number is one word; jieba's words average about this many Chinese characters.
_LATIN_RE = re.compile(r"[A-Za-z0-9]+")
_HAN_RE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
HAN_PER_WORD = 1.6


def words(text: str) -> float:
    """About how many words jieba and the identifier rules make of ``text``, without segmenting it."""
    return max(1.0, len(_LATIN_RE.findall(text)) + len(_HAN_RE.findall(text)) / HAN_PER_WORD)


def idf(total: int, df: int) -> float:
    """BM25's IDF of a unit in ``df`` of ``total`` documents (as Whoosh computes it)."""
    return math.log(1 + (total - df + 0.5) / (df + 0.5))


def text_scores(
    docs: Sequence[Article], units: Sequence[ScoredUnit], total: int, title_weight: float = TITLE_WEIGHT
) -> list[float]:
    """BM25 of each document's title and body for the units, plus ``title_weight`` of the title's own."""
    if not docs:
        return []
    texts = [f"{d.title}\n{d.body}" for d in docs]
    lengths = [words(t) for t in texts]
    title_lengths = [words(d.title) for d in docs]
    mean_length = sum(lengths) / len(lengths)
    mean_title = sum(title_lengths) / len(title_lengths)
    scores = [0.0] * len(docs)
    for unit in units:
        counts = [_count(unit, t) for t in texts]
        weight = unit.weight * (unit.idf if unit.idf is not None else idf(total, sum(1 for c in counts if c)))
        for i, doc in enumerate(docs):
            if counts[i]:
                scores[i] += weight * _bm25(counts[i], lengths[i], mean_length)
                if title_weight:
                    title = _count(unit, doc.title)
                    scores[i] += title_weight * weight * _bm25(title, title_lengths[i], mean_title)
    return scores
