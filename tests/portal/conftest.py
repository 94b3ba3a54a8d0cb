"""Fixtures for the web app: mails read from a temporary outbox, users made through the service, forms posted
with the page's own CSRF token."""

from __future__ import annotations

import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from network.accounts import users
from network.auth import SYSTEM, Role
from network.mail import OutboxMailer
from tests.conftest import make_settings

PASSWORD = "correct horse battery"
_TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
_LINK = re.compile(r"https?://\S+")


@pytest.fixture
def settings(database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Test settings whose mails go to this test's own outbox folder."""
    return make_settings(database_url, mail_outbox=str(tmp_path / "outbox"))


@pytest.fixture(autouse=True)
def _push_request_context() -> None:
    """Replaces pytest-flask's: no request context held over the test, so each request of the client gets
    its own app context and `g`, as on a server (Flask-WTF keeps the request's CSRF token in `g`)."""


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    """A browser-like client; unlike pytest-flask's, it keeps no request's context alive after the request,
    which would hand its `g` (and the user Flask-Login keeps there) to the next client's request."""
    return app.test_client()


class Outbox:
    """The mails the app has sent in this test."""

    def __init__(self, mailer: OutboxMailer) -> None:
        self.mailer = mailer

    def all(self) -> list[EmailMessage]:
        return self.mailer.sent() if self.mailer.folder.exists() else []

    def last_to(self, address: str) -> EmailMessage:
        mails = [m for m in self.all() if m["To"] == address]
        assert mails, f"no mail to {address}: {[m['To'] for m in self.all()]}"
        return mails[-1]

    def link_to(self, address: str) -> str:
        """Return the first link of the last mail to `address`."""
        found = _LINK.search(self.last_to(address).get_content())
        assert found, "the mail has no link"
        return found.group(0)


@pytest.fixture
def outbox(app) -> Outbox:  # type: ignore[no-untyped-def]
    return Outbox(app.extensions["network.mailer"])


def csrf_token(html: str) -> str:
    found = _TOKEN.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def post_form(client: Any, path: str, data: dict[str, Any], *, form_page: str | None = None, **kw: Any) -> Any:
    """GET the form's page for its CSRF token, then POST `data` with it (as a browser does)."""
    page = client.get(form_page or path)
    return client.post(path, data={**data, "csrf_token": csrf_token(page.get_data(as_text=True))}, **kw)


def make_user(
    session: Session,
    *,
    email: str = "someone@example.com",
    role: str | Role = Role.ADMIN,
    password: str | None = PASSWORD,
    brand_id: int | None = None,
    partner_id: int | None = None,
) -> Any:
    user = users.create_user(
        session, SYSTEM, email=email, role=role, brand_id=brand_id, partner_id=partner_id, password=password
    )
    session.flush()
    return user


def sign_in(client: Any, email: str, password: str = PASSWORD) -> Any:
    return post_form(client, "/account/sign-in", {"email": email, "password": password})
