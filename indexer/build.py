"""Building and updating an index from corpus paths, with an account of every record."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .backends import IndexTarget, open_store
from .corpus import Article, ReadOptions, Record, Skipped, iter_records
from .errors import IndexerError

# Called once per record read, then once with None when every record has been read (the
# store may still be writing: a multi-process build takes in records faster than it indexes them).
Progress = Callable[[Record | None], None]


@dataclass
class BuildStats:
    """What a build or add did: records read, documents indexed, and everything skipped."""

    read: int = 0
    indexed: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    # Files left out by --include/--exclude (relative paths): chosen, so not skipped.
    excluded: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the operator: counts and time."""
        line = (
            f"read {self.read} records, indexed {self.indexed}, skipped {len(self.skipped)}, "
            f"warnings {len(self.warnings)} in {self.seconds:.1f} s"
        )
        if self.excluded:
            line += f"; {len(self.excluded)} files left out by --include/--exclude"
        return line

    def skip_reasons(self) -> dict[str, int]:
        """How many records were skipped for each kind of reason."""
        counts: dict[str, int] = {}
        for skip in self.skipped:
            # "invalid JSON: ... (column 3)" and "duplicate id 'x' (...)" group by their kind.
            key = skip.reason.split(":")[0].split(" (")[0].split(";")[0]
            if key.startswith("duplicate id"):
                key = "duplicate id"
            elif key.startswith("document is "):
                key = "document over the size limit"
            elif "over the limit of" in key:
                # "field 'url' is 9,001 characters, over the limit of 8,192": one group per field.
                key = key.split(" is ")[0] + " over its limit"
            counts[key] = counts.get(key, 0) + 1
        return counts


class StrictError(IndexerError):
    """``--strict`` is set and records were skipped: nothing was written."""

    def __init__(self, stats: BuildStats) -> None:
        n = len(stats.skipped)
        super().__init__(
            f"{n} record{'s were' if n != 1 else ' was'} skipped and --strict is set; the index was not changed"
        )
        self.stats = stats


def accounted(
    records: Iterable[Record],
    stats: BuildStats,
    progress: Progress | None = None,
    strict: bool = False,
) -> Iterator[Article]:
    """Yield each id's first article once, counting everything else as skipped.

    With ``strict``, raise ``StrictError`` after the last record if any was
    skipped; raised inside the store's write, it cancels the whole write.
    """
    first_seen: dict[str, str] = {}
    for record in records:
        stats.read += 1
        if progress is not None:
            progress(record)
        if isinstance(record, Skipped):
            stats.skipped.append(record)
            continue
        if record.id in first_seen:
            stats.skipped.append(
                Skipped(
                    record.shown_origin,
                    f"duplicate id {record.id!r} (first seen at {first_seen[record.id]})",
                    record.origin,
                    doc_id=record.id,
                )
            )
            continue
        first_seen[record.id] = record.shown_origin
        stats.warnings.extend((record.shown_origin, w) for w in record.warnings)
        yield record
    if progress is not None:
        progress(None)
    if strict and stats.skipped:
        raise StrictError(stats)


class NothingReadError(StrictError):
    """A build read no article at all: it would have replaced the live index with an empty one."""

    def __init__(self, stats: BuildStats) -> None:
        super().__init__(stats)
        skipped = f" ({len(stats.skipped):,} skipped)" if stats.skipped else ""
        self.args = (
            f"no article could be read from the paths given{skipped}, so the index was not changed: "
            "a build replaces the whole index",
        )


def _counted(articles: Iterator[Article], stats: BuildStats, *, require_one: bool = False) -> Iterator[Article]:
    for article in articles:
        stats.indexed += 1
        yield article
    if require_one and stats.indexed == 0:
        # Raised inside the store's build, which then removes what it wrote and leaves the live index.
        raise NothingReadError(stats)


def build_index(
    paths: Iterable[str | Path],
    index: IndexTarget,
    progress: Progress | None = None,
    *,
    options: ReadOptions | None = None,
    strict: bool = False,
) -> BuildStats:
    """Build a fresh index from corpus paths and switch to it atomically.

    With ``strict``, any skipped record raises ``StrictError`` and the live index stays as it was.
    """
    path_list = [str(p) for p in paths]
    stats = BuildStats()
    started = time.perf_counter()
    records = iter_records(path_list, options, excluded=stats.excluded)
    store = open_store(index)
    try:
        sources = [str(Path(p).resolve()) for p in path_list]
        store.build(_counted(accounted(records, stats, progress, strict), stats, require_one=True), sources)
    except StrictError:
        stats.indexed = 0
        raise
    finally:
        store.close()
        stats.seconds = time.perf_counter() - started
    return stats


def add_documents(
    paths: Iterable[str | Path],
    index: IndexTarget,
    progress: Progress | None = None,
    *,
    options: ReadOptions | None = None,
    strict: bool = False,
) -> BuildStats:
    """Add or replace (by id) the articles found in corpus paths.

    With ``strict``, any skipped record raises ``StrictError`` and nothing is written.
    """
    stats = BuildStats()
    started = time.perf_counter()
    records = iter_records([str(p) for p in paths], options, excluded=stats.excluded)
    store = open_store(index)
    try:
        store.add(_counted(accounted(records, stats, progress, strict), stats))
    except StrictError:
        stats.indexed = 0
        raise
    finally:
        store.close()
        stats.seconds = time.perf_counter() - started
    return stats


def delete_documents(ids: Iterable[str], index: IndexTarget) -> tuple[list[str], list[str]]:
    """Delete documents by id; return ``(deleted, not_found)``."""
    wanted = list(dict.fromkeys(ids))
    store = open_store(index)
    try:
        deleted = store.delete(wanted)
    finally:
        store.close()
    gone = set(deleted)
    return deleted, [i for i in wanted if i not in gone]
