"""The zhsearch command, run in-process with click's runner on real indexes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer import SCHEMA_VERSION
from indexer.cli import cli

from .conftest import MINI_CORPUS, ROOT

COMMANDS = ["build", "add", "delete", "info", "search", "serve"]


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
    assert "2 results" in result.stderr
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
