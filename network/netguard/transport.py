"""The HTTP client of partner postbacks: connects only to checked addresses, never follows a redirect,
bounds time and body."""

from __future__ import annotations

import http.client
import ipaddress
import re
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from urllib3 import Timeout
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.response import BaseHTTPResponse

from network.netguard.addresses import (
    IPAddress,
    IPNetwork,
    Resolver,
    UnsafeURL,
    default_resolver,
    parse_networks,
    resolve_checked,
)
from network.netguard.sockets import GuardedHTTPPool, GuardedHTTPSPool, Watchdog
from network.netguard.urls import Target, parse_url

_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_HEADER_VALUE_RE = re.compile(r"[^\t\x20-\x7e]")
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
# The transport owns these: a caller's Host would defeat the checked-address design.
_TRANSPORT_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "accept-encoding"})


@dataclass(frozen=True)
class Response:
    """The outcome of one request: a status and capped body, or an error."""

    #: None when no HTTP status was received (blocked, refused, timed out early).
    status: int | None
    body: bytes
    #: Lower-case names; repeated headers joined with ", ".
    headers: Mapping[str, str]
    #: None on a complete exchange; starts with "blocked", "timeout", "connect", "tls" ...
    error: str | None
    latency_ms: float
    #: The checked IP address that was connected to (or tried last).
    address: str | None
    #: True when the body was cut at max_body.
    truncated: bool = False

    @property
    def ok(self) -> bool:
        """Return whether a complete 2xx response arrived."""
        return self.error is None and self.status is not None and 200 <= self.status < 300


def _reason(exc: BaseException) -> str:
    """Return a short, URL-free description of the innermost cause."""
    inner: BaseException = exc
    for _ in range(10):  # chains are short; the bound only guards against surprises
        if isinstance(inner, ProtocolError) and len(inner.args) > 1:
            nxt = inner.args[1]
        else:
            nxt = inner.__cause__ or inner.__context__
        if not isinstance(nxt, BaseException):
            break
        inner = nxt
    text = inner.strerror if isinstance(inner, OSError) and inner.strerror else str(inner)
    # Server-chosen bytes (a bad status line) end up here: escape them so logs stay one line.
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text[:200] if text else type(inner).__name__


def _describe(exc: BaseException, watchdog: Watchdog) -> tuple[str, bool]:
    """Return (error text, whether another address may be tried) for a failure."""
    if watchdog.fired:
        return "timeout: total deadline exceeded", False
    # NewConnectionError subclasses ConnectTimeoutError in urllib3 2, so it goes first.
    if isinstance(exc, NewConnectionError):
        return f"connect failed: {_reason(exc)}", True
    if isinstance(exc, ConnectTimeoutError):
        return "timeout: connect", True
    if isinstance(exc, (ReadTimeoutError, TimeoutError)):
        return "timeout: read", False
    if isinstance(exc, (SSLError, ssl.SSLError)):
        return f"tls: {_reason(exc)}", False
    return f"protocol error: {_reason(exc)}", False


def _check_headers(headers: Mapping[str, str]) -> None:
    """Raise ValueError for header names or values that could split the request."""
    for name, value in headers.items():
        if not _TOKEN_RE.fullmatch(name) or _BAD_HEADER_VALUE_RE.search(value):
            raise ValueError(f"invalid header {name!r}")


