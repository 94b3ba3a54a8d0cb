"""An in-memory, Stripe-compatible HTTP server for tests."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import re
import secrets
import select
import socket
import string
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from . import invoicing
from .openapi import FORM_CONTENT_TYPE, FormError, Problem, StripeSpec, decode_form, load_spec

FaultKind = Literal[
    "timeout_after_apply",
    "timeout_before_apply",
    "disconnect_after_apply",
    "disconnect_before_apply",
    "500",
    "500_replayed",
    "429",
    "account_not_enabled",
    "insufficient_balance",
]
FAULTS: frozenset[str] = frozenset(get_args(FaultKind))
_BEFORE_APPLY = {"timeout_before_apply", "disconnect_before_apply", "500", "429"}
_AFTER_APPLY = {"timeout_after_apply", "disconnect_after_apply"}

IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600
MAX_IDEMPOTENCY_KEY_LENGTH = 255
API_VERSION = "2024-04-10"
_ALNUM = string.ascii_letters + string.digits
_CURRENCY_BY_COUNTRY = {"US": "usd", "GB": "gbp", "CA": "cad", "AU": "aud", "CH": "chf"}


@dataclass
class RecordedRequest:
    """One request as the fake saw it (Authorization redacted)."""

    method: str
    path: str
    params: dict[str, Any]
    headers: dict[str, str]
    idempotency_key: str | None
    request_id: str = ""
    status: int | None = None
    replayed: bool = False
    fault: str | None = None


@dataclass(frozen=True)
class Violation:
    """A request Stripe's API description says Stripe would refuse."""

    method: str
    path: str
    param: str | None
    message: str


@dataclass
class Fault:
    """A programmed failure for requests whose path matches."""

    match: str | re.Pattern[str]
    kind: str
    times: int | None
    method: str | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        """Say whether this fault applies to the request."""
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        if isinstance(self.match, re.Pattern):
            return self.match.search(path) is not None
        return path.startswith(self.match)


@dataclass
class _Response:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Stored:
    method: str
    path: str
    params: dict[str, Any]
    response: _Response
    request_id: str
    created: float


class StripeFailure(Exception):
    """A Stripe error answer raised inside an endpoint."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.response = _error(status, message, type=type, code=code, param=param)


def _error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> _Response:
    error: dict[str, Any] = {"message": message, "type": type}
    if code is not None:
        error["code"] = code
        error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param is not None:
        error["param"] = param
    return _Response(status, {"error": error})


def _new_id(prefix: str, length: int = 24) -> str:
    return prefix + "1" + "".join(secrets.choice(_ALNUM) for _ in range(length - 1))


def _redact_key(key: str) -> str:
    return f"{key[:8]}****{key[-4:]}" if len(key) > 16 else "****"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops connections when tests fire requests in parallel.
    request_queue_size = 128
    fake: FakeStripe


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0: one request per connection, so stop() never waits on idle keep-alives.
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self.server.fake._serve(self, "GET")

    def do_POST(self) -> None:
        self.server.fake._serve(self, "POST")

    def do_DELETE(self) -> None:
        self.server.fake._serve(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read fake.requests instead."""


Endpoint = Callable[[dict[str, str], dict[str, Any], str | None], _Response]


