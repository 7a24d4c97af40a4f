"""The embedded Whoosh backend: index generations on local disk, swapped atomically.

Layout of an index directory::

    INDEX_DIR/
      CURRENT -> gen-20251130T021500123456-4242   (symlink: the live index)
      gen-20251130T021500123456-4242/             (Whoosh files + zhsearch.json)
      .lock                                       (flock held by whoever writes)

``build`` writes a complete new generation beside the live one and then
replaces the ``CURRENT`` symlink in one ``rename``; readers see either the old
index or the new one, never a half-written one. The previous generation is
kept so that searchers still holding it can finish. A build killed at any
moment leaves ``tmp-*`` debris that the next build removes. ``add`` and
``delete`` commit in place, through Whoosh's atomic TOC. A writer that finds
``.lock`` taken waits up to ``ZHSEARCH_WRITE_TIMEOUT`` seconds for it.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import json
import math
import os
import shutil
import signal
import stat
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whoosh import index as whoosh_index
from whoosh import sorting
from whoosh.collectors import SortingCollector, TimeLimit, TimeLimitCollector, TopCollector, WrappingCollector
from whoosh.index import LockError
from whoosh.searching import Searcher as WhooshSearcher

from ...analysis import init_jieba
from ...corpus import Article
from ...errors import IndexBusyError, IndexDirError, IndexerError, IndexMissingError, SchemaMismatchError
from ...index_meta import (
    MAX_FACET_VALUES,
    REBUILD_HINT,
    format_refusal,
    index_info,
    new_build_record,
    now,
    touched,
)
from ...schema import (
    BODY,
    CONTENT,
    CONTENT_BI,
    CONTENT_HASH,
    DATE,
    ID_FIELD,
    ORIGIN,
    SCHEMA_VERSION,
    SOURCE,
    TAGS,
    TITLE,
    URL,
)
from ...store import IndexInfo, RawHit, RawPage, SearchRequest
from .query import compile_request_query
from .schema import build_schema
from .scoring import CachedBM25F

CURRENT = "CURRENT"
META_FILE = "zhsearch.json"
LOCK_FILE = ".lock"
GEN_PREFIX = "gen-"
TMP_PREFIX = "tmp-"
KEEP_GENERATIONS = 2
# How long a writer waits for another one to finish before giving up.
WRITE_TIMEOUT_ENV = "ZHSEARCH_WRITE_TIMEOUT"
WRITE_TIMEOUT_S = 30.0
LOCK_POLL_S = 0.1
# Segments stay separate files (compound=False): Whoosh copies every file of a
# compound segment into memory when it opens it, 500 MB per worker for the
# articles index; separate files are read on demand.
# Memory for Whoosh's in-memory posting pool before it spills to disk.
WRITER_LIMIT_MB = 256
FORMAT_NAME = "zhsearch-index"
# BM25F with the usual constants; the title field carries its own boost (schema.TITLE_BOOST).
WEIGHTING = CachedBM25F(B=0.75, K1=1.2)

# Processes a full build uses; defaults to the number of CPUs.
BUILD_PROCS_ENV = "ZHSEARCH_BUILD_PROCS"
# Facet name -> indexed field (a document has several tags, counted under each).
_FACET_FIELDS = {SOURCE: SOURCE, "tags": TAGS}
# Where a searcher keeps each document's facet values once read.
_FACET_CACHE_ATTR = "_zhsearch_facet_values"


def _fsync_tree(path: Path) -> None:
    # Whoosh does not fsync; do it before the swap so a power cut cannot
    # leave CURRENT pointing at files that never reached the disk.
    for child in path.iterdir():
        if child.is_file():
            with open(child, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(path)


def _files_size(path: Path) -> int:
    # An add or delete in another process removes merged segments and old
    # TOCs while we list them: a file gone by the time of stat() counts 0.
    total = 0
    for child in path.iterdir():
        with contextlib.suppress(FileNotFoundError):
            st = child.stat()
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


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


def write_timeout() -> float:
    """Seconds a writer waits for the index lock: ``ZHSEARCH_WRITE_TIMEOUT``, else 30."""
    raw = os.environ.get(WRITE_TIMEOUT_ENV, "").strip()
    if not raw:
        return WRITE_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise IndexerError(f"{WRITE_TIMEOUT_ENV} must be a number of seconds, 0 or more, not {raw!r}")
    return value


# fd -> pid of every index write lock this process holds.
_held_locks: dict[int, int] = {}
_PR_SET_PDEATHSIG = 1
_prctl: Any = None


def _load_prctl() -> None:
    # Resolved before any fork: loading a library in a forked child can deadlock.
    global _prctl
    if _prctl is None and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            _prctl = ctypes.CDLL(None, use_errno=True).prctl


def _after_fork_in_child() -> None:
    # Whoosh's multi-process writer forks sub-writers while a build holds the
    # lock, and a fork shares the flock. Killed with SIGKILL, the build left
    # them orphaned, blocked on their job queue forever and still holding the
    # lock, so every later write failed. So: drop the child's share of the
    # lock, die with the parent, and leave Ctrl-C to the parent (which ends
    # its sub-writers itself).
    if not _held_locks:
        return
    parent = next(iter(_held_locks.values()))
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        for fd in _held_locks:
            # dup2, not close: the inherited file object still owns this fd number.
            os.dup2(devnull, fd)
    finally:
        os.close(devnull)
    _held_locks.clear()
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)  # the parent died before the death signal was armed


os.register_at_fork(after_in_child=_after_fork_in_child)


def _cancel_writer(writer: Any) -> None:
    # MpWriter.cancel() only flags the sub-writer objects in this process; the
    # real sub-writers would wait on their job queue or trip over the deleted
    # temporary files with tracebacks. End them first.
    tasks = list(getattr(writer, "tasks", ()))
    for task in tasks:
        with contextlib.suppress(Exception):
            task.terminate()
    for task in tasks:
        with contextlib.suppress(Exception):
            task.join(timeout=10)
    for name in ("jobqueue", "resultqueue"):
        queue = getattr(writer, name, None)
        if queue is not None:
            # Nobody reads it any more: do not wait at exit to flush it.
            queue.cancel_join_thread()
    writer.cancel()


def _build_writer_options() -> dict[str, Any]:
    procs = int(os.environ.get(BUILD_PROCS_ENV) or os.cpu_count() or 1)
    if procs <= 1:
        return {"limitmb": WRITER_LIMIT_MB, "compound": False}
    # Segmenting and posting-writing are pure Python: one process per core,
    # each writing its own segment (merging them would cost a third pass).
    return {"limitmb": WRITER_LIMIT_MB, "procs": procs, "multisegment": True, "compound": False}


def _fields(article: Article) -> dict[str, Any]:
    fields: dict[str, Any] = {
        ID_FIELD: article.id,
        TITLE: article.title,
        BODY: article.body,
        SOURCE: article.source,
        TAGS: ",".join(article.tags),
        URL: article.url,
        # A blank line keeps the title's last word and the body's first apart.
        CONTENT: f"{article.title}\n\n{article.body}",
        CONTENT_BI: f"{article.title}\n\n{article.body}",
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


class _DeadlineCollector(TimeLimitCollector):  # type: ignore[misc]
    """Stop collecting once a deadline passes, checked on the clock every few matches.

    Whoosh's own version raises from SIGALRM, which can land inside a gc
    callback or C code, or from a timer thread that cannot run until the
    searching thread releases the GIL; reading the clock has neither problem.
    """

    CHECK_EVERY = 32

    def prepare(self, top_searcher: Any, q: Any, context: Any) -> None:
        self.child.prepare(top_searcher, q, context)
        self.timedout = False
        self.deadline = time.perf_counter() + self.timelimit

    def collect_matches(self) -> None:
        child = self.child
        for n, sub_docnum in enumerate(child.matches()):
            if n % self.CHECK_EVERY == 0 and time.perf_counter() > self.deadline:
                self.timedout = True
                raise TimeLimit
            child.collect(sub_docnum)

    def finish(self) -> None:
        self.child.finish()


def _open_searcher(ix: Any) -> WhooshSearcher:
    """A new searcher on the index's latest commit.

    When a commit deletes segment files while Whoosh opens them, Whoosh
    retries with the newer table of contents but drops the readers of the
    failed try without closing their files. Collecting them here closes those
    files at once instead of whenever the garbage collector runs.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        searcher = ix.searcher(weighting=WEIGHTING)
        gc.collect()
    return searcher


