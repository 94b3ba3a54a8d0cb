"""Partner postback URLs: SSRF guard at save and send time, and the safe HTTP transport."""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from network.netguard import (
    MACROS,
    Resolver,
    Response,
    UnsafeURL,
    check_address,
    redact_url,
    render_postback_url,
    send,
    validate_postback_template,
)

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]
PUBLIC = "93.184.216.34"


def fetch(method: str, url: str, **options: Any) -> Response:
    """Send with the short timeouts every local-endpoint test uses unless it says otherwise."""
    return send(method, url, **{"connect_timeout": 0.3, "read_timeout": 0.3, **options})


def resolver_for(table: dict[str, list[str]]) -> Resolver:
    """Return a resolver answering from a table, as DNS would for names it knows."""

    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(table[host])

    return resolve


PUBLIC_DNS = resolver_for(
    {
        "localhost": ["127.0.0.1", "::1"],
        "example.com": [PUBLIC],
        "partner.example": [PUBLIC],
        "mixed.example": [PUBLIC, "10.0.0.7"],
        "metadata.google.internal": ["169.254.169.254"],
        "v6.example": ["2606:2800:220:1:248:1893:25c8:1946"],
    }
)


# --- validation at save time ---------------------------------------------------------------

CASE_13 = [
    ("http://127.0.0.1", "non-global address 127.0.0.1 (loopback)"),
    ("http://localhost", "host resolves to a non-global address 127.0.0.1 (loopback)"),
    ("http://[::1]", "non-global address ::1 (loopback)"),
    ("http://[::ffff:127.0.0.1]", "IPv4-mapped 127.0.0.1"),
    ("http://169.254.169.254", "non-global address 169.254.169.254 (cloud metadata)"),
    ("http://10.0.0.1", "non-global address 10.0.0.1 (private)"),
    ("http://100.64.0.1", "non-global address 100.64.0.1 (carrier-grade NAT)"),
    ("http://0.0.0.0", "non-global address 0.0.0.0 (unspecified)"),
    ("http://2130706433", "non-canonical numeric host '2130706433' not allowed (means 127.0.0.1)"),
    ("http://0x7f.1", "non-canonical numeric host '0x7f.1' not allowed (means 127.0.0.1)"),
    ("file:///etc/passwd", "scheme must be https"),
    ("gopher://x", "scheme must be https"),
    ("https://user:pass@example.com", "userinfo not allowed"),
    ("https://{sub1}.example.com/", "macro not allowed in host"),
]

MORE_REFUSED = [
    ("http://017700000001", "non-canonical numeric host"),
    ("http://127.1", "non-canonical numeric host"),
    ("http://127.0.0.1.", "non-canonical numeric host"),
    ("http://0177.0.0.1", "non-canonical numeric host"),
    # Fullwidth digits: IDNA maps them to ASCII before the resolver sees them.
    ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11", "non-global address 127.0.0.1 (loopback)"),
    ("http://[::]", "non-global address :: (unspecified)"),
    ("http://[::127.0.0.1]", "not global unicast"),
    ("http://[fe80::1%25eth0]", "IPv6 zone id not allowed"),
    ("http://[fe80::1]", "link-local"),
    ("http://[fd00:ec2::254]", "unique-local"),
    ("http://[64:ff9b::7f00:1]", "NAT64 127.0.0.1"),
    ("http://[2002:7f00:1::]", "6to4 127.0.0.1"),
    ("http://[2001::1]", "Teredo"),
    ("http://[ff02::1]", "multicast"),
    ("http://224.0.0.1", "multicast"),
    ("http://255.255.255.255", "reserved"),
    ("http://192.168.1.1", "private"),
    ("http://172.16.0.1", "private"),
    ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata"),
    ("https://mixed.example/", "host resolves to a non-global address 10.0.0.7"),
    ("https://nowhere.example/", "host does not resolve"),
    ("https://example.com:{sub1}/", "macro not allowed in port"),
    ("https://example.com{click_id}", "macro not allowed in host"),
    ("https://{sub1}@example.com/", "userinfo not allowed"),
    ("https://example.com@127.0.0.1/", "userinfo not allowed"),
    ("{sub1}://example.com/", "macro not allowed in scheme"),
    ("https://example.com/{nope}", "unknown macro {nope}"),
    ("https://example.com/?a={click_id", "unbalanced brace"),
    ("https://example.com\\@evil.example/", "userinfo not allowed"),
    ("https://exa mple.com/", "whitespace or control character"),
    ("https://example.com/\r\nX-Injected: 1", "whitespace or control character"),
    ("https://", "empty host"),
    ("https:example.com", "must have a host"),
    ("https://[::1]:99999/", "invalid port"),
    ("https://example.com:/", "invalid port"),
    ("javascript:alert(1)", "scheme must be https"),
    ("//example.com/", "scheme must be https"),
]


