"""The relevance harness (bench/eval.py): hand-computed metrics and a run on a tiny benchmark."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import bench_stats
import pytest

from .conftest import ROOT


def _load_eval() -> ModuleType:
    # bench/ is a folder of scripts, not a package, so load the file by path.
    spec = importlib.util.spec_from_file_location("bench_eval", ROOT / "bench" / "eval.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the file executes.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ev = _load_eval()

# Written for this test; each query names words that occur only in its passage.
PASSAGES = [
    {"id": "p-wall", "title": "长城", "body": "长城是古代修建的军事防御工程，东起山海关，西至嘉峪关。"},
    {"id": "p-panda", "title": "大熊猫", "body": "大熊猫主要生活在四川的山区，以竹子为主要食物。"},
    {"id": "p-river", "title": "黄河", "body": "黄河流经青海、甘肃、宁夏等省区，最后注入渤海。"},
    {"id": "p-palace", "title": "故宫", "body": "故宫位于北京中轴线的中心，是明清两代的皇家宫殿。"},
    {"id": "p-lake", "title": "西湖", "body": "西湖位于浙江杭州，以苏堤和断桥闻名。"},
]
QUERIES = [
    {"id": "q1", "text": "嘉峪关"},
    {"id": "q2", "text": "四川 竹子"},
    {"id": "q3", "text": "渤海"},
    # Blank: zhsearch rejects it with QueryError, which must count as a miss, not abort the run.
    {"id": "q4", "text": "   "},
    # No judgment in qrels.tsv: left out of the scores.
    {"id": "q5", "text": "宫殿"},
]
QRELS = "q1\tp-wall\t1\nq2\tp-panda\t1\nq3\tp-river\t1\nq4\tp-palace\t1\n"


def write_benchmark(root: Path, name: str = "tiny") -> Path:
    """A benchmark folder in the shared data's format."""
    folder = root / name
    folder.mkdir(parents=True)
    with open(folder / "passages.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(p, ensure_ascii=False) + "\n" for p in PASSAGES)
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({**q, "answers": [], "split": "test"}, ensure_ascii=False) + "\n" for q in QUERIES)
    (folder / "qrels.tsv").write_text(QRELS, encoding="utf-8")
    return folder


# ---------------------------------------------------------------- metrics


def test_mrr_is_the_reciprocal_rank_of_the_first_relevant_hit_within_k() -> None:
    assert ev.mrr_at(["a", "b", "c"], {"a"}, 10) == 1.0
    assert ev.mrr_at(["x", "y", "a"], {"a"}, 10) == pytest.approx(1 / 3)
    assert ev.mrr_at(["x", "a", "b"], {"a", "b"}, 10) == 0.5
    assert ev.mrr_at(["x", "y"], {"a"}, 10) == 0.0
    assert ev.mrr_at([], {"a"}, 10) == 0.0
    # Beyond the cut-off does not count.
    assert ev.mrr_at(["x"] * 10 + ["a"], {"a"}, 10) == 0.0


def test_ndcg_uses_binary_gain_and_the_ideal_ranking() -> None:
    assert ev.ndcg_at(["a", "x"], {"a"}, 10) == 1.0
    assert ev.ndcg_at(["x", "a"], {"a"}, 10) == pytest.approx(1 / math.log2(3))
    assert ev.ndcg_at(["x", "y", "a"], {"a"}, 10) == pytest.approx(0.5)
    assert ev.ndcg_at(["x", "y"], {"a"}, 10) == 0.0
    assert ev.ndcg_at(["x", "a"], {"a"}, 1) == 0.0
    # Two relevant: found at ranks 1 and 3, ideal at ranks 1 and 2.
    assert ev.ndcg_at(["a", "x", "b"], {"a", "b"}, 10) == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))
    # A duplicated relevant id is credited once.
    assert ev.ndcg_at(["a", "a"], {"a", "b"}, 10) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_recall_counts_relevant_ids_within_k() -> None:
    assert ev.recall_at(["a"], {"a"}, 1) == 1.0
    assert ev.recall_at(["x", "a"], {"a"}, 1) == 0.0
    assert ev.recall_at(["x", "a"], {"a"}, 10) == 1.0
    assert ev.recall_at(["a", "x"], {"a", "b"}, 10) == 0.5
    assert ev.recall_at([], {"a"}, 100) == 0.0


def test_percentile_is_the_shared_one() -> None:
    assert ev.percentile is bench_stats.percentile
    # Position 0.95 * 19 = 18.05 in 1..20: between 19 and 20.
    assert ev.percentile([float(i) for i in range(20, 0, -1)], 95) == pytest.approx(19.05)
    # The shared percentile is NaN for no values; a run without queries still reports 0.0 ms, as before.
    assert math.isnan(ev.percentile([], 95))
    assert ev.summarize([]).p95_ms == 0.0


def test_summarize_averages_over_queries_and_counts_errors_as_misses() -> None:
    results = [
        ev.QueryResult("q1", ["a", "x"], frozenset({"a"}), 2.0),
        ev.QueryResult("q2", ["x", "b"], frozenset({"b"}), 4.0),
        ev.QueryResult("q3", [], frozenset({"c"}), 6.0, error="ValueError: bad query"),
    ]
    s = ev.summarize(results)
    assert s.queries == 3 and s.errors == 1
    assert s.mrr10 == pytest.approx((1 + 0.5 + 0) / 3)
    assert s.ndcg10 == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert s.r1 == pytest.approx(1 / 3)
    assert s.r10 == pytest.approx(2 / 3)
    assert s.r100 == pytest.approx(2 / 3)
    assert s.mean_ms == pytest.approx(4.0)
    assert s.p95_ms == pytest.approx(5.8)


