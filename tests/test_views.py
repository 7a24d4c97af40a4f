"""The HTML page: works without JavaScript, keeps the query, shows results, facets, filters and help."""

from __future__ import annotations

import html as htmllib
import re
from urllib.parse import parse_qsl, urlsplit

import pytest
from flask.testing import FlaskClient

from indexer import Hit
from service.views import groupby_run


def page(client: FlaskClient, **params: object) -> str:
    resp = client.get("/", query_string=params)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_data(as_text=True)


def hrefs(html: str, pattern: str) -> list[str]:
    """The unescaped href of every link whose markup matches ``pattern`` (a regex on the <a ...>...</a>)."""
    found = []
    for m in re.finditer(r'<a\b[^>]*href="([^"]*)"[^>]*>(.*?)</a>', html, re.S):
        if re.search(pattern, m.group(0), re.S):
            found.append(htmllib.unescape(m.group(1)))
    return found


def params(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query)


def test_empty_page_shows_the_form_help_and_examples(client: FlaskClient) -> None:
    html = page(client)
    assert '<form class="search"' in html and 'name="q"' in html
    assert '<label for="q"' in html and " autofocus" in html
    assert "<ol" not in html
    assert '<details class="help">' in html and "title:混合专家" in html and "date:2024-01..2024-06" in html
    assert 'role="search"' in html and "<main" in html and "<header" in html and "<footer" in html


def test_results_page(client: FlaskClient) -> None:
    resp = client.get("/", query_string={"q": "混合专家"})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'value="混合专家"' in html
    assert "<title>混合专家 - zhsearch</title>" in html
    assert "找到 <strong>1</strong> 条结果" in html and "毫秒" in html
    assert '<a href="https://news.example.com/moe-intro">' in html
    assert "<mark>混合专家</mark>" in html
    assert '<time datetime="2025-03-02">2025-03-02</time>' in html
    assert re.search(r'<a class="source" href="[^"]*source=%E6%A8%A1[^"]*"[^>]*>模型周刊</a>', html)
    assert re.search(r'<a class="tag" href="[^"]*tag=MoE[^"]*"[^>]*>MoE</a>', html)
    assert 'rel="alternate" type="application/json"' in html
    assert "/api/search?q=" in resp.headers["Link"]
    # The results page keeps focus free for j/k; only the empty home page autofocuses the box.
    assert " autofocus" not in html


def test_pagination_links(client: FlaskClient) -> None:
    html = page(client, q="大模型 OR 汽车 OR Python OR 云原生")
    assert "第 1/2 页" in html
    (href,) = hrefs(html, 'rel="next"')
    page2 = client.get(href).get_data(as_text=True)
    assert 'rel="prev"' in page2 and '<span aria-current="page">2</span>' in page2
    assert "第 2 页 - zhsearch</title>" in page2


def test_no_results_message_shows_the_understood_query(client: FlaskClient) -> None:
    html = page(client, q="彗星轨道")
    assert "没有找到" in html
    assert '<span class="term">彗星</span><span class="term">轨道</span>' in html


@pytest.mark.parametrize("q", ["dmx", "damoxing", "大魔型"])
def test_empty_results_suggest_from_pinyin_and_homophones(client: FlaskClient, q: str) -> None:
    html = page(client, q=q)
    assert "你是不是要找" in html
    (href,) = hrefs(html, r">大模型</a>")
    assert params(href) == [("q", "大模型")]
    assert "<mark>" in client.get(href).get_data(as_text=True)


def test_empty_results_suggest_dropping_a_word(client: FlaskClient) -> None:
    html = page(client, q="飞桨 彗星")
    assert "去掉“彗星”后有 1 条结果" in html
    (href,) = hrefs(html, r">飞桨</a>")
    assert params(href) == [("q", "飞桨")]


def test_relaxed_results_are_labelled(client: FlaskClient) -> None:
    html = page(client, q="飞桨彗星")
    assert "下面是只包含其中部分词的结果" in html
    assert "去掉“彗星”" in html


def test_facets_are_filter_links_with_counts(client: FlaskClient) -> None:
    html = page(client, q="大模型")
    assert re.search(r'<span class="value">开源观察</span><span class="count">1</span>', html)
    assert re.search(r'<span class="value">大模型</span><span class="count">2</span>', html)
    (href,) = hrefs(html, r'<span class="value">MoE</span>')
    assert params(href) == [("q", "大模型"), ("tag", "MoE")]
    narrowed = client.get(href).get_data(as_text=True)
    assert "找到 <strong>1</strong> 条结果" in narrowed and "moe-intro" in narrowed
    assert "<title>大模型 · MoE - zhsearch</title>" in narrowed
    # The chosen value is marked and its link removes it again.
    (remove,) = hrefs(narrowed, r'class="selected"')
    assert params(remove) == [("q", "大模型")]
    (chip,) = hrefs(narrowed, r"标签：MoE")
    assert params(chip) == [("q", "大模型")]


