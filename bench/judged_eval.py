"""The judged keyword set (bench/judged/) in `make eval`: nDCG@10 of zhsearch and two BM25 baselines.

The 82 queries of ``bench/judged/queries.tsv`` run against an index of
``../shared/data/articles.jsonl`` (built in a temporary directory unless
``--articles-index`` names one), and against ``bm25_baselines``' BM25 over
jieba words and over character bigrams. Each top 10 is scored against the
0–3 grades of ``qrels.tsv`` (gain 2^grade - 1; an article nobody graded
counts as 0, and the report says how many there were). For the questions of
the set it also reports how many match (``total_full``) more than a quarter
of the collection, the share of highlights that are a lone character the
query never typed alone (``highlight_eval``), and completion and "did you
mean" against the expected list of ``suggest_cases.tsv`` (``suggest_eval``).
How the set was made: ``bench/judged/README.md``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from highlight_eval import MarkCount, count_marks
from judged_metrics import JudgedQuery, load_qrels, load_queries, ndcg_at_k
from suggest_eval import CaseResult, render_suggest_cases, run_suggest_cases

BENCH_DIR = Path(__file__).resolve().parent
JUDGED_DIR = BENCH_DIR / "judged"
KINDS = ("kw", "mixed", "en", "question", "trad")
KIND_NAMES = {
    "kw": "Chinese keywords",
    "mixed": "Chinese + identifiers",
    "en": "English, acronyms",
    "question": "questions",
    "trad": "traditional, Taiwan words, full-width",
}
BASELINES = ("jieba-bm25", "bigram-bm25")
# A question whose full matches exceed this share of the collection describes nothing.
BROAD_SHARE = 0.25
K = 10
# Marks on a lone character the query never typed alone, as a share of all marks: at most this.
LONE_MARK_TARGET = 0.01


@dataclass(frozen=True)
class JudgedResult:
    """nDCG@10 per system and kind, unjudged hits, and the questions' match counts."""

    ndcg: dict[str, dict[str, list[float]]]
    unjudged: dict[str, int]
    broad: list[tuple[str, str, int]]
    totals_full: dict[str, int]
    documents: int
    seconds: float
    # zhsearch's marks in the top 10 titles and snippets of every query.
    marks: MarkCount
    # Completion and "did you mean" against bench/suggest_cases.tsv.
    suggest: list[CaseResult]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def run_judged(
    articles: Path,
    index_dir: Path | None = None,
    judged_dir: Path = JUDGED_DIR,
    log: Callable[[str], None] = print,
    backend: str = "whoosh",
) -> JudgedResult:
    """Score zhsearch (on ``backend``; Typesense always builds its collection) and the baselines on the judged set."""
    from bm25_baselines import open_baseline

    from indexer import Searcher, build_index, store_settings

    started = time.perf_counter()
    queries = load_queries(judged_dir / "queries.tsv")
    qrels = load_qrels(judged_dir / "qrels.tsv")
    with tempfile.TemporaryDirectory(prefix="zhsearch-judged-") as tmp:
        if index_dir is None or backend != "whoosh":
            index_dir = Path(tmp) / "index"
            log(f"judged set: indexing {articles} (a few minutes)")
            # A Typesense backend reads its cluster from the ZHSEARCH_TYPESENSE_* variables.
            build_index([articles], store_settings(index_dir, backend))
        settings = store_settings(index_dir, backend)
        searcher = Searcher(settings)
        try:
            documents = searcher.info().documents
            pages = {q.qid: searcher.search(q.query, size=K) for q in queries}
        finally:
            searcher.close()
        suggest = run_suggest_cases(settings)
    runs: dict[str, dict[str, list[str]]] = {"zhsearch": {qid: [h.id for h in p.hits] for qid, p in pages.items()}}
    for name in BASELINES:
        baseline = open_baseline(name, articles)
        runs[name] = {q.qid: baseline.search(q.query, K) for q in queries}
    ndcg: dict[str, dict[str, list[float]]] = {}
    unjudged: dict[str, int] = {}
    for system, ranked in runs.items():
        per_kind: dict[str, list[float]] = {kind: [] for kind in (*KINDS, "all")}
        for q in queries:
            grades = qrels.get(q.qid, {})
            value = ndcg_at_k(ranked[q.qid], grades, K)
            per_kind[q.kind].append(value)
            per_kind["all"].append(value)
            unjudged[system] = unjudged.get(system, 0) + sum(1 for d in ranked[q.qid] if d not in grades)
        ndcg[system] = per_kind
    questions: list[JudgedQuery] = [q for q in queries if q.kind == "question"]
    totals_full = {q.qid: pages[q.qid].total_full for q in questions}
    broad = [(q.qid, q.query, totals_full[q.qid]) for q in questions if totals_full[q.qid] > BROAD_SHARE * documents]
    marks = MarkCount()
    for q in queries:
        count_marks(q.query, [html for h in pages[q.qid].hits for html in (h.title_html, h.snippet_html)], marks)
    return JudgedResult(ndcg, unjudged, broad, totals_full, documents, time.perf_counter() - started, marks, suggest)


