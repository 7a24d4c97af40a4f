"""The search page, the JSON API, suggestions, document lookup and the health check."""

from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from flask import Blueprint, Response, current_app, g, render_template, request, url_for

from indexer import (
    MODES,
    SORTS,
    Hit,
    QuerySuggestion,
    Searcher,
    SearchPage,
    Suggester,
    SuggesterCache,
    TypedDate,
    did_you_mean,
    format_date,
    full_matches,
    titles_with,
    typed_dates,
)

from .errors import RequestError
from .limits import DEFAULT_SUGGESTIONS, MAX_DOC_ID_CHARS, MAX_FILTER_CHARS, MAX_FILTER_VALUES, MAX_SUGGESTIONS
from .openapi import openapi_document

bp = Blueprint("search", __name__)

# Tabs and newlines pasted into the box are just spaces.
_SPACE_CONTROLS = {"\t", "\n", "\r"}
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A whole number as the API writes it: ASCII digits, no sign, space or leading zero.
_INT_RE = re.compile(r"0|[1-9][0-9]*")
# The last word of a query being typed may carry an exclusion or a text-field prefix.
_LAST_WORD_RE = re.compile(r"(?P<prefix>-|(?:title|body):)?(?P<word>.*)", re.S)


@dataclass(frozen=True)
class SearchArgs:
    """Validated search parameters, shared by the page and the API."""

    q: str
    page: int
    size: int
    sources: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None
    sort: str = "relevance"
    mode: str = "auto"
    default_size: int = field(default=10, compare=False)

    @property
    def has_filters(self) -> bool:
        """True when a source, tag or date filter narrows the results."""
        return bool(self.sources or self.tags or self.date_from or self.date_to)

    @property
    def typed_dates(self) -> list[TypedDate]:
        """The ``date:`` filters typed in the query, which the page shows as chips and in its date inputs."""
        return typed_dates(self.q)

    @property
    def q_without_dates(self) -> str:
        """The query with every typed ``date:`` filter taken out."""
        q = self.q
        while found := typed_dates(q):
            q = found[0].rest
        return q

    @property
    def date_inputs(self) -> tuple[date | None, date | None, str]:
        """The date form's from and to, and the query it sends: a lone typed ``date:`` moves into the inputs."""
        typed = self.typed_dates
        if self.date_from or self.date_to or len(typed) != 1:
            return self.date_from, self.date_to, self.q
        return typed[0].first_day, typed[0].last_day, typed[0].rest

    def params(self, *, explicit: bool = False) -> list[tuple[str, str]]:
        """GET parameters in a fixed order, defaults left out (all of them with ``explicit``)."""
        out: list[tuple[str, str]] = [("q", self.q)] if self.q or explicit else []
        out += [("source", s) for s in self.sources]
        out += [("tag", t) for t in self.tags]
        if self.date_from:
            out.append(("from", self.date_from.isoformat()))
        if self.date_to:
            out.append(("to", self.date_to.isoformat()))
        if self.sort != "relevance" or explicit:
            out.append(("sort", self.sort))
        if self.mode != "auto":
            out.append(("mode", self.mode))
        if self.page > 1 or explicit:
            out.append(("page", str(self.page)))
        if self.size != self.default_size or explicit:
            out.append(("size", str(self.size)))
        return out

    def url(self, **changes: Any) -> str:
        """The search page's URL for these arguments with ``changes``; filter changes go back to page 1."""
        if changes.keys() - {"page", "size"}:
            changes.setdefault("page", 1)
        args = replace(self, **changes)
        query = urlencode(args.params())
        return url_for("search.index") + ("?" + query if query else "")

    def toggle(self, name: str, value: str) -> str:
        """URL that adds ``value`` to the ``sources`` or ``tags`` filter, or removes it if present."""
        current: tuple[str, ...] = getattr(self, name)
        updated = tuple(v for v in current if v != value) if value in current else (*current, value)
        return self.url(**{name: updated})


def _searcher() -> Searcher:
    searcher: Searcher = current_app.extensions["zhsearch.searcher"]
    return searcher


def _suggester() -> Suggester:
    cache: SuggesterCache = current_app.extensions["zhsearch.suggester"]
    return cache.get()


def _invalid(message: str, page_message: str) -> RequestError:
    return RequestError(400, "invalid_parameter", message, page_message)


# The parameters' names on the page (the JSON names them as in the URL).
_PARAM_NAMES = {
    "page": "页码",
    "size": "每页条数",
    "limit": "提示条数",
    "source": "来源",
    "tag": "标签",
    "from": "开始日期",
    "to": "结束日期",
}


