"""Stripe Invoicing through the official SDK: the only billing module importing stripe.

Every call that creates something carries an idempotency key derived from our row ids, so a retry
(a timeout, a killed process) within Stripe's 24-hour window gets the same object back."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import stripe

log = logging.getLogger(__name__)


class InvoicingError(Exception):
    """A Stripe call that did not complete. `unknown`: Stripe may have applied it (retry with the same key)."""

    def __init__(self, message: str, *, unknown: bool) -> None:
        super().__init__(message)
        self.unknown = unknown


@dataclass(frozen=True)
class RemoteInvoice:
    """What we keep of a Stripe invoice."""

    id: str
    status: str
    hosted_url: str | None


def _error(exc: stripe.StripeError) -> InvoicingError:
    """Return a short, secret-free error; a refusal (4xx) is known not to have applied."""
    refused = (stripe.InvalidRequestError, stripe.CardError, stripe.AuthenticationError, stripe.PermissionError)
    code = getattr(exc.error, "code", None) or exc.code or type(exc).__name__
    status = f"HTTP {exc.http_status} " if exc.http_status else ""
    return InvoicingError(f"{status}{code}: {exc.user_message or ''}"[:300], unknown=not isinstance(exc, refused))


def _metadata(obj: Any) -> dict[str, Any]:
    """Return a Stripe object's metadata as a dict."""
    metadata = getattr(obj, "metadata", None)
    return dict(metadata.to_dict()) if metadata is not None else {}


class StripeInvoicing:
    """Customers, invoice items and invoices (send_invoice collection) on one Stripe account."""

    name = "stripe"

    def __init__(self, *, api_key: str, api_base: str | None = None, timeout_seconds: float = 10.0) -> None:
        self._http = stripe.RequestsClient(timeout=timeout_seconds)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")} if api_base else None,
            # Our recovery retries with the same keys, so the SDK must not.
            max_network_retries=0,
            http_client=self._http,
        )

    def close(self) -> None:
        """Close this thread's pooled HTTP connections."""
        self._http.close()  # type: ignore[no-untyped-call]

    def _call(self, what: str, call: Any) -> Any:
        try:
            return call()
        except stripe.StripeError as exc:
            error = _error(exc)
        except Exception as exc:  # noqa: BLE001 - money: anything unexpected may have applied
            error = InvoicingError(f"unexpected error ({type(exc).__name__})", unknown=True)
        log.warning("stripe invoicing: %s failed: %s", what, error)
        raise error

    def create_customer(self, *, brand_id: int, name: str, email: str | None) -> str:
        """Create the brand's Customer (once: keyed by the brand); return its id."""
        params: dict[str, Any] = {"name": name, "metadata": {"brand_id": str(brand_id)}}
        if email:
            params["email"] = email
        customer = self._call(
            "customer",
            lambda: self._client.v1.customers.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"customer-brand-{brand_id}"},
            ),
        )
        return str(customer.id)

    def create_invoice(self, *, invoice_id: int, customer: str, currency: str, days_until_due: int) -> RemoteInvoice:
        """Create the draft invoice there, collected by sending it, due after the brand's terms."""
        remote = self._call(
            "invoice",
            lambda: self._client.v1.invoices.create(
                params={
                    "customer": customer,
                    "currency": currency.lower(),
                    "collection_method": "send_invoice",
                    "days_until_due": days_until_due,
                    "auto_advance": False,
                    # Only the items we add to it by its id, never the customer's other pending items.
                    "pending_invoice_items_behavior": "exclude",
                    "metadata": {"invoice_id": str(invoice_id)},
                },
                options={"idempotency_key": f"invoice-{invoice_id}"},
            ),
        )
        return RemoteInvoice(str(remote.id), str(remote.status), remote.hosted_invoice_url)

    def find_invoice(self, *, invoice_id: int, customer: str) -> RemoteInvoice | None:
        """Find the Stripe invoice made for ours (after the key window); None only when certainly none exists."""
        page = self._call(
            "list invoices", lambda: self._client.v1.invoices.list(params={"customer": customer, "limit": 100})
        )
        for remote in page.data:
            if _metadata(remote).get("invoice_id") == str(invoice_id):
                return RemoteInvoice(str(remote.id), str(remote.status), remote.hosted_invoice_url)
        if page.has_more:
            raise InvoicingError("too many invoices to be sure none is ours", unknown=True)
        return None

    def item_lines(self, *, remote_id: str) -> set[str]:
        """Return the ids of our lines already on the Stripe invoice (their metadata's line_id)."""
        page = self._call(
            "list items", lambda: self._client.v1.invoice_items.list(params={"invoice": remote_id, "limit": 100})
        )
        return {str(_metadata(item).get("line_id")) for item in page.data}

    def add_item(
        self, *, invoice_id: int, line_id: int, customer: str, remote_id: str, amount: int, currency: str, text: str
    ) -> None:
        """Add one of our invoice lines to the Stripe invoice (keyed by the line)."""
        self._call(
            "item",
            lambda: self._client.v1.invoice_items.create(
                params={
                    "customer": customer, "invoice": remote_id, "amount": amount, "currency": currency.lower(),
                    "description": text[:500], "metadata": {"invoice_id": str(invoice_id), "line_id": str(line_id)},
                },
                options={"idempotency_key": f"invoice-{invoice_id}-line-{line_id}"},
            ),
        )  # fmt: skip

    def finalize(self, *, invoice_id: int, remote_id: str) -> RemoteInvoice:
        """Finalize the Stripe invoice (it gets its hosted page)."""
        remote = self._call(
            "finalize",
            lambda: self._client.v1.invoices.finalize_invoice(
                remote_id, options={"idempotency_key": f"invoice-{invoice_id}-finalize"}
            ),
        )
        return RemoteInvoice(str(remote.id), str(remote.status), remote.hosted_invoice_url)

    def send(self, *, invoice_id: int, remote_id: str) -> None:
        """Have Stripe e-mail the invoice to the brand."""
        self._call(
            "send",
            lambda: self._client.v1.invoices.send_invoice(
                remote_id, options={"idempotency_key": f"invoice-{invoice_id}-send"}
            ),
        )

    def retrieve(self, *, remote_id: str) -> RemoteInvoice:
        """Read the Stripe invoice as it is now."""
        remote = self._call("retrieve", lambda: self._client.v1.invoices.retrieve(remote_id))
        return RemoteInvoice(str(remote.id), str(remote.status), remote.hosted_invoice_url)
