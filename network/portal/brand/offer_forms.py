"""The offer form: every field of an offer (SPEC §3) with what it means, turned into the API's own input.

The form checks nothing itself: `offer_input` builds the dict the API receives, which the API's schema
(`OfferCreateSchema`, `OfferUpdateSchema`) and then the offers service validate; `show_errors` puts each
of their messages beside the field it names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from wtforms import (
    FieldList,
    Form,
    FormField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.widgets import CheckboxInput, ListWidget

from network.offers.schemas import DEVICES, OfferCreateSchema, OfferUpdateSchema
from network.portal.brand.common import choices

MODELS = [
    ("cpa", "CPA: a flat amount per action"),
    ("cpl", "CPL: a flat amount per lead"),
    ("cpi", "CPI: a flat amount per install"),
    ("revshare", "Revenue share: a percent of the sale amount"),
    ("hybrid", "Hybrid: a flat amount plus a percent of the sale"),
]
_NUMERIC = {"inputmode": "numeric"}
_DECIMAL = {"inputmode": "decimal"}
#: The offer's own settings, in the order the API lists them (events and caps apart).
TEXT_FIELDS = ("name", "destination_url", "visibility", "fallback_url")
INTEGER_FIELDS = ("conversion_window_days", "hold_days", "min_seconds")
PRICE_FIELDS = ("click_payout", "click_revenue", "impression_payout", "impression_revenue")
EVENT_FIGURES = ("payout", "revenue", "payout_percent", "revenue_percent")


#: The fraud flags an offer may hold conversions for (offers.rules.FLAGS), as the form names them.
HOLD_FLAG_CHOICES = [
    ("too_fast", "too_fast: sooner than twice the minimum seconds"),
    ("bot", "bot: the click looked like a bot"),
    ("repeat_visitor", "repeat_visitor: the visitor had clicked the link in the 24 hours before"),
    ("pixel", "pixel: reported by the browser pixel, not your server"),
    ("self_referral", "self_referral: the click came from the partner's own address"),
    ("anomaly", "anomaly: the partner's conversion rate or speed is far from the offer's"),
]


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class EventForm(Form):
    key = StringField(
        "Event key", description="What your postbacks send as event=… (sale, lead). The first event is the default."
    )
    model = SelectField("Commission model", choices=choices(MODELS))
    payout = StringField(
        "Partner payout, flat", render_kw=_DECIMAL, description="What the partner earns per approved conversion."
    )
    revenue = StringField(
        "Your price, flat", render_kw=_DECIMAL, description="What you pay the network per approved conversion."
    )
    payout_percent = StringField(
        "Partner payout, % of the sale", render_kw=_DECIMAL, description="Revenue share and hybrid: 10 means 10 %."
    )
    revenue_percent = StringField(
        "Your price, % of the sale", render_kw=_DECIMAL, description="Revenue share and hybrid: at least the payout."
    )


class CapForm(Form):
    metric = SelectField(
        "What is capped",
        choices=choices(
            [
                ("", "No cap (remove)"),
                ("conversions", "Conversions"),
                ("payout", "Payout (an amount)"),
                ("clicks", "Clicks"),
            ]
        ),
    )
    period = SelectField(
        "Per",
        choices=choices([("day", "Day"), ("week", "Week (from Monday)"), ("month", "Month"), ("lifetime", "Lifetime")]),
    )
    limit = StringField("Limit", render_kw=_DECIMAL, description="A count, or an amount like 500.00 for payout.")
    scope = SelectField("Counted", choices=choices([("offer", "For the whole offer"), ("partner", "For each partner")]))


class OfferForm(FlaskForm):
    name = StringField("Name", description="What partners see in their offer list.")
    destination_url = StringField(
        "Destination URL",
        description="Where clicks go. Macros: {click_id}, {offer_id}, {partner_id}, {link_id}, {sub1}…{sub5}; "
        "click_id=… is added when the URL has no {click_id}.",
    )
    allowed_domains = TextAreaField(
        "Deep-link domains", description="One host per line: a partner's deep link (url=…) may go only to these."
    )
    currency = StringField("Currency", description="ISO 4217 code; every conversion and payout of the offer is in it.")
    visibility = SelectField(
        "Visibility",
        choices=choices(
            [
                ("public", "Public: any active partner may take links"),
                ("approval", "Approval: partners apply, you approve"),
                ("private", "Private: only partners you invite"),
            ]
        ),
    )
    conversion_window_days = StringField(
        "Conversion window (days)", render_kw=_NUMERIC, description="A conversion later than this after its click "
        "is rejected out_of_window (default 30).",
    )  # fmt: skip
    hold_days = StringField(
        "Hold (days)", render_kw=_NUMERIC, description="Conversions stay pending this long, then are approved "
        "unless you reject them (default 0: approved at once).",
    )  # fmt: skip
    min_seconds = StringField(
        "Minimum seconds after the click", render_kw=_NUMERIC, description="A conversion sooner than this is "
        "rejected too_fast; one within twice this is flagged for review (default 0).",
    )  # fmt: skip
    countries = StringField(
        "Countries", description="Two-letter codes separated by commas (US, CA); empty means everywhere."
    )
    devices = MultiCheckboxField(
        "Devices (none ticked means all)", choices=choices((d, d.capitalize()) for d in DEVICES)
    )
    fallback_url = StringField(
        "Fallback URL", description="Where clicks go when the offer is paused, capped or outside its targeting "
        "(empty: a plain 404 page).",
    )  # fmt: skip
    click_payout = StringField("CPC: partner payout per click", render_kw=_DECIMAL,
                               description="Paid per unique, non-bot click; empty or 0 for none.")  # fmt: skip
    click_revenue = StringField("CPC: your price per click", render_kw=_DECIMAL)
    impression_payout = StringField("CPM: partner payout per 1,000 impressions", render_kw=_DECIMAL)
    impression_revenue = StringField("CPM: your price per 1,000 impressions", render_kw=_DECIMAL)
    events = FieldList(FormField(EventForm), min_entries=1)
    caps = FieldList(FormField(CapForm))
    add_event = SubmitField("Add an event")
    add_cap = SubmitField("Add a cap")
    submit = SubmitField("Save the offer")
    attribution = SelectField(
        "Attribution",
        choices=choices(
            [
                ("last_click", "Last click: the click the conversion names"),
                ("first_click", "First click: the visitor's earliest click on this offer in the window"),
            ]
        ),
        default="last_click",
        description="First click may credit another partner, whose link the visitor clicked first.",
    )
    hold_flags = MultiCheckboxField(
        "Fraud flags that hold a conversion for your review", choices=choices(HOLD_FLAG_CHOICES)
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Messages about the events or caps as a whole ("an offer needs at least one event").
        self.list_errors: dict[str, list[str]] = {}


def _lines(text: str | None) -> list[str]:
    return [part.strip() for part in re.split(r"[\s,]+", text or "") if part.strip()]


def _integer(text: str | None) -> Any:
    value = (text or "").strip()
    # Digits become the JSON integer the API expects; anything else goes as typed, for the API to refuse.
    return int(value) if value.isascii() and value.isdigit() else value


def _events(form: OfferForm) -> tuple[list[dict[str, Any]], list[int]]:
    """The events the form gives (blank rows left out) and the form row of each."""
    events, rows = [], []
    for index, entry in enumerate(form.events.entries):
        sub = entry.form
        figures = {name: (sub[name].data or "").strip() for name in EVENT_FIGURES}
        key = (sub.key.data or "").strip()
        if not key and not any(figures.values()):
            continue
        events.append({"key": key, "model": sub.model.data, **{k: v for k, v in figures.items() if v}})
        rows.append(index)
    return events, rows


def _caps(form: OfferForm) -> tuple[list[dict[str, Any]], list[int]]:
    caps, rows = [], []
    for index, entry in enumerate(form.caps.entries):
        sub = entry.form
        if not sub.metric.data:
            continue
        caps.append({"metric": sub.metric.data, "period": sub.period.data, "limit": (sub.limit.data or "").strip(),
                     "scope": sub.scope.data})  # fmt: skip
        rows.append(index)
    return caps, rows


def _review_settings(form: OfferForm) -> dict[str, Any]:
    """The attribution rule and the flags that hold a conversion for review, as the API takes them."""
    return {"attribution": form.attribution.data or "last_click", "hold_flags": list(form.hold_flags.data or [])}


def offer_input(form: OfferForm, *, creating: bool) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """Return the API's input for the form (not yet validated) and, for events and caps, each item's form row."""
    data: dict[str, Any] = {name: (form[name].data or "").strip() for name in TEXT_FIELDS}
    data["fallback_url"] = data["fallback_url"] or None
    data |= {name: _integer(form[name].data) for name in INTEGER_FIELDS}
    data["allowed_domains"] = _lines(form.allowed_domains.data)
    data["countries"] = [c.upper() for c in _lines(form.countries.data)]
    data["devices"] = list(form.devices.data or [])
    for name in PRICE_FIELDS:
        value = (form[name].data or "").strip()
        if value or not creating:
            data[name] = value or "0"  # an emptied price is no price
    if creating and (form.currency.data or "").strip():
        data["currency"] = form.currency.data.strip().upper()
    data |= _review_settings(form)
    data["events"], event_rows = _events(form)
    data["caps"], cap_rows = _caps(form)
    return data, {"events": event_rows, "caps": cap_rows}


def load(data: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """Validate the input with the API's own schema (raises marshmallow's ValidationError)."""
    schema = OfferCreateSchema() if creating else OfferUpdateSchema()
    return schema.load(data)  # type: ignore[no-any-return]


def flatten(messages: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Yield (field path, message) from marshmallow's nested messages: ("events[0].model", "Must be one of…")."""
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            path = f"{prefix}[{key}]" if isinstance(key, int) else (f"{prefix}.{key}" if prefix else str(key))
            yield from flatten(value, path)
    elif isinstance(messages, list | tuple):
        for message in messages:
            yield from flatten(message, prefix)
    else:
        yield prefix, str(messages)


