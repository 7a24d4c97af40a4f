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
import errno
import fcntl
import functools
import gc
import heapq
import io
import json
import math
import os
import queue
import shutil
import signal
import stat
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import compress
from pathlib import Path
from typing import Any, Concatenate, NoReturn, ParamSpec, TypeVar

from whoosh import index as whoosh_index
from whoosh import query as wq
from whoosh import sorting
from whoosh.collectors import SortingCollector, TimeLimit, TimeLimitCollector, TopCollector, WrappingCollector
from whoosh.index import LockError
from whoosh.multiproc import MpWriter, SubWriterTask
from whoosh.searching import Searcher as WhooshSearcher

from ...analysis import init_jieba
from ...corpus import Article, printable, utc_instant
from ...errors import (
    IndexBusyError,
    IndexDamagedError,
    IndexDirError,
    IndexerError,
    IndexMissingError,
    IndexWriteError,
    SchemaMismatchError,
)
from ...index_meta import (
    MAX_FACET_VALUES,
    REBUILD_HINT,
    format_refusal,
    index_info,
    new_build_record,
    now,
    touched,
)
from ...plan import FILL_BELOW
from ...schema import (
    BODY,
    CONTENT,
    CONTENT_BI,
    CONTENT_HASH,
    DATE,
    DATE_WRITTEN,
    ID_FIELD,
    ORIGIN,
    SCHEMA_VERSION,
    SOURCE,
    TAGS,
    TITLE,
    URL,
)
from ...store import IndexInfo, RawHit, RawPage, SearchRequest
from .query import compile_request_query, filter_docs, find_units, units_and_filters
from .schema import build_schema
from .scoring import CachedBM25F
from .units import MatchUnits
from .writer import FastSegmentWriter

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


def _error_report(exc: BaseException) -> tuple[int | None, str]:
    """What a worker process sends its parent about its failure: (errno, message)."""
    if isinstance(exc, OSError):
        return exc.errno, exc.strerror or str(exc)
    return None, f"{type(exc).__name__}: {exc}"


class _SubWriter(SubWriterTask):  # type: ignore[misc]
    """A build's worker process: writes its share of the documents into a segment of its own.

    Whoosh's ``SubWriterTask.run`` with ``FastSegmentWriter`` in place of
    Whoosh's writer, and an error sent to the parent instead of printed as a
    traceback.
    """

    def __init__(self, *args: Any, errors: Any) -> None:
        super().__init__(*args)
        self.errors = errors

    def run(self) -> None:
        try:
            self._write_jobs()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self.errors.put(_error_report(exc))
            raise SystemExit(1) from None

    def _write_jobs(self) -> None:
        ix = self.storage.open_index(self.indexname)
        # _lk=False: the parent holds the index's lock.
        writer = self.writer = FastSegmentWriter(ix, _lk=False, **self.kwargs)
        while self.running:
            job = self.jobqueue.get()
            if job is None:
                break
            self._process_file(*job)
        if not self.running:
            writer.cancel()
            return
        segment = writer._finalize_segment()
        self.resultqueue.put((None, writer.pool.fieldnames, segment), timeout=5)


class _GuardedJobs:
    """The workers' job queue, whose ``put`` gives up when a worker has died instead of waiting forever."""

    def __init__(self, jobs: Any, writer: _BuildWriter) -> None:
        self._jobs = jobs
        self._writer = writer

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        while True:
            try:
                self._jobs.put(item, timeout=0.5)
                return
            except queue.Full:
                self._writer.check_workers()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._jobs, name)


