"""The HTTP client zhsearch uses to talk to a Typesense cluster.

**The client** is a small one of our own over ``http.client`` rather than the
``typesense`` package, because: it must keep retrying through a leader
election (elections took up to 8 s; a write retries for 30 s with backoff),
retry only what is safe (connection errors and 5xx; every write here is an
idempotent upsert by id), report each node's state and whether the cluster
can take writes, send reads only to nodes that have caught up, and keep one
keep-alive connection per node and thread that is dropped after a fork. The
official 2.x client targets much newer servers, adds httpx, and exposes no
per-node health.

**Caught up, not just up.** A restarted Typesense node replays its log and
can answer with part of the index while its ``/health`` says ok. A node is
readable only when ``/health`` is ok and ``/status`` shows no queued writes;
nodes should also run with small ``--healthy-read-lag`` and
``--healthy-write-lag``, so that they answer 503 until they have caught up.
A node that failed is re-checked by a background thread until it is
readable again, so reads spread over every node after a recovery.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import random
import threading
import time
import urllib.parse
import weakref
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ...errors import IndexerError

# The settings that reach the cluster (read by ``store.TypesenseSettings``).
NODES_ENV = "ZHSEARCH_TYPESENSE_NODES"
API_KEY_ENV = "ZHSEARCH_TYPESENSE_API_KEY"
COLLECTION_ENV = "ZHSEARCH_TYPESENSE_COLLECTION"

# How long a request is retried before it fails: a write waits out a leader election (up to 8 s
# measured, 3 nodes on loopback) several times over. Reads stop sooner so that a web request
# answers with an error before gunicorn's 30 s worker timeout kills the worker.
WRITE_BUDGET_S = 30.0
READ_BUDGET_S = 20.0
# Pauses between rounds over every node: doubled from the first to the last, with jitter so
# that the workers of several web servers do not retry in step.
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 1.0
# The longest pause between store.py's retries of a search that one node answered "not found".
RETRY_INTERVAL_S = 0.5
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 30.0
IMPORT_TIMEOUT_S = 300.0
HEALTH_TIMEOUT_S = 1.0
# How often the background thread probes the nodes that failed.
RECHECK_S = 1.0
RETRY_STATUSES = frozenset({500, 502, 503, 504})
# Typesense's answer when a node is not caught up (or has no leader) under --healthy-*-lag.
NOT_READY = 503

# A node's state, as ``zhsearch info`` and ``/healthz`` report it.
LEADER = "leader"  # takes writes, and reads when caught up
FOLLOWER = "follower"  # caught up: serves reads, forwards writes to the leader
LAGGING = "lagging"  # answers but is catching up, so it refuses reads (or would answer with part of the index)
NO_LEADER = "no leader"  # answers but has lost its leader, and none is elected: it soon refuses reads too
DOWN = "down"  # does not answer
# Requests that change nothing on the cluster (Typesense treats multi_search as a read).
_READ_PATHS = ("/multi_search",)


class ClusterUnavailableError(IndexerError):
    """No node of the cluster answered, even after retrying for the whole time budget."""


@dataclass(frozen=True)
class NodeStatus:
    """What one probe of a node found."""

    url: str
    answers: bool
    leader: bool = False
    # /health ok and nothing queued: its answers hold every acknowledged write.
    caught_up: bool = False


@dataclass(frozen=True)
class ClusterState:
    """Every node's state and whether the cluster can take writes, from one probe of each node."""

    found: tuple[NodeStatus, ...]

    @property
    def nodes(self) -> dict[str, str]:
        """``{url: state}``: leader, follower, lagging, no leader or down."""
        # A node that answers but is not caught up is catching up while some node is leader; without
        # a leader it cannot catch up, and Typesense soon has it refuse reads even if it had.
        has_leader = self.writable
        named: dict[str, str] = {}
        for s in self.found:
            if not s.answers:
                named[s.url] = DOWN
            elif s.leader:
                named[s.url] = LEADER
            elif not has_leader:
                named[s.url] = NO_LEADER
            else:
                named[s.url] = FOLLOWER if s.caught_up else LAGGING
        return named

    @property
    def writable(self) -> bool:
        """True when some node is leader (Typesense forwards every write to it)."""
        return any(s.leader for s in self.found)

    @property
    def readable(self) -> bool:
        """True when some node is caught up and serves reads (for a while, even without a leader)."""
        return any(s.caught_up for s in self.found)

    @property
    def majority(self) -> int:
        """How many nodes must be up to elect a leader."""
        return len(self.found) // 2 + 1

    def summary(self) -> str:
        """Each node with its state, for messages: ``http://a:8108 leader, http://b:8108 down``."""
        return ", ".join(f"{node} {state}" for node, state in self.nodes.items())


