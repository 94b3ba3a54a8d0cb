"""Reads from a replica: reports and the harmless lists may be a little behind; money never is.

Each test holds up the standby's replay (pg_wal_replay_pause) so the lag is certain, writes on the
primary, and asks both kinds of endpoint: a report misses the new row, a balance, a payout or the
payout job sees it. Once the standby replays again the report catches up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import InternalError

from network.db import Database
from network.partners.models import Partner
from network.payouts import jobs
from tests.factories import Api, make_key, make_partner
from tests.payouts.support import Shop, make_commission, make_link, make_shop
from tests.replica.standby import Standby

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

#: The commissions' day, and a report period around it.
AT = dt.datetime(2026, 3, 9, 12, 0, tzinfo=dt.UTC)
PERIOD = {"from": "2026-03-09T00:00:00Z", "to": "2026-03-10T00:00:00Z"}


@dataclass
class World:
    shop: Shop
    partner_id: int
    partner: Api
    finance: Api


@pytest.fixture
def world(replica_db: Database, replica_client: Any, standby: Standby) -> World:
    """A shop, a partner with a link, their keys: committed, and replayed on the standby."""
    with replica_db.session_scope() as session:
        shop = make_shop(session)
        partner = make_partner(session)
        make_link(session, offer=shop.offer, partner=partner)
        keys = make_key(session, role="partner", partner=partner), make_key(session, role="finance")
        partner_id = partner.id
    standby.catch_up()
    return World(shop, partner_id, Api(replica_client, keys[0]), Api(replica_client, keys[1]))


def _commission(database: Database, world: World, payout: str) -> None:
    """Commit an approved commission for the world's partner on the primary."""
    with database.session_scope() as session:
        partner = session.get(Partner, world.partner_id)
        assert partner is not None
        make_commission(session, offer=world.shop.offer, partner=partner, payout=payout, at=AT)


def _report(api: Api) -> tuple[int, str]:
    response = api.get("/api/v1/reports", query_string=PERIOD)
    assert response.status_code == 200, response.get_json()
    totals = response.get_json()["totals"]
    return (totals[0]["conversions"], totals[0]["payout"]) if totals else (0, "0.00")


def _ok(response: Any) -> Any:
    assert response.status_code < 300, response.get_json()
    return response.get_json()


def test_the_app_reads_reports_from_the_replica_it_is_configured_with(replica_db: Database, standby: Standby) -> None:
    assert replica_db.has_replica
    with replica_db.replica_reading() as session:
        assert session.execute(text("SELECT pg_is_in_recovery()")).scalar_one() is True
    with replica_db.reading() as session:
        assert session.execute(text("SELECT pg_is_in_recovery()")).scalar_one() is False


def test_a_report_may_be_a_little_behind_while_the_balance_never_is(
    replica_db: Database, standby: Standby, world: World
) -> None:
    _commission(replica_db, world, "5.00")
    standby.catch_up()
    assert _report(world.partner) == (1, "5.00")

    standby.pause()
    _commission(replica_db, world, "7.00")  # committed on the primary; the standby has not replayed it

    assert _report(world.partner) == (1, "5.00")  # the report: as of the pause
    listed = _ok(world.partner.get("/api/v1/conversions"))["items"]
    assert len(listed) == 1  # a list that may be behind
    (balance,) = _ok(world.partner.get(f"/api/v1/partners/{world.partner_id}/balance"))["items"]
    assert balance["balance"] == "12.00"  # money: the primary, with the new commission

    standby.resume()
    standby.catch_up()
    assert _report(world.partner) == (2, "12.00")
    assert len(_ok(world.partner.get("/api/v1/conversions"))["items"]) == 2


def test_the_payout_job_and_the_payouts_list_read_the_primary_while_the_replica_lags(
    replica_app: Flask, replica_db: Database, standby: Standby, world: World
) -> None:
    standby.pause()
    _commission(replica_db, world, "60.00")  # over the 50.00 threshold: only the primary knows

    summary = jobs.build(replica_db, replica_app.extensions["network.settings"])

    (payout_id,) = summary.built
    payouts = _ok(world.finance.get("/api/v1/payouts"))["items"]
    assert [(p["id"], p["partner_id"], p["amount"]) for p in payouts] == [(payout_id, world.partner_id, "60.00")]
    assert _ok(world.finance.get(f"/api/v1/payouts/{payout_id}"))["status"] == "pending_approval"
    assert _report(world.partner) == (0, "0.00")  # the report has not seen the commission yet


def test_a_write_never_goes_to_the_replica(replica_db: Database, standby: Standby, world: World) -> None:
    with replica_db.replica_reading() as session, pytest.raises(InternalError, match="read-only transaction"):
        session.execute(text("UPDATE partners SET name = 'changed' WHERE id = :id"), {"id": world.partner_id})


def test_write_endpoints_and_item_reads_use_the_primary_while_the_replica_lags(
    replica_db: Database, standby: Standby, world: World
) -> None:
    standby.pause()
    link = _ok(world.partner.post("/api/v1/links", json={"offer_id": world.shop.offer.id, "sub1": "lagging"}))

    assert _ok(world.partner.get(f"/api/v1/links/{link['id']}"))["sub1"] == "lagging"  # read your write
    assert link["id"] not in [row["id"] for row in _ok(world.partner.get("/api/v1/links"))["items"]]
    standby.resume()
    standby.catch_up()
    assert link["id"] in [row["id"] for row in _ok(world.partner.get("/api/v1/links"))["items"]]


def test_a_revoked_key_is_refused_at_once_although_the_replica_still_has_it(
    replica_db: Database, standby: Standby, world: World
) -> None:
    standby.pause()
    with replica_db.session_scope() as session:
        session.execute(text("UPDATE api_keys SET revoked_at = now()"))

    assert world.partner.get("/api/v1/reports", query_string=PERIOD).status_code == 401


def test_a_replica_away_fails_reports_alone_while_money_answers(
    replica_db: Database, standby: Standby, world: World
) -> None:
    standby.stop()
    try:
        response = world.partner.get("/api/v1/reports", query_string=PERIOD)
        assert response.status_code == 503, response.get_json()
        assert response.get_json()["code"] == "database_unavailable" and response.headers["Retry-After"]
        balance = world.partner.get(f"/api/v1/partners/{world.partner_id}/balance")
        assert balance.status_code == 200, balance.get_json()
    finally:
        standby.run()
    assert _report(world.partner) == (0, "0.00")  # the pool replaces its dead connections