class SafeTransport:
    """An HTTP client that connects only to checked addresses and never follows redirects."""

    def __init__(
        self,
        *,
        allowed_networks: Iterable[IPNetwork | str] = (),
        allow_http: bool = False,
        resolver: Resolver = default_resolver,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
        total_timeout: float | None = None,
        max_body: int = 65536,
        ca_certs: str | None = None,
        user_agent: str = "network-postback/1",
    ) -> None:
        self.allowed_networks = parse_networks(allowed_networks)
        self.allow_http = allow_http
        self.resolver = resolver
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        # Per-read timeouts alone let a server dripping one byte a second hold us forever.
        self.total_timeout = connect_timeout + read_timeout + 2.0 if total_timeout is None else total_timeout
        self.max_body = max_body
        self.ca_certs = ca_certs
        self.user_agent = user_agent

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | str | None = None,
    ) -> Response:
        """Return the response to one request; network failures come back as error."""
        started = time.monotonic()
        method = method.upper()
        if method not in _METHODS:
            raise ValueError(f"method not allowed: {method!r}")
        extra = dict(headers or {})
        _check_headers(extra)

        def failed(error: str, address: str | None = None) -> Response:
            return Response(
                status=None,
                body=b"",
                headers={},
                error=error,
                latency_ms=(time.monotonic() - started) * 1000,
                address=address,
            )

        try:
            if "{" in url or "}" in url:
                raise UnsafeURL("unrendered macro in URL")
            target = parse_url(url, allow_http=self.allow_http)
            addresses = resolve_checked(
                target.host,
                target.port,
                allowed_networks=self.allowed_networks,
                resolver=self.resolver,
            )
        except UnsafeURL as exc:
            return failed(f"blocked: {exc}")
        payload = body.encode() if isinstance(body, str) else body
        deadline = started + self.total_timeout
        response = failed("timeout: total deadline exceeded")
        for ip in addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return failed("timeout: total deadline exceeded", response.address)
            response, retry = self._attempt(method, target, ip, extra, payload, deadline, started)
            if not retry:
                break
        return response

    def _pool(self, target: Target, ip: IPAddress, timeout: Timeout, watchdog: Watchdog) -> HTTPConnectionPool:
        """Return a one-connection pool to a checked address."""
        if target.scheme != "https":
            return GuardedHTTPPool(
                str(ip), target.port, timeout=timeout, retries=False, maxsize=1, watchdog=watchdog, expected_ip=ip
            )
        # The pool host is the checked IP, so urllib3 cannot resolve anything
        # itself; SNI and the certificate check still use the partner's name.
        return GuardedHTTPSPool(
            str(ip),
            target.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            server_hostname=target.tls_name,
            assert_hostname=target.tls_name,
            cert_reqs="CERT_REQUIRED",
            ca_certs=self.ca_certs,
            watchdog=watchdog,
            expected_ip=ip,
        )

    def _request_headers(self, target: Target, extra: dict[str, str]) -> dict[str, str]:
        """Return the caller's headers with the transport's own (Host, encoding, connection) set."""
        request_headers = {k: v for k, v in extra.items() if k.lower() not in _TRANSPORT_HEADERS}
        if not any(k.lower() == "user-agent" for k in request_headers):
            request_headers["User-Agent"] = self.user_agent
        request_headers["Host"] = target.host_header
        # identity: a compressed body could expand far past max_body once decoded.
        request_headers["Accept-Encoding"] = "identity"
        request_headers["Connection"] = "close"
        return request_headers

    def _read_body(self, resp: BaseHTTPResponse, deadline: float) -> tuple[list[bytes], bool, str | None]:
        """Return (chunks, truncated, error) of a response body read up to max_body and the deadline."""
        chunks: list[bytes] = []
        size = 0
        while size < self.max_body:
            # read1 returns after one socket read, so a drip is caught here even
            # before the watchdog fires (which also covers headers and TLS).
            if time.monotonic() >= deadline:
                return chunks, False, "timeout: total deadline exceeded"
            chunk = resp.read1(min(65536, self.max_body - size), decode_content=False)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return chunks, size >= self.max_body and resp.length_remaining != 0, None

    def _attempt(
        self,
        method: str,
        target: Target,
        ip: IPAddress,
        extra: dict[str, str],
        payload: bytes | None,
        deadline: float,
        started: float,
    ) -> tuple[Response, bool]:
        """Return the response from one checked address and whether to try the next."""
        remaining = deadline - time.monotonic()
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            # Dial the IPv4 twin: a mapped address fails on IPv6-only-socket hosts.
            ip = ip.ipv4_mapped
        watchdog = Watchdog(remaining)
        timeout = Timeout(connect=min(self.connect_timeout, remaining), read=self.read_timeout)
        pool = self._pool(target, ip, timeout, watchdog)
        status: int | None = None
        response_headers: dict[str, str] = {}
        chunks: list[bytes] = []
        truncated = False
        error: str | None = None
        retry = False
        resp: BaseHTTPResponse | None = None
        try:
            resp = pool.urlopen(
                method,
                target.request_target,
                body=payload,
                headers=self._request_headers(target, extra),
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=timeout,
                preload_content=False,
                decode_content=False,
                release_conn=False,
            )
            status = resp.status
            response_headers = {k.lower(): resp.headers[k] for k in resp.headers}
            chunks, truncated, error = self._read_body(resp, deadline)
            if watchdog.fired:
                error = "timeout: total deadline exceeded"
        except (HTTPError, OSError, http.client.HTTPException) as exc:
            error, retry = _describe(exc, watchdog)
        finally:
            if resp is not None:
                resp.close()
            pool.close()
            watchdog.close()
        response = Response(
            status=status,
            body=b"".join(chunks),
            headers=response_headers,
            error=error,
            latency_ms=(time.monotonic() - started) * 1000,
            address=str(ip),
            truncated=truncated,
        )
        return response, retry and status is None


def send(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | str | None = None,
    **options: Any,
) -> Response:
    """Return the response to one request made through a SafeTransport made with `options`."""
    return SafeTransport(**options).send(method, url, headers=headers, body=body)
