"""Hostile documents and queries: nothing comes back unescaped, no link runs script, no debug output."""

from __future__ import annotations

import html
import json
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from harness import zhsearch_server
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from indexer import build_index
from service import create_app

NASTY = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg/onload=alert(1)>",
    "javascript:alert(1)",
    '"',
    "'",
    "&",
    "&amp;",
    "&lt;b&gt;",
    "<",
    ">",
    "<mark>",
    "</mark>",
    "</title>",
    "<!--",
    "]]>",
    "`${x}`",
    "{{ 7*7 }}",
    '" autofocus onfocus="alert(1)',
    "大模型",
    "开源",
    "script",
    "mark",
    "alert",
]
URLS = [
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "//evil.example/x",
    'https://ok.example/?a=<b>&c="d"\'',
    'http://x.example/" onmouseover="alert(1)',
    "",
]
SAFE_HREF = re.compile(r"^(/(?!/)|\?|#|https?://)")
ENTITY = re.compile(r"&(amp|lt|gt|quot|#x27|#39);")

words = st.one_of(st.sampled_from(NASTY), st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=4))
texts = st.lists(words, min_size=1, max_size=8).map(" ".join)
documents = st.lists(
    st.fixed_dictionaries(
        {
            "title": texts.map(lambda t: "题 " + t),
            "body": texts.map(lambda t: "正文 " + t),
            "url": st.sampled_from(URLS),
            "source": st.sampled_from(NASTY),
            "tags": st.lists(st.sampled_from(NASTY), max_size=3),
        }
    ),
    min_size=1,
    max_size=4,
)
queries = st.one_of(
    st.sampled_from(NASTY), texts, st.lists(st.sampled_from(NASTY), min_size=1, max_size=3).map(" ".join)
)