class _BuildWriter(MpWriter):  # type: ignore[misc]
    """Whoosh's multi-process writer, made to fail loudly.

    Whoosh's own waits forever on a full job queue once its workers have died
    (a full disk kills them all), and at commit silently leaves out the
    segment of a worker that died, so a build "succeeded" without those
    documents. Here a dead worker raises its error (``OSError`` for a full
    disk) in the parent.
    """

    def __init__(self, ix: Any, **kwargs: Any) -> None:
        super().__init__(ix, **kwargs)
        if not self.multisegment:
            # Each worker finishes a segment of its own (``_SubWriter``); there are no runs to merge.
            raise ValueError("the build writer needs multisegment=True")
        self.errors = self._mpctx.SimpleQueue()
        self._jobs: Any = self.jobqueue  # type: ignore[has-type]
        self.jobqueue = _GuardedJobs(self._jobs, self)

    def _new_task(self) -> Any:
        args = (self.storage, self.indexname, self._jobs, self.resultqueue, self.subargs, self.multisegment)
        task = _SubWriter(*args, errors=self.errors)
        self.tasks.append(task)
        task.start()
        return task

    def check_workers(self) -> None:
        """Raise if a worker process failed: its own ``OSError`` (a full disk), else ``IndexWriteError``."""
        failed = [task for task in self.tasks if task.exitcode not in (None, 0)]
        if not failed:
            return
        report: tuple[int | None, str] | None = None
        with contextlib.suppress(Exception):
            if not self.errors.empty():
                report = self.errors.get()
        if report is None:
            code = failed[0].exitcode
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            raise IndexWriteError(f"a worker process of the build {how}; the index was not changed")
        number, message = report
        if number is not None:
            raise OSError(number, message)
        raise IndexWriteError(f"a worker process of the build failed: {message}; the index was not changed")


def _build_writer(ix: Any) -> Any:
    procs = int(os.environ.get(BUILD_PROCS_ENV) or os.cpu_count() or 1)
    if procs <= 1:
        return FastSegmentWriter(ix, limitmb=WRITER_LIMIT_MB, compound=False)
    # Segmenting and posting-writing are pure Python: one process per core,
    # each writing its own segment (merging them would cost a third pass).
    return _BuildWriter(ix, limitmb=WRITER_LIMIT_MB, procs=procs, multisegment=True, compound=False)


def _check_written(writer: Any, ix: Any, count: int) -> None:
    """After a commit: every worker finished and every document reached the index, or raise."""
    check = getattr(writer, "check_workers", None)
    if check is not None:
        check()
    written = ix.doc_count_all()
    if written != count:
        raise IndexWriteError(f"the index writer stored {written} of {count} documents; the index was not changed")


def _index_one(add: Callable[..., Any], article: Article) -> None:
    """Hand one article to the writer; a failure to analyse it names the record and stops the write cleanly."""
    try:
        add(**_fields(article))
    except (OSError, IndexerError):
        raise
    except Exception as exc:
        raise IndexWriteError(
            f"cannot index {printable(article.shown_origin)}: {type(exc).__name__}: {printable(str(exc))}; "
            "the index was not changed"
        ) from None


# Whose objects ``_close_files`` looks inside: Whoosh's, and this backend's writer classes.
_WRITER_MODULES = ("whoosh", __name__.rpartition(".")[0] + ".")


def _close_files(writer: Any) -> None:
    """Close every file a failed Whoosh writer still holds, found through its attributes.

    A writer whose commit failed half-way (a full disk) keeps its segment
    files open; their space would not come back until the process ends, even
    once they are deleted.
    """
    seen: set[int] = set()
    stack: list[Any] = [writer]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, io.IOBase):
            with contextlib.suppress(Exception):
                obj.close()
        elif isinstance(obj, list | tuple | set | frozenset):
            # Files sit near the start of short lists; a posting buffer is long and holds none.
            stack.extend(list(obj)[:1000])
        elif isinstance(obj, dict):
            stack.extend(list(obj.values())[:1000])
        elif type(obj).__module__.startswith(_WRITER_MODULES) and hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())


