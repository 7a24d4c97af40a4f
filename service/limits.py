"""Fixed limits on request parameters, shared by the views and the OpenAPI document."""

from __future__ import annotations

# At most this many source= (or tag=) values, each at most this long.
MAX_FILTER_VALUES = 10
MAX_FILTER_CHARS = 100
# /api/suggest?limit= bounds.
DEFAULT_SUGGESTIONS = 8
MAX_SUGGESTIONS = 20
MAX_DOC_ID_CHARS = 1024
