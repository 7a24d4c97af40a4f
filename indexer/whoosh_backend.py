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
from whoosh import scoring, sorting
from whoosh.collectors import FacetCollector, SortingCollector, TimeLimit, TimeLimitCollector, TopCollector
from whoosh.index import LockError
from whoosh.searching import Searcher as WhooshSearcher

from . import __version__
from .analysis import current_user_dict, init_jieba
from .corpus import Article
from .errors import IndexBusyError, IndexDirError, IndexMissingError, SchemaMismatchError
from .schema import (
    BODY,
    CONTENT_HASH,
    DATE,
    ID_FIELD,
    ORIGIN,
    SCHEMA_VERSION,
    SOURCE,
    TAGS,
    TITLE,
    URL,
    build_schema,
)
from .store import IndexInfo, RawHit, RawPage, SearchRequest
from .whoosh_query import compile_request_query

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
USE_BLOCK_QUALITY = True

REBUILD_HINT = "rebuild it with `zhsearch build PATH...`"
MAX_FACET_VALUES = 20
# Processes a full build uses; defaults to the number of CPUs.
BUILD_PROCS_ENV = "ZHSEARCH_BUILD_PROCS"
_FACETS = {
    SOURCE: sorting.FieldFacet(SOURCE),
    # A document has several tags, so it is counted under each.
    "tags": sorting.FieldFacet(TAGS, allow_overlap=True),
}


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


def _build_writer_options() -> dict[str, Any]:
    procs = int(os.environ.get(BUILD_PROCS_ENV) or os.cpu_count() or 1)
    if procs <= 1:
        return {"limitmb": WRITER_LIMIT_MB}
    # Segmenting and posting-writing are pure Python: one process per core,
    # each writing its own segment (merging them would cost a third pass).
    return {"limitmb": WRITER_LIMIT_MB, "procs": procs, "multisegment": True}


def _user_dict_meta() -> dict[str, str] | None:
    loaded = current_user_dict()
    return {"path": loaded.path, "sha256": loaded.sha256} if loaded else None


def user_dict_warnings(recorded: dict[str, str] | None) -> list[str]:
    """Say so when the running user dictionary differs from the one the index was built with."""
    running = _user_dict_meta()
    if (recorded or {}).get("sha256") == (running or {}).get("sha256"):
        return []
    built = recorded["path"] if recorded else "no user dictionary"
    now = running["path"] if running else "no user dictionary"
    return [
        f"the index was built with {built} but this process uses {now}; "
        "segmentation differs, so rebuild the index with the current dictionary"
    ]


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


def _top_counts(groups: dict[Any, int]) -> list[tuple[str, int]]:
    items = [(str(k), int(v)) for k, v in groups.items() if k not in (None, "")]
    items.sort(key=lambda kv: (-kv[1], kv[0]))
    return items[:MAX_FACET_VALUES]


class WhooshStore:
    """``IndexStore`` on a local Whoosh index (see the module docstring for the layout)."""

    backend = "whoosh"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._gen: Path | None = None
        self._ix: Any = None
        self._searcher: WhooshSearcher | None = None

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
                "user_dict": _user_dict_meta(),
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
            writer = ix.writer(**_build_writer_options())
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

    def search(self, request: SearchRequest) -> RawPage:
        """Run a parsed query; return the requested page, facet counts, and whether time ran out."""
        init_jieba()
        searcher = self._get_searcher()
        q = compile_request_query(request.query)
        limit = request.page * request.size
        collector: Any
        if request.sort == "date":
            collector = SortingCollector(sorting.FieldFacet(DATE, reverse=True), limit=limit)
        else:
            # replace=0: Whoosh's matcher replacement drops matching documents
            # from unions with phrases and from AND NOT (seen in Whoosh 2.7.4
            # and whoosh3 alike; tests/test_whoosh_topk.py keeps it honest).
            collector = TopCollector(limit=limit, usequality=USE_BLOCK_QUALITY, replace=0)
        facets = {name: _FACETS[name] for name in request.facets if name in _FACETS}
        if facets:
            collector = FacetCollector(collector, facets, maptype=sorting.Count)
        partial = False
        if request.time_limit:
            # A timer flag, not SIGALRM: a signal can land inside a gc callback
            # or a C call, where the exception is swallowed or unsafe.
            collector = TimeLimitCollector(collector, timelimit=request.time_limit, use_alarm=False)
        try:
            searcher.search_with_collector(q, collector)
        except TimeLimit:
            partial = True
        results = collector.results()
        start = (request.page - 1) * request.size
        hits = [RawHit(_article(hit.fields()), float(hit.score or 0.0)) for hit in results[start:limit]]
        counts = {name: _top_counts(results.groups(name)) for name in facets}
        return RawPage(total=len(results), hits=hits, facets=counts, partial=partial)

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

    def title_terms(self) -> list[tuple[str, int]]:
        """Every analysed title term with its document frequency (for suggestions)."""
        reader = self._get_searcher().reader()
        return [
            (term.decode("utf-8") if isinstance(term, bytes) else str(term), reader.doc_frequency(TITLE, term))
            for term in reader.lexicon(TITLE)
        ]

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
            user_dict=meta.get("user_dict"),
            warnings=user_dict_warnings(meta.get("user_dict")),
        )

    def close(self) -> None:
        """Close the searcher and the index files."""
        self._close_reader()
