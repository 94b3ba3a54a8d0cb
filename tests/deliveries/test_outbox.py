"""The outbox: one delivery per (conversion, status change, URL), written in the change's transaction."""

from __future__ import annotations

from sqlalchemy import func, select

from network.conversions.models import Conversion
from network.db import Database
from network.deliveries import service
from network.deliveries.models import OfferPostback, PostbackDelivery
from network.deliveries.targets import disable_url
from network.partners.models import Partner
from tests.deliveries.conftest import change_status, deliveries, make_conversion, make_scene

URL = "https://partner.example/cb?cid={click_id}&s={status}"


def test_every_conversion_and_status_change_is_queued_once(session):
    scene = make_scene(session, postback_url=URL)
    conversion = make_conversion(session, scene, status="pending")
    change_status(session, conversion, "approved")
    change_status(session, conversion, "reversed")
    rows = deliveries(session)
    assert [(r.old_status, r.new_status, r.target, r.status) for r in rows] == [
        (None, "pending", "global", "pending"),
        ("pending", "approved", "global", "pending"),
        ("approved", "reversed", "global", "pending"),
    ]
    assert [r.macros["status"] for r in rows] == ["pending", "approved", "reversed"]
    assert len({r.webhook_id for r in rows}) == 3


def test_a_repeated_signal_for_the_same_change_queues_nothing_more(session):
    from network.conversions.signals import status_changed

    scene = make_scene(session, postback_url=URL)
    conversion = make_conversion(session, scene)
    for _ in range(3):
        status_changed.send(
            session=session,
            conversion=conversion,
            old_status=None,
            new_status="approved",
            at=conversion.created_at,
            reason=None,
        )
    assert len(deliveries(session)) == 1


def test_global_and_per_offer_urls_each_get_a_delivery(session):
    scene = make_scene(session, postback_url=URL)
    per_offer = OfferPostback(partner_id=scene.partner_id, offer_id=scene.offer_id, url="https://t.example/{offer_id}")
    session.add(per_offer)
    session.flush()
    make_conversion(session, scene)
    assert sorted(r.target for r in deliveries(session)) == ["global", f"offer:{per_offer.id}"]


def test_a_partner_without_urls_gets_nothing_queued(session):
    scene = make_scene(session)
    make_conversion(session, scene)
    assert deliveries(session) == []


def test_a_disabled_url_is_not_queued_until_the_partner_changes_it(session):
    scene = make_scene(session, postback_url=URL)
    disable_url(session, partner_id=scene.partner_id, target="global", template=URL, reason="410", delivery_id=None)
    make_conversion(session, scene)
    assert deliveries(session) == []
    session.get(Partner, scene.partner_id).postback_url = URL + "&v=2"
    make_conversion(session, scene)
    assert len(deliveries(session)) == 1


def test_macro_values_are_the_conversion_as_of_the_change(session):
    scene = make_scene(session, postback_url=URL, share_txn_id=False, link_subs={"sub1": "link1", "sub2": "link2"})
    conversion = make_conversion(
        session, scene, txn_id="A-1", payout_minor=1250, click_subs={"sub1": "click1", "sub3": "click3"}
    )
    (row,) = deliveries(session)
    assert row.macros == {
        "click_id": conversion.click_id,
        "conversion_id": str(conversion.id),
        "offer_id": str(scene.offer_id),
        "event": "sale",
        "payout": "12.50",
        "currency": "USD",
        "status": "approved",
        # The click's own sub ids win; the link's fill the rest.
        "sub1": "click1",
        "sub2": "link2",
        "sub3": "click3",
        "sub4": "",
        "sub5": "",
    }
    assert "txn_id" not in row.macros  # the brand does not share it
    assert row.subs_from_click


def test_txn_id_is_sent_only_when_the_brand_shares_it(session):
    scene = make_scene(session, postback_url=URL, share_txn_id=True)
    make_conversion(session, scene, txn_id="ORDER-9")
    assert deliveries(session)[0].macros["txn_id"] == "ORDER-9"


def test_subs_come_from_the_link_until_the_click_row_is_written(session):
    scene = make_scene(session, postback_url=URL, link_subs={"sub1": "from-link"})
    make_conversion(session, scene, click_row=False)
    (row,) = deliveries(session)
    assert row.macros["sub1"] == "from-link" and not row.subs_from_click


def test_outbox_rows_commit_and_roll_back_with_the_conversion(committed_db: Database):
    with committed_db.session_scope() as session:
        scene = make_scene(session, postback_url=URL)
    session = committed_db.session()
    try:
        make_conversion(session, scene)
        session.rollback()
    finally:
        session.close()
    with committed_db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Conversion)) == 0
        assert session.scalar(select(func.count()).select_from(PostbackDelivery)) == 0
        make_conversion(session, scene)
    with committed_db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(PostbackDelivery)) == 1


def test_click_subs_reads_buffered_clicks_and_rows(session):
    scene = make_scene(session, link_subs={"sub2": "L"})
    conversion = make_conversion(session, scene, click_subs={"sub1": "C"})
    subs, from_click = service.click_subs(session, conversion.click_id, None)
    assert (subs["sub1"], subs["sub2"], from_click) == ("C", "L", True)
