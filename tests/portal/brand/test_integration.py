"""The brand's integration page: its token and a confirmed rotation, ready-to-copy URLs per event, a signing
example that the postback endpoint accepts, and the postback log (its htmx block refreshing by itself)."""

from __future__ import annotations

import html as html_lib
import re

from network.accounts.models import Brand
from tests.factories import make_offer
from tests.portal.brand.conftest import HTMX, page, rows, text, token_of


def test_the_token_and_a_confirmed_rotation(world, session):
    old = world.brand.postback_token
    html = page(world.me, "/brand/integration")
    assert f'value="{old}"' in html and world.other_brand.postback_token not in html
    r = world.me.get("/brand/integration/rotate")
    assert r.status_code == 200 and "stops working at once" in text(r)
    session.refresh(world.brand)
    assert world.brand.postback_token == old
    r = world.me.post("/brand/integration/rotate", data={"csrf_token": token_of(world.me, "/brand/integration")})
    assert r.status_code == 302
    session.expire_all()
    new = session.get(Brand, world.brand.id).postback_token
    assert new != old and f'value="{new}"' in page(world.me, "/brand/integration")
    # Without its CSRF token nothing changes.
    assert world.me.post("/brand/integration/rotate").status_code == 400
    session.expire_all()
    assert session.get(Brand, world.brand.id).postback_token == new


def test_postback_and_pixel_urls_for_each_event(world, session):
    make_offer(session, brand=world.brand, name="Shares", events=[
        {"key": "sale", "model": "revshare", "payout_percent": "10", "revenue_percent": "15"}])  # fmt: skip
    session.flush()
    html = html_lib.unescape(page(world.me, "/brand/integration"))
    token = world.brand.postback_token
    assert f"http://localhost/postback?click_id={{click_id}}&event=sale&txn_id={{txn_id}}&token={token}" in html
    assert (
        f"http://localhost/postback?click_id={{click_id}}&event=sale&amount={{amount}}&txn_id={{txn_id}}&token={token}"
        in html
    )
    assert f'<img src="http://localhost/pixel?offer_id={world.offer.id}&amp;event=sale&amp;txn_id={{txn_id}}"' in html
    assert "Foreign sale" not in html and "data-copy" in html


def test_the_signing_example_is_accepted_by_the_postback_endpoint(world, client):
    html = html_lib.unescape(page(world.me, "/brand/integration"))
    raw = re.search(r"<dt>raw</dt><dd><code>(.*?)</code>", html).group(1)  # type: ignore[union-attr]
    header = re.search(r'<code id="example-signature">(.*?)</code>', html).group(1)  # type: ignore[union-attr]
    assert f"offer_id={world.offer.id}" in raw and header.startswith("t=")
    signed = client.get(f"/postback?{raw}", headers={"X-Signature": header})
    assert signed.status_code == 200, signed.get_data(as_text=True)
    forged = client.get(f"/postback?{raw}", headers={"X-Signature": header[:-1] + ("0" if header[-1] != "0" else "1")})
    assert forged.status_code == 403


def test_the_log_shows_the_brands_postbacks_with_verdicts(world):
    html = page(world.me, "/brand/integration")
    row = next(r for r in rows(html) if r[3] == "MINE-1")
    assert row[5:9] == ["200", "approved", "", f"#{world.approved.id}"]
    assert "THEIRS-1" not in html
    # Found by its order id over the last 30 days; another brand's never.
    assert "MINE-1" in page(world.me, "/brand/integration", txn_id="MINE-1")
    assert "No postback matches." in page(world.me, "/brand/integration", txn_id="THEIRS-1")


def test_htmx_gets_the_log_block_that_polls_itself(world):
    r = world.me.get("/brand/integration", headers=HTMX)
    assert r.status_code == 200
    block = text(r)
    assert block.startswith('\n<div id="postback-log"') or block.lstrip().startswith('<div id="postback-log"')
    assert 'hx-trigger="every 3s"' in block and "MINE-1" in block and "<html" not in block
    assert "THEIRS-1" not in block
