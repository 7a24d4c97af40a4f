"""Two plain BM25 baselines for the judged keyword set: ``jieba-bm25`` and ``bigram-bm25``.

Each is Okapi BM25 (k1=1.2, b=0.75, Lucene's idf) over the title and body of
every article, computed by the ``bm25s`` library, with OR semantics: a document
matching any query token is a hit, ranked by the sum of its tokens' scores.
The two differ only in how text becomes tokens (documents and queries alike):

- ``jieba-bm25``: jieba's precise-mode words (``lcut``), lowercased; tokens
  that are whitespace or have no letter or digit (punctuation) are dropped.
- ``bigram-bm25``: overlapping character bigrams of each run of CJK
  ideographs (a lone ideograph is its own token), plus each run of ASCII
  letters and digits, lowercased, as one token.

Both fold full-width forms to half-width (NFKC) and traditional characters to
simplified (OpenCC ``t2s``) first. These are simple baselines: no phrase, no
regional vocabulary (OpenCC's ``t2s`` only, not ``tw2sp``, so 網路 stays 网路 and
does not become 网络), no stop words, no title boost, no identifier
splitting, and a query's repeated tokens count once.

Building tokenizes 28 M characters (jieba takes a few minutes on two cores),
so ``open_baseline`` caches each index on disk, keyed on the articles file's
path, size and mtime; a second run loads it in seconds::

    .venv/bin/python bench/bm25_baselines.py --query "逻辑卷 扩容" --system bigram-bm25 -k 10
        [--articles ../shared/data/articles.jsonl] [--cache-root /tmp/zhsearch-bm25-cache] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import re
import shutil
import sys
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import bm25s
import jieba
import numpy as np
import opencc

ROOT = Path(__file__).resolve().parent.parent
# The same data folder as eval.py (ZHSEARCH_BENCH_DATA overrides it).
DATA_ENV = "ZHSEARCH_BENCH_DATA"
DEFAULT_ARTICLES = Path(os.environ.get(DATA_ENV) or ROOT.parent / "shared" / "data") / "articles.jsonl"
CACHE_ROOT = Path("/tmp/zhsearch-bm25-cache")
BASELINES = ("jieba-bm25", "bigram-bm25")
K1 = 1.2
B = 0.75
# Bump when the tokens or the cache layout change: older cached indexes are then rebuilt.
CACHE_VERSION = 1

_CJK = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_BIGRAM_RUN_RE = re.compile(rf"[{_CJK}]+|[a-z0-9]+")
_ALNUM_RE = re.compile(r"[^\W_]")

# A private jieba instance: zhsearch may load a user dictionary into jieba's global one in the same process.
_jieba = jieba.Tokenizer()
jieba.setLogLevel(logging.WARNING)
_t2s: Any = None


def fold(text: str) -> str:
    """Full-width to half-width (NFKC), then traditional to simplified (OpenCC t2s)."""
    global _t2s
    if _t2s is None:
        _t2s = opencc.OpenCC("t2s")
    return str(_t2s.convert(unicodedata.normalize("NFKC", text)))


def jieba_tokens(text: str) -> list[str]:
    """``jieba-bm25`` tokens: precise-mode words of the folded text, lowercased, punctuation dropped."""
    return [w for w in (word.lower() for word in _jieba.lcut(fold(text))) if _ALNUM_RE.search(w)]


def bigram_tokens(text: str) -> list[str]:
    """``bigram-bm25`` tokens: CJK character bigrams (a lone character alone) and whole ASCII letter/digit runs."""
    tokens: list[str] = []
    for run in _BIGRAM_RUN_RE.findall(fold(text).lower()):
        if len(run) == 1 or run[0].isascii():
            tokens.append(run)
        else:
            tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
    return tokens


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {"jieba-bm25": jieba_tokens, "bigram-bm25": bigram_tokens}


def read_articles(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of a JSON Lines articles file (``id``, ``title``, ``body``), in file order."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            if "id" not in record:
                raise ValueError(f"{path}:{lineno}: record has no id")
            yield record


def _document_text(record: dict[str, Any]) -> str:
    return f"{record.get('title') or ''}\n{record.get('body') or ''}"


def _tokenize_job(job: tuple[str, str]) -> list[str]:
    """Worker-process entry point: (baseline name, text) -> tokens."""
    name, text = job
    return TOKENIZERS[name](text)


def log(message: str) -> None:
    """Progress for the operator, on stderr so stdout stays the results."""
    print(message, file=sys.stderr, flush=True)


class BM25Baseline:
    """One baseline's index: ``BM25Baseline.build(name, records)`` or ``.load(name, dir)``, then ``.search``."""

    def __init__(self, name: str, retriever: bm25s.BM25, doc_ids: list[str], titles: list[str]) -> None:
        if name not in TOKENIZERS:
            raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
        self.name = name
        self.tokenize = TOKENIZERS[name]
        self.retriever = retriever
        self.doc_ids = doc_ids
        self.titles = dict(zip(doc_ids, titles, strict=True))

    @classmethod
    def build(
        cls, name: str, records: Iterable[dict[str, Any]], workers: int | None = None, progress: bool = True
    ) -> BM25Baseline:
        """Tokenize and index ``records`` (dicts with ``id``, ``title``, ``body``) on ``workers`` processes."""
        if name not in TOKENIZERS:
            raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
        records = list(records)
        doc_ids = [str(r["id"]) for r in records]
        titles = [str(r.get("title") or "") for r in records]
        jobs = ((name, _document_text(r)) for r in records)
        workers = workers or os.cpu_count() or 1
        vocab: dict[str, int] = {}
        corpus_ids: list[list[int]] = []
        started = last = time.perf_counter()

        def add(tokens: list[str]) -> None:
            nonlocal last
            # Map to ids at once: 20 M token strings would cost gigabytes, their ids a fraction of that.
            corpus_ids.append([vocab.setdefault(t, len(vocab)) for t in tokens])
            if progress and time.perf_counter() - last >= 15:
                last = time.perf_counter()
                log(f"  {name}: tokenized {len(corpus_ids)}/{len(records)} articles")

        if workers > 1 and len(records) > 100:
            _jieba.initialize()  # once, before the fork, so the workers share the dictionary
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                for tokens in pool.imap(_tokenize_job, jobs, chunksize=16):
                    add(tokens)
        else:
            for job in jobs:
                add(_tokenize_job(job))
        if progress:
            log(f"  {name}: tokenized {len(records)} articles in {time.perf_counter() - started:.1f} s")
        retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
        retriever.index((corpus_ids, vocab), show_progress=False)
        return cls(name, retriever, doc_ids, titles)

    def save(self, directory: str | Path) -> None:
        """Write the index to ``directory`` (bm25s's files plus ``docs.json``)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.retriever.save(str(directory), show_progress=False)
        with open(directory / "docs.json", "w", encoding="utf-8") as f:
            json.dump({"ids": self.doc_ids, "titles": [self.titles[i] for i in self.doc_ids]}, f, ensure_ascii=False)

    @classmethod
    def load(cls, name: str, directory: str | Path) -> BM25Baseline:
        """Open an index that ``save`` wrote."""
        directory = Path(directory)
        retriever = bm25s.BM25.load(str(directory), show_progress=False)
        with open(directory / "docs.json", encoding="utf-8") as f:
            docs = json.load(f)
        return cls(name, retriever, docs["ids"], docs["titles"])

    def search_scored(self, query: str, k: int = 10) -> list[tuple[str, float]]:
        """(id, score) of the best ``k`` articles matching any query token, best first (ties in file order)."""
        token_ids = self.retriever.get_tokens_ids(list(dict.fromkeys(self.tokenize(query))))
        if not token_ids or k < 1:
            return []
        scores = self.retriever.get_scores_from_ids(token_ids)
        matched = np.flatnonzero(scores > 0)
        if len(matched) > k:
            matched = matched[np.argpartition(-scores[matched], k - 1)[:k]]
            # argpartition cuts ties arbitrarily: widen to every article tied with the k-th, then cut in order.
            matched = np.flatnonzero(scores >= scores[matched].min())
        order = np.lexsort((matched, -scores[matched]))[:k]
        return [(self.doc_ids[i], float(scores[i])) for i in matched[order]]

    def search(self, query: str, k: int = 10) -> list[str]:
        """Ids of the best ``k`` articles for ``query``, best first."""
        return [doc_id for doc_id, _ in self.search_scored(query, k)]


def cache_key(articles: str | Path) -> dict[str, Any]:
    """What a cached index depends on: the articles file (path, size, mtime) and the scoring set-up."""
    st = os.stat(articles)
    return {
        "articles": str(Path(articles).resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "cache_version": CACHE_VERSION,
        "k1": K1,
        "b": B,
        "bm25s": bm25s.__version__,
    }


def open_baseline(
    name: str,
    articles: str | Path = DEFAULT_ARTICLES,
    cache_dir: str | Path | None = None,
    rebuild: bool = False,
    workers: int | None = None,
) -> BM25Baseline:
    """The ``name`` baseline over ``articles``: loaded from ``cache_dir`` when it is current, else built there.

    ``cache_dir`` defaults to ``/tmp/zhsearch-bm25-cache/<name>``. A rebuild is
    written beside it and swapped in whole, so an interrupted build never
    leaves a half-written cache behind.
    """
    if name not in TOKENIZERS:
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    cache = Path(cache_dir) if cache_dir is not None else CACHE_ROOT / name
    key = cache_key(articles)
    meta = cache / "meta.json"
    if not rebuild and meta.is_file():
        with open(meta, encoding="utf-8") as f:
            if json.load(f) == key:
                started = time.perf_counter()
                baseline = BM25Baseline.load(name, cache)
                log(f"{name}: loaded cached index from {cache} in {time.perf_counter() - started:.1f} s")
                return baseline
    log(f"{name}: building the index of {articles} (cached in {cache})")
    started = time.perf_counter()
    baseline = BM25Baseline.build(name, read_articles(articles), workers=workers)
    fresh = cache.with_name(f"{cache.name}.tmp-{os.getpid()}")
    shutil.rmtree(fresh, ignore_errors=True)
    baseline.save(fresh)
    with open(fresh / "meta.json", "w", encoding="utf-8") as f:
        json.dump(key, f)
    stale = cache.with_name(f"{cache.name}.old-{os.getpid()}")
    if cache.exists():
        cache.rename(stale)
    fresh.rename(cache)
    shutil.rmtree(stale, ignore_errors=True)
    log(f"{name}: built {len(baseline.doc_ids)} articles in {time.perf_counter() - started:.1f} s")
    return baseline


def main(argv: list[str] | None = None) -> int:
    """Search one baseline from the command line: rank, id, score and title per line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=Path, default=DEFAULT_ARTICLES, help="JSON Lines articles file")
    parser.add_argument("--query", required=True)
    parser.add_argument("--system", choices=BASELINES, default="jieba-bm25")
    parser.add_argument("-k", type=int, default=10, help="how many hits to print")
    parser.add_argument("--cache-root", type=Path, default=CACHE_ROOT, help="the index is cached in ROOT/<system>")
    parser.add_argument("--rebuild", action="store_true", help="rebuild even when the cache is current")
    parser.add_argument("--workers", type=int, default=None, help="tokenizer processes (default: one per core)")
    args = parser.parse_args(argv)
    baseline = open_baseline(args.system, args.articles, args.cache_root / args.system, args.rebuild, args.workers)
    log(f"tokens: {' '.join(baseline.tokenize(args.query))}")
    for rank, (doc_id, score) in enumerate(baseline.search_scored(args.query, args.k), start=1):
        print(f"{rank}\t{doc_id}\t{score:.3f}\t{baseline.titles[doc_id]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
