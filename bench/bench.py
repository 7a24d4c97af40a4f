"""Side-by-side benchmark of zhsearch and the tutorial jieba+Whoosh baseline (and, with --peers, tantivy and FTS5).

One run measures every system on the same data and queries and prints a
Markdown report (also saved as bench/results/bench-<UTC date>.md): index
build, query latency, HTTP latency one request at a time and throughput under
load, start-up and memory, and a short scale curve. The machine is shared and
noisy, so the report leads with ratios measured side by side in the same run
rather than absolute numbers.

With --scale it runs the scale curve alone, zhsearch only, to 1,000,000
paragraph documents with its own time budget, and saves
bench/results/bench-scale-<UTC date>.md.

    make bench                      # full run, under 30 minutes on 2 cores
    make bench BENCH_ARGS=--quick   # small data, few queries: for developing the harness
    make bench PEERS=1              # also tantivy and SQLite FTS5 as references
    make bench-scale                # 10k to 1M paragraphs, every query × 3 rounds, 60-minute budget
    make bench-scale BENCH_SCALE_ARGS='--sizes 2000,5000 --rounds 1'   # a quick try
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_http import (
    LoadResult,
    SerialResult,
    TreeMemorySampler,
    have_wrk,
    memory_kb,
    run_python_load,
    run_serial,
    run_wrk,
    wait_for_workers,
)
from bench_stats import (
    PERCENTILES,
    Latencies,
    dir_size,
    fmt_ms,
    fmt_num,
    fmt_ratio,
    has_chinese,
    load_queries,
    md_table,
    paragraph_docs,
    ratio,
    sample_docs,
    stratified,
    write_jsonl,
)
from bench_systems import PEERS, Zhsearch
from harness import Server, free_port, running_server

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "articles.jsonl"
DATA_ENV = "ZHSEARCH_BENCH_DATA"
BASELINE = "naive"
K = 10
HTTP_WORKERS = 2
MAX_LISTED_ERRORS = 30
SCALE_SAFETY = 1.3
# Issue 18's targets for the tail of search+highlight, in ms, by number of paragraph documents.
SCALE_P99_TARGET_MS = {300_000: 150.0, 1_000_000: 400.0}
LABELS = {
    "zhsearch": "zhsearch",
    "naive": "naive baseline",
    "tantivy": "tantivy (peer)",
    "fts5": "SQLite FTS5 (peer)",
}

_started = time.perf_counter()


def log(msg: str) -> None:
    """Progress on stderr, with the minutes elapsed, so a long run can be followed."""
    print(f"[bench {(time.perf_counter() - _started) / 60:5.1f} min] {msg}", file=sys.stderr, flush=True)


@dataclass
class Settings:
    """Sizes of one run: --quick shrinks all of them."""

    rounds: int
    per_kind: int | None
    http_seconds: int
    http_warmup_seconds: int
    connections: int
    startup_runs: int
    scale_sizes: list[int]
    # Queries of each kind in the scale curve; None: every query of the file.
    scale_per_kind: int | None
    scale_rounds: int
    limit_docs: int | None
    budget_min: float


FULL = Settings(
    rounds=2,
    per_kind=None,
    http_seconds=25,
    http_warmup_seconds=3,
    connections=32,
    startup_runs=3,
    # A short curve, for the trend in the same run as the ratios; `make bench-scale` (SCALE below) goes to 1M.
    scale_sizes=[10_000, 100_000],
    scale_per_kind=8,
    scale_rounds=1,
    limit_docs=None,
    budget_min=28.0,
)
QUICK = Settings(
    rounds=1,
    per_kind=4,
    http_seconds=5,
    http_warmup_seconds=1,
    connections=32,
    startup_runs=1,
    scale_sizes=[1_000, 3_000],
    scale_per_kind=2,
    scale_rounds=1,
    limit_docs=300,
    budget_min=10.0,
)
# --scale (`make bench-scale`): the scale curve alone, every query, 3 rounds, with its own budget.
SCALE = dataclasses.replace(
    FULL,
    scale_sizes=[10_000, 100_000, 300_000, 1_000_000],
    scale_per_kind=None,
    scale_rounds=3,
    budget_min=60.0,
)


@dataclass
class BuildResult:
    """One index build, measured from outside its process."""

    system: str
    documents: int = 0
    seconds: float = math.nan
    input_bytes: int = 0
    size_bytes: int = 0
    peak_rss_kb: int = 0
    tree_pss_kb: int = 0
    processes: int = 1
    cpu_s: float = math.nan
    error: str | None = None


@dataclass
class QueryResult:
    """One system's query timings."""

    system: str
    ready_s: float = math.nan
    modes: dict[str, Latencies] = field(default_factory=lambda: {"search": Latencies(), "highlight": Latencies()})
    by_kind: dict[tuple[str, str], Latencies] = field(default_factory=dict)
    per_query: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    zero_hits: set[str] = field(default_factory=set)
    memory_kb: dict[str, int] = field(default_factory=dict)
    error: str | None = None


# --- processes ------------------------------------------------------------------------------------------------


def _worker_cmd(action: str, system: str, index_dir: Path, backend: str, paths: Sequence[Path] = ()) -> list[str]:
    script = BENCH_DIR / "bench_systems.py"
    # Paths right after the positionals: argparse does not take more positionals after options.
    return [sys.executable, str(script), action, system, *map(str, paths), "--index", str(index_dir)] + [
        "--backend",
        backend,
    ]


