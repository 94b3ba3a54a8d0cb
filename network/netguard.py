"""Decide where the network may connect, and send partner postbacks safely."""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import quote, unquote

from urllib3 import Timeout
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.response import BaseHTTPResponse

__all__ = [
    "MACROS",
    "IPAddress",
    "IPNetwork",
    "Resolver",
    "Response",
    "SafeTransport",
    "UnsafeURL",
    "check_address",
    "default_resolver",
    "redact_url",
    "render_postback_url",
    "resolve_checked",
    "send",
    "validate_postback_template",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
#: (host, port) -> addresses as strings; injectable so tests control DNS.
Resolver: TypeAlias = Callable[[str, int], list[str]]

#: Macros a partner postback template may use (SPEC §5 plus txn_id).
MACROS: frozenset[str] = frozenset(
    {"click_id", "conversion_id", "offer_id", "event", "payout", "currency", "status"}
    | {f"sub{i}" for i in range(1, 6)}
    | {"txn_id"}
)
MAX_TEMPLATE_LENGTH = 2048

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_MACRO_RE = re.compile(r"\{([^{}]*)\}")
# Whitespace and controls could split the request line or hide a second URL.
_BAD_CHAR_RE = re.compile(r"[\x00-\x20\x7f-\x9f\s]")
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# Any last label like these makes inet_aton/WHATWG read the host as an IPv4 number.
_NUMERIC_LABEL_RE = re.compile(r"0x[0-9a-f]*|[0-9]+")
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_HEADER_VALUE_RE = re.compile(r"[^\t\x20-\x7e]")
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
# Printable ASCII stays as written; only non-ASCII in a request target gets encoded.
_TARGET_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))
_SECRET_KEY_RE = re.compile(r"token|secret|key|sig|password|passwd|pwd|auth|hmac|credential|session", re.I)
# The transport owns these: a caller's Host would defeat the checked-address design.
_TRANSPORT_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "accept-encoding"})


class UnsafeURL(ValueError):
    """A URL the network must not call, with a message naming the problem."""


def _nets(spec: Iterable[tuple[str, str]]) -> tuple[tuple[IPNetwork, str], ...]:
    """Return (network, reason) pairs parsed from strings."""
    return tuple((ipaddress.ip_network(net), why) for net, why in spec)


