"""Real local HTTP endpoints standing in for partners' trackers: they count every connection."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    """One request a partner endpoint received."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def query(self) -> dict[str, list[str]]:
        """Return the query parameters, decoded, keeping blank values."""
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    def one(self, name: str) -> str:
        """Return the only value of a query parameter (fails if it came split or twice)."""
        values = self.query[name]
        assert len(values) == 1, values
        return values[0]


#: Answers a request: (handler, request, endpoint) -> None, writing the response itself.
Behaviour = Callable[[BaseHTTPRequestHandler, Received, "Endpoint"], None]


def respond(status: int = 200, body: bytes = b"ok", headers: dict[str, str] | None = None) -> Behaviour:
    """Return a behaviour answering with a fixed response."""

    def behave(handler: BaseHTTPRequestHandler, request: Received, endpoint: Endpoint) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)

    return behave


def stall(handler: BaseHTTPRequestHandler, request: Received, endpoint: Endpoint) -> None:
    """Answer nothing until the test releases the endpoint (or it closes), then 200."""
    endpoint.stalled.set()
    if endpoint.release.wait(10):
        respond(200, b"late")(handler, request, endpoint)


def huge(handler: BaseHTTPRequestHandler, request: Received, endpoint: Endpoint) -> None:
    """Answer 200 with a 200 MB body, streamed as fast as the client takes it."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(200_000_000))
    handler.end_headers()
    chunk = b"x" * 65536
    for _ in range(200_000_000 // len(chunk)):
        if endpoint.release.is_set():
            return
        handler.wfile.write(chunk)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        endpoint = self.server.endpoint
        with endpoint.lock:
            endpoint.requests.append(request)
            behaviour = endpoint.behaviours.pop(0) if endpoint.behaviours else endpoint.behaviour
        # The client may give up (timeout, body cap): what several tests make it do.
        with contextlib.suppress(OSError):
            behaviour(self, request, endpoint)
        self.close_connection = True

    do_GET = _serve  # noqa: N815 - the names http.server dispatches to
    do_POST = _serve  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    endpoint: Endpoint

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.endpoint.lock:
            self.endpoint.connections += 1
        super().process_request(request, client_address)


class Endpoint:
    """A partner endpoint on a loopback address: answers with `behaviour`, counts connections."""

    def __init__(self, host: str = "127.0.0.1", behaviour: Behaviour | None = None) -> None:
        self.host = host
        self.behaviour: Behaviour = behaviour or respond()
        #: Answer the next requests with these first, one each, then with `behaviour`.
        self.behaviours: list[Behaviour] = []
        self.requests: list[Received] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.stalled = threading.Event()
        self._server = _Server((host, 0), _Handler)
        self._server.endpoint = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def url(self, path: str = "/", *, host: str | None = None, scheme: str = "http") -> str:
        """Return a URL of this endpoint (optionally naming it by a host the test's DNS answers)."""
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    def close(self) -> None:
        """Stop serving; release any stalled answer."""
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
