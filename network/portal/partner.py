"""The partner's read-mostly pages: home (its figures and earnings per day), conversions, money.

Every number comes from the service the API uses, called with the signed-in user's principal: the
tenant scoping (a partner sees only its own) is the services' code, not the views'.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import DateField, Form, SelectField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional, ValidationError

from network import money, web
from network.auth import Principal, Role
from network.clock import UTC, now_utc
from network.conversions import service as conversions
from network.conversions.schemas import STATUSES, dump_conversion
from network.customers import service as customers
from network.errors import Conflict
from network.offers import service as offers
from network.partners import service as partners
from network.payouts import jobs, ledger
from network.payouts import service as payouts
from network.payouts.schemas import dump_entry, dump_payout
from network.portal.common import principal, role_required, settings
from network.reports import service as reports
from network.schemas import page

blp = Blueprint("partner", __name__, url_prefix="/partner")
#: Coupon codes the coupons page lists at most.
MAX_COUPONS = 200

#: Rows per page of the conversions list and the ledger.
PAGE = 50
#: Days in the earnings chart.
CHART_DAYS = 30


class ConversionFilters(Form):
    """The conversions list's filters: a GET form, so no CSRF token (it changes nothing)."""

    offer_id = SelectField("Offer", default="", validate_choice=False)
    status = SelectField(
        "Status",
        default="",
        choices=[SelectChoice("", "Any status"), *[SelectChoice(s, s.capitalize()) for s in STATUSES]],
    )
    start = DateField("From (UTC day)", [Optional()])
    end = DateField("To (UTC day, included)", [Optional()])
    sub1 = StringField("Sub 1", [Optional(), Length(max=255)])
    sub2 = StringField("Sub 2", [Optional(), Length(max=255)])
    sub3 = StringField("Sub 3", [Optional(), Length(max=255)])
    sub4 = StringField("Sub 4", [Optional(), Length(max=255)])
    sub5 = StringField("Sub 5", [Optional(), Length(max=255)])

    def validate_offer_id(self, field: Any) -> None:
        if field.data and not field.data.isdigit():
            raise ValidationError("choose an offer from the list")

    def validate_end(self, field: Any) -> None:
        if field.data and self.start.data and field.data < self.start.data:
            raise ValidationError("must not be before From")


class ConnectStripeForm(FlaskForm):
    submit = SubmitField("Connect Stripe")


def _partner_id(me: Principal) -> int:
    """The signed-in partner user's partner (every partner user has one)."""
    assert me.partner_id is not None
    return me.partner_id


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


# ---- home ----------------------------------------------------------------------------------------


def _periods(now: dt.datetime) -> list[tuple[str, dt.datetime]]:
    return [
        ("Today", _midnight(now.date())),
        ("Last 7 days", now - dt.timedelta(days=7)),
        ("Last 30 days", now - dt.timedelta(days=30)),
    ]


def _chart(rows: list[dict[str, Any]], first: dt.date) -> dict[str, Any]:
    """Earnings per day and currency, every day of the chart present (zero when nothing was earned)."""
    days = [(first + dt.timedelta(days=i)).isoformat() for i in range(CHART_DAYS)]
    series: dict[str, dict[str, str]] = {}
    for row in rows:
        series.setdefault(row["currency"], {})[row["day"]] = row["payout"]
    return {
        "days": days,
        "series": [
            {"label": f"Earnings ({cur})", "values": [by_day.get(d, money.format_amount(0, cur)) for d in days]}
            for cur, by_day in sorted(series.items())
        ],
    }


@blp.get("/")
@role_required(Role.PARTNER)
def home() -> Any:
    """Today's, 7 and 30 days' clicks, conversions, CR, EPC and earnings, and earnings per day."""
    session, me = web.session(), principal()
    partner = partners.get_partner(session, me, _partner_id(me))
    now = now_utc()
    totals = [(label, reports.report(session, me, start=start, end=now)) for label, start in _periods(now)]
    first = now.date() - dt.timedelta(days=CHART_DAYS - 1)
    daily = reports.report(session, me, start=_midnight(first), end=now, group_by=["day"])
    return render_template(
        "partner/home.html",
        partner=partner,
        totals=totals,
        daily=[r for r in daily if r["clicks"] or r["conversions"]],
        chart=_chart(daily, first),
    )


# ---- conversions ---------------------------------------------------------------------------------


def _offer_choices(session: Any, me: Any) -> list[SelectChoice]:
    listed = offers.list_offers(session, me, limit=PAGE * 4)
    return [SelectChoice("", "Any offer"), *[SelectChoice(str(o.id), f"{o.name} (#{o.id})") for o in listed]]


