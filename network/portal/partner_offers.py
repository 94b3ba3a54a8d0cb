"""The partner's working pages: offers (apply), the link builder and its links, postback settings and tests.

Each view reads and writes through the services the API uses, as the signed-in partner's principal, so what
a partner sees here is what its API key would see. Fragments for htmx are blocks of the page's own template
(`render_block`): a request with `HX-Request` gets the block, any other the whole page, and every form also
works as a plain POST.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from network import web
from network.auth import Role
from network.db import DEFAULT_PAGE
from network.deliveries import rules as delivery_rules
from network.deliveries import sender
from network.deliveries import service as deliveries
from network.errors import DomainError, ValidationError
from network.offers import service as offers
from network.offers.models import Offer
from network.offers.schemas import dump_offer
from network.partners import service as partners
from network.portal import offer_words
from network.portal.common import principal, role_required, settings
from network.portal.partner_forms import ApplyForm, LinkForm, PostbackForm, PostbackTestForm, int_or_none
from network.tracking import service as tracking
from network.tracking.schemas import dump_link

blp = Blueprint("partner_offers", __name__, url_prefix="/partner")

#: What each postback macro stands for, in the order the settings page lists them.
MACROS = {
    "click_id": "The click's id: the one your tracker passed in the link (or ours).",
    "conversion_id": "Our id of the conversion: the same on each status change.",
    "offer_id": "The offer's id.",
    "event": "The offer event that converted (sale, lead...).",
    "payout": "Your payout for this conversion, a decimal amount (2.50).",
    "currency": "The payout's currency (USD).",
    "status": "The conversion's status now: pending, approved, rejected...",
    **{name: f"The {name} of the click, or the link's default {name}." for name in delivery_rules.SUB_NAMES},
    "txn_id": "The brand's own transaction id, when the brand shares it.",
}


def render_block(template_name: str, block_name: str, **context: Any) -> str:
    """Render one block of a template with the page's context: the fragment an htmx request swaps in."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    template = app.jinja_env.get_or_select_template(template_name)
    app.update_template_context(context)
    return "".join(template.blocks[block_name](template.new_context(context)))


def _htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def _after() -> int | None:
    value = request.args.get("after", "")
    return int(value) if value.isdigit() else None


# ---- offers --------------------------------------------------------------------------------------


def _offer_rows(found: Sequence[Offer]) -> list[dict[str, Any]]:
    """Return the offers as the API shows them to this partner, with their terms in words and its application."""
    me = principal()
    assert me.partner_id is not None
    session = web.session()
    views = offers.partner_views(session, found, me.partner_id)
    applications = offers.partner_applications(session, me, [o.id for o in found])
    rows = []
    for offer in found:
        out = dump_offer(offer, me, can_run=views[offer.id][0], overrides=views[offer.id][1])
        out["terms"] = offer_words.terms(out, offer.caps)
        out["application"] = applications.get(offer.id)
        rows.append(out)
    return rows


@blp.get("/offers")
@role_required(Role.PARTNER)
def offer_list() -> Any:
    """The offers the partner can run or apply to, its payouts, caps and targeting in words."""
    found = offers.list_offers(web.session(), principal(), status="active", after=_after())
    rows = _offer_rows(found)
    more = len(found) == DEFAULT_PAGE
    return render_template(
        "partner/offers.html",
        offers=rows,
        apply_form=ApplyForm(formdata=None),
        next_after=found[-1].id if more else None,
    )


@blp.post("/offers/<int:offer_id>/apply")
@role_required(Role.PARTNER)
def apply(offer_id: int) -> Any:
    """Apply to an approval offer; the application is pending until its brand decides."""
    access = offers.apply_to_offer(web.session(), principal(), offer_id)
    flash(f"Your application is {access.status}.")
    return redirect(url_for("portal.partner_offers.offer_list"))


# ---- links ---------------------------------------------------------------------------------------


def _runnable() -> list[Offer]:
    me = principal()
    assert me.partner_id is not None
    session = web.session()
    found = offers.list_offers(session, me, status="active")
    views = offers.partner_views(session, found, me.partner_id)
    return [offer for offer in found if views[offer.id][0]]


def _link_form(runnable: Sequence[Offer], formdata: Any = None) -> LinkForm:
    form = LinkForm(formdata=formdata)
    form.offer_id.choices = [("", "Pick an offer")] + [(o.id, f"{o.name} (#{o.id})") for o in runnable]
    return form


