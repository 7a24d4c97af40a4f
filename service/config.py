"""Default settings. Override with ZHSEARCH_<NAME> environment variables (see docs/settings.md)."""

# Where the index lives; the CLI's --index uses the same variable, ZHSEARCH_INDEX_DIR.
INDEX_DIR = "instance/index"
# Which backend holds the index: "whoosh" (local, the default) or "typesense" (a cluster,
# set with ZHSEARCH_TYPESENSE_NODES, _API_KEY and _COLLECTION). Empty means whoosh.
BACKEND = ""
# Results per page when the request does not say.
PER_PAGE = 10
# Largest page size /api/search accepts. At most indexer.PAGE_SIZE_CAP (100), the
# library's own limit: a larger setting stops the service at start-up.
MAX_PAGE_SIZE = 50
# Deepest page anyone may ask for; deep pages cost a full sort for little use.
MAX_PAGE = 100
# Longest query accepted, in characters.
MAX_QUERY_CHARS = 256
# Seconds a search may run before it stops and returns what it found, flagged partial;
# well under gunicorn's 30 s worker timeout, so a costly query never gets a worker killed.
SEARCH_TIME_LIMIT = 2.0
# Origins allowed to call /api/ from a browser: a list, a comma-separated string, or "*".
# Empty (the default) sends no CORS headers, so only same-origin pages can read the API.
CORS_ORIGINS: list[str] | str = []
# A jieba user dictionary (word [frequency] [tag] per line), loaded before any text is
# segmented. The index records the one it was built with; a difference is logged at
# start-up and reported by /healthz and `zhsearch info`.
USER_DICT = ""
# Synonym groups, one per line ("飞桨, PaddlePaddle"), expanded at query time and
# re-read within a second or two of a change, without a restart or a rebuild.
SYNONYMS = ""
