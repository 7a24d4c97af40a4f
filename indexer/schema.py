"""The index schema and its version: part of the on-disk format.

Whoosh pickles this schema (analyzer included) into every index, so field
names, field types and ``indexer.analysis`` must stay importable under the
same names. ``SCHEMA_VERSION`` is written next to the index; a mismatch makes
zhsearch refuse the index and ask for a rebuild.
"""

from __future__ import annotations

from whoosh.fields import DATETIME, ID, KEYWORD, STORED, TEXT, Schema

from .analysis import ANALYZER_VERSION, chinese_analyzer

# Bump FIELDS_VERSION when a field changes; the analyzer has its own counter.
FIELDS_VERSION = 3
SCHEMA_VERSION = f"{FIELDS_VERSION}.{ANALYZER_VERSION}"

ID_FIELD = "id"
TITLE = "title"
BODY = "body"
DATE = "date"
SOURCE = "source"
TAGS = "tags"
URL = "url"
# Where a document came from and a hash of its content, for incremental sync.
ORIGIN = "origin"
CONTENT_HASH = "content_hash"

SEARCH_FIELDS = (TITLE, BODY)


def build_schema() -> Schema:
    """Return a fresh schema; every index zhsearch writes uses exactly this."""
    analyzer = chinese_analyzer()
    return Schema(
        id=ID(stored=True, unique=True),
        # The title's extra weight is applied at query time (whoosh_query.FIELD_BOOSTS),
        # so it can be tuned without rebuilding.
        title=TEXT(analyzer=analyzer, stored=True, phrase=True),
        body=TEXT(analyzer=analyzer, stored=True, phrase=True),
        date=DATETIME(stored=True, sortable=True),
        source=ID(stored=True),
        tags=KEYWORD(stored=True, commas=True, scorable=False),
        url=STORED(),
        origin=ID(stored=True),
        content_hash=ID(stored=True),
    )