def _links_page(form: LinkForm, runnable: Sequence[Offer], made: dict[str, Any] | None, status: int = 200) -> Any:
    session, me = web.session(), principal()
    base = settings().public_base_url
    links = tracking.list_links(session, me, after=_after())
    clicks = tracking.click_counts(session, me, [link.id for link in links])
    names = {o.id: o.name for o in runnable}
    rows = [dict(dump_link(link, base), clicks=clicks[link.id], offer_name=names.get(link.offer_id)) for link in links]
    context = {
        "form": form,
        "made": made,
        "links": rows,
        "next_after": links[-1].id if len(links) == DEFAULT_PAGE else None,
    }
    if _htmx():
        return render_block("partner/links.html", "result", **context), status
    return render_template("partner/links.html", **context), status


@blp.get("/links")
@role_required(Role.PARTNER)
def links() -> Any:
    """The link builder and the partner's links with their clicks."""
    runnable = _runnable()
    form = _link_form(runnable)
    form.offer_id.data = int_or_none(request.args.get("offer"))
    return _links_page(form, runnable, None)


@blp.post("/links")
@role_required(Role.PARTNER)
def build_link() -> Any:
    """Create a tracking link; a refused deep link is named beside its field."""
    runnable = _runnable()
    form = _link_form(runnable, request.form)
    if not form.validate():
        return _links_page(form, runnable, None, 422)
    subs = {name: (getattr(form, name).data or "").strip() or None for name in ("sub1", "sub2", "sub3", "sub4", "sub5")}
    try:
        link = tracking.create_link(
            web.session(), principal(), offer_id=form.offer_id.data, deep_link=form.deep_link.data or None, **subs
        )
    except ValidationError as exc:
        field = getattr(form, exc.field or "", None) or form.offer_id
        field.errors = [*field.errors, exc.message]
        return _links_page(form, runnable, None, 422)
    made = dump_link(link, settings().public_base_url)
    return _links_page(_link_form(runnable), runnable, made, 201 if _htmx() else 200)


# ---- postbacks -----------------------------------------------------------------------------------


def _postbacks_page(form: PostbackForm, test: dict[str, Any] | None, status: int = 200) -> Any:
    session, me = web.session(), principal()
    partner = partners.get_partner(session, me, current_user.partner_id)
    if form.postback_url.data is None and not form.errors:
        form.postback_url.data = partner.postback_url or ""
        form.postback_method.data = partner.postback_method
    log = deliveries.list_deliveries(session, me, after=_after())
    context = {
        "form": form,
        "test_form": PostbackTestForm(formdata=None),
        "test": test,
        "partner": partner,
        "macros": MACROS,
        "deliveries": log,
        "next_after": log[-1].id if len(log) == DEFAULT_PAGE else None,
    }
    if _htmx() and test is not None:
        return render_block("partner/postbacks.html", "test_result", **context), status
    return render_template("partner/postbacks.html", **context), status


@blp.get("/postbacks")
@role_required(Role.PARTNER)
def postbacks() -> Any:
    """The postback URL and method, the macros, a test button and the delivery log."""
    return _postbacks_page(PostbackForm(formdata=None), None)


@blp.post("/postbacks")
@role_required(Role.PARTNER)
def save_postback() -> Any:
    """Save the postback URL and method through the partners service (its URL safety check included)."""
    form = PostbackForm(request.form)
    if not form.validate():
        return _postbacks_page(form, None, 422)
    try:
        partners.update_partner(
            web.session(),
            principal(),
            current_user.partner_id,
            allow_http=settings().postback_allow_http,
            allowed_networks=settings().postback_allowed_networks,
            postback_url=(form.postback_url.data or "").strip() or None,
            postback_method=form.postback_method.data,
        )
    except ValidationError as exc:
        form.postback_url.errors = [exc.message]
        return _postbacks_page(form, None, 422)
    flash("Postback settings saved.")
    return redirect(url_for("portal.partner_offers.postbacks"))


@blp.post("/postbacks/test")
@role_required(Role.PARTNER)
def test_postback() -> Any:
    """Call the postback URL now with test values; show how it answered, or why it was not called."""
    session, me = web.session(), principal()
    try:
        plan = deliveries.plan_test(session, me, current_user.partner_id)
    except DomainError as exc:
        return _postbacks_page(PostbackForm(formdata=None), {"refused": exc.message, "code": exc.code})
    web.commit_before_calling_out()  # no transaction stays open while the partner answers (RELIABILITY.md 15)
    result = deliveries.fire_test(plan, sender.Transport.from_settings(settings()))
    result = deliveries.after_test(session, plan, result)
    return _postbacks_page(PostbackForm(formdata=None), asdict(result) | {"refused": None})
