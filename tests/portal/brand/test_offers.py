"""The brand's offers: the list, a form that creates and edits every field of SPEC §3 through the API's schema
and service (their messages beside the fields), rows added without JavaScript, and confirmed status changes."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from network.offers.models import Offer
from tests.portal.brand.conftest import page, rows, text, token_of

#: A form filled as a person fills it: every field of an offer.
FULL = {
    "name": "Winter sale",
    "destination_url": "https://shop.example/winter?cid={click_id}&s={sub1}",
    "currency": "usd",
    "visibility": "approval",
    "allowed_domains": "shop.example\nblog.shop.example",
    "fallback_url": "https://shop.example/",
    "conversion_window_days": "14",
    "hold_days": "3",
    "min_seconds": "10",
    "countries": "us, ca",
    "devices": ["mobile", "tablet"],
    "click_payout": "0.05",
    "click_revenue": "0.10",
    "impression_payout": "1.00",
    "impression_revenue": "2.00",
    "events-0-key": "sale",
    "events-0-model": "revshare",
    "events-0-payout_percent": "10",
    "events-0-revenue_percent": "15",
    "events-1-key": "lead",
    "events-1-model": "cpl",
    "events-1-payout": "2.00",
    "events-1-revenue": "3.00",
    "caps-0-metric": "conversions",
    "caps-0-period": "day",
    "caps-0-limit": "1000",
    "caps-0-scope": "offer",
    "caps-1-metric": "payout",
    "caps-1-period": "month",
    "caps-1-limit": "500.00",
    "caps-1-scope": "partner",
}


def post(client: Any, path: str, data: dict[str, Any], **kw: Any) -> Any:
    return client.post(path, data={**data, "csrf_token": token_of(client)}, **kw)


def error_beside(html: str, field_id: str) -> str:
    found = re.search(rf'<small id="{re.escape(field_id)}-error">(.*?)</small>', html, re.S)
    assert found, f"no error beside {field_id}"
    return found.group(1)


def test_the_list_shows_the_brands_offers_with_their_actions(world):
    html = page(world.me, "/brand/offers")
    table = rows(html)
    spring = next(r for r in table if r[0].startswith("Spring sale"))
    assert spring[1:3] == ["active", "public"] and spring[4] == "Pause · Archive"
    assert "Foreign sale" not in html
    assert [r[0] for r in rows(page(world.me, "/brand/offers", status="draft"))] == ["No offer is draft yet."]


def test_the_form_says_what_each_field_means(world):
    html = page(world.me, "/brand/offers/new")
    for words in ("Where clicks go. Macros", "a partner's deep link", "rejected out_of_window", "stay pending",
                  "rejected too_fast", "plain 404 page", "unique, non-bot click", "The first event is the default",
                  "cap_reached", "empty means everywhere"):  # fmt: skip
        assert words in html.replace("&#39;", "'"), words
    assert 'value="USD"' in html  # the brand's currency by default


def test_create_an_offer_with_every_field(world, session):
    r = post(world.me, "/brand/offers/new", FULL)
    assert r.status_code == 302, text(r)
    offer = session.scalars(select(Offer).where(Offer.name == "Winter sale")).one()
    assert r.headers["Location"].endswith(f"/brand/offers/{offer.id}")
    assert (offer.brand_id, offer.status, offer.visibility, offer.currency) == (
        world.brand.id,
        "draft",
        "approval",
        "USD",
    )
    assert offer.allowed_domains == ["blog.shop.example", "shop.example"] and offer.countries == ["CA", "US"]
    assert offer.devices == ["mobile", "tablet"]
    assert (offer.conversion_window_days, offer.hold_days, offer.min_seconds) == (14, 3, 10)
    assert (offer.click_payout_minor, offer.click_revenue_minor) == (5, 10)
    assert (offer.impression_payout_minor, offer.impression_revenue_minor) == (100, 200)
    assert [(e.key, e.model, e.payout_minor, e.revenue_minor, e.payout_percent) for e in offer.events] == [
        ("sale", "revshare", 0, 0, 100000),
        ("lead", "cpl", 200, 300, 0),
    ]
    assert [(c.metric, c.period, c.limit, c.scope) for c in offer.caps] == [
        ("conversions", "day", 1000, "offer"),
        ("payout", "month", 50000, "partner"),
    ]
    # The edit page shows every field back as saved.
    html = page(world.me, f"/brand/offers/{offer.id}")
    assert "Winter sale: created as a draft." in html
    for shown in ('value="Winter sale"', "blog.shop.example\nshop.example", 'value="CA, US"', 'value="14"',
                  'value="0.05"', 'value="500.00"', 'value="15"'):  # fmt: skip
        assert shown in html, shown


def test_the_apis_messages_are_shown_beside_their_fields(world, session):
    bad = {**FULL, "name": "", "destination_url": "javascript:alert(1)", "conversion_window_days": "abc",
           "events-1-payout": "2.001", "caps-0-limit": "lots"}  # fmt: skip
    r = post(world.me, "/brand/offers/new", bad)
    assert r.status_code == 422
    html = text(r)
    # The schema's refusals first (all of them at once), each beside its field.
    assert "Length must be between 1 and 200" in error_beside(html, "name")
    assert "Not a valid integer" in error_beside(html, "conversion_window_days")
    assert session.scalars(select(Offer).where(Offer.name == "Winter sale")).all() == []
    # Then the service's, named by the API's path of the field.
    r = post(world.me, "/brand/offers/new", {**FULL, "destination_url": "javascript:alert(1)"})
    assert r.status_code == 422 and "destination_url" in error_beside(text(r), "destination_url")
    r = post(world.me, "/brand/offers/new", {**FULL, "events-1-payout": "2.001"})
    assert "more than 2 decimal places" in error_beside(text(r), "events-1-payout")
    r = post(world.me, "/brand/offers/new", {**FULL, "caps-0-limit": "lots"})
    assert "whole number" in error_beside(text(r), "caps-0-limit")
    r = post(world.me, "/brand/offers/new", {**FULL, "events-1-payout": "4.00"})
    assert "only an admin may allow a loss leader" in error_beside(text(r), "events-1-key")
    r = post(world.me, "/brand/offers/new", {**FULL, "click_payout": "1.00"})
    assert "click_payout is greater than click_revenue" in error_beside(text(r), "click_payout")
    # What the person typed is kept.
    assert 'value="Winter sale"' in text(r)
    assert session.scalars(select(Offer).where(Offer.name == "Winter sale")).all() == []


def test_add_an_event_and_a_cap_without_javascript(world):
    r = post(world.me, "/brand/offers/new", {**FULL, "add_event": "Add an event"})
    assert r.status_code == 200
    html = text(r)
    assert 'id="events-2-key"' in html and 'value="lead"' in html
    r = post(world.me, "/brand/offers/new", {**FULL, "add_cap": "Add a cap"})
    assert 'id="caps-2-metric"' in text(r)


def test_edit_an_offer(world, session):
    html = page(world.me, f"/brand/offers/{world.offer.id}")
    assert 'value="Spring sale"' in html and 'value="8.00"' in html and "cannot change once the offer exists" in html
    form = {
        "name": "Spring sale XL", "destination_url": world.offer.destination_url, "visibility": "public",
        "allowed_domains": "shop.example", "conversion_window_days": "60", "hold_days": "0", "min_seconds": "0",
        "events-0-key": "sale", "events-0-model": "cpa", "events-0-payout": "6.00", "events-0-revenue": "9.00",
        "events-1-key": "signup", "events-1-model": "cpl", "events-1-payout": "1.00", "events-1-revenue": "1.50",
    }  # fmt: skip
    r = post(world.me, f"/brand/offers/{world.offer.id}", form)
    assert r.status_code == 302, text(r)
    session.refresh(world.offer)
    assert world.offer.name == "Spring sale XL" and world.offer.conversion_window_days == 60
    assert [(e.key, e.payout_minor, e.revenue_minor) for e in world.offer.events] == [
        ("sale", 600, 900),
        ("signup", 100, 150),
    ]
    # An event cannot be removed: the API's message, and nothing changed.
    r = post(world.me, f"/brand/offers/{world.offer.id}", {**form, "events-1-key": "", "events-1-payout": "",
                                                           "events-1-revenue": ""})  # fmt: skip
    assert r.status_code == 422 and "events cannot be removed once created" in text(r)


def test_status_changes_ask_for_confirmation(world, session):
    r = world.me.get(f"/brand/offers/{world.offer.id}/pause")
    assert r.status_code == 200 and "Pause Spring sale?" in text(r) and "offer_inactive" in text(r)
    session.refresh(world.offer)
    assert world.offer.status == "active"
    r = post(world.me, f"/brand/offers/{world.offer.id}/pause", {})
    assert r.status_code == 302
    session.refresh(world.offer)
    assert world.offer.status == "paused"
    # A move the status does not allow is the API's 409.
    r = post(world.me, f"/brand/offers/{world.offer.id}/pause", {})
    assert r.status_code == 409 and "cannot pause an offer that is paused" in text(r)
    assert post(world.me, f"/brand/offers/{world.offer.id}/archive", {}).status_code == 302
    html = page(world.me, f"/brand/offers/{world.offer.id}")
    assert "An archived offer cannot be changed." in html and '<form method="post" action="/brand/offers' not in html


def test_a_status_change_without_its_csrf_token_is_refused(world, session):
    r = world.me.post(f"/brand/offers/{world.offer.id}/archive")
    assert r.status_code == 400
    session.refresh(world.offer)
    assert world.offer.status == "active"


def test_the_form_sets_attribution_and_which_flags_hold_for_review(world, session):
    html = page(world.me, "/brand/offers/new")
    # A new offer's form ticks the default hold flags: every flag but the repeat visitor's.
    for flag in ("too_fast", "bot", "pixel", "self_referral", "anomaly"):
        assert re.search(rf'<input checked[^>]*value="{flag}"|<input[^>]*value="{flag}"[^>]*checked', html), flag
    assert not re.search(r'<input[^>]*checked[^>]*value="repeat_visitor"', html)
    data = {**FULL, "name": "Held sale", "attribution": "first_click", "hold_flags": ["bot", "repeat_visitor"]}
    r = post(world.me, "/brand/offers/new", data)
    assert r.status_code == 302, text(r)
    offer = session.scalars(select(Offer).where(Offer.name == "Held sale")).one()
    assert (offer.attribution, offer.hold_flags) == ("first_click", ["bot", "repeat_visitor"])
    html = page(world.me, f"/brand/offers/{offer.id}")
    assert re.search(r'<option selected value="first_click"|<option[^>]*value="first_click"[^>]*selected', html)
    # An unknown flag is the API's refusal, beside the field.
    r = post(world.me, f"/brand/offers/{offer.id}", {**data, "hold_flags": ["bot", "nope"]})
    assert r.status_code == 400
