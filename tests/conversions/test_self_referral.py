"""Self-referral: the partner's sign-in and API addresses, kept for the fraud window, flag its own clicks."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from network.auth import Role
from network.conversions import rules
from network.partners import addresses
from network.partners.models import PartnerAddress
from tests.conversions.conftest import CPL, NOW, conversions, make_click, make_shop, postback
from tests.portal.conftest import PASSWORD, make_user, post_form

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
HOME = "81.2.69.160"


@pytest.fixture(autouse=True)
def _now(frozen_clock):
    frozen_clock(NOW)


def kept(session) -> list[tuple[int, str, dt.datetime]]:
    session.expire_all()
    return [(r.partner_id, r.address, r.last_seen) for r in session.scalars(select(PartnerAddress))]


def test_self_referral_evidence_shows_the_network_not_the_address():
    seen = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    assert rules.self_referral_evidence("203.0.113.7", seen) == {
        "address_network": "203.0.113.0/24",
        "partner_last_seen": "2026-03-01T00:00:00+00:00",
    }
    assert rules.self_referral_evidence("2001:db8:1:2::9", seen)["address_network"] == "2001:db8:1::/48"
    assert rules.self_referral_evidence(None, None) is None


def test_a_partners_api_address_flags_a_conversion_on_a_click_from_it(client, session):
    shop = make_shop(session, client, events=[CPL])
    r = shop.partner_api.get("/api/v1/offers", environ_base={"REMOTE_ADDR": HOME})
    assert r.status_code == 200
    assert kept(session) == [(shop.partner.id, HOME, NOW)]
    own = make_click(session, shop.link, at=NOW - HOUR, ip=HOME, visitor="v1")
    other = make_click(session, shop.link, at=NOW - HOUR, ip="81.2.69.161", visitor="v2")
    assert postback(client, click_id=own, token=shop.token).json["status"] == "pending"
    assert postback(client, click_id=other, token=shop.token).json["status"] == "approved"
    held, fine = conversions(session)
    assert (held.flags, held.hold_until) == (["self_referral"], None)
    evidence = shop.brand_api.get(f"/api/v1/conversions/{held.id}").json["evidence"]
    assert evidence == {"self_referral": {"address_network": "81.2.69.0/24",
                                          "partner_last_seen": NOW.isoformat()}}  # fmt: skip
    assert fine.flags == []


def test_another_partners_address_is_no_self_referral(client, session):
    shop = make_shop(session, client, events=[CPL])
    brand_user = shop.brand_api.get("/api/v1/offers", environ_base={"REMOTE_ADDR": HOME})
    assert brand_user.status_code == 200 and kept(session) == []  # a brand's address is not kept
    other = make_shop(session, client, name="Other Shop", events=[CPL])
    other.partner_api.get("/api/v1/offers", environ_base={"REMOTE_ADDR": HOME})
    click = make_click(session, shop.link, at=NOW - HOUR, ip=HOME)
    assert postback(client, click_id=click, token=shop.token).json["status"] == "approved"


def test_an_offer_that_does_not_hold_self_referrals_approves_them_flagged(client, session):
    shop = make_shop(session, client, events=[CPL], hold_flags=["bot"])
    shop.partner_api.get("/api/v1/offers", environ_base={"REMOTE_ADDR": HOME})
    click = make_click(session, shop.link, at=NOW - HOUR, ip=HOME)
    assert postback(client, click_id=click, token=shop.token).json["status"] == "approved"
    assert conversions(session)[0].flags == ["self_referral"]


def test_a_partner_users_sign_in_address_is_kept(client, session):
    shop = make_shop(session, client, events=[CPL])
    make_user(session, email="p@example.com", role=Role.PARTNER, partner_id=shop.partner.id)
    r = post_form(client, "/account/sign-in", {"email": "p@example.com", "password": PASSWORD},
                  environ_base={"REMOTE_ADDR": HOME})  # fmt: skip
    assert r.status_code == 302
    assert kept(session) == [(shop.partner.id, HOME, NOW)]


def test_an_address_is_written_once_a_while_and_purged_after_the_window(session):
    from tests.factories import make_partner

    partner = make_partner(session)
    book = addresses.AddressBook(every=600)
    book.seen(session, partner.id, HOME, NOW)
    book.seen(session, partner.id, HOME, NOW + HOUR)  # within `every`: not written again
    book.seen(session, partner.id, "not an address", NOW)
    book.seen(session, partner.id, "127.0.0.1", NOW)  # loopback, private: no one's own
    book.seen(session, partner.id, "10.1.2.3", NOW)
    assert kept(session) == [(partner.id, HOME, NOW)]
    assert addresses.touch(session, partner.id, HOME, NOW + DAY)  # a later write moves last_seen
    assert kept(session) == [(partner.id, HOME, NOW + DAY)]
    assert addresses.purge(session, now=NOW + 31 * DAY, retention_days=30) == 0
    assert addresses.purge(session, now=NOW + 31 * DAY + dt.timedelta(seconds=1), retention_days=30) == 1
    assert kept(session) == []
