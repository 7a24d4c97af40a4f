"""Request hygiene and response headers: strict URL decoding, security headers, opt-in CORS.

CORS is a dozen lines here rather than flask-cors: the API is read-only GET
with no credentials, so all it needs is Access-Control-Allow-Origin for the
configured origins and an answer to preflight requests; a dependency would add
options nobody should turn on (credentials, arbitrary headers).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from flask import Flask, Response, current_app, request

from .errors import RequestError

# No inline script or style anywhere: every script and stylesheet is a file under /static/.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # Result links leave the site: send them the origin only, never the URL with the query.
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "DENY",
}
_BAD_PERCENT_RE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_PERCENT_RE = re.compile(rb"%([0-9A-Fa-f]{2})")
CORS_MAX_AGE = 600
# What a cross-origin client may send beyond the CORS-safelisted headers: If-None-Match, to revalidate
# an answer by its ETag. Clients may read Link (the JSON twin, the next page) and ETag.
CORS_ALLOW_HEADERS = "If-None-Match"
CORS_EXPOSE_HEADERS = "Link, ETag"


def _percent_decode(raw: bytes) -> bytes:
    return _PERCENT_RE.sub(lambda m: bytes([int(m.group(1), 16)]), raw.replace(b"+", b" "))


def check_url() -> None:
    """Reject a URL that is not valid percent-encoded UTF-8 instead of guessing what it meant."""
    query = request.query_string
    if _BAD_PERCENT_RE.search(query):
        raise RequestError(400, "invalid_parameter", "the query string has a % not followed by two hex digits")
    try:
        _percent_decode(query).decode("utf-8")
        # The server has already percent-decoded the path, as bytes in a latin-1 str (PEP 3333).
        request.environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise RequestError(400, "invalid_parameter", "the URL is not valid UTF-8") from None


def cors_origins(setting: str | Iterable[str] | None) -> list[str]:
    """CORS_ORIGINS as a list: it may be a list, or a string of origins separated by commas or spaces."""
    if not setting:
        return []
    if isinstance(setting, str):
        return [o for o in re.split(r"[\s,]+", setting) if o]
    return [str(o) for o in setting]


def _add_cors(response: Response) -> None:
    origins = cors_origins(current_app.config.get("CORS_ORIGINS"))
    origin = request.headers.get("Origin")
    if not origins or not (request.path.startswith("/api/") or request.path == "/healthz"):
        return
    if "*" in origins:
        response.headers["Access-Control-Allow-Origin"] = "*"
    else:
        response.vary.add("Origin")
        if origin not in origins:
            return
        response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = "GET, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
        response.headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE)


def register(app: Flask) -> None:
    """Install URL checking, security headers and CORS on ``app``."""
    app.before_request(check_url)

    @app.after_request
    def _headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        _add_cors(response)
        return response
