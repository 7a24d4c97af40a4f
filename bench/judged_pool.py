"""Pool the top hits of several systems for the judged keyword set, and cut grading batches.

Pooling runs every query of ``queries.tsv`` through each system and adds its
top ``--depth`` ids to ``pool.tsv`` (``qid<TAB>doc_id<TAB>systems``). An
existing pool is merged, never shrunk: its rows stay, new pairs are added, and
a row's systems become the union of the old ones and those that returned it
now. Rows are sorted by query, then doc id, so the file does not show ranks::

    .venv/bin/python bench/judged_pool.py --index /tmp/articles-index
        [--systems jieba-bm25,bigram-bm25,zhsearch] [--depth 20] [--articles PATH]
        [--queries bench/judged/queries.tsv] [--pool bench/judged/pool.tsv]

``--unjudged`` lists the pooled pairs that ``qrels.tsv`` does not grade yet
(TSV on stdout); with ``--batches K --out-dir DIR`` it writes them as K
grading files ``batch-01.jsonl``... instead, one JSON object a line
(``qid, query, intent, doc_id, title, text``). All documents of a query go to
one batch, the batches are balanced by row count, and each query's documents
are shuffled with ``--seed`` so graders cannot tell rank or system::

    .venv/bin/python bench/judged_pool.py --unjudged --batches 4 --out-dir /tmp/grading [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import bm25_baselines
from bm25_baselines import BASELINES, CACHE_ROOT, DEFAULT_ARTICLES, log, read_articles
from judged_metrics import JUDGED_DIR, JudgedQuery, load_qrels, load_queries

SYSTEMS = (*BASELINES, "zhsearch")
POOL_HEADER = ["qid", "doc_id", "systems"]
DEPTH = 20
# What a grader sees of each document: the start of the body, then a few windows where the query's words occur.
LEAD_CHARS = 1500
WINDOW_CHARS = 250
MAX_WINDOWS = 3

Pool = dict[tuple[str, str], set[str]]


# ---------------------------------------------------------------- the pool file


def load_pool(path: str | Path) -> Pool:
    """``{(qid, doc_id): systems}`` of a pool file; empty when it does not exist yet."""
    path = Path(path)
    pool: Pool = {}
    if not path.exists():
        return pool
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split("\t")
        if header != POOL_HEADER:
            raise ValueError(f"{path}: expected header {'<TAB>'.join(POOL_HEADER)!r}")
        for lineno, line in enumerate(f, start=2):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 3 or not fields[0] or not fields[1]:
                raise ValueError(f"{path}:{lineno}: expected qid<TAB>doc_id<TAB>systems")
            pool.setdefault((fields[0], fields[1]), set()).update(s for s in fields[2].split(",") if s)
    return pool


def merge_pool(pool: Pool, qid: str, system: str, doc_ids: Iterable[str]) -> int:
    """Add ``system``'s hits for ``qid`` to ``pool``; return how many pairs are new."""
    new = 0
    for doc_id in doc_ids:
        systems = pool.setdefault((qid, doc_id), set())
        new += not systems
        systems.add(system)
    return new


def sorted_pairs(pairs: Iterable[tuple[str, str]], queries: Sequence[JudgedQuery]) -> list[tuple[str, str]]:
    """Pairs by query file order (qids not in the file last), then doc id."""
    order = {q.qid: i for i, q in enumerate(queries)}
    return sorted(pairs, key=lambda p: (order.get(p[0], len(order)), p[0], p[1]))


def write_pool(path: str | Path, pool: Pool, queries: Sequence[JudgedQuery]) -> None:
    """Write ``pool`` atomically, sorted by query then doc id, systems comma-joined and sorted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\t".join(POOL_HEADER) + "\n")
        for qid, doc_id in sorted_pairs(pool, queries):
            f.write(f"{qid}\t{doc_id}\t{','.join(sorted(pool[qid, doc_id]))}\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------- running the systems


def zhsearch_hits(index: Path, queries: Sequence[JudgedQuery], depth: int) -> dict[str, list[str]]:
    """``{qid: top ids}`` from zhsearch's ``Searcher``, run in this process; a rejected query gets none."""
    from indexer import IndexerError, QueryError, Searcher

    hits: dict[str, list[str]] = {}
    try:
        searcher = Searcher(index)
        try:
            for q in queries:
                try:
                    page = searcher.search(q.query, page=1, size=depth)
                except QueryError as exc:
                    log(f"  zhsearch: {q.qid} {q.query!r} rejected: {exc}")
                    hits[q.qid] = []
                    continue
                hits[q.qid] = [hit.id for hit in page.hits]
        finally:
            searcher.close()
    except IndexerError as exc:  # a missing or out-of-date index: its message says how to fix it
        raise SystemExit(f"zhsearch: {exc}") from None
    return hits