def _entries(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()


_ADVICE = {
    errno.ENOSPC: "free some disk space and run this command again",
    errno.EDQUOT: "free some disk space and run this command again",
    errno.EROFS: "mount it read-write, or choose another --index directory",
    errno.EACCES: "check the permissions of the index directory",
    errno.EPERM: "check the permissions of the index directory",
}


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
        # Filters match the day as written (the terms); sorting reads the column, which Whoosh fills from
        # the _stored_ value: the instant, so newest-first is right across offsets.
        fields[DATE] = article.date.replace(tzinfo=None)
        fields[f"_stored_{DATE}"] = utc_instant(article.date)
        fields[DATE_WRITTEN] = article.date.isoformat()
    return fields


def _raw_hit(hit: Any, units: MatchUnits | None) -> RawHit:
    """A collected hit, its score without the units' tier, and the words it lacks."""
    score = float(hit.score or 0.0)
    if units is None:
        return RawHit(_article(hit.fields()), score)
    tier, score = units.tier_of(score)
    return RawHit(_article(hit.fields()), score, tier=tier, missing=units.missing(hit.docnum))


def _stored_date(stored: dict[str, Any]) -> datetime | None:
    written = stored.get(DATE_WRITTEN)
    return datetime.fromisoformat(written) if written else None


def _article(stored: dict[str, Any]) -> Article:
    tags = stored.get(TAGS) or ""
    return Article(
        id=stored[ID_FIELD],
        title=stored.get(TITLE, ""),
        body=stored.get(BODY, ""),
        date=_stored_date(stored),
        source=stored.get(SOURCE, ""),
        tags=tuple(t for t in tags.split(",") if t),
        url=stored.get(URL, ""),
        origin=stored.get(ORIGIN, ""),
    )


class _DeadlineCollector(TimeLimitCollector):  # type: ignore[misc]
    """Stop collecting once a deadline (a ``time.monotonic()`` value) passes, read every few matches.

    Whoosh's own version raises from SIGALRM, which can land inside a gc
    callback or C code, or from a timer thread that cannot run until the
    searching thread releases the GIL; reading the clock has neither problem.
    This covers the time between hits; the compiled query's matchers read
    the same deadline inside their own scans (see ``query.Clock``).
    """

    CHECK_EVERY = 32

    def __init__(self, child: Any, deadline: float) -> None:
        super().__init__(child, timelimit=0.0, use_alarm=False)
        self.deadline = deadline

    def prepare(self, top_searcher: Any, q: Any, context: Any) -> None:
        self.child.prepare(top_searcher, q, context)
        self.timedout = False

    def collect_matches(self) -> None:
        child = self.child
        for n, sub_docnum in enumerate(child.matches()):
            if n % self.CHECK_EVERY == 0 and time.monotonic() >= self.deadline:
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
    cost a third of a simple search. Built in time linear in the postings: a
    document's values are gathered in a list and made a tuple once (growing
    a tuple a value at a time took quadratic time for a record with 100,000
    tags, and every search waited for it). The terms are read in order, one
    segment at a time, and a value held by one document is found from its
    term's statistics, without opening its postings (a lookup by term cost
    most of the time with 100,000 tags).
    """
    cache: dict[str, list[tuple[str, ...]]] = searcher.__dict__.setdefault(_FACET_CACHE_ATTR, {})
    values = cache.get(field)
    if values is None:
        reader = searcher.reader()
        gathered: dict[int, list[str]] = {}
        for leaf, offset in reader.leaf_readers():
            if field not in leaf.indexed_field_names():
                continue
            for term, info in leaf.iter_field(field):
                text = term.decode("utf-8") if isinstance(term, bytes) else str(term)
                if info.doc_frequency() == 1 and info.min_id() is not None:
                    only = info.min_id()
                    docnums: Iterable[int] = () if leaf.is_deleted(only) else (only,)
                else:
                    docnums = leaf.postings(field, term).all_ids()
                for docnum in docnums:
                    found = gathered.get(offset + docnum)
                    if found is None:
                        gathered[offset + docnum] = [text]
                    else:
                        found.append(text)
        values = [()] * reader.doc_count_all()
        # Documents with the same values share one tuple: a large index has few distinct ones.
        shared: dict[tuple[str, ...], tuple[str, ...]] = {}
        for docnum, found in gathered.items():
            combined = tuple(found)
            values[docnum] = shared.setdefault(combined, combined)
        cache[field] = values
    return values


class _ByDate(sorting.FacetType):  # type: ignore[misc]
    """Sort key for ``sort=date`` (newest first) and ``sort=oldest``: dated documents, then the undated ones.

    ``FieldFacet(DATE, reverse=True)`` puts undated documents first: their
    column holds the column's default, the largest value there is.
    """

    def __init__(self, newest: bool) -> None:
        self.newest = newest

    def categorizer(self, global_searcher: Any) -> Any:
        return _ByDateCategorizer(global_searcher, self.newest)


class _ByDateCategorizer(sorting.Categorizer):  # type: ignore[misc]
    def __init__(self, global_searcher: Any, newest: bool) -> None:
        self._missing = global_searcher.schema[DATE].column_type.default_value()
        self._newest = newest
        self._column: Any = None

    def set_searcher(self, segment_searcher: Any, docoffset: int) -> None:
        self._column = segment_searcher.reader().column_reader(DATE, translate=False)

    def key_for(self, matcher: Any, segment_docnum: int) -> Any:
        value = self._column[segment_docnum]
        if not self._newest:
            # Oldest first: undated documents hold the column's largest value, so they come last.
            return value
        # Ascending keys: newer dates are more negative; undated (1) after every dated one.
        return 1 if value == self._missing else -value


def _facet_counts(searcher: WhooshSearcher, field: str, docnums: list[int]) -> list[tuple[str, int]]:
    values = _facet_values(searcher, field)
    # Documents with the same values share one tuple, so the tuples are counted in C (a word in a third
    # of 300,000 documents has few distinct ones) and each tuple's values once.
    counts: Counter[str] = Counter()
    for combined, n in Counter(map(values.__getitem__, docnums)).items():
        for value in combined:
            if value:
                counts[value] += n
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


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _raised_by_whoosh(exc: BaseException) -> bool:
    """True if ``exc`` was raised inside Whoosh's own code (reading index files), not in zhsearch's."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and f"{os.sep}whoosh{os.sep}" in last.tb_frame.f_code.co_filename


