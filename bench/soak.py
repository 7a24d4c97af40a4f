"""Soak test: the production server under mixed load while the index is updated and rebuilt under it.

    make soak                                   # 32 clients, 60 s of load, 2 workers; under 5 minutes
    make soak SOAK_ARGS='--seconds 90 --clients 48 --workers 3'
    make soak SOAK_ARGS='--corpus generated'    # synthetic articles instead of ../shared/data

It builds an "old" and a "new" corpus (two overlapping slices of ../shared/data/articles.jsonl, read in place
and written to a temporary directory outside the project, or generated text), indexes the old one, computes
the expected answers of every checked query on both, and starts `zhsearch serve --workers N` on 127.0.0.1.
Then N client threads send normal, heavy (long questions, many OR terms, deep pages, date sort), pathological
(worst cases for the parser and the search deadline), malformed (bad parameters, NUL, bad percent-encoding,
over-long) and refused requests (request line or headers over gunicorn's limits, broken request lines), while
--slow-clients more connections trickle their request heads a byte at a time, and the CLI adds and deletes a
batch of marker articles, rebuilds the index from the new corpus, and adds and deletes the markers again.

Checks: no 5xx, no connection errors; every answer to a valid query is the result set of the old or the new
index (total, and ids within the full set of matches); markers appear and vanish whole; once the rebuild is
done every answer is the new index's; malformed, pathological and refused requests get the JSON error shape
(or, for pathological queries, a search page); slow clients are answered (200 once their head is complete,
408 if it never is); no WORKER TIMEOUT and no traceback in the server log; the p99 of ordinary queries stays
far below the 20 s that slow clients once blocked every request for. The Markdown report is printed and saved
as bench/results/soak-<UTC date>.md; the exit status is 1 if a check failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_stats import percentile
from harness import HOST, ZHSEARCH, ServerError, free_port, zhsearch_server

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "articles.jsonl"
MARKER = "zqxmarker"
MARKERS = 25
# Queries whose full set of matches is at most this are checked id by id; larger ones by total only.
FULL_SET_LIMIT = 300
CLIENT_TIMEOUT_S = 60.0
# Once the rebuild has been live this long, no answer may come from the old index.
CONVERGE_S = 2.0
MAX_LISTED = 15

# Checked queries on the real articles: words, English and versions, AND, phrase, OR, NOT.
SHARED_QUERIES = [
    "内核",
    "数据库",
    "防火墙",
    "文件系统",
    "树莓派",
    "虚拟机",
    "桌面环境",
    "垃圾回收",
    "大模型",
    "微调",
    "提示工程",
    "Python",
    "Docker 容器",
    "Kubernetes",
    "Ubuntu 22.04",
    "systemd",
    "Nginx",
    "Redis",
    "GNOME",
    "Emacs",
    "Vim 插件",
    "Rust 内存安全",
    "Git OR SVN",
    "Java NOT Python",
    '"命令行工具"',
    "SSH 密钥",
    "MySQL 索引",
    "HashMap",
    "LoRA",
    "Qwen2.5",
    "开源 许可证",
    "shell 脚本",
    "Fedora",
    "Arch Linux",
    "Spring Boot",
    "线程池",
]
GENERATED_WORDS = (
    "数据库 搜索 索引 分词 开源 模型 训练 推理 容器 集群 网络 存储 内核 调度 编译 "
    "测试 发布 版本 安全 漏洞 性能 缓存 并发 事务 日志 监控 部署 微服务 算法 芯片"
).split()
GENERATED_QUERIES = [
    "数据库",
    "开源 模型",
    '"分布式 集群"',
    "芯片 NOT 漏洞",
    *(f"rare{i}" for i in range(0, 40, 3)),
    *(f"rare{i} OR rare{i + 50}" for i in range(1, 30, 7)),
    *(f"rare{i} 安全" for i in range(2, 30, 9)),
]
# Malformed requests: (path, expected status, expected error code).
MALFORMED: list[tuple[str, int, str]] = [
    ("/api/search", 400, "missing_query"),
    ("/api/search?q=%20%20", 400, "missing_query"),
    ("/api/search?q=%00", 400, "invalid_query"),
    ("/api/search?q=%E5%86%85%00%E6%A0%B8", 400, "invalid_query"),
    ("/api/search?q=a%01b", 400, "invalid_query"),
    ("/api/search?q=%E5%86", 400, "invalid_parameter"),
    ("/api/search?q=%FF%FE", 400, "invalid_parameter"),
    ("/api/search?q=%ZZ", 400, "invalid_parameter"),
    ("/api/search?q=%E5%", 400, "invalid_parameter"),
    ("/api/search?q=Linux&page=0", 400, "invalid_parameter"),
    ("/api/search?q=Linux&page=101", 400, "invalid_parameter"),
    ("/api/search?q=Linux&page=-1", 400, "invalid_parameter"),
    ("/api/search?q=Linux&page=abc", 400, "invalid_parameter"),
    ("/api/search?q=Linux&size=0", 400, "invalid_parameter"),
    ("/api/search?q=Linux&size=51", 400, "invalid_parameter"),
    ("/api/search?q=Linux&size=1e3", 400, "invalid_parameter"),
    ("/api/search?q=Linux&sort=random", 400, "invalid_parameter"),
    ("/api/search?q=Linux&from=2024-02-30", 400, "invalid_parameter"),
    ("/api/search?q=Linux&to=yesterday", 400, "invalid_parameter"),
    ("/api/search?q=Linux&source=%00", 400, "invalid_parameter"),
    ("/api/search?q=Linux&" + "&".join(f"tag=t{i}" for i in range(11)), 400, "invalid_parameter"),
    ("/api/search?q=" + "x" * 257, 400, "query_too_long"),
    ("/api/search?q=" + urllib.parse.quote("内核" * 200), 400, "query_too_long"),
    ("/api/suggest?q=nei&limit=0", 400, "invalid_parameter"),
    ("/api/suggest?q=nei&limit=999", 400, "invalid_parameter"),
    ("/api/documents/%00", 400, "invalid_parameter"),
    ("/api/documents/" + "x" * 1100, 400, "invalid_parameter"),
    ("/api/nothing-here", 404, "not_found"),
]
# Requests gunicorn's HTTP parser refuses before the app sees them: (request bytes, status, error code).
REFUSED: list[tuple[bytes, int, str]] = [
    (
        b"GET /api/search?q=" + b"y" * 9000 + b" HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n",
        414,
        "uri_too_long",
    ),
    (b"GET /api/suggest?q=" + b"z" * 60_000 + b" HTTP/1.1\r\nHost: soak\r\n\r\n", 414, "uri_too_long"),
    (
        b"GET /api/search?q=Linux HTTP/1.1\r\nHost: soak\r\nCookie: " + b"c" * 9000 + b"\r\nConnection: close\r\n\r\n",
        431,
        "headers_too_large",
    ),
    (
        b"GET /api/search?q=Linux HTTP/1.1\r\nHost: soak\r\n"
        + b"".join(b"X-Soak-%d: 1\r\n" % i for i in range(120))
        + b"Connection: close\r\n\r\n",
        431,
        "headers_too_large",
    ),
    (b"GET /api/search?q=a b c HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n", 400, "bad_request"),
    (b"GET /api/search?q=Linux HTTP/7\r\nHost: soak\r\nConnection: close\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/1.1\r\nHost soak\r\nConnection: close\r\n\r\n", 400, "bad_request"),
    (b"GET /api/search?q=Linux HTTP/1.1\nHost: soak\nConnection: close\n\n", 400, "bad_request"),
]
# Slow clients: a complete head trickled over about this long is answered; a stalled one gets a 408.
SLOW_HEAD_S = 6.0
SLOW_BYTE_EVERY_S = 2.0
# Ordinary queries must stay answered while slow clients trickle: their p99 stays under this, far from
# the 20 s for which two slow clients once blocked every request (and well above a loaded machine's p99).
ORDINARY_P99_LIMIT_S = 5.0


# -- corpus -------------------------------------------------------------------------------------------------


@dataclass
class Corpus:
    """The old and new corpora (JSON Lines files), the marker batch, and what the report says about them."""

    old: Path
    new: Path
    markers: Path
    description: str
    queries: list[str]
    heavy: list[tuple[str, dict[str, str]]]
    pathological: list[tuple[str, dict[str, str]]]
    stable_ids: list[str]
    old_only: list[str]
    new_only: list[str]
    counts: tuple[int, int]


def _write_jsonl(path: Path, docs: list[dict[str, Any]]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for doc in docs:
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return path


def _marker_docs() -> list[dict[str, Any]]:
    # Only nonsense letter tokens: no checked query can match a marker, so the batch never changes their sets.
    return [
        {"id": f"soak-marker-{i}", "title": f"{MARKER} qzv{_letters(i)}", "body": f"{MARKER} qzvbody{_letters(i)}"}
        for i in range(MARKERS)
    ]


def _letters(i: int) -> str:
    # Letters only: the analyzer splits digits off identifiers, and a question's "20" would match "qzv20".
    return "".join("abcdefghij"[int(d)] for d in str(i))


def _cjk_share(text: str) -> float:
    return sum("\u4e00" <= ch <= "\u9fff" for ch in text) / max(1, len(text))


def _heavy(words: list[str], question: str, broad: str) -> list[tuple[str, dict[str, str]]]:
    ors = " OR ".join(words)
    while len(ors) > 250:
        ors = ors.rsplit(" OR ", 1)[0]
    return [
        (question, {}),
        (ors, {"size": "50"}),
        (broad, {"page": "100", "size": "50"}),
        (broad, {"page": "20", "size": "50"}),
        (broad, {"sort": "date", "size": "50"}),
        (f"{broad} {words[0]} OR {words[1]}", {"page": "5", "size": "50"}),
    ]


def _pathological(phrases: list[str]) -> list[tuple[str, dict[str, str]]]:
    """Worst cases for the parser and the search deadline, each at most MAX_QUERY_CHARS (256) long."""
    ors = " OR ".join(f'"{p}"' for p in phrases[:10])
    return [
        ('"' + "的" * 254 + '"', {}),  # a quoted phrase of 254 stop words
        ("a1" * 128, {}),  # one 256-character run of letters and digits
        (" ".join(["a1"] * 85), {}),  # 85 copies of one term
        ("(" * 243, {}),  # unbalanced parentheses
        ("(" * 60 + "Linux" + ")" * 60, {}),  # deep nesting
        ("date:9999", {}),
        ("title:" + "x" * 250, {}),
        ("Linux", {"page": "9" * 5000}),  # a 5,000-digit page number
        ("Linux", {"size": "9" * 3000, "page": "-" + "9" * 3000}),
        (ors, {}),  # ten long phrases OR'd
        (ors.replace(" OR ", " "), {"sort": "date"}),  # the same phrases, all required
        ("NOT " * 60 + "Linux", {}),
        ("*" * 200, {}),
        (" ".join("-" + c for c in "的是在了和有我他这中" * 6), {}),  # nothing but exclusions
        (" OR ".join("的是在了和有我他这中" * 6)[:256], {}),  # an OR of 52 stop characters
        (" ".join(["date:2015..2020"] * 16), {}),  # the same date range 16 times
        ("（" * 256, {}),  # full-width parentheses
    ]


def shared_corpus(data: Path, n: int, work: Path) -> Corpus:
    """Two overlapping slices of ``data`` (a third of them only in the old one, a third only in the new)."""
    lines: list[str] = []
    with open(data, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                lines.append(line)
            if len(lines) >= n + n // 3:
                break
    if len(lines) < n + n // 3:
        raise SystemExit(f"{data} has fewer than {n + n // 3} articles; use --articles {len(lines) * 3 // 4}")
    old, new = lines[:n], lines[n // 3 : n // 3 + n]
    (work / "old.jsonl").write_text("".join(old), encoding="utf-8")
    (work / "new.jsonl").write_text("".join(new), encoding="utf-8")
    ids = [json.loads(line)["id"] for line in lines]
    bodies = [json.loads(line)["body"] for line in lines[:100]]
    sentences = [s.strip() for b in bodies for s in b.replace("？", "。").replace("\n", "。").split("。")]
    # The longest mostly-Chinese sentence: a question as a person would paste it.
    sentence = max((s for s in sentences if _cjk_share(s) > 0.7), key=len, default="开源软件的许可证")[:150]
    # Phrases people could paste: 20-character runs of mostly Chinese sentences.
    phrases = [s[:20] for s in sentences if len(s) >= 20 and _cjk_share(s[:20]) > 0.8 and '"' not in s[:20]]
    question = f"为什么{sentence}？应该怎样理解它和Linux内核、开源社区以及云计算的关系呢"
    return Corpus(
        old=work / "old.jsonl",
        new=work / "new.jsonl",
        markers=_write_jsonl(work / "markers.jsonl", _marker_docs()),
        description=(
            f"real articles from `{data}` (read in place; slices written to a temporary directory outside the "
            f"project): old = articles 1-{n}, new = articles {n // 3 + 1}-{n // 3 + n}"
        ),
        queries=SHARED_QUERIES,
        heavy=_heavy(
            ["Linux", "Python", "数据库", "内核", "容器", "Java", "网络", "安全", "编译器", "桌面", "服务器"] * 3,
            question,
            "Linux",
        ),
        pathological=_pathological(phrases + ["开源软件的许可证问题与社区治理模式"] * 10),
        stable_ids=ids[n // 3 : n][:: max(1, n // 60)],
        old_only=ids[: n // 3][:: max(1, n // 60)],
        new_only=ids[n : n + n // 3][:: max(1, n // 60)],
        counts=(len(old), len(new)),
    )


def generated_corpus(n: int, work: Path) -> Corpus:
    """Synthetic articles from a small vocabulary, each with one ``rareK`` token (old and new overlap by 2/3)."""
    rng = random.Random(7)
    docs = []
    for i in range(n + n // 3):
        body = "".join(rng.choice(GENERATED_WORDS) + rng.choice("的了在和是，。") for _ in range(80))
        docs.append({"id": f"g-{i}", "title": "".join(rng.sample(GENERATED_WORDS, 3)), "body": f"{body} rare{i % 97}"})
    old, new = docs[:n], docs[n // 3 : n // 3 + n]
    ids = [d["id"] for d in docs]
    return Corpus(
        old=_write_jsonl(work / "old.jsonl", old),
        new=_write_jsonl(work / "new.jsonl", new),
        markers=_write_jsonl(work / "markers.jsonl", _marker_docs()),
        description=f"generated text: {n} articles from a 30-word vocabulary, old and new overlapping by 2/3",
        queries=GENERATED_QUERIES,
        heavy=_heavy(
            GENERATED_WORDS * 2,
            "为什么" + "".join(GENERATED_WORDS[:20]) + "之间的关系是什么，应该怎样理解",
            "数据库",
        ),
        pathological=_pathological(["".join(rng.sample(GENERATED_WORDS, 8))[:20] for _ in range(10)]),
        stable_ids=ids[n // 3 : n][:: max(1, n // 60)],
        old_only=ids[: n // 3][:: max(1, n // 60)],
        new_only=ids[n : n + n // 3][:: max(1, n // 60)],
        counts=(len(old), len(new)),
    )


# -- expected answers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What one index answers to a query: the total, whether relaxed, and every matching id (None if too many)."""

    total: int
    relaxed: bool
    ids: frozenset[str] | None