def _next_url(endpoint: str, items: list[Any], cursor: str) -> str | None:
    """The link to the page after `items` (None on the last page), keeping the request's other arguments."""
    next_after = page(items, PAGE)["next_after"]
    if next_after is None:
        return None
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k != cursor and v}
    return url_for(endpoint, **{**args, cursor: next_after})


def _list_args(form: ConversionFilters) -> dict[str, Any]:
    """The list function's arguments for valid filters (dates are whole UTC days, To included)."""
    args: dict[str, Any] = {
        "offer_id": int(form.offer_id.data) if form.offer_id.data else None,
        "status": form.status.data or None,
        "since": _midnight(form.start.data) if form.start.data else None,
        "until": _midnight(form.end.data + dt.timedelta(days=1)) if form.end.data else None,
        "subs": {n: getattr(form, n).data for n in conversions.SUB_IDS if getattr(form, n).data} or None,
    }
    return args


@blp.get("/conversions")
@role_required(Role.PARTNER)
def conversions_list() -> Any:
    """The partner's conversions, filtered by offer, status, UTC days and sub ids; paged by `after`."""
    session, me = web.session(), principal()
    form = ConversionFilters(request.args)
    form.offer_id.choices = _offer_choices(session, me)
    after = request.args.get("after", type=int)
    if not form.validate():
        return render_template("partner/conversions.html", form=form, items=[], next_url=None), 400
    items = conversions.list_conversions(session, me, **_list_args(form), limit=PAGE, after=after)
    keys = conversions.event_keys(session, [c.event_id for c in items])
    sharing = conversions.brands_sharing_txn_id(session, [c.brand_id for c in items])
    subs = conversions.sub_ids(session, items)
    shown = [
        dump_conversion(c, me, event_key=keys.get(c.event_id, ""), share_txn_id=c.brand_id in sharing)
        | {"subs": subs[c.id]}
        for c in items
    ]
    return render_template(
        "partner/conversions.html", form=form, items=shown, next_url=_next_url(".conversions_list", items, "after")
    )


# ---- money ---------------------------------------------------------------------------------------


def _formatted(row: dict[str, Any]) -> dict[str, Any]:
    cur = row["currency"]
    return {"currency": cur, **{k: money.format_amount(v, cur) for k, v in row.items() if k != "currency"}}


@blp.get("/money")
@role_required(Role.PARTNER)
def money_page() -> Any:
    """Balance per currency, payouts (paged by `payouts_after`) and the ledger (by `after`), Stripe's state."""
    session, me = web.session(), principal()
    partner_id = _partner_id(me)
    partner = partners.get_partner(session, me, partner_id)
    entries = ledger.list_entries(session, me, partner_id, limit=PAGE, after=request.args.get("after", type=int))
    paid = payouts.list_payouts(session, me, limit=PAGE, after=request.args.get("payouts_after", type=int))
    return render_template(
        "partner/money.html",
        partner=partner,
        balances=[_formatted(r) for r in ledger.balances(session, me, partner_id)],
        payouts=[dump_payout(p) for p in paid],
        payouts_next_url=_next_url(".money_page", paid, "payouts_after"),
        entries=[dump_entry(e) for e in entries],
        next_url=_next_url(".money_page", entries, "after"),
        stripe_form=ConnectStripeForm(),
    )


@blp.post("/money/stripe")
@role_required(Role.PARTNER)
def connect_stripe() -> Any:
    """Start (or resume) Stripe Express onboarding and send the partner to Stripe's link."""
    if not ConnectStripeForm().validate_on_submit():
        abort(400)
    session, me = web.session(), principal()
    back = settings().public_base_url.rstrip("/") + url_for(".money_page")
    gateway = jobs.make_gateway(settings())
    try:
        start = payouts.start_onboarding(session, me, _partner_id(me))
        web.commit_before_calling_out()
        started = payouts.stripe_onboarding(
            session,
            me,
            start,
            gateway=gateway,
            refresh_url=back,
            return_url=back,
        )
    except Conflict as exc:
        if exc.code != "stripe_not_configured":
            raise
        flash("Payouts on this network are sent by hand: there is no Stripe account to connect.")
        return redirect(url_for(".money_page"))
    finally:
        jobs.close_gateway(gateway)
    return redirect(started["url"])


@blp.get("/coupons")
@role_required(Role.PARTNER)
def coupons_page() -> Any:
    """The coupon codes brands assigned to the partner: its sales through them are its conversions."""
    session, me = web.session(), principal()
    items = customers.list_coupons(session, me, limit=MAX_COUPONS)
    names = {o.id: o.name for o in offers.list_offers(session, me, limit=MAX_COUPONS)}
    return render_template("partner/coupons.html", coupons=items, names=names)
