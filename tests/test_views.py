"""The HTML page: works without JavaScript, keeps the query, shows results and pagination."""

from __future__ import annotations

import re

from flask.testing import FlaskClient


def test_empty_page_shows_the_form(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    assert '<form class="search"' in html and 'name="q"' in html
    assert "<ol" not in html


def test_results_page(client: FlaskClient) -> None:
    resp = client.get("/", query_string={"q": "混合专家"})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'value="混合专家"' in html
    assert "<title>混合专家 - zhsearch</title>" in html
    assert "找到 2 条结果" in html and "毫秒" in html
    assert '<a href="https://news.example.com/moe-intro">' in html
    assert "<mark>混合专家</mark>" in html
    assert '<time datetime="2025-03-02">' in html
    assert '<span class="source">模型周刊</span>' in html
    assert '<span class="tag">MoE</span>' in html
    assert 'rel="alternate" type="application/json"' in html
    assert "/api/search?q=" in resp.headers["Link"]


def test_pagination_links(client: FlaskClient) -> None:
    html = client.get("/", query_string={"q": "大模型 OR 汽车 OR Python OR 云原生"}).get_data(as_text=True)
    assert 'rel="next"' in html
    href = re.search(r'rel="next" href="([^"]+)"', html)
    assert href is not None
    page2 = client.get(href.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert 'rel="prev"' in page2 and '<span aria-current="page">2</span>' in page2


def test_no_results_message(client: FlaskClient) -> None:
    html = client.get("/", query_string={"q": "彗星轨道"}).get_data(as_text=True)
    assert "没有找到" in html


def test_query_is_escaped_when_echoed(client: FlaskClient) -> None:
    html = client.get("/", query_string={"q": '"><script>alert(1)</script>'}).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


def test_document_script_is_inert_on_the_page(client: FlaskClient) -> None:
    html = client.get("/", query_string={"q": "script"}).get_data(as_text=True)
    assert '<script>alert("x")</script>' not in html
    assert "&lt;<mark>script</mark>&gt;" in html


def test_bad_input_gets_a_friendly_page(client: FlaskClient) -> None:
    resp = client.get("/", query_string={"q": "飞桨", "page": "abc"})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert "请求有误" in html and "page must be a whole number" in html
    assert client.get("/nowhere").status_code == 404


def test_non_http_urls_are_not_links(client: FlaskClient) -> None:
    # Mini-corpus text files have no url at all; their titles must not become links.
    html = client.get("/", query_string={"q": "LazyCell"}).get_data(as_text=True)
    assert '<h2 class="title">Rust 1.80' in html
