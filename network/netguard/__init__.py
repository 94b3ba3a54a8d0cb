"""Decide where the network may connect, and send partner postbacks safely.

addresses: which IP addresses may be reached, and DNS answers checked; urls: postback URL templates
(parse, validate, render, redact); sockets: connections proven to reach the checked address, shut at
the deadline; transport: the HTTP client that uses them.
"""

from __future__ import annotations

from network.netguard.addresses import (
    IPAddress,
    IPNetwork,
    Resolver,
    UnsafeURL,
    check_address,
    default_resolver,
    resolve_checked,
)
from network.netguard.transport import Response, SafeTransport, send
from network.netguard.urls import (
    MACROS,
    MAX_TEMPLATE_LENGTH,
    redact_url,
    render_postback_url,
    validate_postback_template,
)

__all__ = [
    "MACROS",
    "MAX_TEMPLATE_LENGTH",
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
