"""HTTP API for partner postbacks: the delivery log, retries, tests and per-offer URLs.

What partners get: on each conversion and status change, the delivery job calls the partner's
global postback_url and its URL for that offer (if set), each once. "get" calls the URL with the
macros filled in (each value percent-encoded). "post" sends JSON {"id", "type"
("conversion.created" | "conversion.updated"), "timestamp", "data": {the macro values,
"previous_status"}} with Standard Webhooks headers: webhook-id (the same on every retry: dedupe
on it), webhook-timestamp (unix seconds of this attempt) and webhook-signature "v1,<base64
HMAC-SHA256 of '<id>.<timestamp>.<body>'>", keyed by the base64-decoded part of the partner's
postback_secret after "whsec_" (what Standard Webhooks libraries do). Any 2xx is success; other
answers are retried about now, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h later
(429 waits at least its Retry-After), then dead-lettered; 410 Gone disables the URL until the
partner changes it or enables it again. Redirects are never followed.

Importing this module (the app does) connects the outbox to conversions' status_changed signal.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

from flask.views import MethodView

from network import web
from network.deliveries import probe, sender, service, targets
from network.deliveries.models import DeliveryStatus, OfferPostback, PostbackDelivery, PostbackDisable
from network.deliveries.schemas import (
    DeliveryDetailSchema,
    DeliveryListArgs,
    DeliveryListSchema,
    DeliverySchema,
    OfferPostbackCreateSchema,
    OfferPostbackListSchema,
    OfferPostbackSchema,
    OfferPostbackUpdateSchema,
    PostbackAttemptSchema,
    PostbackDisableListSchema,
    PostbackDisableSchema,
    PostbackTestInSchema,
    PostbackTestSchema,
)
from network.schemas import PageArgs, attrs, page

blp = web.Blueprint("deliveries", __name__, url_prefix="/api/v1", description="Partner postbacks")
blp.before_request(web.authenticate)


def _delivery(row: PostbackDelivery) -> dict[str, Any]:
    out = attrs(row, DeliverySchema)
    if row.status != DeliveryStatus.PENDING.value:
        out["next_attempt_at"] = None
    return out


def _offer_postback(row: OfferPostback) -> dict[str, Any]:
    out = {name: getattr(row, name) for name in OfferPostbackSchema._declared_fields if name != "disabled"}
    out["disabled"] = _disable(targets.find_disable(web.session(), row.partner_id, targets.target_of(row), row.url))
    return out


def _disable(row: PostbackDisable | None) -> dict[str, Any] | None:
    return None if row is None else attrs(row, PostbackDisableSchema)


def _url_settings() -> dict[str, Any]:
    settings = web.settings()
    return {"allow_http": settings.postback_allow_http, "allowed_networks": settings.postback_allowed_networks}


@blp.route("/postback-deliveries")
class Deliveries(MethodView):
    @blp.arguments(DeliveryListArgs, location="query")
    @blp.response(200, DeliveryListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List postback deliveries, newest last (a partner its own; admin and finance all)."""
        rows = service.list_deliveries(web.session(), web.principal(), **args)
        return page([_delivery(r) for r in rows], args["limit"])


@blp.route("/postback-deliveries/<int:delivery_id>")
class DeliveryItem(MethodView):
    @blp.response(200, DeliveryDetailSchema)
    def get(self, delivery_id: int) -> dict[str, Any]:
        """Read a delivery with every attempt made (time, status, latency, error, redacted URL)."""
        session = web.session()
        row = service.get_delivery(session, web.principal(), delivery_id)
        out = _delivery(row)
        out["attempt_log"] = [attrs(a, PostbackAttemptSchema) for a in service.list_attempts(session, row)]
        return out


@blp.route("/postback-deliveries/<int:delivery_id>/retry")
class DeliveryRetry(MethodView):
    @blp.response(200, DeliverySchema)
    def post(self, delivery_id: int) -> dict[str, Any]:
        """Queue a failed or dead-lettered delivery for one more attempt (409 for any other status)."""
        return _delivery(service.retry_delivery(web.session(), web.principal(), delivery_id))


@blp.route("/partners/<int:partner_id>/postback-test")
class PostbackTest(MethodView):
    @blp.arguments(PostbackTestInSchema)
    @blp.response(200, PostbackTestSchema)
    def post(self, data: dict[str, Any], partner_id: int) -> Any:
        """Call the partner's postback URL now with test values and return how it answered."""
        principal = web.principal()
        # Read in a read-only session, and call out with none of the request's open: on SQLite the
        # request's transaction holds the write lock, and a slow partner must not hold up other
        # requests (RELIABILITY.md 15). The request's session begins after the call, and the
        # request commits it.
        with closing(web.database().read_session()) as reader:
            plan = probe.plan_test(reader, principal, partner_id, offer_id=data.get("offer_id"))
        result = probe.fire_test(plan, sender.Transport.from_settings(web.settings()))
        return probe.after_test(web.session(), plan, result)


@blp.route("/partners/<int:partner_id>/offer-postbacks")
class OfferPostbacks(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, OfferPostbackListSchema)
    def get(self, args: dict[str, Any], partner_id: int) -> dict[str, Any]:
        """List the partner's per-offer postback URLs (called in addition to its global URL)."""
        rows = targets.list_offer_postbacks(web.session(), web.principal(), partner_id, **args)
        return page([_offer_postback(r) for r in rows], args["limit"])

    @blp.arguments(OfferPostbackCreateSchema)
    @blp.response(201, OfferPostbackSchema)
    def post(self, data: dict[str, Any], partner_id: int) -> Any:
        """Set the partner's postback URL for one offer it may run (validated like postback_url)."""
        row = targets.create_offer_postback(web.session(), web.principal(), partner_id, **data, **_url_settings())
        return _offer_postback(row)


@blp.route("/partners/<int:partner_id>/offer-postbacks/<int:postback_id>")
class OfferPostbackItem(MethodView):
    @blp.response(200, OfferPostbackSchema)
    def get(self, partner_id: int, postback_id: int) -> Any:
        """Read one per-offer postback URL."""
        return _offer_postback(targets.get_offer_postback(web.session(), web.principal(), partner_id, postback_id))

    @blp.arguments(OfferPostbackUpdateSchema)
    @blp.response(200, OfferPostbackSchema)
    def patch(self, data: dict[str, Any], partner_id: int, postback_id: int) -> Any:
        """Change a per-offer postback URL or its method."""
        row = targets.update_offer_postback(
            web.session(), web.principal(), partner_id, postback_id, **data, **_url_settings()
        )
        return _offer_postback(row)

    @blp.response(204)
    def delete(self, partner_id: int, postback_id: int) -> None:
        """Remove a per-offer postback URL."""
        targets.delete_offer_postback(web.session(), web.principal(), partner_id, postback_id)


@blp.route("/partners/<int:partner_id>/postback-disables")
class Disables(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, PostbackDisableListSchema)
    def get(self, args: dict[str, Any], partner_id: int) -> dict[str, Any]:
        """List the partner's URLs the network stopped calling (they answered 410 Gone), and why."""
        rows = targets.list_disables(web.session(), web.principal(), partner_id, **args)
        return page([_disable(r) for r in rows], args["limit"])


@blp.route("/partners/<int:partner_id>/postback-disables/<int:disable_id>")
class DisableItem(MethodView):
    @blp.response(204)
    def delete(self, partner_id: int, disable_id: int) -> None:
        """Call a disabled URL again."""
        targets.enable(web.session(), web.principal(), partner_id, disable_id)