class _MatchedDocs(WrappingCollector):  # type: ignore[misc]
    """Records the number of every document collected, for counting facets."""

    def __init__(self, child: Any) -> None:
        super().__init__(child)
        self.docnums: list[int] = []

    def collect(self, sub_docnum: int) -> Any:
        self.docnums.append(self.offset + sub_docnum)
        return self.child.collect(sub_docnum)


def _facet_values(searcher: WhooshSearcher, field: str) -> list[tuple[str, ...]]:
    """Each document's values of ``field``, read from the index once per searcher.

    Whoosh's facets rebuild this from the postings for every query, which
    cost a third of a simple search.
    """
    cache: dict[str, list[tuple[str, ...]]] = searcher.__dict__.setdefault(_FACET_CACHE_ATTR, {})
    values = cache.get(field)
    if values is None:
        reader = searcher.reader()
        values = [()] * reader.doc_count_all()
        # Documents with the same values share one tuple: a large index has few distinct ones.
        shared: dict[tuple[str, ...], tuple[str, ...]] = {}
        for term in reader.lexicon(field):
            text = term.decode("utf-8") if isinstance(term, bytes) else str(term)
            for docnum in reader.postings(field, term).all_ids():
                combined = (*values[docnum], text)
                values[docnum] = shared.setdefault(combined, combined)
        cache[field] = values
    return values