def test_load_qrels_keeps_positive_grades_only(tmp_path: Path) -> None:
    path = tmp_path / "qrels.tsv"
    path.write_text("q1\tp1\t1\nq1\tp2\t1\nq2\tp3\t0\n\nq3\tp4\t2\n", encoding="utf-8")
    assert ev.load_qrels(path) == {"q1": frozenset({"p1", "p2"}), "q3": frozenset({"p4"})}


# ---------------------------------------------------------------- running


class _FakeSystem:
    name = "fake"
    build_note = ""
    query_errors: tuple[type[BaseException], ...] = (ValueError,)

    def build(self, passages: Path) -> int:
        return 0

    def search(self, text: str, k: int) -> list[str]:
        if text == "bad":
            raise ValueError("unparsable")
        if text == "crash":
            raise KeyError("bug")
        return [f"d{i}" for i in range(k + 5)]

    def close(self) -> None:
        pass


def test_run_queries_counts_declared_errors_as_misses_and_cuts_at_k() -> None:
    queries = [ev.Query("q1", "ok"), ev.Query("q2", "bad")]
    qrels = {"q1": frozenset({"d2"}), "q2": frozenset({"d0"})}
    results = ev.run_queries(_FakeSystem(), queries, qrels, k=10)
    assert [len(r.ranked_ids) for r in results] == [10, 0]
    assert results[0].error is None and results[1].error == "ValueError: unparsable"
    assert ev.summarize(results).mrr10 == pytest.approx((1 / 3) / 2)


def test_run_queries_lets_undeclared_errors_through() -> None:
    with pytest.raises(KeyError):
        ev.run_queries(_FakeSystem(), [ev.Query("q1", "crash")], {"q1": frozenset({"d0"})}, k=10)


def test_report_states_whether_each_target_is_met() -> None:
    def row(set_name: str, mrr: float) -> object:
        summary = ev.Summary(10, 0, mrr, mrr, mrr, mrr, mrr, 1.0, 2.0)
        return ev.Row(set_name, "zhsearch", summary, 1.0, 100)

    report = ev.render_report([row("cmrc", 0.99), row("drcd", 0.5)], {"Date": "today"})
    assert "cmrc ≥ 0.985: 0.9900 met" in report
    assert "drcd ≥ 0.950: 0.5000 NOT met" in report
    assert "| cmrc | zhsearch | 0.9900 |" in report


def test_data_dir_comes_from_option_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_data, cli_data = tmp_path / "env", tmp_path / "cli"
    write_benchmark(env_data)
    write_benchmark(cli_data)
    monkeypatch.setenv(ev.DATA_ENV, str(env_data))
    assert ev.parse_args(["--sets", "tiny"]).data == env_data
    assert ev.parse_args(["--sets", "tiny", "--data", str(cli_data)]).data == cli_data
    with pytest.raises(SystemExit):
        ev.parse_args(["--sets", "nonexistent"])
    with pytest.raises(SystemExit):
        ev.parse_args(["--sets", "tiny", "--systems", "zhsearch,lucene"])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(stdout, report file) of one full harness run on the tiny benchmark, both systems."""
    root = tmp_path_factory.mktemp("bench")
    write_benchmark(root / "data")
    out = root / "results" / "eval.md"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = ev.main(["--data", str(root / "data"), "--sets", "tiny", "--out", str(out)])
    assert status == 0
    return stdout.getvalue(), out.read_text(encoding="utf-8")


def _row(report: str, system: str) -> list[str]:
    lines = [line for line in report.splitlines() if line.startswith(f"| tiny | {system} |")]
    assert len(lines) == 1, report
    return [cell.strip() for cell in lines[0].strip("|").split("|")]


def test_harness_reports_both_systems_to_stdout_and_file(tiny_run: tuple[str, str]) -> None:
    stdout, written = tiny_run
    assert stdout == written
    assert "| set | system | MRR@10 | nDCG@10 | R@1 | R@10 | R@100 | mean ms | p95 ms | build s | queries |" in written
    for system in ("zhsearch", "naive"):
        cells = _row(written, system)
        # Four judged queries; the unjudged one is left out.
        assert cells[-1] == "4"
        assert all(0.0 <= float(c) <= 1.0 for c in cells[2:7])


def test_zhsearch_finds_keyword_queries_and_misses_the_blank_one(tiny_run: tuple[str, str]) -> None:
    _, report = tiny_run
    cells = _row(report, "zhsearch")
    # Three keyword queries at rank 1; the blank query raised QueryError and counts as a miss.
    assert cells[2:7] == ["0.7500", "0.7500", "0.7500", "0.7500", "0.7500"]
    assert "- tiny / zhsearch: 1 of 4" in report
    assert "QueryError" in report
    assert "Queries without judgments, left out: tiny 1" in report
    assert "Passages indexed: tiny zhsearch 5; tiny naive 5." in report
