"""The systems under test, each behind the same small interface, and the worker process that runs one.

Every call into zhsearch is in the ``Zhsearch`` class: the lead engineer is
changing the internal API, and this is the one place to adapt.

Run as a script, this module is the worker that ``bench.py`` starts for each
build (so the build's peak RSS can be read from its own rusage) and for each
system's queries (so the systems share no process state such as jieba's
dictionary, and ``bench.py`` can interleave them query by query)::

    python bench/bench_systems.py build SYSTEM --index DIR PATH...
    python bench/bench_systems.py query SYSTEM --index DIR   # JSON lines on stdin/stdout
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from harness import serve_command

BENCH_DIR = Path(__file__).resolve().parent
SYSTEMS = ("zhsearch", "naive", "tantivy", "fts5")
PEERS = ("tantivy", "fts5")
TITLE_BOOST = 2.0
WARM_QUERY = "Linux"


class System(Protocol):
    """What the benchmark needs from a search system."""

    name: str

    def build(self, paths: list[str], index_dir: Path) -> int:
        """Index the JSON Lines files at ``paths`` into ``index_dir``; return the number of documents."""
        ...

    def open(self, index_dir: Path) -> None:
        """Open the index for searching."""
        ...

    def search_ids(self, q: str, k: int) -> list[str]:
        """Ids of the top ``k`` hits, without highlighting."""
        ...

    def search_highlight(self, q: str, k: int) -> int:
        """Search and highlight the top ``k`` hits as the system shows them; return how many."""
        ...

    def close(self) -> None:
        """Release the index."""
        ...


class Zhsearch:
    """zhsearch as shipped: the only code in the benchmark that calls into zhsearch."""

    name = "zhsearch"
    BACKENDS = ("whoosh",)
    # The packages the benchmark copies at the start, so one run measures one version of the code.
    PACKAGES = ("indexer", "service")

    def __init__(self, backend: str = "whoosh") -> None:
        if backend not in self.BACKENDS:
            raise ValueError(f"the benchmark's zhsearch adapter supports backends {self.BACKENDS}, not {backend!r}")
        self.backend = backend
        self._searcher: Any = None

    def build(self, paths: list[str], index_dir: Path) -> int:
        """Build with ``indexer.build_index`` (what ``zhsearch build`` runs)."""
        from indexer import build_index, store_settings

        return int(build_index(paths, store_settings(index_dir, self.backend)).indexed)

    def open(self, index_dir: Path) -> None:
        """Open one ``Searcher``, as each web worker does."""
        from indexer import Searcher, store_settings

        self._searcher = Searcher(store_settings(index_dir, self.backend))

    def search_ids(self, q: str, k: int) -> list[str]:
        """What ``Searcher.search`` does up to the store's raw page (parse, synonyms, rank), without highlighting."""
        from indexer.plan import drop_stop_chunks, expand_synonyms
        from indexer.query import has_positive_text, parse_query
        from indexer.store import SearchRequest

        tree = drop_stop_chunks(parse_query(" ".join(q.split())))
        expanded = expand_synonyms(tree, self._searcher.synonyms)
        if expanded is None:
            return []
        sort = "relevance" if has_positive_text(tree) else "date"
        page = self._searcher.store.search(SearchRequest(query=expanded, page=1, size=k, sort=sort))
        return [hit.doc.id for hit in page.hits]

    def search_highlight(self, q: str, k: int) -> int:
        """``Searcher.search``: what /api/search runs (highlighted title and snippet per hit)."""
        return len(self._searcher.search(q, page=1, size=k).hits)

    def close(self) -> None:
        """Close the searcher."""
        if self._searcher is not None:
            self._searcher.close()

    @staticmethod
    def serve_command(index_dir: Path, port: int, workers: int) -> list[str]:
        """The production server command line (gunicorn under ``zhsearch serve``)."""
        return serve_command(index_dir, port, workers)

    @staticmethod
    def search_path(q: str) -> str:
        """The HTTP path of a search for ``q``, top 10 hits."""
        from urllib.parse import quote

        return "/api/search?q=" + quote(q, safe="") + "&size=10"

    @staticmethod
    def health_path() -> str:
        """The path that answers 200 once the server can search."""
        return "/healthz"

    @staticmethod
    def version() -> str:
        """The installed zhsearch version."""
        return metadata.version("zhsearch")


class Naive:
    """The tutorial jieba + Whoosh recipe in bench/naive_baseline.py."""

    name = "naive"

    def __init__(self) -> None:
        self._index: Any = None

    def build(self, paths: list[str], index_dir: Path) -> int:
        """``NaiveIndex.build`` over every record of every file."""
        from naive_baseline import NaiveIndex, read_jsonl

        return int(NaiveIndex.build(itertools.chain.from_iterable(read_jsonl(p) for p in paths), index_dir))

    def open(self, index_dir: Path) -> None:
        """Open the index and its searcher."""
        from naive_baseline import NaiveIndex

        self._index = NaiveIndex(index_dir)

    def search_ids(self, q: str, k: int) -> list[str]:
        """``NaiveIndex.search``."""
        return list(self._index.search(q, k))

    def search_highlight(self, q: str, k: int) -> int:
        """``NaiveIndex.search_and_highlight`` (Whoosh's highlighter on the stored body)."""
        return len(self._index.search_and_highlight(q, k))

    def close(self) -> None:
        """Close the searcher and index."""
        if self._index is not None:
            self._index.close()