@pytest.mark.parametrize(("url", "message"), CASE_13 + MORE_REFUSED)
def test_unsafe_postback_template_is_refused_naming_the_problem(url: str, message: str) -> None:
    with pytest.raises(UnsafeURL) as refused:
        validate_postback_template(url, allow_http=True, allowed_networks=(), resolver=PUBLIC_DNS)
    assert message in str(refused.value)


def test_unsafe_url_is_a_value_error() -> None:
    assert issubclass(UnsafeURL, ValueError)


def test_localhost_is_refused_with_the_system_resolver() -> None:
    with pytest.raises(UnsafeURL, match="non-global address"):
        validate_postback_template("http://localhost/", allow_http=True, allowed_networks=())


def test_plain_http_is_refused_unless_allowed() -> None:
    with pytest.raises(UnsafeURL, match="scheme must be https"):
        validate_postback_template("http://example.com/", allow_http=False, allowed_networks=(), resolver=PUBLIC_DNS)
    url = "http://example.com/cb?c={click_id}"
    assert validate_postback_template(url, allow_http=True, allowed_networks=(), resolver=PUBLIC_DNS) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://partner.example/cb?click={click_id}&amount={payout}&cur={currency}&s={status}",
        "https://partner.example:8443/{offer_id}/{event}?{sub1}={sub2}&t={txn_id}#{sub5}",
        "https://PARTNER.example/cb?c={conversion_id}&x={sub3}{sub4}",
        "https://v6.example/",
        f"https://{PUBLIC}/cb",
        "https://[2606:2800:220:1:248:1893:25c8:1946]/cb",
        "https://[::ffff:93.184.216.34]/cb",
        "https://[2002:5db8:d822::1]/cb",
    ],
)
def test_safe_postback_template_is_accepted(url: str) -> None:
    assert validate_postback_template(url, allow_http=False, allowed_networks=(), resolver=PUBLIC_DNS) == url


def test_template_is_stored_stripped() -> None:
    url = "https://partner.example/cb?c={click_id}"
    assert validate_postback_template(f"  {url}\n", allow_http=False, allowed_networks=(), resolver=PUBLIC_DNS) == url


@pytest.mark.parametrize(
    ("url", "networks"),
    [
        ("http://127.0.0.1:8080/cb?c={click_id}", LOOPBACK),
        ("http://localhost:8080/cb", ["127.0.0.0/8", "::1/128"]),
        ("http://[::ffff:127.0.0.1]/cb", LOOPBACK),
        ("http://10.1.2.3/cb", ["10.0.0.0/8"]),
    ],
)
def test_allowed_networks_exempt_private_deployments(url: str, networks: list[ipaddress.IPv4Network | str]) -> None:
    assert validate_postback_template(url, allow_http=True, allowed_networks=networks, resolver=PUBLIC_DNS) == url


