"""Relevance evaluation: zhsearch and the tutorial baseline on the shared passage-retrieval benchmarks.

For each benchmark folder (``passages.jsonl``, ``queries.jsonl``, ``qrels.tsv``)
and each system, build an index of the passages in a temporary directory, run
every query, keep the top 100 ids and score them against the judged passage:
MRR@10, nDCG@10 (binary gain), Recall@1/10/100, query time and build time.

    .venv/bin/python bench/eval.py [--data ../shared/data] [--sets cmrc,drcd]
        [--systems zhsearch,naive] [--backend whoosh] [--max-queries N] [--out bench/results/eval.md]

The ``keywords`` set is the judged keyword set of ``bench/judged`` over
``articles.jsonl``, graded 0–3 (``bench/judged_eval.py``): zhsearch against BM25
over jieba words and over character bigrams. ``--articles-index`` names an
index of the articles already built (otherwise one is built, a few minutes).

The Markdown report goes to stdout and to ``--out``; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import judged_metrics
from bench_stats import percentile
from judged_eval import render_judged, run_judged

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DATA_ENV = "ZHSEARCH_BENCH_DATA"
DEFAULT_OUT = ROOT / "bench" / "results" / "eval.md"
ALL_SETS = ("cmrc", "drcd", "drcd_simplified", "drcd_cross")
# The judged keyword set over articles.jsonl (bench/judged): not a passage folder like the others.
JUDGED_SET = "keywords"
ALL_SYSTEMS = ("zhsearch", "naive")
# How many ids each query keeps; Recall@100 needs all of them.
DEPTH = 100
# zhsearch's MRR@10 goals per set, a little above the plain-BM25 reference in the data README.
TARGETS = {"cmrc": 0.985, "drcd_simplified": 0.955, "drcd": 0.95, "drcd_cross": 0.95}
PROGRESS_EVERY_S = 15.0


@contextlib.contextmanager
def quiet_jieba() -> Iterator[None]:
    """Silence the warnings jieba 0.42.1 emits on import, and nothing else."""
    with warnings.catch_warnings():
        # jieba's regex literals have invalid escapes (DeprecationWarning on 3.11, SyntaxWarning on 3.12+).
        warnings.filterwarnings("ignore", message="invalid escape sequence", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="invalid escape sequence", category=SyntaxWarning)
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        # jieba.analyse reads its IDF file without closing it.
        warnings.filterwarnings("ignore", message="unclosed file.*jieba", category=ResourceWarning)
        yield
    # jieba's import sets its own logger to DEBUG; its "Building prefix dict" chatter is not progress.
    logging.getLogger("jieba").setLevel(logging.WARNING)


# ---------------------------------------------------------------- metrics (pure)


def first_relevant_rank(ranked_ids: Sequence[str], relevant: Collection[str], k: int) -> int | None:
    """1-based rank of the first relevant id within the top ``k``, or None."""
    for rank, doc_id in enumerate(ranked_ids[:k], start=1):
        if doc_id in relevant:
            return rank
    return None


def mrr_at(ranked_ids: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Reciprocal rank of the first relevant id in the top ``k`` (0 when there is none)."""
    rank = first_relevant_rank(ranked_ids, relevant, k)
    return 0.0 if rank is None else 1.0 / rank


def ndcg_at(ranked_ids: Sequence[str], relevant: Collection[str], k: int) -> float:
    """nDCG@k with binary gain: DCG of the ranking over the DCG of a perfect one."""
    return judged_metrics.ndcg_at_k(ranked_ids, dict.fromkeys(relevant, 1), k)