def test_sort_links(client: FlaskClient) -> None:
    html = page(client, q="大模型 OR 汽车 OR Python", tag=["大模型", "汽车", "Python"])
    assert '<span class="current" aria-current="true">相关度</span>' in html
    (by_date,) = hrefs(html, r">最新</a>")
    assert ("sort", "date") in params(by_date)
    newest = client.get(by_date).get_data(as_text=True)
    dates = re.findall(r'<time datetime="([^"]+)"', newest)
    assert dates == sorted(dates, reverse=True) and len(dates) == 3


def test_date_form_keeps_the_other_parameters(client: FlaskClient) -> None:
    html = page(client, q="大模型", tag="开源", sort="date", **{"from": "2025-01-01"})
    form = html[html.index('<form class="dates"') : html.index("</form>", html.index('<form class="dates"'))]
    assert '<input type="hidden" name="q" value="大模型">' in form
    assert '<input type="hidden" name="tag" value="开源">' in form
    assert '<input type="hidden" name="sort" value="date">' in form
    assert 'name="from" value="2025-01-01"' in form and 'name="to" value=""' in form
    assert '<label for="from">' in form and '<label for="to">' in form
    # An empty date field, as a browser submits it, is no filter.
    assert "找到 <strong>1</strong>" in page(client, q="大模型", tag="开源", **{"from": "", "to": ""})


def test_date_range_filters_results(client: FlaskClient) -> None:
    html = page(client, q="大模型", **{"from": "2025-06-01", "to": "2025-06-30"})
    assert "ernie" not in html or "文心" in html
    assert "找到 <strong>1</strong> 条结果" in html and "文心" in html
    (chip,) = hrefs(html, r"日期：2025-06-01 至 2025-06-30")
    assert params(chip) == [("q", "大模型")]


def test_a_date_typed_in_the_query_shows_as_a_chip_and_in_the_date_inputs(client: FlaskClient) -> None:
    html = page(client, q="大模型 date:2025-06")
    assert "找到 <strong>1</strong> 条结果" in html
    (chip,) = hrefs(html, r"日期：2025-06<")
    assert params(chip) == [("q", "大模型")]
    form = html[html.index('<form class="dates"') : html.index("</form>", html.index('<form class="dates"'))]
    assert 'name="from" value="2025-06-01"' in form and 'name="to" value="2025-06-30"' in form
    # The form sends the query without the typed date: the inputs take its place.
    assert '<input type="hidden" name="q" value="大模型">' in form
    (clear,) = hrefs(html, r"清除全部")
    assert params(clear) == [("q", "大模型")]


def test_typed_dates_under_or_or_not_are_no_chips(client: FlaskClient) -> None:
    for q in ("大模型 -date:2024", "(大模型 OR date:2025) 开源"):
        html = page(client, q=q)
        assert not hrefs(html, r"日期："), q


def test_two_typed_dates_are_two_chips_and_leave_the_inputs_empty(client: FlaskClient) -> None:
    html = page(client, q="大模型 date:2025 date:>=2025-06-01")
    chips = hrefs(html, r"日期：")
    assert [params(c) for c in chips] == [[("q", "大模型 date:>=2025-06-01")], [("q", "大模型 date:2025")]]
    assert 'name="from" value=""' in html and 'name="to" value=""' in html


def test_filters_without_a_query_list_documents_newest_first(client: FlaskClient) -> None:
    html = page(client, tag="大模型")
    assert "找到 <strong>2</strong> 条结果" in html
    assert html.index("文心") < html.index("混合专家模型")
    assert "<title>筛选结果 · 大模型 - zhsearch</title>" in html


def test_shareable_urls_and_json_twin(client: FlaskClient) -> None:
    resp = client.get("/", query_string={"q": "大模型", "tag": ["MoE", "开源"], "sort": "date", "utm": "x"})
    link = resp.headers["Link"]
    url = link[1 : link.index(">")]
    assert params(url) == [
        ("q", "大模型"),
        ("tag", "MoE"),
        ("tag", "开源"),
        ("sort", "date"),
        ("page", "1"),
        ("size", "3"),
    ]
    html = resp.get_data(as_text=True)
    assert f'<link rel="alternate" type="application/json" href="{htmllib.escape(url)}">' in html
    assert client.get(url).get_json()["total"] == 2


def test_query_is_escaped_when_echoed(client: FlaskClient) -> None:
    html = page(client, q='"><script>alert(1)</script>')
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


