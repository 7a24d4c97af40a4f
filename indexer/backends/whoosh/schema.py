"""The Whoosh schema: how ``indexer.schema``'s fields are stored in a Whoosh index.

Whoosh pickles this schema (tokenizers included) into every index, so field
names and types here are part of the on-disk format: change them only with
``indexer.schema.FIELDS_VERSION``.
"""

from __future__ import annotations

from whoosh.fields import DATETIME, ID, KEYWORD, STORED, TEXT, Schema

from .tokenizers import BigramTokenizer, chinese_analyzer


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
        # Indexed: the date and time as written (date filters); stored and column: the UTC instant (sorting).
        date=DATETIME(stored=True, sortable=True),
        # The date as written, with its offset (ISO 8601), for display.
        date_written=STORED(),
        source=ID(stored=True),
        tags=KEYWORD(stored=True, commas=True, scorable=False),
        url=STORED(),
        origin=ID(stored=True),
        content_hash=ID(stored=True),
    )
