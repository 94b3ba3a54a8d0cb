"""Payout gateways: the only module in `network` that talks to Stripe."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import stripe

if TYPE_CHECKING:
    from stripe.params import AccountCreateParams, TransferCreateParams

log = logging.getLogger(__name__)

Outcome = Literal["paid", "failed", "unknown"]

# Stripe's limits on metadata and idempotency keys (checked before any call).
_MAX_METADATA_KEYS = 50
_MAX_METADATA_KEY_LENGTH = 40
_MAX_METADATA_VALUE_LENGTH = 500
_MAX_IDEMPOTENCY_KEY_LENGTH = 255
_MAX_REASON_LENGTH = 300
_SECRET_RE = re.compile(r"\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9*]+|\bwhsec_[A-Za-z0-9*]+")


class GatewayError(Exception):
    """A gateway call that did not complete; the message holds no secrets."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class GatewayUnsupported(GatewayError):
    """The configured gateway cannot do this (e.g. onboarding with manual payouts)."""


class InvalidWebhook(Exception):
    """A webhook whose signature, age or body is not acceptable."""


@dataclass(frozen=True)
class TransferRequest:
    """One transfer to a connected account, keyed for exactly-once delivery."""

    amount_minor: int
    currency: str
    destination: str
    idempotency_key: str
    transfer_group: str
    # Left out of the hash so the frozen request stays hashable despite the dict.
    metadata: dict[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Bad input is a caller bug: refuse before anything leaves the process.
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise ValueError("amount_minor must be an int")
        if self.amount_minor <= 0:
            raise ValueError("amount_minor must be positive")
        if not re.fullmatch(r"[A-Za-z]{3}", self.currency):
            raise ValueError("currency must be a 3-letter ISO code")
        if not self.destination:
            raise ValueError("destination is required")
        if not 0 < len(self.idempotency_key) <= _MAX_IDEMPOTENCY_KEY_LENGTH:
            raise ValueError("idempotency_key must be 1-255 characters")
        if not self.transfer_group:
            raise ValueError("transfer_group is required")
        _check_metadata(self.metadata)


def _check_metadata(metadata: dict[str, str]) -> None:
    """Refuse metadata Stripe would refuse: too many keys, long or bracketed keys, long or non-text values."""
    if len(metadata) > _MAX_METADATA_KEYS:
        raise ValueError("metadata has more than 50 keys")
    for key, value in metadata.items():
        if not isinstance(key, str) or not 0 < len(key) <= _MAX_METADATA_KEY_LENGTH:
            raise ValueError("metadata keys must be 1-40 character strings")
        if "[" in key or "]" in key:
            raise ValueError("metadata keys cannot contain square brackets")
        if not isinstance(value, str) or len(value) > _MAX_METADATA_VALUE_LENGTH:
            raise ValueError("metadata values must be strings of at most 500 characters")


@dataclass(frozen=True)
class TransferResult:
    """What happened to a transfer; "unknown" means retry with the same key."""

    outcome: Outcome
    reference: str | None
    reason: str | None


class PayoutGateway(Protocol):
    """Moves money to partners; implementations never raise on transfer()."""

    name: str

    def create_account(self, *, partner_id: str, email: str | None, country: str | None = None) -> str:
        """Create a connected account for a partner and return its id."""
        ...

    def onboarding_link(self, *, account_id: str, refresh_url: str, return_url: str) -> str:
        """Return a one-time URL where the partner completes onboarding."""
        ...

    def transfer(self, request: TransferRequest) -> TransferResult:
        """Send a transfer; the same idempotency key never pays twice."""
        ...

    def find_transfer(self, *, transfer_group: str) -> TransferResult | None:
        """Look a transfer up by group; None only when certainly none exists."""
        ...

    def parse_webhook(self, *, payload: bytes, signature: str | None) -> dict[str, Any]:
        """Verify and decode a webhook; raise InvalidWebhook if it is not genuine."""
        ...


def _redact(text: str) -> str:
    """Remove anything shaped like a Stripe key or webhook secret, and cap the length."""
    return _SECRET_RE.sub("[redacted]", text)[:_MAX_REASON_LENGTH]


def _describe(exc: stripe.StripeError) -> str:
    """Return a short, secret-free reason such as 'balance_insufficient: You have ...'."""
    if isinstance(exc, stripe.APIConnectionError):
        cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else "unknown"
        return f"network error ({cause})"
    error = exc.error
    code = getattr(error, "code", None) or exc.code
    kind = getattr(error, "type", None)
    label = code or kind or type(exc).__name__
    status = f"HTTP {exc.http_status} " if exc.http_status else ""
    message = exc.user_message or ""
    return _redact(f"{status}{label}: {message}".strip())


def _is_unknown(exc: stripe.StripeError) -> bool:
    """Say whether Stripe may have applied the request (so it must not count as failed)."""
    if isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError, stripe.IdempotencyError)):
        return True
    # 4xx refusals mean nothing was transferred; anything else (5xx, 409 for a
    # concurrent request with the same key, unexpected errors) may have applied.
    refused = (stripe.InvalidRequestError, stripe.CardError, stripe.AuthenticationError, stripe.PermissionError)
    return not isinstance(exc, refused)


