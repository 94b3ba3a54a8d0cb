"""Per-partner overrides replace an event's payout figures for one partner (SPEC §3)."""

from __future__ import annotations

import pytest

from tests.factories import Api, cpa_event, make_brand, make_key, make_offer, make_partner

HYBRID = {
    "key": "premium",
    "model": "hybrid",
    "payout": "1.00",
    "revenue": "2.00",
    "payout_percent": "5",
    "revenue_percent": "10",
}
REVSHARE = {"key": "share", "model": "revshare", "payout_percent": "10", "revenue_percent": "15"}


@pytest.fixture
def ctx(client, session):
    brand = make_brand(session)
    partner = make_partner(session)
    other = make_partner(session, name="Other")
    offer = make_offer(session, brand=brand, events=[cpa_event(payout="5.00", revenue="8.00"), REVSHARE, HYBRID])
    session.flush()
    return {
        "offer": offer.id,
        "partner": partner.id,
        "as_brand": Api(client, make_key(session, role="brand", brand=brand)),
        "as_partner": Api(client, make_key(session, role="partner", partner=partner)),
        "as_other": Api(client, make_key(session, role="partner", partner=other)),
        "admin": Api(client, make_key(session, role="admin")),
    }


def _events(api: Api, offer_id: int) -> dict[str, dict]:
    return {e["key"]: e for e in api.get(f"/api/v1/offers/{offer_id}").json["events"]}


def test_an_override_changes_one_partners_payout_only(ctx):
    offer, brand = ctx["offer"], ctx["as_brand"]
    r = brand.put(
        f"/api/v1/offers/{offer}/overrides", json={"partner_id": ctx["partner"], "event": "sale", "payout": "6.50"}
    )
    assert r.status_code == 200, r.json
    assert r.json == {
        "id": r.json["id"],
        "offer_id": offer,
        "partner_id": ctx["partner"],
        "event": "sale",
        "payout": "6.50",
    }
    assert _events(ctx["as_partner"], offer)["sale"]["payout"] == "6.50"
    assert _events(ctx["as_other"], offer)["sale"]["payout"] == "5.00"
    # Setting it again replaces it.
    again = brand.put(
        f"/api/v1/offers/{offer}/overrides", json={"partner_id": ctx["partner"], "event": "sale", "payout": "7.00"}
    )
    assert again.json["id"] == r.json["id"] and _events(ctx["as_partner"], offer)["sale"]["payout"] == "7.00"
    listed = brand.get(f"/api/v1/offers/{offer}/overrides").json["items"]
    assert [(o["event"], o["payout"]) for o in listed] == [("sale", "7.00")]
    assert brand.delete(f"/api/v1/offers/{offer}/overrides/{r.json['id']}").status_code == 204
    assert _events(ctx["as_partner"], offer)["sale"]["payout"] == "5.00"
    assert brand.get(f"/api/v1/offers/{offer}/overrides").json["items"] == []


def test_percent_and_hybrid_overrides_carry_exactly_their_models_figures(ctx):
    offer, admin, partner = ctx["offer"], ctx["admin"], ctx["partner"]
    r = admin.put(
        f"/api/v1/offers/{offer}/overrides", json={"partner_id": partner, "event": "share", "payout_percent": "12.5"}
    )
    assert r.status_code == 200 and r.json["payout_percent"] == "12.5" and "payout" not in r.json
    r = admin.put(
        f"/api/v1/offers/{offer}/overrides",
        json={"partner_id": partner, "event": "premium", "payout": "1.50", "payout_percent": "7"},
    )
    assert r.status_code == 200 and (r.json["payout"], r.json["payout_percent"]) == ("1.50", "7")
    events = _events(ctx["as_partner"], offer)
    assert events["share"]["payout_percent"] == "12.5"
    assert (events["premium"]["payout"], events["premium"]["payout_percent"]) == ("1.50", "7")
    assert "revenue_percent" not in events["premium"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"event": "sale"}, "payout"),
        ({"event": "sale", "payout": "1.00", "payout_percent": "5"}, "payout_percent"),
        ({"event": "share", "payout": "1.00"}, "payout"),
        ({"event": "share", "payout_percent": "5", "payout": "1.00"}, "payout"),
        ({"event": "premium", "payout": "1.00"}, "payout_percent"),
        ({"event": "premium", "payout_percent": "5"}, "payout"),
        ({"event": "sale", "payout": "1.005"}, "payout"),
        ({"event": "nope", "payout": "1.00"}, "event"),
        ({"event": "sale", "payout": "9.00"}, "payout"),
        ({"event": "share", "payout_percent": "16"}, "payout_percent"),
        ({"event": "premium", "payout": "1.00", "payout_percent": "11"}, "payout_percent"),
    ],
)
def test_a_bad_override_is_refused_naming_the_field(ctx, data, field):
    r = ctx["as_brand"].put(f"/api/v1/offers/{ctx['offer']}/overrides", json={"partner_id": ctx["partner"], **data})
    assert r.status_code == 400 and field in r.json["errors"], r.json
    assert ctx["as_brand"].get(f"/api/v1/offers/{ctx['offer']}/overrides").json["items"] == []


def test_an_override_above_revenue_says_why_and_needs_an_admins_loss_leader(ctx):
    offer = ctx["offer"]
    r = ctx["as_brand"].put(
        f"/api/v1/offers/{offer}/overrides", json={"partner_id": ctx["partner"], "event": "sale", "payout": "9.00"}
    )
    assert r.json["code"] == "loss_leader" and "only an admin may allow a loss leader" in r.json["message"]
    assert ctx["admin"].patch(f"/api/v1/offers/{offer}", json={"allow_loss": True}).status_code == 200
    r = ctx["as_brand"].put(
        f"/api/v1/offers/{offer}/overrides", json={"partner_id": ctx["partner"], "event": "sale", "payout": "9.00"}
    )
    assert r.status_code == 200


def test_lowering_revenue_below_an_override_is_refused(ctx):
    offer = ctx["offer"]
    ctx["as_brand"].put(
        f"/api/v1/offers/{offer}/overrides", json={"partner_id": ctx["partner"], "event": "sale", "payout": "7.00"}
    )
    r = ctx["as_brand"].patch(
        f"/api/v1/offers/{offer}", json={"events": [cpa_event(payout="5.00", revenue="6.00"), REVSHARE, HYBRID]}
    )
    assert r.status_code == 400 and r.json["code"] == "loss_leader" and "override" in r.json["message"]


def test_an_override_for_an_unknown_partner_is_refused(ctx):
    r = ctx["as_brand"].put(
        f"/api/v1/offers/{ctx['offer']}/overrides", json={"partner_id": 999_999, "event": "sale", "payout": "1.00"}
    )
    assert r.status_code == 400 and "partner_id" in r.json["errors"]


def test_deleting_an_unknown_override_is_404(ctx):
    assert ctx["as_brand"].delete(f"/api/v1/offers/{ctx['offer']}/overrides/999999").status_code == 404
