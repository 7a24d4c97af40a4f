"""Fast checks of the benchmark's helpers (bench/bench_stats.py, bench/harness.py, the peers' query translation,
the serial HTTP client, bench.py's options and its scale report)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from bench_http import run_serial
from bench_stats import (
    Latencies,
    evenly_spaced,
    fmt_ratio,
    load_queries,
    paragraph_docs,
    percentile,
    ratio,
    sample_docs,
    stratified,
)
from bench_systems import fts5_query, query_clauses, tantivy_query
from harness import ServerError, free_ports, running_server

import bench

from .conftest import ROOT


def test_percentile_interpolates_like_numpy() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 3.0
    assert percentile(values, 100) == 5.0
    assert percentile(values, 25) == 2.0
    assert percentile([1.0, 2.0], 99) == pytest.approx(1.99)
    assert percentile([7.0], 95) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)
    with pytest.raises(ValueError):
        percentile([], -1)


def test_latencies_and_ratio() -> None:
    lat = Latencies(ms=[10.0, 20.0, 30.0])
    assert lat.pct(50) == 20.0
    assert lat.serial_qps() == pytest.approx(50.0)
    assert math.isnan(Latencies().serial_qps())
    assert ratio(30.0, 10.0) == 3.0
    assert math.isnan(ratio(30.0, 0.0))
    assert math.isnan(ratio(None, 1.0))
    assert fmt_ratio(2.345) == "2.35×"
    assert fmt_ratio(math.nan) == "–"


def test_queries_file_is_well_formed() -> None:
    rows = load_queries(ROOT / "bench" / "queries.tsv")
    assert len(rows) >= 200
    kinds = {kind for kind, _q in rows}
    assert {"word_zh", "word_en", "keywords", "phrase", "identifier", "question", "filter"} <= kinds
    assert len(set(rows)) == len(rows), "duplicate queries"


def test_stratified_takes_each_kind_evenly() -> None:
    rows = [("a", f"a{i}") for i in range(10)] + [("b", "b0")]
    picked = stratified(rows, 2)
    assert picked == [("a", "a0"), ("a", "a5"), ("b", "b0")]
    assert evenly_spaced([1, 2, 3], 5) == [1, 2, 3]


def test_paragraph_docs_and_sampling() -> None:
    long_1 = "这是第一段足够长的中文段落，用来测试切分。"
    long_2 = "另一段也足够长的中文内容，在这里出现了两次。"
    body = "\n".join(["短", long_1, "-" * 50, "  ", long_2])
    docs = list(paragraph_docs([{"id": "a1", "title": "标题", "body": body, "tags": ["t"]}]))
    assert [d["body"] for d in docs] == [long_1, long_2]
    assert [d["id"] for d in docs] == ["a1#1", "a1#2"]
    assert all(d["title"] == "标题" and d["tags"] == ["t"] for d in docs)
    sampled, copies = sample_docs(docs, 5)
    assert len(sampled) == 5 and copies == 3
    assert len({d["id"] for d in sampled}) == 5
    assert sample_docs(docs, 1) == ([docs[0]], 0)


def test_peer_query_translation() -> None:
    def segment(text: str) -> list[str]:
        return text.split("|") if "|" in text else [text]

    clauses = query_clauses('title:Ubuntu 开源|软件 "Linux 基金会" tag:java HTTP/2', segment)
    assert clauses == [
        ("title", False, ["ubuntu"]),
        (None, False, ["开源", "软件"]),
        (None, True, ["linux", "基金会"]),
        (None, False, ["http", "2"]),
    ]
    assert tantivy_query(clauses) == '+title:ubuntu +开源 +软件 +"linux 基金会" +http +2'
    assert fts5_query(clauses) == 'title : "ubuntu" AND "开源" AND "软件" AND "linux 基金会" AND "http" AND "2"'


def test_free_ports_are_distinct() -> None:
    ports = free_ports(6)
    assert len(set(ports)) == 6 and all(0 < p < 65536 for p in ports)


def test_running_server_is_polled_until_healthy_and_stopped(tmp_path: Path) -> None:
    # Any HTTP server shows the start/poll/stop cycle; the standard library's answers 200 on "/".
    port = free_ports(1)[0]
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)]
    with running_server(cmd, port, tmp_path / "server.log", health_path="/") as server:
        assert server.url == f"http://127.0.0.1:{port}"
        assert server.proc.poll() is None
    assert server.proc.poll() is not None


def test_a_server_that_exits_is_an_error_with_its_log(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "import sys; print('no index here'); sys.exit(3)"]
    with pytest.raises(ServerError, match="(?s)status 3.*no index here"):
        with running_server(cmd, free_ports(1)[0], tmp_path / "server.log"):
            pass


def test_run_serial_times_each_round_and_counts_errors_and_connections(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    port = free_ports(1)[0]
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)]
    with running_server(cmd, port, tmp_path / "server.log", health_path="/a.txt"):
        result = run_serial(port, ["/a.txt", "/missing"], rounds=2)
    # The warm-up pass is not timed; the 404 is an error once, not a latency.
    assert len(result.latencies.ms) == 2 and all(ms > 0 for ms in result.latencies.ms)
    assert result.latencies.errors == [("/missing", "HTTP 404")]
    assert result.rounds == 2
    # http.server answers HTTP/1.0 and closes: one connection per request, warm-up included.
    assert result.connections == 6


def test_scale_options_and_presets() -> None:
    full = bench.settings_for(bench.parse_args([]))
    assert full.scale_sizes == [10_000, 100_000] and full.scale_rounds == 1
    scale = bench.settings_for(bench.parse_args(["--scale"]))
    assert scale.scale_sizes[-1] == 1_000_000 and scale.scale_rounds == 3
    assert scale.scale_per_kind is None and scale.budget_min == 60.0
    quick = bench.settings_for(
        bench.parse_args(["--scale", "--sizes", "5000,2000", "--rounds", "1", "--budget-min", "5"])
    )
    assert quick.scale_sizes == [2000, 5000] and quick.scale_rounds == 1 and quick.rounds == 1
    assert quick.budget_min == 5.0
    for bad in (["--sizes", "0"], ["--sizes", "a,b"], ["--scale", "--peers"], ["--rounds", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def _query_result(ms: float) -> bench.QueryResult:
    q = bench.QueryResult("zhsearch")
    for mode in ("search", "highlight"):
        q.modes[mode] = Latencies(ms=[ms, 2 * ms])
        q.by_kind[(mode, "question")] = Latencies(ms=[2 * ms])
        q.by_kind[(mode, "word_zh")] = Latencies(ms=[ms])
    return q


def test_scale_report_says_what_was_replicated_and_the_tail_by_kind() -> None:
    build = bench.BuildResult("zhsearch", documents=5000, seconds=10.0, input_bytes=1_000_000, size_bytes=2_000_000)
    scale = bench.ScaleResult(passages=3000, chinese=2000, queries=2, kinds={"word_zh": 1, "question": 1}, rounds=3)
    scale.replicated = {5000: 2000}
    scale.rows = [
        bench.ScaleRow(5000, build=build, query=_query_result(10.0)),
        bench.ScaleRow(20_000, skipped="skipped: past the budget"),
        bench.ScaleRow(300_000, build=build, query=_query_result(100.0)),
    ]
    own = bench.report_scale(scale, None, own_run=True)
    assert "5,000: **2,000** (40%)" in own and "`<id>~r<k>`" in own
    assert "3 timed round(s)" in own and "skipped: past the budget" in own
    assert "By kind of query at 300,000 documents" in own and "| question | 1 | 200 |" in own
    assert "Target at 300,000: search+hl p99 ≤ 150 ms; measured 199 ms (not met)." in own
    short = bench.report_scale(scale, None, own_run=False)
    assert "make bench-scale" in short and "By kind" not in short


def test_http_report_compares_one_request_at_a_time_with_the_baselines_in_process_latency() -> None:
    from bench_http import SerialResult

    results = {"zhsearch": _query_result(4.0), "naive": _query_result(20.0)}
    http = bench.HttpResult(serial=SerialResult(Latencies(ms=[10.0, 10.0, 10.0]), rounds=1, connections=1))
    text = bench.report_http(http, results, 3)
    assert "| **baseline in-process ÷ zhsearch HTTP** | **3.00×** |" in text
    assert "kept the connection alive throughout" in text and "Load not run." in text