def expected_answers(index: Path, queries: list[tuple[str, dict[str, str]]]) -> dict[str, Expected]:
    """Run every query in this process, without a time limit, and collect its full answer."""
    from indexer import Searcher  # the installed zhsearch, as the server runs it

    searcher = Searcher(index)
    out: dict[str, Expected] = {}
    try:
        for q, params in queries:
            sort = params.get("sort", "relevance")
            first = searcher.search(q, page=1, size=100, sort=sort)
            ids: set[str] | None = None
            if first.total <= FULL_SET_LIMIT:
                ids = {h.id for h in first.hits}
                page = 2
                while len(ids) < first.total:
                    more = searcher.search(q, page=page, size=100, sort=sort)
                    if not more.hits:
                        break
                    ids |= {h.id for h in more.hits}
                    page += 1
            out[key(q, params)] = Expected(first.total, first.relaxed, frozenset(ids) if ids is not None else None)
    finally:
        searcher.close()
    return out


def key(q: str, params: dict[str, str]) -> str:
    """The query and the parameters that change its set of matches."""
    return q + ("\0sort=date" if params.get("sort") == "date" else "")


def matches(data: dict[str, Any], exp: Expected, page: int, size: int) -> bool:
    """True when a complete answer is this page of ``exp``."""
    ids = [r["id"] for r in data["results"]]
    if data["total"] != exp.total or data["relaxed"] != exp.relaxed or len(set(ids)) != len(ids):
        return False
    if len(ids) != max(0, min(size, exp.total - (page - 1) * size)):
        return False
    return exp.ids is None or set(ids) <= exp.ids


