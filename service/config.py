"""Default settings. Override with ZHSEARCH_<NAME> environment variables (see the README)."""

# Where the index lives; the CLI's --index uses the same variable, ZHSEARCH_INDEX_DIR.
INDEX_DIR = "instance/index"
# Results per page when the request does not say.
PER_PAGE = 10
# Largest page size /api/search accepts.
MAX_PAGE_SIZE = 50
# Deepest page anyone may ask for; deep pages cost a full sort for little use.
MAX_PAGE = 100
# Longest query accepted, in characters.
MAX_QUERY_CHARS = 256
