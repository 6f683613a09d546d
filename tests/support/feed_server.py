"""A scriptable HTTP feed server on 127.0.0.1, in a thread, for tests and end-to-end runs.

Each path answers with what ``set()`` put there; the server counts requests per
path, records their headers, and honours ``If-None-Match``/``If-Modified-Since``
with 304 like a well-behaved publisher. It can also misbehave on purpose::

    with FeedServer() as srv:
        srv.set("/feed.xml", RSS_BYTES)                      # ETag derived from the body
        srv.set("/gz.xml", RSS_BYTES, gzip=True)             # Content-Encoding: gzip
        srv.set("/slow.xml", RSS_BYTES, drip=0.5)            # one byte every 0.5 s
        srv.set("/a", b"", status=301, headers={"Location": "/b"})
        srv.set("/busy", b"", status=429, headers={"Retry-After": "120"})
        srv.set("/garbage", os.urandom(500))
        srv.set("/hub", status=202)                          # POSTs recorded with their body
        url = srv.url("/feed.xml"); ...; srv.hits("/feed.xml")

HTTP/1.1 with keep-alive, so connection reuse can be observed (``connections``).
"""

from __future__ import annotations

import gzip as gzip_module
import hashlib
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal

AUTO: Literal["auto"] = "auto"


@dataclass
class Route:
    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    drip: float | None = None  # seconds between single bytes of the body
    close: bool = False  # drop the connection without answering


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    at: float  # time.monotonic() when the request arrived
    method: str = "GET"
    body: bytes = b""  # what a POST carried (a WebSub subscription form, say)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FeedServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.owner._count_connection()

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._answer(head=False, method="POST", body=self.rfile.read(length))

    def _answer(self, *, head: bool, method: str = "GET", body: bytes = b"") -> None:
        owner = self.server.owner
        path = self.path
        headers = {k.lower(): v for k, v in self.headers.items()}
        route = owner._record(path, headers, method, body)
        try:
            self._respond(route, headers, head=head)
        finally:
            owner._finished()

    def _respond(self, route: Route | None, headers: dict[str, str], *, head: bool) -> None:
        if route is None:
            self._send(404, {"Content-Type": "text/plain"}, b"not found")
            return
        if route.close:
            self.close_connection = True
            self.connection.close()
            return
        extra = dict(route.headers)
        if route.etag:
            extra["ETag"] = route.etag
        if route.last_modified:
            extra["Last-Modified"] = route.last_modified
        if route.status == 200 and _not_modified(route, headers):
            self._send(304, extra, b"", head=True)
            return
        self._send(route.status, extra, route.body, head=head, drip=route.drip)

    def _send(
        self, status: int, headers: Mapping[str, str], body: bytes, *, head: bool = False,
        drip: float | None = None,
    ) -> None:
        self.send_response(status)
        has_type = any(k.lower() == "content-type" for k in headers)
        if not has_type and status != 304:
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        for k, v in headers.items():
            self.send_header(k, v)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head or status == 304:
            return
        stop = self.server.owner._stopping
        try:
            if drip is None:
                self.wfile.write(body)
                return
            for i in range(len(body)):
                if stop.wait(drip):
                    return
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _not_modified(route: Route, headers: Mapping[str, str]) -> bool:
    inm = headers.get("if-none-match")
    if inm is not None and route.etag:
        tags = [t.strip() for t in inm.split(",")]
        return "*" in tags or route.etag in tags
    ims = headers.get("if-modified-since")
    if ims and route.last_modified:
        try:
            return parsedate_to_datetime(ims) >= parsedate_to_datetime(route.last_modified)
        except (TypeError, ValueError):
            return False
    return False


class FeedServer:
    """A loopback HTTP server whose answers tests script per path."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._routes: dict[str, Route] = {}
        self._hits: defaultdict[str, int] = defaultdict(int)
        self._requests: list[Request] = []
        self._connections = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------
    def start(self) -> FeedServer:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                name="feed-server", daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- scripting ----------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str = "/") -> str:
        if not path.startswith("/"):
            path = "/" + path
        return f"http://127.0.0.1:{self.port}{path}"

    def set(
        self, path: str, body: bytes | str = b"", *, status: int = 200,
        headers: Mapping[str, str] | None = None, etag: str | None = AUTO,
        last_modified: str | None = None, gzip: bool = False, drip: float | None = None,
        close: bool = False,
    ) -> None:
        """Script ``path``. ``etag="auto"`` derives a strong ETag from the body (None: no ETag).

        ``gzip=True`` compresses ``body`` and says so; pass already-encoded bytes with
        your own ``Content-Encoding`` header to serve something hostile.
        """
        data = body.encode("utf-8") if isinstance(body, str) else body
        hdrs = dict(headers or {})
        if gzip:
            data = gzip_module.compress(data)
            hdrs["Content-Encoding"] = "gzip"
        if etag == AUTO:
            etag = '"' + hashlib.sha1(data).hexdigest()[:16] + '"' if status == 200 else None
        with self._lock:
            self._routes[path] = Route(data, status, hdrs, etag, last_modified, drip, close)

    def remove(self, path: str) -> None:
        with self._lock:
            self._routes.pop(path, None)

    def hits(self, path: str) -> int:
        with self._lock:
            return self._hits[path]

    def requests(self, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self._requests if path is None or r.path == path]

    @property
    def connections(self) -> int:
        """TCP connections accepted so far (keep-alive reuse keeps this low)."""
        with self._lock:
            return self._connections

    @property
    def max_in_flight(self) -> int:
        """The most requests this server was answering at one moment."""
        with self._lock:
            return self._max_in_flight

    def reset_counts(self) -> None:
        with self._lock:
            self._hits.clear()
            self._requests.clear()
            self._connections = 0
            self._max_in_flight = self._in_flight

    # -- called from handler threads ----------------------------------------
    def _record(self, path: str, headers: dict[str, str], method: str = "GET",
                body: bytes = b"") -> Route | None:
        with self._lock:
            self._hits[path] += 1
            self._requests.append(Request(path, headers, time.monotonic(), method, body))
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            return self._routes.get(path)

    def _finished(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _count_connection(self) -> None:
        with self._lock:
            self._connections += 1


def http_date(ts: float | None = None) -> str:
    """An IMF-fixdate for ``ts`` (default: now), for Last-Modified and Retry-After."""
    from email.utils import formatdate

    return formatdate(ts if ts is not None else time.time(), usegmt=True)


LOOPBACK = ("127.0.0.0/8",)
"""``FetchLimits(allow_networks=LOOPBACK)``: the SSRF guard lets tests reach this server."""

TRANSPORTS = ("httpx", "aiohttp")
"""``poll.transport`` values; ``aiohttp`` needs the optional httpx-aiohttp package."""


def has_transport(name: str) -> bool:
    import importlib.util

    return name != "aiohttp" or importlib.util.find_spec("httpx_aiohttp") is not None