class StripeGateway:
    """Stripe Connect transfers through the official SDK."""

    name: str = "stripe"

    def __init__(
        self,
        *,
        api_key: str,
        api_base: str | None = None,
        webhook_secret: str | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        if not api_key:
            raise ValueError("Stripe API key is empty")
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self._api_base = api_base.rstrip("/") if api_base else None
        self._timeout = timeout_seconds
        self._webhook_secret = webhook_secret or None
        # The default urllib client has no timeout; requests does.
        self._http = stripe.RequestsClient(timeout=timeout_seconds)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": self._api_base} if self._api_base else None,
            # Recovery retries with the same idempotency key, so the SDK must not.
            max_network_retries=0,
            http_client=self._http,
        )

    def __repr__(self) -> str:
        return f"StripeGateway(api_base={self._api_base!r}, timeout_seconds={self._timeout})"

    def close(self) -> None:
        """Close this thread's pooled HTTP connections."""
        self._http.close()  # type: ignore[no-untyped-call]

    def create_account(self, *, partner_id: str, email: str | None, country: str | None = None) -> str:
        """Create an Express account able to receive transfers; return acct_ id."""
        params: AccountCreateParams = {
            "type": "express",
            "capabilities": {"transfers": {"requested": True}},
            "metadata": {"partner_id": str(partner_id)},
        }
        if email:
            params["email"] = email
        if country:
            params["country"] = country.upper()
        # A retry within Stripe's 24 h window returns the same account, not a second one.
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
        key = f"create-account:{partner_id}:{digest}"
        try:
            account = self._client.v1.accounts.create(
                params=params,
                options={"idempotency_key": key},
            )
        except stripe.StripeError as exc:
            reason = _describe(exc)
            log.warning("stripe account creation failed for partner %s: %s", partner_id, reason)
            raise GatewayError(reason, retryable=_is_unknown(exc)) from None
        return str(account.id)

    def onboarding_link(self, *, account_id: str, refresh_url: str, return_url: str) -> str:
        """Return Stripe's hosted onboarding URL for the account."""
        try:
            link = self._client.v1.account_links.create(
                params={
                    "account": account_id,
                    "refresh_url": refresh_url,
                    "return_url": return_url,
                    "type": "account_onboarding",
                }
            )
        except stripe.StripeError as exc:
            reason = _describe(exc)
            log.warning("stripe onboarding link failed for %s: %s", account_id, reason)
            raise GatewayError(reason, retryable=_is_unknown(exc)) from None
        return str(link.url)

    def transfer(self, request: TransferRequest) -> TransferResult:
        """Create the transfer with the request's idempotency key; never raises."""
        if not request.destination.startswith("acct_"):
            return TransferResult("failed", None, "destination is not a Stripe account id")
        currency = request.currency.lower()
        params: TransferCreateParams = {
            "amount": request.amount_minor,
            "currency": currency,
            "destination": request.destination,
            "transfer_group": request.transfer_group,
            "metadata": dict(request.metadata),
        }
        try:
            transfer = self._client.v1.transfers.create(
                params=params,
                options={"idempotency_key": request.idempotency_key},
            )
        except stripe.StripeError as exc:
            outcome: Outcome = "unknown" if _is_unknown(exc) else "failed"
            result = TransferResult(outcome, None, _describe(exc))
        except Exception as exc:  # noqa: BLE001 - money: anything unexpected is "unknown"
            result = TransferResult("unknown", None, f"unexpected error ({type(exc).__name__})")
        else:
            result = self._check_transfer(transfer, request, currency)
        log.info(
            "stripe transfer group=%s outcome=%s reference=%s reason=%s",
            request.transfer_group,
            result.outcome,
            result.reference,
            result.reason,
        )
        return result

    @staticmethod
    def _check_transfer(transfer: stripe.Transfer, request: TransferRequest, currency: str) -> TransferResult:
        """Turn Stripe's answer into a result, distrusting one that does not match."""
        if (
            transfer.amount != request.amount_minor
            or transfer.currency != currency
            or transfer.destination != request.destination
        ):
            # Cannot happen with a correctly used key; flag it rather than guess.
            return TransferResult("unknown", transfer.id, "Stripe returned a transfer that does not match")
        return TransferResult("paid", transfer.id, None)

    def find_transfer(self, *, transfer_group: str) -> TransferResult | None:
        """Find a transfer by group (for recovery after the key window); never raises."""
        try:
            page = self._client.v1.transfers.list(params={"transfer_group": transfer_group, "limit": 10})
        except stripe.StripeError as exc:
            # "Could not look" must never read as "nothing there": that would pay twice.
            return TransferResult("unknown", None, _describe(exc))
        except Exception as exc:  # noqa: BLE001
            return TransferResult("unknown", None, f"unexpected error ({type(exc).__name__})")
        found = list(page.data)
        if not found:
            return None
        oldest = found[-1]  # Stripe lists newest first
        reason = None
        if len(found) > 1 or page.has_more:
            ids = ", ".join(t.id for t in found)
            reason = f"several transfers share transfer_group {transfer_group}: {ids}"
            log.error("%s", reason)
        return TransferResult("paid", oldest.id, reason)

    def parse_webhook(self, *, payload: bytes, signature: str | None) -> dict[str, Any]:
        """Verify the Stripe-Signature (default tolerance) and return the event dict."""
        if not self._webhook_secret:
            raise InvalidWebhook("webhook secret is not configured")
        if not signature:
            raise InvalidWebhook("missing Stripe-Signature header")
        try:
            stripe.Webhook.construct_event(payload, signature, self._webhook_secret)
            event = json.loads(payload)
        except stripe.SignatureVerificationError as exc:
            # The SDK's messages name the failure, never the secret or the header.
            raise InvalidWebhook(_redact(f"bad signature: {exc.user_message}")) from None
        except ValueError:
            raise InvalidWebhook("payload is not a JSON Stripe event") from None
        if (
            not isinstance(event, dict)
            or not isinstance(event.get("id"), str)
            or not isinstance(event.get("type"), str)
            or not isinstance(event.get("data"), dict)
            or not isinstance(event["data"].get("object"), dict)
        ):
            raise InvalidWebhook("payload is not a Stripe event")
        return event


