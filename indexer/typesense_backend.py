"""A Typesense cluster backend: replicas for read capacity and availability, behind the storage seam.

Select it with ``ZHSEARCH_BACKEND=typesense`` and point it at the cluster
with ``ZHSEARCH_TYPESENSE_NODES`` (comma-separated URLs of every node),
``ZHSEARCH_TYPESENSE_API_KEY`` and ``ZHSEARCH_TYPESENSE_COLLECTION``
(default ``zhsearch``). Typesense replicates every document to every node
(Raft; no sharding), so a cluster adds read throughput and survives a node,
not data size.

**State lives in the cluster, not in ``index_dir``.** ``index_dir`` is not
used at all: the live collection is found through a Typesense alias, and its
build metadata (format version, build and update times, sources, user
dictionary) is a document in the ``<collection>__meta`` collection. Any
number of web servers can share the cluster without sharing a disk, and
``zhsearch info`` on any machine reports the same thing.

**Documents.** Text is analysed by zhsearch's own analyzer
(``indexer.analysis``), never by Typesense, so folding, identifiers and the
user dictionary behave as on Whoosh. Each of title and body becomes:

- ``<field>_seq`` (indexed ``string``): one token per position, that is the
  jieba words and, for identifiers, their finest pieces (``ernie 4 5 vl``),
  so Typesense phrases see adjacent words; then the index-time extras
  (sub-words such as 大模型 inside 文心大模型, whole identifiers and their
  parts) appended once each, so every analysed term is searchable by ``q``.
- ``<field>_terms`` (``string[]``): the distinct index-time terms, used by
  ``filter_by`` for exact boolean matching.

Typesense keeps ``. - _ + #`` inside tokens (``symbols_to_index``) so that
``c++``, ``c#``, ``4.5`` and ``45`` stay distinct. The original title, body,
url, origin, content hash and ISO date are stored unindexed and come back in
hits; snippets and highlights are made by zhsearch from them, as on Whoosh.
``source`` and ``tags`` are facet fields; ``date`` is an int64 (epoch
seconds, ``MISSING_DATE`` when there is none) for filters and sorting.

**Queries.** The parsed tree is compiled twice:

- *Which documents match* is an exact boolean ``filter_by`` over the
  ``_terms`` fields: AND, OR, NOT (pushed down to the leaves by De Morgan,
  since Typesense negates only single conditions), field restriction,
  source/tag filters and date ranges all keep Whoosh's meaning. ``total`` and
  facet counts are therefore the same as on Whoosh except where noted below.
- *In which order*: when every word must match, Typesense's own ranking of
  ``q`` (every word, and the quoted phrases) over ``title_seq,body_seq``,
  title weighted 2:1, no typos, no prefixes, no token dropping. When not
  every word must match (``OR``, synonyms, questions, relaxed queries),
  Typesense's token dropping would rank by the longest run of words from
  the left, which orders questions almost at random; instead one
  multi_search asks, per word, for its best ``CANDIDATES_PER_WORD``
  documents within the filter, and zhsearch adds up the words' IDF (from
  the per-word counts) weighted by Typesense's rank for each word, then
  fetches the page's documents. Date order needs no ranking.

Where Typesense cannot say exactly what Whoosh says:

- Typesense's ranking has no IDF and no BM25 length normalisation; scores
  are its ``text_match`` numbers (or zhsearch's IDF sums, above), comparable
  only within one query. In the IDF merge a document that has only words too
  common to be among any word's best candidates counts in ``total`` but is
  not listed.
- A phrase is exact only where every word must match (it then goes into
  ``q``); under ``OR`` or ``NOT`` it becomes "all of its words" without
  adjacency. ``title:"…"`` checks adjacency in either field (the words are
  still required in the title). A phrase does not match through a sub-word
  (``"开源 大模型"`` does not find 开源文心大模型).
- An identifier with pieces (``python3``) also matches documents that have
  all its pieces (``python`` … ``3``), not only adjacent ones.
- Minimum-should-match for long questions is a filter listing every
  combination of the required number of words; when that list would exceed
  ``MAX_COMBINATIONS``, fewer words are required (never more), so a long
  question can match more documents than on Whoosh.
- A source or tag value containing a backtick cannot be written in a
  Typesense filter and matches nothing.
- ``size_bytes`` in ``info()`` is the memory the answering node's allocator
  holds (Typesense keeps everything in RAM on every node), not a disk size.
- There is no writer lock: run one ``build``/``add``/``delete`` at a time.
- Reads go to any node, and a follower applies a write milliseconds after
  the leader acknowledged it: a search right after ``add`` may not see the
  document yet on another node (a missing alias or metadata is re-read for
  up to ``REPLICATION_WAIT_S`` before it counts as missing).

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
import math
import os
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import __version__
from .analysis import current_user_dict, identifier_pieces, init_jieba, iter_terms
from .corpus import Article
from .errors import IndexerError, IndexMissingError, SchemaMismatchError
from .plan import plan_text
from .query import And, DateRange, Filter, Node, Not, Or, Phrase, Text, positive_texts
from .schema import SCHEMA_VERSION
from .store import IndexInfo, RawHit, RawPage, SearchRequest
from .whoosh_backend import user_dict_warnings

NODES_ENV = "ZHSEARCH_TYPESENSE_NODES"
API_KEY_ENV = "ZHSEARCH_TYPESENSE_API_KEY"
COLLECTION_ENV = "ZHSEARCH_TYPESENSE_COLLECTION"
DEFAULT_NODES = "http://127.0.0.1:8108"
DEFAULT_COLLECTION = "zhsearch"

# Bump when the documents or the collection schema below change: a cluster
# built by another layout must be rebuilt, like a Whoosh index of another format.
LAYOUT_VERSION = 1
FORMAT_VERSION = f"{SCHEMA_VERSION}+ts{LAYOUT_VERSION}"
REBUILD_HINT = "rebuild it with `zhsearch build PATH...`"

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

IMPORT_BATCH = 200
MAX_FACET_VALUES = 20
# Above this many "k of n words" combinations, a question requires fewer words.
MAX_COMBINATIONS = 128
# When not every word must match: how many words, and how many documents per word, are ranked.
MAX_RANK_WORDS = 16
CANDIDATES_PER_WORD = 250
QUERY_BY = "title_seq,body_seq"
QUERY_WEIGHTS = "2,1"
READY_CACHE_S = 2.0
# Reads go to any node, and a follower applies a write a few milliseconds after
# the leader acknowledged it: "not found" is believed only after this long.
REPLICATION_WAIT_S = 2.0
# A search answered with "not found" or "not ready" by one node is asked again (the client rotates nodes).
SEARCH_RETRIES = 20

MISSING_DATE = -(2**62)
EPOCH = datetime(1970, 1, 1)

TEXT_FIELDS = ("title", "body")
STORED_FIELDS = ("id", "title", "body", "url", "source", "tags", "date_iso", "origin", "content_hash")
FILTER_FIELD = {"source": "source", "tags": "tags"}


# -- settings -----------------------------------------------------------------


@dataclass(frozen=True)
class TypesenseSettings:
    """Where the cluster is and which collection (alias) holds the index."""

    nodes: tuple[str, ...]
    api_key: str
    collection: str

    @classmethod
    def from_env(cls) -> TypesenseSettings:
        """Read ``ZHSEARCH_TYPESENSE_NODES``, ``..._API_KEY`` and ``..._COLLECTION``."""
        raw = os.environ.get(NODES_ENV, DEFAULT_NODES)
        nodes = tuple(n.strip().rstrip("/") for n in raw.split(",") if n.strip())
        for node in nodes:
            parsed = urllib.parse.urlsplit(node)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise IndexerError(f"{NODES_ENV}: {node!r} is not a URL such as http://127.0.0.1:8108")
        if not nodes:
            raise IndexerError(f"{NODES_ENV} names no Typesense node")
        api_key = os.environ.get(API_KEY_ENV, "")
        if not api_key:
            raise IndexerError(f"set {API_KEY_ENV} to the Typesense cluster's API key")
        collection = os.environ.get(COLLECTION_ENV, DEFAULT_COLLECTION).strip() or DEFAULT_COLLECTION
        if not collection.replace("_", "").replace("-", "").isalnum():
            raise IndexerError(f"{COLLECTION_ENV}: {collection!r} must be letters, digits, - and _")
        return cls(nodes, api_key, collection)


# -- the HTTP client ----------------------------------------------------------


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


def _check(status: int, data: Any, what: str) -> Any:
    if 200 <= status < 300:
        return data
    message = data.get("message") if isinstance(data, dict) else data
    raise IndexerError(f"Typesense refused to {what}: HTTP {status} {message}")


# -- documents ----------------------------------------------------------------


def _epoch(value: datetime) -> int:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return math.floor((value - EPOCH).total_seconds())


def analyse_field(text: str) -> tuple[str, list[str]]:
    """``(seq, terms)`` for one text field: positions then extras as one string, and the distinct terms."""
    by_position: dict[int, list[str]] = {}
    for term, pos, _, _ in iter_terms(text, "index"):
        by_position.setdefault(pos, []).append(term)
    main: list[str] = []
    skip_until = -1
    for pos in sorted(by_position):
        if pos < skip_until:
            continue
        first = by_position[pos][0]
        # An identifier's first term is the whole of it; its pieces fill the next positions.
        pieces = identifier_pieces(first)
        if pieces:
            main.extend(pieces)
            skip_until = pos + len(pieces)
        else:
            main.append(first)
    distinct = list(dict.fromkeys(t for terms in by_position.values() for t in terms))
    seen = set(main)
    extras = [t for t in distinct if t not in seen]
    terms = list(dict.fromkeys([*distinct, *main]))
    return " ".join(main + extras), terms


def to_document(article: Article) -> dict[str, Any]:
    """The Typesense document for an article: analysed fields for search, the original for display."""
    doc: dict[str, Any] = {
        "id": article.id,
        "source": article.source,
        "tags": list(article.tags),
        "date": _epoch(article.date) if article.date is not None else MISSING_DATE,
        "title": article.title,
        "body": article.body,
        "url": article.url,
        "origin": article.origin,
        "content_hash": article.content_hash(),
        "date_iso": article.date.isoformat() if article.date is not None else None,
    }
    for name, text in (("title", article.title), ("body", article.body)):
        seq, terms = analyse_field(text)
        doc[f"{name}_seq"] = seq
        doc[f"{name}_terms"] = terms
    return doc


def from_document(doc: dict[str, Any]) -> Article:
    """The article stored in a Typesense document."""
    iso = doc.get("date_iso")
    return Article(
        id=str(doc["id"]),
        title=doc.get("title", ""),
        body=doc.get("body", ""),
        date=datetime.fromisoformat(iso) if iso else None,
        source=doc.get("source", ""),
        tags=tuple(doc.get("tags") or ()),
        url=doc.get("url", ""),
        origin=doc.get("origin", ""),
    )


def collection_schema(name: str) -> dict[str, Any]:
    """The collection definition; fields not listed are stored but not indexed."""
    fields: list[dict[str, Any]] = []
    for text_field in TEXT_FIELDS:
        fields.append({"name": f"{text_field}_seq", "type": "string"})
        fields.append({"name": f"{text_field}_terms", "type": "string[]"})
    fields += [
        {"name": "source", "type": "string", "facet": True},
        {"name": "tags", "type": "string[]", "facet": True},
        {"name": "date", "type": "int64", "sort": True},
    ]
    return {
        "name": name,
        "fields": fields,
        # Tokens are whitespace-separated already; keep the symbols identifiers carry.
        "symbols_to_index": [".", "-", "_", "+", "#"],
        "token_separators": [],
    }


# -- filter expressions --------------------------------------------------------


@dataclass(frozen=True)
class _Atom:
    """One Typesense condition, e.g. ``body_terms:=[`混合`]`` or ``date:>=1700000000``."""

    field: str
    op: str
    value: str

    def render(self) -> str:
        """The filter_by text."""
        if self.op in ("=", "!="):
            return f"{self.field}:{self.op}[`{self.value}`]"
        return f"{self.field}:{self.op}{self.value}"

    def negate(self) -> _Atom:
        """The condition that holds exactly when this one does not."""
        opposite = {"=": "!=", "!=": "=", ">=": "<", "<": ">=", ">": "<=", "<=": ">"}
        return _Atom(self.field, opposite[self.op], self.value)


@dataclass(frozen=True)
class _All:
    children: tuple[_Expr, ...]


@dataclass(frozen=True)
class _Any:
    children: tuple[_Expr, ...]


_Expr = _Atom | _All | _Any | bool


def _all(items: Iterable[_Expr]) -> _Expr:
    kept: list[_Expr] = []
    for item in items:
        if item is False:
            return False
        if item is True:
            continue
        kept.extend(item.children if isinstance(item, _All) else (item,))
    if not kept:
        return True
    return kept[0] if len(kept) == 1 else _All(tuple(dict.fromkeys(kept)))


def _any(items: Iterable[_Expr]) -> _Expr:
    kept: list[_Expr] = []
    for item in items:
        if item is True:
            return True
        if item is False:
            continue
        kept.extend(item.children if isinstance(item, _Any) else (item,))
    if not kept:
        return False
    return kept[0] if len(kept) == 1 else _Any(tuple(dict.fromkeys(kept)))


def _negate(expr: _Expr) -> _Expr:
    # Typesense has no NOT over a group, so push it down to the conditions (De Morgan).
    if isinstance(expr, bool):
        return not expr
    if isinstance(expr, _Atom):
        return expr.negate()
    if isinstance(expr, _All):
        return _any(_negate(c) for c in expr.children)
    return _all(_negate(c) for c in expr.children)


def render_filter(expr: _Expr) -> str:
    """filter_by syntax; groups are parenthesised."""
    if isinstance(expr, bool):
        # Not reached for the top level (constants are folded before rendering).
        return "id:!=[]" if expr else "id:=[]"
    if isinstance(expr, _Atom):
        return expr.render()
    joiner = " && " if isinstance(expr, _All) else " || "
    return joiner.join(
        f"({render_filter(c)})" if isinstance(c, _All | _Any) else render_filter(c) for c in expr.children
    )


def _term_in(fields: tuple[str, ...], term: str) -> _Expr:
    if "`" in term:
        return False
    return _any(_Atom(f"{f}_terms", "=", term) for f in fields)


def _term(fields: tuple[str, ...], term: str) -> _Expr:
    """A query term; an identifier (python3) also matches when all its pieces are in one field."""
    pieces = identifier_pieces(term)
    plain = _term_in(fields, term)
    if not pieces:
        return plain
    return _any([plain, *(_all(_term_in((f,), p) for p in pieces) for f in fields)])


def _at_least(k: int, items: list[_Expr]) -> _Expr:
    n = len(items)
    # Require fewer words rather than send a filter with thousands of alternatives.
    while k > 1 and math.comb(n, k) > MAX_COMBINATIONS:
        k -= 1
    if k >= n:
        return _all(items)
    return _any(_all(combo) for combo in itertools.combinations(items, k))


def _fields(field: str | None) -> tuple[str, ...]:
    return (field,) if field else TEXT_FIELDS


def compile_filter(node: Node | None) -> _Expr | None:
    """The exact match condition for a tree; None when nothing in it constrains anything."""
    if node is None:
        return None
    if isinstance(node, Text):
        plan = plan_text(node.text, node.relaxed)
        if not plan.content:
            return None
        fields = _fields(node.field)
        if len(plan.terms) == 1:
            return _term(fields, plan.terms[0])
        return _at_least(plan.min_match, [_term(fields, t) for t in plan.content])
    if isinstance(node, Phrase):
        plan = plan_text(node.text)
        if not plan.terms:
            return None
        fields = _fields(node.field)
        if len(plan.terms) == 1:
            return _term(fields, plan.terms[0])
        # Adjacency is checked by q where it can be (see the module docstring).
        return _any(_all(_term((f,), t) for t in plan.terms) for f in fields)
    if isinstance(node, Filter):
        name = FILTER_FIELD.get(node.field, node.field)
        return False if "`" in node.value else _Atom(name, "=", node.value)
    if isinstance(node, DateRange):
        parts: list[_Expr] = [_Atom("date", ">", str(MISSING_DATE))]
        if node.start is not None:
            parts.append(_Atom("date", ">=", str(_epoch(node.start))))
        if node.end is not None:
            parts.append(_Atom("date", "<", str(_epoch(node.end))))
        return _all(parts)
    if isinstance(node, Not):
        child = compile_filter(node.child)
        return _negate(child) if child is not None else None
    if isinstance(node, Or):
        options = [c for c in (compile_filter(child) for child in node.children) if c is not None]
        return _any(options) if options else None
    if isinstance(node, And):
        compiled = [c for c in (compile_filter(child) for child in node.children) if c is not None]
        return _all(compiled) if compiled else None
    raise TypeError(f"unknown query node {node!r}")


# -- ranking query --------------------------------------------------------------


@dataclass(frozen=True)
class RankQuery:
    """What goes into Typesense's ``q``: words (or phrases) and whether words may be dropped."""

    words: tuple[str, ...]
    phrases: tuple[tuple[str, ...], ...]
    strict: bool


