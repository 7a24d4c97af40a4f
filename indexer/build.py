"""Building and updating an index from corpus paths, with an account of every record."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .corpus import Article, Record, Skipped, iter_records
from .store import open_store

Progress = Callable[[Record], None]


@dataclass
class BuildStats:
    """What a build or add did: records read, documents indexed, and everything skipped."""

    read: int = 0
    indexed: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for the operator: counts and time."""
        return (
            f"read {self.read} records, indexed {self.indexed}, skipped {len(self.skipped)}, "
            f"warnings {len(self.warnings)} in {self.seconds:.1f} s"
        )

    def skip_reasons(self) -> dict[str, int]:
        """How many records were skipped for each kind of reason."""
        counts: dict[str, int] = {}
        for skip in self.skipped:
            # "invalid JSON: ... (column 3)" and "duplicate id 'x' (...)" group by their kind.
            key = skip.reason.split(":")[0].split(" (")[0]
            if key.startswith("duplicate id"):
                key = "duplicate id"
            counts[key] = counts.get(key, 0) + 1
        return counts


def _accounted(records: Iterable[Record], stats: BuildStats, progress: Progress | None) -> Iterator[Article]:
    """Yield each id's first article once, counting everything else as skipped."""
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
                Skipped(record.origin, f"duplicate id {record.id!r} (first seen at {first_seen[record.id]})")
            )
            continue
        first_seen[record.id] = record.origin
        stats.warnings.extend((record.origin, w) for w in record.warnings)
        stats.indexed += 1
        yield record


def build_index(
    paths: Iterable[str | Path],
    index_dir: str | Path,
    progress: Progress | None = None,
    backend: str = "whoosh",
) -> BuildStats:
    """Build a fresh index from corpus paths and switch to it atomically."""
    path_list = [str(p) for p in paths]
    stats = BuildStats()
    started = time.perf_counter()
    store = open_store(index_dir, backend)
    try:
        sources = [str(Path(p).resolve()) for p in path_list]
        store.build(_accounted(iter_records(path_list), stats, progress), sources)
    finally:
        store.close()
    stats.seconds = time.perf_counter() - started
    return stats


def add_documents(
    paths: Iterable[str | Path],
    index_dir: str | Path,
    progress: Progress | None = None,
    backend: str = "whoosh",
) -> BuildStats:
    """Add or replace (by id) the articles found in corpus paths."""
    stats = BuildStats()
    started = time.perf_counter()
    store = open_store(index_dir, backend)
    try:
        store.add(_accounted(iter_records([str(p) for p in paths]), stats, progress))
    finally:
        store.close()
    stats.seconds = time.perf_counter() - started
    return stats


def delete_documents(ids: Iterable[str], index_dir: str | Path, backend: str = "whoosh") -> tuple[list[str], list[str]]:
    """Delete documents by id; return ``(deleted, not_found)``."""
    wanted = list(dict.fromkeys(ids))
    store = open_store(index_dir, backend)
    try:
        deleted = store.delete(wanted)
    finally:
        store.close()
    gone = set(deleted)
    return deleted, [i for i in wanted if i not in gone]