class Markup(HTMLParser):
    """Collects every start tag, its attributes, and the value of the query box."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.q_value: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append((tag, found))
        if tag == "input" and found.get("id") == "q":
            self.q_value = found.get("value")


ALLOWED_TAGS = {
    "html", "head", "meta", "title", "link", "script", "body", "a", "span", "header", "main", "footer", "p",
    "h1", "h2", "h3", "form", "label", "div", "input", "button", "details", "summary", "dl", "dt", "dd",
    "code", "kbd", "ol", "ul", "li", "mark", "time", "strong", "nav", "section", "aside", "s",
}  # fmt: skip


def assert_safe_html(text: str, query: str | None) -> None:
    """No tag, attribute or link that the templates do not write themselves."""
    parser = Markup()
    parser.feed(text)
    parser.close()
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert len(scripts) == 1 and scripts[0]["src"].startswith("/static/search.js?v=") and "defer" in scripts[0]
    for tag, attrs in parser.tags:
        assert tag in ALLOWED_TAGS, tag
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert "style" not in attrs and "srcdoc" not in attrs and "autofocus" not in attrs or tag == "input"
        if tag == "mark":
            assert attrs == {}
        href = attrs.get("href")
        if href is not None:
            assert SAFE_HREF.match(href), href
    if query is not None and parser.q_value is not None:
        assert parser.q_value == " ".join(query.split())


def assert_safe_fragment(fragment: str, plain: str | None = None) -> None:
    """A title_html or snippet_html: escaped text with <mark> and nothing else."""
    bare = fragment.replace("<mark>", "").replace("</mark>", "")
    assert "<" not in bare and ">" not in bare, fragment
    assert "&" not in ENTITY.sub("", bare), fragment
    if plain is not None:
        # Highlighting may collapse runs of whitespace; the characters must be the same.
        assert html.unescape(bare).split() == plain.split()


# Each example builds a real index; shrinking one takes minutes, so a failure is reported unshrunk.
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(docs=documents, query=queries, source=st.sampled_from(["", *NASTY]))
def test_hostile_documents_and_queries_come_back_escaped(docs: list[dict[str, Any]], query: str, source: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "docs.jsonl"
        with open(corpus, "w", encoding="utf-8") as f:
            for i, doc in enumerate(docs):
                f.write(json.dumps({"id": f"d{i}", **doc}, ensure_ascii=False) + "\n")
            # One readable article, so that a build never reads none (which it refuses).
            f.write(json.dumps({"id": "ok", "title": "题", "body": "正文"}, ensure_ascii=False) + "\n")
        build_index([corpus], Path(tmp) / "index")
        client = create_app({"TESTING": True, "INDEX_DIR": str(Path(tmp) / "index")}).test_client()
        for params in ({"q": query}, {"q": query, "source": source, "tag": source}, {"q": "正文 OR 题"}):
            page = client.get("/", query_string=params)
            assert page.status_code in (200, 400)
            assert page.mimetype == "text/html"
            assert_safe_html(page.get_data(as_text=True), params["q"] if page.status_code == 200 else None)

            api = client.get("/api/search", query_string=params)
            assert api.status_code in (200, 400) and api.mimetype == "application/json"
            for hit in api.get_json().get("results", []):
                assert_safe_fragment(hit["title_html"], hit["title"])
                assert_safe_fragment(hit["snippet_html"])

            suggest = client.get("/api/suggest", query_string={"q": params["q"]})
            assert suggest.status_code in (200, 400) and suggest.mimetype == "application/json"


def test_json_is_never_sniffed_as_html(client: FlaskClient) -> None:
    resp = client.get("/api/search", query_string={"q": "<script>alert(1)</script>"})
    assert resp.mimetype == "application/json"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_javascript_urls_never_become_links(tmp_path: Path) -> None:
    corpus = tmp_path / "docs.jsonl"
    rows = [{"id": f"u{i}", "title": f"链接测试 {i}", "body": "链接", "url": url} for i, url in enumerate(URLS)]
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    build_index([corpus], tmp_path / "index")
    client = create_app({"TESTING": True, "INDEX_DIR": str(tmp_path / "index"), "PER_PAGE": 20}).test_client()
    text = client.get("/", query_string={"q": "链接"}).get_data(as_text=True)
    assert_safe_html(text, "链接")
    linked = [html.unescape(h) for h in re.findall(r'<h3 class="title"><a href="([^"]*)">', text)]
    # Every other title opens the article's page on this server instead.
    external = sorted(h for h in linked if not h.startswith("/doc/"))
    assert external == sorted(u for u in URLS if u.startswith(("http://", "https://")))
    assert len(linked) == len(URLS)


def test_no_debug_mode_from_the_environment(index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHSEARCH_INDEX_DIR", str(index_dir))
    monkeypatch.setenv("ZHSEARCH_DEBUG", "true")
    monkeypatch.setenv("FLASK_DEBUG", "1")
    app = create_app()
    assert app.debug is False
    assert os.environ["ZHSEARCH_DEBUG"] == "true"


def test_unexpected_errors_show_no_traceback(index_dir: Path) -> None:
    app = create_app({"TESTING": False, "INDEX_DIR": str(index_dir)})

    @app.get("/api/boom")
    def boom() -> str:
        raise RuntimeError("secret detail")

    resp = app.test_client().get("/api/boom")
    assert resp.status_code == 500
    assert resp.get_json() == {
        "error": {"code": "internal_error", "message": "internal error; the server log has the details"}
    }
    assert "secret detail" not in resp.get_data(as_text=True) and "Traceback" not in resp.get_data(as_text=True)


@pytest.fixture(scope="module")
def live(index_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with zhsearch_server(index_dir, tmp_path_factory.mktemp("safety-server") / "server.log") as server:
        yield server.url


def raw_get(base: str, target: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send a request line byte for byte, as a hostile client would; return status, headers, body."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.slow
@pytest.mark.parametrize(
    "target",
    [
        b"/api/search?q=%FF",
        b"/api/search?q=%zz",
        b"/api/search?q=a%00b",
        b"/api/search?q=\xff\xfe",
        b"/api/search?q=" + "飞桨".encode() + b"&page=-1",
        b"/api/documents/%FF",
        b"/api/documents/a%00b",
        b"/?q=%E9%A3",
    ],
)
def test_hostile_urls_over_http_get_a_4xx_never_a_500(live: str, target: bytes) -> None:
    status, headers, body = raw_get(live, target)
    assert 400 <= status < 500, (status, body[:200])
    assert headers.get("x-content-type-options") == "nosniff"
    assert b"Traceback" not in body
    if target.startswith(b"/api/") and headers.get("content-type", "").startswith("application/json"):
        assert json.loads(body)["error"]["code"]


@pytest.mark.slow
def test_production_server_sends_security_headers(live: str) -> None:
    status, headers, body = raw_get(live, "/?q=飞桨".encode())
    assert status == 200 and "<mark>飞桨</mark>" in body.decode("utf-8")
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "access-control-allow-origin" not in headers