def _q_tokens(term: str) -> list[str]:
    # The _seq fields hold an identifier's pieces at successive positions.
    return identifier_pieces(term) or [term]


def _all_required(node: Node | None) -> bool:
    """True when every positive word is required: only ANDs above it, no OR, no partial matching."""
    if node is None or isinstance(node, Filter | DateRange | Not):
        return True
    if isinstance(node, Text):
        return plan_text(node.text, node.relaxed).all_required
    if isinstance(node, Phrase):
        return True
    if isinstance(node, And):
        return all(_all_required(c) for c in node.children)
    return not positive_texts(node)


def rank_query(node: Node | None) -> RankQuery:
    """The words to rank by, and whether Typesense must find all of them."""
    strict = _all_required(node)
    words: list[str] = []
    phrases: list[tuple[str, ...]] = []
    for item in positive_texts(node):
        if isinstance(item, Phrase):
            plan = plan_text(item.text)
            tokens = tuple(t for term in plan.terms for t in _q_tokens(term))
            if strict and len(tokens) > 1:
                phrases.append(tokens)
                continue
            words.extend(t for term in plan.content for t in _q_tokens(term))
            continue
        plan = plan_text(item.text, item.relaxed)
        chosen = plan.terms if len(plan.terms) == 1 else plan.content
        words.extend(t for term in chosen for t in _q_tokens(term))
    return RankQuery(tuple(dict.fromkeys(words)), tuple(dict.fromkeys(phrases)), strict)


