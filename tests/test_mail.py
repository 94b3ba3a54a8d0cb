"""The mail interface: SMTP when MAIL_URL is set (to a local SMTP server here), else the outbox folder."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy

import pytest

from network import mail


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP to receive a message: what smtplib sends, answered as a server does."""

    def handle(self) -> None:
        self.wfile.write(b"220 localhost ready\r\n")
        while line := self.rfile.readline():
            verb = line.strip().split(b" ")[0].upper().rstrip(b":")
            if verb == b"EHLO":
                self.wfile.write(b"250-localhost\r\n250 SIZE 1000000\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go on\r\n")
                data = b""
                while (chunk := self.rfile.readline()) != b".\r\n":
                    data += chunk
                self.server.received.append(data)  # type: ignore[attr-defined]
                self.wfile.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def smtp_server() -> Iterator[socketserver.ThreadingTCPServer]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_mail_goes_through_smtp_when_mail_url_is_set(smtp_server, tmp_path):
    port = smtp_server.server_address[1]
    mailer = mail.from_settings(f"smtp://127.0.0.1:{port}", tmp_path)
    assert isinstance(mailer, mail.SmtpMailer)
    mailer.send(mail.compose(sender="net@example.com", to="a@example.com", subject="Hello", body="the link"))
    (raw,) = smtp_server.received
    received = message_from_bytes(raw, policy=policy.default)
    assert received["Subject"] == "Hello" and received["To"] == "a@example.com"
    assert "the link" in received.get_content()
    assert not list(tmp_path.iterdir())


def test_without_mail_url_mail_is_written_to_the_outbox(tmp_path, caplog):
    mailer = mail.from_settings(None, tmp_path / "outbox")
    caplog.set_level("INFO", logger="network.mail")
    mailer.send(mail.compose(sender="net@example.com", to="a@example.com", subject="Hello", body="the link"))
    assert isinstance(mailer, mail.OutboxMailer)
    (sent,) = mailer.sent()
    assert sent["Subject"] == "Hello" and "the link" in sent.get_content()
    assert "the link" in caplog.text


def test_a_mail_url_that_is_not_smtp_is_refused():
    with pytest.raises(ValueError, match="MAIL_URL"):
        mail.SmtpMailer("http://127.0.0.1:25")


def test_an_unreachable_smtp_server_raises(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mailer = mail.SmtpMailer(f"smtp://127.0.0.1:{port}", timeout=2)
    with pytest.raises(OSError):
        mailer.send(mail.compose(sender="n@example.com", to="a@example.com", subject="x", body="y"))
