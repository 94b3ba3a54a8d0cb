"""A database outage seen by the web app: 503 with Retry-After everywhere, one log line per interval,
and the log lines of the postbacks it refused written once the database is back."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from network import outage
from network.app import create_app
from network.conversions import spool
from network.conversions.models import PostbackLog
from network.db import Database
from tests.conftest import make_settings
from tests.conversions.conftest import NOW, Shop, make_click, make_shop
from tests.factories import Api
from tests.faults.proxy import Outage

SPOOL = "network.conversions.spool"


@pytest.fixture
def away(database_url: str, tmp_path: Path) -> Iterator[Outage]:
    """The test database, reachable through `away.url` until `away.down()`."""
    gone = Outage(database_url, tmp_path)
    yield gone
    gone.close()


@pytest.fixture
def built(committed_db: Database, committed_app: Any) -> Shop:
    """A brand's offer and a partner's link, committed (seen through the outage's URL as well)."""
    with committed_db.session_scope() as session:
        shop = make_shop(session, committed_app.test_client())
    return shop


@pytest.fixture
def fresh_outage_log(monkeypatch: pytest.MonkeyPatch) -> outage.OutageLog:
    """A new outage log for the process, so an earlier test's line within the interval hides nothing."""
    log = outage.OutageLog()
    monkeypatch.setattr(outage, "REQUESTS", log)
    return log


def _app(url: str, away: Outage) -> Any:
    app = create_app(make_settings(url))
    away.watch(app.extensions["network.db"])
    return app


def _outage_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "network.outage"]


def test_an_outage_answers_503_with_retry_after_everywhere_logged_once(
    built: Shop, away: Outage, caplog: pytest.LogCaptureFixture, fresh_outage_log: outage.OutageLog
) -> None:
    app = _app(away.url, away)
    client = app.test_client()
    admin = Api(client, built.admin_api.headers["Authorization"].removeprefix("Bearer "))
    assert admin.get("/api/v1/offers").status_code == 200
    away.down()
    caplog.set_level(logging.INFO)
    answers = []
    for _ in range(10):
        answers.append(admin.get("/api/v1/offers"))
        answers.append(client.get("/postback", query_string={"click_id": "x", "token": built.token}))
        answers.append(client.post("/postback", json={"click_id": "x", "token": built.token}))
    for r in answers:
        assert (r.status_code, r.headers.get("Retry-After")) == (503, str(outage.RETRY_AFTER)), r.data
        assert r.json == {
            "code": "database_unavailable",
            "message": "the database is unavailable; retry later",
            "request_id": r.headers["X-Request-ID"],
        }
    # A browser's pixel is still a GIF.
    pixel = client.get("/pixel", query_string={"offer_id": built.offer.id})
    assert (pixel.status_code, pixel.mimetype) == (200, "image/gif")
    # One line for the 31 refusals, at ERROR, without a traceback; none from the generic handler.
    lines = _outage_lines(caplog)
    assert len(lines) == 1 and lines[0].levelno == logging.ERROR and lines[0].exc_info is None
    assert "1 requests refused" in lines[0].getMessage()
    assert "Traceback" not in caplog.text and "unhandled error" not in caplog.text
    assert built.token not in caplog.text
    away.up()
    assert admin.get("/api/v1/offers").status_code == 200  # recovers on its own
    _wait_written(app, 21)  # the log lines of the 20 refused postbacks and the pixel


def test_the_outage_log_says_it_once_per_interval_with_the_count_meanwhile(caplog: pytest.LogCaptureFixture) -> None:
    clock = [100.0]
    log = outage.OutageLog(interval=10.0, monotonic=lambda: clock[0])
    error = ConnectionError("connection refused")
    caplog.set_level(logging.ERROR, logger="network.outage")
    logged = []
    for second in range(25):
        clock[0] = 100.0 + second
        logged.append(log.note(error))
    assert [i for i, said in enumerate(logged) if said] == [0, 10, 20]
    messages = [r.getMessage() for r in _outage_lines(caplog)]
    assert len(messages) == 3 and "10 requests refused in the last 10 s" in messages[1]


