"""Run the web service under gunicorn, with a worker that slow or malformed clients cannot block.

The app is named by string ("service:create_app()") and imported by gunicorn,
so ``indexer`` itself never imports Flask.

Why a worker of our own: gunicorn's sync worker reads a request's head with a
blocking ``recv``, so two connections that send a byte every few seconds hold
both workers until the worker timeout kills them; its gthread worker hands a
connection to a thread as soon as the first byte arrives, so N trickling
connections hold N threads. ``HeadBufferingWorker`` is gthread with three
changes:

1. The worker's event loop reads every request head without blocking, into a
   buffer of at most ``HEAD_LIMIT`` bytes, and hands the connection to a thread
   only once the whole head is there. A head that does not arrive within
   ``HEADER_TIMEOUT_S`` gets a 408; an idle keep-alive connection is closed
   after ``KEEPALIVE_S``. A slow client costs a socket and a buffer, not a thread.
2. The app runs one request at a time per worker. Searches are CPU-bound
   Python, so threads of one process would not search faster, and the index
   is not safe to search from two threads at once: one Whoosh searcher's file
   reads interleave (six threads sharing a ``Searcher`` got corrupt-postings
   and decompression errors on most searches). The ``THREADS`` threads parse
   heads, wait for the app and write answers, so clients that read their
   answer slowly do not hold up the others.
3. Requests gunicorn refuses (request line too long, headers too large or too
   many, malformed) are answered by the app: the worker calls it with
   ``HTTP_ERROR_KEY`` in the WSGI environ, and ``service/errors.py`` renders
   that error in the API's JSON shape under /api/ and as the error page elsewhere.
"""

from __future__ import annotations

import errno
import io
import re
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.http import errors as http_errors
from gunicorn.util import http_date, import_app
from gunicorn.workers.gthread import TConn, ThreadWorker

APP_SPEC = "service:create_app()"
# The WSGI environ key of an error the worker asks the app to render: (status, message).
HTTP_ERROR_KEY = "zhsearch.http_error"

# The longest request line: a query of 256 Chinese characters is 2,300 bytes
# percent-encoded, before any filters. Longer lines get a 414.
LIMIT_REQUEST_LINE = 8190
# At most this many header fields, each at most this long (gunicorn's defaults), and
# the whole head (request line and headers) at most HEAD_LIMIT, as nginx's default
# 4 x 8 KB buffers allow; more gets a 431. HEAD_LIMIT also bounds what a waiting
# connection costs: 1,000 of them (gunicorn's worker_connections) hold at most 32 MB.
LIMIT_REQUEST_FIELDS = 100
LIMIT_REQUEST_FIELD_SIZE = 8190
HEAD_LIMIT = 32 * 1024
# Seconds a client has to send a whole request head, from when it connects (or
# sends the first byte of its next request on a kept-alive connection).
HEADER_TIMEOUT_S = 10.0
# Seconds an idle keep-alive connection stays open.
KEEPALIVE_S = 5
# Seconds a thread waits on one blocked write (or body read) before it drops the client.
IO_TIMEOUT_S = 10.0
# After the answer to a request that closes its connection, how long the event loop
# drains what the client still sends, so that the kernel does not reset the connection
# (and lose the answer) over unread bytes (RFC 9112, section 9.6).
LINGER_S = 2.0
LINGER_MAX_BYTES = 64 * 1024
# Threads per worker: each holds one connection while it waits for the app or writes the answer.
THREADS = 8
# A worker accepts new connections only while fewer requests than this are handed to its threads,
# and closes a kept-alive connection after its answer when another request is waiting: a busy
# worker leaves new clients in the listen queue, first come first served, for whichever worker is
# free, as sync workers do; otherwise one worker may queue many requests while the other is idle.
ACCEPT_BELOW = 1
# Seconds one app call may run before the worker stops reporting to gunicorn's master,
# which then kills and replaces it after the worker timeout: a hung request costs a
# restart, as with sync workers. A search stops at SEARCH_TIME_LIMIT (2 s by default)
# and returns what it found, so only a real hang, or a machine too loaded to finish a
# 2 s search and its highlighting in 30 s, gets there; lower would kill workers that
# are merely slow under load, higher would leave a hung worker's queue waiting longer.
WORKER_TIMEOUT_S = 30
# The event loop reports to the master at least this often (gthread's poll interval).
_LOOP_TICK_S = 1.0
# How often the event loop looks for parked connections past their deadline.
_EXPIRE_EVERY_S = 0.25
_RECV_BYTES = 64 * 1024
# The start of a request head kept to choose the error's shape (the method and the start of the path).
_FIRST_BYTES = 512
_BARE_LF = re.compile(rb"(?<!\r)\n")


