"""Ingesting real-world files: encodings, binary files, JSON, CSV and HTML articles.

Every fixture in another encoding is written here from a Python string, so
the test says exactly which bytes it feeds in and what text must come out.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer import Article, Searcher, Skipped, build_index, iter_records
from indexer.corpus import ReadOptions
from indexer.readers.encodings import DecodeError, decode

from .conftest import DATA

HTML_PAGES = DATA / "ingest" / "html"
HTML_EXPECTED = json.loads((DATA / "ingest" / "html_expected.json").read_text(encoding="utf-8"))

SIMPLIFIED = "文心大模型4.5系列宣布开源，共十款模型，采用Apache 2.0协议，开发者可以在飞桨框架上直接部署和微调。"
TRADITIONAL = "台積電宣布二奈米製程明年量產，新一代晶圓廠將採用全環繞閘極電晶體，半導體產業鏈持續擴張。"


def read(*paths: Path, options: ReadOptions | None = None) -> list[Article | Skipped]:
    return list(iter_records(paths, options))


def only_article(path: Path, options: ReadOptions | None = None) -> Article:
    got = read(path, options=options)
    assert len(got) == 1 and isinstance(got[0], Article), got
    return got[0]


def only_skip(path: Path) -> Skipped:
    got = read(path)
    assert len(got) == 1 and isinstance(got[0], Skipped), got
    return got[0]


# -- encodings ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "encoding"),
    [
        ("gbk.txt", f"开源大模型\n{SIMPLIFIED}", "gbk"),
        ("gb18030.txt", f"开源大模型\n{SIMPLIFIED}（含扩展字符𠮷）", "gb18030"),
        ("big5.txt", f"半導體新聞\n{TRADITIONAL}", "big5"),
        ("utf16-bom.txt", f"开源大模型\n{SIMPLIFIED}", "utf-16"),
        ("utf16le.txt", f"开源大模型\n{SIMPLIFIED}", "utf-16-le"),
        ("utf16be.txt", f"半導體新聞\n{TRADITIONAL}", "utf-16-be"),
        ("utf8-bom.txt", f"开源大模型\n{SIMPLIFIED}", "utf-8-sig"),
        ("utf8.txt", f"开源大模型\n{SIMPLIFIED}", "utf-8"),
    ],
)
def test_text_in_each_encoding_is_decoded_exactly(tmp_path: Path, name: str, text: str, encoding: str) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    article = only_article(path)
    title, body = text.split("\n", 1)
    assert (article.title, article.body) == (title, body)


def test_gbk_markdown_with_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "post.md"
    path.write_bytes(f"---\ntitle: 飞桨发布\ntags: [开源, 深度学习]\n---\n{SIMPLIFIED}".encode("gbk"))
    article = only_article(path)
    assert (article.title, article.body, article.tags) == ("飞桨发布", SIMPLIFIED, ("开源", "深度学习"))


def test_utf16_jsonl_and_big5_json_and_gbk_csv(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(
        # A raw U+2028 inside a JSON string is legal and must not split the line.
        (
            json.dumps({"id": "u16", "title": "大模型", "body": SIMPLIFIED + "\u2028尾"}, ensure_ascii=False) + "\n"
        ).encode("utf-16")
    )
    (tmp_path / "b.json").write_bytes(
        json.dumps([{"id": "b5", "title": "晶圓", "body": TRADITIONAL}], ensure_ascii=False).encode("big5")
    )
    (tmp_path / "c.csv").write_bytes(f"id,title,body\ngbk,飞桨,{SIMPLIFIED.replace('，', '、')}\n".encode("gbk"))
    got = {r.id: r for r in read(tmp_path) if isinstance(r, Article)}
    assert got["u16"].body == SIMPLIFIED + "\u2028尾"
    assert got["b5"].body == TRADITIONAL
    assert got["gbk"].body == SIMPLIFIED.replace("，", "、")


def test_encoded_files_are_searchable_without_mojibake(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "gbk.txt").write_bytes(f"开源大模型\n{SIMPLIFIED}".encode("gbk"))
    (corpus / "big5.txt").write_bytes(f"半導體新聞\n{TRADITIONAL}".encode("big5"))
    (corpus / "utf16.txt").write_bytes(f"芯片新闻\n{SIMPLIFIED}".encode("utf-16"))
    stats = build_index([corpus], tmp_path / "index")
    assert (stats.indexed, stats.skipped) == (3, [])
    s = Searcher(tmp_path / "index")
    try:
        assert s.search("飞桨").total == 2
        doc = s.get("big5.txt")
        assert doc is not None and doc.body == TRADITIONAL
    finally:
        s.close()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file (PNG image)"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "binary file (PDF document)"),
        (b"PK\x03\x04\x14\x00\x06\x00", "binary file (ZIP archive (or .docx/.xlsx))"),
        (bytes(range(256)) * 4, "binary file (binary data)"),
        (bytes(range(1, 32)) * 10, "binary file (control characters)"),
    ],
)
def test_binary_files_are_skipped_and_reported(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / "article.txt"
    path.write_bytes(data)
    assert only_skip(path).reason == reason


def test_stray_control_characters_do_not_make_text_binary(tmp_path: Path) -> None:
    # Articles in ../shared/data hold backspaces like this one.
    path = tmp_path / "article.txt"
    path.write_text(f"标题\n今天我要告诉你\b如何使用。{SIMPLIFIED}", encoding="utf-8")
    assert only_article(path).body.startswith("今天我要告诉你\b如何使用")


def test_text_in_an_unsupported_encoding_is_reported_not_guessed(tmp_path: Path) -> None:
    path = tmp_path / "korean.txt"
    path.write_bytes(
        "한국어 기사 제목\n오늘 발표된 새로운 인공지능 모델은 한국어 처리 성능이 크게 향상되었습니다.".encode("euc-kr")
    )
    skip = only_skip(path)
    assert skip.reason.startswith("unknown text encoding")
    assert "GB18030" in skip.reason


def test_a_damaged_utf8_file_is_reported_with_the_byte() -> None:
    data = f"标题\n{SIMPLIFIED}".encode()
    # "标题\n" is 7 bytes and each following character 3: byte 20 (1-based) starts the fifth character.
    with pytest.raises(DecodeError, match=r"^not valid UTF-8 text at byte 20$"):
        decode(data[:19] + b"\xff" + data[19:])


# -- JSON ---------------------------------------------------------------------


def test_json_array_records_have_their_line(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    rows = [{"id": "one", "title": "一", "body": "正文一"}, "not an object", {"title": "二", "body": "正文二"}]
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    first, second, third = read(path)
    assert isinstance(first, Article) and first.id == "one" and first.where == "a.json:2"
    assert isinstance(second, Skipped) and (second.origin, second.reason) == (
        "a.json:7",
        "expected a JSON object, found str",
    )
    assert isinstance(third, Article) and third.id == "a.json:8"


def test_json_object_with_a_list_under_a_key(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    data = {"version": 2, "meta": {"n": 2}, "articles": [{"title": "一", "body": "甲"}, {"title": "二", "body": "乙"}]}
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    got = read(path)
    assert [r.title for r in got if isinstance(r, Article)] == ["一", "二"]
    assert [r.where for r in got if isinstance(r, Article)] == ["export.json:7", "export.json:11"]


def test_json_key_option_and_ambiguous_lists(tmp_path: Path) -> None:
    path = tmp_path / "two.json"
    data = {
        "news": [{"title": "新闻", "body": "甲"}],
        "blogs": [{"title": "博客", "body": "乙"}],
        "x": {"deep": [{"title": "深处", "body": "丙"}]},
    }
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    skip = only_skip(path)
    assert skip.reason == "the JSON object holds several lists of records (news, blogs); choose one with --json-key"
    assert only_article(path, ReadOptions(json_key="blogs")).title == "博客"
    assert only_article(path, ReadOptions(json_key="x.deep")).title == "深处"
    assert only_skip_with(path, ReadOptions(json_key="nope")).reason == "no list under the key 'nope' (see --json-key)"


def only_skip_with(path: Path, options: ReadOptions) -> Skipped:
    got = read(path, options=options)
    assert len(got) == 1 and isinstance(got[0], Skipped), got
    return got[0]


def test_json_single_object_empty_and_broken_files(tmp_path: Path) -> None:
    (tmp_path / "one.json").write_text(json.dumps({"title": "单篇", "body": "正文"}, ensure_ascii=False), "utf-8")
    (tmp_path / "empty.json").write_text("[]", encoding="utf-8")
    (tmp_path / "broken.json").write_text('[\n{"title": "好", "body": "正文"},\n{"title": oops}\n]', "utf-8")
    got = {r.origin if isinstance(r, Skipped) else r.where: r for r in read(tmp_path)}
    assert isinstance(got["one.json:1"], Article) and got["one.json:1"].title == "单篇"
    empty = got["empty.json"]
    assert isinstance(empty, Skipped) and empty.reason == "empty file: no records"
    assert isinstance(got["broken.json:2"], Article)
    broken = got["broken.json:3"]
    assert isinstance(broken, Skipped)
    assert broken.reason == "invalid JSON: Expecting value (column 11); the rest of the file was not read"
    # The problem covers the rest of the file, so sync keeps what the file held.
    assert broken.stored_origin == str((tmp_path / "broken.json").resolve())


# -- CSV ----------------------------------------------------------------------


def test_csv_with_header_quotes_and_multiline_fields(tmp_path: Path) -> None:
    path = tmp_path / "news.csv"
    path.write_text(
        "id,title,body,date,tags\n"
        'a,"标题, 带逗号","第一段\n第二段",2025-06-30,"开源,大模型"\n'
        "\n"
        "b,只有标题,,2025-07-01,\n"
        "c,字段太多,正文,2025-07-02,x,y\n"
        "d,最后一篇,正文四,2025-07-03,\n",
        encoding="utf-8",
    )
    got = read(path)
    a, b, c, d = got
    assert isinstance(a, Article)
    assert (a.title, a.body, a.tags, a.where) == ("标题, 带逗号", "第一段\n第二段", ("开源", "大模型"), "news.csv:2")
    assert isinstance(b, Skipped) and (b.origin, b.reason) == ("news.csv:5", "missing or empty body")
    assert isinstance(c, Skipped) and c.reason == "row has 6 fields but the header has 5"
    assert isinstance(d, Article) and d.where == "news.csv:7"


def test_csv_field_mapping_semicolons_and_tsv(tmp_path: Path) -> None:
    (tmp_path / "export.csv").write_text("headline;content;site\n标题一;正文一;某站\n", encoding="utf-8")
    (tmp_path / "export.tsv").write_text("headline\tcontent\tsite\n标题二\t正文二\t他站\n", encoding="utf-8")
    options = ReadOptions(fields={"title": "headline", "body": "content", "source": "site"})
    got = [r for r in read(tmp_path, options=options) if isinstance(r, Article)]
    assert [(a.title, a.body, a.source, a.id) for a in got] == [
        ("标题一", "正文一", "某站", "export.csv:2"),
        ("标题二", "正文二", "他站", "export.tsv:2"),
    ]


def test_csv_without_rows_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("title,body\n", encoding="utf-8")
    assert only_skip(path).reason == "empty file: no records under the header"


# -- HTML ---------------------------------------------------------------------


@pytest.mark.parametrize("page", sorted(HTML_EXPECTED))
def test_html_extraction_keeps_the_article_and_drops_boilerplate(page: str) -> None:
    expected = HTML_EXPECTED[page]
    article = only_article(HTML_PAGES / page)
    assert article.title == expected["title"]
    assert article.date is not None and article.date.date().isoformat() == expected["date"]
    # The canonical url when the extractor finds one; never a wrong one.
    assert article.url in (expected["url"], "")
    for sentence in expected["include"]:
        assert sentence in article.body, sentence
    for boilerplate in expected["exclude"]:
        assert boilerplate not in article.body + article.title, boilerplate
    # The <h1> repeats the title; the body does not start with it again.
    assert not article.body.startswith(article.title)


def test_html_sidebar_headlines_are_not_searchable(tmp_path: Path) -> None:
    stats = build_index([HTML_PAGES / "llm-article.html"], tmp_path / "index")
    assert stats.indexed == 1
    s = Searcher(tmp_path / "index")
    try:
        assert [h.id for h in s.search("KV缓存").hits] == ["llm-article.html"]
        # Sidebar headlines, comments (网友), navigation and footer; none shares a word with the article.
        for sidebar in ("Docker", "Docker 入门", "Compose", "Kubernetes", "Nginx", "网友", "容器技术", "京ICP备"):
            assert s.search(sidebar).total == 0, sidebar
        doc = s.get("llm-article.html")
        assert doc is not None
        assert doc.url == "https://notes.example.com/2025/03/long-context-cost"
        assert doc.source == "算力笔记"
    finally:
        s.close()


def test_html_in_gbk_with_and_without_a_declared_charset(tmp_path: Path) -> None:
    paragraphs = "".join(f"<p>{SIMPLIFIED}第{i}段。</p>" for i in range(4))
    page = (
        "<html><head>{meta}<title>飞桨开源</title></head><body><nav><a href='/'>首页</a></nav>"
        f"<article><h1>飞桨开源</h1>{paragraphs}</article></body></html>"
    )
    (tmp_path / "declared.html").write_bytes(page.format(meta='<meta charset="gb2312">').encode("gbk"))
    (tmp_path / "undeclared.htm").write_bytes(page.format(meta="").encode("gbk"))
    # Declares UTF-8 but is GBK: the declaration is wrong, so the bytes decide.
    (tmp_path / "lying.html").write_bytes(page.format(meta='<meta charset="utf-8">').encode("gbk"))
    got = read(tmp_path)
    assert len(got) == 3
    for article in got:
        assert isinstance(article, Article), article
        assert article.title == "飞桨开源"
        assert f"{SIMPLIFIED}第0段。" in article.body


def test_html_without_an_article_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "nav.html"
    path.write_text("<html><body><nav><a href='/'>首页</a></nav></body></html>", encoding="utf-8")
    assert only_skip(path).reason == "no article text found in the page"


# -- runtime dependencies -------------------------------------------------------

# One file of every format the readers support (docs/corpus-formats.md).
EVERY_FORMAT = {
    "a.jsonl": '{"title": "标题", "body": "正文内容足够长。", "date": "2023-03-30T19:14:59-06:00"}\n',
    "b.json": '[{"title": "标题", "body": "正文内容足够长。"}]',
    "c.csv": "title,body\n标题,正文内容足够长。\n",
    "d.tsv": "title\tbody\n标题\t正文内容足够长。\n",
    "e.md": "---\ntitle: 标题\ndate: 2024-06-04T10:30:00+08:00\n---\n正文内容足够长。\n",
    "f.markdown": "# 标题\n\n正文内容足够长。\n",
    "g.txt": "标题\n\n正文内容足够长。\n",
}

# Imported only when present (inside try/except ImportError), so a runtime-only install may lack them.
OPTIONAL_IMPORTS = {
    "setuptools",  # jieba imports pkg_resources if it can, else opens its dictionary directly
    "typing-extensions",  # pathspec's typing helpers, when installed
}


def _runtime_closure() -> set[str]:
    """The distributions that `pip install zhsearch` must bring, following requirements but never their extras.

    A requirement's extras (``lxml[html_clean]``) are not followed: pip 23.2, which ``python3.11 -m venv``
    installs, skips an extra whose name is spelled differently from the package's (``html-clean``), so a
    module that only such an extra provides is missing from a runtime-only install.
    """
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = ["zhsearch"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue  # an optional requirement that is not installed here
        for text in reqs:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def test_reading_every_format_imports_only_declared_runtime_dependencies(tmp_path: Path) -> None:
    # jusText (under trafilatura) imports lxml.html.clean, which only lxml's html-clean extra provides: HTML
    # failed after a runtime-only install while the test extras hid it. .ci/runtime-only checks a real install.
    import subprocess
    import sys
    from importlib.metadata import packages_distributions

    from packaging.utils import canonicalize_name

    for name, text in EVERY_FORMAT.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "h.html").write_bytes((HTML_PAGES / "llm-article.html").read_bytes())
    script = (
        "import json, sys\n"
        "from indexer import Article, iter_records\n"
        "got = list(iter_records([sys.argv[1]]))\n"
        "assert all(isinstance(r, Article) for r in got), got\n"
        "print(json.dumps([len(got), sorted({m.split('.')[0] for m in sys.modules})]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    count, modules = json.loads(out.stdout)
    assert count == len(EVERY_FORMAT) + 1
    owners = packages_distributions()
    imported = {canonicalize_name(dist) for module in modules for dist in owners.get(module, [])}
    assert "lxml-html-clean" in imported  # the HTML page really went through jusText's cleaner
    undeclared = imported - _runtime_closure() - OPTIONAL_IMPORTS - {"zhsearch"}
    assert not undeclared, f"reading corpus files imports {sorted(undeclared)}, which `pip install .` may not install"
