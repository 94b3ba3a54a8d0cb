"""Self-tests for FakeStripe, driven through the real stripe SDK."""

from __future__ import annotations

import gzip
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

import pytest
import stripe
from hypothesis import given, settings
from hypothesis import strategies as st
from stripe._encode import _api_encode

from tests.stripe_fake import FAULTS, FakeStripe, decode_form, load_spec

if TYPE_CHECKING:
    from stripe import RequestOptions
    from stripe.params import AccountCreateParams, TransferCreateParams, TransferListParams

KEY = "sk_test_fake_0123456789"
WEBHOOK_SECRET = "whsec_test_secret"


def make_client(fake: FakeStripe, timeout: float = 1.0) -> stripe.StripeClient:
    """Build a StripeClient pointed at the fake, without SDK retries."""
    return stripe.StripeClient(
        KEY,
        base_addresses={"api": fake.base_url},
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=timeout),
    )


@pytest.fixture
def client(fake_stripe: FakeStripe) -> Iterator[stripe.StripeClient]:
    """Yield a StripeClient for the running fake."""
    c = make_client(fake_stripe)
    yield c
    close_client(c)


@pytest.fixture
def account(fake_stripe: FakeStripe) -> str:
    """Return an enabled connected account id."""
    return fake_stripe.create_account(enabled=True)


def close_client(c: stripe.StripeClient) -> None:
    """Close the client's pooled connections (avoids ResourceWarning)."""
    http = c._requestor._client
    if http is not None:
        http.close()


def create_transfer(c: stripe.StripeClient, params: Mapping[str, Any], key: str | None = None) -> stripe.Transfer:
    """Create a transfer with untyped (possibly invalid) params."""
    options: RequestOptions = {"idempotency_key": key} if key is not None else {}
    return c.v1.transfers.create(params=cast("TransferCreateParams", params), options=options)


def transfer_params(account: str, amount: int = 1500, group: str = "payout-1") -> dict[str, Any]:
    """Return typical transfer parameters."""
    return {
        "amount": amount,
        "currency": "usd",
        "destination": account,
        "transfer_group": group,
        "metadata": {"payout_id": "1"},
    }


