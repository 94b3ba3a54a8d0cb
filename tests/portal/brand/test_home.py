"""The brand's home: spend, conversions, CR, EPC and ROAS per period from real rows, the top partners and offers,
spend per day for the chart; never another brand's figures. A brand user lands on it at sign-in."""

from __future__ import annotations

import json
import re

from network.auth import Role
from tests.portal.brand.conftest import ME, page, rows, text
from tests.portal.conftest import make_user, sign_in


def test_sign_in_lands_on_the_brand_home(app, world):
    client = app.test_client()
    r = sign_in(client, ME)
    assert r.status_code == 302
    assert client.get("/").headers["Location"].endswith("/brand/")
    html = page(client, "/brand/")
    assert "<h1>Acme Shop</h1>" in html
    # The console's pages are in the menu.
    for name in ("Offers", "Partners", "Conversions", "Integration", "Reports"):
        assert f">{name}</a>" in html


def test_home_shows_spend_conversions_cr_epc_and_roas_per_period(world):
    table = rows(page(world.me, "/brand/"))
    # Period, currency, clicks, conversions, CR, EPC (spend / clicks), spend, sales, ROAS (sales / spend).
    assert ["Today", "USD", "2", "1", "50.00 %", "4.0000", "8.00", "40.00", "5.00"] in table
    assert ["Last 7 days", "USD", "3", "2", "66.67 %", "5.3333", "16.00", "40.00", "2.50"] in table
    assert ["Last 30 days", "USD", "3", "2", "66.67 %", "5.3333", "16.00", "40.00", "2.50"] in table


def test_home_lists_the_top_partners_and_offers(world):
    table = rows(page(world.me, "/brand/"))
    assert [f"Partner #{world.partner.id}", "1", "8.00 USD"] in table
    assert ["Spring sale", "2", "16.00 USD"] in table


def test_home_has_spend_per_day_for_its_chart_and_table(world):
    html = page(world.me, "/brand/")
    data = re.search(r'<script type="application/json" id="spend-data">(.*?)</script>', html, re.S)
    assert data is not None
    chart = json.loads(data.group(1))
    assert len(chart["days"]) == 30 and chart["days"][-1] == "2026-03-09"
    (usd,) = chart["series"]
    assert usd["values"][-1] == "8.00" and usd["values"][-2] == "8.00" and usd["values"][0] == "0.00"
    assert ["2026-03-09", "USD", "2", "1", "8.00"] in rows(html)
    assert 'data-chart="spend-data"' in html and "/account/assets/chart.js" in html


def test_home_never_shows_another_brands_figures(world):
    html = page(world.me, "/brand/")
    assert "99.00" not in html and "Foreign sale" not in html and f"Partner #{world.other_partner.id}" not in html
    theirs = page(world.them, "/brand/")
    assert "Spring sale" not in theirs and "16.00" not in theirs and rows(theirs)[0][:4] == ["Today", "USD", "1", "1"]


def test_a_brand_with_nothing_yet_sees_empty_periods(app, session, world):
    from tests.factories import make_brand

    fresh = make_brand(session, name="Fresh Shop")
    make_user(session, email="fresh@shop.example", role=Role.BRAND, brand_id=fresh.id)
    session.flush()
    client = app.test_client()
    sign_in(client, "fresh@shop.example")
    r = client.get("/brand/")
    assert r.status_code == 200
    assert ["Today", "No clicks or conversions"] in rows(text(r))
    assert "spend-data" not in text(r)