_ITEM = re.compile(r"^(events|caps)\[(\d+)\](?:\.(\w+))?")


def _target(form: OfferForm, path: str, rows: Mapping[str, list[int]]) -> Any:
    """The form field a path of the API names, or None for the form as a whole."""
    item = _ITEM.match(path)
    if item is not None:
        kind, index, name = item.group(1), int(item.group(2)), item.group(3)
        if index >= len(rows[kind]):
            return form[kind]
        sub = form[kind].entries[rows[kind][index]].form
        return sub._fields.get(name or "") or sub[("key" if kind == "events" else "metric")]
    name = re.sub(r"\[.*$", "", path)
    return form._fields.get(name)


def show_errors(form: OfferForm, problems: Any, rows: Mapping[str, list[int]]) -> None:
    """Put each message beside the field it names: marshmallow's messages, or a service's (field, message)."""
    pairs = list(flatten(problems.messages)) if isinstance(problems, SchemaError) else [problems]
    for path, message in pairs:
        field = _target(form, path or "", rows)
        if field is None:
            form.form_errors.append(message)
        elif isinstance(field, FieldList):
            form.list_errors.setdefault(field.name, []).append(message)
        else:
            field.errors = [*field.errors, message]


def prefill(offer: Mapping[str, Any]) -> dict[str, Any]:
    """The form's data for an offer as the API dumps it (`dump_offer`)."""
    data = dict(offer)
    data["allowed_domains"] = "\n".join(offer["allowed_domains"])
    data["countries"] = ", ".join(offer["countries"])
    data |= {name: str(offer[name]) for name in INTEGER_FIELDS}
    data["caps"] = [dict(cap, limit=str(cap["limit"])) for cap in offer.get("caps", [])]
    return data
