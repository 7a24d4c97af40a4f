"""The storage seam: the one small interface every index backend implements.

Everything above this line (building, searching, highlighting, the CLI and
the web service) talks to an ``IndexStore``; only a backend package knows how
documents are stored and queried. This module names no backend: the
registry in ``indexer.backends`` maps names to packages and opens stores.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from .corpus import Article
from .query import Node


@dataclass(frozen=True)
class RawHit:
    """A stored document and its relevance score, before highlighting."""

    doc: Article
    score: float
    # How many of the query's units the document has, for ranking (0 where a backend does not tier);
    # a re-ranking never moves a hit above one of a higher tier.
    tier: int = 0
    # The typed words and phrases the document lacks: () for a full match.
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class RawPage:
    """One page of matches, the total count, facet counts, and whether time ran out."""

    total: int
    hits: list[RawHit]
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    partial: bool = False
    # The matches with every word (or most of a question's); None when the backend counts only ``total``.
    total_full: int | None = None


# The orders a search can ask for, and the fields facets are counted over.
# date: newest first; oldest: oldest first. Undated articles come last in both.
SORTS = ("relevance", "date", "oldest")
FACETS = ("source", "tags")


@dataclass(frozen=True)
class SearchRequest:
    """A parsed query and how to page, sort and count it; every backend takes this."""

    # None lists every document (the facet counts of a listing with no other filter).
    query: Node | None
    page: int = 1
    size: int = 10
    sort: str = "relevance"
    facets: tuple[str, ...] = ()
    # When the search must stop and return what it has, flagged partial: a
    # ``time.monotonic()`` value, shared by every search made for one request
    # (its relaxed retry, "did you mean"), so the request as a whole keeps it.
    deadline: float | None = None
    # "auto": full matches first, then, when there are fewer than ``plan.FILL_BELOW``, the closest ones;
    # "all": only full matches (see ``indexer.plan.MODES``).
    mode: str = "auto"

    def time_left(self) -> float | None:
        """Seconds until the deadline (0 once it has passed), or None without one."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


@dataclass(frozen=True)
class IndexInfo:
    """What ``zhsearch info`` and ``/healthz`` report about an index."""

    path: str
    backend: str
    documents: int
    size_bytes: int
    schema_version: str
    built_at: datetime | None
    updated_at: datetime | None
    sources: list[str] = field(default_factory=list)
    # The user dictionary the index was built with: {"path", "sha256"}, or None.
    user_dict: dict[str, str] | None = None
    # Problems an operator should fix, such as a different running user dictionary.
    warnings: list[str] = field(default_factory=list)
    # Whether the index can be written now: False while a cluster has no leader. None where the
    # backend has no such state (a local index is written by whoever can write its directory).
    writable: bool | None = None
    # A cluster's nodes and the state of each ("leader", "follower", "lagging", "no leader",
    # "down"); empty for a local index.
    nodes: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """ "ok", or "degraded" when the index can be read but not written (a cluster without a leader)."""
        return "degraded" if self.writable is False else "ok"

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict of the same fields."""
        return {
            "path": self.path,
            "backend": self.backend,
            "documents": self.documents,
            "size_bytes": self.size_bytes,
            "schema_version": self.schema_version,
            "built_at": self.built_at.isoformat(timespec="seconds") if self.built_at else None,
            "updated_at": self.updated_at.isoformat(timespec="seconds") if self.updated_at else None,
            "sources": list(self.sources),
            "user_dict": dict(self.user_dict) if self.user_dict else None,
            "warnings": list(self.warnings),
            "writable": self.writable,
            "nodes": dict(self.nodes),
        }


class StoreSettings(Protocol):
    """Where an index is and how to reach it; each backend defines its own (a directory, a cluster)."""

    @property
    def backend(self) -> str:
        """The registry name of the backend these settings are for."""
        ...


class IndexStore(Protocol):
    """build, add, delete, search, get, info: all a backend has to provide."""

    def build(self, articles: Iterable[Article], sources: list[str]) -> int:
        """Replace the whole index with ``articles``, atomically; return how many were written."""
        ...

    def add(self, articles: Iterable[Article]) -> int:
        """Add or replace documents by id; return how many were written."""
        ...

    def delete(self, ids: Iterable[str]) -> list[str]:
        """Delete documents by id; return the ids that existed and were deleted."""
        ...

    def search(self, request: SearchRequest) -> RawPage:
        """Run a parsed query and return one page of hits in the requested order."""
        ...

    def get(self, doc_id: str) -> Article | None:
        """Return the stored document with this id, or None."""
        ...

    def manifest(self) -> dict[str, tuple[str, str]]:
        """``{id: (origin, content_hash)}`` for every stored document."""
        ...

    def title_terms(self) -> list[tuple[str, int]]:
        """Every analysed title term with the number of documents whose title has it."""
        ...

    def titles(self) -> list[str]:
        """The title of every document, as stored (for suggestions: the words and phrases titles share)."""
        ...

    def info(self) -> IndexInfo:
        """Describe the index."""
        ...

    def close(self) -> None:
        """Release files and connections."""
        ...
