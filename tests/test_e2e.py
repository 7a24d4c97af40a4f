"""End to end: `zhsearch serve` as a real process (gunicorn), queried over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ZHSEARCH = Path(sys.executable).parent / "zhsearch"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(index_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(ZHSEARCH), "serve", "--index", str(index_dir), "--port", str(port), "--workers", "2"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"server did not start:\n{log_path.read_text(encoding='utf-8')}")
                time.sleep(0.2)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


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