def partial_fits(data: dict[str, Any], exp: Expected) -> bool:
    """True when a partial answer (time limit reached) holds only documents ``exp`` matches."""
    ids = {r["id"] for r in data["results"]}
    return data["total"] <= exp.total and (exp.ids is None or ids <= exp.ids)


# -- the run ------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One request and what came of it."""

    kind: str
    started: float
    seconds: float
    status: int
    problem: str = ""
    # Which index a valid answer came from: "old", "new", "both" (they agree), or "".
    source: str = ""
    partial: bool = False


@dataclass
class Event:
    """One CLI write during the load."""

    name: str
    started: float
    ended: float = 0.0
    status: int | None = None
    detail: str = ""


@dataclass
class Run:
    """Everything the load threads and the writer thread record."""

    samples: list[Sample] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sample: Sample) -> None:
        """Record one request."""
        with self.lock:
            self.samples.append(sample)

    def event(self, name: str) -> Event | None:
        """The first event called ``name``."""
        return next((e for e in self.events if e.name == name), None)


def request(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    """One HTTP request on a new connection, closed after the answer."""
    conn = http.client.HTTPConnection(HOST, port, timeout=CLIENT_TIMEOUT_S)
    try:
        conn.request(method, path, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def read_answer(sock: socket.socket) -> tuple[int, bytes]:
    """Read one HTTP answer until the server closes: (status, body); (-1, b"") if it closed without one."""
    raw = b""
    while chunk := sock.recv(65536):
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return (int(match.group(1)), body) if match else (-1, b"")


def raw_request(port: int, data: bytes) -> tuple[int, bytes]:
    """Send ``data`` as is on a new connection (http.client refuses to send broken requests)."""
    with socket.create_connection((HOST, port), timeout=CLIENT_TIMEOUT_S) as sock:
        sock.sendall(data)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered and closed before the whole request was sent
        return read_answer(sock)


def error_shape(body: bytes) -> str | None:
    """The error code if ``body`` is ``{"error": {"code", "message"}}``, else None."""
    try:
        data = json.loads(body)
        err = data["error"]
        if isinstance(err["code"], str) and isinstance(err["message"], str) and err["message"]:
            return err["code"]
    except (ValueError, KeyError, TypeError):
        pass
    return None


class _Abandoned(Exception):
    """The run ended while a slow client was still sending."""


class Soak:
    """The load mix, the checks of each answer, and the writer timeline."""

    def __init__(self, args: argparse.Namespace, corpus: Corpus, index: Path, port: int) -> None:
        self.args, self.corpus, self.index, self.port = args, corpus, index, port
        self.run = Run()
        self.expected_old: dict[str, Expected] = {}
        self.expected_new: dict[str, Expected] = {}
        self.t0 = 0.0
        self.stop_at = 0.0
        self.hard_stop = 0.0
        self.done = threading.Event()
        self.requests: list[tuple[float, str, Callable[[random.Random], Sample]]] = [
            (45, "query", self.query),
            (14, "heavy", self.heavy),
            (12, "document", self.document),
            (5, "marker", self.marker),
            (4, "health", self.health),
            (5, "suggest", self.suggest),
            (14, "malformed", self.malformed),
            (2, "pathological", self.pathological),
            (2, "refused", self.refused),
        ]

    # -- the state of the index over time ---------------------------------------------------------------

    def _rebuild_window(self) -> tuple[float, float]:
        ev = self.run.event("rebuild")
        if ev is None:
            return float("inf"), float("inf")
        return ev.started, ev.ended or float("inf")

    def allowed(self, started: float, ended: float) -> set[str]:
        """Which index a request that ran from ``started`` to ``ended`` may be answered by."""
        begin, end = self._rebuild_window()
        allowed = set()
        if started < end:
            allowed.add("old")
        if ended > begin:
            allowed.add("new")
        if started > end + CONVERGE_S:
            allowed = {"new"}
        return allowed

    # -- requests ----------------------------------------------------------------------------------------

    def _get(self, kind: str, path: str, method: str = "GET") -> tuple[Sample, bytes]:
        started = time.monotonic()
        try:
            status, body = request(self.port, path, method)
        except (OSError, http.client.HTTPException) as exc:
            return Sample(kind, started, time.monotonic() - started, -1, f"connection error {exc!r} on {path}"), b""
        sample = Sample(kind, started, time.monotonic() - started, status)
        if status >= 500:
            sample.problem = f"{status} on {path}: {body[:200]!r}"
        return sample, body

    def _search(self, kind: str, q: str, params: dict[str, str]) -> Sample:
        page, size = int(params.get("page", "1")), int(params.get("size", "10"))
        path = "/api/search?" + urllib.parse.urlencode({"q": q, **params})
        sample, body = self._get(kind, path)
        if sample.status != 200:
            sample.problem = sample.problem or f"{sample.status} on a valid query {path}: {body[:200]!r}"
            return sample
        try:
            data = json.loads(body)
        except ValueError:
            sample.problem = f"not JSON: {body[:200]!r}"
            return sample
        k = key(q, params)
        fits = {
            name
            for name, table in (("old", self.expected_old), ("new", self.expected_new))
            if (partial_fits(data, table[k]) if data["partial"] else matches(data, table[k], page, size))
        }
        sample.partial = bool(data["partial"])
        ok = fits & self.allowed(sample.started, sample.started + sample.seconds)
        if not ok:
            sample.problem = (
                f"{path}: total {data['total']} ids {[r['id'] for r in data['results']][:5]} fits {sorted(fits)} "
                f"(old total {self.expected_old[k].total}, new {self.expected_new[k].total}) at "
                f"{sample.started - self.t0:.1f} s"
            )
        sample.source = "both" if ok == {"old", "new"} else "".join(ok)
        return sample

    def query(self, rng: random.Random) -> Sample:
        """A checked query, on page 1 or 2."""
        q = rng.choice(self.corpus.queries)
        return self._search("query", q, {"page": "2"} if rng.random() < 0.15 else {})

    def heavy(self, rng: random.Random) -> Sample:
        """A long question, many OR terms, a deep page or a date sort."""
        q, params = rng.choice(self.corpus.heavy)
        return self._search("heavy", q, params)

    def document(self, rng: random.Random) -> Sample:
        """/api/documents/<id> of an article in both corpora, or only in the old or the new one."""
        group = rng.choice(["stable", "stable", "old_only", "new_only"])
        ids = {"stable": self.corpus.stable_ids, "old_only": self.corpus.old_only, "new_only": self.corpus.new_only}
        doc_id = rng.choice(ids[group])
        sample, body = self._get("document", "/api/documents/" + urllib.parse.quote(doc_id, safe=""))
        if sample.problem:
            return sample
        present = {"stable": {"old", "new"}, "old_only": {"old"}, "new_only": {"new"}}[group]
        answer = present if sample.status == 200 else {"old", "new"} - present if sample.status == 404 else set()
        if sample.status == 200 and json.loads(body).get("id") != doc_id:
            answer = set()
        elif sample.status == 404 and error_shape(body) != "not_found":
            answer = set()
        if not answer & self.allowed(sample.started, sample.started + sample.seconds):
            sample.problem = f"{sample.status} for {group} document {doc_id} at {sample.started - self.t0:.1f} s"
        return sample

    def marker(self, rng: random.Random) -> Sample:
        """The marker batch is found whole or not at all."""
        sample, body = self._get("marker", "/api/search?q=" + MARKER)
        if sample.problem or sample.status != 200:
            sample.problem = sample.problem or f"{sample.status} on the marker query"
            return sample
        data = json.loads(body)
        if data["total"] not in (0, MARKERS) or data["partial"]:
            sample.problem = f"marker query found {data['total']} of {MARKERS} (partial={data['partial']})"
        return sample

    def health(self, rng: random.Random) -> Sample:
        """/healthz answers 200 with a document count of one of the index states."""
        sample, body = self._get("health", "/healthz")
        if sample.problem:
            return sample
        old, new = self.corpus.counts
        try:
            documents = json.loads(body)["documents"]
        except (ValueError, KeyError):
            documents = None
        if sample.status != 200 or documents not in (old, old + MARKERS, new, new + MARKERS):
            sample.problem = f"/healthz {sample.status} documents={documents}"
        return sample

    def suggest(self, rng: random.Random) -> Sample:
        """Suggestions for a prefix, a pinyin or initials."""
        q = rng.choice(["nei", "shuju", "sjk", "开", "Lin", "dmx", "rong"])
        sample, body = self._get("suggest", "/api/suggest?q=" + urllib.parse.quote(q))
        if not sample.problem and (sample.status != 200 or "suggestions" not in json.loads(body)):
            sample.problem = f"/api/suggest?q={q}: {sample.status} {body[:200]!r}"
        return sample

    def malformed(self, rng: random.Random) -> Sample:
        """A malformed request: a 4xx with the JSON error shape and the right code."""
        if rng.random() < 0.05:
            path, status, code = "/api/search?q=Linux", 405, "method_not_allowed"
            sample, body = self._get("malformed", path, method="POST")
        else:
            path, status, code = rng.choice(MALFORMED)
            sample, body = self._get("malformed", path)
        if not sample.problem and (sample.status, error_shape(body)) != (status, code):
            sample.problem = f"{path[:80]}: {sample.status} {body[:120]!r}, expected {status} {code}"
        return sample

    def pathological(self, rng: random.Random) -> Sample:
        """A worst case for the parser or the search deadline: a search page, or a 4xx with the JSON error."""
        q, params = rng.choice(self.corpus.pathological)
        path = "/api/search?" + urllib.parse.urlencode({"q": q, **params})
        sample, body = self._get("pathological", path)
        if sample.problem:
            return sample
        if sample.status == 200:
            try:
                data = json.loads(body)
                ok = isinstance(data["results"], list) and isinstance(data["total"], int)
            except (ValueError, KeyError, TypeError):
                ok = False
            sample.partial = ok and bool(data.get("partial"))
            if not ok:
                sample.problem = f"{path[:100]}: 200 but not a search page: {body[:120]!r}"
        elif not (400 <= sample.status < 500 and error_shape(body)):
            sample.problem = f"{path[:100]}: {sample.status} {body[:120]!r}, expected 200 or a 4xx JSON error"
        return sample

    def refused(self, rng: random.Random) -> Sample:
        """A request gunicorn's parser refuses (too long, too many headers, broken): its status and JSON error."""
        data, status, code = rng.choice(REFUSED)
        started = time.monotonic()
        label = data[:40].decode("latin-1") + f"... ({len(data):,} bytes)"
        try:
            got, body = raw_request(self.port, data)
        except (OSError, http.client.HTTPException) as exc:
            return Sample("refused", started, time.monotonic() - started, -1, f"connection error {exc!r} on {label}")
        sample = Sample("refused", started, time.monotonic() - started, got)
        if got >= 500 or got == -1:
            sample.problem = f"{got} on {label}: {body[:200]!r}"
        elif (got, error_shape(body)) != (status, code):
            sample.problem = f"{label}: {got} {body[:120]!r}, expected {status} {code}"
            sample.source = "not-json" if error_shape(body) is None else ""
        return sample

    def slow_client(self, seed: int) -> None:
        """Trickle request heads until the end of the run: half complete theirs slowly, half never do."""
        rng = random.Random(1000 + seed)
        while not self.done.is_set():
            finish = rng.random() < 0.5
            started = time.monotonic()
            try:
                status, body = self._trickle(finish)
            except _Abandoned:
                return
            except (OSError, http.client.HTTPException) as exc:
                status, body = -1, repr(exc).encode()
            if self.done.is_set():
                return  # the report may be under way
            sample = Sample("slow", started, time.monotonic() - started, status)
            want = 200 if finish else 408
            if status == -1:
                sample.problem = f"slow client ({'complete' if finish else 'stalled'} head): no answer {body[:100]!r}"
            elif status != want or (status != 200 and error_shape(body) is None):
                sample.problem = f"slow client ({'complete' if finish else 'stalled'} head): {status} {body[:120]!r}"
            self.run.add(sample)

    def _trickle(self, finish: bool) -> tuple[int, bytes]:
        """One slow request: a /healthz head sent over SLOW_HEAD_S, or a search whose headers stall."""
        if finish:
            start, head = b"", b"GET /healthz HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n"
            every = SLOW_HEAD_S / len(head)
        else:
            # The request line at once (so the 408 can be the API's), then a header a byte at a time.
            start, head = b"GET /api/search?q=Linux HTTP/1.1\r\nHost: soak\r\n", b"X-Slow: " + b"w" * 4000
            every = SLOW_BYTE_EVERY_S
        with socket.create_connection((HOST, self.port), timeout=CLIENT_TIMEOUT_S) as sock:
            sock.sendall(start)
            deadline = time.monotonic() + CLIENT_TIMEOUT_S
            for i in range(len(head)):
                if self.done.is_set():
                    raise _Abandoned
                sock.sendall(head[i : i + 1])
                # Wait for the next byte's turn, or for the server's answer if it comes first.
                readable, _, _ = select.select([sock], [], [], every)
                if readable or time.monotonic() > deadline:
                    break
            return read_answer(sock)

    # -- threads -----------------------------------------------------------------------------------------

    def client(self, seed: int) -> None:
        """One client: weighted random requests until the end of the run."""
        rng = random.Random(seed)
        weights = [w for w, _, _ in self.requests]
        while time.monotonic() < self.stop_at and not self.done.is_set():
            _, _, make = rng.choices(self.requests, weights)[0]
            try:
                sample = make(rng)
            except Exception as exc:  # noqa: BLE001 - a crash in a check is a finding, not a reason to stop
                sample = Sample("client", time.monotonic(), 0.0, -2, f"client error {exc!r}")
            self.run.add(sample)

    def cli(self, name: str, *args: str) -> Event:
        """Run one zhsearch command on the live index and record it."""
        ev = Event(name, time.monotonic())
        self.run.events.append(ev)
        proc = subprocess.run(
            [str(ZHSEARCH), *args, "-q", "--index", str(self.index)],
            capture_output=True,
            text=True,
            timeout=max(30.0, self.hard_stop - time.monotonic()),
        )
        ev.ended, ev.status, ev.detail = time.monotonic(), proc.returncode, proc.stderr.strip()[-300:]
        return ev

    def writer(self) -> None:
        """Add and delete the markers, rebuild from the new corpus, then add and delete them again."""
        ids = [f"soak-marker-{i}" for i in range(MARKERS)]
        seconds = self.args.seconds
        steps: list[tuple[float, str, list[str]]] = [
            (0.12 * seconds, "add markers", ["add", str(self.corpus.markers)]),
            (0.22 * seconds, "delete markers", ["delete", *ids]),
            (0.30 * seconds, "rebuild", ["build", str(self.corpus.new)]),
            (0.0, "add markers again", ["add", str(self.corpus.markers)]),
            (0.0, "delete markers again", ["delete", *ids]),
        ]
        for at, name, args in steps:
            while time.monotonic() < self.t0 + at and not self.done.is_set():
                time.sleep(0.05)
            if self.done.is_set():
                return
            ev = self.cli(name, *args)
            if ev.status != 0:
                return
            time.sleep(3.0)
        # Keep the load on a little after the last write, so its visibility is checked too.
        self.stop_at = max(self.stop_at, time.monotonic() + 3.0)


def ms(seconds: float) -> str:
    """Seconds as milliseconds for the report."""
    return "-" if seconds != seconds else f"{seconds * 1000:,.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def build(index: Path, corpus: Path) -> float:
    """`zhsearch build` (a real process); return its wall time."""
    started = time.monotonic()
    proc = subprocess.run(
        [str(ZHSEARCH), "build", "-q", "--index", str(index), str(corpus)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"zhsearch build {corpus} failed: {proc.stderr}")
    return time.monotonic() - started


# -- the report ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One line of the checks table: what is checked, whether it held, and the count behind it."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Outcome:
    """What the checks read: the run, the server's log, and how long the load lasted."""

    soak: Soak
    server_log: str

    @property
    def samples(self) -> list[Sample]:
        """Every request of the run."""
        return self.soak.run.samples

    @property
    def seconds(self) -> float:
        """From the start of the load to the end of the last request."""
        return max(s.started + s.seconds for s in self.samples) - self.soak.t0 if self.samples else 0.0

    def with_status(self, test: Callable[[int], bool]) -> list[Sample]:
        """The requests whose status passes ``test`` (-1 is a connection error, -2 a client error)."""
        return [s for s in self.samples if test(s.status)]

    def of_kinds(self, *kinds: str) -> list[Sample]:
        """The requests of these kinds."""
        return [s for s in self.samples if s.kind in kinds]


def check_no_5xx(o: Outcome) -> Check:
    """No request got a 5xx."""
    five = o.with_status(lambda st: st >= 500)
    return Check("zero 5xx responses", not five, f"{len(five)}")


def check_no_connection_errors(o: Outcome) -> Check:
    """No request failed to connect or lost its connection."""
    conn = o.with_status(lambda st: st == -1)
    return Check("zero connection errors", not conn, f"{len(conn)}")


def check_valid_answers(o: Outcome) -> Check:
    """Every 200 to a checked query is the old or the new index's answer."""
    valid = o.of_kinds("query", "heavy")
    wrong = [s for s in valid if s.problem and s.status == 200]
    return Check(
        "every valid query answered by the old or the new index", not wrong, f"{len(wrong)} wrong of {len(valid)}"
    )


def check_converged(o: Outcome) -> Check:
    """Once the rebuild has been live CONVERGE_S, only the new index answers (and some answers were checked)."""
    rebuild = o.soak.run.event("rebuild")
    end = rebuild.ended if rebuild and rebuild.ended else None
    converged = [s for s in o.of_kinds("query", "heavy") if end is not None and s.started > end + CONVERGE_S]
    ok = bool(converged) and not [s for s in converged if s.problem]
    return Check(
        f"after the rebuild (+{CONVERGE_S:g} s) only the new index answers", ok, f"{len(converged)} answers checked"
    )


def check_malformed(o: Outcome) -> Check:
    """Malformed requests got a 4xx with the JSON error shape (5xx and lost connections are counted above)."""
    malformed = o.of_kinds("malformed")
    bad = [s for s in malformed if s.problem and s.status < 500 and s.status != -1]
    return Check(
        "malformed requests: 4xx with the JSON error shape and code", not bad, f"{len(bad)} wrong of {len(malformed)}"
    )


def check_pathological(o: Outcome) -> Check:
    """Pathological queries got a search page or a 4xx with the JSON error (5xx and lost connections are above)."""
    group = o.of_kinds("pathological")
    bad = [s for s in group if s.problem and s.status < 500 and s.status != -1]
    ok = bool(group) and not bad
    return Check("pathological queries: a search page or a 4xx JSON error", ok, f"{len(bad)} wrong of {len(group)}")


def check_refused(o: Outcome) -> Check:
    """Request lines and heads over gunicorn's limits, and broken ones, got 414, 431 or 400 with the JSON error."""
    group = o.of_kinds("refused")
    bad = [s for s in group if s.problem and s.status < 500 and s.status != -1]
    ok = bool(group) and not bad
    return Check(
        "over-long request lines, over-large heads, broken requests: 414/431/400 with the JSON error",
        ok,
        f"{len(bad)} wrong of {len(group)}",
    )


def check_slow_clients(o: Outcome) -> Check:
    """Slow clients were answered: 200 once their head was complete, 408 with the JSON error if it never was."""
    group = o.of_kinds("slow")
    bad = [s for s in group if s.problem]
    ok = bool(group) or not o.soak.args.slow_clients
    return Check(
        f"{o.soak.args.slow_clients} slow clients: a complete head answered, a stalled one a 408",
        ok and not bad,
        f"{len(bad)} wrong of {len(group)}",
    )


def check_ordinary_p99(o: Outcome) -> Check:
    """The p99 of ordinary queries, while everything else runs, stays under ORDINARY_P99_LIMIT_S."""
    times = [s.seconds for s in o.of_kinds("query") if s.status > 0]
    p99 = percentile(times, 99)
    ok = bool(times) and p99 < ORDINARY_P99_LIMIT_S
    return Check(
        f"ordinary queries: p99 under {ORDINARY_P99_LIMIT_S:g} s", ok, f"p99 {ms(p99)}, p50 {ms(percentile(times, 50))}"
    )


def check_other_requests(o: Outcome) -> Check:
    """Documents, markers, health and suggestions answered consistently with the index states."""
    other = o.of_kinds("document", "marker", "health", "suggest")
    wrong = [s for s in other if s.problem and s.status != -1 and s.status < 500]
    return Check("documents, markers, health, suggest consistent", not wrong, f"{len(wrong)} wrong")


def check_writes(o: Outcome) -> Check:
    """All five CLI writes ran and succeeded."""
    events = o.soak.run.events
    ok = all(e.status == 0 for e in events) and len(events) == 5
    return Check("every CLI write succeeded (add, delete, rebuild, add, delete)", ok, f"{len(events)} writes")


def check_no_worker_timeout(o: Outcome) -> Check:
    """gunicorn's master killed no worker for going silent."""
    timeouts = o.server_log.count("WORKER TIMEOUT")
    return Check("no WORKER TIMEOUT in the server log", timeouts == 0, f"{timeouts}")


def check_no_traceback(o: Outcome) -> Check:
    """The server logged no traceback."""
    traces = o.server_log.count("Traceback")
    return Check("no traceback in the server log", traces == 0, f"{traces}")


def check_client_errors(o: Outcome) -> Check:
    """No check crashed in a client thread."""
    client = o.with_status(lambda st: st == -2)
    return Check("no client-side errors", not client, f"{len(client)}")


def check_duration(o: Outcome) -> Check:
    """The load lasted at least --seconds."""
    seconds = o.seconds
    return Check(f"at least {o.soak.args.seconds} s of load", seconds >= o.soak.args.seconds, f"{seconds:.0f} s")


CHECKS: tuple[Callable[[Outcome], Check], ...] = (
    check_no_5xx,
    check_no_connection_errors,
    check_valid_answers,
    check_converged,
    check_malformed,
    check_pathological,
    check_refused,
    check_slow_clients,
    check_ordinary_p99,
    check_other_requests,
    check_writes,
    check_no_worker_timeout,
    check_no_traceback,
    check_client_errors,
    check_duration,
)
REQUEST_KINDS = (
    "query",
    "heavy",
    "pathological",
    "document",
    "marker",
    "health",
    "suggest",
    "malformed",
    "refused",
    "slow",
    "client",
)


def summary_lines(o: Outcome, setup: dict[str, Any], passed: bool) -> list[str]:
    """The title, the verdict with the headline numbers, and how the run was set up."""
    soak, args, samples, seconds = o.soak, o.soak.args, o.samples, o.seconds
    lat = [s.seconds for s in samples if s.status > 0 and s.kind != "slow"]
    ordinary = [s.seconds for s in o.of_kinds("query") if s.status > 0]
    five, conn = len(o.with_status(lambda st: st >= 500)), len(o.with_status(lambda st: st == -1))
    worker = re.search(r"Using worker: (\S+)", o.server_log)
    return [
        f"# Soak test, {datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC",
        "",
        f"**{'PASS' if passed else 'FAIL'}**: {len(samples):,} requests in {seconds:.0f} s "
        f"({len(samples) / max(seconds, 1e-9):.1f}/s) from {args.clients} clients; "
        f"{five} 5xx, {conn} connection errors; latency p50 {ms(percentile(lat, 50))}, "
        f"p99 {ms(percentile(lat, 99))} (slow clients aside); ordinary queries p50 {ms(percentile(ordinary, 50))}, "
        f"p99 {ms(percentile(ordinary, 99))}.",
        "",
        f"- Server: `zhsearch serve --workers {args.workers}` (gunicorn, worker "
        f"`{worker.group(1) if worker else 'unknown'}`) on {HOST}; "
        f"{os.cpu_count()} CPUs shared with other work, load average {setup['load']} at the start; "
        f"Python {platform.python_version()}.",
        f"- Corpus: {soak.corpus.description}; old {soak.corpus.counts[0]:,} and new {soak.corpus.counts[1]:,} "
        f"articles. Builds before the load: old {setup['build_old']:.1f} s, new (reference, for the expected "
        f"answers) {setup['build_new']:.1f} s.",
        f"- Load: {args.clients} Python client threads (http.client, one connection per request), a weighted mix "
        f"of {len(soak.corpus.queries)} checked queries (full match sets of {setup['full_sets']} of them known), "
        f"{len(soak.corpus.heavy)} heavy requests (long question, {setup['or_terms']} OR terms, pages 5-100 of "
        f"50, date sort), {len(soak.corpus.pathological)} pathological queries, {len(MALFORMED) + 1} malformed "
        f"requests, {len(REFUSED)} requests gunicorn's parser refuses, document lookups, a marker query, /healthz "
        f"and suggestions; and {args.slow_clients} slow clients, each trickling a request head, one after another: "
        f"half a complete /healthz head over {SLOW_HEAD_S:g} s, half a search head that stalls (a byte every "
        f"{SLOW_BYTE_EVERY_S:g} s).",
        "",
    ]


def checks_table(checks: list[Check]) -> list[str]:
    """The checks as a Markdown table."""
    rows = [f"| {c.name} | {'ok' if c.ok else '**FAILED**'} | {c.detail} |" for c in checks]
    return ["## Checks", "", "| check | result | |", "|---|---|---|", *rows, ""]


def kind_notes(kind: str, group: list[Sample]) -> str:
    """The statuses of one kind of request, and for searches which index answered."""
    statuses = Counter(s.status for s in group)
    notes = ", ".join(f"{n}×{st}" for st, n in sorted(statuses.items()))
    if kind in ("query", "heavy"):
        sources = Counter(s.source for s in group if s.status == 200 and not s.problem)
        notes += "; from " + ", ".join(f"{k}: {v}" for k, v in sorted(sources.items()))
        notes += f"; partial {sum(s.partial for s in group)}"
    if kind == "pathological":
        notes += f"; partial {sum(s.partial for s in group)}"
    if kind == "refused":
        notes += f"; not JSON: {sum(s.source == 'not-json' for s in group)}"
    return notes


def requests_table(o: Outcome) -> list[str]:
    """Count, problems and latency percentiles per kind of request, and over all of them."""
    lines = [
        "## Requests",
        "",
        "| kind | requests | problems | p50 | p90 | p99 | max | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for kind in REQUEST_KINDS:
        group = o.of_kinds(kind)
        if group:
            times = [s.seconds for s in group]
            row = [percentile(times, p) for p in (50, 90, 99)] + [max(times)]
            n_problems = sum(bool(s.problem) for s in group)
            cells = " | ".join(ms(x) for x in row)
            lines.append(f"| {kind} | {len(group):,} | {n_problems} | {cells} | {kind_notes(kind, group)} |")
    # A slow client takes seconds by design; its time says nothing about the service's.
    fast = [s for s in o.samples if s.kind != "slow"]
    lat = [s.seconds for s in fast if s.status > 0]
    lines.append(
        f"| **all but slow** | {len(fast):,} | {sum(bool(s.problem) for s in fast)} | "
        + " | ".join(ms(percentile(lat, p)) for p in (50, 90, 99))
        + f" | {ms(max(lat) if lat else float('nan'))} | |"
    )
    return [*lines, ""]


def writes_table(soak: Soak) -> list[str]:
    """The CLI writes made during the load: when, how long, and their exit status."""
    rows = [
        f"| {e.name} | {e.started - soak.t0:.1f} s | {e.ended - e.started:.1f} s | {e.status} | {e.detail[:120]} |"
        for e in soak.run.events
    ]
    header = ["## Index writes during the load (CLI on the same index directory)", ""]
    return [*header, "| write | at | took | exit | |", "|---|---:|---:|---:|---|", *rows, ""]


def problem_lines(samples: list[Sample]) -> list[str]:
    """The first MAX_LISTED problems of each kind of request (nothing when there were none)."""
    problems = [s for s in samples if s.problem]
    if not problems:
        return []
    lines = ["## Problems (first of each kind)", ""]
    shown: Counter[str] = Counter()
    for s in problems:
        if shown[s.kind] < MAX_LISTED:
            shown[s.kind] += 1
            lines.append(f"- {s.kind}: {s.problem}")
    return [*lines, ""]


def report(soak: Soak, setup: dict[str, Any], server_log: str) -> tuple[str, bool]:
    """The Markdown report and whether every check passed."""
    outcome = Outcome(soak, server_log)
    checks = [check(outcome) for check in CHECKS]
    passed = all(c.ok for c in checks)
    lines = [
        *summary_lines(outcome, setup, passed),
        *checks_table(checks),
        *requests_table(outcome),
        *writes_table(soak),
        *problem_lines(outcome.samples),
    ]
    return "\n".join(lines), passed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="seconds of load at least (default 60)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent client threads (default 32)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument(
        "--slow-clients", type=int, default=50, help="more connections that trickle their request heads (default 50)"
    )
    parser.add_argument("--corpus", choices=["shared", "generated"], default="shared")
    parser.add_argument("--articles", type=int, default=1200, help="articles in each of the old and new corpora")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("ZHSEARCH_SOAK_DATA", DEFAULT_DATA)))
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="where the report is saved")
    return parser.parse_args(argv)