class TypesenseClient:
    """Requests to any caught-up node, retried across nodes for longer than a leader election."""

    def __init__(
        self,
        nodes: Iterable[str],
        api_key: str,
        write_budget: float = WRITE_BUDGET_S,
        read_budget: float = READ_BUDGET_S,
    ) -> None:
        self.nodes = tuple(nodes)
        self.api_key = api_key
        self.write_budget = write_budget
        self.read_budget = read_budget
        # Requests each node answered in this process (reads and writes), to see how load spreads.
        self.answered: Counter[str] = Counter()
        self._down_since: dict[str, float] = {}
        self._next = itertools.count()
        self._pid = os.getpid()
        self._reset_process_state()

    def _reset_process_state(self) -> None:
        # Locks, connections and the re-check thread belong to one process: gunicorn forks
        # workers after the app was created, a socket must not be shared across a fork, and a
        # lock held by a thread of the parent at the fork would never be released in the child.
        self._state_lock = threading.Lock()
        self._local = threading.local()
        # Every thread's connections, so that close() can close them all.
        self._all_conns: list[dict[str, http.client.HTTPConnection]] = []
        self._checker: threading.Thread | None = None
        self._stop_checks = threading.Event()

    def _after_fork(self) -> None:
        if self._pid != os.getpid():
            inherited = self._all_conns
            self._reset_process_state()
            self._pid = os.getpid()
            # In a forked child: the inherited sockets belong to the parent's conversations.
            for conns in inherited:
                for conn in list(conns.values()):
                    conn.close()

    def _connections(self) -> dict[str, http.client.HTTPConnection]:
        self._after_fork()
        conns: dict[str, http.client.HTTPConnection] | None = getattr(self._local, "conns", None)
        if conns is None:
            conns = {}
            self._local.conns = conns
            with self._state_lock:
                self._all_conns.append(conns)
        return conns

    def _close_thread_connections(self) -> None:
        """Close this thread's connections and forget them (a thread that ends must not leave sockets open)."""
        conns: dict[str, http.client.HTTPConnection] | None = getattr(self._local, "conns", None)
        if conns is None:
            return
        with self._state_lock:
            self._all_conns = [c for c in self._all_conns if c is not conns]
        for conn in list(conns.values()):
            conn.close()
        conns.clear()
        del self._local.conns

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
        """Nodes to try: the readable ones first (rotated, to spread load), then those that failed."""
        start = next(self._next) % len(self.nodes)
        rotated = self.nodes[start:] + self.nodes[:start]
        with self._state_lock:
            up = [n for n in rotated if n not in self._down_since]
            failed = sorted((n for n in rotated if n in self._down_since), key=self._down_since.__getitem__)
            if failed:
                # Also after a fork: the child inherits the marks but not the parent's thread.
                self._ensure_checker()
        # A node that failed is tried last, not never: it may be the only one left. The one that
        # failed longest ago first, since it is the likeliest to be back.
        return up + failed

    def _mark(self, node: str, ok: bool) -> None:
        with self._state_lock:
            if ok:
                self._down_since.pop(node, None)
            else:
                self._down_since.setdefault(node, time.monotonic())
                self._ensure_checker()

    def _ensure_checker(self) -> None:
        """Start the background re-checks in this process unless they run (called with the state lock held)."""
        if self._checker is None or not self._checker.is_alive():
            # A weak reference, so that a client dropped without close() is still collected.
            self._checker = threading.Thread(
                target=_recheck_loop,
                args=(weakref.ref(self), self._stop_checks),
                name="typesense-recheck",
                daemon=True,
            )
            self._checker.start()

    def _recheck(self) -> bool:
        """Probe each node marked down once; readmit those caught up. False when none is left down."""
        with self._state_lock:
            down = list(self._down_since)
        for node in down:
            if self.probe(node).caught_up:
                self._mark(node, ok=True)
        with self._state_lock:
            return bool(self._down_since)

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

        Connection errors, timeouts and 5xx (no leader yet, node not caught
        up) move on to the next node; after a round in which every node
        failed it pauses (backing off) and tries again, until the write or
        read budget has passed. Then it fails with each node's last answer.
        """
        self._after_fork()
        write = method != "GET" and path not in _READ_PATHS
        budget = self.write_budget if write else self.read_budget
        target = path + ("?" + urllib.parse.urlencode(params) if params else "")
        deadline = time.monotonic() + budget
        pause = BACKOFF_FIRST_S
        answers: dict[str, str] = {}
        while True:
            for node in self._order():
                # A read waits no longer than the budget left; a write keeps its own timeout (an import is slow).
                left = max(deadline - time.monotonic(), CONNECT_TIMEOUT_S)
                try:
                    status, data = self._send(node, method, target, body, timeout if write else min(timeout, left))
                except OSError as exc:
                    self._mark(node, ok=False)
                    answers[node] = _describe(exc)
                    continue
                except http.client.HTTPException as exc:
                    # It answered, but not with HTTP: a follower that lost its leader while forwarding a write.
                    if not write:
                        self._mark(node, ok=False)
                    answers[node] = f"a broken answer ({exc.__class__.__name__} {str(exc).strip()!r})" + (
                        ", as a follower gives when it cannot reach the leader" if write else ""
                    )
                    continue
                if status in RETRY_STATUSES:
                    answers[node] = f"HTTP {status} {_message(data)}"
                    # 503 to a read: not caught up, or no leader; it is re-checked in the background.
                    if status == NOT_READY and not write:
                        self._mark(node, ok=False)
                    continue
                self._mark(node, ok=True)
                with self._state_lock:
                    self.answered[node] += 1
                if status == 401:
                    raise IndexerError(f"the Typesense cluster rejected the API key; check {API_KEY_ENV}")
                return status, data
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(pause * random.uniform(0.5, 1.0), left))
            pause = min(pause * 2, BACKOFF_MAX_S)
        raise ClusterUnavailableError(self._failure(write, f"{method} {path}", budget, answers))

    def _failure(self, write: bool, what: str, budget: float, answers: dict[str, str]) -> str:
        """Why a request failed, for the operator: the cluster's state now and each node's last answer."""
        last = "; ".join(f"{node}: {answers.get(node, 'not tried')}" for node in self.nodes)
        return problem(
            self.cluster_state(), write, f"each node's last answer over {budget:.0f} s of retries ({what}): {last}"
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

    def probe(self, node: str) -> NodeStatus:
        """One look at a node, without retries: does it answer, is it leader, has it caught up."""
        try:
            status, data = self._send(node, "GET", "/health", None, HEALTH_TIMEOUT_S)
            healthy = status == 200 and _json_field(data, "ok") is True
            # Typesense 0.24's /status: {"state": "LEADER" | "FOLLOWER" | ..., "queued_writes": N, ...}.
            status, data = self._send(node, "GET", "/status", None, HEALTH_TIMEOUT_S)
        except (OSError, http.client.HTTPException):
            return NodeStatus(node, answers=False)
        leader = status == 200 and _json_field(data, "state") == "LEADER"
        # Writes the node has accepted but not yet indexed: its answers would miss them.
        queued = _json_field(data, "queued_writes") if status == 200 else None
        return NodeStatus(node, answers=True, leader=leader, caught_up=healthy and queued == 0)

    def cluster_state(self) -> ClusterState:
        """Probe every node once: each node's state (leader, follower, lagging, no leader, down) and writability."""
        self._after_fork()
        found = [self.probe(node) for node in self.nodes]
        for status in found:
            self._mark(status.url, ok=status.caught_up)
        return ClusterState(tuple(found))

    def answered_counts(self) -> dict[str, int]:
        """How many requests each node answered in this process so far."""
        with self._state_lock:
            return dict(self.answered)

    def close(self) -> None:
        """Close every connection this client opened and stop re-checking (both resume on the next request)."""
        self._stop_checks.set()
        self._close_all()
        self._local = threading.local()
        self._stop_checks = threading.Event()
        with self._state_lock:
            self._checker = None

    def __del__(self) -> None:
        # A store dropped without close() must not leak sockets.
        with contextlib.suppress(Exception):
            self._stop_checks.set()
            self._close_all()


