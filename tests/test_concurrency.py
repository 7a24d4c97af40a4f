"""Concurrent writers and readers: real `zhsearch` processes against one index, and a real server reading it."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from harness import zhsearch_server

from indexer import Searcher, build_index
from indexer.backends.whoosh import WhooshSettings, WhooshStore
from indexer.corpus import Article

from .test_crash import Poller, http_get, run_cli, start_cli, wait_until, write_corpus

pytestmark = pytest.mark.slow


@pytest.fixture
def index(tmp_path: Path) -> Path:
    """A real index of 300 generated articles (ids ``base-0`` to ``base-299``)."""
    out = tmp_path / "index"
    build_index([write_corpus(tmp_path / "base.jsonl", "base", 300, seed=11)], out)
    return out


def count(index: Path, q: str | None = None) -> int:
    """Documents in the index, or matches of ``q``."""
    s = Searcher(index)
    try:
        return s.search(q).total if q else s.info().documents
    finally:
        s.close()


@contextmanager
def writer_holding_the_lock(index: Path, corpus: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real `zhsearch add` frozen (SIGSTOP) while it holds the index's write lock; resumed on exit."""
    proc = start_cli("add", "-q", "--index", str(index), str(corpus), log=log)
    try:
        holding = wait_until(
            lambda: proc.poll() is not None or (index / ".lock").read_text(encoding="utf-8").strip() == str(proc.pid),
            60,
            step=0.002,
        )
        os.kill(proc.pid, signal.SIGSTOP)
        assert holding and proc.poll() is None, "the first writer finished before it could be held; use more docs"
        yield proc
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        try:
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_second_writer_waits_for_the_timeout_then_fails_with_a_clear_message(index: Path, tmp_path: Path) -> None:
    first = write_corpus(tmp_path / "first.jsonl", "first", 1500, seed=12, marker="zzfirst")
    second = write_corpus(tmp_path / "second.jsonl", "second", 5, seed=13, marker="zzsecond")
    live = os.readlink(index / "CURRENT")
    with writer_holding_the_lock(index, first, tmp_path / "first.log") as holder:
        for args in (["add", str(second)], ["delete", "base-1"], ["build", str(second)]):
            started = time.monotonic()
            result = run_cli(*args, "-q", "--index", str(index), env={"ZHSEARCH_WRITE_TIMEOUT": "1.5"})
            waited = time.monotonic() - started
            assert result.returncode == 1, (args, result.stderr)
            assert waited >= 1.5, (args, waited)
            message = result.stderr.strip()
            assert message == (
                f"Error: the index at {index} is busy: process {holder.pid} has been writing to it for longer than "
                "1.5 s (ZHSEARCH_WRITE_TIMEOUT); run this command again when that write has finished, "
                "or set ZHSEARCH_WRITE_TIMEOUT to a larger number of seconds to wait longer"
            ), (args, message)
            # The build gave up before it created anything.
            assert sorted(os.listdir(index)) == [".lock", "CURRENT", live]
    assert holder.returncode == 0
    # The first write is whole; the refused ones wrote nothing.
    assert (count(index), count(index, "zzfirst"), count(index, "zzsecond")) == (1800, 1500, 0)
    s = Searcher(index)
    try:
        assert s.get("base-1") is not None
    finally:
        s.close()
    # Tried again, they succeed.
    assert run_cli("add", "-q", "--index", str(index), str(second)).returncode == 0
    assert count(index, "zzsecond") == 5


def test_waiting_writers_go_after_the_first_and_no_update_is_lost(index: Path, tmp_path: Path) -> None:
    first = write_corpus(tmp_path / "first.jsonl", "first", 1500, seed=12, marker="zzfirst")
    second = write_corpus(tmp_path / "second.jsonl", "second", 40, seed=13, marker="zzsecond")
    with writer_holding_the_lock(index, first, tmp_path / "first.log") as holder:
        env = {"ZHSEARCH_WRITE_TIMEOUT": "120"}
        waiting = [
            start_cli("add", "-q", "--index", str(index), str(second), log=tmp_path / "second.log", env=env),
            start_cli("delete", "-q", "--index", str(index), "base-7", "base-8", log=tmp_path / "del.log", env=env),
        ]
        try:
            time.sleep(3)
            # Still waiting, well past the old fail-at-once behaviour.
            assert [p.poll() for p in waiting] == [None, None]
        finally:
            os.kill(holder.pid, signal.SIGCONT)
            for p in waiting:
                p.wait(timeout=120)
    assert holder.returncode == 0
    logs = [(tmp_path / n).read_text(encoding="utf-8") for n in ("second.log", "del.log")]
    assert [p.returncode for p in waiting] == [0, 0], logs
    assert count(index) == 300 + 1500 + 40 - 2
    assert (count(index, "zzfirst"), count(index, "zzsecond")) == (1500, 40)
    s = Searcher(index)
    try:
        assert s.get("base-7") is None and s.get("base-8") is None and s.get("base-9") is not None
        assert s.get("first-1499") is not None and s.get("second-39") is not None
    finally:
        s.close()


