"""JSON log lines with the request's id; the id in the answer, its error body and the postback log; no secret logged."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from typing import Any

import pytest

from network.app import create_app
from network.clock import UTC
from network.ops import logs
from tests.conversions.conftest import REVSHARE, log_lines, make_click, make_shop, postback
from tests.factories import make_key

NOW = dt.datetime.now(UTC)


def _lines(capsys: Any) -> list[dict[str, Any]]:
    """Return the JSON log lines written to stderr so far (each line must be JSON)."""
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]


def _access(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["logger"] == "network.access"]


def test_a_request_is_logged_as_json_with_the_clients_request_id(client, session, capsys):
    key = make_key(session, role="admin")
    capsys.readouterr()
    r = client.get("/api/v1/offers", headers={"Authorization": f"Bearer {key}", "X-Request-ID": "lb-42.a:b@c"})
    assert r.status_code == 200 and r.headers["X-Request-ID"] == "lb-42.a:b@c"
    (line,) = _access(_lines(capsys))
    assert line["request_id"] == "lb-42.a:b@c" and line["level"] == "INFO" and "timestamp" in line
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/v1/offers", 200)
    assert line["principal"].startswith("admin:") and isinstance(line["latency_ms"], float)
    assert key not in json.dumps(line)


@pytest.mark.parametrize("given", [None, "", "x" * 129, "has space", "tab\there", "é", "a/b"])
def test_a_missing_or_strange_request_id_is_replaced_by_a_new_one(client, capsys, given):
    headers = {"X-Request-ID": given} if given is not None else {}
    r = client.get("/api/v1/nothing-here", headers=headers)
    made = r.headers["X-Request-ID"]
    assert made != given and len(made) == 32 and int(made, 16) >= 0
    assert r.status_code == 404 and r.json["request_id"] == made
    assert _access(_lines(capsys))[-1]["request_id"] == made


def test_every_line_of_a_request_carries_its_id(app, client, capsys):
    @app.get("/boom")
    def boom() -> None:
        logging.getLogger("network.test").warning("about to fail")
        raise RuntimeError("a bug")

    r = client.get("/boom", headers={"X-Request-ID": "req-7"})
    assert r.status_code == 500 and r.json["request_id"] == "req-7"
    lines = [line for line in _lines(capsys) if line["logger"] in ("network.test", "network.errors", "network.access")]
    assert [line["request_id"] for line in lines] == ["req-7"] * 3
    assert "RuntimeError" in lines[1]["exc_info"]


def test_a_postback_is_logged_without_its_token_and_its_log_row_keeps_the_request_id(client, session, capsys):
    shop = make_shop(session, client, events=[REVSHARE])
    click = make_click(session, shop.link, at=NOW - dt.timedelta(hours=1))
    capsys.readouterr()
    r = client.get(
        "/postback",
        query_string={"click_id": click, "event": "sale", "amount": "10.00", "txn_id": "L-1", "token": shop.token},
        headers={"X-Request-ID": "pb-1"},
    )
    assert r.status_code == 200 and r.headers["X-Request-ID"] == "pb-1"
    refused = postback(client, click_id=click, event="sale", amount="10.00", txn_id="L-2", token=shop.token + "x")
    assert refused.status_code == 403 and refused.json["request_id"] == refused.headers["X-Request-ID"]
    err = capsys.readouterr().err
    assert shop.token not in err and "token=" not in err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    # A postback's record is its postback-log row with its request id (below): no access line besides.
    assert [line for line in lines if line["logger"] == "network.access"] == []
    rows = log_lines(session)
    assert [row.request_id for row in rows] == ["pb-1", refused.headers["X-Request-ID"]]
    assert shop.brand_api.get("/api/v1/postback-log").json["items"][0]["request_id"] in ("pb-1", rows[1].request_id)


def test_a_secret_in_a_path_is_logged_as_its_route(client, capsys):
    client.get("/account/reset/a-signed-reset-token")
    lines = _access(_lines(capsys))
    assert lines[-1]["path"] == "/account/reset/<token>"


def test_health_probes_leave_no_access_line(client, capsys):
    assert client.get("/healthz").status_code == 200
    assert _access(_lines(capsys)) == []


def test_text_logs_carry_the_request_id_too(settings, db, capsys):
    client = create_app(dataclasses.replace(settings, log_format="text"), database=db).test_client()
    try:
        client.get("/api/v1/nothing-here", headers={"X-Request-ID": "txt-1"})
        err = capsys.readouterr().err
        assert "INFO network.access [txt-1] GET /api/v1/nothing-here 404" in err
    finally:
        logs.configure("json")


def test_an_unknown_log_format_is_refused(settings, db):
    with pytest.raises(ValueError, match="LOG_FORMAT must be json or text"):
        create_app(dataclasses.replace(settings, log_format="xml"), database=db)


def test_access_lines_can_be_turned_off_and_requests_keep_their_ids(settings, db, capsys):
    client = create_app(dataclasses.replace(settings, access_log=False), database=db).test_client()
    r = client.get("/api/v1/nothing-here", headers={"X-Request-ID": "quiet-1"})
    assert r.headers["X-Request-ID"] == "quiet-1" and r.json["request_id"] == "quiet-1"
    assert _access(_lines(capsys)) == []