def test_allowed_networks_exempt_only_what_they_cover() -> None:
    for url in ("http://10.0.0.1/", "http://127.0.0.1/", "http://localhost/"):
        with pytest.raises(UnsafeURL, match="non-global"):
            validate_postback_template(url, allow_http=True, allowed_networks=["127.0.0.2/32"], resolver=PUBLIC_DNS)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.53", "loopback"),
        ("0.1.2.3", "unspecified"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("169.254.1.1", "link-local"),
        ("192.0.0.192", "IETF protocol assignment"),
        ("198.18.0.1", "benchmarking"),
        ("::ffff:10.0.0.1", "private, IPv4-mapped 10.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "cloud metadata, NAT64 169.254.169.254"),
        ("fec0::1", "site-local"),
        ("2001:db8::1", "documentation"),
    ],
)
def test_check_address_names_the_range(address: str, reason: str) -> None:
    with pytest.raises(UnsafeURL, match=r"non-global address .* \(" + reason):
        check_address(address)


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_check_address_passes_global_addresses(address: str) -> None:
    assert str(check_address(address)) == str(ipaddress.ip_address(address))


# --- rendering -----------------------------------------------------------------------------

TEMPLATE = "https://partner.example/cb/{sub1}?c={click_id}&p={payout}&cur={currency}"


@pytest.mark.parametrize(
    "value",
    ["1&payout=9#x", "a\r\nSet-Cookie: x=1", "%0d%0a", "../../admin?x=1", "x" * 10_240, "ü€😀", "{click_id}", "a+b c"],
)
def test_render_keeps_hostile_value_one_encoded_parameter(value: str) -> None:
    url = render_postback_url(TEMPLATE, {"click_id": value, "payout": "5.00", "sub1": value, "currency": "USD"})
    parts = urlsplit(url)
    assert parts.hostname == "partner.example"
    assert parse_qs(parts.query, keep_blank_values=True, strict_parsing=True) == {
        "c": [value],
        "p": ["5.00"],
        "cur": ["USD"],
    }
    assert unquote(parts.path.removeprefix("/cb/")) == value
    assert not parts.fragment


@settings(max_examples=300, database=None, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"])))
def test_render_round_trips_any_text_value(value: str) -> None:
    url = render_postback_url(TEMPLATE, {"click_id": value, "sub1": value, "payout": "1", "currency": "EUR"})
    parts = urlsplit(url)
    assert parts.scheme == "https"
    assert parts.netloc == "partner.example"
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=True)
    assert query == {"c": [value], "p": ["1"], "cur": ["EUR"]}
    assert unquote(parts.path.removeprefix("/cb/")) == value


def test_render_encodes_non_utf8_input_as_its_original_bytes() -> None:
    raw = b"caf\xe9"
    value = raw.decode("utf-8", "surrogateescape")
    url = render_postback_url("https://partner.example/cb?c={click_id}", {"click_id": value})
    assert url == "https://partner.example/cb?c=caf%E9"
    lone = render_postback_url("https://partner.example/cb?c={click_id}&d=1", {"click_id": "a\ud800b"})
    assert parse_qs(urlsplit(lone).query) == {"c": ["a?b"], "d": ["1"]}


def test_render_fills_missing_values_with_empty_text() -> None:
    url = render_postback_url(
        "https://partner.example/cb?c={click_id}&s={sub2}&b={sub3}", {"click_id": 7, "sub3": b"\xff&"}
    )
    assert url == "https://partner.example/cb?c=7&s=&b=%FF%26"


def test_render_refuses_unknown_macro_and_macro_in_host() -> None:
    with pytest.raises(UnsafeURL, match=r"unknown macro \{foo\}"):
        render_postback_url("https://partner.example/?x={foo}", {"foo": "1"})
    with pytest.raises(UnsafeURL, match="macro not allowed in host"):
        render_postback_url("https://{sub1}.partner.example/", {"sub1": "evil"})