def test_writers_started_together_all_succeed(index: Path, tmp_path: Path) -> None:
    batches = [write_corpus(tmp_path / f"b{i}.jsonl", f"b{i}", 200, seed=20 + i, marker=f"zzb{i}") for i in range(2)]
    procs = [
        start_cli("add", "-q", "--index", str(index), str(b), log=tmp_path / f"b{i}.log") for i, b in enumerate(batches)
    ]
    procs.append(start_cli("delete", "-q", "--index", str(index), "base-0", log=tmp_path / "d.log"))
    for p in procs:
        p.wait(timeout=180)
    logs = [(tmp_path / n).read_text(encoding="utf-8") for n in ("b0.log", "b1.log", "d.log")]
    assert [p.returncode for p in procs] == [0, 0, 0], logs
    assert (count(index), count(index, "zzb0"), count(index, "zzb1")) == (300 + 400 - 1, 200, 200)


def test_write_timeout_must_be_a_number(index: Path) -> None:
    result = run_cli("delete", "-q", "--index", str(index), "base-1", env={"ZHSEARCH_WRITE_TIMEOUT": "soon"})
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: ZHSEARCH_WRITE_TIMEOUT must be a number of seconds, 0 or more, not 'soon'"
    assert count(index) == 300


def test_add_and_delete_reach_a_running_server_without_a_failed_request(index: Path, tmp_path: Path) -> None:
    cycles, batch = 3, 30
    marker = write_corpus(tmp_path / "marker.jsonl", "mk", batch, seed=14, marker="zzmarker")
    with zhsearch_server(index, tmp_path / "server.log", workers=2) as server:
        base = server.url
        marker_url = f"{base}/api/search?" + urllib.parse.urlencode({"q": "zzmarker", "size": 50})
        urls = [
            f"{base}/api/search?" + urllib.parse.urlencode({"q": "数据库 开源"}),
            f"{base}/api/documents/base-3",
            f"{base}/healthz",
            f"{base}/api/suggest?q=shu",
        ]
        # (start, end, total) of every marker search: the batch must appear and vanish whole.
        seen: list[tuple[float, float, int]] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    status, data = http_get(marker_url)
                    total = data["total"] if status == 200 else -status
                except (OSError, ValueError):
                    total = -1
                seen.append((started, time.monotonic(), total))

        watchers = [threading.Thread(target=watch, daemon=True) for _ in range(2)]
        lags: list[float] = []
        with Poller(urls, threads=2).running() as poller:
            for t in watchers:
                t.start()
            try:
                for _ in range(cycles):
                    for args, expected in (
                        (["add", str(marker)], batch),
                        (["delete", *(f"mk-{i}" for i in range(batch))], 0),
                    ):
                        result = run_cli(*args, "-q", "--index", str(index))
                        assert result.returncode == 0, result.stderr
                        done = time.monotonic()
                        assert wait_until(lambda n=expected: http_get(marker_url)[1]["total"] == n, 5), args[0]
                        lags.append(time.monotonic() - done)
                        time.sleep(0.5)
                        # Every answer that started after the change became visible shows it.
                        late = [total for started, _, total in seen if started > done + max(lags[-1], 0.05)]
                        assert late and set(late) == {expected}, (args[0], set(late))
            finally:
                stop.set()
                for t in watchers:
                    t.join(timeout=60)
        assert poller.failures == [], poller.failures[:10]
        assert {total for _, _, total in seen} <= {0, batch}, sorted({t for _, _, t in seen})
        assert len(seen) > 20 and sum(poller.statuses.values()) > 20
    assert max(lags) < 3, lags
    print(f"visible after {[round(x, 2) for x in lags]} s; {len(seen)} marker searches, {dict(poller.statuses)}")


def test_index_size_is_read_while_writers_commit(index: Path) -> None:
    # /healthz and `info` list the index files while another process's commit deletes merged
    # segments and old TOCs. One store per reader, as in gunicorn's single-threaded workers.
    # A fixed number of commits, not a time budget: a loaded machine gets through fewer.
    writer = WhooshStore(WhooshSettings(index))
    docs = [Article(id=f"x{i}", title="并发写入", body="测试内容") for i in range(5)]
    errors: list[str] = []
    reads = [0, 0]
    done = threading.Event()

    def read(slot: int) -> None:
        reader = WhooshStore(WhooshSettings(index))
        try:
            while not done.is_set():
                try:
                    reader.info()
                    reads[slot] += 1
                except Exception as exc:  # noqa: BLE001 - any failure is the finding
                    errors.append(repr(exc))
        finally:
            reader.close()

    threads = [threading.Thread(target=read, args=(slot,)) for slot in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(6):
            writer.add(docs)
            writer.delete([d.id for d in docs])
    finally:
        done.set()
        for t in threads:
            t.join()
        writer.close()
    assert errors == [], errors[:3]
    assert min(reads) > 0, reads
