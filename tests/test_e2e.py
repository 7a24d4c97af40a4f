"""End to end: `zhsearch serve` as a real process (gunicorn), queried over HTTP."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import zhsearch_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(index_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with zhsearch_server(index_dir, tmp_path_factory.mktemp("server") / "server.log", workers=2) as server:
        yield server.url


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode("utf-8"))


def test_search_over_http(server: str) -> None:
    status, data = get(server + "/api/search?" + urllib.parse.urlencode({"q": "混合专家"}))
    assert status == 200
    results = data["results"]
    assert isinstance(results, list)
    assert results[0]["id"] == "moe-intro"
    assert "<mark>" in results[0]["snippet_html"]


def test_raw_utf8_in_the_request_line_is_accepted(server: str) -> None:
    # curl 'http://.../api/search?q=混合专家' sends the characters unencoded.
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall("GET /api/search?q=混合专家 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert "<mark>混合专家</mark>" in body.decode("utf-8")


def test_health_document_and_errors_over_http(server: str) -> None:
    assert get(server + "/healthz") == (200, {"status": "ok", "documents": 8, "warnings": []})
    status, doc = get(server + "/api/documents/ernie")
    assert status == 200 and doc["id"] == "ernie"
    status, err = get(server + "/api/search?q=" + "x" * 300)
    assert status == 400 and err["error"]["code"] == "query_too_long"  # type: ignore[index]


def test_html_page_over_http(server: str) -> None:
    with urllib.request.urlopen(server + "/?" + urllib.parse.urlencode({"q": "飞桨"}), timeout=10) as resp:
        html = resp.read().decode("utf-8")
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "<mark>飞桨</mark>" in html
