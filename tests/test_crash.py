"""Crash safety: real `zhsearch build`/`add` processes killed with SIGKILL while a real server serves the index.

Whatever moment a writer dies at, the served index must answer exactly as before, no process may be
left holding the index lock, and the next build must clean up and succeed.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from harness import free_port, zhsearch_server
from whoosh import index as whoosh_index

from indexer import Searcher, build_index

pytestmark = pytest.mark.slow

ZHSEARCH = Path(sys.executable).parent / "zhsearch"
WORDS = (
    "数据库 搜索 索引 分词 开源 模型 训练 推理 容器 集群 网络 存储 内核 调度 编译 "
    "测试 发布 版本 安全 漏洞 性能 缓存 并发 事务 日志 监控 部署 微服务 算法 芯片"
).split()
# Queries whose answers are compared before and after every kill: broad words, rare tokens, a phrase, OR, NOT.
QUERIES = ["数据库", "开源 模型", "rare3", "rare17 OR rare40", '"分布式 集群"', "芯片 NOT 漏洞", "rare7 安全"]
# Every multi-process code path is exercised even on a one-CPU machine.
WRITER_ENV = {"ZHSEARCH_BUILD_PROCS": "2", "ZHSEARCH_WRITE_TIMEOUT": "20"}


def write_corpus(path: Path, prefix: str, n: int, seed: int, rare: int = 97, marker: str = "") -> Path:
    """Write ``n`` generated Chinese articles (ids ``prefix-i``; each has one token ``rareK``) as JSON Lines."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            body = "".join(rng.choice(WORDS) + rng.choice("的了在和是，。") for _ in range(60))
            title = "".join(rng.sample(WORDS, 3))
            doc = {"id": f"{prefix}-{i}", "title": f"{title} {marker}".strip(), "body": f"{body} rare{i % rare}"}
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run ``zhsearch ARGS`` to completion and return its exit status and output."""
    return subprocess.run(
        [str(ZHSEARCH), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **WRITER_ENV, **(env or {})},
    )


def start_cli(*args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``zhsearch ARGS`` in the background, stderr to ``log``.

    A file, not a pipe: a killed writer's orphans would hold a pipe open, and reading it would hang.
    """
    with open(log, "wb") as err:
        return subprocess.Popen(
            [str(ZHSEARCH), *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, **WRITER_ENV, **(env or {})},
        )


def http_get(url: str) -> tuple[int, Any]:
    """GET ``url``: status and decoded JSON (an error's JSON too)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode("utf-8") or "null")


def search_url(base: str, q: str, size: int = 20) -> str:
    """The /api/search URL for ``q``."""
    return f"{base}/api/search?" + urllib.parse.urlencode({"q": q, "size": size})


def http_snapshot(base: str) -> dict[str, tuple[int, list[str]]]:
    """Total and result ids of every query in QUERIES, over HTTP."""
    out = {}
    for q in QUERIES:
        status, data = http_get(search_url(base, q))
        assert status == 200, (q, status, data)
        out[q] = (data["total"], [r["id"] for r in data["results"]])
    return out


def local_snapshot(index: Path) -> dict[str, tuple[int, list[str]]]:
    """The same as ``http_snapshot``, from the index files in this process."""
    s = Searcher(index)
    try:
        return {q: ((p := s.search(q, size=20)).total, [h.id for h in p.hits]) for q in QUERIES}
    finally:
        s.close()


def live_gen(index: Path) -> str:
    """The generation CURRENT points at."""
    return os.readlink(index / "CURRENT")


def lock_is_free(index: Path) -> bool:
    """True when nobody holds the index's write lock."""
    with open(index / ".lock", "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return True


def writers_of(index: Path) -> list[int]:
    """Pids of live `zhsearch build/add/delete` processes (and their forks) writing to ``index``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and str(index).encode() in argv and {b"build", b"add", b"delete"} & set(argv):
            pids.append(int(entry.name))
    return pids


def wait_until(check: Callable[[], bool], seconds: float, step: float = 0.05) -> bool:
    """Poll ``check`` until it is true or ``seconds`` pass; return its last value."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


class Poller:
    """Threads that keep querying a server and count every answer that is not a 200."""

    def __init__(self, urls: list[str], threads: int = 2) -> None:
        self.urls = urls
        self.statuses: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, offset: int) -> None:
        i = offset
        while not self._stop.is_set():
            url = self.urls[i % len(self.urls)]
            i += 1
            try:
                status, _ = http_get(url)
            except (OSError, ValueError) as exc:
                status, detail = -1, repr(exc)
            else:
                detail = url
            self.statuses[str(status)] += 1
            if status != 200:
                self.failures.append(f"{status} {detail}")

    @contextmanager
    def running(self) -> Iterator[Poller]:
        """Poll while the block runs."""
        for t in self._threads:
            t.start()
        try:
            yield self
        finally:
            self._stop.set()
            for t in self._threads:
                t.join(timeout=60)


def new_tmp(index: Path, before: set[str]) -> Path | None:
    """The build directory a build started after ``before`` was listed is writing."""
    for name in os.listdir(index):
        if name.startswith("tmp-") and name not in before:
            return index / name
    return None