class _HeaderTimeout(Exception):
    """The client did not send a whole request head within HEADER_TIMEOUT_S."""


class _BareLineFeed(http_errors.ParseException):  # type: ignore[misc]
    """A line of the request head ends in LF alone, which gunicorn refuses (RFC 9112 asks for CRLF)."""

    def __str__(self) -> str:
        return "a line of the request head ends in a bare LF, not CRLF"


class _Conn(TConn):  # type: ignore[misc]
    """A client connection, with the head read so far and when it must be complete."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.head = bytearray()
        self.scanned = 0  # bytes of ``head`` searched for the end of the head
        self.line_end = -1  # where the request line ends in ``head``, once seen
        self.deadline = 0.0
        self.lingering = False
        self.drained = 0
        self.dispatched = False  # handed to a thread with a whole request head
        # The start of the request line, kept for choosing the error's shape.
        self.first_bytes = b""


class HeadBufferingWorker(ThreadWorker):  # type: ignore[misc]
    """gthread, with request heads read by the event loop and unparsable requests answered by the app."""

    wsgi: Callable[..., Iterable[bytes]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Connections in the event loop (reading a head, idle between requests, or lingering), oldest first:
        # a dict keeps the order in which they were parked.
        self.parked: dict[_Conn, None] = {}
        self.app_lock = threading.Lock()
        # Requests handed to a thread and not yet back in the event loop. Counted from the hand-over,
        # not from entering the app: between the two, the loop would otherwise accept another client.
        self.dispatched = 0
        self.app_started: float | None = None
        self.app_target = ""
        self.next_expiry = 0.0

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """Refuse what this worker does not implement: TLS and HTTP/2 (put a proxy in front for those)."""
        super().check_config(cfg, log)
        if cfg.is_ssl or cfg.http_protocols != ["h1"] or cfg.http2_cleartext != "off":
            raise RuntimeError("HeadBufferingWorker serves plain HTTP/1.1 only; terminate TLS and HTTP/2 in front")

    # -- the app: one request at a time, with a heartbeat that stops if it hangs -------------------------------

    def load_wsgi(self) -> None:
        """Load the app and wrap it so that requests run one at a time."""
        super().load_wsgi()
        app = self.wsgi

        def one_at_a_time(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            with self.app_lock:
                self.app_target = environ.get("RAW_URI") or environ.get("PATH_INFO", "")
                self.app_started = time.monotonic()
                try:
                    # Flask builds each response whole, so the app's work is done when it returns.
                    result: Iterable[bytes] = app(environ, start_response)
                    return result
                finally:
                    self.app_started = None

        self.wsgi = one_at_a_time

    def notify(self) -> None:
        """Tell the master we are alive, unless one app call has been running for longer than a loop tick."""
        started = self.app_started
        if started is None or time.monotonic() - started < _LOOP_TICK_S:
            super().notify()

    def handle_abort(self, sig: int, frame: Any) -> None:
        """The master's SIGABRT after the worker timeout: say which request hung, then exit."""
        started = self.app_started
        if started is not None:
            self.log.error(
                "request %s ran for %.0f s, over the worker timeout", self.app_target[:200], time.monotonic() - started
            )
        super().handle_abort(sig, frame)

    # -- the event loop: accept, read heads, hand complete ones to a thread, linger on close --------------

    def accept(self, listener: socket.socket) -> None:
        """Accept a connection and wait, in the event loop, for its request head."""
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                # Out of file descriptors (a low `ulimit -n`): make room as when the table is full, rather
                # than let the error end the worker; the client waits in the listen queue meanwhile.
                self.log.warning("cannot accept a connection: %s", exc)
                self._make_room()
                return
            if exc.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return
            raise
        if self.nr_conns >= self.worker_connections:
            self._make_room()
        self.nr_conns += 1
        conn = _Conn(self.cfg, sock, addr, listener.getsockname())
        conn.init()  # plain HTTP/1.1 (check_config): only creates the parser
        self._park(conn, time.monotonic() + HEADER_TIMEOUT_S)
        # Most clients send the head with the connection: read it now, so that a request is counted
        # as dispatched before the loop decides, on its next turn, whether to accept another client.
        self._on_readable(conn)

    def _make_room(self) -> None:
        """Close the connection that has waited longest in the event loop: idle, trickling or lingering.

        So a flood of connections that send nothing, or a byte now and then, cannot lock new clients out
        until the header timeout: each newcomer pushes out the oldest of them. Connections whose request
        is with a thread are never closed.
        """
        if self.parked:
            self._drop(next(iter(self.parked)))

    def _park(self, conn: _Conn, deadline: float) -> None:
        conn.sock.setblocking(False)
        conn.deadline = deadline
        self.parked[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _unpark(self, conn: _Conn) -> None:
        self.parked.pop(conn, None)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _drop(self, conn: _Conn) -> None:
        """Close a connection for good."""
        self._unpark(conn)
        self.nr_conns -= 1
        conn.close()

    def _on_readable(self, conn: _Conn, _sock: Any = None) -> None:
        try:
            data = conn.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        if not data:
            self._drop(conn)  # the client closed (or finished closing, when lingering)
            return
        if conn.lingering:
            conn.drained += len(data)
            if conn.drained > LINGER_MAX_BYTES:
                self._drop(conn)
            return
        if not conn.head:
            # The first byte of a request on a kept-alive connection starts its head's clock.
            conn.deadline = time.monotonic() + HEADER_TIMEOUT_S
        conn.head += data
        self._check_head(conn)

    def _check_head(self, conn: _Conn) -> None:
        """Dispatch the connection once its head is complete; refuse a head that grew too long."""
        head = conn.head
        # Only the new bytes are searched, so a head sent a byte at a time costs linear time.
        end = head.find(b"\r\n\r\n", max(0, conn.scanned - 3))
        # A head of bare-LF lines never ends in CRLF CRLF: refuse it now rather than with a 408 after the
        # header timeout (gunicorn's parser would refuse it anyway).
        bare_lf = end < 0 and _BARE_LF.search(head, max(0, conn.scanned)) is not None
        if conn.line_end < 0:
            conn.line_end = head.find(b"\r\n", max(0, conn.scanned - 1))
        conn.scanned = len(head)
        if conn.line_end > LIMIT_REQUEST_LINE or (conn.line_end < 0 and len(head) > LIMIT_REQUEST_LINE + 2):
            self._refuse(conn, http_errors.LimitRequestLine(max(conn.line_end, len(head)), LIMIT_REQUEST_LINE))
        elif bare_lf:
            self._refuse(conn, _BareLineFeed())
        elif (end + 4 if end >= 0 else len(head)) > HEAD_LIMIT:
            self._refuse(conn, http_errors.LimitRequestHeaders(f"the request head is over {HEAD_LIMIT} bytes"))
        elif end >= 0:
            self._unpark(conn)
            conn.first_bytes = bytes(head[:_FIRST_BYTES])
            conn.parser.unreader.unread(bytes(head))
            conn.head, conn.scanned, conn.line_end = bytearray(), 0, -1
            conn.dispatched = True
            self.dispatched += 1
            self.enqueue_req(conn)

    def _refuse(self, conn: _Conn, exc: Exception) -> None:
        """Answer an error from a thread (rendering it takes the app), then close."""
        self._unpark(conn)
        conn.first_bytes = bytes(conn.head[:_FIRST_BYTES])
        conn.head = bytearray()
        future = self.tpool.submit(self._answer_error, conn, exc)
        future.add_done_callback(lambda fut: self.method_queue.defer(self.finish_request, conn, fut))

    def _linger(self, conn: _Conn) -> None:
        """Send FIN, then read and drop what the client still sends, for at most LINGER_S."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.nr_conns -= 1
            conn.close()
            return
        conn.lingering = True
        self._park(conn, time.monotonic() + LINGER_S)

    def finish_request(self, conn: _Conn, fs: Any) -> None:
        """Back in the event loop after a thread is done: wait for the next request, or close."""
        if conn.dispatched:
            conn.dispatched = False
            self.dispatched -= 1
        try:
            keep = bool(fs.result()) if not fs.cancelled() else False
        except Exception:  # noqa: BLE001 - handle() catches everything; this is a last resort
            keep = False
        if keep and self.alive:
            # Bytes the client sent after this request (pipelining) start the next head.
            conn.head = bytearray(conn.parser.unreader.take_buffered())
            conn.scanned, conn.line_end = 0, -1
            timeout = HEADER_TIMEOUT_S if conn.head else self.cfg.keepalive
            self._park(conn, time.monotonic() + timeout)
            if conn.head:
                self._check_head(conn)
        else:
            self._linger(conn)

    def run(self) -> None:
        """gthread's loop, accepting connections only while fewer than ACCEPT_BELOW requests are with threads."""
        self.poller.register(self.method_queue.fileno(), selectors.EVENT_READ, self.method_queue.run_callbacks)
        while self.alive:
            self.notify()
            # At worker_connections, accept still, closing the longest-waiting parked connection (_make_room).
            room = self.nr_conns < self.worker_connections or bool(self.parked)
            self.set_accept_enabled(room and self.dispatched < ACCEPT_BELOW)
            self.wait_for_and_dispatch_events(timeout=_LOOP_TICK_S)
            if not self.is_parent_alive():
                break
            self._expire()
        # Shutting down: no new connections; finish the requests under way within the graceful timeout.
        self.set_accept_enabled(False)
        deadline = time.monotonic() + self.cfg.graceful_timeout
        while self.nr_conns > 0 and time.monotonic() < deadline:
            self.wait_for_and_dispatch_events(timeout=min(_LOOP_TICK_S, max(0.0, deadline - time.monotonic())))
            self._expire()
        self.tpool.shutdown(wait=False)
        self.poller.close()
        self.method_queue.close()
        for listener in self.sockets:
            listener.close()

    def _expire(self) -> None:
        """Expire parked connections: idle ones close, half-sent heads get a 408."""
        now = time.monotonic()
        if now < self.next_expiry and self.alive:
            return
        self.next_expiry = now + _EXPIRE_EVERY_S
        for conn in list(self.parked):
            # Shutting down, close every connection at once but let the lingering ones finish.
            if conn.deadline > now and (self.alive or conn.lingering):
                continue
            if conn.lingering or not conn.head or not self.alive:
                self._drop(conn)
            else:
                self._refuse(conn, _HeaderTimeout(f"no whole request head within {HEADER_TIMEOUT_S:g} s"))

    # -- a thread: parse the buffered head, run the app, write the answer -----------------------------------

    def handle(self, conn: _Conn) -> bool:
        """Serve one request whose head is buffered; True keeps the connection for another."""
        req = None
        try:
            # Bounds a blocked write to a client that does not read, or a body that does not come.
            conn.sock.settimeout(IO_TIMEOUT_S)
            req = next(conn.parser)
            if self.dispatched > ACCEPT_BELOW:
                req.force_close()  # busy: the client's next request waits in the listen queue (ACCEPT_BELOW)
            keepalive: bool = self._keepalive_after(conn, self.handle_request(req, conn))
            return keepalive
        except (StopIteration, http_errors.NoMoreData, TimeoutError) as exc:
            self.log.debug("Closing connection: %r", exc)
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error processing request.")
        except Exception as exc:  # noqa: BLE001 - answered, as gunicorn does, but in the API's shape
            self._answer_error(conn, exc, req)
        return False

    def _answer_error(self, conn: _Conn, exc: Exception, req: Any = None) -> bool:
        """Answer a request gunicorn could not parse (or a bug in this worker); False: close the connection."""
        status, message = _status_for(exc)
        if status >= 500:
            self.log.exception("Error handling request", exc_info=exc)
        else:
            self.log.warning("Invalid request from ip=%s: %s", _ip(conn.client), str(exc)[:200])
        try:
            conn.sock.settimeout(IO_TIMEOUT_S)
            conn.sock.sendall(self._render_error(conn, status, message))
        except Exception:  # noqa: BLE001 - the app's page failed, or the client left
            self.log.debug("Failed to send error message.")
        return False

    def _render_error(self, conn: _Conn, status: int, message: str) -> bytes:
        """The app's answer to (status, message) for this request's path, as HTTP/1.1 bytes."""
        method, path = _method_and_path(conn.first_bytes)
        host, port = conn.server[:2] if isinstance(conn.server, tuple) else ("localhost", "")
        environ = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": _ip(conn.client),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            HTTP_ERROR_KEY: (status, message),
        }
        answer: dict[str, Any] = {}

        def start_response(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            answer["status"], answer["headers"] = status_line, headers

        chunks = self.wsgi(environ, start_response)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        lines = [f"HTTP/1.1 {answer['status']}", f"Date: {http_date()}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in answer["headers"] if k.lower() not in ("connection", "date")]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _ip(client: Any) -> str:
    return str(client[0]) if isinstance(client, tuple) and client else ""


def _status_for(exc: Exception) -> tuple[int, str]:
    """The status and message of an error answered by the worker."""
    if isinstance(exc, _HeaderTimeout):
        return 408, f"the request headers did not arrive within {HEADER_TIMEOUT_S:g} s"
    if isinstance(exc, http_errors.LimitRequestLine):
        return 414, f"the request line is longer than {LIMIT_REQUEST_LINE:,} bytes; shorten the URL"
    if isinstance(exc, http_errors.LimitRequestHeaders):
        return 431, (
            f"the request headers are too large: at most {LIMIT_REQUEST_FIELDS} fields of "
            f"{LIMIT_REQUEST_FIELD_SIZE:,} bytes each, {HEAD_LIMIT // 1024} KB in all"
        )
    if isinstance(exc, http_errors.UnsupportedTransferCoding):
        return 501, "unsupported transfer coding"
    if isinstance(exc, http_errors.ExpectationFailed):
        return 417, "unsupported Expect header"
    if isinstance(exc, http_errors.ParseException):
        return 400, f"malformed HTTP request: {str(exc)[:200]}"
    return 500, "internal error; the server log has the details"


def _method_and_path(first_bytes: bytes) -> tuple[str, str]:
    """GET or HEAD, and a path that is enough to choose the error's shape (the request line may be cut)."""
    parts = first_bytes.split(b"\r\n", 1)[0].split(b" ")
    method = "HEAD" if parts[0] == b"HEAD" else "GET"
    target = parts[1] if len(parts) > 1 else b""
    if target.startswith((b"http://", b"https://")):  # absolute form: drop scheme and authority
        target = b"/" + target.split(b"/", 3)[-1] if target.count(b"/") >= 3 else b"/"
    path = target.split(b"?", 1)[0]
    if path.startswith(b"/api/"):
        return method, "/api/"
    if path == b"/healthz":
        return method, "/healthz"
    return method, "/"


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any], app: Any) -> None:
        self.options = options
        self.app = app
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.app


def run_server(host: str = "127.0.0.1", port: int = 8000, workers: int = 2, timeout: int = WORKER_TIMEOUT_S) -> None:
    """Serve ``service.create_app()`` with gunicorn until interrupted."""
    # Built here, before gunicorn starts, so that a setting the app refuses reaches the CLI as an
    # IndexerError (one line and exit status 1) instead of a traceback from gunicorn's master.
    # The workers are forked from this process, so they share what it loaded (gunicorn's preload_app).
    app = import_app(APP_SPEC)
    _Server(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": HeadBufferingWorker,
            "threads": THREADS,
            "keepalive": KEEPALIVE_S,
            # The app is loaded above, in the master; forked workers share jieba's dictionary and the suggestions.
            "preload_app": True,
            "timeout": timeout,
            "limit_request_line": LIMIT_REQUEST_LINE,
            "limit_request_fields": LIMIT_REQUEST_FIELDS,
            "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
            "accesslog": "-",
            "errorlog": "-",
            "proc_name": "zhsearch",
            # gunicorn's control socket (for gunicornc) sits at one path per user, so every
            # `zhsearch serve` on the machine would take it over from the last; zhsearch has no use for it.
            "control_socket_disable": True,
        },
        app,
    ).run()
