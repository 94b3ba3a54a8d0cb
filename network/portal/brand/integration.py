"""The brand's integration: its postback token (rotated after confirmation), ready-to-copy postback and pixel
URLs for each event of each offer, a worked HMAC signature, and the live postback log.

The log block of the page is what htmx asks for every few seconds (the same template's block), so the log
refreshes by itself; without JavaScript the page shows the same lines and a reload refreshes them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from flask import flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import Form, IntegerField, StringField, SubmitField
from wtforms.validators import Length, NumberRange, Optional

from network import web
from network.accounts import service as accounts
from network.auth import Role
from network.clock import now_utc
from network.conversions import service as conversions
from network.conversions.intake import SIGNATURE_WINDOW
from network.conversions.models import PostbackLog
from network.db import MAX_PAGE
from network.offers import service as offers
from network.offers.rules import needs_amount
from network.portal.brand.common import blp, brand_id, page_or_block
from network.portal.common import principal, role_required, settings

#: Lines the live log shows, newest first, and how far back it looks without a filter.
LOG_LINES = 50
LIVE_WINDOW = dt.timedelta(minutes=30)
#: How far back a filtered search looks, and the most pages of the log a view reads.
SEARCH_WINDOW = dt.timedelta(days=30)
MAX_PAGES = 20
#: What a brand's system fills in: our macros are its own placeholders, written as it writes them.
MACROS = {
    "{click_id}": "The click id your landing page received (cid=… in the destination URL).",
    "{amount}": "The sale amount in major units (80.00); only revenue share and hybrid events need it.",
    "{txn_id}": "Your order or transaction id: a repeat with the same id is not counted twice.",
}


class RotateForm(FlaskForm):
    submit = SubmitField("Yes, make a new token")


class LogFilters(Form):
    """Trace one postback: a GET form, so no CSRF token (it changes nothing)."""

    txn_id = StringField("Order id (txn_id)", [Optional(), Length(max=512)])
    click_id = StringField("Click id", [Optional(), Length(max=512)])
    http_status = IntegerField("HTTP status", [Optional(), NumberRange(min=100, max=599)])


def postback_url(base: str, offer: Any, event: Any, token: str) -> str:
    params = {"click_id": "{click_id}", "event": event.key}
    if needs_amount(event.model):
        params["amount"] = "{amount}"
    params |= {"txn_id": "{txn_id}", "token": token}
    return f"{base}/postback?" + "&".join(f"{k}={v}" for k, v in params.items())


def pixel_tag(base: str, offer: Any, event: Any) -> str:
    params = {"offer_id": str(offer.id), "event": event.key}
    if needs_amount(event.model):
        params["amount"] = "{amount}"
    params["txn_id"] = "{txn_id}"
    query = "&amp;".join(f"{k}={v}" for k, v in params.items())
    return f'<img src="{base}/pixel?{query}" width="1" height="1" alt="">'


def signing_example(base: str, offer: Any, token: str, now: dt.datetime) -> dict[str, str]:
    """A signed GET postback worked through with the brand's token, valid for a few minutes from `now`."""
    event = offer.events[0]
    params = {"offer_id": str(offer.id), "click_id": "CLICK_ID", "event": event.key, "txn_id": "A-1"}
    if needs_amount(event.model):
        params["amount"] = "80.00"
    raw = urlencode(params)
    at = int(now.timestamp())
    return {
        "raw": raw,
        "at": str(at),
        "header": conversions.sign(token, raw.encode(), at),
        "url": f"{base}/postback?{raw}",
    }


def _newest(found_pages: Any) -> list[PostbackLog]:
    """The last LOG_LINES of pages read oldest first, newest first."""
    lines: list[PostbackLog] = []
    for page in found_pages:
        lines = (lines + page)[-LOG_LINES:]
    return list(reversed(lines))


def log_lines(session: Any, me: Any, filters: dict[str, Any], now: dt.datetime) -> list[PostbackLog]:
    """The newest postback log lines of the brand: the live window, or a filtered search's window."""
    since = now - (SEARCH_WINDOW if any(v is not None for v in filters.values()) else LIVE_WINDOW)

    def pages() -> Any:
        after = None
        for _ in range(MAX_PAGES):
            page = conversions.list_postback_log(session, me, **filters, since=since, limit=MAX_PAGE, after=after)
            yield page
            if len(page) < MAX_PAGE:
                return
            after = page[-1].id

    return _newest(pages())


@blp.get("/integration")
@role_required(Role.BRAND)
def integration() -> Any:
    """The token, the URLs per event, the signing example and the live log (its block alone for htmx)."""
    session, me, now = web.session(), principal(), now_utc()
    form = LogFilters(request.args)
    filters: dict[str, Any] = {"txn_id": None, "click_id": None, "http_status": None}
    if form.validate():
        filters = {name: (form[name].data or None) for name in filters}
    lines = log_lines(session, me, filters, now)
    brand = accounts.get_brand(session, me, brand_id(me))
    base = settings().public_base_url.rstrip("/")
    found = [o for o in offers.list_offers(session, me, limit=MAX_PAGE) if o.status != "archived"]
    urls = [
        {
            "offer": o,
            "event": e,
            "postback": postback_url(base, o, e, brand.postback_token),
            "pixel": pixel_tag(base, o, e),
        }
        for o in found
        for e in o.events
    ]
    return page_or_block(
        "brand/integration.html",
        "log",
        200 if not form.errors else 400,
        brand=brand,
        urls=urls,
        macros=MACROS,
        example=signing_example(base, found[0], brand.postback_token, now) if found else None,
        window_minutes=int(SIGNATURE_WINDOW.total_seconds() // 60),
        lines=lines,
        form=form,
        live=not any(v is not None for v in filters.values()),
        live_minutes=int(LIVE_WINDOW.total_seconds() // 60),
        refreshed=now,
    )


@blp.route("/integration/rotate", methods=["GET", "POST"])
@role_required(Role.BRAND)
def rotate() -> Any:
    """Ask to confirm (GET), then replace the postback token (POST): the old one stops working at once."""
    form = RotateForm()
    if request.method == "GET" or not form.validate_on_submit():
        return render_template("brand/rotate.html", form=form)
    me = principal()
    accounts.rotate_postback_token(web.session(), me, brand_id(me))
    flash("A new postback token is made: the old one no longer works. Put the new one in your system now.")
    return redirect(url_for(".integration"))
