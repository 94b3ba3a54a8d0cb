"""The partner's working pages: offers and applications, the link builder, postback settings and tests.

Everything through real requests of a signed-in partner, on both databases; postback tests call a real local
HTTP endpoint (tests/deliveries/endpoints.py)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from network.auth import Role
from network.clock import now_utc
from network.config import Settings
from network.offers.models import OfferAccess
from network.tracking.models import Click, Link
from tests.conftest import make_settings
from tests.deliveries.conftest import LOCAL, make_conversion
from tests.deliveries.endpoints import Endpoint, respond
from tests.factories import cpa_event, make_brand, make_offer, make_partner
from tests.portal.conftest import csrf_token, make_user, post_form, sign_in

HTMX = {"HX-Request": "true"}


@pytest.fixture
def settings(database_url: str, tmp_path: Any) -> Settings:
    """Portal settings that let postbacks reach 127.0.0.1 (and nothing else local) over http."""
    return make_settings(
        database_url,
        mail_outbox=str(tmp_path / "outbox"),
        postback_allow_http=True,
        postback_allowed_networks=LOCAL,
    )


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    made = Endpoint("127.0.0.1", respond(202, b"got it, thanks"))
    yield made
    made.close()


class World:
    """A brand with a public offer and an approval offer, two partners each with a signed-in user."""

    def __init__(self, app: Any, session: Session) -> None:
        brand = make_brand(session)
        self.public = make_offer(
            session,
            brand=brand,
            name="Lead Magnet",
            events=[
                cpa_event("lead", payout="2.00", revenue="3.37", model="cpl"),
                {"key": "sale", "model": "revshare", "payout_percent": "10", "revenue_percent": "15.5"},
            ],
            caps=[{"metric": "conversions", "period": "day", "limit": 1000}],
            countries=["US", "CA"],
            devices=["mobile"],
        )
        self.gated = make_offer(session, brand=brand, name="Gated Deal", visibility="approval")
        self.partner = make_partner(session, name="Deal Blog")
        self.other = make_partner(session, name="Coupon Site")
        make_user(session, email="me@dealblog.example", role=Role.PARTNER, partner_id=self.partner.id)
        make_user(session, email="me@coupons.example", role=Role.PARTNER, partner_id=self.other.id)
        session.commit()
        self.me = app.test_client()
        sign_in(self.me, "me@dealblog.example")
        self.them = app.test_client()
        sign_in(self.them, "me@coupons.example")


@pytest.fixture
def world(app: Any, session: Session) -> World:
    return World(app, session)


def text(response: Any) -> str:
    return response.get_data(as_text=True)


def build(client: Any, offer_id: int, **fields: str) -> Any:
    return post_form(client, "/partner/links", {"offer_id": str(offer_id), **fields})


# ---- offers --------------------------------------------------------------------------------------


def test_offers_show_the_partners_payouts_caps_and_targeting_in_words_never_the_revenue(world):
    page = text(world.me.get("/partner/offers"))
    assert "Lead Magnet" in page and "Gated Deal" in page
    assert "2.00 USD per lead" in page
    assert "10% of the sale on sale" in page
    assert "at most 1,000 conversions a day" in page
    assert "CA and US only" in page and "mobile only" in page
    # The brand's revenue (3.37, 15.5%) and the gated offer's (8.00) never reach a partner.
    assert "3.37" not in page and "15.5" not in page and "8.00" not in page


def test_apply_creates_a_pending_application_shown_on_the_page(world, session):
    page = text(world.me.get("/partner/offers"))
    assert "Apply to Gated Deal" in page and "Apply to Lead Magnet" not in page
    r = world.me.post(f"/partner/offers/{world.gated.id}/apply", data={"csrf_token": csrf_token(page)})
    assert r.status_code == 302
    (access,) = session.scalars(select(OfferAccess).where(OfferAccess.offer_id == world.gated.id)).all()
    assert (access.partner_id, access.status) == (world.partner.id, "pending")
    page = text(world.me.get("/partner/offers"))
    assert "Application pending" in page and "Apply to Gated Deal" not in page
    # The other partner has applied to nothing.
    assert "Apply to Gated Deal" in text(world.them.get("/partner/offers"))


# ---- links ---------------------------------------------------------------------------------------


def test_the_link_builder_makes_a_link_and_shows_its_url(world, session, settings):
    r = build(world.me, world.public.id, sub1="spring", deep_link="https://shop.example/shoes")
    assert r.status_code == 200
    link = session.scalars(select(Link).where(Link.partner_id == world.partner.id)).one()
    assert (link.sub1, link.deep_link) == ("spring", "https://shop.example/shoes")
    page = text(r)
    assert f'value="{settings.public_base_url.rstrip("/")}/c/{link.code}"' in page and 'data-copy="made-url"' in page
    assert "<html" in page


def test_a_deep_link_outside_the_allowed_domains_is_refused_beside_its_field(world, session):
    r = build(world.me, world.public.id, deep_link="https://evil.example/")
    assert r.status_code == 422
    page = text(r)
    error = re.search(r'<small id="deep_link-error">([^<]*)</small>', page)
    assert error and "allowed_domains" in error.group(1)
    assert 'aria-invalid="true"' in page
    assert session.scalars(select(Link)).all() == []


def test_an_offer_the_partner_may_not_run_is_not_offered_nor_accepted(world, session):
    page = text(world.me.get("/partner/links"))
    assert "Lead Magnet" in page and "Gated Deal" not in page
    assert build(world.me, world.gated.id).status_code == 422
    assert session.scalars(select(Link)).all() == []


def test_the_link_list_shows_each_links_clicks(world, session):
    build(world.me, world.public.id, sub1="a")
    build(world.me, world.public.id, sub1="b")
    first, second = session.scalars(select(Link).order_by(Link.id)).all()
    at = now_utc()
    session.add_all(
        Click(
            id=f"click{n:020d}", link_id=first.id, offer_id=world.public.id, partner_id=world.partner.id, created_at=at
        )
        for n in range(3)
    )
    session.commit()
    page = text(world.me.get("/partner/links"))
    rows = re.findall(r"<tr>\s*<td><code>[^<]*/c/([\w-]+)</code></td>.*?<td>(\d+)</td>\s*</tr>", page, re.S)
    assert dict(rows) == {first.code: "3", second.code: "0"}


def test_htmx_gets_just_the_link_builder_fragment(world, session):
    page = text(world.me.get("/partner/links"))
    r = world.me.post(
        "/partner/links", data={"offer_id": str(world.public.id), "csrf_token": csrf_token(page)}, headers=HTMX
    )
    assert r.status_code == 201
    fragment = text(r)
    link = session.scalars(select(Link)).one()
    assert fragment.lstrip().startswith('<div id="link-builder">')
    assert "<html" not in fragment and "<nav" not in fragment
    assert f"/c/{link.code}" in fragment
    refused = world.me.post(
        "/partner/links",
        data={"offer_id": str(world.public.id), "deep_link": "https://evil.example/", "csrf_token": csrf_token(page)},
        headers=HTMX,
    )
    assert refused.status_code == 422 and 'id="deep_link-error"' in text(refused) and "<html" not in text(refused)


# ---- postbacks -----------------------------------------------------------------------------------


def save(client: Any, url: str, method: str = "get") -> Any:
    return post_form(client, "/partner/postbacks", {"postback_url": url, "postback_method": method})


def test_the_postback_url_is_saved(world, endpoint, session):
    url = endpoint.url("/pb?cid={click_id}&p={payout}")
    r = save(world.me, url, "post")
    assert r.status_code == 302, re.findall(r"<small[^>]*>[^<]*</small>", text(r))
    session.refresh(world.partner)
    assert (world.partner.postback_url, world.partner.postback_method) == (url, "post")
    page = text(world.me.get("/partner/postbacks"))
    assert url.replace("&", "&amp;") in page and '<option selected value="post">' in page
    assert "<code>{click_id}</code>" in page and "<code>{txn_id}</code>" in page


def test_an_unsafe_postback_url_is_refused_with_its_reason(app, world, session):
    app.extensions["network.settings"] = dataclasses.replace(
        app.extensions["network.settings"], postback_allowed_networks=()
    )
    r = save(world.me, "http://127.0.0.1/pb")
    assert r.status_code == 422
    error = re.search(r'<small id="postback_url-error">([^<]*)</small>', text(r))
    assert error and error.group(1).startswith("postback_url:") and "127.0.0.1 (loopback)" in error.group(1)
    session.refresh(world.partner)
    assert world.partner.postback_url is None


def test_send_a_test_shows_the_endpoints_answer(world, endpoint, session):
    assert save(world.me, endpoint.url("/pb?cid={click_id}")).status_code == 302
    page = text(world.me.get("/partner/postbacks"))
    r = world.me.post("/partner/postbacks/test", data={"csrf_token": csrf_token(page)})
    assert r.status_code == 200
    shown = text(r)
    assert "<dd>202</dd>" in shown and "got it, thanks" in shown and "<html" in shown
    (received,) = endpoint.requests
    assert received.one("cid") == "test"
    # With htmx: the result block only.
    r = world.me.post("/partner/postbacks/test", data={"csrf_token": csrf_token(page)}, headers=HTMX)
    fragment = text(r)
    assert fragment.lstrip().startswith('<div id="test-result"') and "<html" not in fragment
    assert "<dd>202</dd>" in fragment and len(endpoint.requests) == 2


def test_send_a_test_names_why_it_was_not_sent(app, world, endpoint, session):
    page = text(world.me.get("/partner/postbacks"))
    r = world.me.post("/partner/postbacks/test", data={"csrf_token": csrf_token(page)}, headers=HTMX)
    assert "Not sent:</strong> postback_url: the partner has no postback URL to test" in text(r)
    # A URL saved while its address was allowed, refused when called: the block's reason is shown.
    world.partner.postback_url = endpoint.url("/pb")
    session.commit()
    app.extensions["network.settings"] = dataclasses.replace(
        app.extensions["network.settings"], postback_allowed_networks=()
    )
    r = world.me.post("/partner/postbacks/test", data={"csrf_token": csrf_token(page)}, headers=HTMX)
    assert "<dd>blocked: host is a non-global address 127.0.0.1 (loopback)</dd>" in text(r)
    assert endpoint.requests == []


def test_the_delivery_log_lists_the_partners_deliveries(world, session):
    world.partner.postback_url = "https://tracker.example/pb?cid={click_id}"
    session.add(link := Link(code="logcode1", offer_id=world.public.id, partner_id=world.partner.id))
    session.flush()
    scene = _scene(world, link)
    conversion = make_conversion(session, scene, status="pending")
    session.commit()
    page = text(world.me.get("/partner/postbacks"))
    assert f"<td>#{conversion.id}</td>" in page and "<td>pending</td>" in page
    assert f"<td>#{conversion.id}</td>" not in text(world.them.get("/partner/postbacks"))


def _scene(world: World, link: Link) -> Any:
    from tests.deliveries.conftest import Scene

    offer = world.public
    return Scene(offer.brand_id, world.partner.id, offer.id, offer.events[0].id, link.id)


# ---- isolation and CSRF ----------------------------------------------------------------------------


def test_another_partners_links_deliveries_and_applications_never_appear(world, session):
    build(world.them, world.public.id, sub1="theirs")
    world.them.post(
        f"/partner/offers/{world.gated.id}/apply",
        data={"csrf_token": csrf_token(text(world.them.get("/partner/offers")))},
    )
    world.other.postback_url = "https://coupons.example/pb?cid={click_id}"
    session.add(link := Link(code="theircode", offer_id=world.public.id, partner_id=world.other.id))
    session.flush()
    scene = _scene(world, link)
    scene.partner_id = world.other.id
    conversion = make_conversion(session, scene)
    session.commit()
    (their_link,) = session.scalars(select(Link).where(Link.sub1 == "theirs")).all()
    pages = [text(world.me.get(path)) for path in ("/partner/offers", "/partner/links", "/partner/postbacks")]
    token = csrf_token(pages[1])
    pages.append(text(world.me.post("/partner/links", data={"offer_id": "", "csrf_token": token}, headers=HTMX)))
    pages.append(text(world.me.post("/partner/postbacks/test", data={"csrf_token": token}, headers=HTMX)))
    for page in pages:
        assert their_link.code not in page and "theircode" not in page and "theirs" not in page
        assert f"<td>#{conversion.id}</td>" not in page and "coupons.example" not in page
        assert "Application pending" not in page


@pytest.mark.parametrize(
    "path", ["/partner/links", "/partner/postbacks", "/partner/postbacks/test", "/partner/offers/1/apply"]
)
def test_posts_without_the_csrf_token_are_refused(world, session, path):
    before = session.scalars(select(Link)).all(), session.scalars(select(OfferAccess)).all()
    r = world.me.post(path.replace("/1/", f"/{world.gated.id}/"), data={"offer_id": str(world.public.id)}, headers=HTMX)
    assert r.status_code == 400 and "Form expired" in text(r)
    assert (session.scalars(select(Link)).all(), session.scalars(select(OfferAccess)).all()) == before


def test_other_roles_cannot_open_the_partner_pages(app, world, session):
    make_user(session, email="brand@example.com", role=Role.BRAND, brand_id=world.public.brand_id)
    session.commit()
    brand = app.test_client()
    sign_in(brand, "brand@example.com")
    for path in ("/partner/offers", "/partner/links", "/partner/postbacks"):
        assert brand.get(path).status_code == 403
        assert app.test_client().get(path).status_code == 302


def test_an_offer_hidden_from_the_partner_is_404_through_the_pages_as_an_unknown_one(world, session):
    # RELIABILITY 31: a private offer the partner was not invited to is, through any page, what the API
    # says it is: not found, exactly like an id that does not exist.
    hidden = make_offer(session, brand=make_brand(session), name="Invite Only", visibility="private")
    session.commit()
    token = csrf_token(text(world.me.get("/partner/offers")))
    answers = {
        offer_id: world.me.post(f"/partner/offers/{offer_id}/apply", data={"csrf_token": token})
        for offer_id in (hidden.id, 10**6)
    }
    assert [r.status_code for r in answers.values()] == [404, 404]
    main = [re.search(r"<main.*?</main>", text(r), re.S).group(0) for r in answers.values()]  # type: ignore[union-attr]
    assert main[0].replace(str(hidden.id), "ID") == main[1].replace(str(10**6), "ID")
    assert session.scalars(select(OfferAccess).where(OfferAccess.offer_id == hidden.id)).all() == []
    page = text(world.me.get("/partner/links"))
    assert "Invite Only" not in page
    built = world.me.post("/partner/links", data={"offer_id": str(hidden.id), "csrf_token": token})
    assert built.status_code in (400, 404, 422) and "Invite Only" not in text(built)
    assert session.scalars(select(Link).where(Link.offer_id == hidden.id)).all() == []
