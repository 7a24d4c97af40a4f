"""The errors zhsearch raises; the CLI and the web service turn them into messages."""

from __future__ import annotations


class IndexerError(Exception):
    """Base class for every error zhsearch reports to its users."""


class IndexMissingError(IndexerError):
    """There is no index where one was expected."""


class SchemaMismatchError(IndexerError):
    """The index on disk was written by an incompatible version of zhsearch."""


class IndexDirError(IndexerError):
    """The index directory cannot be used (not a zhsearch index, not writable, ...)."""


class IndexBusyError(IndexerError):
    """Another process is writing to the index."""


class CorpusError(IndexerError):
    """A corpus path cannot be read at all."""


class QueryError(IndexerError):
    """A query or search parameter is invalid."""


class IndexWriteError(IndexDirError):
    """Writing the index failed (disk full, read-only, a worker process died); the live index is as it was."""


class IndexDamagedError(IndexerError):
    """The index's files cannot be read as written (truncated or corrupted, e.g. by a crash or a full disk)."""