def render_judged(result: JudgedResult) -> list[str]:
    """The report's section on the judged keyword set (Markdown lines)."""
    systems = list(result.ndcg)
    lines = [
        "",
        "## Judged keyword set (bench/judged, articles.jsonl)",
        "",
        "nDCG@10, graded 0–3 (gain 2^grade − 1); " + f"{result.documents:,} articles.",
        "",
        "| kind | queries | " + " | ".join(systems) + " |",
        "|---|---:|" + "---:|" * len(systems),
    ]
    for kind in (*KINDS, "all"):
        count = len(result.ndcg[systems[0]][kind])
        name = KIND_NAMES.get(kind, "**all**")
        cells = " | ".join(f"{_mean(result.ndcg[s][kind]):.3f}" for s in systems)
        lines.append(f"| {name} | {count} | {cells} |")
    best_baseline = max(_mean(result.ndcg[s]["all"]) for s in systems if s != "zhsearch")
    margin = _mean(result.ndcg["zhsearch"]["all"]) - best_baseline
    verdict = "met" if margin >= 0.05 else "NOT met"
    lines += [
        "",
        f"zhsearch − better baseline: {margin:+.3f} (target ≥ +0.05: {verdict}).",
        "Unjudged articles in the top 10 (counted as 0): "
        + ", ".join(f"{s} {n}" for s, n in result.unjudged.items())
        + ".",
    ]
    share = f"{BROAD_SHARE:.0%} of the collection ({BROAD_SHARE * result.documents:,.0f})"
    most = max(result.totals_full.values(), default=0)
    lines.append(
        f"Questions whose full matches (`total_full`) exceed {share}: {len(result.broad)} of "
        f"{len(result.totals_full)} (largest total_full {most:,})"
        + ("." if not result.broad else ": " + "; ".join(f"{qid} {q} {n:,}" for qid, q, n in result.broad) + ".")
    )
    marks = result.marks
    verdict = "met" if marks.share <= LONE_MARK_TARGET else "NOT met"
    lines += [
        "",
        "### Highlight precision",
        "",
        f"Marks in zhsearch's top {K} titles and snippets that are a lone Chinese character the query never "
        f"typed alone: {marks.lone} of {marks.marks:,} ({marks.share:.2%}; "
        f"target ≤ {LONE_MARK_TARGET:.0%}: {verdict}).",
    ]
    if marks.examples:
        lines += ["", "Examples:", ""] + [f"- {example}" for example in marks.examples]
    lines += ["", '### Completion and "did you mean" (bench/suggest_cases.tsv)', ""]
    lines.append(render_suggest_cases(result.suggest))
    lines.append("")
    lines.append(f"Run time {result.seconds:.0f} s.")
    return lines
