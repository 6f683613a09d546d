"""A loopback HTTP receiver for webhook and Apprise tests: records POSTs, answers as scripted.

    with HttpSink() as rx:
        rx.script("/hook", 500, 200)          # first request 500, then 200 from then on
        rx.script("/slow", 200, delay=2.0)    # answer after 2 s (client timeouts)
        url = rx.url("/hook"); ...; rx.received("/hook")  # [Received(path, headers, body)]

Unscripted paths answer 200. Real sockets on 127.0.0.1, so requests cross the wire.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    body: bytes = b""


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: HttpSink


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        owner = self.server.owner
        answer = owner._take(path)
        if answer.delay and owner._stopping.wait(answer.delay):
            return
        # Record after the delay: a request the client gave up on still arrives, as in life.
        owner._record(Received(path, {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(answer.status)
        for k, v in answer.headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        try:
            self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class HttpSink:
    def __init__(self) -> None:
        self._scripts: dict[str, deque[Answer]] = defaultdict(deque)
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    def __enter__(self) -> HttpSink:
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd.server_close()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *statuses: int, headers: dict[str, str] | None = None,
               delay: float = 0.0, body: bytes = b"") -> None:
        """Answers for the next requests to ``path``; the last one repeats."""
        with self._lock:
            self._scripts[path] = deque(
                Answer(s, tuple((headers or {}).items()), delay, body) for s in statuses)

    def _take(self, path: str) -> Answer:
        with self._lock:
            queue = self._scripts.get(path)
            if not queue:
                return Answer(200)
            return queue.popleft() if len(queue) > 1 else queue[0]

    def _record(self, r: Received) -> None:
        with self._lock:
            self._received.append(r)

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]
