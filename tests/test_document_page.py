"""The document page, /doc/<id>: the whole article, its metadata and the query's matches, and its JSON twin."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient

from indexer import Searcher
from service import create_app

from .conftest import index_records

# A character outside the BMP before the match: one code point, two UTF-16 units.
ASTRAL_BODY = "𠀀😀 开头两个字。\n\n第二段讲混合专家模型。\n同一段的第二行。"
HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
RECORDS = [
    {"id": "notes/astral.md", "title": "混合专家笔记", "body": ASTRAL_BODY, "source": "笔记", "tags": ["MoE"]},
    {"id": "a/b//c", "title": "双斜线编号", "body": "编号里有两个斜线。"},
    {"id": "q?x#y %2F z", "title": "奇怪编号", "body": "编号里有问号、井号和百分号。"},
    {
        "id": "hostile",
        "title": f"标题 {HOSTILE}",
        "body": f"正文 {HOSTILE}\n\n混合专家 </p><mark>假的</mark>",
        "source": '"><script>',
        "tags": ["<b>tag</b>"],
        "url": "javascript:alert(1)",
    },
    {
        "id": "web",
        "title": "有原文的混合专家文章",
        "body": "混合专家架构。",
        "date": "2025-06-30",
        "url": "https://news.example.com/moe",
    },
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    index = index_records(tmp_path_factory.mktemp("doc-page"), RECORDS)
    return create_app({"TESTING": True, "INDEX_DIR": str(index)}).test_client()


def html_of(client: FlaskClient, url: str, status: int = 200) -> str:
    resp = client.get(url)
    assert resp.status_code == status, (url, resp.status_code)
    assert resp.mimetype == "text/html"
    text: str = resp.get_data(as_text=True)
    return text


def main_of(page: str) -> str:
    return page[page.index("<main") : page.index("</main>")]


def test_the_page_shows_the_whole_article_with_its_metadata(client: FlaskClient) -> None:
    page = html_of(client, "/doc/web")
    assert "<title>有原文的混合专家文章 - zhsearch</title>" in page
    assert '<html lang="zh-CN">' in page and "/static/style.css" in page  # the site's base template
    main = main_of(page)
    assert '<h1 class="doc-title">有原文的混合专家文章</h1>' in main
    assert '<time datetime="2025-06-30">2025-06-30</time>' in main
    assert '<a class="doc-original" href="https://news.example.com/moe"' in main
    assert '<code class="doc-id">web</code>' in main
    assert "<mark>" not in main  # no query, nothing marked
    assert '<a href="/">← 返回搜索</a>' in main


def test_paragraphs_and_line_breaks(client: FlaskClient) -> None:
    main = main_of(html_of(client, "/doc/notes%2Fastral.md"))
    body = main[main.index('class="doc-body"') :]
    assert "<p>𠀀😀 开头两个字。</p>" in body
    assert "<p>第二段讲混合专家模型。<br>同一段的第二行。</p>" in body
    assert "笔记" in main and ">MoE<" in main


def test_the_query_is_marked_as_in_the_results(client: FlaskClient) -> None:
    page = html_of(client, "/doc/notes%2Fastral.md?q=混合专家")
    main = main_of(page)
    assert '<h1 class="doc-title"><mark>混合专家</mark>笔记</h1>' in main
    assert "<p>第二段讲<mark>混合专家</mark>模型。" in main
    assert '<a href="/?q=%E6%B7%B7%E5%90%88%E4%B8%93%E5%AE%B6">← 返回搜索结果</a>' in main
    assert "正文 1 处" in main
    # The same marks as the result list's title for the same query.
    hit = client.get("/api/search", query_string={"q": "混合专家", "size": 10}).get_json()["results"]
    listed = next(h for h in hit if h["id"] == "notes/astral.md")
    assert listed["title_html"] in main
    # Its JSON twin is linked.
    assert '<link rel="alternate" type="application/json" href="/api/documents/notes/astral.md?q=' in page


def test_offsets_are_code_points_of_the_stored_text(client: FlaskClient) -> None:
    data = client.get("/api/documents/notes/astral.md", query_string={"q": "混合专家"}).get_json()
    body = data["body"]
    assert body == ASTRAL_BODY
    ((start, end),) = data["matches"]
    assert body[start:end] == "混合专家"
    # Counted in UTF-16 units the start would be two more (𠀀 and 😀 are two units each).
    utf16_start = len(body[:start].encode("utf-16-le")) // 2
    assert utf16_start == start + 2
    assert start == ASTRAL_BODY.index("混合专家")
    assert data["title_matches"] == [[0, 4]]
    assert data["title_html"] == "<mark>混合专家</mark>笔记"
    assert "<mark>混合专家</mark>" in data["body_html"]


def test_without_a_query_the_json_is_the_escaped_text(client: FlaskClient) -> None:
    data = client.get("/api/documents/hostile").get_json()
    assert data["title_matches"] == [] and data["matches"] == []
    assert "<script>" not in data["title_html"] and "&lt;script&gt;" in data["title_html"]
    assert "<mark>" not in data["body_html"]


def test_hostile_text_is_escaped(client: FlaskClient) -> None:
    main = main_of(html_of(client, "/doc/hostile?q=混合专家"))
    for raw in ["<script>", "<img", "</p><mark>假的", '"><script>', "<b>tag</b>"]:
        assert raw not in main, raw
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in main or "&lt;script&gt;alert(&quot;x&quot;)" in main
    assert "&lt;/p&gt;&lt;mark&gt;假的" in main
    # Only http(s) urls become links.
    assert "javascript:" not in main
    assert "<mark>混合专家</mark>" in main


def test_a_hostile_query_is_escaped(client: FlaskClient) -> None:
    main = main_of(html_of(client, "/doc/web?q=" + quote('"><script>alert(1)</script>')))
    assert "<script>" not in main


@pytest.mark.parametrize("doc_id", ["notes/astral.md", "a/b//c", "q?x#y %2F z"])
def test_ids_round_trip_through_doc_url(client: FlaskClient, doc_id: str) -> None:
    title = next(r["title"] for r in RECORDS if r["id"] == doc_id)
    data = client.get("/api/search", query_string={"q": title, "size": 10}).get_json()
    (hit,) = [h for h in data["results"] if h["id"] == doc_id]
    assert hit["doc_url"].startswith("/doc/") and "/" not in hit["doc_url"][len("/doc/") :].split("?")[0]
    main = main_of(html_of(client, hit["doc_url"]))
    assert f'<code class="doc-id">{doc_id}</code>' in main


def test_ids_with_plain_slashes_work_too(client: FlaskClient) -> None:
    assert "混合专家笔记" in html_of(client, "/doc/notes/astral.md")


def test_results_link_to_the_page(client: FlaskClient) -> None:
    page = html_of(client, "/?q=混合专家")
    titles = dict(re.findall(r'<h3 class="title"><a href="([^"]+)">(.*?)</a></h3>', page))
    # No url: the title opens the document page.
    assert "/doc/notes%2Fastral.md?q=%E6%B7%B7%E5%90%88%E4%B8%93%E5%AE%B6" in titles
    # A web url: the title opens the original, and 全文 the document page.
    assert "https://news.example.com/moe" in titles
    assert '<a class="fulltext" href="/doc/web?q=%E6%B7%B7%E5%90%88%E4%B8%93%E5%AE%B6">全文' in page
    # A javascript: url is no link; the title opens the document page instead.
    assert "javascript:" not in page and "/doc/hostile?q=" in page


def test_an_unknown_id_is_a_chinese_404_page(client: FlaskClient) -> None:
    main = main_of(html_of(client, "/doc/no/such.md?q=x", status=404))
    assert "页面不存在" in main and "没有编号为“no/such.md”的文章" in main
    assert client.get("/api/documents/no/such.md").get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("url", ["/doc/a%00b", "/doc/" + "x" * 1025])
def test_bad_ids_are_refused_as_the_api_refuses_them(client: FlaskClient, url: str) -> None:
    main = main_of(html_of(client, url, status=400))
    assert "文章编号最长 1024 个字符" in main


@pytest.mark.parametrize("url", ["/doc/../../etc/passwd", "/doc/..%2f..%2fetc%2fpasswd", "/doc/%2e%2e/etc/passwd"])
def test_the_page_never_reads_files(client: FlaskClient, url: str) -> None:
    resp = client.get(url, follow_redirects=True)
    assert resp.status_code == 404 and "root:" not in resp.get_data(as_text=True)


def test_the_indexer_helper(client: FlaskClient) -> None:
    searcher: Searcher = client.application.extensions["zhsearch.searcher"]
    view = searcher.document("notes/astral.md", "混合专家")
    assert view is not None and view.doc.id == "notes/astral.md"
    assert view.matches == [(ASTRAL_BODY.index("混合专家"), ASTRAL_BODY.index("混合专家") + 4)]
    assert searcher.document("nothing") is None
    assert searcher.document("notes/astral.md", "-混合专家").matches == []  # type: ignore[union-attr]
