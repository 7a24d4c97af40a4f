"""The search page, the JSON API, document lookup and the health check."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, render_template, request, url_for

from indexer import Searcher, SearchPage, document_dict

from .errors import RequestError

bp = Blueprint("search", __name__)

# Tabs and newlines pasted into the box are just spaces.
_SPACE_CONTROLS = {"\t", "\n", "\r"}


@dataclass(frozen=True)
class SearchArgs:
    """Validated search parameters, shared by the page and the API."""

    q: str
    page: int
    size: int


def _searcher() -> Searcher:
    searcher: Searcher = current_app.extensions["zhsearch.searcher"]
    return searcher


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise RequestError(400, "invalid_parameter", f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def _query_arg() -> str:
    q = request.args.get("q", "")
    if any(unicodedata.category(ch) == "Cc" and ch not in _SPACE_CONTROLS for ch in q):
        raise RequestError(400, "invalid_query", "the query contains control characters")
    q = " ".join(q.split())
    limit = current_app.config["MAX_QUERY_CHARS"]
    if len(q) > limit:
        raise RequestError(400, "query_too_long", f"the query is longer than {limit} characters")
    return q


def _search_args() -> SearchArgs:
    """Validate ?q=&page=&size= once, for both the HTML page and the JSON API."""
    cfg = current_app.config
    return SearchArgs(
        q=_query_arg(),
        page=_int_arg("page", 1, 1, cfg["MAX_PAGE"]),
        size=_int_arg("size", cfg["PER_PAGE"], 1, cfg["MAX_PAGE_SIZE"]),
    )


def _page_links(args: SearchArgs, result: SearchPage) -> dict[str, Any]:
    last = min(result.pages, current_app.config["MAX_PAGE"])

    def link(page: int) -> str:
        params: dict[str, Any] = {"q": args.q}
        if page > 1:
            params["page"] = page
        if args.size != current_app.config["PER_PAGE"]:
            params["size"] = args.size
        return url_for("search.index") + "?" + urlencode(params)

    window = range(max(1, args.page - 3), min(last, args.page + 3) + 1)
    return {
        "prev": link(args.page - 1) if args.page > 1 else None,
        "next": link(args.page + 1) if args.page < last else None,
        "pages": [(n, link(n)) for n in window],
        "last": last,
    }


@bp.get("/")
def index() -> Response | str:
    """The search form; shows results when ?q= is present."""
    args = _search_args()
    if not args.q:
        return render_template("search.html", q="", result=None)
    result = _searcher().search(args.q, page=args.page, size=args.size)
    api_url = url_for("search.api_search") + "?" + urlencode({"q": args.q, "page": args.page, "size": args.size})
    body = render_template("search.html", q=args.q, result=result, links=_page_links(args, result), api_url=api_url)
    response = Response(body, mimetype="text/html")
    response.headers["Link"] = f'<{api_url}>; rel="alternate"; type="application/json"'
    return response


@bp.get("/api/search")
def api_search() -> dict[str, Any]:
    """JSON twin of the page: {"query", "total", "page", "size", "took_ms", "results": [...]}."""
    args = _search_args()
    if not args.q:
        raise RequestError(400, "missing_query", "the q parameter is required and must not be blank")
    return _searcher().search(args.q, page=args.page, size=args.size).to_dict()


@bp.get("/api/documents/<path:doc_id>")
def api_document(doc_id: str) -> dict[str, Any]:
    """One stored document by id, or a 404 error."""
    doc = _searcher().get(doc_id)
    if doc is None:
        raise RequestError(404, "not_found", f"no document with id {doc_id!r}")
    return document_dict(doc)


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    """Liveness and size: {"status": "ok", "documents": N}."""
    return {"status": "ok", "documents": _searcher().info().documents}
