"""The OpenAPI 3 description of the JSON API, served at /api/openapi.json.

Written by hand next to the views it describes; tests/test_openapi.py runs
schemathesis against it, so a parameter or field that drifts fails the suite.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from indexer import FILL_BELOW, MODES, SORTS, __version__

from .limits import DEFAULT_SUGGESTIONS, MAX_DOC_ID_CHARS, MAX_FILTER_CHARS, MAX_FILTER_VALUES, MAX_SUGGESTIONS

# Characters the API rejects in text parameters: C0 controls other than tab, CR and LF, DEL, and C1 controls.
_ALLOWED = "[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]"
_NO_CONTROLS = f"^{_ALLOWED}*$"
_JSON = "application/json"
# An article's date as written: a day, or a day and time with the UTC offset it had (or none, if it had none).
DATE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "nullable": True,
    "anyOf": [
        {"format": "date"},
        {"format": "date-time"},
        {"pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?$"},
    ],
    "description": "2025-06-30, 2023-03-30T19:14:59-06:00, or a time written without an offset; null if undated.",
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _query_param(name: str, description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema, **extra}


def _or_blank(schema: dict[str, Any]) -> dict[str, Any]:
    """An empty value, as a form with a blank field sends it, means the default."""
    return {"anyOf": [schema, {"type": "string", "maxLength": 0}]}


def openapi_document(config: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAPI document, with the limits taken from the running configuration."""
    max_q = int(config["MAX_QUERY_CHARS"])
    query_text = {"type": "string", "maxLength": max_q, "pattern": _NO_CONTROLS}
    filter_values = {
        "type": "array",
        "maxItems": MAX_FILTER_VALUES,
        "items": {"type": "string", "maxLength": MAX_FILTER_CHARS, "pattern": _NO_CONTROLS},
    }
    search_params = [
        _query_param(
            "q",
            f"The query (at most {max_q} characters; see the query syntax in docs/cli.md). It may be left out "
            "when a source, tag, from or to filter is given: the filter alone lists the articles it keeps, "
            "newest first. Neither a query nor a filter is the error missing_query.",
            query_text,
            example="混合专家",
        ),
        _query_param(
            "page",
            "1-based page number.",
            {"type": "integer", "minimum": 1, "maximum": int(config["MAX_PAGE"]), "default": 1},
        ),
        _query_param(
            "size",
            "Results per page.",
            {
                "type": "integer",
                "minimum": 1,
                "maximum": int(config["MAX_PAGE_SIZE"]),
                "default": int(config["PER_PAGE"]),
            },
        ),
        _query_param(
            "source",
            "Only documents from this source; repeat for several (any of them).",
            filter_values,
            style="form",
            explode=True,
        ),
        _query_param(
            "tag", "Only documents with this tag; repeat for several (any of them).", filter_values, explode=True
        ),
        _query_param(
            "from", "Only documents dated on or after this day.", _or_blank({"type": "string", "format": "date"})
        ),
        _query_param(
            "to",
            "Only documents dated on or before this day; a `to` before `from` swaps the two.",
            _or_blank({"type": "string", "format": "date"}),
        ),
        _query_param(
            "sort",
            "Order of results: relevance (BM25F), date (newest first) or oldest (oldest first); "
            "undated articles come last in both date orders.",
            {"type": "string", "enum": list(SORTS), "default": "relevance"},
        ),
        _query_param(
            "mode",
            f"How the words must match: auto (articles with every word first; fewer than {FILL_BELOW} of them "
            "and the page continues with those that have the most words) or all (only articles with every word).",
            {"type": "string", "enum": list(MODES), "default": "auto"},
        ),
    ]
    # [start, end) pairs of character offsets (Unicode code points) into a stored text.
    offsets = {
        "type": "array",
        "items": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2, "maxItems": 2},
    }
    facet_value = {
        "type": "object",
        "required": ["value", "count"],
        "properties": {"value": {"type": "string"}, "count": {"type": "integer", "minimum": 0}},
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "zhsearch",
            "version": __version__,
            "description": "Full-text search over Chinese articles. Every error has the shape "
            '{"error": {"code", "message"}}. Unknown parameters are ignored.',
        },
        # Relative to where this document was fetched: the API is served beside it.
        "servers": [{"url": "/", "description": "The zhsearch server that serves this document."}],
        "paths": {
            "/api/search": {
                "get": {
                    "operationId": "search",
                    "summary": "Search the articles; one page of highlighted results with facet counts.",
                    "parameters": search_params,
                    "responses": {
                        "200": _ok("One page of results.", "SearchPage"),
                        "400": _error(
                            "A bad parameter: missing_query, query_too_long, invalid_query, invalid_parameter."
                        ),
                        "503": _error("index_unavailable or index_error."),
                    },
                }
            },
            "/api/suggest": {
                "get": {
                    "operationId": "suggest",
                    "summary": "Complete the last word of a query from title words, by prefix, pinyin or initials.",
                    "parameters": [
                        _query_param(
                            "q", "What has been typed so far; blank gives no suggestions.", query_text, example="dmx"
                        ),
                        _query_param(
                            "limit",
                            "Most suggestions to return.",
                            {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_SUGGESTIONS,
                                "default": DEFAULT_SUGGESTIONS,
                            },
                        ),
                    ],
                    "responses": {
                        "200": _ok("Suggestions, most frequent first.", "Suggestions"),
                        "400": _error("query_too_long, invalid_query or invalid_parameter."),
                        "503": _error("index_unavailable or index_error."),
                    },
                }
            },
            "/api/documents/{id}": {
                "get": {
                    "operationId": "getDocument",
                    "summary": "One stored document by id (ids from file paths contain slashes).",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": MAX_DOC_ID_CHARS,
                                "pattern": _NO_CONTROLS,
                            },
                            "example": "ernie",
                        },
                        _query_param(
                            "q",
                            "A query whose matches to mark (title_html, body_html) and locate (title_matches,"
                            " matches), as the results of /api/search mark it; without it nothing is marked.",
                            query_text,
                            example="文心",
                        ),
                    ],
                    "responses": {
                        "200": _ok("The document.", "Document"),
                        "400": _error(
                            "invalid_parameter: an id with control characters or too long; query_too_long or"
                            " invalid_query: a bad q."
                        ),
                        "404": _error("not_found."),
                        "503": _error("index_unavailable or index_error."),
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "responses": {"200": {"description": "OpenAPI 3 document.", "content": {_JSON: {"schema": {}}}}},
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "Readiness, the number of documents and, on a cluster, whether it can take writes.",
                    "responses": {
                        "200": _ok("The index is readable (status degraded: it cannot be written now).", "Health"),
                        "503": _error("index_unavailable or index_error."),
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "additionalProperties": False,
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "additionalProperties": False,
                            "properties": {
                                "code": {
                                    "type": "string",
                                    "enum": [
                                        "missing_query",
                                        "query_too_long",
                                        "invalid_query",
                                        "invalid_parameter",
                                        "bad_request",
                                        "not_found",
                                        "method_not_allowed",
                                        "request_timeout",
                                        "too_large",
                                        "uri_too_long",
                                        "headers_too_large",
                                        "expectation_failed",
                                        "not_implemented",
                                        "http_error",
                                        "index_unavailable",
                                        "index_error",
                                        "internal_error",
                                    ],
                                },
                                "message": {"type": "string", "minLength": 1},
                            },
                        }
                    },
                },
                "SearchPage": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": [
                        "query",
                        "total",
                        "total_full",
                        "page",
                        "size",
                        "took_ms",
                        "partial",
                        "relaxed",
                        "terms",
                        "facets",
                        "results",
                        "did_you_mean",
                        "has_more",
                        "next",
                    ],
                    "properties": {
                        "query": {"type": "string", "description": "The query as understood (whitespace collapsed)."},
                        "total": {
                            "type": "integer",
                            "minimum": 0,
                            "description": (
                                "Matching articles, including those listed after the full matches. Exact when"
                                " partial is false; when partial is true, a lower bound: the articles found"
                                " before the time limit."
                            ),
                        },
                        "total_full": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Articles with every word (a question: most of its informative words).",
                        },
                        "page": {"type": "integer", "minimum": 1},
                        "size": {"type": "integer", "minimum": 1},
                        "took_ms": {"type": "number", "minimum": 0},
                        "partial": {
                            "type": "boolean",
                            "description": "True when the search hit the time limit and the results are incomplete.",
                        },
                        "relaxed": {
                            "type": "boolean",
                            "description": "True when no document has every word and the results match only some.",
                        },
                        "terms": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "The words the query was understood as, after segmentation.",
                        },
                        "facets": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "source": {"type": "array", "items": facet_value},
                                "tags": {"type": "array", "items": facet_value},
                            },
                        },
                        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}},
                        "has_more": {
                            "type": "boolean",
                            "description": "True when a next page has results (and is within the page limit).",
                        },
                        "next": {
                            "type": "string",
                            "nullable": True,
                            "description": "The URL (path and query) of the next page when has_more, else null.",
                        },
                        "did_you_mean": {
                            "type": "object",
                            "nullable": True,
                            "additionalProperties": False,
                            "required": ["query", "total", "kind", "dropped"],
                            "description": (
                                "The correction the search page shows, or null: only when the query has no full"
                                " match, or when the suggestion has at least three times as many."
                            ),
                            "properties": {
                                "query": {"type": "string", "minLength": 1, "description": "The suggested query."},
                                "total": {
                                    "type": "integer",
                                    "minimum": 1,
                                    "description": "Articles with every word of the suggested query.",
                                },
                                "kind": {
                                    "type": "string",
                                    "enum": ["respell", "drop"],
                                    "description": (
                                        "respell: pinyin, a same-sounding word or a near spelling turned into"
                                        " title words; drop: the query without one word."
                                    ),
                                },
                                "dropped": {
                                    "type": "string",
                                    "nullable": True,
                                    "description": "The word left out (kind drop), else null.",
                                },
                            },
                        },
                    },
                },
                "Hit": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": [
                        "id",
                        "title",
                        "url",
                        "doc_url",
                        "address",
                        "date",
                        "source",
                        "tags",
                        "score",
                        "title_html",
                        "snippet_html",
                        "missing",
                        "similar",
                    ],
                    "properties": {
                        "id": {"type": "string"},
                        "title": {"type": "string"},
                        "url": {"type": "string"},
                        "doc_url": {
                            "type": "string",
                            "description": (
                                "The path and query of the article's page on this server (/doc/…, the id"
                                " percent-encoded with its slashes as %2F, then ?q= the query), which shows"
                                " the whole stored text with the matches marked."
                            ),
                        },
                        "address": {
                            "type": "string",
                            "description": (
                                "Where the article lives, for people: host and path of its url, else its file"
                                " under the folder indexed (with :line for a record in a multi-record file)."
                            ),
                        },
                        "date": DATE_SCHEMA,
                        "source": {"type": "string"},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "score": {"type": "number"},
                        "title_html": {"type": "string", "description": "HTML-escaped title, matches in <mark>."},
                        "snippet_html": {"type": "string", "description": "HTML-escaped snippet, matches in <mark>."},
                        "missing": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "The typed words this article lacks; empty for a full match.",
                        },
                        "similar": {
                            "type": "array",
                            "description": (
                                "Near-duplicates folded into this result (the same title and the same first 200"
                                " characters of the text, compared after folding case, width and traditional"
                                " characters), best first. They count in total but take no place in the list."
                            ),
                            "items": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["id", "title", "url", "doc_url", "date", "source"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "title": {"type": "string"},
                                    "url": {"type": "string"},
                                    "doc_url": {"type": "string"},
                                    "date": DATE_SCHEMA,
                                    "source": {"type": "string"},
                                },
                            },
                        },
                    },
                },
                "Suggestions": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["query", "suggestions"],
                    "properties": {
                        "query": {"type": "string"},
                        "suggestions": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["text", "pinyin", "documents", "query"],
                                "properties": {
                                    "text": {"type": "string", "description": "The suggested word."},
                                    "pinyin": {"type": "string", "description": "Its pinyin, syllables spaced."},
                                    "documents": {"type": "integer", "minimum": 1},
                                    "query": {
                                        "type": "string",
                                        "description": "The query with its last word completed.",
                                    },
                                },
                            },
                        },
                    },
                },
                "Document": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": [
                        "id",
                        "title",
                        "body",
                        "date",
                        "source",
                        "tags",
                        "url",
                        "title_html",
                        "body_html",
                        "title_matches",
                        "matches",
                    ],
                    "properties": {
                        "id": {"type": "string"},
                        "title": {"type": "string"},
                        "body": {"type": "string"},
                        "date": DATE_SCHEMA,
                        "source": {"type": "string"},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "url": {"type": "string"},
                        "title_html": {"type": "string", "description": "HTML-escaped title, matches of q in <mark>."},
                        "body_html": {
                            "type": "string",
                            "description": (
                                "The whole body, HTML-escaped, as <p> paragraphs (at blank lines, <br> at line"
                                " breaks), matches of q in <mark>. Markdown is shown as written."
                            ),
                        },
                        "title_matches": {
                            **offsets,
                            "description": "[start, end) of each match of q in title, in Unicode code points.",
                        },
                        "matches": {
                            **offsets,
                            "description": (
                                "[start, end) of each match of q in body, in Unicode code points of the stored"
                                " text (not UTF-16 units); sorted, not overlapping. Empty without q."
                            ),
                        },
                    },
                },
                "Health": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["status", "documents"],
                    "properties": {
                        "status": {
                            "type": "string",
                            "enum": ["ok", "degraded"],
                            "description": "degraded: searches work, but the index cannot be written (writable false).",
                        },
                        "documents": {"type": "integer"},
                        "warnings": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "Problems to fix, such as a user dictionary that differs from the index's.",
                        },
                        "writable": {
                            "type": "boolean",
                            "description": "Typesense only: false while the cluster has no leader, so writes fail.",
                        },
                        "nodes": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "string",
                                "enum": ["leader", "follower", "lagging", "no leader", "down"],
                            },
                            "description": "Typesense only: each node's URL and its state.",
                        },
                    },
                },
            }
        },
    }
