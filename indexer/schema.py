"""The index's fields and format version: part of the on-disk format, for every backend.

``SCHEMA_VERSION`` is written next to every index; a mismatch makes zhsearch
refuse the index and ask for a rebuild. Each backend lays these fields out
in its own engine (``indexer.backends.whoosh.schema`` for Whoosh); this
module imports no engine.
"""

from __future__ import annotations

from .analysis import ANALYZER_VERSION

# Bump FIELDS_VERSION when a field changes in any backend; the analyzer has its own counter.
# 6: dates keep their UTC offset (``date_written``) and sort by their instant.
FIELDS_VERSION = 6
SCHEMA_VERSION = f"{FIELDS_VERSION}.{ANALYZER_VERSION}"

ID_FIELD = "id"
TITLE = "title"
BODY = "body"
# ``date`` filters by the day and time as written (its own offset); sorting uses the instant.
DATE = "date"
# The date as written, in ISO 8601 with its offset if it had one (a backend may store it apart from ``date``).
DATE_WRITTEN = "date_written"
SOURCE = "source"
TAGS = "tags"
URL = "url"
# Title and body together: what plain words are matched against.
CONTENT = "content"
CONTENT_BI = "content_bi"
# Where a document came from and a hash of its content, for incremental sync.
ORIGIN = "origin"
CONTENT_HASH = "content_hash"
