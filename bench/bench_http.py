"""The HTTP part of the benchmark: load the server from 127.0.0.1 and read its memory (harness.py starts it)."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_stats import Latencies, percentile
from harness import HOST

# wrk's Lua: each thread walks the query paths from its own offset, and done() prints one JSON line.
WRK_SCRIPT = """
local paths = {%(paths)s}
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = (tid or 0) * math.floor(#paths / %(threads)d)
end

function request()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, "write": %%d, ' ..
    '"status": %%d, "timeout": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d, "mean_us": %%f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


@dataclass
class LoadResult:
    """What one load run measured."""

    tool: str
    seconds: float
    connections: int
    requests: int
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def qps(self) -> float:
        """Completed requests per second (errors included, as wrk counts them)."""
        return self.requests / self.seconds if self.seconds else float("nan")


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid``, from /proc."""
    kids: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    for task in task_dir.iterdir() if task_dir.exists() else []:
        try:
            kids.extend(int(x) for x in (task / "children").read_text(encoding="utf-8").split())
        except OSError:
            continue
    return sorted(set(kids))


def memory_kb(pid: int) -> dict[str, int]:
    """RSS (from /proc/PID/status) and PSS (from /proc/PID/smaps_rollup) in kB."""
    out = {"rss": 0, "pss": 0}
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss"] = int(line.split()[1])
    with open(f"/proc/{pid}/smaps_rollup", encoding="utf-8") as f:
        for line in f:
            if line.startswith("Pss:"):
                out["pss"] = int(line.split()[1])
    return out


def wait_for_workers(master: int, expected: int, timeout: float = 30.0) -> list[int]:
    """The master's worker pids once ``expected`` of them exist (gunicorn forks them after /healthz may answer)."""
    deadline = time.monotonic() + timeout
    pids = children(master)
    while len(pids) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        pids = children(master)
    return pids


def have_wrk() -> bool:
    """True when the wrk load generator is installed."""
    return shutil.which("wrk") is not None


def _lua_string(s: str) -> str:
    # Paths are already percent-encoded ASCII; only quotes and backslashes need escaping.
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_wrk(port: int, paths: Sequence[str], seconds: int, connections: int, threads: int, workdir: Path) -> LoadResult:
    """Load the server with wrk for ``seconds`` from ``connections`` connections, rotating through ``paths``."""
    script = workdir / "bench-rotate.lua"
    script.write_text(
        WRK_SCRIPT % {"paths": ",\n".join(_lua_string(p) for p in paths), "threads": threads}, encoding="utf-8"
    )
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script)]
    cmd.append(f"http://{HOST}:{port}/")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return LoadResult(
        tool=f"wrk ({threads} threads)",
        seconds=data["duration_us"] / 1e6,
        connections=connections,
        requests=data["requests"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        non_2xx=data["status"],
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        details=data,
    )


def run_python_load(port: int, paths: Sequence[str], seconds: int, connections: int) -> LoadResult:
    """Fallback when wrk is missing: one thread per connection in this process (it competes for the CPU)."""
    deadline = time.perf_counter() + seconds
    lock = threading.Lock()
    latencies: list[float] = []
    counts = {"non_2xx": 0, "socket": 0}

    def client(offset: int) -> None:
        i = offset
        while time.perf_counter() < deadline:
            path = paths[i % len(paths)]
            i += 1
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection(HOST, port, timeout=10)
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                conn.close()
                ok = 200 <= resp.status < 400
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)
                    counts["non_2xx"] += 0 if ok else 1
            except OSError:
                with lock:
                    counts["socket"] += 1

    started = time.perf_counter()
    workers = [threading.Thread(target=client, args=(n * 7,)) for n in range(connections)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    elapsed = time.perf_counter() - started
    return LoadResult(
        tool="Python threads (wrk not installed; the load generator competes for the 2 cores)",
        seconds=elapsed,
        connections=connections,
        requests=len(latencies) + counts["socket"],
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        non_2xx=counts["non_2xx"],
        socket_errors=counts["socket"],
    )


@dataclass
class SerialResult:
    """One request at a time over one client connection: per-request latencies and how often it reconnected."""

    latencies: Latencies
    rounds: int
    connections: int


def run_serial(port: int, paths: Sequence[str], rounds: int, timeout: float = 60.0) -> SerialResult:
    """A pass over ``paths`` to warm up, then ``rounds`` timed passes, each request waiting for the one before.

    One ``http.client`` connection with keep-alive; each latency runs from sending the request to reading the
    whole body. A non-2xx answer is an error (not a latency), once per path. ``connections`` counts the
    connections opened, warm-up included: 1 when the server kept the connection alive throughout.
    """
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    lat = Latencies()
    connections = 0
    failed: set[str] = set()
    try:
        for r in range(rounds + 1):
            for path in paths:
                if conn.sock is None:
                    # http.client would reconnect by itself; connect here so the connect is counted, not timed.
                    conn.connect()
                    connections += 1
                started = time.perf_counter()
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                ms = (time.perf_counter() - started) * 1000
                if not 200 <= resp.status < 300:
                    if path not in failed:
                        failed.add(path)
                        lat.errors.append((path, f"HTTP {resp.status}"))
                elif r > 0:
                    lat.ms.append(ms)
    finally:
        conn.close()
    return SerialResult(lat, rounds, connections)


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    out = [pid]
    i = 0
    while i < len(out):
        out.extend(children(out[i]))
        i += 1
    return out


class TreeMemorySampler:
    """Samples the summed RSS and PSS of a process tree a few times a second, keeping the peaks (in kB)."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_rss_kb = 0
        self.peak_pss_kb = 0
        self.max_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = pss = 0
            pids = descendants(self.pid)
            for pid in pids:
                try:
                    mem = memory_kb(pid)
                except OSError:
                    continue  # exited between listing and reading
                rss += mem["rss"]
                pss += mem["pss"]
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            self.peak_pss_kb = max(self.peak_pss_kb, pss)
            self.max_processes = max(self.max_processes, len(pids))
            self._stop.wait(self.interval)

    def start(self) -> TreeMemorySampler:
        """Start sampling in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop.set()
        self._thread.join()