def run_systems(
    queries: Sequence[JudgedQuery],
    systems: Sequence[str],
    depth: int,
    index: Path | None,
    articles: Path,
    cache_root: Path,
) -> dict[str, dict[str, list[str]]]:
    """``{system: {qid: its top ``depth`` ids}}`` for every query."""
    results: dict[str, dict[str, list[str]]] = {}
    # zhsearch first: an unusable index then stops the run before minutes of BM25 building.
    for system in sorted(systems, key=lambda s: s != "zhsearch"):
        started = time.perf_counter()
        if system == "zhsearch":
            if index is None:
                raise SystemExit("zhsearch needs --index DIR (an index of the articles)")
            results[system] = zhsearch_hits(index, queries, depth)
        else:
            baseline = bm25_baselines.open_baseline(system, articles, cache_root / system)
            results[system] = {q.qid: baseline.search(q.query, depth) for q in queries}
        log(f"{system}: {len(queries)} queries in {time.perf_counter() - started:.1f} s")
    return results


# ---------------------------------------------------------------- grading batches


def unjudged_pairs(pool: Pool, qrels: Mapping[str, Mapping[str, int]]) -> list[tuple[str, str]]:
    """The pooled (qid, doc_id) pairs that have no grade yet."""
    return [(qid, doc_id) for qid, doc_id in pool if doc_id not in qrels.get(qid, {})]


_EDGE_PUNCT_RE = re.compile(r"^[\W_]+|[\W_]+$")


def query_words(query: str) -> list[str]:
    """The words whose occurrences a grader should see: the query's whitespace-separated parts and its
    jieba words, folded (width, case, traditional), two characters or longer."""
    from indexer.analysis import normalize

    words = [_EDGE_PUNCT_RE.sub("", part) for part in query.split()] + bm25_baselines.jieba_tokens(query)
    folded = (normalize(w.strip()) for w in words)
    return [w for w in dict.fromkeys(folded) if len(w) >= 2 and re.search(r"[^\W_]", w)]


