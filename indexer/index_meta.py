"""What every backend records about an index it builds, and how it reads that back.

A Whoosh index keeps this record in ``zhsearch.json`` beside its files; a
Typesense index keeps it as a document in a metadata collection. The fields
are the same, so ``zhsearch info`` and ``/healthz`` say the same things
whichever backend holds the index.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from . import __version__
from .analysis import current_user_dict
from .schema import SCHEMA_VERSION
from .store import IndexInfo

# The end of every message that refuses an index of another format.
REBUILD_HINT = "rebuild it with `zhsearch build PATH...`"
# Facet counts list at most this many values (the most frequent first).
MAX_FACET_VALUES = 20


def now() -> datetime:
    """The current time in UTC, without a time zone (how build times are stored)."""
    return datetime.now(UTC).replace(tzinfo=None)


def user_dict_record() -> dict[str, str] | None:
    """``{"path", "sha256"}`` of the user dictionary this process segments with, or None."""
    loaded = current_user_dict()
    return {"path": loaded.path, "sha256": loaded.sha256} if loaded else None


def user_dict_warnings(recorded: dict[str, str] | None) -> list[str]:
    """Say so when the running user dictionary differs from the one the index was built with."""
    running = user_dict_record()
    if (recorded or {}).get("sha256") == (running or {}).get("sha256"):
        return []
    built = recorded["path"] if recorded else "no user dictionary"
    current = running["path"] if running else "no user dictionary"
    return [
        f"the index was built with {built} but this process uses {current}; "
        "segmentation differs, so rebuild the index with the current dictionary"
    ]


def new_build_record(backend: str, sources: list[str], **extra: Any) -> dict[str, Any]:
    """The record of a new, empty index: format, versions, times, sources and user dictionary."""
    stamp = now().isoformat(timespec="seconds")
    return {
        **extra,
        "schema_version": SCHEMA_VERSION,
        "backend": backend,
        "zhsearch_version": __version__,
        "built_at": stamp,
        "updated_at": stamp,
        "sources": sources,
        "user_dict": user_dict_record(),
    }


def touched(record: dict[str, Any]) -> dict[str, Any]:
    """The record with ``updated_at`` set to now, after an add or delete."""
    return {**record, "updated_at": now().isoformat(timespec="seconds")}


def recorded_time(record: dict[str, Any], key: str) -> datetime | None:
    """A time the record holds (``built_at``, ``updated_at``), or None."""
    value = record.get(key)
    return datetime.fromisoformat(value) if value else None


def format_refusal(what: str, found: object, expected: str) -> str:
    """The message refusing an index written in another format, with how to fix it."""
    return f"{what} uses format {found}, but this zhsearch ({__version__}) reads format {expected}; {REBUILD_HINT}"


def index_info(
    record: dict[str, Any],
    *,
    backend: str,
    path: str,
    documents: int,
    size_bytes: int,
    warnings: list[str] | None = None,
    writable: bool | None = None,
    nodes: dict[str, str] | None = None,
) -> IndexInfo:
    """``IndexInfo`` from a build record and what the backend measured, with the user-dictionary warnings."""
    return IndexInfo(
        path=path,
        backend=backend,
        documents=documents,
        size_bytes=size_bytes,
        schema_version=str(record.get("schema_version")),
        built_at=recorded_time(record, "built_at"),
        updated_at=recorded_time(record, "updated_at"),
        sources=list(record.get("sources") or []),
        user_dict=record.get("user_dict"),
        warnings=[*(warnings or []), *user_dict_warnings(record.get("user_dict"))],
        writable=writable,
        nodes=dict(nodes or {}),
    )
