"""A demo network for `make run`: keys, a brand with an active offer, a partner."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from network.accounts import service as accounts
from network.accounts import users
from network.accounts.models import Brand
from network.auth import SYSTEM
from network.config import ROOT, Settings
from network.offers import service as offers
from network.partners import service as partners

KEYS_FILE = ROOT / "instance" / "demo-keys.env"
ROLES = ("ADMIN", "FINANCE", "BRAND", "PARTNER")
#: The demo's people: one sign-in per role, e-mail <role>@demo.example.
USER_EMAILS = {name: f"{name.lower()}@demo.example" for name in ROLES}


def seed(session: Session, settings: Settings, keys_file: Path = KEYS_FILE) -> dict[str, Any]:
    """Create the demo when the database has no brand yet; return its ids and keys."""
    if session.scalar(select(func.count()).select_from(Brand)):
        keys: dict[str, str] = {}
        if keys_file.exists():
            saved = dict(line.split("=", 1) for line in keys_file.read_text().split() if "=" in line)
            keys = {name: saved[name] for name in ROLES if name in saved}
            passwords = {name: saved[f"{name}_PASSWORD"] for name in ROLES if f"{name}_PASSWORD" in saved}
        else:
            passwords = {}
        return {"created": False, "keys": keys, "passwords": passwords}
    brand = accounts.create_brand(session, SYSTEM, name="Acme Shop", currency="USD")
    partner = partners.create_partner(session, SYSTEM, name="Deal Blog", email="ops@dealblog.example")
    offer = offers.create_offer(
        session,
        SYSTEM,
        {
            "brand_id": brand.id,
            "name": "Spring sale",
            "visibility": "public",
            "destination_url": "https://shop.example/landing?cid={click_id}&s={sub1}",
            "allowed_domains": ["shop.example"],
            "fallback_url": "https://shop.example/",
            "caps": [{"metric": "conversions", "period": "day", "limit": 1000, "scope": "offer"}],
            "events": [
                {"key": "sale", "model": "revshare", "payout_percent": "10", "revenue_percent": "15"},
                {"key": "lead", "model": "cpl", "payout": "2.00", "revenue": "3.00"},
            ],
        },
    )
    offers.change_status(session, SYSTEM, offer.id, "activate")
    keys = {
        "ADMIN": accounts.create_key(session, role="admin", label="demo")[1],
        "FINANCE": accounts.create_key(session, role="finance", label="demo")[1],
        "BRAND": accounts.create_key(session, role="brand", brand_id=brand.id, label="demo")[1],
        "PARTNER": accounts.create_key(session, role="partner", partner_id=partner.id, label="demo")[1],
    }
    passwords = {name: secrets.token_urlsafe(9) for name in ROLES}
    bindings = {"BRAND": {"brand_id": brand.id}, "PARTNER": {"partner_id": partner.id}}
    for name in ROLES:
        users.create_user(
            session,
            SYSTEM,
            email=USER_EMAILS[name],
            role=name.lower(),
            password=passwords[name],
            **bindings.get(name, {}),
        )
    values: dict[str, str] = {
        **keys,
        **{f"{name}_PASSWORD": password for name, password in passwords.items()},
        "BASE": settings.public_base_url,
        "BRAND_ID": str(brand.id),
        "PARTNER_ID": str(partner.id),
        "OFFER_ID": str(offer.id),
        "TOKEN": brand.postback_token,
    }
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    # Written private before the secrets go in.
    keys_file.touch(mode=0o600, exist_ok=True)
    keys_file.chmod(0o600)
    keys_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return {
        "created": True,
        "keys": keys,
        "passwords": passwords,
        "brand_id": brand.id,
        "partner_id": partner.id,
        "offer_id": offer.id,
    }


def instructions(info: dict[str, Any], base_url: str, keys_file: Path = KEYS_FILE) -> str:
    """Return what `make run` prints: the keys and curl lines that work as printed."""
    keys = info.get("keys") or {}
    lines = ["", "network demo" + (" (created now)" if info.get("created") else " (already seeded)"), ""]
    if not keys:
        lines += [
            f"The demo's keys are not in {keys_file}; make an admin key with:",
            "  .venv/bin/flask --app wsgi keys create --role admin",
        ]
        return "\n".join(lines)
    lines.append("API keys (shown here because this is a demo; a key is normally shown once):")
    lines += [f"  {name:<8} {keys[name]}" for name in ROLES if name in keys]
    passwords = info.get("passwords") or {}
    if passwords:
        lines += ["", f"Sign in at {base_url}/account/sign-in as (e-mail, password):"]
        lines += [f"  {name:<8} {USER_EMAILS[name]:<24} {passwords[name]}" for name in ROLES if name in passwords]
        lines.append("Mails (sign-up, invitations, password resets) are printed here and kept in instance/outbox/.")
    lines += [
        "",
        "Try it from another terminal once the server below is up:",
        f"  curl -s {base_url}/healthz",
        f'  curl -s {base_url}/api/v1/offers -H "Authorization: Bearer {keys.get("PARTNER", "")}"',
        f'  curl -s {base_url}/api/v1/brands -H "Authorization: Bearer {keys.get("ADMIN", "")}"',
        f'  curl -s {base_url}/api/v1/partners -H "Authorization: Bearer {keys.get("ADMIN", "")}"',
        "",
        f"Or load the keys and ids into your shell (`source {_shown(keys_file)}`) and follow README.md.",
        f"Interactive API documentation: {base_url}/api/docs",
        "",
    ]
    return "\n".join(lines)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)
