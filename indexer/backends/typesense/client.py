"""The HTTP client zhsearch uses to talk to a Typesense cluster.

**The client** is a small one of our own over ``http.client`` rather than the
``typesense`` package, because: it must keep retrying through a leader
election (~7 s; we retry 20 rounds 0.5 s apart), retry only what is safe
(connection errors and 5xx; every write here is an idempotent upsert by id),
report each node's health for ``info()``, prefer nodes that answered, and
keep one keep-alive connection per node and thread that is dropped after a
fork. The official 2.x client targets much newer servers, adds httpx, and
exposes no per-node health.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Iterable
from typing import Any

from ...errors import IndexerError

# The settings that reach the cluster (read by ``store.TypesenseSettings``).
NODES_ENV = "ZHSEARCH_TYPESENSE_NODES"
API_KEY_ENV = "ZHSEARCH_TYPESENSE_API_KEY"
COLLECTION_ENV = "ZHSEARCH_TYPESENSE_COLLECTION"

# Longer than a Raft leader election (about 7 s measured with 3 nodes on loopback).
RETRIES = 20
RETRY_INTERVAL_S = 0.5
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 30.0
IMPORT_TIMEOUT_S = 300.0
HEALTH_TIMEOUT_S = 1.0
# A node that failed is tried again only after this long (or when every node failed).
RECHECK_S = 5.0
RETRY_STATUSES = frozenset({500, 502, 503, 504})


class ClusterUnavailableError(IndexerError):
    """No node of the cluster answered, even after retrying through an election."""


class TypesenseClient:
    """Requests to any healthy node, retried across nodes for longer than a leader election."""

    def __init__(
        self,
        nodes: Iterable[str],
        api_key: str,
        retries: int = RETRIES,
        retry_interval: float = RETRY_INTERVAL_S,
    ) -> None:
        self.nodes = tuple(nodes)
        self.api_key = api_key
        self.retries = retries
        self.retry_interval = retry_interval
        self._down_since: dict[str, float] = {}
        self._state_lock = threading.Lock()
        self._next = itertools.count()
        self._local = threading.local()
        self._pid = os.getpid()
        # Every thread's connections, so that close() can close them all.
        self._all_conns: list[dict[str, http.client.HTTPConnection]] = []

    # Connections are per thread and per process: gunicorn forks workers
    # after the app was created, and a socket must not be shared across a fork.
    def _connections(self) -> dict[str, http.client.HTTPConnection]:
        if self._pid != os.getpid():
            # In a forked child: the inherited sockets belong to the parent's conversations.
            self._close_all()
            self._local = threading.local()
            self._pid = os.getpid()
        conns: dict[str, http.client.HTTPConnection] | None = getattr(self._local, "conns", None)
        if conns is None:
            conns = {}
            self._local.conns = conns
            with self._state_lock:
                self._all_conns.append(conns)
        return conns

    def _close_all(self) -> None:
        with self._state_lock:
            every, self._all_conns = self._all_conns, []
        for conns in every:
            for conn in list(conns.values()):
                conn.close()
            conns.clear()

    def _connect(self, node: str) -> http.client.HTTPConnection:
        parsed = urllib.parse.urlsplit(node)
        cls = http.client.HTTPSConnection if parsed.scheme == "https" else http.client.HTTPConnection
        conn = cls(parsed.hostname or "127.0.0.1", parsed.port, timeout=CONNECT_TIMEOUT_S)
        conn.connect()
        return conn

    def _order(self) -> list[str]:
        """Nodes to try: those that answered lately first (rotated, to spread load), then the rest."""
        now = time.monotonic()
        start = next(self._next) % len(self.nodes)
        rotated = self.nodes[start:] + self.nodes[:start]
        with self._state_lock:
            up = [n for n in rotated if n not in self._down_since]
            due = [n for n in rotated if n in self._down_since and now - self._down_since[n] >= RECHECK_S]
            resting = [n for n in rotated if n in self._down_since and now - self._down_since[n] < RECHECK_S]
        # A node that failed a moment ago is tried last, not never: it may be the only one left.
        return up + due + resting

    def _mark(self, node: str, ok: bool) -> None:
        with self._state_lock:
            if ok:
                self._down_since.pop(node, None)
            else:
                self._down_since.setdefault(node, time.monotonic())

    def _send(self, node: str, method: str, target: str, body: bytes | None, timeout: float) -> tuple[int, bytes]:
        conns = self._connections()
        headers = {"X-TYPESENSE-API-KEY": self.api_key, "Content-Type": "application/json"}
        for fresh in (False, True):
            conn = conns.get(node)
            reused = conn is not None and not fresh
            if conn is None or fresh:
                if conn is not None:
                    conn.close()
                conn = conns[node] = self._connect(node)
            try:
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    conn.close()
                    conns.pop(node, None)
                return resp.status, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conns.pop(node, None)
                conn.close()
                # A kept-alive connection the server closed meanwhile: reconnect once.
                if not reused:
                    raise
            except BaseException:
                conns.pop(node, None)
                conn.close()
                raise
        raise AssertionError("unreachable")

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: bytes | None = None,
        timeout: float = READ_TIMEOUT_S,
    ) -> tuple[int, bytes]:
        """Send one request; return ``(status, body)`` of the first node that gives a definite answer.

        Connection errors, timeouts and 5xx (no leader yet, node not ready)
        move on to the next node; after a round in which every node failed it
        waits ``retry_interval`` and tries again, ``retries`` times.
        """
        target = path + ("?" + urllib.parse.urlencode(params) if params else "")
        last = "no node tried"
        for round_no in range(self.retries + 1):
            for node in self._order():
                try:
                    status, data = self._send(node, method, target, body, timeout)
                except (OSError, http.client.HTTPException) as exc:
                    self._mark(node, ok=False)
                    last = f"{node}: {exc.__class__.__name__}: {exc}"
                    continue
                if status in RETRY_STATUSES:
                    last = f"{node}: HTTP {status} {data[:200].decode('utf-8', 'replace')}"
                    continue
                self._mark(node, ok=True)
                if status == 401:
                    raise IndexerError(f"the Typesense cluster rejected the API key; check {API_KEY_ENV}")
                return status, data
            if round_no < self.retries:
                time.sleep(self.retry_interval)
        raise ClusterUnavailableError(
            f"no Typesense node answered {method} {path} after {self.retries + 1} rounds over "
            f"{', '.join(self.nodes)}; last error: {last}"
        )

    def json(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        payload: Any = None,
        timeout: float = READ_TIMEOUT_S,
    ) -> tuple[int, Any]:
        """Like ``request`` with a JSON body and a parsed JSON answer."""
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8") if payload is not None else None
        status, data = self.request(method, path, params, body, timeout)
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, data.decode("utf-8", "replace")

    def node_health(self) -> dict[str, str]:
        """``{node: "ok" | "down" | "not ready"}`` from each node's /health, without retries."""
        found: dict[str, str] = {}
        for node in self.nodes:
            try:
                status, data = self._send(node, "GET", "/health", None, HEALTH_TIMEOUT_S)
            except (OSError, http.client.HTTPException):
                found[node] = "down"
                self._mark(node, ok=False)
                continue
            try:
                ok = status == 200 and json.loads(data).get("ok") is True
            except (ValueError, AttributeError):
                ok = False
            found[node] = "ok" if ok else "not ready"
            self._mark(node, ok=ok)
        return found

    def close(self) -> None:
        """Close every connection this client opened (they reopen on the next request)."""
        self._close_all()
        self._local = threading.local()

    def __del__(self) -> None:
        # A store dropped without close() must not leak sockets.
        with contextlib.suppress(Exception):
            self._close_all()


def check(status: int, data: Any, what: str) -> Any:
    """The answer's data when the status is 2xx; else an error saying what Typesense refused."""
    if 200 <= status < 300:
        return data
    message = data.get("message") if isinstance(data, dict) else data
    raise IndexerError(f"Typesense refused to {what}: HTTP {status} {message}")