def run_build(
    system: str, data: Path, index_dir: Path, backend: str, log_file: Path, env: dict[str, str]
) -> BuildResult:
    """Build one index in a child process: wall and CPU time, peak RSS of its largest process, peak PSS of all."""
    result = BuildResult(system, input_bytes=data.stat().st_size)
    if index_dir.exists():
        shutil.rmtree(index_dir)
    with open(log_file, "ab") as err:
        started = time.perf_counter()
        cmd = _worker_cmd("build", system, index_dir, backend, [data])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, cwd=index_dir.parent)
        # A build may fork writer processes: sum their memory, since wait4 only gives the largest one.
        sampler = TreeMemorySampler(proc.pid).start()
        assert proc.stdout is not None
        out = proc.stdout.read()
        # wait4 rather than RUSAGE_CHILDREN: that one is the maximum over every child so far, not this build's.
        _pid, status, usage = os.wait4(proc.pid, 0)
        result.seconds = time.perf_counter() - started
        sampler.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    result.peak_rss_kb = usage.ru_maxrss
    result.cpu_s = usage.ru_utime + usage.ru_stime
    result.tree_pss_kb = sampler.peak_pss_kb
    result.processes = max(1, sampler.max_processes)
    if proc.returncode != 0:
        result.error = f"build exited with status {proc.returncode}; see {log_file}"
        return result
    result.documents = int(json.loads(out.decode("utf-8").strip().splitlines()[-1])["documents"])
    result.size_bytes = dir_size(index_dir)
    return result


class Worker:
    """A query process for one system: requests on its stdin, timings on its stdout."""

    def __init__(self, system: str, index_dir: Path, backend: str, log_file: Path, env: dict[str, str]) -> None:
        self.system = system
        self._err = open(log_file, "ab")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            _worker_cmd("query", system, index_dir, backend),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            encoding="utf-8",
            env=env,
            cwd=index_dir.parent,
        )
        ready = self._read()
        if not ready.get("ready"):
            raise RuntimeError(f"{system} worker did not start: {ready}")
        # Interpreter start, imports, opening the index and a first query: time to first result.
        self.ready_s = time.perf_counter() - started

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.system} worker exited with status {self.proc.wait()}")
        data: dict[str, Any] = json.loads(line)
        return data

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its answer."""
        assert self.proc.stdin is not None
        # ASCII JSON on the pipes, whatever the locale's encoding.
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        """Ask the worker to exit; kill it if it does not."""
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self._err.close()


@contextmanager
def workers(
    systems: Sequence[str], index_dirs: dict[str, Path], backend: str, log_file: Path, env: dict[str, str]
) -> Iterator[list[Worker]]:
    """Start one query worker per system, one after another so start-ups do not compete; always stop them."""
    started: list[Worker] = []
    try:
        for system in systems:
            started.append(Worker(system, index_dirs[system], backend, log_file, env))
        yield started
    finally:
        for w in started:
            w.close()


def time_queries(
    pool: Sequence[Worker], queries: Sequence[tuple[str, str]], rounds: int, results: dict[str, QueryResult]
) -> None:
    """Warm up, then time every query in both modes, alternating which system goes first."""
    for _kind, q in queries:
        for w in pool:
            reply = w.ask({"op": "search", "q": q, "k": K})
            if reply.get("hits") == 0:
                results[w.system].zero_hits.add(q)
    for r in range(rounds):
        for mode in ("search", "highlight"):
            log(f"queries: round {r + 1}/{rounds}, {mode}")
            for i, (kind, q) in enumerate(queries):
                order = pool if (i + r) % 2 == 0 else list(reversed(pool))
                for w in order:
                    res = results[w.system]
                    reply = w.ask({"op": mode, "q": q, "k": K})
                    if "error" in reply:
                        if r == 0:
                            res.modes[mode].errors.append((q, str(reply["error"])))
                        continue
                    ms = float(reply["ms"])
                    res.modes[mode].ms.append(ms)
                    res.by_kind.setdefault((mode, kind), Latencies()).ms.append(ms)
                    res.per_query.setdefault((mode, q), []).append(ms)
    for w in pool:
        results[w.system].memory_kb = {k: int(v) for k, v in w.ask({"op": "mem"}).items()}


# --- phases ---------------------------------------------------------------------------------------------------


@dataclass
class HttpResult:
    """Start-up times, per-process memory, one request at a time, and the load run."""

    startup_s: list[float] = field(default_factory=list)
    memory_idle: dict[str, dict[str, int]] = field(default_factory=dict)
    memory_loaded: dict[str, dict[str, int]] = field(default_factory=dict)
    serial: SerialResult | None = None
    load: LoadResult | None = None
    error: str | None = None


def _process_memory(master: int) -> dict[str, dict[str, int]]:
    out = {"master": memory_kb(master)}
    for n, pid in enumerate(wait_for_workers(master, HTTP_WORKERS), start=1):
        out[f"worker {n}"] = memory_kb(pid)
    return out


def run_http(
    index_dir: Path, queries: Sequence[tuple[str, str]], s: Settings, tmp: Path, env: dict[str, str]
) -> HttpResult:
    """Start `zhsearch serve` a few times for start-up; time and load the last one over HTTP; always stop it."""
    result = HttpResult()
    # In the order of the in-process phase, for the requests sent one at a time.
    paths = [Zhsearch.search_path(q) for _kind, q in queries]
    for run in range(s.startup_runs):
        port = free_port()
        cmd, health = Zhsearch.serve_command(index_dir, port, HTTP_WORKERS), Zhsearch.health_path()
        started = time.perf_counter()
        with running_server(cmd, port, tmp / "server.log", env=env, cwd=tmp, health_path=health) as server:
            result.startup_s.append(time.perf_counter() - started)
            log(f"http: start-up {run + 1}/{s.startup_runs}: {result.startup_s[-1]:.2f} s")
            # Start-up is measured on every run; only the last one is loaded.
            if run == s.startup_runs - 1:
                _load_server(result, server, paths, s, tmp)
    return result


def _load_server(result: HttpResult, server: Server, paths: Sequence[str], s: Settings, tmp: Path) -> None:
    """Measure the running server's memory idle, time requests one at a time, load it, measure memory again."""
    time.sleep(1.0)
    port = server.port
    result.memory_idle = _process_memory(server.pid)
    log(f"http: one request at a time, {len(paths)} queries, warm-up and {s.rounds} round(s)")
    result.serial = run_serial(port, paths, s.rounds)
    # A fixed shuffle for the load, so consecutive requests mix cheap and expensive kinds.
    paths = list(paths)
    random.Random(42).shuffle(paths)
    if have_wrk():
        run_wrk(port, paths, s.http_warmup_seconds, s.connections, 2, tmp)
        log(f"http: wrk, {s.connections} connections, {s.http_seconds} s")
        result.load = run_wrk(port, paths, s.http_seconds, s.connections, 2, tmp)
    else:
        run_python_load(port, paths, s.http_warmup_seconds, s.connections)
        log(f"http: Python load generator, {s.connections} connections, {s.http_seconds} s")
        result.load = run_python_load(port, paths, s.http_seconds, s.connections)
    result.memory_loaded = _process_memory(server.pid)


