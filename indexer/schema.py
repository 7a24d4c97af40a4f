"""The index schema and its version: part of the on-disk format.

Whoosh pickles this schema (analyzer included) into every index, so field
names, field types and ``indexer.analysis`` must stay importable under the
same names. ``SCHEMA_VERSION`` is written next to the index; a mismatch makes
zhsearch refuse the index and ask for a rebuild.
"""

from __future__ import annotations

from whoosh.fields import DATETIME, ID, KEYWORD, STORED, TEXT, Schema

from .analysis import ANALYZER_VERSION, BigramTokenizer, chinese_analyzer

# Bump FIELDS_VERSION when a field changes; the analyzer has its own counter.
FIELDS_VERSION = 5
SCHEMA_VERSION = f"{FIELDS_VERSION}.{ANALYZER_VERSION}"

ID_FIELD = "id"
TITLE = "title"
BODY = "body"
DATE = "date"
SOURCE = "source"
TAGS = "tags"
URL = "url"
# Title and body together: what plain words are matched against.
CONTENT = "content"
CONTENT_BI = "content_bi"
# Where a document came from and a hash of its content, for incremental sync.
ORIGIN = "origin"
CONTENT_HASH = "content_hash"


def build_schema() -> Schema:
    """Return a fresh schema; every index zhsearch writes uses exactly this.

    Words are matched in one ``content`` field (title and body together)
    rather than in two: weighting the title higher did not improve relevance
    on the benchmarks, and one field halves the posting lists a query reads.
    ``title`` is indexed on its own too, for ``title:`` searches.
    """
    analyzer = chinese_analyzer()
    return Schema(
        id=ID(stored=True, unique=True),
        title=TEXT(analyzer=analyzer, stored=True, phrase=True),
        body=STORED(),
        content=TEXT(analyzer=analyzer, phrase=True),
        # Character bigrams of title and body, ranked alongside the words.
        content_bi=TEXT(analyzer=BigramTokenizer(), phrase=False),
        date=DATETIME(stored=True, sortable=True),
        source=ID(stored=True),
        tags=KEYWORD(stored=True, commas=True, scorable=False),
        url=STORED(),
        origin=ID(stored=True),
        content_hash=ID(stored=True),
    )
