"""Which addresses the network may connect to: IANA special-purpose ranges refused, DNS answers checked.

Every answer of a name must be globally routable (one bad answer taints the name: a round-robin mix is
how DNS rebinding hides); an operator may exempt networks (`allowed_networks`), e.g. a test's loopback.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
#: (host, port) -> addresses as strings; injectable so tests control DNS.
Resolver: TypeAlias = Callable[[str, int], list[str]]


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


def parse_networks(networks: Iterable[IPNetwork | str]) -> tuple[IPNetwork, ...]:
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
    for net in parse_networks(allowed_networks):
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


def resolve_checked(
    host: str,
    port: int,
    *,
    allowed_networks: Iterable[IPNetwork | str] = (),
    resolver: Resolver = default_resolver,
) -> list[IPAddress]:
    """Return every address of host if all may be connected to, else raise UnsafeURL."""
    networks = parse_networks(allowed_networks)
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
