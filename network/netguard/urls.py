"""Partner postback URL templates: parsed strictly, validated at save, rendered with encoded macros, redacted for logs."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from network.netguard.addresses import IPAddress, IPNetwork, Resolver, UnsafeURL, default_resolver, resolve_checked

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
# Printable ASCII stays as written; only non-ASCII in a request target gets encoded.
_TARGET_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))
_SECRET_KEY_RE = re.compile(r"token|secret|key|sig|password|passwd|pwd|auth|hmac|credential|session", re.I)


@dataclass(frozen=True)
class Target:
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


def _split_authority(authority: str) -> tuple[str, bool, str]:
    """Return (host part, whether a port is given, port part) of an authority without userinfo."""
    if not authority.startswith("["):
        host_part, colon, port_part = authority.partition(":")
        return host_part, bool(colon), port_part
    close = authority.find("]") + 1 or len(authority)
    host_part, after = authority[:close], authority[close:]
    if after and not after.startswith(":"):
        raise UnsafeURL(f"invalid host {authority!r}")
    return host_part, bool(after), after[1:]


def _parse_port(port_part: str) -> int:
    """Return a port given in a URL, or raise UnsafeURL."""
    if not port_part.isascii() or not port_part.isdigit() or not 0 < int(port_part) < 65536:
        raise UnsafeURL(f"invalid port {port_part!r}")
    return int(port_part)


def parse_url(url: str, *, allow_http: bool) -> Target:
    """Return the parsed target of a URL or template, or raise UnsafeURL."""
    if _BAD_CHAR_RE.search(url):
        raise UnsafeURL("whitespace or control character in URL")
    scheme, authority, rest = _split(url, ("https", "http") if allow_http else ("https",))
    if "@" in authority:
        raise UnsafeURL("userinfo not allowed")
    if "\\" in authority:
        raise UnsafeURL("backslash not allowed in host")
    host_part, has_port, port_part = _split_authority(authority)
    if "{" in host_part or "}" in host_part:
        raise UnsafeURL("macro not allowed in host")
    if "{" in port_part or "}" in port_part:
        raise UnsafeURL("macro not allowed in port")
    host, ip = _parse_host(host_part)
    port = _parse_port(port_part) if has_port else 443 if scheme == "https" else 80
    target = rest.split("#", 1)[0]
    if not target.startswith("/"):
        target = "/" + target
    return Target(
        scheme=scheme,
        host=host,
        ip=ip,
        port=port,
        explicit_port=has_port,
        request_target=quote(target, safe=_TARGET_SAFE),
    )


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
    target = parse_url(template, allow_http=allow_http)
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