# IANA special-purpose registries, spelled out rather than trusting is_global,
# whose answers changed between Python patch releases. First match names the reason.
_V4_BLOCKED = _nets(
    [
        ("169.254.169.254/32", "cloud metadata"),
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignment"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
    ]
)
_V6_BLOCKED = _nets(
    [
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/32", "Teredo"),
        ("2001::/23", "IETF protocol assignment"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    ]
)
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_v4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """Return the IPv4 address an IPv6 form stands for (mapped, NAT64, 6to4), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    return None


def _blocked_reason(ip: IPAddress) -> str | None:
    """Return why an address is not globally routable, or None if it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_v4(ip)
        if embedded is not None:
            inner, form = embedded
            why = _blocked_reason(inner)
            return None if why is None else f"{why}, {form} {inner}"
        table = _V6_BLOCKED
    else:
        table = _V4_BLOCKED
    for net, why in table:
        if ip in net:
            return why
    if isinstance(ip, ipaddress.IPv6Address) and ip not in _V6_GLOBAL_UNICAST:
        return "not global unicast"
    # Belt and braces: anything the stdlib also knows to be special.
    if not ip.is_global or ip.is_multicast:
        return "not global"
    return None


def _parse_networks(networks: Iterable[IPNetwork | str]) -> tuple[IPNetwork, ...]:
    """Return networks from network objects or CIDR strings."""
    return tuple(n if not isinstance(n, str) else ipaddress.ip_network(n, strict=False) for n in networks)


def check_address(address: str | IPAddress, allowed_networks: Iterable[IPNetwork | str] = ()) -> IPAddress:
    """Return the address if the network may connect to it, else raise UnsafeURL."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise UnsafeURL(f"invalid address {address!r}") from None
    forms: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # A mapped address reaches exactly its IPv4 twin, so the exemption applies to both.
        forms.append(ip.ipv4_mapped)
    for net in _parse_networks(allowed_networks):
        if any(f.version == net.version and f in net for f in forms):
            return ip
    why = _blocked_reason(ip)
    if why is not None:
        raise UnsafeURL(f"non-global address {ip} ({why})")
    return ip


def default_resolver(host: str, port: int) -> list[str]:
    """Return the addresses the system resolver gives for a host, in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class _Target:
    """A parsed URL: where to connect and what to ask for."""

    scheme: str
    #: ASCII, lower case, no brackets; used for DNS.
    host: str
    #: Set when the host is an IP literal (then DNS is never asked).
    ip: IPAddress | None
    port: int
    explicit_port: bool
    #: path?query, no fragment; may still hold macros when parsing a template.
    request_target: str

    @property
    def tls_name(self) -> str:
        """Return the name for SNI and certificate checks."""
        return self.host.rstrip(".")

    @property
    def host_header(self) -> str:
        """Return the Host header value."""
        name = f"[{self.host}]" if isinstance(self.ip, ipaddress.IPv6Address) else self.tls_name
        return f"{name}:{self.port}" if self.explicit_port else name


def _split(url: str, schemes: tuple[str, ...] | None = None) -> tuple[str, str, str]:
    """Return (scheme, authority, rest) of a URL, refusing a macro in or a scheme outside schemes."""
    match = _SCHEME_RE.match(url)
    if match is None:
        head = url.split(":", 1)[0]
        if "{" in head or "}" in head:
            raise UnsafeURL("macro not allowed in scheme")
        raise UnsafeURL("URL must start with a scheme (scheme must be https)")
    scheme = match.group(1).lower()
    if schemes is not None and scheme not in schemes:
        raise UnsafeURL(f"scheme must be {' or '.join(schemes)}, not {scheme!r}")
    rest = url[match.end() :]
    if not rest.startswith("//"):
        raise UnsafeURL("URL must have a host after '//'")
    rest = rest[2:]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    return scheme, rest[:end], rest[end:]


def _parse_host(raw: str) -> tuple[str, IPAddress | None]:
    """Return (ASCII host, IP if literal) or raise naming why the host is unacceptable."""
    if not raw:
        raise UnsafeURL("empty host")
    if raw.startswith("["):
        inner = raw[1:-1] if raw.endswith("]") else ""
        if "%" in inner:
            raise UnsafeURL("IPv6 zone id not allowed")
        try:
            return inner, ipaddress.IPv6Address(inner)
        except ValueError:
            raise UnsafeURL(f"invalid IPv6 address {raw!r}") from None
    host = raw.lower()
    if not host.isascii():
        # The IDNA codec maps look-alikes (fullwidth digits, ideographic dots) to
        # ASCII first, so the numeric checks below see what the resolver would.
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise UnsafeURL(f"invalid host {raw!r}") from None
    try:
        # Only a canonical dotted quad parses here; 127.1, 0x7f.1, 0177.0.0.1 do not.
        return host, ipaddress.IPv4Address(host)
    except ValueError:
        pass
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if _NUMERIC_LABEL_RE.fullmatch(labels[-1]):
        # C resolvers read these as IPv4 numbers in ways libraries disagree on; refuse.
        try:
            means = f" (means {ipaddress.IPv4Address(socket.inet_aton(host.rstrip('.')))})"
        except OSError:
            means = ""
        raise UnsafeURL(f"non-canonical numeric host {raw!r} not allowed{means}")
    if len(host) > 253 or not all(_LABEL_RE.fullmatch(label) for label in labels):
        raise UnsafeURL(f"invalid host {raw!r}")
    return host, None


def _parse_url(url: str, *, allow_http: bool) -> _Target:
    """Return the parsed target of a URL or template, or raise UnsafeURL."""
    if _BAD_CHAR_RE.search(url):
        raise UnsafeURL("whitespace or control character in URL")
    scheme, authority, rest = _split(url, ("https", "http") if allow_http else ("https",))
    if "@" in authority:
        raise UnsafeURL("userinfo not allowed")
    if "\\" in authority:
        raise UnsafeURL("backslash not allowed in host")
    if authority.startswith("["):
        close = authority.find("]") + 1 or len(authority)
        host_part, after = authority[:close], authority[close:]
        has_port, port_part = after.startswith(":"), after[1:]
        if after and not has_port:
            raise UnsafeURL(f"invalid host {authority!r}")
    else:
        host_part, colon, port_part = authority.partition(":")
        has_port = bool(colon)
    if "{" in host_part or "}" in host_part:
        raise UnsafeURL("macro not allowed in host")
    if "{" in port_part or "}" in port_part:
        raise UnsafeURL("macro not allowed in port")
    host, ip = _parse_host(host_part)
    if has_port:
        if not port_part.isascii() or not port_part.isdigit() or not 0 < int(port_part) < 65536:
            raise UnsafeURL(f"invalid port {port_part!r}")
        port = int(port_part)
    else:
        port = 443 if scheme == "https" else 80
    target = rest.split("#", 1)[0]
    if not target.startswith("/"):
        target = "/" + target
    return _Target(
        scheme=scheme,
        host=host,
        ip=ip,
        port=port,
        explicit_port=has_port,
        request_target=quote(target, safe=_TARGET_SAFE),
    )


def resolve_checked(
    host: str,
    port: int,
    *,
    allowed_networks: Iterable[IPNetwork | str] = (),
    resolver: Resolver = default_resolver,
) -> list[IPAddress]:
    """Return every address of host if all may be connected to, else raise UnsafeURL."""
    networks = _parse_networks(allowed_networks)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        try:
            return [check_address(literal, networks)]
        except UnsafeURL as exc:
            raise UnsafeURL(f"host is a {exc}") from None
    try:
        answers = resolver(host, port)
    except (OSError, UnicodeError):
        raise UnsafeURL(f"host does not resolve: {host}") from None
    if not answers:
        raise UnsafeURL(f"host does not resolve: {host}")
    checked: list[IPAddress] = []
    for answer in dict.fromkeys(answers):
        # One bad answer taints the name: a round-robin mix is how rebinding hides.
        try:
            checked.append(check_address(answer, networks))
        except UnsafeURL as exc:
            raise UnsafeURL(f"host resolves to a {exc}") from None
    return checked


def _check_macros(template: str) -> None:
    """Raise UnsafeURL for unknown macros or stray braces."""
    for match in _MACRO_RE.finditer(template):
        if match.group(1) not in MACROS:
            raise UnsafeURL(f"unknown macro {{{match.group(1)}}}")
    leftover = _MACRO_RE.sub("", template)
    if "{" in leftover or "}" in leftover:
        raise UnsafeURL("unbalanced brace in URL")


def validate_postback_template(
    template: str,
    *,
    allow_http: bool,
    allowed_networks: Iterable[IPNetwork | str],
    resolver: Resolver = default_resolver,
) -> str:
    """Return the (stripped) template if it is safe to store, else raise UnsafeURL."""
    template = template.strip()
    if not template:
        raise UnsafeURL("empty URL")
    if len(template) > MAX_TEMPLATE_LENGTH:
        raise UnsafeURL(f"URL longer than {MAX_TEMPLATE_LENGTH} characters")
    target = _parse_url(template, allow_http=allow_http)
    _check_macros(template)
    resolve_checked(target.host, target.port, allowed_networks=allowed_networks, resolver=resolver)
    return template


def _encode_value(value: object) -> str:
    """Return a value percent-encoded so it stays one URL component."""
    if isinstance(value, bytes):
        return quote(value, safe="")
    text = "" if value is None else str(value)
    try:
        # surrogateescape gives back the original bytes of non-UTF-8 input.
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        data = text.encode("utf-8", "replace")
    return quote(data, safe="")


def render_postback_url(template: str, values: Mapping[str, object]) -> str:
    """Return the template with each macro replaced by its percent-encoded value."""
    _, authority, _ = _split(template.strip())
    if "{" in authority or "}" in authority:
        raise UnsafeURL("macro not allowed in host")
    _check_macros(template)
    return _MACRO_RE.sub(lambda m: _encode_value(values.get(m.group(1))), template.strip())


def _redact_pairs(part: str) -> str:
    """Return a query-like string with values of secret-looking keys masked."""
    out = []
    for pair in part.split("&"):
        key, eq, _ = pair.partition("=")
        if eq and _SECRET_KEY_RE.search(unquote(key)):
            pair = f"{key}=***"
        out.append(pair)
    return "&".join(out)


def redact_url(url: str) -> str:
    """Return the URL with passwords and secret-looking query values masked for logs."""
    url, hash_, fragment = url.partition("#")
    url, qmark, query = url.partition("?")
    scheme, sep, rest = url.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        userinfo, at, hostport = authority.rpartition("@")
        if at:
            user = userinfo.partition(":")[0]
            authority = f"{user}:***@{hostport}"
        url = f"{scheme}://{authority}{slash}{path}"
    return url + qmark + _redact_pairs(query) + hash_ + (_redact_pairs(fragment) if hash_ else "")


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


class _Watchdog:
    """Shut registered sockets down once the total deadline passes."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def register(self, sock: socket.socket) -> None:
        """Watch a connected socket."""
        # A dup survives ssl wrapping (which detaches the original), and shutdown
        # acts on the shared socket, so it interrupts reads in the other thread.
        dup = sock.dup()
        with self._lock:
            self._socks.append(dup)
            if self.fired:
                _shutdown(dup)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._socks:
                _shutdown(sock)

    def close(self) -> None:
        """Stop the timer and release the watched duplicates."""
        self._timer.cancel()
        self._timer.join()
        with self._lock:
            for sock in self._socks:
                sock.close()
            self._socks.clear()


def _shutdown(sock: socket.socket) -> None:
    """Shut a socket down, ignoring one already gone."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _GuardMixin:
    """Connection behaviour: watch the socket and prove it reached the checked address."""

    _watchdog: _Watchdog
    _expected_ip: IPAddress

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        peer = ipaddress.ip_address(str(sock.getpeername()[0]).split("%")[0])
        if peer != self._expected_ip:
            # Unreachable while the pool host is the IP literal; kept as a tripwire.
            sock.close()
            raise OSError(f"connected to {peer}, not the checked {self._expected_ip}")
        self._watchdog.register(sock)
        return sock


class _GuardedHTTPConnection(_GuardMixin, HTTPConnection):
    def __init__(self, *args: Any, watchdog: _Watchdog, expected_ip: IPAddress, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watchdog = watchdog
        self._expected_ip = expected_ip


class _GuardedHTTPSConnection(_GuardMixin, HTTPSConnection):
    def __init__(self, *args: Any, watchdog: _Watchdog, expected_ip: IPAddress, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watchdog = watchdog
        self._expected_ip = expected_ip


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


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


def _describe(exc: BaseException, watchdog: _Watchdog) -> tuple[str, bool]:
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
        self.allowed_networks = _parse_networks(allowed_networks)
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
            target = _parse_url(url, allow_http=self.allow_http)
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

    def _attempt(
        self,
        method: str,
        target: _Target,
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
        watchdog = _Watchdog(remaining)
        timeout = Timeout(connect=min(self.connect_timeout, remaining), read=self.read_timeout)
        pool: HTTPConnectionPool
        if target.scheme == "https":
            # The pool host is the checked IP, so urllib3 cannot resolve anything
            # itself; SNI and the certificate check still use the partner's name.
            pool = _GuardedHTTPSPool(
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
        else:
            pool = _GuardedHTTPPool(
                str(ip), target.port, timeout=timeout, retries=False, maxsize=1, watchdog=watchdog, expected_ip=ip
            )
        request_headers = {k: v for k, v in extra.items() if k.lower() not in _TRANSPORT_HEADERS}
        if not any(k.lower() == "user-agent" for k in request_headers):
            request_headers["User-Agent"] = self.user_agent
        request_headers["Host"] = target.host_header
        # identity: a compressed body could expand far past max_body once decoded.
        request_headers["Accept-Encoding"] = "identity"
        request_headers["Connection"] = "close"
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
                headers=request_headers,
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
            size = 0
            while size < self.max_body:
                # read1 returns after one socket read, so a drip is caught here even
                # before the watchdog fires (which also covers headers and TLS).
                if time.monotonic() >= deadline:
                    error = "timeout: total deadline exceeded"
                    break
                chunk = resp.read1(min(65536, self.max_body - size), decode_content=False)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            if size >= self.max_body and resp.length_remaining != 0:
                truncated = True
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
    allowed_networks: Iterable[IPNetwork | str] = (),
    allow_http: bool = False,
    resolver: Resolver = default_resolver,
    connect_timeout: float = 2.0,
    read_timeout: float = 10.0,
    total_timeout: float | None = None,
    max_body: int = 65536,
    ca_certs: str | None = None,
) -> Response:
    """Return the response to one request made through a SafeTransport."""
    transport = SafeTransport(
        allowed_networks=allowed_networks,
        allow_http=allow_http,
        resolver=resolver,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        total_timeout=total_timeout,
        max_body=max_body,
        ca_certs=ca_certs,
    )
    return transport.send(method, url, headers=headers, body=body)
