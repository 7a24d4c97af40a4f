"""Readers: ids, origins, problems reported by file and line, field mapping, front matter, filters."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from indexer import Article, CorpusError, Skipped, iter_records
from indexer.corpus import ReadOptions, article_from_mapping, count_records, origin_file, parse_date
from indexer.readers.formats import MAX_DOCUMENT_BYTES

from .conftest import MINI_CORPUS


def records(*paths: Path, options: ReadOptions | None = None) -> list[Article | Skipped]:
    return list(iter_records(paths, options))


def articles(*paths: Path, options: ReadOptions | None = None) -> dict[str, Article]:
    return {r.id: r for r in records(*paths, options=options) if isinstance(r, Article)}


def skips(*paths: Path, options: ReadOptions | None = None) -> dict[str, str]:
    return {r.origin: r.reason for r in records(*paths, options=options) if isinstance(r, Skipped)}


def test_mini_corpus_reads_every_format() -> None:
    found = articles(MINI_CORPUS)
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
    assert ernie.where == "articles.jsonl:2"
    car = found["hybrid-car"]
    assert car.source == "汽车观察" and car.tags == ("汽车", "新能源")
    assert car.url == "https://auto.example.com/hybrid"
    rust = found["notes/rust.md"]
    assert rust.title == "Rust 1.80 稳定版发布"
    assert rust.body.startswith("Rust 1.80 稳定了")
    txt = found["gpt4o.txt"]
    assert txt.title == "GPT-4o 与多模态交互"
    assert "C++" in txt.body


def test_origin_is_absolute_and_where_is_relative(tmp_path: Path) -> None:
    found = articles(MINI_CORPUS)
    root = MINI_CORPUS.resolve()
    assert found["ernie"].origin == f"{root}/articles.jsonl:2"
    assert found["notes/rust.md"].origin == f"{root}/notes/rust.md"
    assert found["notes/rust.md"].where == "notes/rust.md"
    # The line goes only on multi-record formats, and comes off again.
    assert origin_file(found["ernie"].origin) == f"{root}/articles.jsonl"
    assert origin_file(f"{root}/notes/rust.md") == f"{root}/notes/rust.md"
    assert origin_file("/x/odd:3.md") == "/x/odd:3.md"


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
        json.dumps({"title": "空白正文", "body": "  \n "}, ensure_ascii=False),
    ]
    (tmp_path / "x.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    got = records(tmp_path)
    skipped = {r.origin: r.reason for r in got if isinstance(r, Skipped)}
    assert skipped["x.jsonl:2"].startswith("invalid JSON")
    assert skipped["x.jsonl:4"] == "missing or empty body"
    assert skipped["x.jsonl:5"] == "expected a JSON object, found list"
    assert "x.jsonl:6" not in skipped
    assert skipped["x.jsonl:9"] == "missing or empty body"
    found = {r.where: r for r in got if isinstance(r, Article)}
    assert found["x.jsonl:1"].id == "x.jsonl:1"
    assert found["x.jsonl:7"].date is None
    assert "indexed without a date" in found["x.jsonl:7"].warnings[0]
    assert found["x.jsonl:8"].tags == ("a", "b")
    # A record without a title is kept, titled by its first words, with a warning.
    assert found["x.jsonl:6"].title == "无标题"
    assert found["x.jsonl:6"].warnings[0].startswith("missing title; titled by its first words")
    # Every non-blank line is accounted for.
    assert len(got) == 8


def test_a_bad_line_in_the_middle_costs_only_itself(tmp_path: Path) -> None:
    good = json.dumps({"title": "好", "body": "正文"}, ensure_ascii=False).encode()
    bad = json.dumps({"title": "坏", "body": "半个字"}, ensure_ascii=False).encode()[:-4] + b'\xe6"}'
    (tmp_path / "x.jsonl").write_bytes(good + b"\n" + bad + b"\n" + (good + b"\n") * 5)
    got = records(tmp_path)
    assert [type(r).__name__ for r in got] == ["Article", "Skipped"] + ["Article"] * 5
    assert isinstance(got[1], Skipped) and got[1].origin == "x.jsonl:2"
    assert got[1].reason == "not valid UTF-8 text (byte 33 of the line)"


def test_empty_and_huge_documents_are_reported(tmp_path: Path) -> None:
    (tmp_path / "empty.md").write_text("", encoding="utf-8")
    (tmp_path / "blank.txt").write_text("\n \n", encoding="utf-8")
    (tmp_path / "none.jsonl").write_text("\n\n", encoding="utf-8")
    huge_body = "字" * (MAX_DOCUMENT_BYTES // 3 + 10)
    (tmp_path / "huge.txt").write_text("标题\n" + huge_body, encoding="utf-8")
    (tmp_path / "rows.jsonl").write_text(
        json.dumps({"title": "小", "body": "正文"}, ensure_ascii=False)
        + "\n"
        + json.dumps({"title": "大", "body": huge_body}, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    skipped = skips(tmp_path)
    assert skipped["empty.md"] == "empty file"
    assert skipped["blank.txt"] == "empty file"
    assert skipped["none.jsonl"] == "empty file: no records"
    assert skipped["huge.txt"].startswith("document is 10.0 MB, over the 10.0 MB limit")
    assert skipped["rows.jsonl:2"].startswith("document is 10.0 MB, over the 10.0 MB limit")
    assert set(articles(tmp_path)) == {"rows.jsonl:1"}


def test_markdown_title_falls_back_to_heading_then_file_name(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# 标题一\n\n正文一", encoding="utf-8")
    (tmp_path / "b.md").write_text("正文二", encoding="utf-8")
    got = articles(tmp_path)
    assert got["a.md"].title == "标题一" and got["a.md"].body == "正文一"
    assert got["b.md"].title == "b"


def test_front_matter_keys_of_static_site_generators(tmp_path: Path) -> None:
    (tmp_path / "hugo.md").write_text(
        "---\n"
        'title: "Hugo 文章"\n'
        "date: 2024-06-04T10:30:00+08:00\n"
        "tags: [数据库, 开源]\n"
        "categories: [技术, 数据库]\n"
        "permalink: https://blog.example.com/hugo\n"
        "author: 某人\n"
        "---\n正文",
        encoding="utf-8",
    )
    (tmp_path / "hexo.md").write_text(
        "---\ntitle: Hexo 文章\ndate: 2024/06/05 09:00:00\ntags: 前端\ncategories:\n  - [编程, 前端]\n---\n正文",
        encoding="utf-8",
    )
    got = articles(tmp_path)
    hugo = got["hugo.md"]
    # YAML reads the offset; it is kept as written.
    assert hugo.date == datetime(2024, 6, 4, 10, 30, tzinfo=timezone(timedelta(hours=8)))
    assert hugo.date is not None and hugo.date.utcoffset() == timedelta(hours=8)
    assert hugo.tags == ("数据库", "开源", "技术")
    assert hugo.url == "https://blog.example.com/hugo"
    # The schema has no author field, and the author is not put into any other field.
    assert "某人" not in hugo.source + hugo.body + hugo.title
    hexo = got["hexo.md"]
    assert hexo.date == datetime(2024, 6, 5, 9, 0)
    assert hexo.tags == ("前端", "编程")


def test_field_mapping_reads_other_keys(tmp_path: Path) -> None:
    rows = [
        {"headline": "映射标题", "content": "映射正文", "meta": {"site": "某站"}, "keywords": ["甲", "乙"]},
        {"title": "自带标题", "body": "自带正文"},
        {"headline": "无正文"},
    ]
    (tmp_path / "x.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    options = ReadOptions(fields={"title": "headline", "body": "content", "source": "meta.site", "tags": "keywords"})
    got = records(tmp_path, options=options)
    first, second, third = got
    assert isinstance(first, Article)
    assert (first.title, first.body, first.source, first.tags) == ("映射标题", "映射正文", "某站", ("甲", "乙"))
    # Records without the mapped keys keep their own fields.
    assert isinstance(second, Article) and second.title == "自带标题"
    assert isinstance(third, Skipped) and third.reason == "missing or empty body (--field body=content)"


def test_article_from_mapping_keeps_its_positional_form() -> None:
    made = article_from_mapping({"title": "题", "body": "文"}, "d", "o")
    assert isinstance(made, Article) and (made.id, made.origin, made.where) == ("d", "o", "o")


def test_include_and_exclude_patterns(tmp_path: Path) -> None:
    for rel in ["a.md", "notes/b.md", "drafts/c.md", "notes/drafts/d.md", "e.txt", "f.jsonl"]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# 标题\n\n正文", encoding="utf-8")
    excluded: list[str] = []
    options = ReadOptions(include=("*.md",), exclude=("drafts/**",))
    got = list(iter_records([tmp_path], options, excluded=excluded))
    assert sorted(r.id for r in got if isinstance(r, Article)) == ["a.md", "notes/b.md", "notes/drafts/d.md"]
    assert sorted(excluded) == ["drafts/c.md", "e.txt", "f.jsonl"]
    assert not [r for r in got if isinstance(r, Skipped)]
    # A file named on the command line is read whatever the patterns say.
    named = list(iter_records([tmp_path / "e.txt"], options))
    assert [r.id for r in named if isinstance(r, Article)] == ["e.txt"]
    assert count_records([tmp_path], options) == 3


def test_bad_front_matter_unsupported_and_hidden_files(tmp_path: Path) -> None:
    (tmp_path / "bad.md").write_text("---\ntitle: [unclosed\n---\n正文", encoding="utf-8")
    (tmp_path / "baddate.md").write_text("---\ntitle: 题\ndate: 2024-13-45\n---\n正文", encoding="utf-8")
    (tmp_path / "bom.txt").write_bytes("\ufeff标题\n正文".encode())
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "notes.docx").write_bytes(b"PK\x03\x04")
    (tmp_path / ".hidden.md").write_text("# 隐藏", encoding="utf-8")
    (tmp_path / "README.md").write_text("# 说明", encoding="utf-8")
    skipped = skips(tmp_path)
    assert skipped["bad.md"].startswith("invalid YAML front matter")
    assert "baddate.md" not in skipped  # indexed without its date (test_hostile_corpus)
    assert skipped["image.png"] == "unsupported file type '.png'"
    assert skipped["notes.docx"] == "unsupported file type '.docx'"
    assert skipped["README.md"] == "README files are not indexed"
    assert ".hidden.md" not in skipped
    assert sorted(a.title for a in articles(tmp_path).values()) == sorted(["标题", "题"])


def test_single_file_ids_are_relative_to_its_folder() -> None:
    got = records(MINI_CORPUS / "notes" / "rust.md")
    assert [r.id for r in got if isinstance(r, Article)] == ["rust.md"]


def test_missing_path_is_an_error_before_anything_is_read(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        iter_records([MINI_CORPUS, tmp_path / "nope"])


def test_count_records_matches_the_mini_corpus() -> None:
    assert count_records([MINI_CORPUS]) == len(records(MINI_CORPUS))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-06-30", datetime(2025, 6, 30)),
        ("2025-06-30T08:15:00Z", datetime(2025, 6, 30, 8, 15, tzinfo=UTC)),
        ("2023-03-30T19:14:59-06:00", datetime(2023, 3, 30, 19, 14, 59, tzinfo=timezone(timedelta(hours=-6)))),
        ("2025/6/30", datetime(2025, 6, 30)),
        ("2025-06-30 08:15", datetime(2025, 6, 30, 8, 15)),
        ("2025年6月30日", datetime(2025, 6, 30)),
        (None, None),
    ],
)
def test_parse_date(value: str | None, expected: datetime | None) -> None:
    parsed = parse_date(value)
    assert parsed == expected
    # Equal instants compare equal across offsets: the offset itself must be the one written.
    assert (parsed and parsed.utcoffset()) == (expected and expected.utcoffset())


@pytest.mark.parametrize("value", ["上周", "2025/13/40", "30.06.2025"])
def test_parse_date_rejects(value: str) -> None:
    with pytest.raises(ValueError, match="date"):
        parse_date(value)