# --- peers: references only, text pre-segmented by jieba ------------------------------------------------------

_CLAUSE_RE = re.compile(r'(?:\b(title|body|source|tags?|date):)?(?:"([^"]*)"|(\S+))')
# Metadata filters are zhsearch features the peers' translations leave out (the peers index title and body only).
_DROPPED_FIELDS = ("source", "tag", "tags", "date")
_SPLIT_RE = re.compile(r"[\W_]+")


def query_clauses(q: str, segment: Callable[[str], Iterable[str]]) -> list[tuple[str | None, bool, list[str]]]:
    """(field, is_phrase, terms) per clause of a zhsearch query, terms segmented and split as the peers index them."""
    clauses: list[tuple[str | None, bool, list[str]]] = []
    for m in _CLAUSE_RE.finditer(q):
        field, phrase, word = m.group(1), m.group(2), m.group(3)
        text = phrase if phrase is not None else word
        if phrase is None and word in ("AND", "OR", "NOT"):
            continue  # the peers' translations are AND-only; no benchmark query uses operators
        if field in _DROPPED_FIELDS:
            continue
        terms = [t for w in segment(text) for t in _SPLIT_RE.split(w.lower()) if t]
        if terms:
            clauses.append((field, phrase is not None, terms))
    return clauses


def tantivy_query(clauses: list[tuple[str | None, bool, list[str]]]) -> str:
    """Tantivy query syntax: every term (or phrase) required."""
    parts: list[str] = []
    for field, phrase, terms in clauses:
        prefix = f"{field}:" if field else ""
        if phrase and len(terms) > 1:
            parts.append(f'+{prefix}"{" ".join(terms)}"')
        else:
            parts.extend(f"+{prefix}{t}" for t in terms)
    return " ".join(parts)


def fts5_query(clauses: list[tuple[str | None, bool, list[str]]]) -> str:
    """SQLite FTS5 MATCH syntax: every term (or phrase) required."""
    parts: list[str] = []
    for field, phrase, terms in clauses:
        prefix = f"{field} : " if field else ""
        if phrase:
            parts.append(f'{prefix}"{" ".join(terms)}"')
        else:
            parts.extend(f'{prefix}"{t}"' for t in terms)
    return " AND ".join(parts)


def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def _segmented_records(paths: list[str]) -> Iterator[tuple[str, str, str]]:
    """(id, title, body) with title and body in jieba search mode, words joined by spaces."""
    from naive_baseline import read_jsonl

    jieba = _jieba()
    for path in paths:
        for r in read_jsonl(path):
            title = " ".join(jieba.cut_for_search(r.get("title") or ""))
            body = " ".join(jieba.cut_for_search(r.get("body") or ""))
            yield str(r["id"]), title, body


class Tantivy:
    """tantivy (Rust, via its Python package) over jieba-segmented text; snippets show the segmented text."""

    name = "tantivy"

    def __init__(self) -> None:
        self._index: Any = None
        self._searcher: Any = None
        self._jieba: Any = None

    @staticmethod
    def _schema() -> Any:
        import tantivy

        builder = tantivy.SchemaBuilder()
        builder.add_text_field("id", stored=True, tokenizer_name="raw")
        builder.add_text_field("title", stored=True)
        builder.add_text_field("body", stored=True)
        return builder.build()

    def build(self, paths: list[str], index_dir: Path) -> int:
        """Segment with jieba in Python, index with tantivy's default tokenizer (splits on spaces, lowercases)."""
        import tantivy

        index_dir.mkdir(parents=True, exist_ok=True)
        index = tantivy.Index(self._schema(), path=str(index_dir))
        writer = index.writer(256_000_000)
        count = 0
        for doc_id, title, body in _segmented_records(paths):
            writer.add_document(tantivy.Document(id=doc_id, title=title, body=body))
            count += 1
        writer.commit()
        writer.wait_merging_threads()
        return count

    def open(self, index_dir: Path) -> None:
        """Open the index and a searcher; load jieba for the queries."""
        import tantivy

        self._index = tantivy.Index.open(str(index_dir))
        self._searcher = self._index.searcher()
        self._jieba = _jieba()

    def _query(self, q: str) -> Any:
        text = tantivy_query(query_clauses(q, self._jieba.cut))
        if not text:
            return None
        return self._index.parse_query(text, ["title", "body"], field_boosts={"title": TITLE_BOOST})

    def search_ids(self, q: str, k: int) -> list[str]:
        """Top ``k`` ids by BM25."""
        query = self._query(q)
        if query is None:
            return []
        hits = self._searcher.search(query, k).hits
        return [self._searcher.doc(addr)["id"][0] for _score, addr in hits]

    def search_highlight(self, q: str, k: int) -> int:
        """Top ``k`` hits with a body snippet from tantivy's SnippetGenerator."""
        import tantivy

        query = self._query(q)
        if query is None:
            return 0
        hits = self._searcher.search(query, k).hits
        generator = tantivy.SnippetGenerator.create(self._searcher, query, self._index.schema, "body")
        snippets = [generator.snippet_from_doc(self._searcher.doc(addr)).to_html() for _score, addr in hits]
        return len(snippets)

    def close(self) -> None:
        """Nothing to release explicitly."""
        self._searcher = self._index = None