def _lines(database: Database) -> list[PostbackLog]:
    with database.session_scope() as session:
        return list(session.scalars(select(PostbackLog).order_by(PostbackLog.id)))


def _wait_written(app: Any, count: int, timeout: float = 15.0) -> None:
    kept = app.extensions[SPOOL]
    deadline = time.monotonic() + timeout
    while kept.written < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (kept.written, len(kept)) == (count, 0), "the spooled postback log lines were not written"


def test_postbacks_refused_in_an_outage_reach_the_brands_log_once_it_is_back(
    built: Shop, committed_db: Database, away: Outage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool, "RETRY_EVERY", 0.2)
    with committed_db.session_scope() as session:
        click = make_click(session, built.link, at=NOW)
    app = _app(away.url, away)
    client = app.test_client()
    away.down()
    refused = [
        client.get("/postback", query_string={"click_id": click, "txn_id": "T-1", "token": built.token}),
        client.post("/postback", data={"click_id": click, "txn_id": "T-2", "token": built.token, "event": "sale"}),
        # Someone without the brand's token: refused too, but never put in the brand's log.
        client.get("/postback", query_string={"click_id": click, "txn_id": "T-3", "token": "not-the-token"}),
    ]
    assert [r.status_code for r in refused] == [503, 503, 503]
    assert len(app.extensions[SPOOL]) == 3 and _lines(committed_db) == []
    away.up()
    _wait_written(app, 3)
    lines = _lines(committed_db)
    got = [(line.txn_id, line.http_status, line.reason, line.brand_id, line.offer_id) for line in lines]
    assert got == [
        ("T-1", 503, "database_unavailable", built.brand.id, None),
        ("T-2", 503, "database_unavailable", built.brand.id, None),
        ("T-3", 503, "database_unavailable", None, None),
    ]
    assert all("token" not in line.params for line in lines) and lines[0].params["click_id"] == click
    # The brand sees its two lines in its postback log through the API.
    seen = built.brand_api.get("/api/v1/postback-log")
    assert seen.status_code == 200
    assert [item["txn_id"] for item in seen.json["items"]] == ["T-1", "T-2"]


def test_the_spool_is_bounded_and_says_how_many_lines_it_could_not_keep(
    built: Shop, committed_db: Database, away: Outage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(spool, "MAX_LINES", 2)
    monkeypatch.setattr(spool, "RETRY_EVERY", 0.2)
    app = _app(away.url, away)
    client = app.test_client()
    away.down()
    for n in range(5):
        r = client.get("/postback", query_string={"click_id": "x", "txn_id": f"B-{n}", "token": built.token})
        assert r.status_code == 503
    kept = app.extensions[SPOOL]
    assert (len(kept), kept.dropped_total) == (2, 3)
    caplog.set_level(logging.WARNING, logger="network.conversions.spool")
    away.up()
    _wait_written(app, 2)
    assert [line.txn_id for line in _lines(committed_db)] == ["B-0", "B-1"]
    assert "3 postback log lines of the outage were not kept (more than 2 waited)" in caplog.text


def test_background_failures_log_an_outage_once_per_interval_and_anything_else_in_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from sqlalchemy.exc import OperationalError

    logger = logging.getLogger("tests.faults.background")
    caplog.set_level(logging.ERROR)
    away = OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
    for _ in range(50):
        outage.log_failure(logger, "reload failed", away, what=f"test reloads failed {id(caplog)}")
    lines = _outage_lines(caplog)
    assert len(lines) == 1 and lines[0].exc_info is None and "connection refused" in lines[0].getMessage()
    try:
        raise ValueError("a bug")
    except ValueError as error:
        outage.log_failure(logger, "reload failed", error, what="test reloads failed")
    (bug,) = [r for r in caplog.records if r.name == "tests.faults.background"]
    assert bug.getMessage() == "reload failed" and bug.exc_info is not None