class ManualGateway:
    """Finance pays by hand from an exported CSV; transfers are recorded as paid."""

    name: str = "manual"

    def __repr__(self) -> str:
        return "ManualGateway()"

    def close(self) -> None:
        """Nothing to release."""

    def create_account(self, *, partner_id: str, email: str | None, country: str | None = None) -> str:
        """Refuse: manual payouts have no connected accounts."""
        raise GatewayUnsupported("manual payouts do not create connected accounts")

    def onboarding_link(self, *, account_id: str, refresh_url: str, return_url: str) -> str:
        """Refuse: manual payouts have no onboarding."""
        raise GatewayUnsupported("manual payouts have no onboarding")

    def transfer(self, request: TransferRequest) -> TransferResult:
        """Record the payout as paid; the payouts service exports it for finance."""
        return TransferResult("paid", f"manual:{request.transfer_group}", None)

    def find_transfer(self, *, transfer_group: str) -> TransferResult | None:
        """Return None: nothing exists remotely, and transfer() is safe to repeat."""
        return None

    def parse_webhook(self, *, payload: bytes, signature: str | None) -> dict[str, Any]:
        """Refuse: manual payouts receive no webhooks."""
        raise InvalidWebhook("manual payouts receive no webhooks")


def gateway_from_config(
    *,
    stripe_api_key: str | None,
    stripe_api_base: str | None,
    stripe_webhook_secret: str | None,
    timeout_seconds: float = 10.0,
) -> PayoutGateway:
    """Return StripeGateway when an API key is configured, else ManualGateway."""
    if stripe_api_key:
        return StripeGateway(
            api_key=stripe_api_key,
            api_base=stripe_api_base,
            webhook_secret=stripe_webhook_secret,
            timeout_seconds=timeout_seconds,
        )
    return ManualGateway()