class Fts5:
    """SQLite FTS5 (stdlib sqlite3, unicode61 tokenizer) over jieba-segmented text."""

    name = "fts5"
    _ORDER = f"ORDER BY bm25(docs, 0.0, {TITLE_BOOST}, 1.0) LIMIT ?"

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None
        self._jieba: Any = None

    def build(self, paths: list[str], index_dir: Path) -> int:
        """One table, one transaction, then FTS5's 'optimize' merge."""
        index_dir.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(index_dir / "fts.db")
        try:
            db.execute("CREATE VIRTUAL TABLE docs USING fts5(id UNINDEXED, title, body, tokenize='unicode61')")
            with db:
                cur = db.executemany("INSERT INTO docs(id, title, body) VALUES (?, ?, ?)", _segmented_records(paths))
                count = cur.rowcount
            with db:
                db.execute("INSERT INTO docs(docs) VALUES ('optimize')")
        finally:
            db.close()
        return int(count)

    def open(self, index_dir: Path) -> None:
        """Open the database read-only; load jieba for the queries."""
        self._db = sqlite3.connect(f"file:{index_dir / 'fts.db'}?mode=ro", uri=True)
        self._jieba = _jieba()

    def search_ids(self, q: str, k: int) -> list[str]:
        """Top ``k`` ids by FTS5's bm25()."""
        match = fts5_query(query_clauses(q, self._jieba.cut))
        if not match or self._db is None:
            return []
        rows = self._db.execute(f"SELECT id FROM docs WHERE docs MATCH ? {self._ORDER}", (match, k)).fetchall()
        return [row[0] for row in rows]

    def search_highlight(self, q: str, k: int) -> int:
        """Top ``k`` hits with highlight() on the title and snippet() on the body."""
        match = fts5_query(query_clauses(q, self._jieba.cut))
        if not match or self._db is None:
            return 0
        sql = (
            "SELECT id, highlight(docs, 1, '<mark>', '</mark>'), snippet(docs, 2, '<mark>', '</mark>', '…', 32) "
            f"FROM docs WHERE docs MATCH ? {self._ORDER}"
        )
        return len(self._db.execute(sql, (match, k)).fetchall())

    def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            self._db.close()


def make_system(name: str, backend: str = "whoosh") -> System:
    """The adapter for a system name."""
    if name == "zhsearch":
        return Zhsearch(backend)
    if name == "naive":
        return Naive()
    if name == "tantivy":
        return Tantivy()
    if name == "fts5":
        return Fts5()
    raise ValueError(f"unknown system {name!r}; choose one of {SYSTEMS}")


# --- worker -----------------------------------------------------------------------------------------------------


def _memory_kb() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def _reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def serve_queries(system: System, index_dir: Path) -> None:
    """Answer timing requests on stdin until 'exit': {"op": "search"|"highlight", "q", "k"} -> {"ms", "hits"}."""
    system.open(index_dir)
    # A first query, so lazily loaded parts (the baseline loads jieba here) count as start-up, not as a query.
    system.search_highlight(WARM_QUERY, 10)
    _reply({"ready": True})
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "exit":
            break
        if op == "mem":
            _reply(_memory_kb())
            continue
        call = system.search_ids if op == "search" else system.search_highlight
        try:
            started = time.perf_counter()
            result = call(req["q"], int(req["k"]))
            elapsed = (time.perf_counter() - started) * 1000
        except Exception as exc:  # a query that raises is an error to report, not a crash
            _reply({"error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        hits = result if isinstance(result, int) else len(result)
        _reply({"ms": elapsed, "hits": hits})
    system.close()


def main(argv: list[str] | None = None) -> int:
    """Worker entry point: ``build`` or ``query`` one system."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("action", choices=("build", "query"))
    parser.add_argument("system", choices=SYSTEMS)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--backend", default="whoosh")
    parser.add_argument("paths", nargs="*")
    args = parser.parse_args(argv)
    system = make_system(args.system, args.backend)
    if args.action == "build":
        count = system.build(list(args.paths), args.index)
        _reply({"documents": count})
    else:
        serve_queries(system, args.index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
