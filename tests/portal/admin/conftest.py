"""The admin console's world: a signed-in admin, a brand with a user and a key, a partner waiting for its
sign-up decision, an active partner with a key, a dead letter, a dead-lettered delivery and a failing job."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.orm import Session

from network.accounts import service as accounts
from network.accounts import users
from network.accounts.models import ApiKey, Brand
from network.auth import SYSTEM, Role
from network.deadletters.models import DeadLetter
from network.deliveries.models import PostbackDelivery
from network.partners.models import Partner
from network.payouts import jobstatus
from tests.factories import cpa_event, make_brand, make_offer, make_partner
from tests.payouts.support import NOW
from tests.portal.conftest import make_user, sign_in
from tests.reports.conftest import add_conversion, make_link

ADMIN = "ops@network.example"
HTMX = {"HX-Request": "true"}


def text(response: Any) -> str:
    return response.get_data(as_text=True)


@dataclass
class World:
    brand: Brand
    applicant: Partner
    application_id: int
    partner: Partner
    brand_key: ApiKey
    partner_key: ApiKey
    partner_secret: str
    letter: DeadLetter
    delivery: PostbackDelivery
    admin: Any


@pytest.fixture
def world(app: Any, session: Session, frozen_clock: Any) -> World:
    frozen_clock(NOW)
    brand = make_brand(session, name="Acme Shop")
    make_user(session, email="team@acme.example", role=Role.BRAND, brand_id=brand.id)
    users.sign_up_partner(
        session, name="Fresh Blog", email="hello@fresh.example", password="a long password 123",
        website="https://fresh.example", traffic_sources="SEO and a newsletter",
    )  # fmt: skip
    (application,) = users.list_applications(session, SYSTEM)
    applicant = session.get(Partner, application.partner_id)
    partner = make_partner(session, name="Deal Blog")
    make_user(session, email="ops@dealblog.example", role=Role.PARTNER, partner_id=partner.id)
    brand_key, _ = accounts.create_key(session, role=Role.BRAND, brand_id=brand.id, label="Acme server")
    partner_key, partner_secret = accounts.create_key(session, role=Role.PARTNER, partner_id=partner.id)
    letter = DeadLetter(source="clicks", reason="DataError: value too long", payload='{"sub1": "x"}')
    offer = make_offer(session, brand=brand, name="Spring sale", events=[cpa_event("sale", payout="5.00")])
    conversion = add_conversion(session, make_link(session, offer=offer, partner=partner), when=NOW)
    delivery = PostbackDelivery(
        dedupe_key="d-1", webhook_id="msg_1", partner_id=partner.id, offer_id=offer.id,
        conversion_id=conversion.id, target="global", new_status="approved", event_at=NOW, status="dead",
        attempts=10, last_status_code=503, last_error="Service Unavailable",
    )  # fmt: skip
    session.add_all([letter, delivery])
    job = jobstatus.JobInfo("settle_payouts", "Send approved payouts", "every 5 min", NOW + dt.timedelta(minutes=5))
    jobstatus.record_failure(session, job, period="2026-11", at=NOW, reason="gateway timed out", tries=3)
    make_user(session, email=ADMIN, role=Role.ADMIN)
    session.flush()
    admin = app.test_client()
    assert sign_in(admin, ADMIN).status_code == 302
    return World(brand, applicant, application.id, partner, brand_key, partner_key, partner_secret, letter,
                 delivery, admin)  # fmt: skip
