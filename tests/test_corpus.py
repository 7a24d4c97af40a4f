"""Readers: JSONL, Markdown with front matter, plain text; ids and problems reported by origin."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from indexer import Article, CorpusError, Skipped, iter_records
from indexer.corpus import count_records, parse_date

from .conftest import MINI_CORPUS


def records(*paths: Path) -> list[Article | Skipped]:
    return list(iter_records(paths))


def test_mini_corpus_reads_every_format() -> None:
    found = {r.id: r for r in records(MINI_CORPUS) if isinstance(r, Article)}
    assert set(found) == {
        "moe-intro",
        "ernie",
        "python312",
        "k8s",
        "china",
        "hybrid-car",
        "notes/rust.md",
        "gpt4o.txt",
    }
    ernie = found["ernie"]
    assert ernie.title == "文心大模型4.5系列宣布开源"
    assert ernie.date == datetime(2025, 6, 30)
    assert ernie.tags == ("大模型", "开源")
    assert ernie.origin == "articles.jsonl:2"
    car = found["hybrid-car"]
    assert car.source == "汽车观察" and car.tags == ("汽车", "新能源")
    assert car.url == "https://auto.example.com/hybrid"
    rust = found["notes/rust.md"]
    assert rust.title == "Rust 1.80 稳定版发布"
    assert rust.body.startswith("Rust 1.80 稳定了")
    txt = found["gpt4o.txt"]
    assert txt.title == "GPT-4o 与多模态交互"
    assert "C++" in txt.body


def test_jsonl_problems_are_reported_with_file_and_line(tmp_path: Path) -> None:
    lines = [
        json.dumps({"title": "好", "body": "正文"}, ensure_ascii=False),
        "{not json",
        "",
        json.dumps({"title": "无正文"}, ensure_ascii=False),
        json.dumps(["a list"]),
        json.dumps({"body": "无标题"}, ensure_ascii=False),
        json.dumps({"title": "坏日期", "body": "正文", "date": "上周"}, ensure_ascii=False),
        json.dumps({"title": "标签", "body": "正文", "tags": "a, b ,a"}, ensure_ascii=False),
    ]
    (tmp_path / "x.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    got = records(tmp_path)
    skipped = {r.origin: r.reason for r in got if isinstance(r, Skipped)}
    assert skipped["x.jsonl:2"].startswith("invalid JSON")
    assert skipped["x.jsonl:4"] == "missing or empty body"
    assert skipped["x.jsonl:5"] == "expected a JSON object, found list"
    assert skipped["x.jsonl:6"] == "missing title"
    articles = {r.origin: r for r in got if isinstance(r, Article)}
    assert articles["x.jsonl:1"].id == "x.jsonl:1"
    assert articles["x.jsonl:7"].date is None
    assert "indexed without a date" in articles["x.jsonl:7"].warnings[0]
    assert articles["x.jsonl:8"].tags == ("a", "b")


def test_markdown_title_falls_back_to_heading_then_file_name(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# 标题一\n\n正文一", encoding="utf-8")
    (tmp_path / "b.md").write_text("正文二", encoding="utf-8")
    got = {r.id: r for r in records(tmp_path) if isinstance(r, Article)}
    assert got["a.md"].title == "标题一" and got["a.md"].body == "正文一"
    assert got["b.md"].title == "b"


def test_bad_front_matter_and_encodings_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "bad.md").write_text("---\ntitle: [unclosed\n---\n正文", encoding="utf-8")
    (tmp_path / "gbk.txt").write_bytes("标题\n正文".encode("gbk"))
    (tmp_path / "bom.txt").write_bytes("\ufeff标题\n正文".encode())
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / ".hidden.md").write_text("# 隐藏", encoding="utf-8")
    got = records(tmp_path)
    skipped = {r.origin: r.reason for r in got if isinstance(r, Skipped)}
    assert skipped["bad.md"].startswith("invalid YAML front matter")
    assert skipped["gbk.txt"] == "not UTF-8 text"
    assert skipped["image.png"] == "unsupported file type '.png'"
    assert ".hidden.md" not in skipped
    articles = [r for r in got if isinstance(r, Article)]
    assert [a.title for a in articles] == ["标题"]


def test_single_file_ids_are_relative_to_its_folder() -> None:
    got = records(MINI_CORPUS / "notes" / "rust.md")
    assert [r.id for r in got if isinstance(r, Article)] == ["rust.md"]


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        records(tmp_path / "nope")


def test_count_records_matches_the_mini_corpus() -> None:
    assert count_records([MINI_CORPUS]) == len(records(MINI_CORPUS))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-06-30", datetime(2025, 6, 30)),
        ("2025-06-30T08:15:00Z", datetime(2025, 6, 30, 8, 15)),
        (None, None),
    ],
)
def test_parse_date(value: str | None, expected: datetime | None) -> None:
    assert parse_date(value) == expected