def prepare(args: argparse.Namespace, work: Path) -> tuple[Soak, dict[str, Any]]:
    """Write the corpora, build the old index (and the new one as a reference) and compute the expected answers."""
    corpus = (
        shared_corpus(args.data, args.articles, work)
        if args.corpus == "shared"
        else generated_corpus(args.articles, work)
    )
    index, reference = work / "index", work / "reference"
    print(f"building the old ({corpus.counts[0]}) and new ({corpus.counts[1]}) indexes...", file=sys.stderr)
    setup: dict[str, Any] = {
        "load": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
        "build_old": build(index, corpus.old),
        "build_new": build(reference, corpus.new),
    }
    checked: list[tuple[str, dict[str, str]]] = [(q, {}) for q in corpus.queries] + corpus.heavy
    soak = Soak(args, corpus, index, free_port())
    soak.expected_old = expected_answers(index, checked)
    soak.expected_new = expected_answers(reference, checked)
    setup["full_sets"] = sum(soak.expected_old[q].ids is not None for q in corpus.queries)
    setup["or_terms"] = corpus.heavy[1][0].count(" OR ") + 1
    shutil.rmtree(reference)
    return soak, setup


def drive(soak: Soak) -> None:
    """Run the clients and the writer against the live server until the writes are done and the time is up."""
    soak.t0 = time.monotonic()
    soak.stop_at = soak.t0 + soak.args.seconds
    # However slow the machine, the run ends: the writes must finish within this.
    soak.hard_stop = soak.t0 + max(3 * soak.args.seconds, 180)
    writer = threading.Thread(target=soak.writer, daemon=True)
    clients = [threading.Thread(target=soak.client, args=(i,), daemon=True) for i in range(soak.args.clients)]
    slow = [threading.Thread(target=soak.slow_client, args=(i,), daemon=True) for i in range(soak.args.slow_clients)]
    writer.start()
    for t in [*slow, *clients]:
        t.start()
    while writer.is_alive() and time.monotonic() < soak.hard_stop:
        writer.join(timeout=0.5)
        # The load goes on until the writes are done, so all of them happen under it.
        soak.stop_at = max(soak.stop_at, time.monotonic() + 1.0) if writer.is_alive() else soak.stop_at
    while time.monotonic() < min(soak.stop_at, soak.hard_stop):
        time.sleep(0.2)
    soak.done.set()
    for t in clients:
        t.join(timeout=CLIENT_TIMEOUT_S + 5)
    for t in slow:
        t.join(timeout=SLOW_BYTE_EVERY_S + 1)  # one still reading an answer is left behind (a daemon)
    writer.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    """Run the soak test; print and save the report; return 1 if a check failed."""
    args = parse_args(argv)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="zhsearch-soak-"))
    try:
        soak, setup = prepare(args, work)
        log = work / "server.log"
        print(f"setup took {time.monotonic() - started:.0f} s; serving and loading...", file=sys.stderr)
        try:
            with zhsearch_server(soak.index, log, workers=args.workers, port=soak.port):
                drive(soak)
        except ServerError as exc:
            raise SystemExit(str(exc)) from None
        text, passed = report(soak, setup, log.read_text(encoding="utf-8", errors="replace"))
        text += f"\nWhole run (builds, expected answers, load): {time.monotonic() - started:.0f} s.\n"
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"soak-{datetime.now(UTC).strftime('%Y-%m-%d')}.md"
        path.write_text(text, encoding="utf-8")
        print(text)
        print(f"saved {path}", file=sys.stderr)
        return 0 if passed else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
