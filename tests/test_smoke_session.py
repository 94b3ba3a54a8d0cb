"""SPEC §9 up to the offer's activation, through the HTTP API exactly as written."""

from __future__ import annotations

from tests.factories import SPEC_OFFER, Api, make_key


def test_spec_session_up_to_offer_activation(client, session):
    admin = Api(client, make_key(session, role="admin"))
    r = admin.post("/api/v1/brands", json={"name": "Acme Shop", "currency": "USD"})
    assert r.status_code == 201, r.json
    brand_id, token = r.json["id"], r.json["postback_token"]
    assert token
    r = admin.post("/api/v1/partners", json={"name": "Deal Blog", "email": "ops@dealblog.example"})
    assert r.status_code == 201 and r.json["status"] == "active"
    partner_id = r.json["id"]
    brand_key = admin.post("/api/v1/keys", json={"role": "brand", "brand_id": brand_id}).json["key"]
    partner_key = admin.post("/api/v1/keys", json={"role": "partner", "partner_id": partner_id}).json["key"]
    finance_key = admin.post("/api/v1/keys", json={"role": "finance"}).json["key"]
    assert brand_key.startswith("nk_brand_") and partner_key.startswith("nk_partner_") and finance_key

    brand = Api(client, brand_key)
    r = brand.post(
        "/api/v1/offers",
        json=SPEC_OFFER,
    )
    assert r.status_code == 201, r.json
    assert r.json["status"] == "draft"
    offer_id = r.json["id"]
    r = brand.post(f"/api/v1/offers/{offer_id}/activate")
    assert r.status_code == 200 and r.json["status"] == "active"
    r = Api(client, partner_key).get(f"/api/v1/offers/{offer_id}")
    assert r.status_code == 200
    assert "revenue" not in r.json["events"][1] and r.json["events"][1]["payout"] == "2.00"


def test_demo_seed_makes_a_network_whose_printed_curl_lines_work(committed_app, tmp_path):
    import re
    import shlex

    # Real commits, as under `make run` (the printed lines include /healthz, which opens its own connection).
    app, client = committed_app, committed_app.test_client()
    keys_file = tmp_path / "demo-keys.env"
    runner = app.test_cli_runner()
    result = runner.invoke(args=["demo", "seed", "--env-file", str(keys_file)])
    assert result.exit_code == 0, result.output
    assert "created now" in result.output
    curls = [line.strip() for line in result.output.splitlines() if line.strip().startswith("curl ")]
    assert len(curls) >= 3
    for line in curls:
        words = shlex.split(line)
        url = next(w for w in words if w.startswith("http"))
        path = re.sub(r"^https?://[^/]+", "", url)
        headers = dict(h.split(": ", 1) for h in (words[i + 1] for i, w in enumerate(words) if w == "-H"))
        response = client.get(path, headers=headers)
        assert response.status_code == 200, (line, response.json)
    # The demo offer is live for the demo partner, and the keys file holds what README.md uses.
    saved = dict(line.split("=", 1) for line in keys_file.read_text().split())
    assert {"ADMIN", "FINANCE", "BRAND", "PARTNER", "BASE", "BRAND_ID", "PARTNER_ID", "OFFER_ID", "TOKEN"} <= set(saved)
    offer = Api(client, saved["PARTNER"]).get(f"/api/v1/offers/{saved['OFFER_ID']}").json
    assert offer["status"] == "active" and offer["can_run"] is True
    assert Api(client, saved["FINANCE"]).get("/api/v1/brands").status_code == 200
    assert keys_file.stat().st_mode & 0o077 == 0
    again = runner.invoke(args=["demo", "seed", "--env-file", str(keys_file)])
    assert again.exit_code == 0 and "already seeded" in again.output and saved["ADMIN"] in again.output