@dataclass
class ScaleRow:
    """One size of the scale curve."""

    size: int
    build: BuildResult | None = None
    query: QueryResult | None = None
    # Wall time of the query phase (start-up, warm-up and every round), for the budget's projection.
    query_s: float = 0.0
    skipped: str | None = None


@dataclass
class ScaleResult:
    """The scale curve and what it was built from."""

    passages: int = 0
    chinese: int = 0
    rows: list[ScaleRow] = field(default_factory=list)
    replicated: dict[int, int] = field(default_factory=dict)
    queries: int = 0
    # How many of the queries are of each kind, in file order.
    kinds: dict[str, int] = field(default_factory=dict)
    rounds: int = 1
    budget_min: float = math.nan
    error: str | None = None


def _minutes() -> float:
    return (time.perf_counter() - _started) / 60


def _fmt_min(minutes: float) -> str:
    return fmt_num(minutes, 0 if minutes >= 10 else 1)


def run_scale(
    data: Path, queries: Sequence[tuple[str, str]], s: Settings, backend: str, tmp: Path, env: dict[str, str]
) -> ScaleResult:
    """zhsearch only: build and query indexes of paragraph documents at each size."""
    from naive_baseline import read_jsonl

    result = ScaleResult(queries=len(queries), rounds=s.scale_rounds, budget_min=s.budget_min)
    for kind, _q in queries:
        result.kinds[kind] = result.kinds.get(kind, 0) + 1
    passages = list(paragraph_docs(read_jsonl(data)))
    result.passages = len(passages)
    result.chinese = sum(1 for p in passages if has_chinese(p["body"]))
    files: dict[int, Path] = {}
    for size in s.scale_sizes:
        docs, copies = sample_docs(passages, size)
        if copies:
            result.replicated[size] = copies
        files[size] = tmp / f"scale-{size}.jsonl"
        write_jsonl(docs, files[size])
    del passages
    previous: ScaleRow | None = None
    for size in s.scale_sizes:
        index_dir = tmp / f"scale-{size}-index"
        row = ScaleRow(size)
        result.rows.append(row)
        if previous is not None and previous.build is not None and previous.build.error is None:
            # Builds grow a little faster than linearly; 1.3 keeps the projection on the safe side.
            spent = previous.build.seconds + previous.query_s
            projected = spent * size / previous.build.documents * SCALE_SAFETY / 60
            if _minutes() + projected > s.budget_min:
                row.skipped = (
                    f"skipped: its build and queries would take about {_fmt_min(projected)} min at the rate of the "
                    f"previous size, past the {_fmt_min(s.budget_min)}-minute budget (`--budget-min` sets it)"
                )
                log(f"scale: {row.skipped}")
                files[size].unlink()
                continue
        log(f"scale: building {size:,} documents")
        row.build = run_build("zhsearch", files[size], index_dir, backend, tmp / "build.log", env)
        previous = row
        if row.build.error is None:
            log(f"scale: querying {size:,} documents")
            row.query = QueryResult("zhsearch")
            started = time.perf_counter()
            with workers(["zhsearch"], {"zhsearch": index_dir}, backend, tmp / "query.log", env) as pool:
                row.query.ready_s = pool[0].ready_s
                time_queries(pool, queries, s.scale_rounds, {"zhsearch": row.query})
            row.query_s = time.perf_counter() - started
        shutil.rmtree(index_dir, ignore_errors=True)
        files[size].unlink()
    return result


# --- report ---------------------------------------------------------------------------------------------------


def _mb(n_bytes: float) -> str:
    return fmt_num(n_bytes / 1e6)


def _machine() -> list[str]:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return [
        f"- **Machine:** {os.cpu_count()} cores ({cpu}), {mem_kb / 1024**2:.1f} GiB RAM, {platform.platform()}, "
        f"Python {platform.python_version()}",
    ]


def _git() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"
    return head + (" with uncommitted changes" if dirty else "")


def _pcts(lat: Latencies) -> list[str]:
    return [fmt_ms(lat.pct(p)) for p in PERCENTILES]


def _build_cells(b: BuildResult) -> list[str]:
    return [
        f"{b.documents:,}",
        fmt_num(b.seconds),
        fmt_num(b.cpu_s),
        fmt_num(b.documents / b.seconds, 0),
        fmt_num(b.input_bytes / 1e6 / b.seconds, 2),
        _mb(b.size_bytes),
        fmt_num(b.peak_rss_kb / 1024, 0),
        f"{fmt_num(b.tree_pss_kb / 1024, 0)} ({b.processes})",
    ]


BUILD_HEAD = [
    "docs",
    "wall s",
    "CPU s",
    "docs/s",
    "MB/s",
    "index MB",
    "peak RSS MB (largest process)",
    "peak PSS MB, all processes (count)",
]


