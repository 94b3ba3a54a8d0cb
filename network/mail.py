"""Outgoing e-mail behind one small interface: SMTP when MAIL_URL is set, else the log and an outbox folder."""

from __future__ import annotations

import logging
import smtplib
import ssl
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from network.clock import now_utc

log = logging.getLogger(__name__)


class Mailer(Protocol):
    """Sends one message; raises on failure."""

    def send(self, message: EmailMessage) -> None: ...


def compose(*, sender: str, to: str, subject: str, body: str) -> EmailMessage:
    """Return a plain-text message ready to send."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{uuid.uuid4().hex}@network>"
    message["Date"] = now_utc().strftime("%a, %d %b %Y %H:%M:%S +0000")
    message.set_content(body)
    return message


class OutboxMailer:
    """Writes each message to `folder` as an .eml file and logs it: for development and tests."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def send(self, message: EmailMessage) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{now_utc().strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.eml"
        path = self.folder / name
        path.write_bytes(bytes(message))
        # The body holds sign-in links: this backend is for development, where the log is how you read them.
        log.info("mail to %s: %s (%s)\n%s", message["To"], message["Subject"], path, message.get_content())

    def sent(self) -> list[EmailMessage]:
        """Return the messages written so far, oldest first (what tests read)."""
        from email import policy
        from email.parser import BytesParser

        parser = BytesParser(policy=policy.default)
        return [
            parser.parsebytes(path.read_bytes())  # type: ignore[misc]
            for path in sorted(self.folder.glob("*.eml"))
        ]


class SmtpMailer:
    """Sends through an SMTP server: smtp://[user:password@]host[:port][?starttls=1] or smtps://..."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("MAIL_URL must look like smtp://user:password@host:587?starttls=1 or smtps://host")
        self.ssl = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.ssl else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.starttls = parse_qs(parts.query).get("starttls", ["0"])[0] in ("1", "true", "yes")
        self.timeout = timeout

    def send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if self.ssl:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            if self.starttls:
                client.starttls(context=context)
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(message)


def from_settings(mail_url: str | None, outbox: str | Path) -> Mailer:
    """Return the mailer the settings ask for."""
    return SmtpMailer(mail_url) if mail_url else OutboxMailer(outbox)