def problem(state: ClusterState, write: bool, tried: str = "") -> str:
    """Why the cluster cannot take writes (``write``) or serve reads, and what to do, for an operator."""
    live = [n for n, s in state.nodes.items() if s != DOWN]
    detail = f"; {tried}" if tried else ""
    if not live:
        return (
            f"no Typesense node answers ({state.summary()}){detail}. Check that typesense-server runs on every "
            f"node that {NODES_ENV} names and that this machine can reach them"
        )
    if not state.writable:
        reads = (
            "Reads go on from the nodes that are caught up until they notice that they have no leader."
            if state.readable
            else "Typesense nodes without a leader refuse reads too."
        )
        return (
            f"the Typesense cluster has no leader, so it cannot {'take writes' if write else 'serve reads'}: "
            f"{len(live)} of {len(state.nodes)} nodes answer, and {state.majority} must be up to elect one "
            f"({state.summary()}){detail}. Start the stopped nodes: writes resume once {state.majority} are up "
            f"and have elected a leader. {reads}"
        )
    return (
        f"no Typesense node {'took the write' if write else 'served the read'} ({state.summary()}){detail}. "
        "A lagging node serves reads again once it has caught up with the leader"
    )


def _recheck_loop(ref: weakref.ref[TypesenseClient], stop: threading.Event) -> None:
    """The background thread: probe the nodes marked down every RECHECK_S until none is left (or close())."""
    while not stop.wait(RECHECK_S):
        client = ref()
        if client is None:
            return
        # probe() turns every network failure into "does not answer"; anything else is a bug, which
        # ends the thread with a traceback on stderr (the next request that meets a down node starts another).
        if not client._recheck():
            client._close_thread_connections()
            return
        # No strong reference between rounds, so that a client dropped without close() is collected.
        del client


def _describe(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is typesense-server running?)"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return f"{exc.__class__.__name__}: {exc}"


def _message(data: bytes) -> str:
    found = _json_field(data, "message")
    return str(found) if found is not None else data[:200].decode("utf-8", "replace")


def _json_field(data: bytes, name: str) -> Any:
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    return parsed.get(name) if isinstance(parsed, dict) else None


def check(status: int, data: Any, what: str) -> Any:
    """The answer's data when the status is 2xx; else an error saying what Typesense refused."""
    if 200 <= status < 300:
        return data
    message = data.get("message") if isinstance(data, dict) else data
    raise IndexerError(f"Typesense refused to {what}: HTTP {status} {message}")
