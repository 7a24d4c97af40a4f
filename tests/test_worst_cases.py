"""The worst queries against `zhsearch serve --workers 2` on the 8,682 shared articles keep to the time limit.

Long phrases of common characters and words, identifiers that become phrases
of their pieces, ORs and NOTs of phrases, many words: each must answer, on the
JSON API and on the HTML page (which also runs the relaxed retry and "did you
mean"), within SEARCH_TIME_LIMIT plus half a second of wall time, one at a time
and two at once, with status 200 and ``partial`` set when the search was cut
short; and gunicorn must never kill a worker for taking too long.

Building the index takes minutes, so it is built once per session. Without
../shared/data/articles.jsonl these tests skip, saying why; with CI=true they
fail instead. While developing, ZHSEARCH_TEST_ARTICLES_INDEX names an index of
the articles already built, to skip the build.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from harness import Server, log_tail, zhsearch_server

pytestmark = pytest.mark.slow

LIMIT_S = 1.0
# Time allowed after the limit: highlighting what was found, facets, rendering, HTTP.
GRACE_S = 0.5

_COMMON = "我们 中国 发展 一个 重要 问题 因为 他们 认为 这些 技术 可以 提高 人们 生活 水平 公司 市场 数据 模型".split()
_MORE = "系统 用户 产品 服务 研究 工作 时间 国家 政府 经济 社会 企业 管理 信息 网络 平台 应用 能力 需要 进行".split()
WORDS = _COMMON + _MORE

# One or two members of each class of query that used to outlast the limit (issue 13).
WORST = {
    "repeated character phrase": '"' + "是" * 254 + '"',
    "repeated word phrase": '"' + "我们" * 127 + '"',
    "phrase of distinct common words": '"' + "".join(WORDS * 3)[:254] + '"',
    "title phrase": 'title:"' + "在" * 240 + '"',
    "NOT of a phrase": '模型 -"' + "了" * 240 + '"',
    "OR of phrases": " OR ".join('"' + c * 19 + '"' for c in "的是在了和有我他这中"),
    "repeated identifier": "b2" * 128,
    "full-width identifier": "Ｃ３" * 128,
    "dotted version": "v" + ".".join(str(i % 10) for i in range(127)),
    "mixed scripts": "x的7" * 85,
    "repeated word, spaced": " ".join(["中国"] * 85),
    "many common words": " ".join(WORDS * 3)[:256],
    "long question": ("".join(WORDS) + "是什么？")[:256],
    "only NOTs": " ".join("-" + w for w in WORDS)[:256],
    "OR of common characters": " OR ".join("的是在了和有我他这中" * 6)[:256],
    "nested ORs": "(" * 30 + " OR ".join(WORDS[:24]) + ")" * 30,
    "many date ranges": " ".join(["date:2015..2020"] * 16),
}


@pytest.fixture(scope="module")
def server(articles_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("worst") / "server.log"
    env = {"ZHSEARCH_SEARCH_TIME_LIMIT": str(LIMIT_S)}
    with zhsearch_server(articles_index, log, workers=2, env=env) as running:
        # Each worker opens the index, reads its length norms and facet values on its first searches.
        with ThreadPoolExecutor(8) as pool:
            for _ in range(3):
                list(pool.map(lambda p: _get(running, p), [_api("模型"), _page("开源")] * 4))
        yield running
    log_text = log.read_text(encoding="utf-8", errors="replace")
    assert "WORKER TIMEOUT" not in log_text, log_tail(log)
    assert "Traceback" not in log_text, log_tail(log)


def _get(server: Server, path: str) -> tuple[int, str, float]:
    """Status, body and wall time of one GET."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(server.url + path, timeout=60) as resp:
            status, body = resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read().decode("utf-8", errors="replace")
    return status, body, time.perf_counter() - started


def _api(q: str) -> str:
    return "/api/search?" + urlencode({"q": q})


def _page(q: str) -> str:
    return "/?" + urlencode({"q": q})


def _check(server: Server, path: str, within: float = LIMIT_S + GRACE_S) -> float:
    """GET ``path``; assert it answered 200 ``within`` seconds, flagged partial when cut short; return the wall time."""
    status, body, wall = _get(server, path)
    assert status == 200, f"{path}: {status} {body[:300]}\n{log_tail(server.log_path)}"
    assert wall <= within, f"{path} took {wall:.2f} s (limit {LIMIT_S} s)"
    if path.startswith("/api/"):
        data: dict[str, Any] = json.loads(body)
        # A search that ran past the limit was stopped there, and says so (one that ran 12.6 s said
        # partial: false); finishing just after the last look at the clock is still a whole answer.
        assert data["partial"] or data["took_ms"] <= (LIMIT_S + GRACE_S) * 1000, (path, data["took_ms"])
    else:
        took = re.search(r"用时 ([\d.]+) 毫秒", body)
        if took and float(took.group(1)) > (LIMIT_S + GRACE_S) * 1000:
            assert "部分结果" in body, path
    return wall


@pytest.mark.parametrize("name", list(WORST))
def test_worst_queries_answer_within_the_limit(server: Server, name: str) -> None:
    q = WORST[name]
    assert len(q) <= 256, "MAX_QUERY_CHARS"
    _check(server, _api(q))
    _check(server, _page(q))
    _check(server, _api(q) + "&sort=date")


def test_two_worst_queries_at_once_answer_within_the_limit(server: Server) -> None:
    names = list(WORST)
    pairs = [(_api(WORST[a]), _page(WORST[b])) for a, b in zip(names, names[1:] + names[:1], strict=True)]
    with ThreadPoolExecutor(2) as pool:
        for pair in pairs:
            list(pool.map(lambda path: _check(server, path), pair))


def test_others_are_served_while_two_worst_queries_run(server: Server) -> None:
    # Two costly pages at once no longer stop the service for everyone (they did for 30 s). Each of the
    # two workers runs one request at a time, so a third request waits for one of them: at most a limit.
    worst = [_page(WORST["OR of phrases"]), _page(WORST["many common words"])]
    within = 2 * LIMIT_S + GRACE_S
    with ThreadPoolExecutor(3) as pool:
        slow = [pool.submit(_check, server, path, within) for path in worst]
        time.sleep(0.1)
        _check(server, _api("开源"), within)
        for future in slow:
            future.result()