def recall_at(ranked_ids: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Fraction of the relevant ids found in the top ``k``."""
    if not relevant:
        return 0.0
    return len(set(ranked_ids[:k]) & set(relevant)) / len(relevant)


@dataclass(frozen=True)
class QueryResult:
    """One query's ranked ids, its judged passages, its time, and the error it raised if any."""

    qid: str
    ranked_ids: list[str]
    relevant: frozenset[str]
    ms: float
    error: str | None = None


@dataclass(frozen=True)
class Summary:
    """Mean metrics and timings of one system on one set."""

    queries: int
    errors: int
    mrr10: float
    ndcg10: float
    r1: float
    r10: float
    r100: float
    mean_ms: float
    p95_ms: float


def summarize(results: Sequence[QueryResult]) -> Summary:
    """Average the per-query metrics; a query that raised counts as a miss, with its time."""
    n = len(results)
    if n == 0:
        # Zeros, not NaN: the report prints them as numbers; percentile() is NaN for no values.
        return Summary(0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    times = [r.ms for r in results]

    def mean(metric: Callable[[QueryResult], float]) -> float:
        return sum(metric(r) for r in results) / n

    return Summary(
        queries=n,
        errors=sum(1 for r in results if r.error is not None),
        mrr10=mean(lambda r: mrr_at(r.ranked_ids, r.relevant, 10)),
        ndcg10=mean(lambda r: ndcg_at(r.ranked_ids, r.relevant, 10)),
        r1=mean(lambda r: recall_at(r.ranked_ids, r.relevant, 1)),
        r10=mean(lambda r: recall_at(r.ranked_ids, r.relevant, 10)),
        r100=mean(lambda r: recall_at(r.ranked_ids, r.relevant, 100)),
        mean_ms=sum(times) / n,
        p95_ms=percentile(times, 95),
    )


# ---------------------------------------------------------------- benchmark data


@dataclass(frozen=True)
class Query:
    """A judged question: its id and text."""

    id: str
    text: str


def load_queries(path: Path) -> list[Query]:
    """The queries of a ``queries.jsonl`` file, in file order."""
    queries = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                obj = json.loads(line)
                queries.append(Query(str(obj["id"]), str(obj.get("text") or "")))
    return queries


def load_qrels(path: Path) -> dict[str, frozenset[str]]:
    """``{query id: relevant passage ids}`` from a ``qid<TAB>pid<TAB>grade`` file (grade > 0 is relevant)."""
    qrels: dict[str, set[str]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2 or not parts[0]:
                continue
            grade = int(parts[2]) if len(parts) > 2 and parts[2].strip() else 1
            if grade > 0:
                qrels.setdefault(parts[0], set()).add(parts[1])
    return {qid: frozenset(pids) for qid, pids in qrels.items()}


# ---------------------------------------------------------------- systems


class System(Protocol):
    """What the harness needs from a search system: build once, then search many times."""

    name: str
    # Anything the build left out, for the report ("" when nothing).
    build_note: str
    # Exceptions a single query may raise that count as a miss rather than abort the run.
    query_errors: tuple[type[BaseException], ...]

    def build(self, passages: Path) -> int:
        """Index the passages file; return how many passages were indexed."""
        ...

    def search(self, text: str, k: int) -> list[str]:
        """Ids of the top ``k`` hits for ``text``, best first."""
        ...

    def close(self) -> None:
        """Release the index."""
        ...


class ZhsearchSystem:
    """The one place eval.py calls zhsearch, so API changes are adapted here only."""

    name = "zhsearch"

    def __init__(self, workdir: Path, backend: str = "whoosh") -> None:
        with quiet_jieba():
            import indexer
        self._indexer = indexer
        self.query_errors: tuple[type[BaseException], ...] = (indexer.QueryError,)
        self.index_dir = workdir / "index"
        # A Typesense backend reads its cluster from the ZHSEARCH_TYPESENSE_* variables.
        self.settings = indexer.store_settings(self.index_dir, backend)
        self._searcher: Any = None
        self.build_note = ""

    def build(self, passages: Path) -> int:
        """Build a zhsearch index of the passages file."""
        stats = self._indexer.build_index([passages], self.settings)
        if stats.skipped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in stats.skip_reasons().items())
            self.build_note = f"skipped {len(stats.skipped)} ({reasons})"
        self._searcher = self._indexer.Searcher(self.settings)
        return int(stats.indexed)

    def search(self, text: str, k: int) -> list[str]:
        """Top ``k`` ids from ``Searcher.search`` (highlighting included, as the product does it)."""
        page = self._searcher.search(text, page=1, size=k)
        return [hit.id for hit in page.hits]

    def close(self) -> None:
        """Close the searcher."""
        if self._searcher is not None:
            self._searcher.close()
            self._searcher = None


class NaiveSystem:
    """The tutorial jieba ``ChineseAnalyzer`` + Whoosh recipe from ``bench/naive_baseline.py``."""

    name = "naive"
    # Whoosh's default parser can raise on unusual query text; the tutorial does not guard it.
    query_errors: tuple[type[BaseException], ...] = (Exception,)

    def __init__(self, workdir: Path) -> None:
        if str(BENCH_DIR) not in sys.path:
            sys.path.insert(0, str(BENCH_DIR))
        with quiet_jieba():
            self._module = importlib.import_module("naive_baseline")
        self.index_dir = workdir / "naive"
        self._index: Any = None
        self.build_note = ""

    def build(self, passages: Path) -> int:
        """Build the tutorial index of the passages file."""
        count = int(self._module.NaiveIndex.build(self._module.read_jsonl(passages), self.index_dir))
        self._index = self._module.NaiveIndex(self.index_dir)
        return count

    def search(self, text: str, k: int) -> list[str]:
        """Top ``k`` ids from the tutorial's AND query parser."""
        return list(self._index.search(text, limit=k))

    def close(self) -> None:
        """Close the Whoosh searcher."""
        if self._index is not None:
            self._index.close()
            self._index = None


def make_system(name: str, workdir: Path, backend: str) -> System:
    """A fresh, unbuilt system by name."""
    if name == "zhsearch":
        return ZhsearchSystem(workdir, backend)
    if name == "naive":
        return NaiveSystem(workdir)
    raise ValueError(f"unknown system {name!r}; choose from {', '.join(ALL_SYSTEMS)}")


# ---------------------------------------------------------------- running


def log(message: str) -> None:
    """Progress for the operator, on stderr so stdout stays the report."""
    print(message, file=sys.stderr, flush=True)


def run_queries(
    system: System,
    queries: Sequence[Query],
    qrels: dict[str, frozenset[str]],
    k: int = DEPTH,
    label: str = "",
) -> list[QueryResult]:
    """Run every judged query through ``system``; errors it declares per-query become misses."""
    results: list[QueryResult] = []
    started = last_report = time.perf_counter()
    for i, q in enumerate(queries, start=1):
        error: str | None = None
        t0 = time.perf_counter()
        try:
            ids = system.search(q.text, k)
        except system.query_errors as exc:
            ids, error = [], f"{type(exc).__name__}: {exc}"
        ms = (time.perf_counter() - t0) * 1000
        results.append(QueryResult(q.id, ids[:k], qrels[q.id], ms, error))
        now = time.perf_counter()
        if label and now - last_report >= PROGRESS_EVERY_S:
            last_report = now
            mrr = sum(mrr_at(r.ranked_ids, r.relevant, 10) for r in results) / len(results)
            rate = i / (now - started)
            log(f"  {label}: {i}/{len(queries)} queries, MRR@10 so far {mrr:.3f}, {rate:.0f} q/s")
    return results


@dataclass
class Row:
    """One line of the report: a system on a set."""

    set_name: str
    system: str
    summary: Summary
    build_s: float
    passages: int
    unjudged: int = 0
    build_note: str = ""
    error_examples: list[str] = field(default_factory=list)


def evaluate(set_dir: Path, system_names: Sequence[str], backend: str, max_queries: int | None = None) -> list[Row]:
    """Evaluate each system on one benchmark folder, each in its own temporary index."""
    set_name = set_dir.name
    all_queries = load_queries(set_dir / "queries.jsonl")
    qrels = load_qrels(set_dir / "qrels.tsv")
    # A query nobody judged cannot be scored; it is left out and counted in the report.
    queries = [q for q in all_queries if q.id in qrels]
    unjudged = len(all_queries) - len(queries)
    if max_queries is not None:
        queries = queries[:max_queries]
    rows = []
    for name in system_names:
        label = f"[{set_name}] {name}"
        with tempfile.TemporaryDirectory(prefix=f"zhsearch-eval-{set_name}-{name}-") as tmp:
            system = make_system(name, Path(tmp), backend)
            try:
                t0 = time.perf_counter()
                passages = system.build(set_dir / "passages.jsonl")
                build_s = time.perf_counter() - t0
                note = f", {system.build_note}" if system.build_note else ""
                log(f"{label}: indexed {passages} passages{note} in {build_s:.1f} s; running {len(queries)} queries")
                results = run_queries(system, queries, qrels, DEPTH, label)
            finally:
                system.close()
        summary = summarize(results)
        examples = [f"{r.qid}: {r.error}" for r in results if r.error is not None][:3]
        log(
            f"{label}: MRR@10 {summary.mrr10:.4f}, R@100 {summary.r100:.4f}, "
            f"{summary.mean_ms:.1f} ms/query, {summary.errors} query errors"
        )
        rows.append(Row(set_name, name, summary, build_s, passages, unjudged, system.build_note, examples))
    return rows


# ---------------------------------------------------------------- report


def render_report(rows: Sequence[Row], meta: dict[str, str]) -> str:
    """The Markdown report: context, one table row per set and system, targets, and query errors."""
    lines = ["# zhsearch relevance evaluation", ""]
    lines += [f"- {key}: {value}" for key, value in meta.items()]
    lines += [
        "",
        "Each query's text is searched as is; the top 100 ids are scored against the one judged passage "
        "(qrels.tsv). Query time is the wall time of one in-process search call for the top 100 (for zhsearch, "
        "`Searcher.search` including highlighting of the 100 hits); build is the index build wall time.",
        "",
        "| set | system | MRR@10 | nDCG@10 | R@1 | R@10 | R@100 | mean ms | p95 ms | build s | queries |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        s = row.summary
        lines.append(
            f"| {row.set_name} | {row.system} | {s.mrr10:.4f} | {s.ndcg10:.4f} | {s.r1:.4f} | {s.r10:.4f} | "
            f"{s.r100:.4f} | {s.mean_ms:.1f} | {s.p95_ms:.1f} | {row.build_s:.1f} | {s.queries} |"
        )
    checks = []
    for row in rows:
        if row.system == "zhsearch" and row.set_name in TARGETS:
            goal = TARGETS[row.set_name]
            verdict = "met" if row.summary.mrr10 >= goal else "NOT met"
            checks.append(f"{row.set_name} ≥ {goal:.3f}: {row.summary.mrr10:.4f} {verdict}")
    if checks:
        lines += ["", "Targets, zhsearch MRR@10: " + "; ".join(checks) + "."]
    errored = [row for row in rows if row.summary.errors]
    lines += ["", "Query errors (counted as misses): " + ("none." if not errored else "")]
    for row in errored:
        lines.append(f"- {row.set_name} / {row.system}: {row.summary.errors} of {row.summary.queries}")
        lines += [f"  - e.g. {example}" for example in row.error_examples]
    indexed = [
        f"{row.set_name} {row.system} {row.passages}" + (f" {row.build_note}" if row.build_note else "") for row in rows
    ]
    lines += ["", "Passages indexed: " + "; ".join(indexed) + "."]
    unjudged = {row.set_name: row.unjudged for row in rows if row.unjudged}
    if unjudged:
        lines += ["", "Queries without judgments, left out: " + ", ".join(f"{k} {v}" for k, v in unjudged.items())]
    return "\n".join(lines) + "\n"


def default_data_dir() -> Path:
    """``$ZHSEARCH_BENCH_DATA``, else ``../shared/data`` beside the repository."""
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else DEFAULT_DATA


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--data", type=Path, default=None, help=f"benchmark folders (default ${DATA_ENV} or ../shared/data)"
    )
    parser.add_argument(
        "--sets", default=",".join((*ALL_SETS, JUDGED_SET)), help=f"comma-separated benchmark folders, and {JUDGED_SET}"
    )
    parser.add_argument(
        "--articles-index", type=Path, default=None, help="a Whoosh index of articles.jsonl, for keywords"
    )
    parser.add_argument("--systems", default=",".join(ALL_SYSTEMS), help="comma-separated: zhsearch, naive")
    parser.add_argument("--backend", default="whoosh", help="zhsearch index backend")
    parser.add_argument("--max-queries", type=int, default=None, help="evaluate only the first N queries of each set")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the report too")
    args = parser.parse_args(argv)
    args.data = args.data if args.data is not None else default_data_dir()
    args.sets = [s for s in args.sets.split(",") if s]
    args.systems = [s for s in args.systems.split(",") if s]
    for name in args.systems:
        if name not in ALL_SYSTEMS:
            parser.error(f"unknown system {name!r}; choose from {', '.join(ALL_SYSTEMS)}")
    args.judged = JUDGED_SET in args.sets
    args.sets = [s for s in args.sets if s != JUDGED_SET]
    if args.judged and not (args.data / "articles.jsonl").is_file():
        parser.error(f"{args.data} lacks articles.jsonl (for the {JUDGED_SET} set)")
    for set_name in args.sets:
        missing = [
            f for f in ("passages.jsonl", "queries.jsonl", "qrels.tsv") if not (args.data / set_name / f).is_file()
        ]
        if missing:
            parser.error(f"{args.data / set_name} lacks {', '.join(missing)}")
    if args.max_queries is not None and args.max_queries < 1:
        parser.error("--max-queries must be 1 or more")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation, print the report and write it to ``--out``."""
    args = parse_args(argv)
    started = time.perf_counter()
    when = datetime.now(UTC)
    # Other people's jobs share the cores; the load shows how far the timings can be trusted.
    load_start = os.getloadavg()[0]
    rows: list[Row] = []
    for set_name in args.sets:
        rows += evaluate(args.data / set_name, args.systems, args.backend, args.max_queries)
    judged = (
        run_judged(args.data / "articles.jsonl", args.articles_index, log=log, backend=args.backend)
        if args.judged
        else None
    )
    elapsed = time.perf_counter() - started
    meta = {
        "Date": when.strftime("%Y-%m-%d %H:%M UTC"),
        "Machine": (
            f"{os.cpu_count()} CPUs (os.cpu_count()), Python {platform.python_version()}, {platform.system()}; "
            f"1-min load average {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end"
        ),
        "Data": f"{args.data} (sets: {', '.join(args.sets)})",
        "zhsearch backend": args.backend,
        "Queries per set": "all judged" if args.max_queries is None else f"first {args.max_queries}",
        "Run time": f"{elapsed:.0f} s",
    }
    report = render_report(rows, meta) if rows else ""
    if judged is not None:
        report += "\n".join(render_judged(judged)) + "\n"
    sys.stdout.write(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(report)
    log(f"report written to {args.out} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
