"""Settings read from the environment, with defaults for an embedded one-machine network."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from network import money

ROOT = Path(__file__).resolve().parent.parent


def _default_database_url() -> str:
    instance = ROOT / "instance"
    return f"sqlite:///{instance / 'network.db'}"


def _default_outbox() -> str:
    return str(ROOT / "instance" / "outbox")


def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Everything the app reads from its environment; passed down explicitly, never global."""

    database_url: str = field(default_factory=_default_database_url)
    #: Connections each process keeps open to its database: at least the worker's threads, else under
    #: load each connection past it is opened and closed again for one request (a new PostgreSQL
    #: backend every time).
    database_pool_size: int = 16
    #: A PostgreSQL hot standby of DATABASE_URL that reports and some lists read (a little behind is
    #: harmless there; see `Database.replica_session`). Unset: everything reads DATABASE_URL.
    database_replica_url: str | None = None
    #: Keys click ids, visitor hashes and other HMACs. Must be stable across processes.
    secret_key: str = ""
    public_base_url: str = "http://127.0.0.1:5000"
    payout_min_amount: str = "50.00"
    payout_schedule: str = "0 0 * * mon"
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    stripe_webhook_secret: str | None = None
    trusted_country_header: str | None = None
    geoip_db: str | None = None
    click_ip_retention_days: int = 30
    #: Raw clicks are kept this many whole months, then dropped with their month's partition (rollups stay).
    click_retention_months: int = 13
    postback_allow_http: bool = False
    postback_allowed_networks: tuple[Any, ...] = ()
    #: SMTP server for e-mail (smtp://user:password@host:587?starttls=1, or smtps://...); without it,
    #: mails are logged and written to MAIL_OUTBOX as .eml files.
    mail_url: str | None = None
    mail_from: str = "network <no-reply@localhost>"
    mail_outbox: str = field(default_factory=_default_outbox)
    #: Where sign-in attempts are counted: memory:// (per process) or redis://host:6379 (shared).
    ratelimit_storage_uri: str = "memory://"
    #: Bearer token that /metrics requires; unset, /metrics is not served (404).
    metrics_token: str | None = None
    #: Log lines as JSON objects (json) or plain text (text); see network/ops/logs.py.
    log_format: str = "json"
    #: One access line per request (network.access); off, requests keep their ids and error lines.
    access_log: bool = True
    #: /readyz fails when no scheduled job ran in this many minutes; 0: the scheduler is not required.
    ready_scheduler_minutes: int = 0
    #: Sign-in attempts allowed per e-mail address, and per client address (limits' notation).
    signin_limit_account: str = "10 per 15 minutes"
    signin_limit_address: str = "30 per 15 minutes"
    #: A signed-in session ends after this long without a request, and this long after sign-in at most.
    session_idle_minutes: int = 60
    session_absolute_hours: int = 12
    #: How long a password-reset link, and an invitation link, stay valid.
    reset_link_minutes: int = 30
    invite_link_hours: int = 72
    #: How often the rollup job rolls up the hours that have ended (seconds, 1 to 59).
    rollup_every_seconds: int = 5
    #: Run the scheduler inside the web process (one-machine use only).
    scheduler_in_process: bool = False
    testing: bool = False
    #: When the invoice job builds the brands' invoices (crontab, UTC): monthly by default.
    billing_schedule: str = "0 0 1 * *"
    #: Who bills, as the invoices show it: the network's legal name and address (lines split by "|").
    billing_issuer: str = "network"

    def payout_min_minor(self, currency: str) -> int:
        """Return the default payout threshold in minor units of `currency` (one setting for all currencies)."""
        return money.parse_threshold(self.payout_min_amount, currency)


def _positive(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name.upper()} must be a whole number of at least 1, not {text!r}")
    return value


def _bool(text: str) -> bool:
    return text.strip().lower() in {"1", "true", "yes", "on"}


_POSITIVE_INTS = frozenset(
    {
        "database_pool_size",
        "session_idle_minutes",
        "session_absolute_hours",
        "reset_link_minutes",
        "invite_link_hours",
        "click_retention_months",
        "rollup_every_seconds",
    }
)


def from_env(environ: dict[str, str] | None = None) -> Settings:
    """Build Settings from environment variables (names are the upper-case field names)."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = env.get(f.name.upper())
        if raw is None or raw == "":
            continue
        if f.name in {"click_ip_retention_days", "ready_scheduler_minutes"}:
            values[f.name] = int(raw)
        elif f.name in _POSITIVE_INTS:
            values[f.name] = _positive(f.name, raw)
        elif f.name in {"postback_allow_http", "scheduler_in_process", "testing", "access_log"}:
            values[f.name] = _bool(raw)
        elif f.name == "postback_allowed_networks":
            values[f.name] = _networks(raw)
        else:
            values[f.name] = raw
    settings = Settings(**values)
    if not settings.secret_key:
        settings = replace(settings, secret_key=_instance_secret())
    money.parse_amount(settings.payout_min_amount, "USD")
    replica = settings.database_replica_url
    if replica and not (replica.startswith("postgresql") and settings.database_url.startswith("postgresql")):
        raise ValueError("DATABASE_REPLICA_URL must be a PostgreSQL hot standby of a PostgreSQL DATABASE_URL")
    return settings


def _instance_secret() -> str:
    """Return a per-installation secret kept in instance/, made on first use (zero set-up)."""
    path = ROOT / "instance" / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key
