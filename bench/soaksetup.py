"""The set-up of bench/soak: a fresh database, and through the API the brand, partners, keys and offers."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

STRIPE_KEY = "sk_test_soak_0123456789abcdef"
WEBHOOK_SECRET = "whsec_soak_0123456789abcdef"


# ---- databases ----------------------------------------------------------------------------------


def fresh_database(kind: str, pg_url: str, folder: Path) -> str:
    """Return the URL of a new, migrated database."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from network import migrate

    if kind == "sqlite":
        url = f"sqlite:///{folder / 'soak.db'}"
    else:
        name = f"network_bench_soak_{uuid.uuid4().hex[:8]}"  # its own: runs in parallel do not collide
        engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    return url


def drop_database(url: str, pg_url: str) -> None:
    """Drop the soak's PostgreSQL database."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    engine.dispose()


def admin_key(url: str) -> str:
    """Create the admin key in the database (as `flask --app wsgi keys create --role admin` does)."""
    from network.accounts import service
    from network.db import Database

    database = Database(url)
    with database.session_scope() as session:
        _, key = service.create_key(session, role="admin", brand_id=None, partner_id=None, label="soak")
    database.dispose()
    return key


# ---- setting up through the API -----------------------------------------------------------------


def api(client: Any, method: str, path: str, key: str, body: Any = None, want: int = 200) -> Any:
    """Call the API and return its JSON answer; raise on any other status than `want`."""
    answer = client.request(method, path, headers={"Authorization": f"Bearer {key}"}, body=body)
    if answer is None or answer[0] != want:
        raise RuntimeError(f"{method} {path}: {answer and answer[0]} {answer and answer[2][:500]!r}")
    return json.loads(answer[2])


def set_up(base: str, admin: str, fake: Any, listener: Any, cap: int) -> dict[str, Any]:
    """Onboard a brand, three partners (Stripe accounts, postback URLs), keys and two offers; return them."""
    from bench.soaktraffic import Client

    client = Client(base)
    brand = api(client, "POST", "/api/v1/brands", admin, {"name": "Soak Shop", "currency": "USD"}, 201)
    keys = {"admin": admin}
    for role, extra in (("brand", {"brand_id": brand["id"]}), ("finance", {})):
        keys[role] = api(client, "POST", "/api/v1/keys", admin, {"role": role, **extra}, 201)["key"]
    common = {
        "currency": "USD", "visibility": "public", "allowed_domains": ["shop.example"],
        "destination_url": "https://shop.example/landing?cid={click_id}&s={sub1}",
        "fallback_url": "https://shop.example/", "countries": [],
    }  # fmt: skip
    offers = {
        "sale": {
            "name": "Spring sale", "hold_days": 0, **common,
            "events": [
                {"key": "sale", "model": "revshare", "payout_percent": "10", "revenue_percent": "15"},
                {"key": "lead", "model": "cpl", "payout": "2.00", "revenue": "3.00"},
            ],
        },
        "held": {
            "name": "Held offer", "hold_days": 7, **common,
            "caps": [{"metric": "conversions", "period": "day", "limit": cap, "scope": "offer"}],
            "events": [{"key": "purchase", "model": "cpa", "payout": "5.00", "revenue": "8.00"}],
        },
    }  # fmt: skip
    offer_ids = {}
    for name, spec in offers.items():
        offer_ids[name] = api(client, "POST", "/api/v1/offers", keys["brand"], spec, 201)["id"]
        api(client, "POST", f"/api/v1/offers/{offer_ids[name]}/activate", keys["brand"])
    partners, links = [], []
    for i in range(3):
        partner = api(
            client, "POST", "/api/v1/partners", admin, {"name": f"Soak {i}", "email": f"soak{i}@blog.example"}, 201
        )
        key = api(client, "POST", "/api/v1/keys", admin, {"role": "partner", "partner_id": partner["id"]}, 201)["key"]
        template = f"{listener.url}/pb?cid={{click_id}}&conv={{conversion_id}}&s={{status}}&p={{payout}}"
        api(client, "PATCH", f"/api/v1/partners/{partner['id']}", key, {"postback_url": template})
        account = api(client, "POST", f"/api/v1/partners/{partner['id']}/stripe/onboarding", key)["account_id"]
        fake.enable_account(account)
        body = json.dumps(fake.events[-1]).encode()
        headers = {"Stripe-Signature": fake.sign_webhook(body, WEBHOOK_SECRET), "Content-Type": "application/json"}
        client.close()
        answer = client.request("POST", "/webhooks/stripe", headers=headers, body=body)
        if answer is None or answer[0] != 200:
            raise RuntimeError(f"Stripe webhook: {answer}")
        partners.append({"id": partner["id"], "key": key})
        for name, offer_id in offer_ids.items():
            link = api(client, "POST", "/api/v1/links", key, {"offer_id": offer_id, "sub1": f"p{i}"}, 201)
            links.append({"code": link["code"], "offer": name, "partner_id": partner["id"]})
    client.close()
    return {"token": brand["postback_token"], "keys": keys, "offers": offer_ids, "partners": partners, "links": links}
