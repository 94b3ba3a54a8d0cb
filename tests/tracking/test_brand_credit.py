"""A brand over its credit limit (billing): its offers' new clicks go to their fallback with the reason
brand_credit, never billable; once it pays, the next check releases it and clicks reach the offer again."""

from __future__ import annotations

import datetime as dt

from network.accounts.models import Brand
from network.billing import credit, invoicing, service
from network.clock import now_utc
from network.tracking import rules
from tests.billing.test_invoices import FINANCE
from tests.payouts.support import make_commission
from tests.tracking.conftest import BROWSER


def _go(client, code):
    return client.get(f"/c/{code}", headers={"User-Agent": BROWSER})


def test_an_over_limit_brand_sends_clicks_to_the_fallback_until_it_pays(client, session, world, clicks):
    link = world.link(session)
    credit.update_terms(session, FINANCE, world.brand.id, credit_limit="8.00")
    make_commission(session, offer=world.offer, partner=world.partner, payout=800)
    assert credit.refresh_holds(session) == {"held": 1, "released": 0, "approved": 0}
    assert session.get(Brand, world.brand.id).credit_hold is True
    session.flush()
    r = _go(client, link.code)
    assert r.status_code == 302 and r.headers["Location"] == "https://shop.example/fallback"
    (invoice_id,) = invoicing.build_invoices(session, run_key="t", period_end=now_utc() + dt.timedelta(days=1))
    service.issue(session, FINANCE, invoice_id, gateway="manual")
    assert credit.refresh_holds(session) == {"held": 0, "released": 0, "approved": 0}  # issued is still owed
    service.mark_paid(session, FINANCE, invoice_id, reference="wire 1")
    assert credit.refresh_holds(session) == {"held": 0, "released": 1, "approved": 0}
    session.flush()
    r = _go(client, link.code)
    assert r.status_code == 302 and r.headers["Location"].startswith("https://shop.example/landing")
    rows = clicks()
    assert [c.fallback_reason for c in rows] == [rules.BRAND_CREDIT, None]
    assert not rows[0].billable and not rows[0].is_unique


def test_the_snapshot_notices_a_hold_moving_between_brands_of_the_same_count_and_id_sum(session):
    from network.tracking.snapshot import _FINGERPRINT
    from tests.factories import make_brand

    brands = [make_brand(session, name=f"B{n}") for n in range(4)]
    ids = sorted(b.id for b in brands)
    assert ids == list(range(ids[0], ids[0] + 4))

    def hold(*held: int) -> tuple[object, ...]:
        for brand in brands:
            brand.credit_hold = brand.id in held
        session.flush()
        return tuple(session.execute(_FINGERPRINT).one())

    assert hold(ids[0], ids[3]) != hold(ids[1], ids[2])
