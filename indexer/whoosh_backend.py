"""The embedded Whoosh backend: index generations on local disk, swapped atomically.

Layout of an index directory::

    INDEX_DIR/
      CURRENT -> gen-20251130T021500123456-4242   (symlink: the live index)
      gen-20251130T021500123456-4242/             (Whoosh files + zhsearch.json)
      .lock                                       (held by whoever writes)

``build`` writes a complete new generation beside the live one and then
replaces the ``CURRENT`` symlink in one ``rename``; readers see either the old
index or the new one, never a half-written one. The previous generation is
kept so that searchers still holding it can finish.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from whoosh import index as whoosh_index
from whoosh import qparser, query, scoring
from whoosh.index import LockError
from whoosh.searching import Searcher as WhooshSearcher

from . import __version__
from .analysis import STOP_WORDS, init_jieba
from .corpus import Article
from .errors import IndexBusyError, IndexDirError, IndexMissingError, SchemaMismatchError
from .schema import (
    BODY,
    CONTENT_HASH,
    DATE,
    ID_FIELD,
    ORIGIN,
    SCHEMA_VERSION,
    SEARCH_FIELDS,
    SOURCE,
    TAGS,
    TITLE,
    URL,
    build_schema,
)
from .store import IndexInfo, RawHit, RawPage

CURRENT = "CURRENT"
META_FILE = "zhsearch.json"
LOCK_FILE = ".lock"
GEN_PREFIX = "gen-"
TMP_PREFIX = "tmp-"
KEEP_GENERATIONS = 2
WRITE_TIMEOUT_S = 30.0
# Memory for Whoosh's in-memory posting pool before it spills to disk.
WRITER_LIMIT_MB = 256
FORMAT_NAME = "zhsearch-index"
# BM25F with the usual constants; the title field carries its own boost (schema.TITLE_BOOST).
WEIGHTING = scoring.BM25F(B=0.75, K1=1.2)

REBUILD_HINT = "rebuild it with `zhsearch build PATH...`"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _fsync_tree(path: Path) -> None:
    # Whoosh does not fsync; do it before the swap so a power cut cannot
    # leave CURRENT pointing at files that never reached the disk.
    for child in path.iterdir():
        if child.is_file():
            with open(child, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fields(article: Article) -> dict[str, Any]:
    fields: dict[str, Any] = {
        ID_FIELD: article.id,
        TITLE: article.title,
        BODY: article.body,
        SOURCE: article.source,
        TAGS: ",".join(article.tags),
        URL: article.url,
        ORIGIN: article.origin,
        CONTENT_HASH: article.content_hash(),
    }
    if article.date is not None:
        fields[DATE] = article.date
    return fields


def _article(stored: dict[str, Any]) -> Article:
    tags = stored.get(TAGS) or ""
    return Article(
        id=stored[ID_FIELD],
        title=stored.get(TITLE, ""),
        body=stored.get(BODY, ""),
        date=stored.get(DATE),
        source=stored.get(SOURCE, ""),
        tags=tuple(t for t in tags.split(",") if t),
        url=stored.get(URL, ""),
        origin=stored.get(ORIGIN, ""),
    )


class _Parser(qparser.QueryParser):  # type: ignore[misc]
    """Query parser for title+body: words are ANDed; a word jieba splits must stay together.

    When one typed word becomes several tokens (混合专家 → 混合 专家), every
    non-stop token is required and the exact phrase scores extra, so the
    adjacent form ranks first without losing looser matches.
    """

    def multitoken_query(self, spec: str, texts: list[str], fieldname: str, termclass: Any, boost: float) -> Any:
        required = [t for t in texts if t not in STOP_WORDS] or texts
        terms = query.And([termclass(fieldname, t, boost=boost) for t in required])
        phrase = query.Phrase(fieldname, texts, boost=boost * 2)
        return query.Or([phrase, terms])


def make_parser(schema: Any) -> qparser.QueryParser:
    """The query parser zhsearch uses: AND between words, quoted phrases, field:value."""
    parser = _Parser(None, schema, group=qparser.AndGroup)
    parser.add_plugin(qparser.MultifieldPlugin(list(SEARCH_FIELDS)))
    # Wildcards and single quotes are easy to type by accident in Chinese text
    # (？, ＊, ’) and wildcard expansion is costly; neither is part of our syntax.
    parser.remove_plugin_class(qparser.WildcardPlugin)
    parser.remove_plugin_class(qparser.SingleQuotePlugin)
    return parser


def positive_terms(q: query.Query) -> frozenset[str]:
    """The title/body terms a document must or may contain to match (not the NOT ones)."""
    found: set[str] = set()

    def walk(node: query.Query) -> None:
        if isinstance(node, query.Not):
            return
        if isinstance(node, query.AndNot):
            walk(node.a)
            return
        if node.is_leaf():
            for fieldname, text in node.terms(phrases=True):
                if fieldname in SEARCH_FIELDS and isinstance(text, str):
                    found.add(text)
            return
        for child in node.children():
            walk(child)

    walk(q)
    return frozenset(found)


class WhooshStore:
    """``IndexStore`` on a local Whoosh index (see the module docstring for the layout)."""

    backend = "whoosh"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._gen: Path | None = None
        self._ix: Any = None
        self._searcher: WhooshSearcher | None = None
        self._parser: qparser.QueryParser | None = None

    # -- layout -----------------------------------------------------------

    def _current(self) -> Path | None:
        try:
            target = os.readlink(self.root / CURRENT)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IndexDirError(f"{self.root / CURRENT} is not a zhsearch index link: {exc}") from None
        return self.root / target

    def _check_root_is_ours(self) -> None:
        if not self.root.exists():
            return
        if not self.root.is_dir():
            raise IndexDirError(f"{self.root} is a file, not an index directory; choose another --index path")
        foreign = [
            p.name
            for p in self.root.iterdir()
            if p.name not in (CURRENT, LOCK_FILE, CURRENT + ".tmp") and not p.name.startswith((GEN_PREFIX, TMP_PREFIX))
        ]
        if foreign:
            raise IndexDirError(
                f"{self.root} is not a zhsearch index directory (it holds {', '.join(sorted(foreign)[:3])}); "
                "choose an empty or new directory with --index or ZHSEARCH_INDEX_DIR"
            )

    def _read_meta(self, gen: Path) -> dict[str, Any]:
        try:
            with open(gen / META_FILE, encoding="utf-8") as f:
                meta: dict[str, Any] = json.load(f)
        except FileNotFoundError:
            raise SchemaMismatchError(f"the index at {self.root} has no {META_FILE}; {REBUILD_HINT}") from None
        except (OSError, ValueError) as exc:
            raise SchemaMismatchError(f"cannot read {gen / META_FILE} ({exc}); {REBUILD_HINT}") from None
        found = meta.get("schema_version")
        if found != SCHEMA_VERSION:
            raise SchemaMismatchError(
                f"the index at {self.root} uses format {found}, but this zhsearch ({__version__}) "
                f"reads format {SCHEMA_VERSION}; {REBUILD_HINT}"
            )
        return meta

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        self._check_root_is_ours()
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_FILE, "a+", encoding="utf-8") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise IndexBusyError(
                    f"another zhsearch process is writing to {self.root}; wait for it to finish and try again"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _new_generation(self, sources: list[str]) -> tuple[Path, Any]:
        stamp = _now().strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{os.getpid()}"
        tmp = self.root / f"{TMP_PREFIX}{name}"
        tmp.mkdir()
        ix = whoosh_index.create_in(str(tmp), build_schema())
        now = _now().isoformat(timespec="seconds")
        _write_json_atomic(
            tmp / META_FILE,
            {
                "format": FORMAT_NAME,
                "schema_version": SCHEMA_VERSION,
                "backend": self.backend,
                "zhsearch_version": __version__,
                "built_at": now,
                "updated_at": now,
                "sources": sources,
            },
        )
        return tmp, ix

    def _publish(self, tmp: Path) -> Path:
        gen = self.root / (GEN_PREFIX + tmp.name[len(TMP_PREFIX) :])
        _fsync_tree(tmp)
        os.rename(tmp, gen)
        link_tmp = self.root / (CURRENT + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            link_tmp.unlink()
        os.symlink(gen.name, link_tmp)
        os.replace(link_tmp, self.root / CURRENT)
        _fsync_dir(self.root)
        self._prune(keep=gen)
        return gen

    def _prune(self, keep: Path) -> None:
        gens = sorted(p for p in self.root.iterdir() if p.name.startswith(GEN_PREFIX))
        # The newest few stay: a searcher opened on the previous generation
        # may still be reading it.
        for old in gens[:-KEEP_GENERATIONS]:
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)
        for tmp in self.root.iterdir():
            if tmp.name.startswith(TMP_PREFIX):
                # Left by a build that was killed; we hold the lock, so it is dead.
                shutil.rmtree(tmp, ignore_errors=True)

    def _touch_meta(self, gen: Path) -> None:
        meta = self._read_meta(gen)
        meta["updated_at"] = _now().isoformat(timespec="seconds")
        _write_json_atomic(gen / META_FILE, meta)

    # -- writing ----------------------------------------------------------

    def build(self, articles: Iterable[Article], sources: list[str]) -> int:
        """Write a new generation with ``articles`` and make it live in one rename."""
        init_jieba()
        with self._write_lock():
            self._prune(keep=self._current() or self.root)
            tmp, ix = self._new_generation(sources)
            writer = ix.writer(limitmb=WRITER_LIMIT_MB)
            count = 0
            try:
                for article in articles:
                    writer.add_document(**_fields(article))
                    count += 1
            except BaseException:
                writer.cancel()
                ix.close()
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            writer.commit()
            ix.close()
            self._publish(tmp)
        self._close_reader()
        return count

    def _open_writer(self, gen: Path) -> Any:
        ix = whoosh_index.open_dir(str(gen))
        try:
            return ix.writer(timeout=WRITE_TIMEOUT_S, limitmb=WRITER_LIMIT_MB)
        except LockError:
            raise IndexBusyError(f"the index at {self.root} is locked by another writer; try again") from None

    def add(self, articles: Iterable[Article]) -> int:
        """Add or replace documents by id in the live generation (created if missing)."""
        init_jieba()
        with self._write_lock():
            gen = self._current()
            if gen is None:
                tmp, ix = self._new_generation([])
                ix.writer().commit()
                ix.close()
                gen = self._publish(tmp)
            self._read_meta(gen)
            writer = self._open_writer(gen)
            count = 0
            try:
                for article in articles:
                    writer.update_document(**_fields(article))
                    count += 1
            except BaseException:
                writer.cancel()
                raise
            writer.commit()
            self._touch_meta(gen)
        return count

    def delete(self, ids: Iterable[str]) -> list[str]:
        """Delete documents by id; return those that existed."""
        with self._write_lock():
            gen = self._require_current()
            self._read_meta(gen)
            writer = self._open_writer(gen)
            deleted = []
            try:
                for doc_id in ids:
                    if writer.delete_by_term(ID_FIELD, doc_id):
                        deleted.append(doc_id)
            except BaseException:
                writer.cancel()
                raise
            writer.commit()
            self._touch_meta(gen)
        return deleted

    # -- reading ----------------------------------------------------------

    def _require_current(self) -> Path:
        self._check_root_is_ours()
        gen = self._current()
        if gen is None or not gen.is_dir():
            raise IndexMissingError(f"no index at {self.root}; build one with `zhsearch build PATH...`")
        return gen

    def _close_reader(self) -> None:
        with self._lock:
            if self._searcher is not None:
                self._searcher.close()
            if self._ix is not None:
                self._ix.close()
            self._searcher = self._ix = self._gen = None

    def _get_searcher(self) -> WhooshSearcher:
        """The open searcher, reopened when the index was rebuilt or refreshed when it changed."""
        gen = self._require_current()
        with self._lock:
            if gen != self._gen or self._searcher is None:
                self._read_meta(gen)
                old_searcher, old_ix = self._searcher, self._ix
                ix = whoosh_index.open_dir(str(gen))
                self._searcher = ix.searcher(weighting=WEIGHTING)
                self._ix, self._gen = ix, gen
                self._parser = make_parser(ix.schema)
                if old_searcher is not None:
                    old_searcher.close()
                if old_ix is not None:
                    old_ix.close()
            elif not self._searcher.up_to_date():
                # Not Searcher.refresh(): it reuses segment readers and so
                # misses deletions committed to an existing segment.
                old_searcher = self._searcher
                self._searcher = self._ix.searcher(weighting=WEIGHTING)
                old_searcher.close()
            return self._searcher

    def parse(self, text: str) -> query.Query:
        """Parse a query string; syntax the parser cannot handle is searched as plain words."""
        self._get_searcher()
        assert self._parser is not None
        try:
            return self._parser.parse(text)
        except Exception:
            # Whoosh's parser is forgiving, but a query must never fail on syntax.
            plain = " ".join(text.replace('"', " ").replace(":", " ").split())
            return self._parser.parse(plain)

    def search(self, query_text: str, page: int, size: int) -> RawPage:
        """Run a query and return page ``page`` (1-based) of ``size`` hits."""
        init_jieba()
        searcher = self._get_searcher()
        q = self.parse(query_text)
        if q is query.NullQuery:
            return RawPage(total=0, hits=[], terms=frozenset())
        results = searcher.search(q, limit=page * size)
        total = len(results)
        start = (page - 1) * size
        hits = [RawHit(_article(hit.fields()), float(hit.score or 0.0)) for hit in results[start : page * size]]
        return RawPage(total=total, hits=hits, terms=positive_terms(q))

    def get(self, doc_id: str) -> Article | None:
        """The stored document with this id, or None."""
        stored = self._get_searcher().document(**{ID_FIELD: doc_id})
        return _article(stored) if stored else None

    def manifest(self) -> dict[str, tuple[str, str]]:
        """``{id: (origin, content_hash)}`` for every document, for incremental sync."""
        return {
            fields[ID_FIELD]: (fields.get(ORIGIN, ""), fields.get(CONTENT_HASH, ""))
            for fields in self._get_searcher().all_stored_fields()
        }

    def info(self) -> IndexInfo:
        """Document count, size on disk, format version and times of the live index."""
        searcher = self._get_searcher()
        assert self._gen is not None
        meta = self._read_meta(self._gen)
        size = sum(p.stat().st_size for p in self._gen.iterdir() if p.is_file())

        def when(key: str) -> datetime | None:
            value = meta.get(key)
            return datetime.fromisoformat(value) if value else None

        return IndexInfo(
            path=str(self.root),
            backend=self.backend,
            documents=searcher.doc_count(),
            size_bytes=size,
            schema_version=str(meta.get("schema_version")),
            built_at=when("built_at"),
            updated_at=when("updated_at"),
            sources=list(meta.get("sources") or []),
        )

    def close(self) -> None:
        """Close the searcher and the index files."""
        self._close_reader()
