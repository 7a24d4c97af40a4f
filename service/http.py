"""HTTP caching and compression: ETags keyed to the index generation, versioned static files, gzip/Brotli.

A search answer changes only when the index does (or the server is
restarted with other code or settings), so its ETag is a digest of the
index generation, the app's start-up and the request's path and query; a
client that sends it back in ``If-None-Match`` gets a ``304`` before any
search runs. ``Cache-Control: no-cache`` makes caches ask every time, so a
rebuild is seen at once. Static files are linked with a digest of their
content (``/static/style.css?v=…``) and cached for a year.

Compression is Flask-Compress: it negotiates ``Accept-Encoding``, adds
``Vary``, and gives each encoding its own ETag (``"…:gzip"``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask_compress import Compress

from indexer import Searcher

# Endpoints whose answers depend only on the request and the index.
CACHEABLE = frozenset(
    {"search.index", "search.api_search", "search.api_suggest", "search.api_document", "search.document"}
)
# How often each worker asks the store whether the index changed.
GENERATION_RECHECK_S = 2.0
STATIC_MAX_AGE_S = 365 * 24 * 3600
COMPRESS_MIMETYPES = ["text/html", "application/json", "text/css", "text/javascript", "image/svg+xml"]


class IndexGeneration:
    """What identifies the live index's content, asked of the store at most every ``recheck_s`` seconds."""

    def __init__(self, searcher: Searcher, recheck_s: float = GENERATION_RECHECK_S) -> None:
        self.searcher = searcher
        self.recheck_s = recheck_s
        self._lock = threading.Lock()
        self._key = ""
        self._checked = -float("inf")

    def key(self) -> str:
        """A string that changes whenever the index is rebuilt, added to or synced."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= self.recheck_s:
                info = self.searcher.info()
                self._key = f"{info.built_at}|{info.updated_at}|{info.documents}|{info.size_bytes}"
                self._checked = now
            return self._key


def _etag() -> str | None:
    """The ETag of this request's answer, or None when it is not cacheable."""
    if request.method not in ("GET", "HEAD") or request.endpoint not in CACHEABLE or g.get("uncacheable"):
        return None
    generation: IndexGeneration = current_app.extensions["zhsearch.generation"]
    digest = hashlib.sha256()
    for part in (current_app.extensions["zhsearch.started"], generation.key(), request.full_path):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()[:32]


def _not_modified() -> Response | None:
    """A 304 before the search runs, when the client already holds this answer in any encoding."""
    if not request.if_none_match:
        return None
    etag = _etag()
    if etag is None:
        return None
    # Flask-Compress tags an encoded answer "<etag>:<encoding>"; any of them is the same answer.
    held = [tag for tag in request.if_none_match.as_set() if tag.partition(":")[0] == etag]
    if not held:
        return None
    response = Response(status=304)
    response.set_etag(sorted(held)[0])
    response.headers["Cache-Control"] = "no-cache"
    response.vary.add("Accept-Encoding")
    return response


def _add_validators(response: Response) -> Response:
    if response.status_code == 200:
        etag = _etag()
        if etag is not None:
            response.set_etag(etag)
            response.headers["Cache-Control"] = "no-cache"
            # The answer as it is (not encoded) may already be what the client holds.
            response.make_conditional(request)
        elif request.endpoint == "static" and request.args.get("v"):
            response.headers["Cache-Control"] = f"public, max-age={STATIC_MAX_AGE_S}, immutable"
    return response


def _static_digests(app: Flask) -> dict[str, str]:
    folder = Path(app.static_folder or "")
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in folder.rglob("*")
        if path.is_file()
    }


def register(app: Flask, searcher: Searcher) -> None:
    """Install compression, ETags with ``304`` answers, and versioned static URLs on ``app``."""
    app.extensions["zhsearch.generation"] = IndexGeneration(searcher)
    # The app is built once in gunicorn's master: every worker shares this, so their ETags agree.
    app.extensions["zhsearch.started"] = f"{time.time_ns()}"
    digests = _static_digests(app)

    @app.url_defaults
    def _version_static(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == "static" and "v" not in values and values.get("filename") in digests:
            values["v"] = digests[values["filename"]]

    app.before_request(_not_modified)
    app.config.setdefault("COMPRESS_MIMETYPES", COMPRESS_MIMETYPES)
    app.config.setdefault("COMPRESS_ALGORITHM", ["br", "gzip"])
    app.config.setdefault("COMPRESS_MIN_SIZE", 500)
    Compress(app)
    # Registered after Compress: Flask runs after_request functions last-registered first, so the
    # ETag is set on the plain answer, then Flask-Compress tags its encoding and re-checks it.
    app.after_request(_add_validators)
