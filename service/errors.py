"""One error shape: ``{"error": {"code", "message"}}`` under /api/, a friendly page elsewhere."""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from indexer import IndexerError, IndexMissingError, QueryError, SchemaMismatchError

# How the server's worker (indexer/server.py, HTTP_ERROR_KEY) asks for an error page: the WSGI environ
# holds (status, message) for a request gunicorn refused before the app could see it (request line
# too long, headers too large, malformed). Only the server sets it; no client header can.
SERVER_ERROR_KEY = "zhsearch.http_error"


class RequestError(Exception):
    """A client error with a machine-readable code, a message for programs, and one for the page (Chinese)."""

    def __init__(self, status: int, code: str, message: str, page_message: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.page_message = status, code, message, page_message


# What the page says (it speaks Chinese) when the error has no message of its own for people; the JSON
# keeps its code and English message.
_PAGE_MESSAGES = {
    "invalid_parameter": "请求的参数有误，请检查链接后再试。",
    "missing_query": "请输入搜索词，或选择来源、标签、日期。",
    "index_unavailable": "搜索服务暂时不可用：索引还没有建好或需要重建，请稍后再试或联系管理员。",
    "index_error": "搜索服务暂时出错，请稍后再试。",
    "internal_error": "服务器出错了，请稍后再试。",
}
_PAGE_MESSAGES_BY_STATUS = {
    400: "请求有误，请检查链接后再试。",
    404: "找不到这个页面，它可能已被移动或删除。",
    405: "不支持这种请求方式。",
    408: "请求超时，请再试一次。",
    413: "请求内容太大了。",
    414: "链接太长了，请缩短搜索词后再试。",
    431: "请求头太大了。",
}


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def error_response(status: int, code: str, message: str, page_message: str | None = None) -> tuple[Response | str, int]:
    """Render an error as JSON for API paths and as the error page, in Chinese, otherwise."""
    if _wants_json():
        return jsonify({"error": {"code": code, "message": message}}), status
    shown = page_message or _PAGE_MESSAGES.get(code) or _PAGE_MESSAGES_BY_STATUS.get(status)
    if shown is None:
        shown = "服务暂时不可用，请稍后再试。" if status >= 500 else "请求有误，请检查链接后再试。"
    return render_template("error.html", status=status, message=shown), status


def _code_for(status: int) -> str:
    return {
        400: "bad_request",
        404: "not_found",
        405: "method_not_allowed",
        408: "request_timeout",
        413: "too_large",
        414: "uri_too_long",
        417: "expectation_failed",
        431: "headers_too_large",
        500: "internal_error",
        501: "not_implemented",
    }.get(status, "http_error")


def register(app: Flask) -> None:
    """Install the error handlers on ``app``."""

    def _server_error() -> None:
        found = request.environ.get(SERVER_ERROR_KEY)
        if found is not None:
            status, message = found
            raise RequestError(status, _code_for(status), message)

    # First of all the checks: the request's URL was never parsed, so no other check applies.
    app.before_request_funcs.setdefault(None, []).insert(0, _server_error)

    @app.errorhandler(RequestError)
    def _request_error(exc: RequestError) -> tuple[Response | str, int]:
        return error_response(exc.status, exc.code, exc.message, exc.page_message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        body, _ = error_response(status, _code_for(status), exc.description or exc.name)
        response = app.make_response((body, status))
        # Keep what the exception says about the request, such as Allow on a 405 (RFC 9110).
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(QueryError)
    def _query_error(exc: QueryError) -> tuple[Response | str, int]:
        return error_response(400, "invalid_parameter", str(exc), "搜索条件有误，请检查后再试。")

    @app.errorhandler(IndexerError)
    def _index_error(exc: IndexerError) -> tuple[Response | str, int]:
        # A missing or outdated index is an operator problem: 503, with the fix.
        if isinstance(exc, IndexMissingError | SchemaMismatchError):
            return error_response(503, "index_unavailable", str(exc))
        app.logger.exception("index error")
        return error_response(503, "index_error", str(exc))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response | str, int]:
        app.logger.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; the server log has the details")
