"""The brand's reports page: the reports service's groupings and metrics as a table with a chart, a range of
UTC days, and the same rows as CSV; another brand's offer as a filter is 404."""

from __future__ import annotations

import csv
import io
import json
import re

from tests.portal.brand.conftest import page, rows, text


def test_the_default_report_is_the_last_7_days_totals(world):
    html = page(world.me, "/brand/reports")
    assert 'value="2026-03-03"' in html and 'value="2026-03-09"' in html
    header = re.search(r"<thead><tr>(.*?)</tr></thead>", html, re.S).group(1)  # type: ignore[union-attr]
    assert "Spend" in header and "Payout" not in header and "Profit" not in header
    # Currency, clicks, unique clicks, impressions, conversions, approved, sales, spend, CR, EPC, CTR, ROAS.
    assert ["USD", "3", "3", "0", "2", "1", "40.00", "16.00", "66.67", "5.3333", "\u2013", "2.50"] in rows(html)


def test_grouped_by_day_and_partner_with_a_chart(world):
    html = page(world.me, "/brand/reports", group_by=["day", "partner"], metric="conversions")
    table = rows(html)
    assert ["2026-03-09", str(world.partner.id), "USD", "2", "2", "0", "1", "1", "40.00", "8.00"] == table[-1][:10]
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    chart = json.loads(data.group(1))  # type: ignore[union-attr]
    assert chart["days"][-1] == f"2026-03-09 · {world.partner.id}"
    assert chart["series"][0]["values"][-1] == 1


def test_every_grouping_is_offered_and_answers(world):
    html = page(world.me, "/brand/reports")
    for dim in ("day", "offer", "partner", "sub1", "sub2", "sub3", "sub4", "sub5", "country", "device"):
        assert f'value="{dim}"' in html, dim
        assert world.me.get("/brand/reports", query_string={"group_by": dim}).status_code == 200, dim


def test_the_csv_download_has_the_same_rows(world):
    r = world.me.get(
        "/brand/reports.csv", query_string={"group_by": ["offer"], "start": "2026-02-01", "end": "2026-03-09"}
    )
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"] == 'attachment; filename="report.csv"'
    (row,) = list(csv.DictReader(io.StringIO(text(r))))
    assert (row["offer_id"], row["conversions"], row["revenue"]) == (str(world.offer.id), "2", "16.00")
    assert "payout" not in row
    html = page(world.me, "/brand/reports", group_by="offer")
    assert "/brand/reports.csv?" in html and "group_by=offer" in html


def test_bad_ranges_are_named_beside_their_field(world):
    r = world.me.get("/brand/reports", query_string={"start": "2024-01-01", "end": "2026-03-09"})
    assert r.status_code == 400 and 'id="start-error"' in text(r) and "366 days" in text(r)
    r = world.me.get("/brand/reports", query_string={"country": "1"})
    assert r.status_code == 400 and 'id="country-error"' in text(r)


def test_another_brands_offer_as_a_filter_is_404(world):
    for path in ("/brand/reports", "/brand/reports.csv"):
        r = world.me.get(path, query_string={"offer_id": str(world.foreign.id)})
        assert r.status_code == 404 and "99.00" not in text(r)
