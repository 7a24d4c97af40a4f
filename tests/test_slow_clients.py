"""Slow and malformed clients against `zhsearch serve` as a real process (gunicorn, our worker), over raw sockets."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from harness import HOST, free_port, log_tail, running_server, zhsearch_server

from indexer.server import HEADER_TIMEOUT_S, HTTP_ERROR_KEY, LIMIT_REQUEST_LINE
from service.errors import SERVER_ERROR_KEY

pytestmark = pytest.mark.slow

TRICKLERS = 50
# Far from the failure mode (every request blocked for 20 s or more), yet well above a search's time
# on the mini index on a loaded, shared machine.
PROMPT_S = 2.0
SEARCH = "/api/search?" + urllib.parse.urlencode({"q": "混合专家"})


@pytest.fixture(scope="module")
def port(index_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with zhsearch_server(index_dir, tmp_path_factory.mktemp("server") / "server.log", workers=2) as server:
        yield server.port


def exchange(port: int, data: bytes, timeout: float = 30.0) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(data)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    return raw


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """The status, headers (lower-case names) and body of one HTTP/1.1 answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def get(port: int, path: str) -> tuple[int, bytes]:
    """One ordinary GET (Connection: close)."""
    status, _, body = parse(exchange(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()))
    return status, body


def error_code(body: bytes) -> str:
    """The code of an API error, checking the whole shape: {"error": {"code", "message"}} and nothing else."""
    data = json.loads(body)
    assert list(data) == ["error"] and sorted(data["error"]) == ["code", "message"], data
    assert isinstance(data["error"]["message"], str) and data["error"]["message"]
    code: str = data["error"]["code"]
    return code


def test_ordinary_requests_answer_promptly_while_50_connections_trickle_their_headers(port: int) -> None:
    for _ in range(4):  # each worker opens the index on its first search
        assert get(port, SEARCH)[0] == 200
    slow = [socket.create_connection((HOST, port), timeout=10) for _ in range(TRICKLERS)]
    stop = threading.Event()

    def trickle() -> None:
        # As in the report: a request head sent a byte at a time, a second apart.
        for sock in slow:
            sock.sendall(f"GET {SEARCH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Slow".encode())
        while not stop.wait(1.0):
            for sock in slow:
                sock.sendall(b"w")

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        time.sleep(1.0)
        timings: list[tuple[str, int, float]] = []
        ends = time.monotonic() + 4.0
        while time.monotonic() < ends:
            for path in (SEARCH, "/healthz", "/api/documents/ernie"):
                started = time.monotonic()
                status, _ = get(port, path)
                timings.append((path, status, time.monotonic() - started))
    finally:
        stop.set()
        trickler.join(timeout=10)
    assert len(timings) >= 6, timings
    assert all(status == 200 for _, status, _ in timings), timings
    assert max(seconds for _, _, seconds in timings) < PROMPT_S, max(timings, key=lambda t: t[2])
    # The slow clients were still waiting, unanswered; once their heads end, they are served too.
    for sock in slow:
        sock.sendall(b": 1\r\n\r\n")
    for sock in slow:
        with sock:
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
            assert parse(raw)[0] == 200


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        pytest.param(
            f"GET {SEARCH}{'y' * LIMIT_REQUEST_LINE} HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long", id="long-line"
        ),
        pytest.param(
            f"GET /api/search?q={'y' * 60_000} HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long", id="60k-line"
        ),
        pytest.param(
            f"GET {SEARCH} HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 9000}\r\n\r\n",
            431,
            "headers_too_large",
            id="big-header",
        ),
        pytest.param(
            f"GET {SEARCH} HTTP/1.1\r\nHost: x\r\n" + "".join(f"X-{i}: a\r\n" for i in range(101)) + "\r\n",
            431,
            "headers_too_large",
            id="101-headers",
        ),
        pytest.param(
            f"GET {SEARCH} HTTP/1.1\r\nHost: x\r\n" + "".join(f"X-{i}: {'a' * 8000}\r\n" for i in range(5)) + "\r\n",
            431,
            "headers_too_large",
            id="40KB-head",
        ),
        pytest.param("GET /api/search?q=x HTTP/9.x\r\nHost: x\r\n\r\n", 400, "bad_request", id="bad-version"),
        pytest.param("GET /api/search?q=x HTTP/1.1\r\nHo st: x\r\n\r\n", 400, "bad_request", id="bad-header-name"),
        pytest.param("GET /api/search?q=a b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request", id="space-in-target"),
        pytest.param("G(T /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request", id="bad-method"),
    ],
)
def test_requests_gunicorn_refuses_get_the_json_error(port: int, request_bytes: str, status: int, code: str) -> None:
    got, headers, body = parse(exchange(port, request_bytes.encode()))
    assert got == status, body[:300]
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert headers["x-content-type-options"] == "nosniff"  # the app's own answer, with its headers
    assert error_code(body) == code


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param("GET /api/search?q=x HTTP/1.1\nHost: x\n\n", id="all-bare-lf"),
        pytest.param("GET /api/search?q=x HTTP/1.1\r\nHost: x\nX-A: b\r\n", id="bare-lf-in-an-unfinished-head"),
    ],
)
def test_a_head_with_bare_line_feeds_is_refused_at_once(port: int, request_bytes: str) -> None:
    # Such a head never ends in CRLF CRLF; waiting for it would answer a 408 only after the header timeout.
    started = time.monotonic()
    got, headers, body = parse(exchange(port, request_bytes.encode(), timeout=HEADER_TIMEOUT_S + 20))
    assert (got, error_code(body)) == (400, "bad_request")
    assert "bare LF" in json.loads(body)["error"]["message"]
    assert time.monotonic() - started < HEADER_TIMEOUT_S / 2


