"""The brand's conversions: the filtered list with flags explained, one conversion with its history, and status
changes of one or many with a reason through the conversions service (the ledger follows, as from the API)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from network.conversions.models import ConversionHistory
from tests.portal.brand.conftest import page, rows, text, token_of


def ids(client: Any, **query: Any) -> list[int]:
    return [
        int(r[1][1:]) for r in rows(page(client, "/brand/conversions", **query)) if len(r) > 1 and r[1].startswith("#")
    ]


def post(client: Any, path: str, data: dict[str, Any]) -> Any:
    return client.post(path, data={**data, "csrf_token": token_of(client, "/brand/conversions")})


def test_the_list_and_its_filters(world):
    mine = sorted([world.approved.id, world.pending.id])
    assert ids(world.me) == mine
    assert ids(world.me, status="pending") == [world.pending.id]
    assert ids(world.me, start="2026-03-09") == [world.approved.id]
    assert ids(world.me, end="2026-03-08") == [world.pending.id]
    assert ids(world.me, offer_id=str(world.offer.id)) == mine
    assert ids(world.me, partner_id=str(world.partner.id)) == mine
    assert ids(world.me, partner_id=str(world.other_partner.id)) == []
    assert world.foreign_conversion.id not in ids(world.me)
    r = world.me.get("/brand/conversions", query_string={"start": "2026-03-09", "end": "2026-03-01"})
    assert r.status_code == 400 and 'id="end-error"' in text(r)


def test_the_list_shows_spend_never_payout_and_explains_flags(world):
    html = page(world.me, "/brand/conversions")
    row = next(r for r in rows(html) if r[1] == f"#{world.pending.id}")
    # Tick, conversion, created, offer, event, partner, status, reason, flags, sale, spend.
    assert row[3:11] == ["Spring sale", "sale", f"#{world.partner.id}", "pending (review)", "", "bot", "", "8.00 USD"]
    assert "The click came from a browser that looked like a bot" in html
    assert "5.00" not in html  # the partner's payout


def test_reverse_many_with_a_reason(world, session):
    pending_too = world.pending
    r = post(world.me, "/brand/conversions/status", {"ids": [str(world.approved.id), str(pending_too.id)],
                                                    "new_status": "reversed", "reason": "refunded"})  # fmt: skip
    assert r.status_code == 302
    session.refresh(world.approved)
    session.refresh(pending_too)
    assert (world.approved.status, world.approved.reason) == ("reversed", "refunded")
    assert pending_too.status == "pending"  # a pending conversion cannot be reversed: named, left alone
    html = page(world.me, "/brand/conversions")
    assert "1 conversion reversed." in html
    assert f"Not changed: #{pending_too.id}: a pending conversion cannot become reversed" in html
    (line,) = session.scalars(select(ConversionHistory).where(ConversionHistory.conversion_id == world.approved.id,
                                                              ConversionHistory.new_status == "reversed")).all()  # fmt: skip
    assert line.reason == "refunded" and line.actor


def test_approve_one_and_reject_without_a_reason_is_refused(world, session):
    r = post(
        world.me, "/brand/conversions/status", {"ids": str(world.pending.id), "new_status": "rejected", "reason": ""}
    )
    assert r.status_code == 422 and "say why you reject or reverse" in text(r)
    r = post(world.me, "/brand/conversions/status", {"new_status": "approved"})
    assert r.status_code == 422 and "tick between 1 and 100 conversions" in text(r)
    assert (
        post(
            world.me, "/brand/conversions/status", {"ids": str(world.pending.id), "new_status": "approved"}
        ).status_code
        == 302
    )
    session.refresh(world.pending)
    assert world.pending.status == "approved"


def test_a_bulk_change_naming_another_brands_conversion_is_404_and_changes_nothing(world, session):
    r = post(world.me, "/brand/conversions/status", {"ids": [str(world.approved.id), str(world.foreign_conversion.id)],
                                                    "new_status": "reversed", "reason": "x"})  # fmt: skip
    assert r.status_code == 404
    session.refresh(world.approved)
    session.refresh(world.foreign_conversion)
    assert (world.approved.status, world.foreign_conversion.status) == ("approved", "approved")


def test_one_conversion_with_its_history_and_a_status_change(world, session):
    html = page(world.me, f"/brand/conversions/{world.pending.id}")
    assert "<code>bot</code>: The click came from a browser" in html and "No change yet." in html
    r = world.me.post(f"/brand/conversions/{world.pending.id}", data={"new_status": "rejected", "reason": "fake lead",
                                                                      "csrf_token": token_of(world.me)})  # fmt: skip
    assert r.status_code == 302
    html = page(world.me, f"/brand/conversions/{world.pending.id}")
    assert f"#{world.pending.id}: rejected." in html and "fake lead" in html
    assert any(r[1:4] == ["pending", "rejected", "fake lead"] for r in rows(html))


def test_a_conversion_shows_each_flag_with_its_evidence(world, session):
    world.pending.flags = ["bot", "self_referral"]
    world.pending.evidence = {"bot": {"click_is_bot": True},
                              "self_referral": {"address_network": "81.2.69.0/24",
                                                "partner_last_seen": "2026-03-09T10:00:00+00:00"}}  # fmt: skip
    session.flush()
    html = page(world.me, f"/brand/conversions/{world.pending.id}")
    assert "<code>self_referral</code>: The click came from an address the partner itself" in html
    assert "Evidence: address_network 81.2.69.0/24, partner_last_seen 2026-03-09T10:00:00+00:00" in html
    assert "Evidence: click_is_bot True" in html
