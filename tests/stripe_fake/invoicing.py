"""Stripe Invoicing for FakeStripe: customers, invoice items, invoices (create, finalize, send, list),
and what tests do in Stripe's place (a brand paying, Stripe voiding). Requests are checked against
the OpenAPI description like every other (server.py's _decide)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import FakeStripe, _Response


def install(fake: FakeStripe) -> None:
    """Add the invoicing endpoints and their state to `fake`."""
    fake._routes.update(
        {
            ("POST", "/v1/customers"): lambda p, params, f: _post_customer(fake, params),
            ("POST", "/v1/invoices"): lambda p, params, f: _post_invoice(fake, params),
            ("GET", "/v1/invoices"): lambda p, params, f: _list(fake, fake.invoices, params, "/v1/invoices"),
            ("GET", "/v1/invoices/{invoice}"): lambda p, params, f: _ok(_invoice(fake, p["invoice"])),
            ("POST", "/v1/invoiceitems"): lambda p, params, f: _post_item(fake, params),
            ("GET", "/v1/invoiceitems"): lambda p, params, f: _list(
                fake, fake.invoice_items, params, "/v1/invoiceitems"
            ),
            ("POST", "/v1/invoices/{invoice}/finalize"): lambda p, params, f: _finalize(fake, p["invoice"]),
            ("POST", "/v1/invoices/{invoice}/send"): lambda p, params, f: _send(fake, p["invoice"]),
        }
    )


def _failure(status: int, message: str, **kwargs: Any) -> Exception:
    from .server import StripeFailure

    return StripeFailure(status, message, **kwargs)


def _ok(body: dict[str, Any]) -> _Response:
    from .server import _Response

    return _Response(200, copy.deepcopy(body))


def _new(prefix: str) -> str:
    from .server import _new_id

    return _new_id(prefix)


def _post_customer(fake: FakeStripe, params: dict[str, Any]) -> _Response:
    customer = {
        "id": _new("cus_"), "object": "customer", "name": params.get("name"), "email": params.get("email"),
        "metadata": dict(params.get("metadata") or {}), "created": int(fake.now), "livemode": False,
    }  # fmt: skip
    fake.customers[customer["id"]] = customer
    return _ok(customer)


def _customer(fake: FakeStripe, customer_id: Any, param: str = "customer") -> dict[str, Any]:
    customer = fake.customers.get(customer_id)
    if customer is None:
        raise _failure(400, f"No such customer: '{customer_id}'", code="resource_missing", param=param)
    return customer


def _invoice(fake: FakeStripe, invoice_id: str) -> dict[str, Any]:
    invoice = fake.invoices.get(invoice_id)
    if invoice is None:
        raise _failure(404, f"No such invoice: '{invoice_id}'", code="resource_missing", param="invoice")
    return invoice


def _post_invoice(fake: FakeStripe, params: dict[str, Any]) -> _Response:
    customer = _customer(fake, params.get("customer"))
    method = params.get("collection_method", "charge_automatically")
    if method == "send_invoice" and "days_until_due" not in params and "due_date" not in params:
        raise _failure(400, "Missing required param: days_until_due.", param="days_until_due")
    invoice = {
        "id": _new("in_"), "object": "invoice", "customer": customer["id"],
        "currency": str(params.get("currency", "usd")).lower(), "status": "draft", "collection_method": method,
        "days_until_due": int(params["days_until_due"]) if "days_until_due" in params else None,
        "auto_advance": str(params.get("auto_advance", "false")).lower() == "true",
        "metadata": dict(params.get("metadata") or {}), "number": None, "hosted_invoice_url": None,
        "amount_due": 0, "amount_paid": 0, "total": 0, "created": int(fake.now), "due_date": None,
        "livemode": False, "sent": False,
    }  # fmt: skip
    fake.invoices[invoice["id"]] = invoice
    return _ok(invoice)


def _post_item(fake: FakeStripe, params: dict[str, Any]) -> _Response:
    customer = _customer(fake, params.get("customer"))
    invoice = _invoice(fake, str(params.get("invoice")))
    if invoice["customer"] != customer["id"]:
        raise _failure(400, "The invoice belongs to another customer.", param="invoice")
    if invoice["status"] != "draft":
        raise _failure(400, "You can only add invoice items to draft invoices.", param="invoice")
    currency = str(params.get("currency", "")).lower()
    if currency != invoice["currency"]:
        raise _failure(400, "The currency of the item must match the invoice's.", param="currency")
    item = {
        "id": _new("ii_"), "object": "invoiceitem", "customer": customer["id"], "invoice": invoice["id"],
        "amount": int(params["amount"]), "currency": currency, "description": params.get("description"),
        "metadata": dict(params.get("metadata") or {}), "date": int(fake.now), "livemode": False,
    }  # fmt: skip
    fake.invoice_items[item["id"]] = item
    invoice["total"] = invoice["amount_due"] = invoice["total"] + item["amount"]
    return _ok(item)


def _finalize(fake: FakeStripe, invoice_id: str) -> _Response:
    invoice = _invoice(fake, invoice_id)
    if invoice["status"] != "draft":
        raise _failure(400, f"This invoice is already finalized: {invoice_id}.", code="invoice_not_editable")
    invoice["status"] = "open"
    invoice["number"] = f"FAKE-{len([i for i in fake.invoices.values() if i['number']]) + 1:04d}"
    invoice["hosted_invoice_url"] = f"https://invoice.stripe.test/i/{invoice_id}"
    invoice["due_date"] = int(fake.now) + 86400 * (invoice["days_until_due"] or 0)
    fake.events.append(fake.event("invoice.finalized", invoice))
    return _ok(invoice)


def _send(fake: FakeStripe, invoice_id: str) -> _Response:
    invoice = _invoice(fake, invoice_id)
    if invoice["status"] != "open" or invoice["collection_method"] != "send_invoice":
        raise _failure(400, "Only open invoices with collection_method send_invoice can be sent.")
    invoice["sent"] = True
    fake.events.append(fake.event("invoice.sent", invoice))
    return _ok(invoice)


def _list(fake: FakeStripe, rows: dict[str, dict[str, Any]], params: dict[str, Any], url: str) -> _Response:
    found = list(reversed(rows.values()))  # newest first
    for name in ("customer", "invoice"):
        if name in params:
            found = [row for row in found if row.get(name) == params[name]]
    limit = int(params.get("limit", 10))
    return _ok({"object": "list", "data": found[:limit], "has_more": len(found) > limit, "url": url})


def settle(fake: FakeStripe, invoice_id: str, status: str = "paid") -> dict[str, Any]:
    """Do in Stripe's place what a brand or Stripe does to an open invoice (paid, void, uncollectible); return it."""
    with fake._lock:
        invoice = fake.invoices[invoice_id]
        invoice["status"] = status
        if status == "paid":
            invoice["amount_paid"], invoice["amount_due"] = invoice["total"], 0
        return copy.deepcopy(invoice)