def report_builds(builds: dict[str, BuildResult]) -> str:
    """The index build table, with ratios against the baseline."""
    base = builds.get(BASELINE)
    ok_base = base is not None and base.error is None
    rows = []
    for name, b in builds.items():
        if b.error:
            rows.append([LABELS[name], f"**failed:** {b.error}"] + ["–"] * len(BUILD_HEAD))
            continue
        ratios = "–"
        if ok_base and base is not None:
            pairs = ((base.seconds, b.seconds), (base.size_bytes, b.size_bytes), (base.tree_pss_kb, b.tree_pss_kb))
            ratios = " / ".join(fmt_ratio(ratio(x, y)) for x, y in pairs)
        rows.append([LABELS[name]] + _build_cells(b) + [ratios])
    return md_table(["system"] + BUILD_HEAD + ["baseline ÷ system: wall time / index size / PSS"], rows)


def report_queries(results: dict[str, QueryResult], queries: Sequence[tuple[str, str]], rounds: int) -> str:
    """Latency tables: overall, ratios, by kind, slowest, errors."""
    out: list[str] = []
    head = ["system"] + [f"search p{p:.0f}" for p in PERCENTILES] + [f"search+hl p{p:.0f}" for p in PERCENTILES]
    rows = []
    for name, r in results.items():
        if r.error:
            rows.append([LABELS[name]] + ["–"] * 6 + [f"failed: {r.error}", "–"])
            continue
        n_errors = len(r.modes["search"].errors) + len(r.modes["highlight"].errors)
        rows.append(
            [LABELS[name]]
            + _pcts(r.modes["search"])
            + _pcts(r.modes["highlight"])
            + [str(n_errors), f"{len(r.zero_hits)}/{len(queries)}"]
        )
    out.append(md_table(head + ["errors", "queries with no hits"], rows))
    base = results.get(BASELINE)
    if base is not None and base.error is None:
        out.append("")
        out.append("Ratio baseline ÷ system (above 1: the system is that many times faster than the baseline):")
        out.append("")
        ratio_rows = []
        for name, r in results.items():
            if name == BASELINE or r.error:
                continue
            ratio_cells = [
                fmt_ratio(ratio(base.modes[mode].pct(p), r.modes[mode].pct(p)))
                for mode in ("search", "highlight")
                for p in PERCENTILES
            ]
            ratio_rows.append([LABELS[name]] + ratio_cells)
        out.append(md_table(head, ratio_rows))
    zh = results.get("zhsearch")
    if zh is not None and zh.error is None and base is not None and base.error is None:
        kinds = list(dict.fromkeys(kind for kind, _q in queries))
        out.append("")
        out.append("By kind of query, p50 in ms (zhsearch / baseline / ratio):")
        out.append("")
        kind_rows = []
        for kind in kinds:
            n = sum(1 for k, _q in queries if k == kind)
            cells: list[str] = [kind, str(n)]
            for mode in ("search", "highlight"):
                z = zh.by_kind.get((mode, kind), Latencies()).pct(50)
                b = base.by_kind.get((mode, kind), Latencies()).pct(50)
                cells += [fmt_ms(z), fmt_ms(b), fmt_ratio(ratio(b, z))]
            kind_rows.append(cells)
        kind_head = ["kind", "n", "zh search", "base search", "ratio", "zh search+hl", "base search+hl", "ratio"]
        out.append(md_table(kind_head, kind_rows))
        slow = sorted(
            ((statistics.median(v), q) for (mode, q), v in zh.per_query.items() if mode == "highlight"), reverse=True
        )[:8]
        out.append("")
        out.append(f"Slowest zhsearch queries (search+highlight, median of {rounds} round(s), ms):")
        out.append("")
        slow_rows = []
        for ms, q in slow:
            b_ms = base.per_query.get(("highlight", q))
            slow_rows.append([f"`{q}`", fmt_ms(ms), fmt_ms(statistics.median(b_ms)) if b_ms else "error"])
        out.append(md_table(["query", "zhsearch", "baseline"], slow_rows))
    errors = [
        (LABELS[name], mode, q, err)
        for name, r in results.items()
        for mode, lat in r.modes.items()
        for q, err in lat.errors
    ]
    out.append("")
    if errors:
        out.append(f"Queries that raised ({len(errors)} in the first round; not in the latencies):")
        out.append("")
        listed = [[s, m, f"`{q}`", e.replace("|", "\\|")] for s, m, q, e in errors[:MAX_LISTED_ERRORS]]
        out.append(md_table(["system", "mode", "query", "error"], listed))
        if len(errors) > MAX_LISTED_ERRORS:
            out.append(f"\n… and {len(errors) - MAX_LISTED_ERRORS} more.")
    else:
        out.append("No query raised an error in any system.")
    return "\n".join(out)