def test_document_script_is_inert_on_the_page(client: FlaskClient) -> None:
    html = page(client, q="script")
    assert '<script>alert("x")</script>' not in html
    # The snippet shows the text without its markup: the tags are gone, the rest is escaped text.
    assert "alert(&quot;x&quot;)" in html and "&lt;script" not in html


def test_page_has_no_inline_script_or_style(client: FlaskClient) -> None:
    for html in (page(client), page(client, q="大模型"), page(client, q="dmx")):
        scripts = re.findall(r"<script\b[^>]*>", html)
        assert len(scripts) == 1 and re.fullmatch(
            r'<script src="/static/search\.js\?v=[0-9a-f]{12}" defer>', scripts[0]
        )
        assert not re.search(r"\son\w+=", html) and " style=" not in html and "<style" not in html


def test_security_headers(client: FlaskClient) -> None:
    for url in ("/", "/?q=飞桨", "/api/search?q=飞桨", "/nowhere", "/static/search.js"):
        with client.get(url) as resp:
            headers = resp.headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_static_files(client: FlaskClient) -> None:
    with client.get("/static/search.js") as js:
        assert js.status_code == 200 and "javascript" in js.mimetype
    with client.get("/static/style.css") as css:
        assert css.mimetype == "text/css"
    assert client.get("/static/../service/views.py").status_code == 404
    assert client.get("/static/%2e%2e/views.py").status_code == 404


@pytest.mark.parametrize(
    ("params_", "text"),
    [
        ({"q": "飞桨", "page": "abc"}, "页码应是 1 到 100 之间的整数"),
        ({"q": "飞桨", "from": "2025-02-30"}, "开始日期应写成“年-月-日”"),
        ({"q": "飞桨", "sort": "best"}, "排序方式只能是相关度、最新或最早"),
        ({"q": "x" * 300}, "搜索词太长了：最多 256 个字符"),
        ({"q": "a\x00b"}, "控制字符"),
        ({"q": "飞桨", "source": ["a"] * 30}, "来源最多同时选"),
    ],
)
def test_bad_input_gets_a_friendly_page_in_chinese(client: FlaskClient, params_: dict[str, str], text: str) -> None:
    resp = client.get("/", query_string=params_)
    assert resp.status_code == 400 and resp.mimetype == "text/html"
    html = htmllib.unescape(resp.get_data(as_text=True))
    assert "请求有误" in html and text in html and "返回搜索" in html
    # No English message on the page; the JSON keeps its code and English message.
    assert not re.search(r"must be|longer than|contains control", html)
    api = client.get("/api/search", query_string=params_).get_json()["error"]
    assert api["code"] in ("invalid_parameter", "query_too_long", "invalid_query") and api["message"].isascii()


def test_errors_the_framework_raises_are_in_chinese_too(client: FlaskClient) -> None:
    missing = client.get("/no-such-page")
    assert missing.status_code == 404 and "找不到这个页面" in missing.get_data(as_text=True)
    wrong_method = client.post("/")
    assert wrong_method.status_code == 405 and "不支持这种请求方式" in wrong_method.get_data(as_text=True)


def test_unknown_page_is_a_friendly_404(client: FlaskClient) -> None:
    resp = client.get("/nowhere")
    assert resp.status_code == 404 and "页面不存在" in resp.get_data(as_text=True)


def test_non_http_urls_are_not_links(client: FlaskClient) -> None:
    # Mini-corpus text files have no url at all; their titles open the article's page on this server.
    html = page(client, q="LazyCell")
    assert '<h3 class="title"><a href="/doc/notes%2Frust.md?q=LazyCell">Rust 1.80' in html


def test_the_page_says_where_the_full_matches_end(client: FlaskClient) -> None:
    html = page(client, q="模型 专家")
    assert "其中 1 条包含全部关键词" in html
    notes = re.findall(r'<p class="missing-note">(.*?)</p>', html)
    assert len(notes) == 2 and all(n.startswith("以下结果不包含：<s>") for n in notes)
    # The full match comes first, before any note.
    assert html.index('class="hit"') < html.index("missing-note")


def test_hits_that_lack_words_among_full_matches_say_so_one_by_one() -> None:
    def hit(hit_id: str, missing: list[str]) -> Hit:
        return Hit(hit_id, "", "", None, "", [], 1.0, "", "", missing)

    runs = groupby_run([hit("a", []), hit("b", ["x"]), hit("c", []), hit("d", ["y"])], "missing")
    got = [(r.key, r.start, r.note) for r in runs]
    assert got == [((), 0, False), (("x",), 1, False), ((), 2, False), (("y",), 3, True)]
