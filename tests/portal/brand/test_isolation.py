"""RELIABILITY.md case 31 for the brand console: a brand user reaching another brand's object through any page,
htmx fragment, form post, export or download gets 404, the same page as for an id that does not exist, and
nothing changes; lists never hold another brand's rows; other roles get 403 and visitors are sent to sign in."""

from __future__ import annotations

import re
from typing import Any

import pytest

from network.auth import Role
from tests.portal.brand.conftest import HTMX, override, page, text, token_of
from tests.portal.conftest import make_user, sign_in

#: Every brand page, as a list.
PAGES = ("/brand/", "/brand/offers", "/brand/offers/new", "/brand/partners", "/brand/conversions",
         "/brand/integration", "/brand/reports")  # fmt: skip
MISSING = 10**6


def _requests(w: Any, override_id: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, form) reaching Acme's objects; the path holds {id} where an unknown id stands in too."""
    offer, gated, conversion = w.offer.id, w.gated.id, w.approved.id
    edit = {"name": "Hijacked", "destination_url": "https://evil.example/", "events-0-key": "sale",
            "events-0-model": "cpa", "events-0-payout": "1.00", "events-0-revenue": "2.00"}  # fmt: skip
    return [
        ("GET", f"/brand/offers/{offer}", {}),
        ("GET", f"/brand/offers/{offer}/pause", {}),
        ("GET", f"/brand/offers/{offer}/archive", {}),
        ("GET", f"/brand/conversions/{conversion}", {}),
        ("GET", f"/brand/partners?offer_id={offer}", {}),
        ("GET", f"/brand/reports?offer_id={offer}", {}),
        ("GET", f"/brand/reports.csv?offer_id={offer}", {}),
        ("POST", f"/brand/offers/{offer}", edit),
        ("POST", f"/brand/offers/{offer}/pause", {}),
        ("POST", f"/brand/offers/{offer}/archive", {}),
        ("POST", f"/brand/offers/{gated}/applications/{w.application.id}", {"approve": "Approve"}),
        ("POST", f"/brand/offers/{offer}/overrides/{override_id}/remove", {}),
        ("POST", f"/brand/conversions/{conversion}", {"new_status": "reversed", "reason": "mine now"}),
        ("POST", "/brand/conversions/status", {"ids": str(conversion), "new_status": "reversed", "reason": "mine now"}),
        ("POST", "/brand/partners/invite", {"invite_offer": str(gated), "invite_partner": str(w.other_partner.id)}),
        (
            "POST",
            "/brand/partners/overrides",
            {"target": f"{offer}:sale", "override_partner": str(w.other_partner.id), "payout": "1.00"},
        ),
    ]


def _main(response: Any) -> str:
    found = re.search(r"<main.*?</main>", text(response), re.S)
    return found.group(0) if found else text(response)


def _state(session: Any, w: Any) -> tuple[Any, ...]:
    session.expire_all()
    return (w.offer.name, w.offer.status, w.approved.status, w.application.status, len(w.offer.events),
            sorted(a.partner_id for a in session.query(type(w.application)).filter_by(offer_id=w.gated.id)))  # fmt: skip


def test_another_brand_reaching_acmes_objects_gets_404_everywhere(world, session):
    made = override(session, world.offer, world.partner, "6.00")
    session.flush()
    before = _state(session, world)
    token = token_of(world.them)
    for method, path, form in _requests(world, made.id):
        for headers in ({}, HTMX):
            if method == "GET":
                r = world.them.get(path, headers=headers)
            else:
                r = world.them.post(path, data={**form, "csrf_token": token}, headers=headers)
            assert r.status_code == 404, (method, path, headers, r.status_code)
            body = text(r)
            assert "Spring sale" not in body and "Gated Deal" not in body and "MINE-1" not in body, path
    assert _state(session, world) == before
    assert made.payout_minor == 600


def test_a_foreign_id_answers_as_an_unknown_one(world):
    for path in ("/brand/offers/{}", "/brand/offers/{}/pause", "/brand/conversions/{}"):
        ids = world.offer.id if "offers" in path else world.approved.id
        foreign, unknown = world.them.get(path.format(ids)), world.them.get(path.format(MISSING))
        assert foreign.status_code == unknown.status_code == 404
        assert _main(foreign) == _main(unknown)


def test_an_object_of_another_brand_under_an_own_path_is_404(world, session):
    # Acme's own offer in the path, Other Shop's application or override as the object.
    theirs = override(session, world.foreign, world.other_partner, "80.00")
    session.flush()
    token = token_of(world.me)
    r = world.me.post(f"/brand/offers/{world.gated.id}/applications/{world.foreign_application.id}",
                      data={"approve": "Approve", "csrf_token": token})  # fmt: skip
    assert r.status_code == 404
    r = world.me.post(f"/brand/offers/{world.offer.id}/overrides/{theirs.id}/remove", data={"csrf_token": token})
    assert r.status_code == 404
    session.refresh(world.foreign_application)
    assert world.foreign_application.status == "pending"


def test_no_list_page_or_fragment_holds_another_brands_rows(world):
    for path in PAGES:
        for headers in ({}, HTMX):
            html = text(world.them.get(path, headers=headers))
            for mine in ("Spring sale", "Gated Deal", "Newsletter of 40k", "MINE-1", world.brand.postback_token):
                assert mine not in html, (path, mine)
    csv = text(world.them.get("/brand/reports.csv", query_string={"group_by": "offer"}))
    assert [line.split(",")[0] for line in csv.split("\r\n")[1:] if line] == [str(world.foreign.id)]


@pytest.mark.parametrize("role", [Role.PARTNER, Role.FINANCE, Role.ADMIN])
def test_other_roles_get_403(app, world, session, role):
    partner_id = world.partner.id if role is Role.PARTNER else None
    make_user(session, email="someone@example.com", role=role, partner_id=partner_id)
    session.flush()
    client = app.test_client()
    sign_in(client, "someone@example.com")
    for path in (
        *PAGES,
        f"/brand/offers/{world.offer.id}",
        f"/brand/conversions/{world.approved.id}",
        "/brand/reports.csv",
    ):
        assert client.get(path).status_code == 403, path
    token = token_of(client, "/account/profile")
    assert client.post(f"/brand/offers/{world.offer.id}/pause", data={"csrf_token": token}).status_code == 403


def test_signed_out_visitors_are_sent_to_sign_in(app, world):
    client = app.test_client()
    for path in (*PAGES, "/brand/reports.csv"):
        r = client.get(path)
        assert r.status_code == 302 and "/account/sign-in" in r.headers["Location"], path
    assert client.post(f"/brand/offers/{world.offer.id}/pause").status_code == 400  # no session, no CSRF token


def test_the_pages_carry_the_security_headers(world):
    for path in PAGES:
        r = world.me.get(path)
        assert r.headers["Content-Security-Policy"].startswith("default-src 'self'; script-src 'self'")
        assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Cache-Control"] == "no-store"
    assert page(world.me, "/brand/integration").count("<script") == page(world.me, "/brand/integration").count(
        "<script src="
    )