def report_startup(results: dict[str, QueryResult], http: HttpResult | None) -> str:
    """Server start-up and per-process memory; in-process time to first result and RSS for every system."""
    out: list[str] = []
    if http is not None and http.startup_s:
        t = http.startup_s
        out.append(
            f"`zhsearch serve --workers {HTTP_WORKERS}` launch until `/healthz` answers 200: "
            f"**{statistics.median(t):.2f} s** (median of {len(t)}; min {min(t):.2f}, max {max(t):.2f})."
        )
        out.append("")
        rows = []
        for proc, idle in http.memory_idle.items():
            loaded = http.memory_loaded.get(proc, {})
            rows.append(
                [
                    proc,
                    fmt_num(idle["rss"] / 1024),
                    fmt_num(idle["pss"] / 1024),
                    fmt_num(loaded.get("rss", math.nan) / 1024),
                    fmt_num(loaded.get("pss", math.nan) / 1024),
                ]
            )
        out.append(
            md_table(["gunicorn process", "RSS MB idle", "PSS MB idle", "RSS MB after load", "PSS MB after load"], rows)
        )
        out.append("")
    elif http is not None and http.error:
        out.append(f"Server start-up **failed:** {http.error}")
        out.append("")
    out.append("In-process, one query process per system (no web layer; the baseline has no server):")
    out.append("")
    base = results.get(BASELINE)
    rows = []
    for name, r in results.items():
        if r.error:
            continue
        rss = r.memory_kb.get("VmRSS", 0)
        hwm = r.memory_kb.get("VmHWM", 0)
        ok = base is not None and base.error is None
        rows.append(
            [
                LABELS[name],
                f"{r.ready_s:.2f}",
                fmt_ratio(ratio(base.ready_s, r.ready_s)) if ok and base else "–",
                fmt_num(rss / 1024),
                fmt_num(hwm / 1024),
                fmt_ratio(ratio(base.memory_kb.get("VmHWM", 0), hwm)) if ok and base else "–",
            ]
        )
    head = ["system", "time to first result s", "ratio", "RSS MB after queries", "peak RSS MB", "ratio (peak)"]
    out.append(md_table(head, rows))
    return "\n".join(out)


def report_http_serial(http: HttpResult, results: dict[str, QueryResult], queries: int) -> str:
    """One request at a time over HTTP against the in-process search+highlight of zhsearch and the baseline."""
    serial = http.serial
    if serial is None:
        return f"**failed:** {http.error}" if http.error else "not run"
    lat = serial.latencies
    zh, base = results.get("zhsearch"), results.get(BASELINE)
    rows = [["zhsearch `/api/search` over HTTP, one request at a time", *_pcts(lat)]]
    if zh is not None and zh.error is None:
        rows.append(["zhsearch in-process search+hl (`Searcher.search`)", *_pcts(zh.modes["highlight"])])
    if base is not None and base.error is None:
        base_hl = base.modes["highlight"]
        rows.append(["baseline in-process search+hl (`search_and_highlight`)", *_pcts(base_hl)])
        cells = [fmt_ratio(ratio(base_hl.pct(p), lat.pct(p))) for p in PERCENTILES]
        rows.append(["**baseline in-process ÷ zhsearch HTTP**", *(f"**{c}**" for c in cells)])
    connections = (
        "the server kept the connection alive throughout"
        if serial.connections == 1
        else f"{serial.connections} connections were opened (the server closed some; connects are not timed)"
    )
    errors = (
        f" {len(lat.errors)} queries answered non-2xx and are left out: "
        + ", ".join(f"`{q}` ({e})" for q, e in lat.errors[:MAX_LISTED_ERRORS])
        + "."
        if lat.errors
        else ""
    )
    return (
        f"**One request at a time.** The same {queries} queries as the in-process phase, in the same order, sent to "
        f"`/api/search?q=…&size=10` on one keep-alive `http.client` connection ({connections}; one gunicorn "
        f"worker answers a connection): one pass to warm up, then {serial.rounds} timed round(s), "
        f"{len(lat.ms):,} requests. Each time runs from sending the request to reading the whole body: gunicorn, "
        "Flask, parsing, search, facet counts, highlighting and JSON (uncompressed: no `Accept-Encoding`; no "
        "`If-None-Match`, so every request searches). The ratio compares it with the tutorial baseline's "
        "in-process `search_and_highlight` (parse, search, Whoosh's highlighter on the body, top 10; no web "
        "layer, since the baseline has no server) from the query phase above, same queries. "
        f"Target: at least 6× at p50.{errors}\n\n" + md_table(["ms", *(f"p{p:.0f}" for p in PERCENTILES)], rows)
    )


def report_http(http: HttpResult, results: dict[str, QueryResult], queries: int) -> str:
    """One request at a time, then load results and the web layer's cost against in-process serial throughput."""
    serial_part = report_http_serial(http, results, queries) + "\n\n"
    if http.load is None:
        return serial_part + (f"**Load failed:** {http.error}" if http.error else "Load not run.")
    load = http.load
    serial_qps = results["zhsearch"].modes["highlight"].serial_qps()
    rows = [
        ["load generator", load.tool],
        ["concurrent connections", str(load.connections)],
        ["duration s", fmt_num(load.seconds)],
        ["requests", f"{load.requests:,}"],
        ["**QPS**", f"**{fmt_num(load.qps)}**"],
        ["latency p50 / p99 ms", f"{fmt_ms(load.p50_ms)} / {fmt_ms(load.p99_ms)}"],
        ["non-2xx responses", str(load.non_2xx)],
        ["connection errors (connect/read/write/timeout)", str(load.socket_errors)],
        ["in-process serial QPS (1 thread, search+highlight, same queries)", fmt_num(serial_qps)],
        ["HTTP QPS ÷ serial QPS", fmt_ratio(ratio(load.qps, serial_qps))],
    ]
    return serial_part + (
        f"**Under load.** `/api/search?q=…&size=10` on 127.0.0.1, `zhsearch serve --workers {HTTP_WORKERS}` "
        f"(gunicorn, access log on), {queries} benchmark queries in a fixed shuffled rotation. The load generator "
        "shares the 2 cores with the server. No baseline ratio here: the tutorial baseline has no web server.\n\n"
        + md_table(["measure", "value"], rows)
    )