def _inside_ascii_word(text: str, start: int, end: int) -> bool:
    """True when text[start:end] is glued to an ASCII letter or digit on either side."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return (before.isascii() and before.isalnum()) or (after.isascii() and after.isalnum())


def _occurrences(body: str, words: Sequence[str], start: int) -> list[tuple[int, int, str]]:
    """(start, end, word) of every occurrence at or after ``start``, however it is written (經濟 for 经济)."""
    from indexer.analysis import folded_pattern

    found = []
    for word in words:
        for m in folded_pattern(word).finditer(body, start):
            s, e = m.span()
            # An ASCII word matches whole words only: "go" must not light up "google".
            if not (word.isascii() and _inside_ascii_word(body, s, e)):
                found.append((s, e, word))
    return sorted(found)


def grading_text(title: str, body: str, words: Sequence[str]) -> str:
    """The title, the first ``LEAD_CHARS`` of the body, and up to ``MAX_WINDOWS`` windows of
    ``WINDOW_CHARS`` around later occurrences of ``words`` (each word's first occurrence first)."""
    parts = [title, body[:LEAD_CHARS]]
    if len(body) <= LEAD_CHARS:
        return "\n\n".join(parts)
    occurrences = _occurrences(body, words, LEAD_CHARS)
    # Distinct words first, so three windows show three words when they can; then the remaining hits in order.
    firsts: dict[str, tuple[int, int, str]] = {}
    for occ in occurrences:
        firsts.setdefault(occ[2], occ)
    windows: list[tuple[int, int]] = []
    for s, e, _ in [*firsts.values(), *occurrences]:
        if len(windows) == MAX_WINDOWS:
            break
        lo = max(LEAD_CHARS, min((s + e) // 2 - WINDOW_CHARS // 2, len(body) - WINDOW_CHARS))
        hi = min(len(body), lo + WINDOW_CHARS)
        if all(hi <= w_lo or lo >= w_hi for w_lo, w_hi in windows):
            windows.append((lo, hi))
    parts[1] += " […]"
    parts.extend(f"[…] {body[lo:hi]}{' […]' if hi < len(body) else ''}" for lo, hi in sorted(windows))
    return "\n\n".join(parts)


def plan_batches(sizes: Mapping[str, int], k: int) -> list[list[str]]:
    """Split qids into at most ``k`` batches of near-equal total rows, each query whole (largest first, into
    the lightest batch). Each batch keeps the qids in the order ``sizes`` gives them."""
    batches: list[list[str]] = [[] for _ in range(min(k, len(sizes)))]
    rows = [0] * len(batches)
    order = {qid: i for i, qid in enumerate(sizes)}
    for qid in sorted(sizes, key=lambda q: (-sizes[q], order[q])):
        lightest = rows.index(min(rows))
        batches[lightest].append(qid)
        rows[lightest] += sizes[qid]
    return [sorted(batch, key=order.__getitem__) for batch in batches]


def shuffled(doc_ids: Iterable[str], qid: str, seed: int) -> list[str]:
    """``doc_ids`` in an order that depends only on the set of ids, the qid and the seed."""
    ids = sorted(doc_ids)
    random.Random(f"{seed}\t{qid}").shuffle(ids)
    return ids


def write_batches(
    pairs: Sequence[tuple[str, str]],
    queries: Sequence[JudgedQuery],
    articles: Path,
    out_dir: Path,
    k: int,
    seed: int,
) -> list[Path]:
    """Write ``pairs`` as grading batch files in ``out_dir``; return their paths."""
    by_qid: dict[str, list[str]] = {}
    for qid, doc_id in sorted_pairs(pairs, queries):
        by_qid.setdefault(qid, []).append(doc_id)
    query_of = {q.qid: q for q in queries}
    missing_queries = [qid for qid in by_qid if qid not in query_of]
    if missing_queries:
        log(f"skipping pooled qids no longer in the queries file: {', '.join(missing_queries)}")
        for qid in missing_queries:
            del by_qid[qid]
    wanted = {doc_id for ids in by_qid.values() for doc_id in ids}
    docs = {str(r["id"]): r for r in read_articles(articles) if str(r["id"]) in wanted}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, batch in enumerate(plan_batches({qid: len(ids) for qid, ids in by_qid.items()}, k), start=1):
        path = out_dir / f"batch-{n:02d}.jsonl"
        rows = 0
        with open(path, "w", encoding="utf-8") as f:
            for qid in batch:
                q = query_of[qid]
                words = query_words(q.query)
                for doc_id in shuffled(by_qid[qid], qid, seed):
                    doc = docs.get(doc_id)
                    if doc is None:
                        log(f"  {qid} {doc_id}: not in {articles}; skipped")
                        continue
                    title, body = str(doc.get("title") or ""), str(doc.get("body") or "")
                    row: dict[str, Any] = {
                        "qid": qid,
                        "query": q.query,
                        "intent": q.intent,
                        "doc_id": doc_id,
                        "title": title,
                        "text": grading_text(title, body, words),
                    }
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    rows += 1
        log(f"{path}: {len(batch)} queries, {rows} documents")
        paths.append(path)
    if len(paths) < k:
        log(f"only {len(paths)} batches: there are not more queries with unjudged documents")
    stale = sorted(set(out_dir.glob("batch-*.jsonl")) - set(paths))
    if stale:
        log(f"note: {out_dir} also holds batch files from an earlier run: {', '.join(p.name for p in stale)}")
    return paths


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """Pool the systems' hits, or (``--unjudged``) list or batch the pairs still to grade."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=Path, default=JUDGED_DIR / "queries.tsv")
    parser.add_argument("--pool", type=Path, default=JUDGED_DIR / "pool.tsv")
    parser.add_argument("--qrels", type=Path, default=JUDGED_DIR / "qrels.tsv")
    parser.add_argument("--articles", type=Path, default=DEFAULT_ARTICLES, help="JSON Lines articles file")
    parser.add_argument("--index", type=Path, help="zhsearch index of the articles (for the zhsearch system)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, from {', '.join(SYSTEMS)}")
    parser.add_argument("--depth", type=int, default=DEPTH, help="how many top hits of each system to pool")
    parser.add_argument("--cache-root", type=Path, default=CACHE_ROOT, help="BM25 indexes are cached in ROOT/<name>")
    parser.add_argument("--unjudged", action="store_true", help="list the pooled pairs not graded in --qrels")
    parser.add_argument("--batches", type=int, help="with --unjudged: write this many grading batch files")
    parser.add_argument("--out-dir", type=Path, help="with --batches: where the batch files go")
    parser.add_argument("--seed", type=int, default=0, help="with --batches: seed of the per-query shuffle")
    args = parser.parse_args(argv)

    try:
        queries = load_queries(args.queries)
        pool = load_pool(args.pool)
        qrels = load_qrels(args.qrels) if args.unjudged and args.qrels.exists() else {}
    except (OSError, ValueError) as exc:  # a missing or malformed file: one line, no traceback
        raise SystemExit(f"error: {exc}") from None
    if args.unjudged:
        pairs = sorted_pairs(unjudged_pairs(pool, qrels), queries)
        log(f"{len(pairs)} of {len(pool)} pooled pairs are not graded in {args.qrels}")
        if args.batches is None:
            print("\t".join(POOL_HEADER))
            for qid, doc_id in pairs:
                print(f"{qid}\t{doc_id}\t{','.join(sorted(pool[qid, doc_id]))}")
            return 0
        if args.batches < 1 or args.out_dir is None:
            parser.error("--batches needs a count of 1 or more and --out-dir")
        write_batches(pairs, queries, args.articles, args.out_dir, args.batches, args.seed)
        return 0
    if args.batches is not None:
        parser.error("--batches goes with --unjudged")

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown or not systems:
        parser.error(f"unknown systems {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    if not 1 <= args.depth <= 100:
        parser.error("--depth must be between 1 and 100")
    before = len(pool)
    for system, hits in run_systems(queries, systems, args.depth, args.index, args.articles, args.cache_root).items():
        new = sum(merge_pool(pool, qid, system, ids) for qid, ids in hits.items())
        log(f"{system}: {sum(map(len, hits.values()))} hits, {new} new pairs")
    write_pool(args.pool, pool, queries)
    log(f"{args.pool}: {len(pool)} pairs ({len(pool) - before} new) for {len({qid for qid, _ in pool})} queries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