def test_macro_set_matches_the_spec() -> None:
    expected = {"click_id", "conversion_id", "offer_id", "event", "payout", "currency", "status", "txn_id"}
    assert expected | {f"sub{i}" for i in range(1, 6)} == MACROS


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        (
            "https://p.example/cb?click=1&token=abc&sig=zz&api_key=k&Signature=s&x",
            "https://p.example/cb?click=1&token=***&sig=***&api_key=***&Signature=***&x",
        ),
        ("https://u:pw@p.example/a?password=hunter2#auth=1", "https://u:***@p.example/a?password=***#auth=***"),
        ("https://p.example/a?offer=1&sub1=token", "https://p.example/a?offer=1&sub1=token"),
        ("not a url ?secret=1", "not a url ?secret=***"),
    ],
)
def test_redact_url_masks_secret_values(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


# --- local endpoints -----------------------------------------------------------------------


@dataclass
class Request:
    """What a local endpoint received."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[[socket.socket, Request, threading.Event], None]


def _read_request(conn: socket.socket) -> Request:
    """Return one HTTP request read from a connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        body += conn.recv(65536)
    return Request(method, target, headers, body)


@dataclass
class Listener:
    """A real TCP endpoint on a loopback address that counts every accepted connection."""

    host: str
    handler: Handler | None
    tls: ssl.SSLContext | None = None
    port: int = 0
    accepted: int = 0
    requests: list[Request] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self.sock = socket.create_server((self.host, self.port), family=family)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._accepting = threading.Thread(target=self._serve, daemon=True)
        self._accepting.start()

    def url(self, path: str = "/", *, host: str | None = None, scheme: str = "http") -> str:
        """Return a URL for this endpoint."""
        name = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{scheme}://{name}:{self.port}{path}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            worker = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._threads.append(worker)
            worker.start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            request = _read_request(conn)
            self.requests.append(request)
            if self.handler is not None:
                self.handler(conn, request, self.stop)
        except OSError:
            pass  # the client hung up or timed out: that is what several tests do
        finally:
            conn.close()

    def close(self) -> None:
        """Stop serving and wait for every handler."""
        self.stop.set()
        self._accepting.join()
        self.sock.close()
        for worker in self._threads:
            worker.join(timeout=5)


@pytest.fixture
def listen() -> Iterator[Callable[..., Listener]]:
    """Yield a factory of loopback listeners, closed after the test."""
    made: list[Listener] = []

    def make(
        host: str = "127.0.0.1", handler: Handler | None = None, tls: ssl.SSLContext | None = None, port: int = 0
    ) -> Listener:
        listener = Listener(host, handler, tls, port)
        made.append(listener)
        return listener

    yield make
    for listener in made:
        listener.close()


def reply(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Handler:
    """Return a handler answering with a fixed response."""

    def handle(conn: socket.socket, request: Request, stop: threading.Event) -> None:
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        conn.sendall(head.encode() + b"\r\n" + body)

    return handle


def slow(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    """Answer only after the client has given up."""
    if not stop.wait(3):
        reply(200, b"late")(conn, request, stop)


def drip_body(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    """Send headers, then one body byte every 50 ms, never finishing."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
    while not stop.wait(0.05):
        conn.sendall(b"x")


def drip_headers(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    """Send the status line, then one header byte every 50 ms, never finishing."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while not stop.wait(0.05):
        conn.sendall(b"a")


def huge(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    """Stream a 200 MB body as fast as the client takes it."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 200000000\r\n\r\n")
    chunk = b"x" * 65536
    for _ in range(200_000_000 // len(chunk)):
        if stop.is_set():
            return
        conn.sendall(chunk)


def echo(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    """Answer 200 with the request target as the body."""
    reply(200, request.target.encode())(conn, request, stop)


# --- sending -------------------------------------------------------------------------------


def test_allowed_network_makes_a_local_endpoint_reachable(listen: Callable[..., Listener]) -> None:
    endpoint = listen(handler=reply(200, b"ok", {"X-Partner": "yes"}))
    result = fetch("GET", endpoint.url("/cb?c=1"), allow_http=True, allowed_networks=LOOPBACK)
    assert (result.status, result.body, result.error) == (200, b"ok", None)
    assert result.ok and not result.truncated
    assert result.headers["x-partner"] == "yes"
    assert result.address == "127.0.0.1"
    assert result.latency_ms > 0
    assert endpoint.requests[0].target == "/cb?c=1"


def test_loopback_is_blocked_without_the_exemption(listen: Callable[..., Listener]) -> None:
    endpoint = listen(handler=reply(200))
    result = fetch("GET", endpoint.url(), allow_http=True)
    assert result.status is None and not result.ok
    assert result.error == "blocked: host is a non-global address 127.0.0.1 (loopback)"
    time.sleep(0.1)
    assert endpoint.accepted == 0


def test_ipv6_endpoint_is_reached_by_its_checked_address(listen: Callable[..., Listener]) -> None:
    endpoint = listen("::1", handler=reply(204))
    result = fetch("GET", endpoint.url(), allow_http=True, allowed_networks=["::1/128"])
    assert (result.status, result.address, result.error) == (204, "::1", None)
    assert endpoint.requests[0].headers["host"] == f"[::1]:{endpoint.port}"


def test_rendered_hostile_values_arrive_as_one_parameter(listen: Callable[..., Listener]) -> None:
    endpoint = listen(handler=echo)
    template = endpoint.url("/cb/{sub1}?c={click_id}&p={payout}")
    validate_postback_template(template, allow_http=True, allowed_networks=LOOPBACK)
    hostile = "1&payout=9#x\r\nX-Injected: 1 ü"
    url = render_postback_url(template, {"click_id": hostile, "sub1": "../admin", "payout": "5.00"})
    result = fetch("GET", url, allow_http=True, allowed_networks=LOOPBACK)
    assert result.status == 200
    received = urlsplit(result.body.decode())
    assert parse_qs(received.query) == {"c": [hostile], "p": ["5.00"]}
    assert unquote(received.path) == "/cb/../admin"
    assert "x-injected" not in endpoint.requests[0].headers


def test_post_sends_body_and_host_cannot_be_overridden(listen: Callable[..., Listener]) -> None:
    endpoint = listen(handler=reply(201))
    dns = resolver_for({"partner.example": ["127.0.0.1"]})
    result = fetch(
        "POST",
        endpoint.url("/hook", host="partner.example"),
        headers={"Host": "evil.example", "Content-Type": "application/json", "X-Signature": "t=1,v1=ab"},
        body='{"conversion_id": 1}',
        allow_http=True,
        allowed_networks=LOOPBACK,
        resolver=dns,
    )
    assert result.status == 201
    request = endpoint.requests[0]
    assert (request.method, request.body) == ("POST", b'{"conversion_id": 1}')
    assert request.headers["host"] == f"partner.example:{endpoint.port}"
    assert request.headers["x-signature"] == "t=1,v1=ab"


@pytest.mark.parametrize(
    "headers", [{"X-A": "1\r\nX-B: 2"}, {"X-A\r\nX-B": "2"}, {"X-A": "caf\u00e9\u20ac"}, {"": "1"}]
)
def test_header_injection_by_the_caller_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="invalid header"):
        send("GET", "https://partner.example/", headers=headers, resolver=PUBLIC_DNS)


def test_dns_rebinding_to_loopback_never_connects(listen: Callable[..., Listener]) -> None:
    victim = listen("127.0.0.1", handler=reply(200))
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    asked: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    template = victim.url("/cb?c={click_id}", host="partner.example")
    validate_postback_template(template, allow_http=True, allowed_networks=(), resolver=rebinding)
    result = fetch("GET", render_postback_url(template, {"click_id": "1"}), allow_http=True, resolver=rebinding)
    assert asked == ["partner.example", "partner.example"]
    assert result.status is None
    assert result.error == "blocked: host resolves to a non-global address 127.0.0.1 (loopback)"
    time.sleep(0.1)
    assert victim.accepted == 0


def test_one_bad_answer_among_allowed_ones_blocks_the_send(listen: Callable[..., Listener]) -> None:
    allowed = listen("127.0.0.2", handler=reply(200))
    # Same port on 127.0.0.1, so a connection to the wrong answer would be seen.
    victim = listen("127.0.0.1", handler=reply(200), port=allowed.port)
    dns = resolver_for({"partner.example": ["127.0.0.2", "127.0.0.1"]})
    result = fetch(
        "GET",
        allowed.url("/", host="partner.example"),
        allow_http=True,
        allowed_networks=["127.0.0.2/32"],
        resolver=dns,
    )
    assert result.error == "blocked: host resolves to a non-global address 127.0.0.1 (loopback)"
    time.sleep(0.1)
    assert (allowed.accepted, victim.accepted) == (0, 0)


@pytest.mark.parametrize("networks", [["127.0.0.2/32"], ["127.0.0.0/8"]])
@pytest.mark.parametrize("target_host", ["127.0.0.1", "127.0.0.3"])
def test_redirect_is_returned_not_followed(
    listen: Callable[..., Listener], networks: list[str], target_host: str
) -> None:
    target = listen(target_host, handler=reply(200, b"secret"))
    location = target.url("/latest/meta-data/")
    first_hop = listen("127.0.0.2", handler=reply(302, headers={"Location": location}))
    dns = resolver_for({"partner.example": ["127.0.0.2"]})
    result = fetch(
        "GET",
        first_hop.url("/cb", host="partner.example"),
        allow_http=True,
        allowed_networks=networks,
        resolver=dns,
    )
    assert (result.status, result.error, result.address) == (302, None, "127.0.0.2")
    assert result.headers["location"] == location
    assert not result.ok
    time.sleep(0.1)
    assert first_hop.accepted == 1
    assert target.accepted == 0


def test_server_error_is_returned_as_status(listen: Callable[..., Listener]) -> None:
    endpoint = listen(handler=reply(500, b"boom"))
    result = fetch("POST", endpoint.url(), body=b"x", allow_http=True, allowed_networks=LOOPBACK)
    assert (result.status, result.body, result.error, result.ok) == (500, b"boom", None, False)


def test_refused_connection_is_an_error_not_an_exception() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    result = fetch("GET", f"http://127.0.0.1:{port}/", allow_http=True, allowed_networks=LOOPBACK)
    assert result.status is None
    assert result.error == "connect failed: Connection refused"


def test_unresolvable_and_unrendered_urls_are_blocked() -> None:
    assert send("GET", "https://nowhere.example/", resolver=PUBLIC_DNS).error == (
        "blocked: host does not resolve: nowhere.example"
    )
    assert send("GET", "https://partner.example/?c={click_id}", resolver=PUBLIC_DNS).error == (
        "blocked: unrendered macro in URL"
    )
    assert send("GET", "http://partner.example/", resolver=PUBLIC_DNS).error == (
        "blocked: scheme must be https, not 'http'"
    )


def test_slow_endpoint_times_out_within_the_read_timeout(listen: Callable[..., Listener]) -> None:
    endpoint = listen(handler=slow)
    started = time.monotonic()
    result = fetch("GET", endpoint.url(), allow_http=True, allowed_networks=LOOPBACK)
    elapsed = time.monotonic() - started
    assert result.status is None
    assert result.error == "timeout: read"
    assert 0.25 < elapsed < 1.0


@pytest.mark.parametrize("handler", [drip_body, drip_headers])
def test_slow_drip_is_cut_at_the_total_deadline(listen: Callable[..., Listener], handler: Handler) -> None:
    endpoint = listen(handler=handler)
    started = time.monotonic()
    result = fetch("GET", endpoint.url(), allow_http=True, allowed_networks=LOOPBACK, total_timeout=1.0)
    elapsed = time.monotonic() - started
    assert result.error == "timeout: total deadline exceeded"
    assert 0.9 < elapsed < 1.6
    assert len(result.body) < 100


def test_default_total_deadline_is_connect_plus_read_plus_two_seconds(listen: Callable[..., Listener]) -> None:
    endpoint = listen(handler=drip_body)
    started = time.monotonic()
    # Bytes arrive every 50 ms, well inside the 1 s read timeout: only the total deadline
    # (0.2 + 1.0 + 2 = 3.2 s) can end it, even on a busy machine.
    result = send(
        "GET", endpoint.url(), allow_http=True, allowed_networks=LOOPBACK, connect_timeout=0.2, read_timeout=1.0
    )
    elapsed = time.monotonic() - started
    assert result.status == 200
    assert result.error == "timeout: total deadline exceeded"
    assert 3.1 < elapsed < 5.0


@pytest.mark.parametrize("max_body", [1000, 65536, 300_000])
def test_huge_body_is_capped_and_returns_quickly(listen: Callable[..., Listener], max_body: int) -> None:
    endpoint = listen(handler=huge)
    started = time.monotonic()
    result = fetch("GET", endpoint.url(), allow_http=True, allowed_networks=LOOPBACK, max_body=max_body)
    assert time.monotonic() - started < 1.0
    assert (result.status, result.error) == (200, None)
    assert len(result.body) == max_body
    assert result.truncated


def test_body_exactly_at_the_cap_is_not_truncated(listen: Callable[..., Listener]) -> None:
    endpoint = listen(handler=reply(200, b"y" * 1000))
    result = fetch("GET", endpoint.url(), allow_http=True, allowed_networks=LOOPBACK, max_body=1000)
    assert (len(result.body), result.truncated) == (1000, False)


# --- TLS: connect to the checked IP, verify the certificate against the partner's name --------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Return (cert, key) of a self-signed certificate for partner.example."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=partner.example"),
            *("-addext", "subjectAltName=DNS:partner.example"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_https_uses_sni_and_checks_the_certificate_name(
    listen: Callable[..., Listener], certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server_names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)
    endpoint = listen(handler=reply(200, b"tls ok"), tls=context)
    dns = resolver_for({"partner.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})
    options: dict[str, Any] = {"allowed_networks": LOOPBACK, "resolver": dns, "ca_certs": str(cert)}

    good = fetch("GET", endpoint.url("/cb", host="partner.example", scheme="https"), **options)
    assert (good.status, good.body, good.error, good.address) == (200, b"tls ok", None, "127.0.0.1")
    assert server_names[0] == "partner.example"
    assert endpoint.requests[0].headers["host"] == f"partner.example:{endpoint.port}"

    wrong = fetch("GET", endpoint.url("/cb", host="other.example", scheme="https"), **options)
    assert wrong.status is None
    assert wrong.error is not None and wrong.error.startswith("tls:")
    assert len(endpoint.requests) == 1

    untrusted = fetch(
        "GET", endpoint.url("/cb", host="partner.example", scheme="https"), **{**options, "ca_certs": None}
    )
    assert untrusted.error is not None and untrusted.error.startswith("tls:")


def test_ipv4_mapped_address_is_dialled_as_its_ipv4_twin(listen: Callable[..., Listener]) -> None:
    endpoint = listen("127.0.0.1", handler=reply(200))
    result = fetch("GET", f"http://[::ffff:127.0.0.1]:{endpoint.port}/", allow_http=True, allowed_networks=LOOPBACK)
    assert (result.status, result.address) == (200, "127.0.0.1")


def garbage(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    """Answer with something that is not HTTP."""
    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")


def hang_up(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    """Close without answering."""


@pytest.mark.parametrize("handler", [garbage, hang_up])
def test_broken_endpoint_is_a_protocol_error(listen: Callable[..., Listener], handler: Handler) -> None:
    endpoint = listen(handler=handler)
    result = fetch("GET", endpoint.url(), allow_http=True, allowed_networks=LOOPBACK)
    assert result.status is None
    assert result.error is not None and result.error.startswith("protocol error: ")