def report_scale(scale: ScaleResult, limit_docs: int | None, *, own_run: bool) -> str:
    """The scale curve table, how its documents were made, and (in its own run) the tail by kind at the top size."""
    if scale.error:
        return f"**failed:** {scale.error}"
    if own_run:
        scope = "zhsearch only; the side-by-side ratios against the tutorial baseline are `make bench`'s."
    else:
        scope = (
            "zhsearch only, a short curve for the trend beside the ratios above. The full curve, to "
            f"{SCALE.scale_sizes[-1]:,} paragraphs with every benchmark query × {SCALE.scale_rounds} rounds and its "
            "own time budget, is `make bench-scale`: its report is `bench/results/bench-scale-<UTC date>.md`."
        )
    out = [
        f"{scope} Documents are **paragraphs**, not articles: one per body line of at least 20 characters "
        "with a letter in it (so code lines from listings count), id `<article id>#<n>`, title = the article's "
        f"title, other fields copied. The data has **{scale.passages:,}** such paragraphs "
        f"({scale.chinese:,} of them contain Chinese)"
        + (f" in the first {limit_docs} articles" if limit_docs else "")
        + "; a size below that takes paragraphs spread evenly over all of them."
    ]
    if scale.replicated:
        counts = "; ".join(f"{size:,}: **{n:,}** ({n / size:.0%})" for size, n in scale.replicated.items())
        out.append(
            f"\nAbove {scale.passages:,} documents there are too few paragraphs: such a size takes all of them, then "
            f"**replicated copies** with new ids. Copies by size: {counts}. A copy repeats a paragraph, from the "
            "first on, with id `<id>~r<k>` for its k-th copy and the same title, text and fields. *search+hl* "
            "(`Searcher.search`, as `/api/search`) folds a copy into its original as a near-duplicate, so it reads "
            "more hits to fill a page of 10 distinct results; *search* (the raw page) does not fold."
        )
    out.append("")
    out.append(
        f"Queries: {scale.queries} of the benchmark queries"
        + f" ({', '.join(f'{k} {n}' for k, n in scale.kinds.items())})"
        + f", top {K}; one pass to warm up, then {scale.rounds} timed round(s) per mode at each size."
        + (
            f" Budget: {_fmt_min(scale.budget_min)} minutes for the whole run."
            if not math.isnan(scale.budget_min)
            else ""
        )
    )
    out.append("")
    rows = []
    for row in scale.rows:
        b = row.build
        if b is None or b.error:
            reason = row.skipped or f"failed: {b.error if b else 'not run'}"
            rows.append([f"{row.size:,}", reason] + ["–"] * (len(BUILD_HEAD) + 2))
            continue
        q = row.query
        search = q.modes["search"] if q else Latencies()
        hl = q.modes["highlight"] if q else Latencies()
        latency = [fmt_ms(search.pct(50)), fmt_ms(search.pct(99)), fmt_ms(hl.pct(50)), fmt_ms(hl.pct(99))]
        rows.append(_build_cells(b) + latency)
    head = BUILD_HEAD + ["search p50 ms", "search p99 ms", "search+hl p50 ms", "search+hl p99 ms"]
    out.append(md_table(head, rows))
    raised = [
        f"{row.size:,}: {len(row.query.modes['search'].errors) + len(row.query.modes['highlight'].errors)}"
        for row in scale.rows
        if row.query and (row.query.modes["search"].errors or row.query.modes["highlight"].errors)
    ]
    out.append("")
    out.append(
        f"Queries that raised (not in the latencies), by size: {'; '.join(raised)}." if raised else "No query raised."
    )
    for row in scale.rows:
        if row.size in SCALE_P99_TARGET_MS and row.query is not None:
            p99, target = row.query.modes["highlight"].pct(99), SCALE_P99_TARGET_MS[row.size]
            verdict = "met" if p99 <= target else "not met"
            out.append(
                f"\nTarget at {row.size:,}: search+hl p99 ≤ {target:.0f} ms; measured {fmt_ms(p99)} ms ({verdict})."
            )
    if own_run:
        out.append("")
        out.append(report_scale_kinds(scale))
    return "\n".join(out)


def report_scale_kinds(scale: ScaleResult) -> str:
    """Latency by kind of query at the largest size that was measured: where the tail comes from."""
    measured = [row for row in scale.rows if row.query is not None and row.query.error is None]
    if not measured:
        return "No size was queried, so no latency by kind."
    top = measured[-1]
    assert top.query is not None
    rows = []
    for kind, n in scale.kinds.items():
        search = top.query.by_kind.get(("search", kind), Latencies())
        hl = top.query.by_kind.get(("highlight", kind), Latencies())
        rows.append([kind, n, fmt_ms(search.pct(50)), fmt_ms(search.pct(99)), fmt_ms(hl.pct(50)), fmt_ms(hl.pct(99))])
    head = ["kind", "queries", "search p50 ms", "search p99 ms", "search+hl p50 ms", "search+hl p99 ms"]
    return f"By kind of query at {top.size:,} documents (all rounds pooled):\n\n" + md_table(head, rows)


# --- main -----------------------------------------------------------------------------------------------------


def _prepare_data(data: Path, limit: int | None, tmp: Path) -> Path:
    if limit is None:
        return data
    subset = tmp / "data-subset.jsonl"
    with open(data, encoding="utf-8") as src, open(subset, "w", encoding="utf-8") as dst:
        n = 0
        for line in src:
            if line.strip():
                dst.write(line)
                n += 1
                if n >= limit:
                    break
    return subset


def snapshot_code(tmp: Path) -> tuple[dict[str, str], str]:
    """Copy zhsearch's packages and return (environment that imports the copy, content hash).

    Other engineers edit the working tree while the benchmark runs; without a
    copy, an index built by one version could be searched by the next.
    """
    src = tmp / "src"
    digest = hashlib.sha256()
    for package in Zhsearch.PACKAGES:
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(src)).encode("utf-8") + b"\0" + path.read_bytes())
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(x for x in (str(src), env.get("PYTHONPATH")) if x)
    probe = f"import {', '.join(Zhsearch.PACKAGES)}; print({Zhsearch.PACKAGES[0]}.__file__)"
    # Children run in the work directory: a `python -c` or gunicorn would put the checkout's cwd first on sys.path.
    where = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp, capture_output=True, text=True, check=True)
    if not where.stdout.strip().startswith(str(src)):
        raise RuntimeError(f"the code snapshot is not imported first: {where.stdout.strip()}")
    return env, digest.hexdigest()[:12]


