"""The manual gateway's CSV: a run's answer names the download, never a file on the server."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from network.config import ROOT
from tests.factories import Api, make_key, make_partner
from tests.payouts.support import exports_fixture, make_commission, make_shop  # noqa: F401


def _paid_run(session: Any, finance: Api) -> dict[str, Any]:
    shop = make_shop(session)
    partner = make_partner(session, name="Deal Blog", email="ops@dealblog.example")
    make_commission(session, offer=shop.offer, partner=partner, payout="60.00")
    (built,) = finance.post("/api/v1/payout-runs", json={}).json["payouts"]
    assert finance.post(f"/api/v1/payouts/{built['id']}/approve").status_code == 200
    r = finance.post("/api/v1/payout-runs", json={})
    assert r.status_code == 201 and r.json["paid"] == 1, r.json
    return r.json


def test_a_run_answers_an_export_url_and_no_server_path(client, session, exports: Path) -> None:
    finance = Api(client, make_key(session, role="finance"))
    run = _paid_run(session, finance)
    assert "export_path" not in run
    assert run["export_url"] == f"/api/v1/payout-runs/{run['id']}/export"
    text = json.dumps(run)
    for place in (str(exports), str(ROOT / "instance"), "/tmp", ".csv"):
        assert place not in text, place
    assert (exports / f"payouts-run-{run['id']}.csv").is_file()  # the file stays on disk


def test_finance_and_admin_download_the_export_as_csv(client, session, exports: Path) -> None:
    finance = Api(client, make_key(session, role="finance"))
    run = _paid_run(session, finance)
    for role in ("finance", "admin"):
        api = finance if role == "finance" else Api(client, make_key(session, role="admin"))
        with api.get(run["export_url"]) as r:
            assert r.status_code == 200 and r.mimetype == "text/csv", role
            assert r.headers["Content-Disposition"] == f"attachment; filename=payouts-run-{run['id']}.csv"
            rows = list(csv.DictReader(r.get_data(as_text=True).splitlines()))
        assert [(row["partner_name"], row["amount"], row["currency"]) for row in rows] == [
            ("Deal Blog", "60.00", "USD")
        ]


def test_partners_and_brands_may_not_download_and_unknown_runs_are_404(client, session, exports: Path) -> None:
    finance = Api(client, make_key(session, role="finance"))
    run = _paid_run(session, finance)
    partner = Api(client, make_key(session, role="partner", partner=make_partner(session, name="Other")))
    brand = Api(client, make_key(session, role="brand", brand=make_shop(session, name="Other Shop").brand))
    for api in (partner, brand):
        r = api.get(run["export_url"])
        assert r.status_code == 403 and r.json["code"] == "forbidden" and r.mimetype == "application/json"
    r = finance.get(f"/api/v1/payout-runs/{run['id'] + 1000}/export")
    assert r.status_code == 404 and r.json["code"] == "not_found"


def test_a_run_that_exported_nothing_has_no_url_and_no_download(client, session, exports: Path) -> None:
    finance = Api(client, make_key(session, role="finance"))
    r = finance.post("/api/v1/payout-runs", json={})  # nothing due: nothing paid, nothing exported
    assert r.status_code == 201 and r.json["export_url"] is None
    assert finance.get(f"/api/v1/payout-runs/{r.json['id']}/export").status_code == 404


def test_the_download_never_takes_a_path_from_the_client(client, session, exports: Path) -> None:
    finance = Api(client, make_key(session, role="finance"))
    run = _paid_run(session, finance)
    r = finance.get(f"{run['export_url']}?path=/etc/passwd")
    assert r.status_code == 400 and "path" in r.json["errors"]
    assert finance.get("/api/v1/payout-runs/..%2F..%2Fetc%2Fpasswd/export").status_code == 404
