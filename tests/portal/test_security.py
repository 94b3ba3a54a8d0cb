"""RELIABILITY.md case 30: a form post without its CSRF token; a session cookie set before sign-in still
valid after it (fixation); 50 wrong passwords for one account and from one address; a password-reset link
used twice or late; sign-in and reset answers that differ for known and unknown e-mails: refused, rotated,
limited, refused, and never different."""

from __future__ import annotations

import datetime as dt
import re
import time

from network.clock import UTC
from tests.portal.conftest import PASSWORD, csrf_token, make_user, post_form, sign_in

WRONG = "not the password at all"


def _signed_in(client) -> bool:
    r = client.get("/admin/")
    return r.status_code == 200


def test_a_form_post_without_its_csrf_token_is_refused(client, session):
    make_user(session, email="admin@example.com")
    r = client.post("/account/sign-in", data={"email": "admin@example.com", "password": PASSWORD})
    assert r.status_code == 400 and "Form expired" in r.get_data(as_text=True)
    assert not _signed_in(client)
    # A token of another session is refused too.
    other = client.application.test_client()
    token = csrf_token(other.get("/account/sign-in").get_data(as_text=True))
    r = client.post("/account/sign-in", data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 400 and not _signed_in(client)
    # Signed in, a sign-out without the token leaves the session alone.
    assert sign_in(client, "admin@example.com").status_code == 302
    assert client.post("/account/sign-out").status_code == 400
    assert _signed_in(client)


def test_a_session_cookie_set_before_sign_in_is_not_valid_after_it(client, session):
    make_user(session, email="admin@example.com")
    page = client.get("/account/sign-in")
    planted = client.get_cookie("session").value
    form_token = csrf_token(page.get_data(as_text=True))
    r = client.post(
        "/account/sign-in", data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": form_token}
    )
    assert r.status_code == 302
    after = client.get_cookie("session").value
    assert after != planted
    # What the cookie held before sign-in is gone: its CSRF token no longer works on the new session.
    r = client.post("/account/sign-out", data={"csrf_token": form_token})
    assert r.status_code == 400 and _signed_in(client)
    # Whoever kept the pre-sign-in cookie is not signed in with it.
    attacker = client.application.test_client()
    attacker.set_cookie("session", planted)
    assert attacker.get("/admin/").status_code == 302


def test_fifty_wrong_passwords_for_one_account_are_limited(client, session):
    make_user(session, email="admin@example.com")
    statuses = []
    for i in range(50):
        client.environ_base["REMOTE_ADDR"] = f"10.0.{i // 250}.{i % 250 + 1}"  # a new address each time
        statuses.append(sign_in(client, "admin@example.com", WRONG).status_code)
    assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}
    # The right password is refused too while the account is limited, with the same answer.
    client.environ_base["REMOTE_ADDR"] = "10.9.9.9"
    r = sign_in(client, "admin@example.com")
    assert r.status_code == 429 and not _signed_in(client)


def test_fifty_wrong_passwords_from_one_address_are_limited(client, session):
    make_user(session, email="admin@example.com")
    statuses = [sign_in(client, f"user{i}@example.com", WRONG).status_code for i in range(50)]
    assert statuses[:30] == [401] * 30 and set(statuses[30:]) == {429}
    assert sign_in(client, "admin@example.com").status_code == 429
    # Another address is not held back.
    client.environ_base["REMOTE_ADDR"] = "10.1.2.3"
    assert sign_in(client, "admin@example.com").status_code == 302


def _reset(client, outbox, email: str) -> str:
    r = post_form(client, "/account/reset", {"email": email})
    assert r.status_code == 200
    return outbox.link_to(email).removeprefix("http://localhost")


def test_a_reset_link_works_once(client, session, outbox):
    make_user(session, email="admin@example.com")
    path = _reset(client, outbox, "admin@example.com")
    r = post_form(client, path, {"password": "a brand new secret", "confirm": "a brand new secret"})
    assert r.status_code == 302
    again = client.get(path)
    assert again.status_code == 400 and "invalid, already used or expired" in again.get_data(as_text=True)
    assert sign_in(client, "admin@example.com", PASSWORD).status_code == 401
    assert sign_in(client, "admin@example.com", "a brand new secret").status_code == 302


def test_a_reset_link_is_refused_late(client, session, outbox, frozen_clock):
    start = dt.datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    frozen_clock(start)
    make_user(session, email="admin@example.com")
    path = _reset(client, outbox, "admin@example.com")
    frozen_clock(start + dt.timedelta(minutes=29))
    assert client.get(path).status_code == 200
    frozen_clock(start + dt.timedelta(minutes=31))
    assert client.get(path).status_code == 400
    r = post_form(
        client, path, {"password": "a brand new secret", "confirm": "a brand new secret"}, form_page="/account/reset"
    )
    assert r.status_code == 400
    assert sign_in(client, "admin@example.com", PASSWORD).status_code == 302


def _answer(response, email: str) -> tuple[int, str]:
    """The status and the page, less what differs by design (the address typed, the form's CSRF token)."""
    body = response.get_data(as_text=True).replace(email, "EMAIL")
    return response.status_code, re.sub(r'value="[^"]*"', 'value=""', body)


def test_sign_in_answers_the_same_for_known_and_unknown_emails(client, session):
    make_user(session, email="known@example.com")
    known, unknown = [], []
    for _ in range(3):
        for email, times in (("known@example.com", known), ("nobody@example.com", unknown)):
            started = time.perf_counter()
            r = sign_in(client, email, WRONG)
            times.append(time.perf_counter() - started)
            assert _answer(r, email) == _answer(sign_in(client, "nobody@example.com", WRONG), "nobody@example.com")
    # An unknown address still costs a password hash: no reply is quicker for it.
    assert sorted(unknown)[1] > 0.5 * sorted(known)[1]


def test_reset_answers_the_same_for_known_and_unknown_emails(client, session, outbox):
    make_user(session, email="known@example.com")
    known = post_form(client, "/account/reset", {"email": "known@example.com"})
    unknown = post_form(client, "/account/reset", {"email": "nobody@example.com"})
    assert _answer(known, "known@example.com") == _answer(unknown, "nobody@example.com")
    assert known.status_code == 200
    assert [m["To"] for m in outbox.all()] == ["known@example.com"]


def test_sign_up_with_a_taken_email_answers_the_same_and_tells_the_owner(client, session, outbox):
    make_user(session, email="taken@example.com")
    form = {"name": "Deals", "website": "https://deals.example", "traffic_sources": "SEO"}
    form |= {"password": "long enough pw", "confirm": "long enough pw"}
    taken = post_form(client, "/account/sign-up", {**form, "email": "taken@example.com"})
    new = post_form(client, "/account/sign-up", {**form, "email": "new@example.com"})
    assert _answer(taken, "taken@example.com") == _answer(new, "new@example.com")
    assert outbox.last_to("taken@example.com")["Subject"] == "You already have an account"
    assert outbox.last_to("new@example.com")["Subject"] == "Your application is in"


def test_reset_requests_are_limited_per_address_typed_known_or_not(client, session, outbox):
    make_user(session, email="known@example.com")
    for email in ("known@example.com", "nobody@example.com"):
        statuses = []
        for i in range(12):
            client.environ_base["REMOTE_ADDR"] = f"10.2.{len(email)}.{i + 1}"
            statuses.append(post_form(client, "/account/reset", {"email": email}).status_code)
        assert statuses == [200] * 10 + [429] * 2, email
    assert len(outbox.all()) == 10
