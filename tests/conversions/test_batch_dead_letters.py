"""The postback group commit past a value the database refuses (RELIABILITY.md 27).

The batch is recorded in halves around the refused postback: the others are recorded together, the
refused one is kept as a dead letter and answered 400 `not_storable`; a refused partner postback
(outbox row) is kept as a dead letter without costing its conversion. Values are put straight into
the plans: the API refuses NUL and the like before a plan is made.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from network.conversions import groupcommit, service
from network.conversions.groupcommit import GroupCommit
from network.conversions.models import Conversion, PostbackLog
from network.db import Database
from network.deliveries import service as deliveries
from network.deliveries.models import PostbackDelivery
from network.errors import ValidationError
from tests.conversions.conftest import CPL, NOW, make_click, make_link
from tests.deadletters.support import letters
from tests.factories import make_brand, make_offer, make_partner

HOUR = dt.timedelta(hours=1)
BAD = 137
#: How a CHECK constraint's refusal starts on SQLite and on PostgreSQL.
CHECK_REFUSED = ("IntegrityError: CHECK constraint failed", "CheckViolation: new row for relation")


def _world(database: Database, *, postback_url: str | None = None) -> tuple[Any, str]:
    with database.session_scope() as session:
        brand = make_brand(session)
        partner = make_partner(session)
        partner.postback_url = postback_url
        offer = make_offer(session, brand=brand, events=[CPL])
        return make_link(session, offer=offer, partner=partner), brand.postback_token


def _plans(database: Database, settings: Any, link: Any, token: str, count: int, first: int = 0) -> list[service.Plan]:
    """Return `count` plans of CPL postbacks on fresh clicks, judged and ready to record."""
    plans: list[service.Plan] = []
    with database.session_scope() as session:
        clicks = [make_click(session, link, at=NOW - HOUR) for _ in range(count)]
    with database.session() as session:
        for n, click_id in enumerate(clicks, first):
            params = {"click_id": [click_id], "event": ["lead"], "txn_id": [f"T-{n}"], "token": [token]}
            received = service.Received(source="postback", method="GET", params=params)
            trace = service.start_trace(received)
            plan = service.receive(session, settings=settings, received=received, trace=trace, now=NOW)
            assert isinstance(plan, service.Plan)
            plans.append(plan)
    return plans


def _recorder(database: Database, calls: list[int]) -> GroupCommit:
    def record(plans: list[service.Plan]) -> list[Any]:
        calls.append(len(plans))
        return groupcommit.record_committed(database, plans)

    return GroupCommit(record, refuse=functools.partial(groupcommit.refuse, database), max_batch=500)


def _count(database: Database, model: Any) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.mark.parametrize("kind", ["check-constraint", "nul-byte"])
def test_one_refused_postback_among_500_is_kept_and_the_499_are_recorded_together(
    committed_db, settings, frozen_clock, dialect, kind
):
    if kind == "nul-byte" and dialect != "postgresql":
        pytest.skip("SQLite stores NUL bytes")
    frozen_clock(NOW)
    link, token = _world(committed_db)
    plans = _plans(committed_db, settings, link, token, 500)
    if kind == "nul-byte":
        plans[BAD].data.txn_id = plans[BAD].trace.txn_id = "T-\x00"
    else:
        plans[BAD].amount_minor = -5  # the conversions' CHECK (amount_minor IS NULL OR amount_minor >= 0)
    calls: list[int] = []
    recorder = _recorder(committed_db, calls)

    outcomes = recorder.record(plans)

    refused = outcomes[BAD]
    assert isinstance(refused, ValidationError) and refused.code == "not_storable" and refused.status == 400
    assert Counter(o.status for o in outcomes if isinstance(o, service.Answer)) == {"approved": 499}
    assert _count(committed_db, Conversion) == 499
    assert _count(committed_db, PostbackLog) == 499  # the refused one's line is its request's to write
    # In halves: a handful of transactions, not one per postback.
    assert calls[0] == 500 and len(calls) <= 2 * 9 + 2
    [(reason, row)] = letters(committed_db, "postbacks")
    if kind == "nul-byte":
        assert reason.startswith("DataError: PostgreSQL text fields cannot contain NUL") and row["txn_id"] == "T-\x00"
        assert plans[BAD].trace.txn_id == "T-\ufffd"  # its log line can be written
    else:
        assert reason.startswith(CHECK_REFUSED) and row["txn_id"] == f"T-{BAD}" and row["amount_minor"] == -5
    assert "token" not in str(row)

    # The recorder goes on: a later batch is recorded together.
    more = _plans(committed_db, settings, link, token, 10, first=500)
    assert [o.status for o in recorder.record(more)] == ["approved"] * 10  # type: ignore[union-attr]
    assert calls[-1] == 10 and _count(committed_db, Conversion) == 509


def test_a_refused_partner_postback_is_kept_and_its_conversion_recorded(
    committed_db, settings, frozen_clock, monkeypatch
):
    frozen_clock(NOW)
    link, token = _world(committed_db, postback_url="https://tracker.partner.example/pb?c={click_id}")
    # One delivery row already holds the webhook id the BAD conversion's row will get: unique, so refused.
    [earlier] = _plans(committed_db, settings, link, token, 1, first=10_000)
    taken = uuid.uuid4()
    real_uuid4, real_macros = deliveries.uuid.uuid4, deliveries.macro_values
    current: dict[str, Any] = {}

    def macro_values(session: Any, conversion: Any, new_status: str) -> Any:
        current["txn_id"] = conversion.txn_id
        return real_macros(session, conversion, new_status)

    def uuid4() -> uuid.UUID:
        return taken if current.get("txn_id") in ("T-10000", f"T-{BAD}") else real_uuid4()

    monkeypatch.setattr(deliveries, "macro_values", macro_values)
    monkeypatch.setattr(deliveries.uuid, "uuid4", uuid4)
    calls: list[int] = []
    recorder = _recorder(committed_db, calls)
    assert recorder.record([earlier])[0].status == "approved"  # type: ignore[union-attr]
    plans = _plans(committed_db, settings, link, token, 500)

    outcomes = recorder.record(plans)

    assert Counter(o.status for o in outcomes) == {"approved": 500}  # type: ignore[union-attr]
    assert _count(committed_db, Conversion) == 501
    assert _count(committed_db, PostbackDelivery) == 500  # the earlier one's and 499 of the batch's
    [(reason, row)] = letters(committed_db, "outbox")
    assert reason.startswith(("IntegrityError: UNIQUE constraint failed", "UniqueViolation")), reason
    assert row["webhook_id"] == "msg_" + taken.hex and row["macros"]["click_id"] == plans[BAD].click_id
    assert calls[1] == 500 and len(calls) <= 2 * 9 + 3
    with committed_db.session() as session:
        conversion = session.scalars(select(Conversion).where(Conversion.txn_id == f"T-{BAD}")).one()
        assert session.scalar(select(func.count()).where(PostbackDelivery.conversion_id == conversion.id)) == 0


@pytest.mark.breaks_batches
@pytest.mark.parametrize("kind", ["check-constraint", "nul-byte"])
def test_a_refused_postback_is_answered_400_and_logged_and_the_next_recorded(
    committed_app, committed_db, frozen_clock, dialect, kind
):
    if kind == "nul-byte" and dialect != "postgresql":
        pytest.skip("SQLite stores NUL bytes")
    frozen_clock(NOW)
    link, token = _world(committed_db)
    with committed_db.session_scope() as session:
        bad_click, good_click = make_click(session, link, at=NOW - HOUR), make_click(session, link, at=NOW - HOUR)

    def record(plans: list[service.Plan]) -> list[Any]:
        for plan in plans:
            if plan.data.txn_id == "BAD":  # a value the API would not let through, put in the plan
                if kind == "nul-byte":
                    plan.data.txn_id = plan.trace.txn_id = "BAD\x00"
                else:
                    plan.amount_minor = -5
        return groupcommit.record_committed(committed_db, plans)

    committed_app.extensions["network.conversions.recorder"] = GroupCommit(
        record, refuse=functools.partial(groupcommit.refuse, committed_db)
    )
    client = committed_app.test_client()
    answer = client.get("/postback", query_string={"click_id": bad_click, "event": "lead", "txn_id": "BAD",
                                                    "token": token})  # fmt: skip
    assert answer.status_code == 400 and answer.get_json()["code"] == "not_storable"
    good = client.get("/postback", query_string={"click_id": good_click, "event": "lead", "txn_id": "GOOD",
                                                  "token": token})  # fmt: skip
    assert good.status_code == 200 and good.get_json()["status"] == "approved"

    with committed_db.session() as session:
        lines = session.scalars(select(PostbackLog).order_by(PostbackLog.id)).all()
        assert [(line.http_status, line.txn_id) for line in lines] == [
            (400, "BAD\ufffd" if kind == "nul-byte" else "BAD"),
            (200, "GOOD"),
        ]
        assert "refused" in (lines[0].reason or "")
        assert session.scalars(select(Conversion.txn_id)).all() == ["GOOD"]
    assert len(letters(committed_db, "postbacks")) == 1


@pytest.mark.breaks_batches
def test_a_postback_refused_when_recorded_alone_is_kept_and_logged(committed_app, committed_db, frozen_clock):
    frozen_clock(NOW)
    link, token = _world(committed_db)
    with committed_db.session_scope() as session:
        click = make_click(session, link, at=NOW - HOUR)

    class _Alone:
        """A recorder whose batch failed otherwise (the database went away): the request records alone."""

        failures = 0

        def submit(self, plan: service.Plan) -> None:
            plan.amount_minor = -5  # a value the API would not let through, put in the plan
            return None

    committed_app.extensions["network.conversions.recorder"] = _Alone()
    answer = committed_app.test_client().get(
        "/postback", query_string={"click_id": click, "event": "lead", "txn_id": "ALONE", "token": token}
    )
    assert answer.status_code != 200
    [(reason, row)] = letters(committed_db, "postbacks")
    assert reason.startswith(CHECK_REFUSED) and row["txn_id"] == "ALONE"
    with committed_db.session() as session:
        [line] = session.scalars(select(PostbackLog)).all()
        assert (line.txn_id, line.conversion_id) == ("ALONE", None) and line.http_status >= 400
        assert session.scalars(select(Conversion.id)).all() == []
