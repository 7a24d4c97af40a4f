"""The zhsearch command, run in-process with click's runner on real indexes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from indexer import SCHEMA_VERSION, Article
from indexer.cli import cli

from .conftest import MINI_CORPUS, ROOT

COMMANDS = ["build", "add", "sync", "delete", "info", "search", "serve"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def built(runner: CliRunner, tmp_path: Path) -> Path:
    index = tmp_path / "index"
    result = runner.invoke(cli, ["build", "--index", str(index), str(MINI_CORPUS)])
    assert result.exit_code == 0, result.output
    return index


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_help(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output
    short = runner.invoke(cli, [*command, "-h"])
    assert short.output == result.output


def test_every_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in COMMANDS:
        assert f"zhsearch {command}" in readme


def test_build_reports_a_summary_on_stderr(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "好", "body": "内容"}\n{oops\n', encoding="utf-8")
    result = runner.invoke(cli, ["build", "--index", str(tmp_path / "index"), str(bad)])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "skipped bad.jsonl:2: invalid JSON" in result.stderr
    assert "read 2 records, indexed 1, skipped 1" in result.stderr
    assert "skipped by reason: invalid JSON: 1" in result.stderr


def test_quiet_build_prints_nothing(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["build", "-q", "--index", str(tmp_path / "i"), str(MINI_CORPUS)])
    assert result.exit_code == 0 and result.output == ""


def test_search_text_and_json(runner: CliRunner, built: Path) -> None:
    result = runner.invoke(cli, ["search", "--index", str(built), "混合专家"])
    assert result.exit_code == 0
    assert result.stdout.startswith("1. 混合专家模型为何成为主流  [moe-intro]")
    assert "1 result, showing 1-1" in result.stderr
    as_json = runner.invoke(cli, ["search", "--index", str(built), "--json", "-n", "1", "飞桨"])
    data = json.loads(as_json.stdout)
    assert data["total"] == 1 and data["size"] == 1
    assert data["results"][0]["id"] == "ernie"
    assert "飞桨" in as_json.stdout  # not \u escapes


def test_index_dir_from_the_environment(runner: CliRunner, built: Path) -> None:
    result = runner.invoke(cli, ["info", "--json"], env={"ZHSEARCH_INDEX_DIR": str(built)})
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert info["documents"] == 8
    assert info["schema_version"] == SCHEMA_VERSION
    assert info["built_at"]


def test_info_text(runner: CliRunner, built: Path) -> None:
    result = runner.invoke(cli, ["info", "--index", str(built)])
    assert "documents:        8" in result.stdout
    assert f"format version:   {SCHEMA_VERSION}" in result.stdout
    assert "size on disk:" in result.stdout and "built at (UTC):" in result.stdout


def test_add_and_delete(runner: CliRunner, built: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra.md"
    extra.write_text("---\nid: extra\ntitle: 量子计算\n---\n超导量子比特", encoding="utf-8")
    result = runner.invoke(cli, ["add", "--index", str(built), str(extra)])
    assert result.exit_code == 0 and "indexed 1" in result.stderr
    assert "[extra]" in runner.invoke(cli, ["search", "--index", str(built), "量子"]).stdout
    result = runner.invoke(cli, ["delete", "--index", str(built), "extra"])
    assert result.exit_code == 0 and "deleted 1" in result.stderr
    result = runner.invoke(cli, ["delete", "--index", str(built), "extra"])
    assert result.exit_code == 1 and "not in the index: extra" in result.stderr


def test_errors_are_one_line_without_traceback(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["search", "--index", str(tmp_path / "none"), "飞桨"])
    assert result.exit_code == 1
    assert "Error: no index at" in result.stderr and "zhsearch build" in result.stderr
    assert "Traceback" not in result.output
    result = runner.invoke(cli, ["build", "--index", str(tmp_path / "i"), str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_serve_refuses_a_missing_index(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["serve", "--index", str(tmp_path / "none")])
    assert result.exit_code == 1 and "zhsearch build" in result.stderr


def test_serve_refuses_a_bad_setting_before_starting(runner: CliRunner, built: Path) -> None:
    # The env dict is restored after the call, including the index directory that serve sets.
    env = {"ZHSEARCH_INDEX_DIR": str(built), "ZHSEARCH_MAX_PAGE_SIZE": "500"}
    result = runner.invoke(cli, ["serve", "--index", str(built), "--port", "1"], env=env)
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        "Error: ZHSEARCH_MAX_PAGE_SIZE is 500, above zhsearch's limit of 100 results per page; set it to 100 or less"
    ]


def write_posts(folder: Path, posts: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in posts.items():
        (folder / name).write_text(f"# {name}\n\n{body}", encoding="utf-8")


def test_sync_reports_changes_and_is_idempotent(runner: CliRunner, tmp_path: Path) -> None:
    corpus, index = tmp_path / "c", str(tmp_path / "index")
    write_posts(corpus, {"a.md": "飞桨正文", "b.md": "量子正文"})
    first = runner.invoke(cli, ["sync", "--index", index, str(corpus)])
    assert first.exit_code == 0, first.output
    assert "added 2, updated 0, deleted 0, unchanged 0, skipped 0" in first.stderr
    assert first.stdout == ""
    again = runner.invoke(cli, ["sync", "--index", index, str(corpus)])
    assert again.exit_code == 0
    assert "added 0, updated 0, deleted 0, unchanged 2" in again.stderr
    assert "the index is up to date: nothing to add, update or delete" in again.stderr
    write_posts(corpus, {"a.md": "改过的正文", "c.md": "芯片正文"})
    (corpus / "b.md").unlink()
    done = runner.invoke(cli, ["sync", "--index", index, str(corpus)])
    assert done.exit_code == 0
    assert "added c.md" in done.stderr and "updated a.md" in done.stderr
    assert "deleted b.md\n" in done.stderr
    assert "added 1, updated 1, deleted 1, unchanged 0" in done.stderr


def test_sync_dry_run_prints_the_plan_on_stdout(runner: CliRunner, built: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    write_posts(extra, {"new.md": "新文章"})
    result = runner.invoke(cli, ["sync", "--dry-run", "-q", "--index", str(built), str(MINI_CORPUS), str(extra)])
    assert result.exit_code == 0
    assert result.stdout == "add\tnew.md\tnew.md\n"
    assert result.stderr == ""
    info = runner.invoke(cli, ["info", "--json", "--index", str(built)])
    assert json.loads(info.stdout)["documents"] == 8
    loud = runner.invoke(cli, ["sync", "--dry-run", "--index", str(built), str(MINI_CORPUS), str(extra)])
    assert "dry run: read 9 records: would add 1, update 0, delete 0, unchanged 8" in loud.stderr


@pytest.mark.parametrize("command", ["build", "add", "sync"])
def test_strict_turns_a_skip_into_exit_status_1(runner: CliRunner, tmp_path: Path, command: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "好", "body": "内容"}\n{oops\n', encoding="utf-8")
    index = tmp_path / "index"
    result = runner.invoke(cli, [command, "--strict", "--index", str(index), str(bad)])
    assert result.exit_code == 1
    assert "skipped bad.jsonl:2: invalid JSON" in result.stderr
    assert "Error: 1 record was skipped and --strict is set; the index was not changed" in result.stderr
    assert "Traceback" not in result.output
    # The good record was not written either.
    assert runner.invoke(cli, ["search", "--index", str(index), "内容"]).stdout == ""
    quiet = runner.invoke(cli, [command, "--strict", "-q", "--index", str(index), str(bad)])
    assert quiet.exit_code == 1 and quiet.stderr.startswith("Error: 1 record was skipped")


def test_field_mapping_filters_and_json_key_options(runner: CliRunner, tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "export.csv").write_text("headline,content\n飞桨发布,深度学习框架新版本\n", encoding="utf-8")
    (corpus / "feed.json").write_text(
        json.dumps({"data": {"rows": [{"headline": "量子计算", "content": "超导量子比特"}]}}, ensure_ascii=False),
        encoding="utf-8",
    )
    (corpus / "drafts").mkdir()
    (corpus / "drafts" / "d.csv").write_text("headline,content\n草稿,未完成\n", encoding="utf-8")
    index = str(tmp_path / "index")
    args = ["--field", "title=headline", "--field", "body=content", "--json-key", "data.rows", "--exclude", "drafts/**"]
    result = runner.invoke(cli, ["build", "--index", index, *args, str(corpus)])
    assert result.exit_code == 0, result.output
    assert "read 2 records, indexed 2, skipped 0" in result.stderr
    assert "1 files left out by --include/--exclude" in result.stderr
    assert "[export.csv:2]" in runner.invoke(cli, ["search", "--index", index, "飞桨"]).stdout
    assert "[feed.json:1]" in runner.invoke(cli, ["search", "--index", index, "量子"]).stdout


@pytest.mark.parametrize(
    ("value", "message"),
    [("title", "is not FIELD=KEY"), ("author=by", "'author' is not an article field"), ("body=", "is not FIELD=KEY")],
)
def test_bad_field_mapping_is_a_usage_error(runner: CliRunner, tmp_path: Path, value: str, message: str) -> None:
    result = runner.invoke(cli, ["build", "--field", value, "--index", str(tmp_path / "i"), str(MINI_CORPUS)])
    assert result.exit_code == 2 and message in result.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_shows_position_rate_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    import click._termui_impl

    from indexer import cli as cli_module
    from indexer.corpus import ReadOptions

    terminal = _Terminal()
    monkeypatch.setattr(cli_module.sys, "stderr", terminal)
    # Two seconds pass between updates, on the clocks of both the rate and click's ETA.
    ticks = iter(range(0, 1000, 2))
    clock = SimpleNamespace(monotonic=lambda: float(next(ticks)), time=lambda: float(next(ticks)))
    monkeypatch.setattr(cli_module, "time", clock)
    monkeypatch.setattr(click._termui_impl, "time", clock)
    record = Article(id="x", title="t", body="b")
    with cli_module._progress((str(MINI_CORPUS),), ReadOptions(), False, "indexing") as advance:
        assert advance is not None
        for _ in range(4):
            advance(record)
        shown = terminal.getvalue()
    assert "indexing" in shown and "4/8" in shown
    assert "records/s" in shown
    assert "00:00:" in shown  # the ETA
    with cli_module._progress((str(MINI_CORPUS),), ReadOptions(), True, "indexing") as silent:
        assert silent is None


@pytest.mark.parametrize("command", ["build", "add", "sync"])
@pytest.mark.parametrize("option", ["--include", "--exclude"])
def test_a_pattern_that_is_not_a_glob_is_a_usage_error(
    runner: CliRunner, tmp_path: Path, command: str, option: str
) -> None:
    # An inverted character range made the pattern library raise mid-build: a traceback, status 1.
    result = runner.invoke(cli, [command, option, "*/[9-0]", "--index", str(tmp_path / "i"), str(MINI_CORPUS)])
    assert result.exit_code == 2, result.output
    assert "'*/[9-0]' is not a valid glob pattern" in result.stderr
    assert not (tmp_path / "i").exists()