def _count_docs(path: Path) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def _phase_error(phase: str) -> str:
    log(f"{phase} failed:\n{traceback.format_exc()}")
    return traceback.format_exc(limit=1).strip().splitlines()[-1]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get(DATA_ENV) or DEFAULT_DATA),
        help=f"articles JSON Lines file (default: ${DATA_ENV} or {DEFAULT_DATA})",
    )
    parser.add_argument("--queries", type=Path, default=BENCH_DIR / "queries.tsv", help="kind<TAB>query file")
    parser.add_argument("--quick", action="store_true", help="small data, few queries, short HTTP run")
    parser.add_argument("--peers", action="store_true", help="also measure tantivy and SQLite FTS5")
    parser.add_argument("--backend", default="whoosh", help="zhsearch index backend (default: whoosh)")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results", help="where to save the report")
    parser.add_argument("--skip-http", action="store_true", help="no server start-up or HTTP load")
    parser.add_argument("--skip-scale", action="store_true", help="no scale curve")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (indexes, logs)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N articles of --data")
    parser.add_argument(
        "--builds-only", action="store_true", help="only the index builds, side by side (no queries, HTTP or scale)"
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="only the scale curve (`make bench-scale`): 10k to 1M paragraphs, every query, 3 rounds, "
        "its own budget and report bench-scale-<date>.md",
    )
    parser.add_argument("--sizes", type=_sizes, metavar="N,N,…", help="scale curve sizes in documents, e.g. 2000,5000")
    parser.add_argument("--rounds", type=int, metavar="N", help="timed rounds per mode in every query phase")
    parser.add_argument(
        "--budget-min", type=float, metavar="MIN", help="the scale curve's budget for the whole run, in minutes"
    )
    args = parser.parse_args(argv)
    if args.scale and (args.builds_only or args.peers):
        parser.error("--scale measures zhsearch alone: no --builds-only or --peers")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 2000,5000, not {text!r}") from None
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"expected positive sizes like 2000,5000, not {text!r}")
    return sorted(set(sizes))


def settings_for(args: argparse.Namespace) -> Settings:
    """The preset for --quick, --scale or a full run, with --sizes, --rounds and --budget-min applied."""
    s = QUICK if args.quick else SCALE if args.scale else FULL
    if args.sizes:
        s = dataclasses.replace(s, scale_sizes=list(args.sizes))
    if args.rounds:
        s = dataclasses.replace(s, rounds=args.rounds, scale_rounds=args.rounds)
    if args.budget_min is not None:
        s = dataclasses.replace(s, budget_min=args.budget_min)
    return s


def _report_head(
    args: argparse.Namespace,
    s: Settings,
    date: datetime,
    load_start: tuple[float, float, float],
    commit: str,
    code_hash: str,
    data: Path,
    n_docs: int,
    limit: int | None,
    queries: Sequence[tuple[str, str]],
) -> list[str]:
    """The title, the run's conditions (date, machine, load, code, data, queries) and the build table's heading."""
    kinds = ", ".join(f"{k} {sum(1 for kk, _ in queries if kk == k)}" for k in dict.fromkeys(k for k, _ in queries))
    return [
        f"# zhsearch benchmark, {date:%Y-%m-%d %H:%M} UTC" + (" (quick run)" if args.quick else ""),
        "",
        *_conditions(args, False, date, load_start, commit, code_hash, data, n_docs, limit),
        *(
            []
            if args.builds_only
            else [
                f"- **Queries:** {len(queries)} from `bench/queries.tsv` ({kinds}); top {K} hits; "
                f"each system warmed up with one pass, then {s.rounds} timed round(s) per mode, systems alternating "
                "query by query, each in its own process."
            ]
        ),
        "",
        "## Index build",
        "",
        "Each build runs in its own process (zhsearch may fork writer processes). Wall time includes interpreter "
        "start-up; CPU s is user+system time of the build and the children it waited for; peak RSS is the "
        "largest single process (wait4 rusage); peak PSS sums all the build's processes, sampled 4 times a "
        "second (PSS splits shared pages, so forked writers are not counted twice).",
        "",
    ]


def _conditions(
    args: argparse.Namespace,
    scale_only: bool,
    date: datetime,
    load_start: tuple[float, float, float],
    commit: str,
    code_hash: str,
    data: Path,
    n_docs: int,
    limit: int | None,
) -> list[str]:
    """The run's date and length, machine, load at start and end, code and data, as a Markdown list."""
    total_min = (time.perf_counter() - _started) / 60
    target = "make bench-scale" if scale_only else "make bench"
    return [
        f"- **Date:** {date:%Y-%m-%d %H:%M:%S} UTC; `{target}` took **{total_min:.1f} min**",
        *_machine(),
        f"- **Load average** (1/5/15 min) at start {' / '.join(f'{x:.2f}' for x in load_start)}, at end "
        f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())}: other engineers share these cores, so absolute "
        "numbers are noisy" + ("." if scale_only else "; ratios compare systems measured side by side in this run."),
        f"- **zhsearch** {Zhsearch.version()}, commit {commit}: every phase ran a copy of "
        f"{' and '.join(f'`{p}/`' for p in Zhsearch.PACKAGES)} taken at the start (content hash {code_hash}); "
        f"backend `{args.backend}`."
        + (
            ""
            if scale_only
            else " **Baseline:** the tutorial jieba `ChineseAnalyzer` + Whoosh recipe in `bench/naive_baseline.py`"
            + (
                ". **Peers** (references, jieba search-mode text joined by spaces): tantivy, SQLite FTS5"
                if args.peers
                else ""
            )
            + "."
        ),
        f"- **Data:** `{args.data}` ({_mb(args.data.stat().st_size)} MB)"
        + (f", first {n_docs:,} articles ({_mb(data.stat().st_size)} MB)" if limit else f", {n_docs:,} articles")
        + (
            ", split into paragraphs as documents (see below)."
            if scale_only
            else "; the scale curve uses paragraphs as documents."
        ),
    ]


