"""Incremental sync: make the index match the given corpus paths, touching only what changed.

A document is *added* when its id is new, *updated* when its content hash or
source file changed, and *deleted* when it came from one of the synced paths
(its stored origin is inside one of them and passes the same
``--include``/``--exclude`` filters) but no record produces its id any more.
Documents from other paths are never deleted. A document whose file could
not be read this time (or whose record was skipped) is *kept*, not deleted:
a file that is briefly unreadable must not empty the index.

What is kept is decided by document id, never by line number, since lines
move whenever a record is inserted above them: a skipped record whose id
could be read keeps exactly that document; one whose id is unknown (a line
that is not JSON, a file or folder not read) keeps every document of that
file or folder that no record produced this time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from .backends import IndexTarget, open_store
from .build import BuildStats, Progress, StrictError, accounted
from .corpus import Article, PathFilter, ReadOptions, Skipped, iter_records, origin_file
from .errors import IndexMissingError


@dataclass
class SyncStats(BuildStats):
    """What a sync did (or, for a dry run, would do), document by document."""

    # (id, where) pairs: where the document comes (or came) from, relative to the path given.
    added: list[tuple[str, str]] = field(default_factory=list)
    updated: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    unchanged: int = 0
    # Documents whose source could not be read this time: (id, why they were kept).
    kept: list[tuple[str, str]] = field(default_factory=list)
    dry_run: bool = False

    @property
    def changes(self) -> int:
        """How many documents were (or would be) added, updated or deleted."""
        return len(self.added) + len(self.updated) + len(self.deleted)

    def summary(self) -> str:
        """One line for the operator: what changed, what did not, and what was skipped."""
        verb = "would add" if self.dry_run else "added"
        counts = (
            f"{verb} {len(self.added)}, {'update' if self.dry_run else 'updated'} {len(self.updated)}, "
            f"{'delete' if self.dry_run else 'deleted'} {len(self.deleted)}, unchanged {self.unchanged}, "
            f"skipped {len(self.skipped)}"
        )
        if self.kept:
            counts += f", kept {len(self.kept)} whose source could not be read"
        head = "dry run: " if self.dry_run else ""
        line = f"{head}read {self.read} records: {counts}, warnings {len(self.warnings)} in {self.seconds:.1f} s"
        if self.excluded:
            line += f"; {len(self.excluded)} files left out by --include/--exclude"
        return line


@dataclass(frozen=True)
class Scope:
    """One synced path: the documents whose stored origin lies inside it belong to the sync."""

    root: str  # absolute
    is_dir: bool
    path_filter: PathFilter

    @classmethod
    def of(cls, path: str | Path, options: ReadOptions) -> Scope:
        """The scope of a corpus path given on the command line."""
        p = Path(path)
        if p.is_dir():
            return cls(str(p.resolve()), True, PathFilter(options.include, options.exclude))
        # Built the way corpus.py builds a single file's origin: its folder resolved, not the file.
        return cls(str(p.parent.resolve() / p.name), False, PathFilter())

    def shown(self, stored_origin: str) -> str:
        """A stored origin inside this scope as ``where`` shows it: relative to the folder (or file's folder)."""
        base = self.root if self.is_dir else os.path.dirname(self.root)
        return stored_origin[len(base.rstrip(os.sep)) + 1 :].replace(os.sep, "/")

    def contains(self, stored_origin: str) -> bool:
        """True if a document with this stored origin came from this path (and its filters)."""
        file = origin_file(stored_origin)
        if not self.is_dir:
            return file == self.root
        prefix = self.root.rstrip(os.sep) + os.sep
        if not file.startswith(prefix):
            return False
        rel = file[len(prefix) :].replace(os.sep, "/")
        if any(part.startswith(".") for part in rel.split("/")):
            return False
        return self.path_filter.allows(rel)


@dataclass
class _Lost:
    """What this run could not read: documents known by id, and files and folders whose ids are unknown."""

    ids: dict[str, str] = field(default_factory=dict)  # id -> where its record was skipped
    files: set[str] = field(default_factory=set)  # absolute paths
    folders: list[str] = field(default_factory=list)  # absolute paths ending in a separator

    @classmethod
    def of(cls, skipped: Iterable[Skipped]) -> _Lost:
        lost = cls()
        for skip in skipped:
            if skip.doc_id:
                lost.ids.setdefault(skip.doc_id, skip.origin)
            elif skip.stored_origin.endswith(os.sep):
                lost.folders.append(skip.stored_origin)
            elif skip.stored_origin:
                # Not which record it was, so none of the file's documents may go.
                file = origin_file(skip.stored_origin)
                lost.files.add(file)
                # And it may stand where a folder was (a pipe, a symlink loop): what that folder held is
                # not known to be gone either.
                lost.folders.append(file + os.sep)
        return lost

    def why_kept(self, doc_id: str, stored_origin: str, scope: Scope) -> str | None:
        """Why a document no record produced must stay (its record or file was not read), or None."""
        if doc_id in self.ids:
            return f"its record at {self.ids[doc_id]} was skipped this time"
        file = origin_file(stored_origin)
        if file in self.files:
            return f"its source {scope.shown(file)} was skipped this time"
        folder = next((f for f in self.folders if file.startswith(f)), None)
        if folder is not None:
            return f"its folder {scope.shown(folder.rstrip(os.sep)) or '.'}/ could not be read this time"
        return None


def sync_index(
    paths: Iterable[str | Path],
    index: IndexTarget,
    progress: Progress | None = None,
    *,
    options: ReadOptions | None = None,
    strict: bool = False,
    dry_run: bool = False,
) -> SyncStats:
    """Add new, re-index changed and delete vanished documents of ``paths``; write nothing if ``dry_run``.

    Creates the index if there is none. With ``strict``, any skipped record
    raises ``StrictError`` and nothing is written.
    """
    opts = options or ReadOptions()
    path_list = [str(p) for p in paths]
    stats = SyncStats(dry_run=dry_run)
    started = time.perf_counter()
    records = iter_records(path_list, opts, excluded=stats.excluded)
    scopes = [Scope.of(p, opts) for p in path_list]
    store = open_store(index)
    try:
        try:
            manifest = store.manifest()
        except IndexMissingError:
            manifest = {}
        seen: set[str] = set()

        def changed() -> Iterator[Article]:
            for article in accounted(records, stats, progress, strict):
                seen.add(article.id)
                old = manifest.get(article.id)
                if old is None:
                    stats.added.append((article.id, article.shown_origin))
                    yield article
                    continue
                old_origin, old_hash = old
                # A line number that moved is not a change: the record is the same.
                if old_hash == article.content_hash() and origin_file(old_origin) == origin_file(article.origin):
                    stats.unchanged += 1
                    continue
                if old_origin and not any(s.contains(old_origin) for s in scopes):
                    stats.warnings.append(
                        (article.shown_origin, f"id {article.id!r} was indexed from {old_origin}; replaced")
                    )
                stats.updated.append((article.id, article.shown_origin))
                yield article

        pending = changed()
        if dry_run:
            for _ in pending:
                pass
        else:
            first = next(pending, None)
            # An up-to-date index is not written at all, not even its update time.
            if first is not None:
                store.add(chain([first], pending))

        lost = _Lost.of(stats.skipped)
        doomed: list[str] = []
        for doc_id, (stored_origin, _) in sorted(manifest.items()):
            scope = next((s for s in scopes if s.contains(stored_origin)), None)
            if doc_id in seen or scope is None:
                continue
            why = lost.why_kept(doc_id, stored_origin, scope)
            if why is not None:
                stats.kept.append((doc_id, why))
                continue
            doomed.append(doc_id)
            stats.deleted.append((doc_id, scope.shown(stored_origin)))
        if doomed and not dry_run:
            store.delete(doomed)
    except StrictError:
        if not dry_run:
            # Nothing was written; a report of "added" documents would be false.
            stats.added.clear()
            stats.updated.clear()
        raise
    finally:
        store.close()
        stats.seconds = time.perf_counter() - started
    stats.indexed = len(stats.added) + len(stats.updated)
    return stats