def raw_request(
    fake: FakeStripe, method: str, path: str, body: str = "", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """Send a request without the SDK and return (status, JSON body)."""
    request = urllib.request.Request(
        fake.base_url + path, data=body.encode() if body else None, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


# -- accounts -----------------------------------------------------------------


def test_create_and_retrieve_express_account(fake_stripe: FakeStripe, client: stripe.StripeClient) -> None:
    created = client.v1.accounts.create(
        params={
            "type": "express",
            "country": "US",
            "email": "p@example.com",
            "capabilities": {"transfers": {"requested": True}},
            "metadata": {"partner_id": "42"},
        }
    )
    assert created.id.startswith("acct_")
    assert created.object == "account"
    assert created.type == "express"
    assert created.capabilities is not None and created.capabilities.transfers == "inactive"
    assert created.payouts_enabled is False

    fake_stripe.enable_account(created.id)
    fetched = client.v1.accounts.retrieve(created.id)
    assert fetched.capabilities is not None and fetched.capabilities.transfers == "active"
    assert fetched.payouts_enabled is True
    assert fetched.metadata is not None and fetched.metadata.to_dict() == {"partner_id": "42"}
    assert [e["type"] for e in fake_stripe.events] == ["account.updated"]


def test_account_link(client: stripe.StripeClient, fake_stripe: FakeStripe) -> None:
    account_id = fake_stripe.create_account()
    link = client.v1.account_links.create(
        params={
            "account": account_id,
            "refresh_url": "https://network.example/refresh",
            "return_url": "https://network.example/return",
            "type": "account_onboarding",
        }
    )
    assert link.object == "account_link"
    assert link.url.startswith("https://connect.stripe.com/setup/e/" + account_id)
    assert link.expires_at > link.created


def test_express_account_needs_a_capability(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.accounts.create(params={"type": "express"})
    assert caught.value.param == "capabilities"


# -- transfers and idempotency ---------------------------------------------


def test_transfer_replay_with_same_key(fake_stripe: FakeStripe, client: stripe.StripeClient, account: str) -> None:
    before = fake_stripe.balance["usd"]
    first = create_transfer(client, transfer_params(account), "payout-1")
    again = create_transfer(client, transfer_params(account), "payout-1")
    assert first.id == again.id
    assert first.object == "transfer"
    assert first.amount == 1500 and first.currency == "usd" and first.destination == account
    assert first.metadata.to_dict() == {"payout_id": "1"}
    assert again.last_response is not None
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert len(fake_stripe.transfers) == 1
    assert fake_stripe.balance["usd"] == before - 1500
    assert [r.replayed for r in fake_stripe.requests] == [False, True]
    assert fake_stripe.requests[0].idempotency_key == "payout-1"
    assert fake_stripe.requests[0].headers["Authorization"] == "<redacted>"


def test_same_key_different_params_is_idempotency_error(
    fake_stripe: FakeStripe, client: stripe.StripeClient, account: str
) -> None:
    create_transfer(client, transfer_params(account), "k")
    with pytest.raises(stripe.IdempotencyError) as caught:
        create_transfer(client, transfer_params(account, amount=1), "k")
    assert caught.value.http_status == 400
    assert "same parameters" in (caught.value.user_message or "")
    assert len(fake_stripe.transfers) == 1


def test_concurrent_requests_with_one_key_make_one_transfer(fake_stripe: FakeStripe, account: str) -> None:
    ids: list[str] = []

    def send() -> None:
        c = make_client(fake_stripe)
        try:
            t = create_transfer(c, transfer_params(account), "shared")
            ids.append(t.id)
        finally:
            close_client(c)

    threads = [threading.Thread(target=send) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 12 and len(set(ids)) == 1
    assert len(fake_stripe.transfers) == 1


def test_key_expires_after_24_hours(fake_stripe: FakeStripe, client: stripe.StripeClient, account: str) -> None:
    first = create_transfer(client, transfer_params(account), "old")
    fake_stripe.advance(hours=23)
    assert create_transfer(client, transfer_params(account), "old").id == first.id
    fake_stripe.advance(hours=2)
    second = create_transfer(client, transfer_params(account), "old")
    assert second.id != first.id
    assert len(fake_stripe.transfers) == 2


def test_clock_is_settable(fake_stripe: FakeStripe) -> None:
    fake_stripe.now = 1_700_000_000
    assert abs(fake_stripe.now - 1_700_000_000) < 5
    fake_stripe.advance(days=1)
    assert abs(fake_stripe.now - 1_700_086_400) < 5


def test_list_by_transfer_group_and_destination(
    fake_stripe: FakeStripe, client: stripe.StripeClient, account: str
) -> None:
    other = fake_stripe.create_account(enabled=True)
    for i in range(3):
        create_transfer(client, transfer_params(account, amount=100 + i, group="g-a"))
    create_transfer(client, transfer_params(other, group="g-b"))

    page = client.v1.transfers.list(params={"transfer_group": "g-a", "limit": 2})
    assert page.to_dict()["object"] == "list"
    assert [t.amount for t in page.data] == [102, 101]  # newest first
    assert page.has_more is True
    rest = client.v1.transfers.list(params={"transfer_group": "g-a", "limit": 2, "starting_after": page.data[-1].id})
    assert [t.amount for t in rest.data] == [100] and rest.has_more is False
    assert [t.transfer_group for t in client.v1.transfers.list(params={"destination": other}).data] == ["g-b"]
    assert client.v1.transfers.list(params={"transfer_group": "nope"}).data == []
    assert len(list(client.v1.transfers.list(params={"limit": 1}).auto_paging_iter())) == 4


def test_retrieve_and_reverse_transfer(fake_stripe: FakeStripe, client: stripe.StripeClient, account: str) -> None:
    transfer = create_transfer(client, transfer_params(account))
    assert client.v1.transfers.retrieve(transfer.id).id == transfer.id
    reversal = client.v1.transfers.reversals.create(transfer.id, params={"amount": 500, "metadata": {"why": "refund"}})
    assert reversal.object == "transfer_reversal" and reversal.amount == 500 and reversal.transfer == transfer.id
    after = client.v1.transfers.retrieve(transfer.id)
    assert after.amount_reversed == 500 and after.reversed is False
    client.v1.transfers.reversals.create(transfer.id)
    assert client.v1.transfers.retrieve(transfer.id).reversed is True
    assert [e["type"] for e in fake_stripe.events] == ["transfer.created", "transfer.reversed", "transfer.reversed"]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.reversals.create(transfer.id)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.transfers.retrieve("tr_missing")
    assert caught.value.http_status == 404 and caught.value.code == "resource_missing"


# -- validation against the OpenAPI description -------------------------------


def test_unknown_param_rejected_and_recorded(
    fake_stripe: FakeStripe, client: stripe.StripeClient, account: str
) -> None:
    params = {**transfer_params(account), "payout_id": "7"}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create_transfer(client, params)
    assert caught.value.param == "payout_id"
    assert "Received unknown parameter: payout_id" in (caught.value.user_message or "")
    violations = fake_stripe.take_violations()
    assert [(v.method, v.path, v.param) for v in violations] == [("POST", "/v1/transfers", "payout_id")]
    assert fake_stripe.transfers == []


def test_nested_unknown_param_rejected(fake_stripe: FakeStripe, client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        params = {"type": "express", "capabilities": {"transfers": {"requested": True, "please": True}}}
        client.v1.accounts.create(params=cast("AccountCreateParams", params))
    assert caught.value.param == "capabilities[transfers][please]"
    assert len(fake_stripe.take_violations()) == 1


def test_missing_required_param_rejected(fake_stripe: FakeStripe, client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create_transfer(client, {"amount": 100, "currency": "usd"})
    assert caught.value.param == "destination"
    assert "Missing required param: destination" in (caught.value.user_message or "")
    assert [v.param for v in fake_stripe.take_violations()] == ["destination"]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"amount": "ten", "currency": "usd", "destination": "acct_x"}, "amount"),
        ({"amount": 1, "currency": "usd", "destination": "acct_x", "source_type": "cash"}, "source_type"),
        ({"amount": 1, "currency": "usd", "destination": "acct_x", "metadata": "junk"}, "metadata"),
        ({"amount": 1, "currency": "usd", "destination": {"id": "x"}}, "destination"),
    ],
)
def test_wrong_types_and_enums_rejected(
    fake_stripe: FakeStripe, client: stripe.StripeClient, params: dict[str, Any], param: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create_transfer(client, params)
    assert caught.value.param == param
    assert len(fake_stripe.take_violations()) == 1


def test_empty_string_is_accepted_where_the_spec_allows_it(
    fake_stripe: FakeStripe, client: stripe.StripeClient
) -> None:
    account = client.v1.accounts.create(
        params={"type": "express", "capabilities": {"transfers": {"requested": True}}, "metadata": ""}
    )
    assert account.metadata is not None and account.metadata.to_dict() == {}


def test_empty_string_refused_where_the_spec_does_not(fake_stripe: FakeStripe, client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create_transfer(client, {"amount": 5, "currency": "usd", "destination": "acct_x", "metadata": ""})
    assert caught.value.param == "metadata"
    assert len(fake_stripe.take_violations()) == 1


def test_unknown_query_param_rejected(fake_stripe: FakeStripe, client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.list(params=cast("TransferListParams", {"group": "x"}))
    assert [v.param for v in fake_stripe.take_violations()] == ["group"]


def test_unknown_path_is_404_and_recorded(fake_stripe: FakeStripe) -> None:
    status, body = raw_request(fake_stripe, "GET", "/v1/payout_magic", headers={"Authorization": f"Bearer {KEY}"})
    assert status == 404
    assert body["error"]["type"] == "invalid_request_error"
    assert "Unrecognized request URL" in body["error"]["message"]
    assert [v.path for v in fake_stripe.take_violations()] == ["/v1/payout_magic"]


def test_wrong_method_is_404(fake_stripe: FakeStripe) -> None:
    status, _ = raw_request(fake_stripe, "DELETE", "/v1/transfers", headers={"Authorization": f"Bearer {KEY}"})
    assert status == 404
    assert len(fake_stripe.take_violations()) == 1


def test_spec_path_not_implemented_by_fake(fake_stripe: FakeStripe, client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.list()
    assert "does not implement" in (caught.value.user_message or "")
    assert [r.path for r in fake_stripe.unhandled] == ["/v1/customers"]


def test_extra_params_can_be_allowed() -> None:
    with FakeStripe(extra_params={"POST /v1/accounts": ["groups"]}) as fake:
        c = make_client(fake)
        c.v1.accounts.create(
            params={
                "type": "express",
                "capabilities": {"transfers": {"requested": True}},
                "groups": {"payments_pricing": "x"},
            }
        )
        close_client(c)
        assert fake.violations == []


# -- auth ---------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer sk_live_0123456789abcdef", "Basic abc", "Bearer sk_test_"])
def test_auth_required(fake_stripe: FakeStripe, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    status, body = raw_request(fake_stripe, "GET", "/v1/transfers", headers=headers)
    assert status == 401
    assert body["error"]["type"] == "invalid_request_error"
    assert "0123456789abcdef" not in json.dumps(body)


def test_sdk_sees_authentication_error(fake_stripe: FakeStripe) -> None:
    c = stripe.StripeClient(
        "rk_test_nope", base_addresses={"api": fake_stripe.base_url}, http_client=stripe.RequestsClient(timeout=1)
    )
    with pytest.raises(stripe.AuthenticationError):
        c.v1.transfers.list()
    close_client(c)


# -- business rules -----------------------------------------------------------


def test_destination_must_be_enabled_and_error_is_replayed(
    fake_stripe: FakeStripe, client: stripe.StripeClient
) -> None:
    account_id = fake_stripe.create_account()
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create_transfer(client, transfer_params(account_id), "k1")
    assert caught.value.code == "insufficient_capabilities_for_transfer"
    fake_stripe.enable_account(account_id)
    # Stripe saves the first answer under the key, errors included.
    with pytest.raises(stripe.InvalidRequestError):
        create_transfer(client, transfer_params(account_id), "k1")
    assert create_transfer(client, transfer_params(account_id), "k2").id
    assert len(fake_stripe.transfers) == 1


def test_unknown_destination(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create_transfer(client, transfer_params("acct_nope"))
    assert caught.value.code == "resource_missing" and caught.value.param == "destination"


def test_insufficient_balance(fake_stripe: FakeStripe, client: stripe.StripeClient, account: str) -> None:
    fake_stripe.balance = {"usd": 1000}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create_transfer(client, transfer_params(account, amount=1001))
    assert caught.value.code == "balance_insufficient"
    create_transfer(client, transfer_params(account, amount=1000))
    assert fake_stripe.balance == {"usd": 0}
    with pytest.raises(stripe.InvalidRequestError):
        create_transfer(client, {**transfer_params(account), "currency": "eur"})


# -- faults -------------------------------------------------------------------


def test_timeout_after_apply_then_retry_gets_same_transfer(
    fake_stripe: FakeStripe, client: stripe.StripeClient, account: str
) -> None:
    fault = fake_stripe.inject("/v1/transfers", "timeout_after_apply", method="POST")
    started = time.monotonic()
    with pytest.raises(stripe.APIConnectionError):
        create_transfer(client, transfer_params(account), "p-9")
    assert time.monotonic() - started < 5
    assert fault.hits == 1
    assert len(fake_stripe.transfers) == 1  # applied although the client never heard
    created = fake_stripe.transfers[0]["id"]
    retry = create_transfer(client, transfer_params(account), "p-9")
    assert retry.id == created
    assert len(fake_stripe.transfers) == 1
    assert fake_stripe.requests[-1].replayed is True


def test_timeout_before_apply_applies_nothing(
    fake_stripe: FakeStripe, client: stripe.StripeClient, account: str
) -> None:
    fake_stripe.inject("/v1/transfers", "timeout_before_apply")
    with pytest.raises(stripe.APIConnectionError):
        create_transfer(client, transfer_params(account), "p-1")
    assert fake_stripe.transfers == []
    retry = create_transfer(client, transfer_params(account), "p-1")
    assert fake_stripe.transfers[0]["id"] == retry.id


@pytest.mark.parametrize(("fault", "applied"), [("disconnect_after_apply", 1), ("disconnect_before_apply", 0)])
def test_disconnects(
    fake_stripe: FakeStripe, client: stripe.StripeClient, account: str, fault: str, applied: int
) -> None:
    fake_stripe.inject("/v1/transfers", fault)
    with pytest.raises(stripe.APIConnectionError):
        create_transfer(client, transfer_params(account), "d")
    assert len(fake_stripe.transfers) == applied


def test_500_is_not_applied_and_retry_succeeds(
    fake_stripe: FakeStripe, client: stripe.StripeClient, account: str
) -> None:
    fake_stripe.inject(r"/v1/transfers", "500", times=2)
    for _ in range(2):
        with pytest.raises(stripe.APIError) as caught:
            create_transfer(client, transfer_params(account), "x")
        assert caught.value.http_status == 500
    assert fake_stripe.transfers == []
    create_transfer(client, transfer_params(account), "x")
    assert len(fake_stripe.transfers) == 1


def test_500_replayed_sticks_to_the_key_until_expiry(
    fake_stripe: FakeStripe, client: stripe.StripeClient, account: str
) -> None:
    fake_stripe.inject("/v1/transfers", "500_replayed")
    for _ in range(2):
        with pytest.raises(stripe.APIError):
            create_transfer(client, transfer_params(account), "y")
    assert fake_stripe.transfers == []
    fake_stripe.advance(hours=25)
    create_transfer(client, transfer_params(account), "y")
    assert len(fake_stripe.transfers) == 1


def test_forever_fault_and_regex_match(fake_stripe: FakeStripe, client: stripe.StripeClient, account: str) -> None:
    import re

    fault = fake_stripe.inject(re.compile(r"^/v1/transfers$"), "429", times=None, method="POST")
    for _ in range(3):
        with pytest.raises(stripe.RateLimitError):
            create_transfer(client, transfer_params(account))
    assert fault.hits == 3
    assert client.v1.transfers.list().data == []  # GET is not matched
    fake_stripe.clear_faults()
    create_transfer(client, transfer_params(account))


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("account_not_enabled", "insufficient_capabilities_for_transfer"),
        ("insufficient_balance", "balance_insufficient"),
    ],
)
def test_business_faults(
    fake_stripe: FakeStripe, client: stripe.StripeClient, account: str, fault: str, code: str
) -> None:
    fake_stripe.inject("/v1/transfers", fault)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create_transfer(client, transfer_params(account))
    assert caught.value.code == code
    create_transfer(client, transfer_params(account))


def test_unknown_fault_is_refused(fake_stripe: FakeStripe) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        fake_stripe.inject("/v1/transfers", "explode")
    assert "timeout_after_apply" in FAULTS


def test_stop_releases_a_hanging_request() -> None:
    fake = FakeStripe(hang_seconds=30).start()
    account_id = fake.create_account(enabled=True)
    fake.inject("/v1/transfers", "timeout_after_apply")
    c = make_client(fake, timeout=5)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            create_transfer(c, transfer_params(account_id))
        except stripe.StripeError as exc:
            errors.append(exc)
        finally:
            close_client(c)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 2
    while not fake.transfers and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    fake.stop()
    thread.join(5)
    assert time.monotonic() - started < 3
    assert len(errors) == 1 and isinstance(errors[0], stripe.APIConnectionError)


# -- webhooks -----------------------------------------------------------------


def test_signed_webhook_verifies_with_sdk(fake_stripe: FakeStripe, client: stripe.StripeClient, account: str) -> None:
    transfer = create_transfer(client, transfer_params(account))
    payload, signature = fake_stripe.webhook("transfer.reversed", transfer.to_dict(), WEBHOOK_SECRET)
    event = stripe.Webhook.construct_event(payload, signature, WEBHOOK_SECRET)
    assert event.type == "transfer.reversed"
    assert event.id.startswith("evt_")
    assert event.data.object["id"] == transfer.id
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, signature, "whsec_other")
    old = fake_stripe.sign_webhook(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 301)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, old, WEBHOOK_SECRET)


def test_signature_matches_sdk_reference(fake_stripe: FakeStripe) -> None:
    payload = b'{"id": "evt_1", "object": "event"}'
    expected = stripe.WebhookSignature.generate_signature_header(payload.decode(), WEBHOOK_SECRET, timestamp=1700000000)
    assert fake_stripe.sign_webhook(payload, WEBHOOK_SECRET, timestamp=1700000000) == expected


def test_event_ids_are_unique(fake_stripe: FakeStripe) -> None:
    account_id = fake_stripe.create_account()
    ids = {fake_stripe.event("account.updated", fake_stripe.accounts[account_id])["id"] for _ in range(50)}
    assert len(ids) == 50
    event = fake_stripe.event("account.updated", {"id": account_id}, previous_attributes={"payouts_enabled": False})
    assert event["object"] == "event" and event["data"]["previous_attributes"] == {"payouts_enabled": False}


# -- decoding and the spec ----------------------------------------------------


def test_decode_form_bracket_notation() -> None:
    raw = "amount=5&metadata[payout_id]=5&expand[0]=a&expand[1]=b&c[d][e]=f&tags[]=x&tags[]=y&m="
    assert decode_form(raw) == {
        "amount": "5",
        "metadata": {"payout_id": "5"},
        "expand": ["a", "b"],
        "c": {"d": {"e": "f"}},
        "tags": ["x", "y"],
        "m": "",
    }


@pytest.mark.parametrize("raw", ["a=1&a=2", "a=1&a[b]=2", "a[b]=2&a=1", "a]b=1"])
def test_decode_form_refuses_ambiguity(raw: str) -> None:
    with pytest.raises(ValueError):
        decode_form(raw)


_scalars = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)
_names = st.text(alphabet="abcxyz_", min_size=1, max_size=6)
_values = st.recursive(
    _scalars,
    lambda inner: st.dictionaries(_names, inner, min_size=1, max_size=3) | st.lists(inner, min_size=1, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_names, _values, max_size=4))
def test_decode_form_inverts_the_sdk_encoder(params: dict[str, Any]) -> None:
    encoded = urlencode(list(_api_encode(params)))
    assert decode_form(encoded) == params


def test_spec_matching_prefers_literals() -> None:
    spec = load_spec()
    assert spec.version == "2024-04-10"
    assert spec.match("/v1/transfers/tr_1/reversals") == ("/v1/transfers/{id}/reversals", {"id": "tr_1"})
    assert spec.match("/v1/transfers/tr_1") == ("/v1/transfers/{transfer}", {"transfer": "tr_1"})
    assert spec.match("/v1/customers/search") == ("/v1/customers/search", {})
    assert spec.match("/v1/nothing/here/at/all") is None


def test_spec_path_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tiny = {
        "info": {"version": "tiny"},
        "paths": {
            "/v1/transfers": {
                "post": {
                    "requestBody": {
                        "content": {
                            "application/x-www-form-urlencoded": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {"amount": {"type": "integer"}},
                                    "required": ["amount"],
                                }
                            }
                        }
                    }
                }
            }
        },
    }
    path = tmp_path / "tiny.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump(tiny, handle)
    monkeypatch.setenv("STRIPE_OPENAPI_SPEC", str(path))
    spec = load_spec()
    assert spec.version == "tiny"
    assert [p.param for p in spec.validate("POST", "/v1/transfers", {}, {"currency": "usd"})] == [
        "amount",
        "currency",
    ]


def test_missing_spec_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="STRIPE_OPENAPI_SPEC"):
        FakeStripe(spec_path=tmp_path / "nope.json.gz")