class FakeStripe:
    """A stateful, thread-safe fake of the Stripe endpoints payouts use."""

    def __init__(
        self,
        *,
        spec_path: str | os.PathLike[str] | None = None,
        validate: bool = True,
        hang_seconds: float = 30.0,
        extra_params: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.spec: StripeSpec = load_spec(spec_path)
        self.validate = validate
        self.hang_seconds = hang_seconds
        # e.g. {"POST /v1/accounts": ["groups"]} for params newer than the spec.
        self.extra_params = {k: set(v) for k, v in (extra_params or {}).items()}
        self.balance: dict[str, int] = {"usd": 10**12, "eur": 10**12, "gbp": 10**12}
        self.requests: list[RecordedRequest] = []
        self.violations: list[Violation] = []
        self.unhandled: list[RecordedRequest] = []
        self.errors: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self._lock = threading.RLock()
        self._clock_offset = 0.0
        self._accounts: dict[str, dict[str, Any]] = {}
        self._transfers: dict[str, dict[str, Any]] = {}
        self._idempotency: dict[str, _Stored] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._routes: dict[tuple[str, str], Endpoint] = {
            ("POST", "/v1/accounts"): self._post_account,
            ("GET", "/v1/accounts/{account}"): self._get_account,
            ("POST", "/v1/account_links"): self._post_account_link,
            ("POST", "/v1/transfers"): self._post_transfer,
            ("GET", "/v1/transfers"): self._list_transfers,
            ("GET", "/v1/transfers/{transfer}"): self._get_transfer,
            ("POST", "/v1/transfers/{id}/reversals"): self._post_reversal,
        }
        # Stripe Invoicing (billing): customers, invoice items, invoices.
        self.customers: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.invoice_items: dict[str, dict[str, Any]] = {}
        invoicing.install(self)

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> FakeStripe:
        """Start serving on 127.0.0.1 on a free port, in a daemon thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; hanging requests are let go."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """Return the URL to use as the Stripe API base."""
        if self._server is None:
            raise RuntimeError("FakeStripe is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- clock -------------------------------------------------------------

    @property
    def now(self) -> float:
        """Return fake time: the wall clock plus whatever was advanced."""
        return time.time() + self._clock_offset

    @now.setter
    def now(self, value: float) -> None:
        with self._lock:
            self._clock_offset = value - time.time()

    def advance(self, *, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> None:
        """Move fake time forward (idempotency keys expire after 24 hours)."""
        with self._lock:
            self._clock_offset += ((days * 24 + hours) * 60 + minutes) * 60 + seconds

    # -- state helpers for tests -------------------------------------------

    @property
    def transfers(self) -> list[dict[str, Any]]:
        """Return copies of all transfers, oldest first."""
        with self._lock:
            return copy.deepcopy(list(self._transfers.values()))

    @property
    def accounts(self) -> dict[str, dict[str, Any]]:
        """Return copies of all connected accounts by id."""
        with self._lock:
            return copy.deepcopy(self._accounts)

    def create_account(
        self,
        *,
        type: str = "express",
        email: str | None = None,
        country: str = "US",
        enabled: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Create a connected account directly and return its id."""
        with self._lock:
            account = self._new_account(
                type=type,
                email=email,
                country=country,
                capabilities=["transfers"],
                metadata=dict(metadata or {}),
            )
            if enabled:
                self._set_enabled(account, True, emit=False)
            return str(account["id"])

    def enable_account(self, account_id: str) -> None:
        """Finish onboarding: transfers active, payouts enabled (emits account.updated)."""
        with self._lock:
            self._set_enabled(self._accounts[account_id], True, emit=True)

    def disable_account(self, account_id: str) -> None:
        """Make the account unable to receive transfers (emits account.updated)."""
        with self._lock:
            self._set_enabled(self._accounts[account_id], False, emit=True)

    def inject(
        self,
        match: str | re.Pattern[str],
        fault: str,
        *,
        times: int | None = 1,
        method: str | None = None,
    ) -> Fault:
        """Program a fault for requests whose path starts with (or matches) `match`."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose from {sorted(FAULTS)}")
        entry = Fault(match=match, kind=fault, times=times, method=method)
        with self._lock:
            self.faults.append(entry)
        return entry

    def clear_faults(self) -> None:
        """Forget all programmed faults."""
        with self._lock:
            self.faults.clear()

    def take_violations(self) -> list[Violation]:
        """Return and clear the recorded violations (for tests expecting some)."""
        with self._lock:
            found, self.violations = self.violations, []
            return found

    # -- webhooks ----------------------------------------------------------

    @staticmethod
    def sign_webhook(payload: bytes, secret: str, timestamp: int | None = None) -> str:
        """Return a Stripe-Signature header value (t=...,v1=...) for the payload."""
        # Real time, not fake time: receivers check it against their own clock.
        ts = int(time.time()) if timestamp is None else int(timestamp)
        signed = f"{ts}.".encode() + payload
        digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
        return f"t={ts},v1={digest}"

    def event(
        self,
        type: str,
        obj: Mapping[str, Any],
        *,
        previous_attributes: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Build a Stripe event payload (unique evt_ id) wrapping `obj`."""
        data: dict[str, Any] = {"object": copy.deepcopy(dict(obj))}
        if previous_attributes is not None:
            data["previous_attributes"] = dict(previous_attributes)
        return {
            "id": _new_id("evt_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(self.now),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type,
        }

    def webhook(
        self,
        type: str,
        obj: Mapping[str, Any],
        secret: str,
        *,
        timestamp: int | None = None,
    ) -> tuple[bytes, str]:
        """Return (raw body, Stripe-Signature header) for a new event."""
        payload = json.dumps(self.event(type, obj), separators=(",", ":")).encode()
        return payload, self.sign_webhook(payload, secret, timestamp)

    # -- HTTP --------------------------------------------------------------

    def _serve(self, handler: _Handler, method: str) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode("utf-8", "replace") if length else ""
        headers = dict(handler.headers.items())
        action, response = self._process(method, split.path, split.query, body, headers)
        if action == "hang":
            self._hang(handler)
        if action in ("hang", "drop"):
            # Close without a status line: the client sees a timeout or a reset.
            handler.close_connection = True
            return
        assert response is not None
        payload = json.dumps(response.body, indent=2).encode()
        handler.send_response(response.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def _hang(self, handler: _Handler) -> None:
        """Hold the request open until the client gives up or the fake stops."""
        conn: socket.socket = handler.connection
        deadline = time.monotonic() + self.hang_seconds
        while not self._stopping.is_set() and time.monotonic() < deadline:
            readable, _, _ = select.select([conn], [], [], 0.05)
            if readable:
                return  # readable while we owe an answer means the client hung up

    def _process(
        self, method: str, path: str, query: str, body: str, headers: dict[str, str]
    ) -> tuple[Literal["respond", "hang", "drop"], _Response | None]:
        lower = {k.lower(): v for k, v in headers.items()}
        key = lower.get("idempotency-key") if method == "POST" else None
        shown = {k: ("<redacted>" if k.lower() == "authorization" else v) for k, v in headers.items()}
        record = RecordedRequest(method, path, {}, shown, key, _new_id("req_", 14))
        with self._lock:
            self.requests.append(record)
        try:
            action, response = self._decide(method, path, query, body, lower, key, record)
        except Exception:
            # A bug in the fake must fail the test loudly, not look like a Stripe outage.
            with self._lock:
                self.errors.append(traceback.format_exc())
            action, response = "respond", _error(500, "FakeStripe crashed", type="api_error")
        if response is not None:
            response.headers["Request-Id"] = record.request_id
            response.headers["Stripe-Version"] = lower.get("stripe-version", API_VERSION)
            if key is not None:
                response.headers["Idempotency-Key"] = key
            record.status = response.status
        return action, response

    def _decide(
        self,
        method: str,
        path: str,
        query: str,
        body: str,
        headers: dict[str, str],
        key: str | None,
        record: RecordedRequest,
    ) -> tuple[Literal["respond", "hang", "drop"], _Response | None]:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return "respond", _error(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
            )
        api_key = auth[len("Bearer ") :].strip()
        if not api_key.startswith("sk_test_") or len(api_key) <= len("sk_test_"):
            return "respond", _error(401, f"Invalid API Key provided: {_redact_key(api_key)}")

        try:
            query_params = decode_form(query)
            body_params = decode_form(body)
        except FormError as exc:
            return "respond", self._violation(method, path, Problem(exc.param, exc.message))
        params = {**query_params, **body_params}
        record.params = params

        matched = self.spec.match(path)
        route = None if matched is None else matched[0]
        if route is None or self.spec.operation(route, method) is None:
            message = f"Unrecognized request URL ({method}: {path})."
            return "respond", self._violation(method, path, Problem(None, message), status=404)
        assert matched is not None
        path_params = matched[1]
        if self.validate:
            content_type = headers.get("content-type", "").split(";")[0].strip()
            if method == "POST" and body and content_type != FORM_CONTENT_TYPE:
                problem = Problem(None, f"Unsupported Content-Type: {content_type!r}")
                return "respond", self._violation(method, path, problem)
            extra = self.extra_params.get(f"{method} {route}", ())
            problems = self.spec.validate(method, route, query_params, body_params, extra_params=extra)
            if problems:
                # Stripe reports the first problem; record them all.
                for problem in problems[1:]:
                    self._violation(method, path, problem)
                return "respond", self._violation(method, path, problems[0])
        if key is not None and len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            problem = Problem(
                None,
                f"Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters long",
            )
            return "respond", self._violation(method, path, problem)

        with self._lock:
            fault = self._take_fault(method, path)
        record.fault = fault
        if fault == "timeout_before_apply":
            return "hang", None
        if fault == "disconnect_before_apply":
            return "drop", None
        if fault == "500":
            return "respond", _error(500, "An unknown error occurred", type="api_error")
        if fault == "429":
            return "respond", _error(
                429,
                "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
                code="rate_limit",
            )

        response = self._apply(method, path, route, path_params, params, key, fault, record)
        if fault == "timeout_after_apply":
            return "hang", None
        if fault == "disconnect_after_apply":
            return "drop", None
        return "respond", response

    def _apply(
        self,
        method: str,
        path: str,
        route: str,
        path_params: dict[str, str],
        params: dict[str, Any],
        key: str | None,
        fault: str | None,
        record: RecordedRequest,
    ) -> _Response:
        with self._lock:
            now = self.now
            if key is not None:
                self._expire_keys(now)
                stored = self._idempotency.get(key)
                if stored is not None:
                    if stored.method != method or stored.path != path:
                        return _error(
                            400,
                            "Keys for idempotent requests can only be used for the same "
                            f"endpoint they were first used for ({stored.method} {stored.path}).",
                            type="idempotency_error",
                        )
                    if stored.params != params:
                        return _error(
                            400,
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with. Try using a key other than "
                            f"'{key}' if you meant to execute a different request.",
                            type="idempotency_error",
                        )
                    record.replayed = True
                    replay = copy.deepcopy(stored.response)
                    replay.headers["Idempotent-Replayed"] = "true"
                    replay.headers["Original-Request"] = stored.request_id
                    return replay
            endpoint = self._routes.get((method, route))
            if endpoint is None:
                self.unhandled.append(record)
                return _error(404, f"FakeStripe does not implement {method} {route}")
            if fault == "500_replayed":
                # Stripe saves a 500 under the key once the endpoint began executing.
                response = _error(500, "An unknown error occurred", type="api_error")
            else:
                try:
                    response = endpoint(path_params, params, fault)
                except StripeFailure as failure:
                    response = failure.response
            if key is not None:
                self._idempotency[key] = _Stored(
                    method,
                    path,
                    copy.deepcopy(params),
                    copy.deepcopy(response),
                    record.request_id,
                    now,
                )
            return response

    def _expire_keys(self, now: float) -> None:
        expired = [k for k, v in self._idempotency.items() if now - v.created >= IDEMPOTENCY_WINDOW_SECONDS]
        for k in expired:
            del self._idempotency[k]

    def _take_fault(self, method: str, path: str) -> str | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.hits += 1
                return fault.kind
        return None

    def _violation(self, method: str, path: str, problem: Problem, *, status: int = 400) -> _Response:
        with self._lock:
            self.violations.append(Violation(method, path, problem.param, problem.message))
        return _error(status, problem.message, param=problem.param)

    # -- endpoints ---------------------------------------------------------

    def _new_account(
        self,
        *,
        type: str,
        email: str | None,
        country: str,
        capabilities: Iterable[str],
        metadata: dict[str, str],
    ) -> dict[str, Any]:
        account_id = _new_id("acct_", 16)
        country = country.upper()
        due = ["external_account", "individual.first_name", "tos_acceptance.date"]
        account: dict[str, Any] = {
            "id": account_id,
            "object": "account",
            "business_profile": {"mcc": None, "name": None, "url": None},
            "business_type": None,
            "capabilities": {name: "inactive" for name in capabilities},
            "charges_enabled": False,
            "country": country,
            "created": int(self.now),
            "default_currency": _CURRENCY_BY_COUNTRY.get(country, "eur"),
            "details_submitted": False,
            "email": email,
            "external_accounts": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/accounts/{account_id}/external_accounts",
            },
            "metadata": metadata,
            "payouts_enabled": False,
            "requirements": {
                "currently_due": list(due),
                "disabled_reason": "requirements.past_due",
                "eventually_due": list(due),
                "past_due": list(due),
                "pending_verification": [],
            },
            "settings": {"payouts": {"schedule": {"interval": "daily"}}},
            "tos_acceptance": {"date": None},
            "type": type,
        }
        self._accounts[account_id] = account
        return account

    def _set_enabled(self, account: dict[str, Any], enabled: bool, *, emit: bool) -> None:
        previous = {
            "capabilities": dict(account["capabilities"]),
            "payouts_enabled": account["payouts_enabled"],
        }
        status = "active" if enabled else "inactive"
        account["capabilities"] = {
            **{name: status for name in account["capabilities"]},
            "transfers": status,
        }
        account["payouts_enabled"] = enabled
        account["details_submitted"] = account["details_submitted"] or enabled
        due: list[str] = [] if enabled else ["external_account"]
        account["requirements"].update(
            currently_due=list(due),
            past_due=list(due),
            eventually_due=list(due),
            disabled_reason=None if enabled else "requirements.past_due",
        )
        if emit:
            self.events.append(self.event("account.updated", account, previous_attributes=previous))

    def _post_account(self, path_params: dict[str, str], params: dict[str, Any], fault: str | None) -> _Response:
        if "type" not in params and "controller" not in params:
            raise StripeFailure(400, "Missing required param: type.", param="type")
        kind = params.get("type", "custom")
        requested = [
            name
            for name, spec in (params.get("capabilities") or {}).items()
            if isinstance(spec, dict) and spec.get("requested") == "true"
        ]
        if kind in ("express", "custom") and not requested:
            raise StripeFailure(
                400,
                f"You must request at least one capability (for example transfers) when creating {kind} accounts.",
                param="capabilities",
            )
        metadata = params.get("metadata") or {}
        account = self._new_account(
            type=kind,
            email=params.get("email"),
            country=params.get("country", "US"),
            capabilities=requested,
            metadata=dict(metadata) if isinstance(metadata, dict) else {},
        )
        return _Response(200, copy.deepcopy(account))

    def _get_account(self, path_params: dict[str, str], params: dict[str, Any], fault: str | None) -> _Response:
        account = self._accounts.get(path_params["account"])
        if account is None:
            raise StripeFailure(
                404,
                f"No such account: '{path_params['account']}'",
                code="resource_missing",
                param="account",
            )
        return _Response(200, copy.deepcopy(account))

    def _post_account_link(self, path_params: dict[str, str], params: dict[str, Any], fault: str | None) -> _Response:
        account_id = params["account"]
        if account_id not in self._accounts:
            raise StripeFailure(400, f"No such account: '{account_id}'", code="resource_missing", param="account")
        for name in ("refresh_url", "return_url"):
            if not params.get(name):
                raise StripeFailure(400, f"Missing required param: {name}.", param=name)
        created = int(self.now)
        token = "".join(secrets.choice(_ALNUM) for _ in range(12))
        return _Response(
            200,
            {
                "object": "account_link",
                "created": created,
                "expires_at": created + 300,
                "url": f"https://connect.stripe.com/setup/e/{account_id}/{token}",
            },
        )

    def _post_transfer(self, path_params: dict[str, str], params: dict[str, Any], fault: str | None) -> _Response:
        if "amount" not in params:
            raise StripeFailure(400, "Missing required param: amount.", param="amount")
        amount = int(params["amount"])
        if amount <= 0:
            raise StripeFailure(400, "This value must be greater than or equal to 1.", param="amount")
        currency = str(params["currency"]).lower()
        if not re.fullmatch(r"[a-z]{3}", currency):
            raise StripeFailure(400, f"Invalid currency: {currency}.", param="currency")
        destination = params["destination"]
        account = self._accounts.get(destination)
        if account is None:
            raise StripeFailure(
                400,
                f"No such destination: '{destination}'",
                code="resource_missing",
                param="destination",
            )
        if fault == "account_not_enabled" or account["capabilities"].get("transfers") != "active":
            raise StripeFailure(
                400,
                "Your destination account needs to have at least one of the following "
                "capabilities enabled: transfers, crypto_transfers, legacy_payments",
                code="insufficient_capabilities_for_transfer",
                param="destination",
            )
        metadata = params.get("metadata") or {}
        if isinstance(metadata, dict):
            self._check_metadata(metadata)
        else:
            metadata = {}
        if fault == "insufficient_balance" or amount > self.balance.get(currency, 0):
            raise StripeFailure(
                400,
                "You have insufficient available funds in your Stripe account. Try adding "
                "funds directly to your available balance by creating Charges using the "
                "4000000000000077 test card. See: https://stripe.com/docs/testing#available-balance",
                code="balance_insufficient",
            )
        self.balance[currency] = self.balance.get(currency, 0) - amount
        transfer_id = _new_id("tr_")
        transfer = {
            "id": transfer_id,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "balance_transaction": _new_id("txn_"),
            "created": int(self.now),
            "currency": currency,
            "description": params.get("description"),
            "destination": destination,
            "destination_payment": _new_id("py_"),
            "livemode": False,
            "metadata": dict(metadata),
            "reversals": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/transfers/{transfer_id}/reversals",
            },
            "reversed": False,
            "source_transaction": params.get("source_transaction"),
            "source_type": params.get("source_type", "card"),
            "transfer_group": params.get("transfer_group"),
        }
        self._transfers[transfer_id] = transfer
        self.events.append(self.event("transfer.created", transfer))
        return _Response(200, copy.deepcopy(transfer))

    @staticmethod
    def _check_metadata(metadata: Mapping[str, Any]) -> None:
        if len(metadata) > 50:
            raise StripeFailure(400, "Metadata can have at most 50 keys.", param="metadata")
        for name, value in metadata.items():
            if len(name) > 40:
                raise StripeFailure(400, "Metadata keys can be at most 40 characters.", param=f"metadata[{name}]")
            if not isinstance(value, str) or len(value) > 500:
                raise StripeFailure(
                    400,
                    "Metadata values must be strings of at most 500 characters.",
                    param=f"metadata[{name}]",
                )

    def _list_transfers(self, path_params: dict[str, str], params: dict[str, Any], fault: str | None) -> _Response:
        limit = int(params.get("limit", 10))
        if not 1 <= limit <= 100:
            raise StripeFailure(400, "This value must be between 1 and 100 (inclusive).", param="limit")
        rows = list(reversed(self._transfers.values()))  # newest first, as Stripe lists
        if "transfer_group" in params:
            rows = [t for t in rows if t["transfer_group"] == params["transfer_group"]]
        if "destination" in params:
            rows = [t for t in rows if t["destination"] == params["destination"]]
        created = params.get("created")
        if isinstance(created, str):
            rows = [t for t in rows if t["created"] == int(created)]
        elif isinstance(created, dict):
            bounds: dict[str, Callable[[int, int], bool]] = {
                "gt": lambda a, b: a > b,
                "gte": lambda a, b: a >= b,
                "lt": lambda a, b: a < b,
                "lte": lambda a, b: a <= b,
            }
            for op, bound in created.items():
                rows = [t for t in rows if bounds[op](t["created"], int(bound))]
        ids = [t["id"] for t in rows]
        if "starting_after" in params:
            cursor = self._cursor(ids, params["starting_after"], "starting_after")
            rows = rows[cursor + 1 :]
            page, has_more = rows[:limit], len(rows) > limit
        elif "ending_before" in params:
            cursor = self._cursor(ids, params["ending_before"], "ending_before")
            rows = rows[:cursor]
            page, has_more = rows[-limit:], len(rows) > limit
        else:
            page, has_more = rows[:limit], len(rows) > limit
        return _Response(
            200,
            {
                "object": "list",
                "data": copy.deepcopy(page),
                "has_more": has_more,
                "url": "/v1/transfers",
            },
        )

    @staticmethod
    def _cursor(ids: list[str], value: str, param: str) -> int:
        if value not in ids:
            raise StripeFailure(400, f"No such transfer: '{value}'", code="resource_missing", param=param)
        return ids.index(value)

    def _find_transfer(self, transfer_id: str, param: str) -> dict[str, Any]:
        transfer = self._transfers.get(transfer_id)
        if transfer is None:
            raise StripeFailure(404, f"No such transfer: '{transfer_id}'", code="resource_missing", param=param)
        return transfer

    def _get_transfer(self, path_params: dict[str, str], params: dict[str, Any], fault: str | None) -> _Response:
        return _Response(200, copy.deepcopy(self._find_transfer(path_params["transfer"], "id")))

    def _post_reversal(self, path_params: dict[str, str], params: dict[str, Any], fault: str | None) -> _Response:
        transfer = self._find_transfer(path_params["id"], "id")
        remaining = transfer["amount"] - transfer["amount_reversed"]
        if remaining <= 0:
            raise StripeFailure(
                400,
                f"Transfer {transfer['id']} has already been reversed.",
                param="id",
            )
        amount = int(params.get("amount", remaining))
        if amount <= 0 or amount > remaining:
            raise StripeFailure(
                400,
                f"You cannot reverse more than the remaining {remaining} of this transfer.",
                param="amount",
            )
        metadata = params.get("metadata") or {}
        reversal = {
            "id": _new_id("trr_"),
            "object": "transfer_reversal",
            "amount": amount,
            "balance_transaction": _new_id("txn_"),
            "created": int(self.now),
            "currency": transfer["currency"],
            "destination_payment_refund": _new_id("pyr_"),
            "metadata": dict(metadata) if isinstance(metadata, dict) else {},
            "source_refund": None,
            "transfer": transfer["id"],
        }
        previous = {"amount_reversed": transfer["amount_reversed"], "reversed": transfer["reversed"]}
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] >= transfer["amount"]
        transfer["reversals"]["data"].insert(0, reversal)
        transfer["reversals"]["total_count"] += 1
        self.balance[transfer["currency"]] = self.balance.get(transfer["currency"], 0) + amount
        self.events.append(self.event("transfer.reversed", transfer, previous_attributes=previous))
        return _Response(200, copy.deepcopy(reversal))
