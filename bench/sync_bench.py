"""Incremental ``zhsearch sync`` against a full rebuild, on real articles, one file per article.

Splits ``../shared/data/articles.jsonl`` into one Markdown file (YAML front
matter + body) per article in a temporary directory (never in the
repository), builds an index, changes 1% of the files, then times

1. ``zhsearch sync`` of the changed corpus (it must report exactly the changed files as updated),
2. a second ``sync`` (it must change nothing), and
3. ``zhsearch build`` of the same corpus from scratch,

and checks that the synced index and the rebuilt one hold the same
documents with the same content hashes. Every command runs as a separate
``python -m indexer`` process, as an operator would run it. Prints a Markdown
report on stdout. ``make bench-sync`` runs it; it takes several minutes.

    python bench/sync_bench.py [--data PATH] [--limit N] [--change 0.01] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "articles.jsonl"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_COUNTS = re.compile(r"added (\d+), updated (\d+), deleted (\d+), unchanged (\d+), skipped (\d+)")


def split_corpus(data: Path, out: Path, limit: int | None) -> list[Path]:
    """Write one Markdown file per article of a JSON Lines file; return the files in order."""
    out.mkdir(parents=True)
    files = []
    with open(data, encoding="utf-8") as f:
        for n, line in enumerate(f):
            if limit is not None and n >= limit:
                break
            row = json.loads(line)
            meta = {k: row[k] for k in ("id", "title", "date", "source", "tags", "url") if row.get(k) not in (None, "")}
            path = out / f"{_SAFE_NAME.sub('_', str(row['id']))}.md"
            front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False)
            path.write_text(f"---\n{front}---\n{row['body']}\n", encoding="utf-8")
            files.append(path)
    return files


def change_files(files: list[Path], share: float, seed: int = 42) -> list[Path]:
    """Append a sentence to the body of ``share`` of the files (at least one), chosen reproducibly."""
    chosen = random.Random(seed).sample(files, max(1, round(len(files) * share)))
    for i, path in enumerate(chosen):
        text = path.read_text(encoding="utf-8")
        path.write_text(text.rstrip("\n") + f"\n\n本文于基准测试中修订（第{i}处）。\n", encoding="utf-8")
    return chosen


def zhsearch(*args: str) -> tuple[float, str]:
    """Run ``python -m indexer ARGS``; return the wall time and stderr. Fails loudly on a non-zero exit."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "indexer", *args], cwd=ROOT, capture_output=True, text=True, encoding="utf-8"
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"zhsearch {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return seconds, proc.stderr


def manifest(index: Path) -> dict[str, tuple[str, str]]:
    """The index's {id: (origin, content hash)}."""
    sys.path.insert(0, str(ROOT))
    from indexer import open_store

    store = open_store(index)
    try:
        return store.manifest()
    finally:
        store.close()


def counts(stderr: str) -> tuple[int, ...]:
    """(added, updated, deleted, unchanged, skipped) from a sync summary."""
    match = _COUNTS.search(stderr)
    if match is None:
        raise SystemExit(f"no sync summary in:\n{stderr}")
    return tuple(int(g) for g in match.groups())


def main() -> None:
    """Run the benchmark and print the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="JSON Lines articles to split")
    parser.add_argument("--limit", type=int, help="use only the first N articles (for a quick run)")
    parser.add_argument("--change", type=float, default=0.01, help="share of files to change (default 0.01)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="zhsearch-sync-bench-"))
    try:
        corpus, synced, rebuilt = tmp / "corpus", tmp / "index-synced", tmp / "index-rebuilt"
        started = time.perf_counter()
        files = split_corpus(args.data, corpus, args.limit)
        split_s = time.perf_counter() - started
        print(f"split {len(files)} articles into {corpus} in {split_s:.1f} s", file=sys.stderr)

        first_build_s, _ = zhsearch("build", "-q", "--index", str(synced), str(corpus))
        print(f"initial build: {first_build_s:.1f} s", file=sys.stderr)
        changed = change_files(files, args.change)

        sync_s, sync_err = zhsearch("sync", "--index", str(synced), str(corpus))
        sync_counts = counts(sync_err)
        print(f"sync: {sync_s:.1f} s {sync_counts}", file=sys.stderr)
        noop_s, noop_err = zhsearch("sync", "--index", str(synced), str(corpus))
        noop_counts = counts(noop_err)
        rebuild_s, _ = zhsearch("build", "-q", "--index", str(rebuilt), str(corpus))
        print(f"full rebuild: {rebuild_s:.1f} s", file=sys.stderr)

        n = len(files)
        expected = (0, len(changed), 0, n - len(changed), 0)
        same = manifest(synced) == manifest(rebuilt)
        problems = []
        if sync_counts != expected:
            problems.append(f"sync reported {sync_counts}, expected {expected}")
        if noop_counts != (0, 0, 0, n, 0):
            problems.append(f"second sync reported {noop_counts}, expected no change")
        if not same:
            problems.append("the synced index and the rebuilt one differ")

        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        procs = os.environ.get("ZHSEARCH_BUILD_PROCS") or str(os.cpu_count())
        print(f"## zhsearch sync vs. full rebuild ({when})\n")
        print(
            f"{n:,} articles from `{args.data.name}`, one Markdown file each; {len(changed)} files "
            f"({len(changed) / n:.1%}) changed. {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"builds with {procs} writer processes. Wall time of each command as a separate process, "
            "one run each.\n"
        )
        print("| step | seconds | result |")
        print("|---|---:|---|")
        print(f"| initial `build` | {first_build_s:.1f} | {n:,} documents |")
        a, u, d, k, s = sync_counts
        print(f"| `sync` after the change | {sync_s:.1f} | added {a}, updated {u}, deleted {d}, unchanged {k} |")
        print(f"| second `sync` (no change) | {noop_s:.1f} | nothing changed |")
        print(f"| full rebuild (`build`) | {rebuild_s:.1f} | {n:,} documents |")
        print()
        ratio = rebuild_s / sync_s
        print(f"**sync is {ratio:.1f}x faster than a full rebuild** ({sync_s:.1f} s against {rebuild_s:.1f} s).")
        print(f"Synced index identical to the rebuilt one (ids and content hashes): {'yes' if same else 'NO'}.")
        if problems:
            raise SystemExit("FAILED: " + "; ".join(problems))
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