def test_outside_the_api_the_refusal_is_the_error_page(port: int) -> None:
    got, headers, body = parse(exchange(port, f"GET /?q={'y' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()))
    assert got == 414
    assert headers["content-type"].startswith("text/html")
    # The page speaks Chinese; the JSON of the same refusal says the limit (8,190 bytes).
    assert "链接太长了" in body.decode("utf-8")


def test_a_head_request_refused_gets_no_body(port: int) -> None:
    got, headers, body = parse(exchange(port, f"HEAD /api/search?q={'y' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()))
    assert (got, body) == (414, b"")
    assert headers["content-type"] == "application/json"


def test_a_head_that_stops_arriving_gets_a_408(port: int) -> None:
    started = time.monotonic()
    raw = exchange(port, f"GET {SEARCH} HTTP/1.1\r\nHost: x\r\n".encode(), timeout=HEADER_TIMEOUT_S + 20)
    waited = time.monotonic() - started
    got, _, body = parse(raw)
    assert (got, error_code(body)) == (408, "request_timeout")
    assert HEADER_TIMEOUT_S - 0.5 <= waited < HEADER_TIMEOUT_S + 10


def test_keep_alive_and_pipelined_requests(port: int) -> None:
    two = f"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET {SEARCH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    raw = exchange(port, two.encode())
    first, _, rest = raw.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200") and b"Connection: keep-alive" in first
    assert rest.count(b"HTTP/1.1 200 OK") == 1 and "<mark>混合专家</mark>".encode() in rest


def test_the_worker_and_the_app_agree_on_the_error_key(client: FlaskClient) -> None:
    assert HTTP_ERROR_KEY == SERVER_ERROR_KEY
    # Runs before the URL checks: this query string alone would be a 400 invalid_parameter.
    response = client.get("/api/search?q=%ZZ", environ_overrides={SERVER_ERROR_KEY: (431, "too big")})
    assert response.status_code == 431
    assert response.get_json() == {"error": {"code": "headers_too_large", "message": "too big"}}


HANGING_APP = """
import time

def app(environ, start_response):
    seconds = float(environ["PATH_INFO"].strip("/") or 0)
    time.sleep(seconds)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"slept %g" % seconds]
"""


def sleepy_command(tmp_path: Path, port: int, *options: str) -> list[str]:
    """gunicorn with one HeadBufferingWorker serving HANGING_APP, with gunicorn ``options`` added."""
    (tmp_path / "sleepy.py").write_text(HANGING_APP, encoding="utf-8")
    gunicorn = Path(sys.executable).parent / "gunicorn"
    cmd = [str(gunicorn), "-k", "indexer.server.HeadBufferingWorker", "--threads", "4", "-w", "1", *options]
    return [*cmd, "-b", f"{HOST}:{port}", "--no-control-socket", "--chdir", str(tmp_path), "sleepy:app"]


def test_a_hung_request_gets_its_worker_replaced_but_busy_ones_do_not(tmp_path: Path) -> None:
    # The worker class under gunicorn with a 3 s worker timeout, serving an app that sleeps on request.
    port, log = free_port(), tmp_path / "gunicorn.log"
    with running_server(sleepy_command(tmp_path, port, "-t", "3"), port, log, health_path="/"):
        # Back to back, 6 s of app time in all, each call under the timeout: the worker is busy, not hung.
        results: list[int] = []
        calls = [threading.Thread(target=lambda: results.append(get(port, "/2")[0])) for _ in range(3)]
        for t in calls:
            t.start()
        for t in calls:
            t.join()
        assert results == [200, 200, 200]
        assert "WORKER TIMEOUT" not in log.read_text(encoding="utf-8")
        # One call over the timeout: the master replaces the worker, and the next request is served.
        try:
            answer = exchange(port, b"GET /60 HTTP/1.1\r\nHost: x\r\n\r\n")
        except OSError:
            answer = b""
        assert answer == b""  # the connection closed with the killed worker
        assert get(port, "/0")[0] == 200
    text = log.read_text(encoding="utf-8")
    assert "WORKER TIMEOUT" in text and "request /60 ran for" in text


def open_idle_connections(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that send nothing, or a request head's first bytes and then nothing."""
    socks = []
    for i in range(count):
        sock = socket.create_connection((HOST, port), timeout=30)
        if i % 2:
            sock.sendall(b"GET /0 HTTP/1.1\r\nHost: x\r\n")
        socks.append(sock)
    return socks


@pytest.mark.parametrize(
    ("prefix", "options"),
    [
        # A full connection table: 300 connections against gunicorn's worker_connections of 100.
        pytest.param([], ["--worker-connections", "100"], id="connection-table-full"),
        # Out of file descriptors first (`ulimit -n 64`): accept() fails with EMFILE, which must not end the worker.
        pytest.param(["prlimit", "--nofile=64:64", "--"], [], id="out-of-file-descriptors"),
    ],
)
def test_a_flood_of_idle_connections_does_not_lock_new_clients_out(
    tmp_path: Path, prefix: list[str], options: list[str]
) -> None:
    port, log = free_port(), tmp_path / "gunicorn.log"
    with running_server([*prefix, *sleepy_command(tmp_path, port, *options)], port, log, health_path="/"):
        idle = open_idle_connections(port, 300)
        try:
            # Each newcomer closes the connection that has waited longest, instead of queueing until the
            # idle ones reach the header timeout.
            for _ in range(5):
                started = time.monotonic()
                assert get(port, "/0")[0] == 200
                assert time.monotonic() - started < HEADER_TIMEOUT_S / 2
        finally:
            for sock in idle:
                sock.close()
    text = log.read_text(encoding="utf-8")
    assert text.count("Booting worker") == 1, log_tail(log)
    assert "Traceback" not in text
