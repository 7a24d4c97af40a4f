"""The judged keyword set over the articles (``bench/judged/``): its file formats and graded nDCG.

- ``queries.tsv``: ``qid<TAB>kind<TAB>query<TAB>intent``, kind one of ``KINDS``.
- ``qrels.tsv``: ``qid<TAB>doc_id<TAB>grade<TAB>assessor``, grade an integer
  (0 = not relevant); a pair graded twice must be graded the same.

This module is pure (no jieba, no index) so eval.py can import it cheaply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

JUDGED_DIR = Path(__file__).resolve().parent / "judged"
KINDS = ("kw", "mixed", "en", "question", "trad")
QUERIES_HEADER = ["qid", "kind", "query", "intent"]
QRELS_HEADER = ["qid", "doc_id", "grade", "assessor"]


@dataclass(frozen=True)
class JudgedQuery:
    """One query of the judged set, with the information need its graders judge against."""

    qid: str
    kind: str
    query: str
    intent: str


def _tsv_rows(path: Path, header: list[str]) -> list[tuple[int, list[str]]]:
    """(line number, fields) of a TSV file with the given header; blank lines skipped."""
    # Not csv: queries hold double quotes that must stay literal.
    with open(path, encoding="utf-8") as f:
        found = f.readline().rstrip("\r\n").split("\t")
        if found != header:
            raise ValueError(f"{path}: expected header {'<TAB>'.join(header)!r}, got {'<TAB>'.join(found)!r}")
        return [(n, line.rstrip("\r\n").split("\t")) for n, line in enumerate(f, start=2) if line.strip()]


def load_queries(path: str | Path) -> list[JudgedQuery]:
    """The queries of a judged ``queries.tsv``, in file order; raises ValueError on a malformed row."""
    path = Path(path)
    queries: list[JudgedQuery] = []
    seen: set[str] = set()
    for lineno, fields in _tsv_rows(path, QUERIES_HEADER):
        if len(fields) == 3:
            fields.append("")  # the intent may be left off
        if len(fields) != 4:
            raise ValueError(f"{path}:{lineno}: expected 4 tab-separated fields, got {len(fields)}")
        qid, kind, query, intent = (field.strip() for field in fields)
        if not qid or not query:
            raise ValueError(f"{path}:{lineno}: empty qid or query")
        if kind not in KINDS:
            raise ValueError(f"{path}:{lineno}: kind {kind!r} is not one of {', '.join(KINDS)}")
        if qid in seen:
            raise ValueError(f"{path}:{lineno}: qid {qid!r} appears twice")
        seen.add(qid)
        queries.append(JudgedQuery(qid, kind, query, intent))
    return queries


def load_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """``{qid: {doc_id: grade}}`` from a judged ``qrels.tsv``; raises ValueError on conflicting grades."""
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    for lineno, fields in _tsv_rows(path, QRELS_HEADER):
        if len(fields) not in (3, 4):
            raise ValueError(f"{path}:{lineno}: expected qid, doc_id, grade, assessor")
        qid, doc_id, grade_text = (field.strip() for field in fields[:3])
        try:
            grade = int(grade_text)
        except ValueError:
            raise ValueError(f"{path}:{lineno}: grade {grade_text!r} is not an integer") from None
        if not qid or not doc_id:
            raise ValueError(f"{path}:{lineno}: empty qid or doc_id")
        grades = qrels.setdefault(qid, {})
        if grades.get(doc_id, grade) != grade:
            raise ValueError(f"{path}:{lineno}: {qid} {doc_id} graded {grades[doc_id]} and {grade}; settle on one")
        grades[doc_id] = grade
    return qrels


def _gain(grade: int) -> float:
    return float(2**grade - 1) if grade > 0 else 0.0


def ndcg_at_k(ranked_ids: Sequence[str], grades: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with gain 2^grade - 1 and discount 1/log2(rank + 1).

    The ideal ranking is every graded document of the query, best grade first;
    an unjudged id gains 0. A query with no positive grade scores 0. An id
    returned twice counts once. With grades all 1 this is eval.py's binary
    ``ndcg_at``.
    """
    ideal_gains = sorted((_gain(g) for g in grades.values() if g > 0), reverse=True)[:k]
    ideal = sum(gain / math.log2(i + 2) for i, gain in enumerate(ideal_gains))
    if ideal == 0:
        return 0.0
    seen: set[str] = set()
    dcg = 0.0
    for i, doc_id in enumerate(ranked_ids[:k]):
        if doc_id not in seen:
            dcg += _gain(grades.get(doc_id, 0)) / math.log2(i + 2)
        seen.add(doc_id)
    return dcg / ideal