# -- the store -------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class TypesenseStore:
    """``IndexStore`` on a Typesense cluster (see the module docstring; ``index_dir`` is not used)."""

    backend = "typesense"

    def __init__(self, settings: TypesenseSettings | None = None, client: TypesenseClient | None = None) -> None:
        self.settings = settings or TypesenseSettings.from_env()
        self.client = client or TypesenseClient(self.settings.nodes, self.settings.api_key)
        self.alias = self.settings.collection
        self.meta_collection = f"{self.alias}__meta"
        self._ready_at = 0.0
        self._ready_target: str | None = None
        self._lock = threading.Lock()

    # -- cluster layout ---------------------------------------------------

    def _get_settled(self, path: str, wait: bool) -> tuple[int, Any]:
        """GET, and on 404 ask again for a moment: a follower may not have applied the latest write yet."""
        deadline = time.monotonic() + (REPLICATION_WAIT_S if wait else 0.0)
        while True:
            status, data = self.client.json("GET", path)
            if status != 404 or time.monotonic() >= deadline:
                return status, data
            time.sleep(0.1)

    def _target(self, wait: bool = True) -> str | None:
        """The collection the alias points to, or None when there is no index."""
        status, data = self._get_settled(f"/aliases/{self.alias}", wait)
        if status == 404:
            return None
        return str(_check(status, data, f"read the alias {self.alias}")["collection_name"])

    def _read_meta(self, collection: str) -> dict[str, Any]:
        status, data = self._get_settled(f"/collections/{self.meta_collection}/documents/{collection}", True)
        if status == 404:
            raise SchemaMismatchError(f"the Typesense collection {collection} has no zhsearch metadata; {REBUILD_HINT}")
        meta: dict[str, Any] = _check(status, data, "read the index metadata")
        found = meta.get("format_version")
        if found != FORMAT_VERSION:
            raise SchemaMismatchError(
                f"the Typesense index {self.alias} uses format {found}, but this zhsearch ({__version__}) "
                f"reads format {FORMAT_VERSION}; {REBUILD_HINT}"
            )
        return meta

    def _require(self, fresh: bool = False) -> str:
        """The live collection, checked for format; cached briefly so searches need no extra request."""
        now = time.monotonic()
        with self._lock:
            if not fresh and self._ready_target is not None and now - self._ready_at < READY_CACHE_S:
                return self._ready_target
        target = self._target()
        if target is None:
            raise IndexMissingError(
                f"no zhsearch index in the Typesense cluster (alias {self.alias!r}); "
                "build one with `zhsearch build PATH...`"
            )
        self._read_meta(target)
        with self._lock:
            self._ready_target, self._ready_at = target, now
        return target

    def _forget(self) -> None:
        with self._lock:
            self._ready_target = None

    def _ensure_meta_collection(self) -> None:
        status, data = self.client.json("GET", f"/collections/{self.meta_collection}")
        if status == 404:
            schema = {"name": self.meta_collection, "fields": [{"name": "format_version", "type": "string"}]}
            status, data = self.client.json("POST", "/collections", payload=schema)
            # 409: another process (or a retried request) created it first.
            if status != 409:
                _check(status, data, "create the metadata collection")
        else:
            _check(status, data, "read the metadata collection")

    def _write_meta(self, collection: str, meta: dict[str, Any]) -> None:
        doc = {"id": collection, **meta}
        status, data = self.client.json(
            "POST", f"/collections/{self.meta_collection}/documents", params={"action": "upsert"}, payload=doc
        )
        _check(status, data, "write the index metadata")

    def _touch_meta(self, collection: str) -> None:
        meta = self._read_meta(collection)
        meta["updated_at"] = _now().isoformat(timespec="seconds")
        self._write_meta(collection, meta)

    def _new_collection(self, sources: list[str]) -> str:
        name = f"{self.alias}__{_now().strftime('%Y%m%dT%H%M%S%f')}_{os.getpid()}"
        self._ensure_meta_collection()
        status, data = self.client.json("POST", "/collections", payload=collection_schema(name))
        if status != 409:
            _check(status, data, f"create the collection {name}")
        now = _now().isoformat(timespec="seconds")
        self._write_meta(
            name,
            {
                "format_version": FORMAT_VERSION,
                "schema_version": SCHEMA_VERSION,
                "backend": self.backend,
                "zhsearch_version": __version__,
                "built_at": now,
                "updated_at": now,
                "sources": sources,
                "user_dict": _user_dict_meta(),
            },
        )
        return name

    def _drop_collection(self, name: str) -> None:
        self.client.json("DELETE", f"/collections/{name}")
        self.client.json("DELETE", f"/collections/{self.meta_collection}/documents/{name}")

    def _switch_alias(self, name: str) -> None:
        status, data = self.client.json("PUT", f"/aliases/{self.alias}", payload={"collection_name": name})
        _check(status, data, f"point the alias {self.alias} at {name}")

    def _import(self, collection: str, articles: Iterable[Article]) -> int:
        count = 0
        for batch in _batches(articles, IMPORT_BATCH):
            lines = "\n".join(json.dumps(to_document(a), ensure_ascii=False) for a in batch).encode("utf-8")
            status, data = self.client.request(
                "POST",
                f"/collections/{collection}/documents/import",
                params={"action": "upsert"},
                body=lines,
                timeout=IMPORT_TIMEOUT_S,
            )
            text = data.decode("utf-8", "replace")
            if status != 200:
                raise IndexerError(f"Typesense refused an import: HTTP {status} {text[:300]}")
            for article, line in zip(batch, text.splitlines(), strict=False):
                result = json.loads(line)
                if not result.get("success"):
                    raise IndexerError(f"Typesense refused document {article.id!r}: {result.get('error')}")
            count += len(batch)
        return count

    # -- writing ----------------------------------------------------------

    def build(self, articles: Iterable[Article], sources: list[str]) -> int:
        """Fill a new collection, then switch the alias to it in one step and drop the old one."""
        init_jieba()
        old = self._target(wait=False)
        name = self._new_collection(sources)
        try:
            count = self._import(name, articles)
            self._switch_alias(name)
        except BaseException:
            self._drop_collection(name)
            raise
        self._forget()
        self._prune(keep=name, old=old)
        return count

    def _prune(self, keep: str, old: str | None) -> None:
        status, data = self.client.json("GET", "/collections")
        names = [c["name"] for c in data] if status == 200 and isinstance(data, list) else []
        prefix = f"{self.alias}__"
        for name in names:
            # Older generations only: a newer one may be a build still running.
            stale = name.startswith(prefix) and name != self.meta_collection and name < keep
            if name == old or stale:
                self._drop_collection(name)

    def add(self, articles: Iterable[Article]) -> int:
        """Upsert documents by id into the live collection (created if there is none)."""
        init_jieba()
        target = self._target()
        if target is None:
            target = self._new_collection([])
            self._switch_alias(target)
        self._read_meta(target)
        count = self._import(target, articles)
        self._touch_meta(target)
        self._forget()
        return count

    def delete(self, ids: Iterable[str]) -> list[str]:
        """Delete documents by id; return those that existed."""
        target = self._require(fresh=True)
        deleted = []
        for doc_id in ids:
            status, data = self.client.json("DELETE", f"/collections/{target}/documents/{_quote(doc_id)}")
            if status == 200:
                deleted.append(doc_id)
            elif status != 404:
                _check(status, data, f"delete {doc_id!r}")
        self._touch_meta(target)
        self._forget()
        return deleted

    # -- reading ----------------------------------------------------------

    def _base_params(self, request: SearchRequest, expr: _Expr) -> dict[str, Any]:
        params: dict[str, Any] = {
            "collection": self.alias,
            "prefix": "false",
            "num_typos": 0,
            "typo_tokens_threshold": 0,
            "drop_tokens_threshold": 0,
            "highlight_fields": "none",
        }
        if expr is not True:
            params["filter_by"] = render_filter(expr)
        if request.time_limit:
            params["search_cutoff_ms"] = max(1, int(request.time_limit * 1000))
        return params

    def _multi_search(self, searches: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run searches in one request; a per-search 404 or 5xx is retried, on the next node."""
        problem = ""
        for attempt in range(SEARCH_RETRIES):
            status, data = self.client.json("POST", "/multi_search", payload={"searches": searches})
            results: list[dict[str, Any]] = _check(status, data, "search")["results"]
            failed = [r for r in results if "error" in r]
            if not failed:
                return results
            code = int(failed[0].get("code") or 0)
            problem = f"{failed[0]['error']} (HTTP {code})"
            # 404: the alias moved (a rebuild) or this node has not caught up; 5xx: the node is not ready.
            if code != 404 and code < 500:
                break
            self._forget()
            time.sleep(min(0.05 * (attempt + 1), RETRY_INTERVAL_S))
        raise IndexerError(f"Typesense search failed: {problem}")

    def search(self, request: SearchRequest) -> RawPage:
        """Run a parsed query; return the requested page, facet counts, and whether time ran out."""
        init_jieba()
        self._require()
        expr = compile_filter(request.query)
        if expr is None or expr is False:
            return RawPage(total=0, hits=[])
        ranking = rank_query(request.query)
        params = self._base_params(request, expr)
        facets = [f for f in request.facets if f in FILTER_FIELD]
        if facets:
            params.update(facet_by=",".join(facets), max_facet_values=MAX_FACET_VALUES)
        if (ranking.words or ranking.phrases) and not ranking.strict and request.sort == "relevance":
            return self._search_some_words(request, params, ranking)
        params.update(page=request.page, per_page=request.size, include_fields=",".join(STORED_FIELDS))
        if ranking.words or ranking.phrases:
            if ranking.strict:
                # Every word must match: Typesense ranks them, phrases included.
                parts = [f'"{" ".join(p)}"' for p in ranking.phrases] + list(ranking.words)
                params["q"] = " ".join(parts)
            else:
                # Date order needs no ranking: the filter alone decides the matches.
                params["q"] = "*"
            params.update(query_by=QUERY_BY, query_by_weights=QUERY_WEIGHTS)
            params["sort_by"] = "date:desc,_text_match:desc" if request.sort == "date" else "_text_match:desc,date:desc"
        else:
            params.update(q="*", sort_by="date:desc")
        result = self._multi_search([params])[0]
        hits = [RawHit(from_document(h["document"]), float(h.get("text_match") or 0)) for h in result.get("hits", [])]
        return RawPage(
            total=int(result.get("found", 0)),
            hits=hits,
            facets=_facets(result),
            partial=bool(result.get("search_cutoff")),
        )

    def _search_some_words(self, request: SearchRequest, params: dict[str, Any], ranking: RankQuery) -> RawPage:
        """Rank documents that need not have every word: one search per word, merged with IDF weights.

        Typesense's own token dropping ranks by the longest run of query words
        from the left, which orders questions almost at random. Instead each
        word's best ``CANDIDATES_PER_WORD`` documents (within the exact match
        filter) are fetched in one multi_search, and a document scores the sum
        of the IDF of the words it has, scaled by how well Typesense ranks it
        for that word (title matches rank higher).
        """
        words = list(dict.fromkeys([*(t for p in ranking.phrases for t in p), *ranking.words]))[:MAX_RANK_WORDS]
        count = {**params, "q": "*", "per_page": 0}
        per_word = [
            {
                **{k: v for k, v in params.items() if k not in ("facet_by", "max_facet_values")},
                "q": word,
                "query_by": QUERY_BY,
                "query_by_weights": QUERY_WEIGHTS,
                "per_page": CANDIDATES_PER_WORD,
                "include_fields": "id",
                "sort_by": "_text_match:desc",
            }
            for word in words
        ]
        results = self._multi_search([count, *per_word])
        total = int(results[0].get("found", 0))
        scores: dict[str, float] = {}
        for result in results[1:]:
            df = int(result.get("found", 0))
            hits = result.get("hits", [])
            if not hits:
                continue
            idf = math.log(1 + (total - df + 0.5) / (df + 0.5))
            best = float(hits[0].get("text_match") or 1)
            for hit in hits:
                doc_id = str(hit["document"]["id"])
                # Half for having the word, half for how Typesense ranks it (field weight, repetition).
                quality = float(hit.get("text_match") or 0) / best if best else 0.0
                scores[doc_id] = scores.get(doc_id, 0.0) + idf * (0.5 + 0.5 * quality)
        ranked = sorted(scores, key=lambda d: -scores[d])
        start = (request.page - 1) * request.size
        page_ids = ranked[start : start + request.size]
        docs: dict[str, Article] = {}
        if page_ids:
            fetch = {
                "collection": self.alias,
                "q": "*",
                "filter_by": "id:[" + ",".join(f"`{d}`" for d in page_ids if "`" not in d) + "]",
                "per_page": len(page_ids),
                "include_fields": ",".join(STORED_FIELDS),
            }
            for hit in self._multi_search([fetch])[0].get("hits", []):
                article = from_document(hit["document"])
                docs[article.id] = article
        hits = [RawHit(docs[d], scores[d]) for d in page_ids if d in docs]
        # Documents that only have words too common to reach any word's candidate list are not ranked.
        return RawPage(
            total=total, hits=hits, facets=_facets(results[0]), partial=any(r.get("search_cutoff") for r in results)
        )

    def get(self, doc_id: str) -> Article | None:
        """The stored document with this id, or None."""
        self._require()
        status, data = self.client.json(
            "GET",
            f"/collections/{self.alias}/documents/{_quote(doc_id)}",
            params={"include_fields": ",".join(STORED_FIELDS)},
        )
        if status == 404:
            return None
        return from_document(_check(status, data, f"read {doc_id!r}"))

    def _export(self, fields: str) -> Iterator[dict[str, Any]]:
        target = self._require(fresh=True)
        status, data = self.client.request(
            "GET",
            f"/collections/{target}/documents/export",
            params={"include_fields": fields},
            timeout=IMPORT_TIMEOUT_S,
        )
        if status != 200:
            raise IndexerError(f"Typesense refused an export: HTTP {status} {data[:300].decode('utf-8', 'replace')}")
        for line in data.decode("utf-8").splitlines():
            if line.strip():
                yield json.loads(line)

    def manifest(self) -> dict[str, tuple[str, str]]:
        """``{id: (origin, content_hash)}`` for every document, for incremental sync."""
        return {
            str(d["id"]): (d.get("origin", ""), d.get("content_hash", ""))
            for d in self._export("id,origin,content_hash")
        }

    def title_terms(self) -> list[tuple[str, int]]:
        """Every analysed title term with the number of documents whose title has it."""
        counts: Counter[str] = Counter()
        for doc in self._export("title_terms"):
            counts.update(doc.get("title_terms") or ())
        return sorted(counts.items())

    def info(self) -> IndexInfo:
        """Document count, format version and times of the live collection, and every node's health."""
        health = self.client.node_health()
        target = self._require(fresh=True)
        meta = self._read_meta(target)
        status, data = self.client.json("GET", f"/collections/{target}")
        documents = int(_check(status, data, "describe the collection").get("num_documents", 0))
        status, metrics = self.client.json("GET", "/metrics.json")
        size = 0
        if status == 200 and isinstance(metrics, dict):
            size = int(float(metrics.get("typesense_memory_active_bytes", 0) or 0))

        def when(key: str) -> datetime | None:
            value = meta.get(key)
            return datetime.fromisoformat(value) if value else None

        warnings = [f"node {node} is {state}" for node, state in health.items() if state != "ok"]
        return IndexInfo(
            path=f"typesense:{self.alias} -> {target} on {', '.join(self.settings.nodes)}",
            backend=self.backend,
            documents=documents,
            size_bytes=size,
            schema_version=str(meta.get("schema_version")),
            built_at=when("built_at"),
            updated_at=when("updated_at"),
            sources=list(meta.get("sources") or []),
            user_dict=meta.get("user_dict"),
            warnings=warnings + user_dict_warnings(meta.get("user_dict")),
        )

    def close(self) -> None:
        """Close the connections to the cluster."""
        self.client.close()


def _quote(doc_id: str) -> str:
    return urllib.parse.quote(doc_id, safe="")


def _batches(items: Iterable[Article], size: int) -> Iterator[list[Article]]:
    batch: list[Article] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _facets(result: dict[str, Any]) -> dict[str, list[tuple[str, int]]]:
    return {
        f["field_name"]: _top_counts((c["value"], c["count"]) for c in f.get("counts", []))
        for f in result.get("facet_counts", [])
    }


def _top_counts(pairs: Iterable[tuple[Any, Any]]) -> list[tuple[str, int]]:
    items = [(str(v), int(n)) for v, n in pairs if v not in (None, "")]
    items.sort(key=lambda kv: (-kv[1], kv[0]))
    return items[:MAX_FACET_VALUES]


def _user_dict_meta() -> dict[str, str] | None:
    loaded = current_user_dict()
    return {"path": loaded.path, "sha256": loaded.sha256} if loaded else None