def _reports_damage(method: Callable[Concatenate[WhooshStore, _P], _R]) -> Callable[Concatenate[WhooshStore, _P], _R]:
    """Turn an error Whoosh raises on reading the index's files into ``IndexDamagedError``.

    A file truncated or overwritten (a crash, a full disk, a copy cut short)
    makes Whoosh fail with whatever its decoding meets: ``FileFormatError``,
    ``CorruptIndexError``, ``struct.error``, even ``TypeError``. The user
    gets one line saying the index is damaged and how to fix it.
    """

    @functools.wraps(method)
    def reading(store: WhooshStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(store, *args, **kwargs)
        except (IndexerError, OSError, MemoryError):
            raise
        except Exception as exc:
            if not _raised_by_whoosh(exc):
                raise
            raise IndexDamagedError(
                f"the index at {store.root} is damaged ({type(exc).__name__}: {printable(str(exc))[:200]}); "
                f"{REBUILD_HINT}"
            ) from exc

    return reading


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
        """Hold the index's write lock, waiting up to ``write_timeout()`` for another writer.

        A directory that cannot be written (read-only, no permission) raises
        ``IndexWriteError`` here, before anything is read or written.
        """
        timeout = write_timeout()
        try:
            self._check_root_is_ours()
            self.root.mkdir(parents=True, exist_ok=True)
            lock = open(self.root / LOCK_FILE, "a+", encoding="utf-8")  # closed by the with below
        except OSError as exc:
            raise self._write_error(exc) from None
        _load_prctl()
        with lock as f:
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
                # For the message of a writer that times out waiting. Unbuffered
                # and best effort: on a full disk the write that follows says so.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode())
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

    def _write_error(self, exc: OSError, outcome: str = "the index was not changed") -> IndexWriteError:
        """The one-line error for a write the file system refused (full, read-only, no permission)."""
        reason = exc.strerror or str(exc) or type(exc).__name__
        advice = _ADVICE.get(exc.errno or 0)
        return IndexWriteError(
            f"cannot write to the index at {self.root}: {reason}" + (f" ({advice})" if advice else "") + f"; {outcome}"
        )

    def _discard_generation(self, tmp: Path) -> None:
        """Remove what a failed build wrote: its ``tmp-*`` folder, or the generation it became if not live."""
        _remove(tmp)
        gen = self.root / (GEN_PREFIX + tmp.name[len(TMP_PREFIX) :])
        with contextlib.suppress(IndexerError, OSError):
            if gen.exists() and self._current() != gen:
                _remove(gen)
        _remove(self.root / (CURRENT + ".tmp"))

    def _discard_new_files(self, gen: Path, before: set[str]) -> None:
        """Remove what a failed add or delete left in the live generation.

        That is every file or folder not there before the write (segment
        files, Whoosh's temporary folders, ``zhsearch.json.tmp``), except
        those of the table of contents now live: if the commit went through
        before the failure, its segments stay.
        """
        try:
            ix = whoosh_index.open_dir(str(gen))
            try:
                toc = f"_{ix.indexname}_{ix.latest_generation()}.toc"
                live = tuple(segment.segment_id() + "." for segment in ix._segments())
            finally:
                ix.close()
        except Exception:
            return  # which files are live cannot be told: leaving debris is safer than deleting the index
        for name in sorted(_entries(gen) - before):
            if name != toc and not name.startswith(live):
                _remove(gen / name)

    def _new_generation(self, sources: list[str]) -> tuple[Path, Any]:
        stamp = now().strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{os.getpid()}"
        tmp = self.root / f"{TMP_PREFIX}{name}"
        tmp.mkdir()
        try:
            ix = whoosh_index.create_in(str(tmp), build_schema())
            _write_json_atomic(tmp / META_FILE, new_build_record(self.backend, sources, format=FORMAT_NAME))
        except BaseException:
            _remove(tmp)
            raise
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
        # The new generation is live: what follows is housekeeping, and a
        # failure of it must not report a build that went through as failed.
        with contextlib.suppress(OSError):
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
        """Write a new generation with ``articles`` and make it live in one rename.

        If writing fails (a full disk, a worker process that died, an article
        the analyser cannot take), the new generation is removed and
        ``IndexWriteError`` raised: the live index stays as it was and no
        ``tmp-*`` folder is left behind.
        """
        init_jieba()
        with self._write_lock():
            with contextlib.suppress(OSError):
                self._prune()
            try:
                tmp, ix = self._new_generation(sources)
            except OSError as exc:
                raise self._write_error(exc) from None
            writer: Any = None
            count = 0
            try:
                writer = _build_writer(ix)
                for article in articles:
                    _index_one(writer.add_document, article)
                    count += 1
                writer.commit()
                _check_written(writer, ix, count)
                writer = None
                ix.close()
                self._publish(tmp)
            except BaseException as exc:
                if writer is not None:
                    with contextlib.suppress(Exception):
                        _cancel_writer(writer)
                    _close_files(writer)
                self._abandon(ix, tmp, exc)
        self._close_reader()
        return count

    def _abandon(self, ix: Any, tmp: Path, exc: BaseException) -> NoReturn:
        """Close a failed build's index, remove its generation, and raise (a write error as one line)."""
        with contextlib.suppress(Exception):
            ix.close()
        self._discard_generation(tmp)
        if isinstance(exc, OSError):
            raise self._write_error(exc) from None
        raise exc

    def _change_in_place(self, gen: Path, work: Callable[[Any], Any]) -> Any:
        """Run ``work(writer)`` on the live generation and commit it, all or nothing.

        On a failure the write is cancelled and the files it created are
        removed (no orphaned segments); an ``OSError`` becomes ``IndexWriteError``.
        """
        before = _entries(gen)
        writer: Any = None
        try:
            writer = self._open_writer(gen)
            result = work(writer)
            writer.commit()
        except BaseException as exc:
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.cancel()
                _close_files(writer)
            self._discard_new_files(gen, before)
            if isinstance(exc, OSError):
                raise self._write_error(exc) from None
            raise
        try:
            self._touch_meta(gen)
        except OSError as exc:
            _remove(gen / (META_FILE + ".tmp"))
            raise self._write_error(exc, "the documents were written, but not the index's update time") from None
        return result

    def _open_writer(self, gen: Path) -> Any:
        ix = whoosh_index.open_dir(str(gen))
        # We hold the index lock, so only a process that bypasses it (an older
        # zhsearch, a script using Whoosh directly) can hold Whoosh's own lock.
        timeout = write_timeout()
        try:
            return ix.writer(timeout=timeout, limitmb=WRITER_LIMIT_MB, compound=False)
        except OSError:
            ix.close()
            raise
        except LockError:
            ix.close()
            raise IndexBusyError(
                f"the index at {self.root} is busy: a program that does not use zhsearch's lock "
                f"({self.root / LOCK_FILE}) has been writing to {gen.name} for longer than {timeout:g} s; "
                "stop it and run this command again"
            ) from None

    @_reports_damage
    def add(self, articles: Iterable[Article]) -> int:
        """Add or replace documents by id in the live generation (created if missing)."""
        init_jieba()
        with self._write_lock():
            gen = self._current()
            if gen is None:
                gen = self._create_empty()
            self._read_meta(gen)

            def work(writer: Any) -> int:
                count = 0
                for article in articles:
                    _index_one(writer.update_document, article)
                    count += 1
                return count

            added: int = self._change_in_place(gen, work)
        return added

    def _create_empty(self) -> Path:
        """Create and publish an empty generation (the first ``add`` to a new index directory)."""
        try:
            tmp, ix = self._new_generation([])
        except OSError as exc:
            raise self._write_error(exc) from None
        try:
            ix.writer(compound=False).commit()
            ix.close()
            return self._publish(tmp)
        except BaseException as exc:
            self._abandon(ix, tmp, exc)

    @_reports_damage
    def delete(self, ids: Iterable[str]) -> list[str]:
        """Delete documents by id; return those that existed."""
        with self._write_lock():
            gen = self._require_current()
            self._read_meta(gen)

            def work(writer: Any) -> list[str]:
                return [doc_id for doc_id in ids if writer.delete_by_term(ID_FIELD, doc_id)]

            deleted: list[str] = self._change_in_place(gen, work)
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

    @_reports_damage
    def search(self, request: SearchRequest) -> RawPage:
        """Run a parsed query; return the requested page, facet counts, and whether time ran out."""
        init_jieba()
        if request.deadline is not None and time.monotonic() >= request.deadline:
            # The request's time went on earlier searches (a relaxed retry, "did you mean").
            return RawPage(total=0, hits=[], partial=True)
        searcher = self._get_searcher()
        # Sorted by date, a page is the newest full matches: filling it with partial ones would mix them in.
        fill_below = FILL_BELOW if request.sort == "relevance" else 0
        if request.query is None:
            q = wq.Every()
        else:
            q = compile_request_query(request.query, request.deadline, request.mode, fill_below=fill_below)
        units = find_units(q)
        limit = request.page * request.size
        split = units_and_filters(q, searcher.schema) if request.sort == "relevance" else None
        if split is not None:
            return self._search_units(searcher, request, *split)
        collector: Any
        if request.sort in ("date", "oldest"):
            collector = SortingCollector(_ByDate(newest=request.sort == "date"), limit=limit)
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
        if request.deadline is not None:
            collector = _DeadlineCollector(collector, request.deadline)
        try:
            searcher.search_with_collector(q, collector)
        except TimeLimit:
            partial = True
        results = collector.results()
        start = (request.page - 1) * request.size
        hits = [_raw_hit(hit, units) for hit in results[start:limit]]
        docnums = matched.docnums if matched is not None else []
        counts = {name: _facet_counts(searcher, _FACET_FIELDS[name], docnums) for name in facets}
        total_full = units.total_full if units is not None and units.prepared else len(results)
        return RawPage(total=len(results), hits=hits, facets=counts, partial=partial, total_full=total_full)

    def _search_units(
        self, searcher: WhooshSearcher, request: SearchRequest, units: MatchUnits, only: list[Any], never: list[Any]
    ) -> RawPage:
        """A page ranked by the units' scores alone, without Whoosh's collector.

        The units score every document they match in one pass (``MatchUnits``);
        Whoosh's collector would then make several Python calls per match, most
        of the time of a word in a third of the collection. Here the page is a
        heap selection over the finished scores, in the collector's order.
        """
        limit = request.page * request.size
        if not (only or never):
            units.limit = limit
        try:
            docnums, scores = units.matches(searcher)
            picked: Sequence[int]
            if only or never:
                # The filters' documents (a date range's few thousand), not the matches' many, as the set.
                filtered = [filter_docs(q, searcher) for q in only]
                allowed = filtered[0].intersection(*filtered[1:]) if filtered else set(docnums)
                for q in never:
                    allowed -= filter_docs(q, searcher)
                picked = list(compress(range(len(docnums)), map(allowed.__contains__, docnums)))
                picked_scores = list(map(scores.__getitem__, picked))
            else:
                picked, picked_scores = range(len(docnums)), scores
        except TimeLimit:
            return RawPage(total=0, hits=[], partial=True)
        if len(picked) > limit:
            # The limit-th best score, then the few at or above it in order: a key call per match in
            # heapq.nlargest cost more than the search itself for a word in a third of the documents.
            least = heapq.nlargest(limit, picked_scores)[-1]
            picked_best: Sequence[int] = [i for i, score in zip(picked, picked_scores, strict=True) if score >= least]
        else:
            picked_best = picked
        # Stable: equal scores keep the lower docnum first, as Whoosh's top-N collector does.
        best = sorted(picked_best, key=lambda i: -scores[i])[:limit]
        start = (request.page - 1) * request.size
        hits = []
        for i in best[start:]:
            tier, score = units.tier_of(scores[i])
            stored = searcher.stored_fields(docnums[i])
            hits.append(RawHit(_article(stored), score, tier=tier, missing=units.missing(docnums[i])))
        facets = [name for name in request.facets if name in _FACET_FIELDS]
        matched = (docnums if isinstance(picked, range) else [docnums[i] for i in picked]) if facets else []
        counts = {name: _facet_counts(searcher, _FACET_FIELDS[name], matched) for name in facets}
        if not (only or never):
            full = units.total_full
        else:
            full = len(picked) if units.every_match_full else len(allowed & units.full_matches())
        return RawPage(total=len(picked), hits=hits, facets=counts, total_full=full)

    @_reports_damage
    def get(self, doc_id: str) -> Article | None:
        """The stored document with this id, or None."""
        stored = self._get_searcher().document(**{ID_FIELD: doc_id})
        return _article(stored) if stored else None

    @_reports_damage
    def manifest(self) -> dict[str, tuple[str, str]]:
        """``{id: (origin, content_hash)}`` for every document, for incremental sync."""
        return {
            fields[ID_FIELD]: (fields.get(ORIGIN, ""), fields.get(CONTENT_HASH, ""))
            for fields in self._get_searcher().all_stored_fields()
        }

    @_reports_damage
    def title_terms(self) -> list[tuple[str, int]]:
        """Every analysed title term with its document frequency (for suggestions)."""
        reader = self._get_searcher().reader()
        return [
            (term.decode("utf-8") if isinstance(term, bytes) else str(term), reader.doc_frequency(TITLE, term))
            for term in reader.lexicon(TITLE)
        ]

    @_reports_damage
    def titles(self) -> list[str]:
        """The title of every document (for suggestions)."""
        return [fields.get(TITLE, "") for fields in self._get_searcher().all_stored_fields()]

    @_reports_damage
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
