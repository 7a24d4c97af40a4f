"""Process helpers shared by the benchmarks and the tests: free ports and a live `zhsearch serve`.

    with zhsearch_server(index_dir, tmp / "server.log", workers=2) as server:
        urllib.request.urlopen(server.url + "/api/search?q=内核")

The server runs in its own process group (gunicorn's master and its workers),
is polled on ``/healthz`` until it answers 200, and on exit the whole group is
stopped by the master's PID: nothing else on the machine is touched.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
# The console script of the interpreter running this code, so children use the same installation.
ZHSEARCH = Path(sys.executable).parent / "zhsearch"
HEALTH_PATH = "/healthz"
START_TIMEOUT_S = 120.0
STOP_GRACE_S = 20.0
# Fine enough that a measured start-up time is not rounded up by the polling.
POLL_INTERVAL_S = 0.01
LOG_TAIL_LINES = 40


class ServerError(RuntimeError):
    """The server exited, or did not answer its health check in time."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listened on a moment ago."""
    sockets: list[socket.socket] = []
    try:
        # All bound at once, so the kernel cannot hand out the same port twice.
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind((HOST, 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    """One free TCP port on 127.0.0.1."""
    return free_ports(1)[0]


def serve_command(index: Path | None, port: int, workers: int = 1) -> list[str]:
    """The production server's command line; without ``index`` the backend comes from the environment."""
    cmd = [str(ZHSEARCH), "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)]
    return cmd if index is None else [*cmd, "--index", str(index)]


@dataclass
class Server:
    """A started server: its process (leader of its own process group), port and log file."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash."""
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        """The master's PID (also the process group's id)."""
        return self.proc.pid


def start_server(
    cmd: Sequence[str], port: int, log_path: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Server:
    """Start ``cmd`` in a new process group, output appended to ``log_path``; ``env`` is added to os.environ."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(cmd),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own group, so stop_server reaches gunicorn's workers too.
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    return Server(proc, port, log_path)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ("" when unreadable), for error messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            status: int = resp.status
            return status == 200
    except (OSError, http.client.HTTPException):
        # Refused, reset or half-answered while gunicorn starts; an HTTPError (not 200) is an OSError too.
        return False


def wait_healthy(server: Server, path: str = HEALTH_PATH, timeout: float = START_TIMEOUT_S) -> float:
    """Poll ``path`` until it answers 200; return the seconds waited. ServerError if it exits or times out."""
    started = time.perf_counter()
    url = server.url + path
    while not _answers_200(url):
        if server.proc.poll() is not None:
            raise ServerError(
                f"the server exited with status {server.proc.returncode} before {path} answered; "
                f"{server.log_path}:\n{log_tail(server.log_path)}"
            )
        if time.perf_counter() - started > timeout:
            raise ServerError(f"{url} did not answer 200 within {timeout:.0f} s:\n{log_tail(server.log_path)}")
        time.sleep(POLL_INTERVAL_S)
    return time.perf_counter() - started


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass  # the group is gone already


def stop_server(server: Server, grace: float = STOP_GRACE_S) -> None:
    """Stop the server's whole process group: TERM, then KILL if the master outlives ``grace`` seconds."""
    # Only while the master runs: once it is reaped, its PID (and so the group id) may belong to someone else.
    if server.proc.poll() is not None:
        return
    _signal_group(server.proc, signal.SIGTERM)
    try:
        server.proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(server.proc, signal.SIGKILL)
        server.proc.wait(timeout=grace)


@contextmanager
def running_server(
    cmd: Sequence[str],
    port: int,
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    health_path: str = HEALTH_PATH,
    timeout: float = START_TIMEOUT_S,
) -> Iterator[Server]:
    """Start ``cmd`` (which must listen on ``port``), yield it once healthy, and always stop its process group."""
    server = start_server(cmd, port, log_path, env, cwd)
    try:
        wait_healthy(server, health_path, timeout)
        yield server
    finally:
        stop_server(server)


@contextmanager
def zhsearch_server(
    index: Path | None,
    log_path: Path,
    *,
    workers: int = 1,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT_S,
) -> Iterator[Server]:
    """`zhsearch serve` over ``index`` on a free port (or ``port``), healthy while the block runs."""
    port = free_port() if port is None else port
    with running_server(serve_command(index, port, workers), port, log_path, env=env, timeout=timeout) as server:
        yield server