def _scale_phase(
    data: Path, queries: Sequence[tuple[str, str]], s: Settings, backend: str, tmp: Path, env: dict[str, str]
) -> ScaleResult:
    """run_scale, with a failure reported rather than raised."""
    try:
        return run_scale(data, queries, s, backend, tmp, env)
    except Exception:
        return ScaleResult(error=_phase_error("scale"))


def run(args: argparse.Namespace, s: Settings, tmp: Path) -> str:
    """Every phase, then the report."""
    date = datetime.now(UTC)
    load_start = os.getloadavg()
    args.data = args.data.resolve()
    if not args.data.is_file():
        raise SystemExit(f"no data file at {args.data}; pass --data or set {DATA_ENV}")
    limit = args.limit or s.limit_docs
    data = _prepare_data(args.data, limit, tmp)
    commit = _git()
    env, code_hash = snapshot_code(tmp)
    all_queries = load_queries(args.queries)
    queries = stratified(all_queries, s.per_kind) if s.per_kind else all_queries
    scale_queries = stratified(all_queries, s.scale_per_kind) if s.scale_per_kind else all_queries
    systems = ["zhsearch", BASELINE] + (list(PEERS) if args.peers else [])
    n_docs = _count_docs(data)
    if args.scale:
        log(f"scale only: {n_docs:,} articles, {len(scale_queries)} queries, sizes {s.scale_sizes}; work dir {tmp}")
        curve = _scale_phase(data, scale_queries, s, args.backend, tmp, env)
        return "\n".join(
            [
                f"# zhsearch scale benchmark, {date:%Y-%m-%d %H:%M} UTC" + (" (quick run)" if args.quick else ""),
                "",
                *_conditions(args, True, date, load_start, commit, code_hash, data, n_docs, limit),
                "",
                "## Scale (zhsearch only)",
                "",
                report_scale(curve, limit, own_run=True),
                "",
            ]
        )
    log(f"{n_docs:,} articles, {len(queries)} queries, systems: {', '.join(systems)}; work dir {tmp}")

    builds: dict[str, BuildResult] = {}
    index_dirs: dict[str, Path] = {}
    for name in systems:
        log(f"build: {name}")
        index_dirs[name] = tmp / f"index-{name}"
        builds[name] = run_build(name, data, index_dirs[name], args.backend, tmp / "build.log", env)
        log(f"build: {name}: {builds[name].seconds:.1f} s {builds[name].error or ''}")
    if args.builds_only:
        for name in systems:
            shutil.rmtree(index_dirs[name], ignore_errors=True)
        head = _report_head(args, s, date, load_start, commit, code_hash, data, n_docs, limit, queries)
        return "\n".join([*head, report_builds(builds), ""])

    results: dict[str, QueryResult] = {name: QueryResult(name) for name in systems}
    for name, b in builds.items():
        if b.error:
            results[name].error = "no index (build failed)"
    ready = [name for name in systems if results[name].error is None]
    try:
        with workers(ready, index_dirs, args.backend, tmp / "query.log", env) as pool:
            for w in pool:
                results[w.system].ready_s = w.ready_s
            time_queries(pool, queries, s.rounds, results)
    except Exception:
        err = _phase_error("queries")
        for name in ready:
            results[name].error = results[name].error or err

    http: HttpResult | None = None
    if not args.skip_http and builds["zhsearch"].error is None:
        try:
            http = run_http(index_dirs["zhsearch"], queries, s, tmp, env)
        except Exception:
            http = HttpResult(error=_phase_error("http"))
    for name in systems:
        shutil.rmtree(index_dirs[name], ignore_errors=True)

    scale = None if args.skip_scale else _scale_phase(data, scale_queries, s, args.backend, tmp, env)

    lines = [
        *_report_head(args, s, date, load_start, commit, code_hash, data, n_docs, limit, queries),
        report_builds(builds),
        "",
        "## Query latency (in-process, ms)",
        "",
        "*search* = the top 10 hits with their stored fields, no highlighting (zhsearch: the store's raw page; "
        "baseline: `NaiveIndex.search`). *search+hl* = what a results page needs (zhsearch: `Searcher.search`, "
        "highlighted title and snippet; baseline: `search_and_highlight`, Whoosh's highlighter on the body).",
        "",
        report_queries(results, queries, s.rounds),
        "",
        "## HTTP",
        "",
        report_http(http, results, len(queries)) if http else "not run",
        "",
        "## Start-up and memory",
        "",
        report_startup(results, http),
        "",
        "## Scale (zhsearch only)",
        "",
        report_scale(scale, limit, own_run=False) if scale else "not run (`--skip-scale`)",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the report and save it under bench/results/."""
    args = parse_args(argv)
    settings = settings_for(args)
    tmp = Path(tempfile.mkdtemp(prefix="zhsearch-bench-"))
    try:
        report = run(args, settings, tmp)
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    args.results.mkdir(parents=True, exist_ok=True)
    kind = ("-quick" if args.quick else "") + ("-builds" if args.builds_only else "")
    name = f"bench{'-scale' if args.scale else ''}-{datetime.now(UTC):%Y-%m-%d}{kind}.md"
    path = args.results / name
    path.write_text(report, encoding="utf-8")
    print(report)
    log(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
