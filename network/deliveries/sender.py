"""Build one partner postback request and send it through netguard's safe transport."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from network import netguard, text
from network.clock import now_utc
from network.config import Settings
from network.deliveries import rules

#: SPEC §5 / RELIABILITY.md 15: short timeouts and a capped answer.
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 10.0
MAX_BODY = 64 * 1024
USER_AGENT = "network-postback/1"
#: How much of a partner's answer is kept in the attempt log.
EXCERPT_BYTES = 1024


@dataclass(frozen=True)
class Transport:
    """Where and how postbacks may connect: the operator's settings and the timeouts."""

    allow_http: bool = False
    allowed_networks: tuple[Any, ...] = ()
    #: Tests pass their own to play DNS; production asks the system resolver at each send.
    resolver: netguard.Resolver = netguard.default_resolver
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    max_body: int = MAX_BODY
    ca_certs: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Transport:
        """Return the transport the operator's settings allow."""
        values: dict[str, Any] = {
            "allow_http": settings.postback_allow_http,
            "allowed_networks": tuple(settings.postback_allowed_networks),
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class Request:
    """One postback ready to send."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None

    @property
    def redacted_url(self) -> str:
        """Return the URL with secret-looking values masked, for logs and the API."""
        return netguard.redact_url(self.url)


def build(
    *,
    template: str,
    method: str,
    macros: Mapping[str, str],
    webhook_id: str,
    secret: str | None,
    old_status: str | None,
    event_at: dt.datetime,
    now: dt.datetime | None = None,
) -> Request:
    """Return the request for a delivery: a GET of the rendered URL, or signed JSON POSTed to it.

    Raises netguard.UnsafeURL when the template cannot be rendered safely.
    """
    url = netguard.render_postback_url(template, macros)
    headers = {"User-Agent": USER_AGENT, "webhook-id": webhook_id}
    if method != "post":
        return Request("GET", url, headers)
    body = rules.json_body(webhook_id=webhook_id, old_status=old_status, event_at=event_at, macros=macros)
    timestamp = int((now or now_utc()).timestamp())
    headers["Content-Type"] = "application/json"
    headers["webhook-timestamp"] = str(timestamp)
    if secret:
        headers["webhook-signature"] = rules.sign(secret, webhook_id, timestamp, body)
    return Request("POST", url, headers, body)


def send(request: Request, transport: Transport) -> netguard.Response:
    """Return the partner's answer (or the failure) to one request; checks every address at send time."""
    return netguard.send(
        request.method,
        request.url,
        headers=request.headers,
        body=request.body,
        allowed_networks=transport.allowed_networks,
        allow_http=transport.allow_http,
        resolver=transport.resolver,
        connect_timeout=transport.connect_timeout,
        read_timeout=transport.read_timeout,
        max_body=transport.max_body,
        ca_certs=transport.ca_certs,
    )


def excerpt(body: bytes) -> str | None:
    """Return the start of a partner's answer as storable text (network.text's rule), or None when empty."""
    if not body:
        return None
    return text.storable(body[:EXCERPT_BYTES].decode("utf-8", "replace"), EXCERPT_BYTES, free_text=True)