def files_in(path: Path | None) -> list[str]:
    """Names in ``path``; empty if it is gone."""
    try:
        return os.listdir(path) if path is not None else []
    except FileNotFoundError:
        return []


# Moments of a build, each a test of the directory a watcher sees (the tmp-* dir being built, if any).
PHASES: dict[str, Callable[[Path, set[str], float], bool]] = {
    # Just after the build directory appears: an empty index.
    "started": lambda index, before, since: new_tmp(index, before) is not None,
    # Sub-writers indexing documents.
    "indexing": lambda index, before, since: since >= 0.8,
    # Commit: sub-writers writing their segments' columns.
    "commit": lambda index, before, since: any(n.endswith(".col") for n in files_in(new_tmp(index, before))),
    # Writing the term dictionary, the last file of a segment.
    "terms": lambda index, before, since: any(n.endswith(".trm") for n in files_in(new_tmp(index, before))),
    # The TOC is written: fsync, rename and the CURRENT swap follow within milliseconds.
    "publish": lambda index, before, since: (
        "_MAIN_1.toc" in files_in(new_tmp(index, before))
        or any(n.startswith("gen-") and n not in before for n in os.listdir(index))
    ),
}


def kill_build(index: Path, corpus: Path, phase: str | None, delay: float = 0.0) -> tuple[bool, str]:
    """Start `zhsearch build`, SIGKILL it (the main process only) at ``phase`` or after ``delay`` s.

    Returns whether it was killed before finishing, and what it printed.
    """
    before = set(os.listdir(index))
    log = index.parent / "build.log"
    proc = start_cli("build", "-q", "--index", str(index), str(corpus), log=log)
    started = time.monotonic()
    tmp_seen: float | None = None
    killed = False
    try:
        while proc.poll() is None:
            now = time.monotonic()
            if tmp_seen is None and new_tmp(index, before) is not None:
                tmp_seen = now
            since = now - tmp_seen if tmp_seen is not None else -1.0
            due = PHASES[phase](index, before, since) if phase is not None else now - started >= delay
            if due:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None and not killed:
            proc.kill()
        proc.wait(timeout=60)
    return killed and proc.returncode == -signal.SIGKILL, log.read_text(encoding="utf-8")


@pytest.fixture
def corpora(tmp_path: Path) -> dict[str, Path]:
    """Two different generated corpora (old and new) and a batch to add."""
    return {
        "old": write_corpus(tmp_path / "old.jsonl", "a", 2000, seed=1),
        "new": write_corpus(tmp_path / "new.jsonl", "b", 2000, seed=2, rare=89),
        "more": write_corpus(tmp_path / "more.jsonl", "m", 1000, seed=3, marker="zzbatch"),
    }


def test_sigkill_at_any_moment_of_a_build_leaves_the_served_index_intact(
    tmp_path: Path, corpora: dict[str, Path]
) -> None:
    index = tmp_path / "index"
    started = time.monotonic()
    result = run_cli("build", "-q", "--index", str(index), str(corpora["old"]))
    assert result.returncode == 0, result.stderr
    build_seconds = time.monotonic() - started
    old_gen = live_gen(index)
    rng = random.Random(20261130)
    # The named moments, then random ones over the length of a whole build.
    plan: list[tuple[str | None, float]] = [(p, 0.0) for p in PHASES]
    plan += [(None, rng.uniform(0.2, build_seconds)) for _ in range(3)]
    swaps = 0
    with zhsearch_server(index, tmp_path / "server.log", workers=2) as server:
        base = server.url
        baseline = http_snapshot(base)
        assert baseline == local_snapshot(index)
        assert baseline["rare3"][0] > 0 and baseline["数据库"][0] > 0
        urls = [search_url(base, q) for q in QUERIES] + [f"{base}/healthz", f"{base}/api/suggest?q=shu"]
        with Poller(urls).running() as poller:
            swaps = 0
            for phase, delay in plan:
                what = phase or f"after {delay:.2f} s"
                killed, err = kill_build(index, corpora["new"], phase, delay)
                assert killed or phase in ("publish", None), f"the build finished before {what}"
                # No orphaned sub-writer survives its build, and none holds the lock.
                assert wait_until(lambda: not writers_of(index), 10), (what, writers_of(index))
                assert lock_is_free(index), what
                assert "Traceback" not in err, (what, err)
                if live_gen(index) == old_gen:
                    assert http_snapshot(base) == baseline, what
                    continue
                # Only when it died after the swap (or finished): then the new index is whole.
                assert phase in ("publish", None), what
                swaps += 1
                status, health = http_get(f"{base}/healthz")
                assert (status, health["documents"]) == (200, 2000), what
                assert http_snapshot(base) == local_snapshot(index), what
                # Back to the old corpus for the next kill.
                result = run_cli("build", "-q", "--index", str(index), str(corpora["old"]))
                assert result.returncode == 0, result.stderr
                old_gen, baseline = live_gen(index), http_snapshot(base)
                assert baseline == local_snapshot(index)
            # The next build clears every killed build's debris and goes live.
            result = run_cli("build", "-q", "--index", str(index), str(corpora["new"]))
            assert result.returncode == 0, result.stderr
            names = os.listdir(index)
            assert not [n for n in names if n.startswith("tmp-") or n == "CURRENT.tmp"], names
            assert len([n for n in names if n.startswith("gen-")]) == 2, names
            after = http_snapshot(base)
        assert after == local_snapshot(index) != baseline
        assert poller.failures == [], poller.failures[:10]
        assert sum(poller.statuses.values()) > 20, poller.statuses
    print(f"build {build_seconds:.1f} s; killed at {[p or round(d, 2) for p, d in plan]}; swaps {swaps}")