def _has_controls(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" and ch not in _SPACE_CONTROLS for ch in text)


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    # Checked before int() sees it: int() accepts " 5", "+5" and "５", and
    # fails on thousands of digits; a number longer than ``high`` is too big anyway.
    if len(raw) > len(str(high)) or not _INT_RE.fullmatch(raw) or not low <= int(raw) <= high:
        raise _invalid(
            f"{name} must be a whole number from {low} to {high}",
            f"{_PARAM_NAMES.get(name, name)}应是 {low} 到 {high} 之间的整数。",
        )
    return int(raw)


def _query_arg() -> str:
    q = request.args.get("q", "")
    if _has_controls(q):
        raise RequestError(
            400, "invalid_query", "the query contains control characters", "搜索词里有看不见的控制字符，请删掉后再搜。"
        )
    limit = current_app.config["MAX_QUERY_CHARS"]
    if len(q) > limit:
        raise RequestError(
            400,
            "query_too_long",
            f"the query is longer than {limit} characters",
            f"搜索词太长了：最多 {limit} 个字符，请缩短后再搜。",
        )
    return " ".join(q.split())


def _values_arg(name: str) -> tuple[str, ...]:
    raw = request.args.getlist(name)
    if len(raw) > MAX_FILTER_VALUES:
        raise _invalid(
            f"{name} may be given at most {MAX_FILTER_VALUES} times",
            f"{_PARAM_NAMES.get(name, name)}最多同时选 {MAX_FILTER_VALUES} 个。",
        )
    for value in raw:
        if len(value) > MAX_FILTER_CHARS:
            raise _invalid(
                f"each {name} is at most {MAX_FILTER_CHARS} characters",
                f"每个{_PARAM_NAMES.get(name, name)}最长 {MAX_FILTER_CHARS} 个字符。",
            )
        if _has_controls(value):
            raise _invalid(f"{name} contains control characters", f"{_PARAM_NAMES.get(name, name)}里有控制字符。")
    # Blank values are no filter; repeated ones count once.
    return tuple(dict.fromkeys(v for v in (" ".join(r.split()) for r in raw) if v))


def _date_arg(name: str) -> date | None:
    raw = request.args.get(name, "")
    if not raw:
        # What the page's date form sends for a blank field.
        return None
    try:
        if not _DATE_RE.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise _invalid(
            f"{name} must be a date written YYYY-MM-DD, from 0001-01-01 to 9999-12-31, such as 2025-06-30",
            f"{_PARAM_NAMES.get(name, name)}应写成“年-月-日”，如 2025-06-30（0001-01-01 到 9999-12-31 之间）。",
        ) from None


def _search_args() -> SearchArgs:
    """Validate the search parameters once, for both the HTML page and the JSON API."""
    cfg = current_app.config
    date_from, date_to = _date_arg("from"), _date_arg("to")
    if date_from and date_to and date_from > date_to:
        # A range typed the wrong way round still names the days between.
        date_from, date_to = date_to, date_from
    sort = request.args.get("sort", "relevance")
    if sort not in SORTS:
        raise _invalid(f"sort must be one of: {', '.join(SORTS)}", "排序方式只能是相关度、最新或最早。")
    mode = request.args.get("mode", "auto")
    if mode not in MODES:
        raise _invalid(f"mode must be one of: {', '.join(MODES)}", f"匹配方式（mode）只能是 {'、'.join(MODES)}。")
    return SearchArgs(
        q=_query_arg(),
        page=_int_arg("page", 1, 1, cfg["MAX_PAGE"]),
        size=_int_arg("size", cfg["PER_PAGE"], 1, cfg["MAX_PAGE_SIZE"]),
        sources=_values_arg("source"),
        tags=_values_arg("tag"),
        date_from=date_from,
        date_to=date_to,
        sort=sort,
        mode=mode,
        default_size=cfg["PER_PAGE"],
    )


def _time_limit() -> float | None:
    limit = float(current_app.config["SEARCH_TIME_LIMIT"])
    return limit if limit > 0 else None


def _deadline() -> float | None:
    """The request's one deadline (a ``time.monotonic()`` value), set by its first search; None without a limit.

    Every search the request makes (the relaxed retry, "did you mean", completions) shares it, so the
    request as a whole, not each search, answers within SEARCH_TIME_LIMIT.
    """
    if "search_deadline" not in g:
        limit = _time_limit()
        g.search_deadline = time.monotonic() + limit if limit is not None else None
    deadline: float | None = g.search_deadline
    return deadline


def _day_after(day: date | None) -> datetime | None:
    """The exclusive end of a range that includes ``day`` (open after the last representable day)."""
    if day is None or day == date.max:
        return None
    return datetime.combine(day + timedelta(days=1), datetime.min.time())


def _date_bounds(args: SearchArgs) -> tuple[datetime | None, datetime | None]:
    """The ``[start, end)`` of the from/to days, for ``Searcher.search``."""
    start = datetime.combine(args.date_from, datetime.min.time()) if args.date_from else None
    end = _day_after(args.date_to)
    if args.date_to and start is None and end is None:
        # to=9999-12-31 has no day after it; starting at the first day keeps
        # the filter (documents with a date) instead of dropping it.
        start = datetime.min
    return start, end


def _run(args: SearchArgs, q: str | None = None, size: int | None = None) -> SearchPage:
    """Search with every filter of ``args``, within the request's deadline."""
    date_from, date_to = _date_bounds(args)
    page = _searcher().search(
        args.q if q is None else q,
        page=args.page if size is None else 1,
        size=size or args.size,
        sources=args.sources,
        tags=args.tags,
        date_from=date_from,
        date_to=date_to,
        sort=args.sort,
        mode=args.mode,
        facets=size is None,
        deadline=_deadline(),
    )
    if page.partial:
        # Cut short by the time limit: the same request may find more next time, so no ETag.
        g.uncacheable = True
    return page


def _did_you_mean(args: SearchArgs, result: SearchPage) -> QuerySuggestion | None:
    """The page's and the API's one "did you mean", in the time the request has left (2 s without a limit)."""
    if not args.q:
        return None
    deadline = _deadline() or time.monotonic() + 2.0

    def count(candidate: str) -> int:
        return full_matches(_run(args, q=candidate, size=1))

    return did_you_mean(args.q, result, _suggester(), count, deadline=deadline)


def _page_links(args: SearchArgs, result: SearchPage) -> dict[str, Any]:
    last = min(result.pages, current_app.config["MAX_PAGE"])
    window = range(max(1, args.page - 3), min(last, args.page + 3) + 1)
    return {
        "prev": args.url(page=args.page - 1) if args.page > 1 else None,
        "next": args.url(page=args.page + 1) if args.page < last else None,
        "first": args.url(page=1) if window.start > 1 else None,
        "pages": [(n, args.url(page=n)) for n in window],
        "last": last,
    }


def _api_url(args: SearchArgs) -> str:
    return url_for("search.api_search") + "?" + urlencode(args.params(explicit=True))


@dataclass
class HitRun:
    """Consecutive hits that lack the same words (none, for the full matches)."""

    key: tuple[str, ...]
    start: int
    items: list[Hit]
    # Whether a note above the run can say what the hits below lack: not when a full match
    # comes later (a question ranks by score, so its hits that lack a word are not all at the end).
    note: bool = False


@bp.app_template_filter("groupby_run")
def groupby_run(hits: list[Hit], attribute: str) -> list[HitRun]:
    """Split hits into runs with the same value of ``attribute`` (a list), keeping their order."""
    runs: list[HitRun] = []
    for i, hit in enumerate(hits):
        key = tuple(getattr(hit, attribute))
        if runs and runs[-1].key == key:
            runs[-1].items.append(hit)
        else:
            runs.append(HitRun(key, i, [hit]))
    full_later = False
    for run in reversed(runs):
        run.note = bool(run.key) and not full_later
        full_later = full_later or not run.key
    return runs


@bp.get("/")
def index() -> Response | str:
    """The search page: the form, and results with facets, filters, sorting and paging when asked."""
    args = _search_args()
    if not args.q and not args.has_filters:
        return render_template("search.html", args=args, result=None)
    result = _run(args)
    last = min(result.pages, current_app.config["MAX_PAGE"])
    if args.page > last and result.total:
        # A page number past the end (an old link, a shrunk index) shows the last page.
        args = replace(args, page=last)
        result = _run(args)
    suggestion = _did_you_mean(args, result)
    api_url = _api_url(args)
    body = render_template(
        "search.html",
        args=args,
        result=result,
        links=_page_links(args, result),
        api_url=api_url,
        suggestion=suggestion,
    )
    response = Response(body, mimetype="text/html")
    if api_url:
        response.headers["Link"] = f'<{api_url}>; rel="alternate"; type="application/json"'
    return response


@bp.get("/api/search")
def api_search() -> dict[str, Any]:
    """JSON twin of the page: {"query", "total", ..., "results", "did_you_mean"}, the suggestion the page shows."""
    args = _search_args()
    if not args.q and not args.has_filters:
        raise RequestError(
            400, "missing_query", "give a query (q), or a source, tag, from or to filter to list the articles it keeps"
        )
    result = _run(args)
    suggestion = _did_you_mean(args, result)
    has_more = result.page < min(result.pages, current_app.config["MAX_PAGE"]) and bool(result.hits)
    data = result.to_dict()
    data["results"] = [_with_doc_url(hit, args.q) for hit in data["results"]]
    return {
        **data,
        "did_you_mean": suggestion.to_dict() if suggestion else None,
        "has_more": has_more,
        "next": _api_url(replace(args, page=args.page + 1)) if has_more else None,
    }


def _complete(q: str, limit: int) -> list[dict[str, Any]]:
    """Suggestions for the last word of ``q``, each with the whole query it would make."""
    head, sep, last = q.rpartition(" ")
    m = _LAST_WORD_RE.fullmatch(last)
    if m is None or not m.group("word"):
        return []
    prefix = m.group("prefix") or ""
    verify = titles_with(_searcher(), deadline=_deadline())
    return [
        {**s.to_dict(), "query": head + sep + prefix + s.text}
        for s in _suggester().suggest(m.group("word"), limit=limit, verify=verify)
    ]


@bp.get("/api/suggest")
def api_suggest() -> dict[str, Any]:
    """Completions for the last word typed: {"query", "suggestions": [{"text", "pinyin", "documents", "query"}]}."""
    q = _query_arg()
    limit = _int_arg("limit", DEFAULT_SUGGESTIONS, 1, MAX_SUGGESTIONS)
    # After a space the last word is finished and the next not begun: nothing to complete.
    finished = request.args.get("q", "")[-1:].isspace()
    return {"query": q, "suggestions": _complete(q, limit) if q and not finished else []}


@bp.get("/api/openapi.json")
def api_openapi() -> dict[str, Any]:
    """The OpenAPI 3 description of this API."""
    return openapi_document(current_app.config)


def _doc_id_arg(doc_id: str) -> str:
    """``doc_id`` if it can be an id (no control characters, at most MAX_DOC_ID_CHARS), else a 400."""
    if _has_controls(doc_id) or len(doc_id) > MAX_DOC_ID_CHARS:
        raise _invalid(
            f"a document id is at most {MAX_DOC_ID_CHARS} characters, without control characters",
            f"文章编号最长 {MAX_DOC_ID_CHARS} 个字符，且不能含控制字符。",
        )
    return doc_id


@bp.app_template_global("doc_url")
def doc_url(doc_id: str, q: str = "") -> str:
    """The document page's address for ``doc_id``, with the query whose matches it marks."""
    # The id is one path segment, its slashes encoded (%2F): a browser resolves "." and ".." segments
    # of an address before sending it, so "a/../b" written with plain slashes would open "b".
    address = url_for("search.index") + "doc/" + quote(doc_id, safe="")
    return address + ("?" + urlencode({"q": q}) if q else "")


def _with_doc_url(hit: dict[str, Any], q: str) -> dict[str, Any]:
    """A result's JSON with ``doc_url`` after ``url``, in it and in each of its near-duplicates."""
    out: dict[str, Any] = {}
    for key, value in hit.items():
        out[key] = [_with_doc_url(item, q) for item in value] if key == "similar" else value
        if key == "url":
            out["doc_url"] = doc_url(hit["id"], q)
    return out


def _is_web_url(url: str) -> bool:
    return url.startswith(("http://", "https://"))


# merge_slashes=False: an id may hold "//" (a/b//c), which must not be redirected to another id.
@bp.get("/doc/<path:doc_id>", merge_slashes=False)
def document(doc_id: str) -> Response:
    """The document page: the whole stored article, its metadata, and the matches of ``q`` marked."""
    doc_id = _doc_id_arg(doc_id)
    q = _query_arg()
    view = _searcher().document(doc_id, q, deadline=_deadline())
    if view is None:
        raise RequestError(
            404, "not_found", f"no document with id {doc_id!r}", f"没有编号为“{doc_id}”的文章，它可能已从索引中删除。"
        )
    body = render_template(
        "doc.html",
        view=view,
        doc=view.doc,
        q=q,
        date=format_date(view.doc.date),
        original=view.doc.url if _is_web_url(view.doc.url) else "",
        back_url=url_for("search.index") + ("?" + urlencode({"q": q}) if q else ""),
        api_url=url_for("search.api_document", doc_id=doc_id) + ("?" + urlencode({"q": q}) if q else ""),
    )
    return Response(body, mimetype="text/html")


@bp.get("/api/documents/<path:doc_id>")
def api_document(doc_id: str) -> dict[str, Any]:
    """One stored document by id, with the matches of ``q`` marked, or a 404 error.

    Ids are looked up in the index, never on disk.
    """
    doc_id = _doc_id_arg(doc_id)
    view = _searcher().document(doc_id, _query_arg(), deadline=_deadline())
    if view is None:
        raise RequestError(404, "not_found", f"no document with id {doc_id!r}")
    return view.to_dict()


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    """Readiness and size: {"status": "ok" | "degraded", "documents": N, "warnings": [...]}, plus a cluster's state."""
    details = _searcher().info()
    health: dict[str, Any] = {
        "status": details.status,
        "documents": details.documents,
        "warnings": list(details.warnings),
    }
    # Only a cluster has a leader and nodes; a local index reports neither.
    if details.writable is not None:
        health["writable"] = details.writable
    if details.nodes:
        health["nodes"] = dict(details.nodes)
    return health
