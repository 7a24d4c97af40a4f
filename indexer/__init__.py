"""zhsearch's core: read Chinese article collections, index them with jieba + Whoosh, search them.

This package never imports Flask; ``service`` is a thin web layer over the
names exported here.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .analysis import init_jieba, load_user_dict  # noqa: E402
from .backends import BACKENDS, IndexTarget, open_store, store_settings  # noqa: E402
from .build import BuildStats, add_documents, build_index, delete_documents  # noqa: E402
from .corpus import Article, Skipped, count_records, iter_articles, iter_records  # noqa: E402
from .errors import (  # noqa: E402
    CorpusError,
    IndexBusyError,
    IndexDamagedError,
    IndexDirError,
    IndexerError,
    IndexMissingError,
    IndexWriteError,
    QueryError,
    SchemaMismatchError,
)
from .plan import FILL_BELOW, MODES  # noqa: E402
from .query import TypedDate, typed_dates  # noqa: E402
from .schema import SCHEMA_VERSION  # noqa: E402
from .search import PAGE_SIZE_CAP, DocumentView, Hit, Searcher, SearchPage, document_dict, format_date  # noqa: E402
from .store import SORTS, IndexInfo, IndexStore, StoreSettings  # noqa: E402
from .suggest import (  # noqa: E402
    QuerySuggestion,
    Suggester,
    SuggesterCache,
    Suggestion,
    did_you_mean,
    full_matches,
    is_gibberish,
    suggest_query,
    titles_with,
)
from .sync import SyncStats, sync_index  # noqa: E402

__all__ = [
    "BACKENDS",
    "FILL_BELOW",
    "MODES",
    "PAGE_SIZE_CAP",
    "SCHEMA_VERSION",
    "SORTS",
    "Article",
    "BuildStats",
    "CorpusError",
    "DocumentView",
    "Hit",
    "IndexBusyError",
    "IndexDirError",
    "IndexInfo",
    "IndexMissingError",
    "IndexStore",
    "IndexTarget",
    "IndexDamagedError",
    "IndexWriteError",
    "IndexerError",
    "QueryError",
    "QuerySuggestion",
    "SchemaMismatchError",
    "SearchPage",
    "Searcher",
    "Skipped",
    "StoreSettings",
    "Suggester",
    "SuggesterCache",
    "Suggestion",
    "SyncStats",
    "TypedDate",
    "__version__",
    "add_documents",
    "build_index",
    "count_records",
    "delete_documents",
    "did_you_mean",
    "document_dict",
    "format_date",
    "full_matches",
    "init_jieba",
    "is_gibberish",
    "titles_with",
    "iter_articles",
    "iter_records",
    "load_user_dict",
    "open_store",
    "store_settings",
    "suggest_query",
    "sync_index",
    "typed_dates",
]
