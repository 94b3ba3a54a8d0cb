"""StripeGateway against FakeStripe: outcomes, idempotency, recovery and webhooks."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest

from network.payouts.gateway import (
    GatewayError,
    GatewayUnsupported,
    InvalidWebhook,
    ManualGateway,
    PayoutGateway,
    StripeGateway,
    TransferRequest,
    TransferResult,
    gateway_from_config,
)
from tests.stripe_fake import FakeStripe

API_KEY = "sk_test_gateway_0123456789abcdef"
WEBHOOK_SECRET = "whsec_gateway_secret_0123456789"


@pytest.fixture
def gateway(fake_stripe: FakeStripe) -> Iterator[StripeGateway]:
    """Yield a StripeGateway talking to the fake with a 1 s timeout."""
    gw = StripeGateway(
        api_key=API_KEY, api_base=fake_stripe.base_url, webhook_secret=WEBHOOK_SECRET, timeout_seconds=1.0
    )
    yield gw
    gw.close()


@pytest.fixture
def account(fake_stripe: FakeStripe) -> str:
    """Return a connected account that can receive transfers."""
    return fake_stripe.create_account(enabled=True)


def request(
    destination: str, *, key: str = "payout-1-attempt-1", group: str = "payout-1", amount: int = 1500
) -> TransferRequest:
    """Build a transfer request like the payouts service does."""
    return TransferRequest(
        amount_minor=amount,
        currency="USD",
        destination=destination,
        idempotency_key=key,
        transfer_group=group,
        metadata={"payout_id": group.removeprefix("payout-")},
    )


# -- accounts -----------------------------------------------------------------


def test_create_account_and_onboarding_link(fake_stripe: FakeStripe, gateway: StripeGateway) -> None:
    account_id = gateway.create_account(partner_id="17", email="partner@example.com", country="us")
    stored = fake_stripe.accounts[account_id]
    assert stored["type"] == "express"
    assert stored["country"] == "US"
    assert stored["email"] == "partner@example.com"
    assert stored["capabilities"] == {"transfers": "inactive"}
    assert stored["metadata"] == {"partner_id": "17"}
    # A retry (say after a crash before we saved the id) returns the same account.
    assert gateway.create_account(partner_id="17", email="partner@example.com", country="us") == account_id
    assert len(fake_stripe.accounts) == 1

    url = gateway.onboarding_link(
        account_id=account_id, refresh_url="https://n.example/refresh", return_url="https://n.example/done"
    )
    assert url.startswith(f"https://connect.stripe.com/setup/e/{account_id}/")
    assert fake_stripe.violations == []


def test_create_account_without_optional_fields(fake_stripe: FakeStripe, gateway: StripeGateway) -> None:
    account_id = gateway.create_account(partner_id="18", email=None)
    assert fake_stripe.accounts[account_id]["email"] is None


def test_account_errors_raise_gateway_error(fake_stripe: FakeStripe, gateway: StripeGateway) -> None:
    with pytest.raises(GatewayError) as caught:
        gateway.onboarding_link(
            account_id="acct_missing", refresh_url="https://a.example", return_url="https://b.example"
        )
    assert "resource_missing" in str(caught.value)
    assert caught.value.retryable is False
    fake_stripe.inject("/v1/accounts", "500")
    with pytest.raises(GatewayError) as caught:
        gateway.create_account(partner_id="19", email=None)
    assert caught.value.retryable is True


# -- transfers ----------------------------------------------------------------


def test_transfer_paid(fake_stripe: FakeStripe, gateway: StripeGateway, account: str) -> None:
    result = gateway.transfer(request(account))
    assert result.outcome == "paid"
    assert result.reason is None
    [transfer] = fake_stripe.transfers
    assert result.reference == transfer["id"]
    assert transfer["amount"] == 1500
    assert transfer["currency"] == "usd"  # sent lower case
    assert transfer["destination"] == account
    assert transfer["transfer_group"] == "payout-1"
    assert transfer["metadata"] == {"payout_id": "1"}
    [sent] = fake_stripe.requests
    assert sent.idempotency_key == "payout-1-attempt-1"
    assert fake_stripe.violations == []


def test_replay_with_same_key_returns_same_transfer(
    fake_stripe: FakeStripe, gateway: StripeGateway, account: str
) -> None:
    first = gateway.transfer(request(account))
    second = gateway.transfer(request(account))
    assert first == second
    assert len(fake_stripe.transfers) == 1
    assert fake_stripe.requests[-1].replayed is True


def test_timeout_after_apply_is_unknown_then_retry_is_paid_once(
    fake_stripe: FakeStripe, gateway: StripeGateway, account: str
) -> None:
    fake_stripe.inject("/v1/transfers", "timeout_after_apply", method="POST")
    started = time.monotonic()
    lost = gateway.transfer(request(account))
    assert time.monotonic() - started < 3  # the gateway's own timeout held
    assert lost.outcome == "unknown"
    assert lost.reference is None
    assert lost.reason is not None and "network error" in lost.reason
    [created] = fake_stripe.transfers

    retried = gateway.transfer(request(account))
    assert retried == TransferResult("paid", created["id"], None)
    assert len(fake_stripe.transfers) == 1


def test_timeout_before_apply_is_unknown_then_retry_pays(
    fake_stripe: FakeStripe, gateway: StripeGateway, account: str
) -> None:
    fake_stripe.inject("/v1/transfers", "timeout_before_apply")
    assert gateway.transfer(request(account)).outcome == "unknown"
    assert fake_stripe.transfers == []
    assert gateway.transfer(request(account)).outcome == "paid"
    assert len(fake_stripe.transfers) == 1


@pytest.mark.parametrize("fault", ["500", "500_replayed", "429", "disconnect_after_apply", "disconnect_before_apply"])
def test_server_and_network_faults_are_unknown_never_failed(
    fake_stripe: FakeStripe, gateway: StripeGateway, account: str, fault: str
) -> None:
    fake_stripe.inject("/v1/transfers", fault)
    result = gateway.transfer(request(account))
    assert result.outcome == "unknown"
    assert result.reason


def test_persistent_500_stays_unknown(fake_stripe: FakeStripe, gateway: StripeGateway, account: str) -> None:
    fake_stripe.inject("/v1/transfers", "500", times=None)
    results = {gateway.transfer(request(account)).outcome for _ in range(3)}
    assert results == {"unknown"}
    assert fake_stripe.transfers == []
    assert {r.idempotency_key for r in fake_stripe.requests} == {"payout-1-attempt-1"}


def test_account_not_enabled_fails_with_reason(fake_stripe: FakeStripe, gateway: StripeGateway) -> None:
    pending = fake_stripe.create_account(enabled=False)
    result = gateway.transfer(request(pending))
    assert result.outcome == "failed"
    assert result.reference is None
    assert result.reason is not None and "insufficient_capabilities_for_transfer" in result.reason
    assert fake_stripe.transfers == []


def test_insufficient_balance_fails_with_reason(fake_stripe: FakeStripe, gateway: StripeGateway, account: str) -> None:
    fake_stripe.balance = {"usd": 1499}
    result = gateway.transfer(request(account))
    assert result.outcome == "failed"
    assert result.reason is not None and result.reason.startswith("HTTP 400 balance_insufficient:")


def test_unknown_destination_fails(gateway: StripeGateway) -> None:
    result = gateway.transfer(request("acct_does_not_exist"))
    assert result.outcome == "failed"
    assert result.reason is not None and "resource_missing" in result.reason


def test_non_stripe_destination_fails_without_a_call(fake_stripe: FakeStripe, gateway: StripeGateway) -> None:
    result = gateway.transfer(request("partner-17"))
    assert result.outcome == "failed"
    assert fake_stripe.requests == []


def test_key_reused_with_other_params_is_unknown_not_failed(
    fake_stripe: FakeStripe, gateway: StripeGateway, account: str
) -> None:
    assert gateway.transfer(request(account)).outcome == "paid"
    result = gateway.transfer(request(account, amount=999))
    assert result.outcome == "unknown"
    assert result.reason is not None and "idempotency_error" in result.reason
    assert len(fake_stripe.transfers) == 1


def test_bad_api_key_fails_without_leaking_it(fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk_live_do_not_leak_0123456789"
    gw = StripeGateway(api_key=secret, api_base=fake_stripe.base_url, timeout_seconds=1.0)
    caplog.set_level(logging.DEBUG)
    result = gw.transfer(request(fake_stripe.create_account(enabled=True)))
    gw.close()
    assert result.outcome == "failed"
    assert result.reason is not None and "do_not_leak" not in result.reason and "0123456789" not in result.reason
    assert "do_not_leak" not in caplog.text
    assert "do_not_leak" not in repr(gw)


def test_batch_of_ten_with_three_problems(fake_stripe: FakeStripe, gateway: StripeGateway) -> None:
    accounts = [fake_stripe.create_account(enabled=i != 2) for i in range(10)]
    outcomes: dict[int, TransferResult] = {}
    for i, acct in enumerate(accounts):
        if i == 5:
            fake_stripe.inject("/v1/transfers", "insufficient_balance")
        if i == 8:
            fake_stripe.inject("/v1/transfers", "500", times=None)
        outcomes[i] = gateway.transfer(request(acct, key=f"payout-{i}-attempt-1", group=f"payout-{i}"))
        if i == 8:
            fake_stripe.clear_faults()
    assert [outcomes[i].outcome for i in range(10)] == [
        "paid",
        "paid",
        "failed",
        "paid",
        "paid",
        "failed",
        "paid",
        "paid",
        "unknown",
        "paid",
    ]
    assert all(outcomes[i].reason for i in (2, 5, 8))
    # The unknown one is retried with its original key and then pays exactly once.
    assert gateway.transfer(request(accounts[8], key="payout-8-attempt-1", group="payout-8")).outcome == "paid"
    assert len(fake_stripe.transfers) == 8


# -- recovery lookup ----------------------------------------------------------


def test_find_transfer_after_key_expiry(fake_stripe: FakeStripe, gateway: StripeGateway, account: str) -> None:
    fake_stripe.inject("/v1/transfers", "timeout_after_apply", method="POST")
    assert gateway.transfer(request(account)).outcome == "unknown"
    fake_stripe.advance(hours=25)  # Stripe no longer remembers the key
    found = gateway.find_transfer(transfer_group="payout-1")
    assert found == TransferResult("paid", fake_stripe.transfers[0]["id"], None)
    assert gateway.find_transfer(transfer_group="payout-2") is None


def test_find_transfer_reports_duplicates(fake_stripe: FakeStripe, gateway: StripeGateway, account: str) -> None:
    first = gateway.transfer(request(account, key="a"))
    gateway.transfer(request(account, key="b"))
    found = gateway.find_transfer(transfer_group="payout-1")
    assert found is not None and found.outcome == "paid"
    assert found.reference == first.reference  # the oldest
    assert found.reason is not None and "several transfers" in found.reason


def test_find_transfer_that_cannot_look_is_unknown_not_none(
    fake_stripe: FakeStripe, gateway: StripeGateway, account: str
) -> None:
    gateway.transfer(request(account))
    fake_stripe.inject("/v1/transfers", "timeout_before_apply", method="GET")
    result = gateway.find_transfer(transfer_group="payout-1")
    assert result is not None and result.outcome == "unknown"


# -- webhooks -----------------------------------------------------------------


def test_webhook_valid(fake_stripe: FakeStripe, gateway: StripeGateway, account: str) -> None:
    gateway.transfer(request(account))
    payload, signature = fake_stripe.webhook("transfer.reversed", fake_stripe.transfers[0], WEBHOOK_SECRET)
    event = gateway.parse_webhook(payload=payload, signature=signature)
    assert type(event) is dict
    assert event["id"].startswith("evt_")
    assert event["type"] == "transfer.reversed"
    assert event["data"]["object"]["id"] == fake_stripe.transfers[0]["id"]


def test_webhook_from_fake_events(fake_stripe: FakeStripe, gateway: StripeGateway) -> None:
    account_id = fake_stripe.create_account()
    fake_stripe.enable_account(account_id)
    [event] = fake_stripe.events
    payload = json.dumps(event).encode()
    parsed = gateway.parse_webhook(payload=payload, signature=fake_stripe.sign_webhook(payload, WEBHOOK_SECRET))
    assert parsed["type"] == "account.updated"
    assert parsed["data"]["object"]["payouts_enabled"] is True


@pytest.mark.parametrize(
    "case", ["wrong_secret", "tampered", "old_timestamp", "missing", "garbage_header", "not_json", "not_an_event"]
)
def test_webhook_refused(fake_stripe: FakeStripe, gateway: StripeGateway, case: str) -> None:
    payload, signature = fake_stripe.webhook("account.updated", {"id": "acct_1", "object": "account"}, WEBHOOK_SECRET)
    sig: str | None = signature
    if case == "wrong_secret":
        sig = fake_stripe.sign_webhook(payload, "whsec_someone_else")
    elif case == "tampered":
        payload = payload.replace(b"acct_1", b"acct_2")
    elif case == "old_timestamp":
        sig = fake_stripe.sign_webhook(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 600)
    elif case == "missing":
        sig = None
    elif case == "garbage_header":
        sig = "nonsense"
    elif case == "not_json":
        payload = b"\xff\xfenot json"
        sig = fake_stripe.sign_webhook(payload, WEBHOOK_SECRET)
    elif case == "not_an_event":
        payload = b'{"object": "event", "id": "evt_1"}'
        sig = fake_stripe.sign_webhook(payload, WEBHOOK_SECRET)
    with pytest.raises(InvalidWebhook) as caught:
        gateway.parse_webhook(payload=payload, signature=sig)
    assert WEBHOOK_SECRET not in str(caught.value)
    assert caught.value.__cause__ is None


def test_webhook_without_secret_is_refused(fake_stripe: FakeStripe) -> None:
    gw = StripeGateway(api_key=API_KEY, api_base=fake_stripe.base_url)
    payload, signature = fake_stripe.webhook("account.updated", {"id": "acct_1"}, WEBHOOK_SECRET)
    with pytest.raises(InvalidWebhook):
        gw.parse_webhook(payload=payload, signature=signature)
    gw.close()


# -- manual gateway, config, request checks ------------------------------------


def test_manual_gateway() -> None:
    gw = ManualGateway()
    assert gw.name == "manual"
    assert gw.transfer(request("partner-17")) == TransferResult("paid", "manual:payout-1", None)
    assert gw.find_transfer(transfer_group="payout-1") is None
    with pytest.raises(GatewayUnsupported):
        gw.create_account(partner_id="1", email=None)
    with pytest.raises(GatewayUnsupported):
        gw.onboarding_link(account_id="acct_1", refresh_url="https://a", return_url="https://b")
    with pytest.raises(InvalidWebhook):
        gw.parse_webhook(payload=b"{}", signature="t=1,v1=x")


def test_gateway_from_config(fake_stripe: FakeStripe) -> None:
    manual: PayoutGateway = gateway_from_config(stripe_api_key=None, stripe_api_base=None, stripe_webhook_secret=None)
    assert isinstance(manual, ManualGateway)
    configured = gateway_from_config(
        stripe_api_key=API_KEY, stripe_api_base=fake_stripe.base_url + "/", stripe_webhook_secret=WEBHOOK_SECRET
    )
    assert isinstance(configured, StripeGateway) and configured.name == "stripe"
    assert API_KEY not in repr(configured) and WEBHOOK_SECRET not in repr(configured)
    assert configured.create_account(partner_id="3", email=None).startswith("acct_")
    configured.close()


@pytest.mark.parametrize(
    "changes",
    [
        {"amount_minor": 0},
        {"amount_minor": -5},
        {"amount_minor": True},
        {"amount_minor": 10.0},
        {"currency": "usdollar"},
        {"idempotency_key": ""},
        {"idempotency_key": "k" * 256},
        {"transfer_group": ""},
        {"destination": ""},
        {"metadata": {"k" * 41: "v"}},
        {"metadata": {"a[b]": "v"}},
        {"metadata": {"k": "v" * 501}},
        {"metadata": {f"k{i}": "v" for i in range(51)}},
    ],
)
def test_transfer_request_rejects_bad_input(changes: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "amount_minor": 100,
        "currency": "usd",
        "destination": "acct_1",
        "idempotency_key": "k",
        "transfer_group": "g",
        "metadata": {},
    }
    with pytest.raises(ValueError):
        TransferRequest(**{**fields, **changes})  # type: ignore[arg-type]