def _facet_counts(searcher: WhooshSearcher, field: str, docnums: list[int]) -> list[tuple[str, int]]:
    values = _facet_values(searcher, field)
    counts = Counter(value for docnum in docnums for value in values[docnum] if value)
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return items[:MAX_FACET_VALUES]


@dataclass(frozen=True)
class WhooshSettings:
    """Where a Whoosh index lives: one directory on local disk."""

    index_dir: Path
    backend: str = field(default="whoosh", init=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], index_dir: str | Path | None) -> WhooshSettings:
        """The directory given (the CLI's ``--index``, the service's ``INDEX_DIR``); Whoosh reads no other setting."""
        if index_dir is None or not str(index_dir).strip():
            raise IndexerError("the Whoosh backend needs an index directory: pass --index or set ZHSEARCH_INDEX_DIR")
        return cls(Path(index_dir))


class WhooshStore:
    """``IndexStore`` on a local Whoosh index (see the module docstring for the layout)."""

    backend = "whoosh"

    def __init__(self, settings: WhooshSettings) -> None:
        self.settings = settings
        self.root = Path(settings.index_dir)
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
            raise SchemaMismatchError(format_refusal(f"the index at {self.root}", found, SCHEMA_VERSION))
        return meta

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        """Hold the index's write lock, waiting up to ``write_timeout()`` for another writer."""
        self._check_root_is_ours()
        timeout = write_timeout()
        self.root.mkdir(parents=True, exist_ok=True)
        _load_prctl()
        with open(self.root / LOCK_FILE, "a+", encoding="utf-8") as f:
            fd = f.fileno()
            deadline = time.monotonic() + timeout
            # flock has no timeout; polling keeps this interruptible and free of signals.
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise IndexBusyError(self._busy_message(f, timeout)) from None
                    time.sleep(min(LOCK_POLL_S, left))
            _held_locks[fd] = os.getpid()
            try:
                # For the message of a writer that times out waiting.
                f.seek(0)
                f.truncate()
                f.write(f"{os.getpid()}\n")
                f.flush()
                yield
            finally:
                _held_locks.pop(fd, None)
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _busy_message(self, lock: Any, timeout: float) -> str:
        lock.seek(0)
        holder = lock.read().strip()
        who = f"process {holder}" if holder.isdigit() else "another zhsearch process"
        return (
            f"the index at {self.root} is busy: {who} has been writing to it for longer than {timeout:g} s "
            f"({WRITE_TIMEOUT_ENV}); run this command again when that write has finished, "
            f"or set {WRITE_TIMEOUT_ENV} to a larger number of seconds to wait longer"
        )

    def _new_generation(self, sources: list[str]) -> tuple[Path, Any]:
        stamp = now().strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{os.getpid()}"
        tmp = self.root / f"{TMP_PREFIX}{name}"
        tmp.mkdir()
        ix = whoosh_index.create_in(str(tmp), build_schema())
        _write_json_atomic(tmp / META_FILE, new_build_record(self.backend, sources, format=FORMAT_NAME))
        return tmp, ix

    def _publish(self, tmp: Path) -> Path:
        previous = self._current()
        gen = self.root / (GEN_PREFIX + tmp.name[len(TMP_PREFIX) :])
        _fsync_tree(tmp)
        os.rename(tmp, gen)
        link_tmp = self.root / (CURRENT + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            link_tmp.unlink()
        os.symlink(gen.name, link_tmp)
        os.replace(link_tmp, self.root / CURRENT)
        _fsync_dir(self.root)
        self._prune(previous)
        return gen

    def _prune(self, previous: Path | None = None) -> None:
        """Remove killed builds' debris and all generations but the live one and ``previous``.

        Without ``previous``, the newest generation older than the live one is kept.
        """
        current = self._current()
        if current is not None:
            gens = sorted(p.name for p in self.root.iterdir() if p.name.startswith(GEN_PREFIX))
            if previous is None:
                previous = next((self.root / g for g in reversed(gens) if g < current.name), None)
            # The previous generation stays: a searcher opened on it may still
            # be reading it. Any other one is either older, or was renamed by a
            # build killed before it swapped CURRENT, so was never served.
            keep = {current.name} | ({previous.name} if previous is not None and KEEP_GENERATIONS > 1 else set())
            for name in gens:
                if name not in keep:
                    shutil.rmtree(self.root / name, ignore_errors=True)
        for tmp in self.root.iterdir():
            if tmp.name.startswith(TMP_PREFIX):
                # Left by a build that was killed; we hold the lock, so it is dead.
                shutil.rmtree(tmp, ignore_errors=True)

    def _touch_meta(self, gen: Path) -> None:
        _write_json_atomic(gen / META_FILE, touched(self._read_meta(gen)))

    # -- writing ----------------------------------------------------------

    def build(self, articles: Iterable[Article], sources: list[str]) -> int:
        """Write a new generation with ``articles`` and make it live in one rename."""
        init_jieba()
        with self._write_lock():
            self._prune()
            tmp, ix = self._new_generation(sources)
            writer = ix.writer(**_build_writer_options())
            count = 0
            try:
                for article in articles:
                    writer.add_document(**_fields(article))
                    count += 1
            except BaseException:
                _cancel_writer(writer)
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
        # We hold the index lock, so only a process that bypasses it (an older
        # zhsearch, a script using Whoosh directly) can hold Whoosh's own lock.
        timeout = write_timeout()
        try:
            return ix.writer(timeout=timeout, limitmb=WRITER_LIMIT_MB, compound=False)
        except LockError:
            ix.close()
            raise IndexBusyError(
                f"the index at {self.root} is busy: a program that does not use zhsearch's lock "
                f"({self.root / LOCK_FILE}) has been writing to {gen.name} for longer than {timeout:g} s; "
                "stop it and run this command again"
            ) from None

    def add(self, articles: Iterable[Article]) -> int:
        """Add or replace documents by id in the live generation (created if missing)."""
        init_jieba()
        with self._write_lock():
            gen = self._current()
            if gen is None:
                tmp, ix = self._new_generation([])
                ix.writer(compound=False).commit()
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
                self._searcher = _open_searcher(ix)
                self._ix, self._gen = ix, gen
                if old_searcher is not None:
                    old_searcher.close()
                if old_ix is not None:
                    old_ix.close()
            elif not self._searcher.up_to_date():
                # Not Searcher.refresh(): it reuses segment readers and so
                # misses deletions committed to an existing segment.
                old_searcher = self._searcher
                self._searcher = _open_searcher(self._ix)
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
            # usequality=False: skipping low-scoring blocks leaves the total
            # uncounted, and Whoosh then runs the whole query a second time to
            # count it, which costs more than the skipping saves.
            collector = TopCollector(limit=limit, usequality=False, replace=0)
        facets = [name for name in request.facets if name in _FACET_FIELDS]
        matched = None
        if facets:
            collector = matched = _MatchedDocs(collector)
        partial = False
        if request.time_limit:
            collector = _DeadlineCollector(collector, timelimit=request.time_limit)
        try:
            searcher.search_with_collector(q, collector)
        except TimeLimit:
            partial = True
        results = collector.results()
        start = (request.page - 1) * request.size
        hits = [RawHit(_article(hit.fields()), float(hit.score or 0.0)) for hit in results[start:limit]]
        docnums = matched.docnums if matched is not None else []
        counts = {name: _facet_counts(searcher, _FACET_FIELDS[name], docnums) for name in facets}
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
        return index_info(
            meta,
            backend=self.backend,
            path=str(self.root),
            documents=searcher.doc_count(),
            size_bytes=_files_size(self._gen),
        )

    def close(self) -> None:
        """Close the searcher and the index files."""
        self._close_reader()

    def __del__(self) -> None:
        # A store dropped without close() (an app torn down with its process,
        # a test's app) still closes its segment files rather than leaking them.
        with contextlib.suppress(Exception):
            self._close_reader()