def test_sigkill_during_add_is_all_or_nothing(tmp_path: Path, corpora: dict[str, Path]) -> None:
    index = tmp_path / "index"
    build_index([corpora["old"]], index)
    gen = index / live_gen(index)
    baseline = local_snapshot(index)
    for phase in ("writing", "commit", "terms"):
        before = set(os.listdir(gen))
        docs_before = local_snapshot(index)
        proc = start_cli("add", "-q", "--index", str(index), str(corpora["more"]), log=tmp_path / "add.log")
        try:

            def due(proc: subprocess.Popen[bytes] = proc, before: set[str] = before, phase: str = phase) -> bool:
                if proc.poll() is not None:
                    return True
                if phase == "writing":
                    return (index / ".lock").read_text(encoding="utf-8").strip() == str(proc.pid)
                new = set(files_in(gen)) - before
                return any(n.endswith(".col" if phase == "commit" else ".trm") for n in new)

            assert wait_until(due, 60, step=0.002)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL or phase == "terms", f"add finished before {phase}"
        assert lock_is_free(index)
        s = Searcher(index)
        try:
            # In place on the live generation, yet all or nothing.
            state = (s.info().documents, s.search("zzbatch").total)
        finally:
            s.close()
        assert state in ((2000, 0), (3000, 1000)), (phase, state)
        if state == (3000, 1000):
            break  # killed just after the commit: the batch is in, whole
        assert local_snapshot(index) == docs_before == baseline, phase
    result = run_cli("add", "-q", "--index", str(index), str(corpora["more"]))
    assert result.returncode == 0, result.stderr
    s = Searcher(index)
    try:
        assert (s.info().documents, s.search("zzbatch").total) == (3000, 1000)
        assert s.get("m-999") is not None
    finally:
        s.close()
    # Whoosh's next commit removed the killed writers' segment files: every
    # segment file left belongs to a segment of the live table of contents.
    ix = whoosh_index.open_dir(str(gen))
    try:
        live_segments = {seg.segment_id() for seg in ix._segments()}
    finally:
        ix.close()
    leftovers = [
        n for n in os.listdir(gen) if n.endswith((".col", ".trm", ".pst")) and n.split(".")[0] not in live_segments
    ]
    assert leftovers == [], leftovers


def test_next_build_clears_a_build_killed_between_rename_and_swap(tmp_path: Path, corpora: dict[str, Path]) -> None:
    index = tmp_path / "index"
    build_index([corpora["old"]], index)
    live = live_gen(index)
    baseline = local_snapshot(index)
    # What a build killed after renaming tmp-* to gen-* but before swapping CURRENT leaves behind:
    # a complete generation nobody serves, a dangling CURRENT.tmp, and an older killed build's tmp-*.
    orphan = "gen-29991231T235959000000-99999"
    shutil.copytree(index / live, index / orphan)
    os.symlink(orphan, index / "CURRENT.tmp")
    (index / "tmp-20000101T000000000000-1").mkdir()
    (index / "tmp-20000101T000000000000-1" / "_MAIN_0.toc").write_bytes(b"\0half")
    assert live_gen(index) == live and local_snapshot(index) == baseline
    result = run_cli("add", "-q", "--index", str(index), str(corpora["more"]))
    assert result.returncode == 0, result.stderr
    result = run_cli("build", "-q", "--index", str(index), str(corpora["new"]))
    assert result.returncode == 0, result.stderr
    names = sorted(os.listdir(index))
    # The never-served orphan goes; the generation that was live stays for searchers still on it.
    assert names == [".lock", "CURRENT", live, live_gen(index)], names
    s = Searcher(index)
    try:
        assert s.info().documents == 2000 and s.get("b-1") is not None and s.get("a-1") is None
    finally:
        s.close()


def test_serve_refuses_an_index_of_another_format_and_says_how_to_fix_it(tmp_path: Path) -> None:
    index = tmp_path / "index"
    build_index([write_corpus(tmp_path / "c.jsonl", "c", 20, seed=4)], index)
    meta_path = index / "CURRENT" / "zhsearch.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["schema_version"] = "0.1"
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    port = free_port()
    proc = subprocess.Popen(
        [str(ZHSEARCH), "serve", "--index", str(index), "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 1
    assert "Traceback" not in err
    message = err.strip()
    assert message.startswith("Error: the index at") and "uses format 0.1" in message, message
    assert "rebuild it with `zhsearch build PATH...`" in message, message
    # It exited before serving anything.
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
