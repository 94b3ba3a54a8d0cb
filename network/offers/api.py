"""HTTP API for offers, partner access and overrides."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask.views import MethodView

from network import web
from network.auth import Role
from network.offers import service
from network.offers.models import Offer
from network.offers.schemas import (
    AccessListArgs,
    AccessListSchema,
    AccessSchema,
    ApplicationInSchema,
    InvitationInSchema,
    OfferCreateSchema,
    OfferListArgs,
    OfferListSchema,
    OfferSchema,
    OfferUpdateSchema,
    OverrideInSchema,
    OverrideListArgs,
    OverrideListSchema,
    OverrideSchema,
    dump_access,
    dump_offer,
    dump_override,
)
from network.schemas import page

blp = web.Blueprint("offers", __name__, url_prefix="/api/v1/offers", description="Offers")
blp.before_request(web.authenticate)


def _out(offers: Sequence[Offer]) -> list[dict[str, Any]]:
    """Dump offers for the caller; a partner's view says whether it may run each and shows its own payout."""
    principal = web.principal()
    if principal.role is not Role.PARTNER or principal.partner_id is None:
        return [dump_offer(offer, principal) for offer in offers]
    views = service.partner_views(web.session(), offers, principal.partner_id)
    return [dump_offer(offer, principal, can_run=views[offer.id][0], overrides=views[offer.id][1]) for offer in offers]


@blp.route("")
class Offers(MethodView):
    @blp.arguments(OfferListArgs, location="query")
    @blp.response(200, OfferListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List the offers the caller may see (a brand its own; a partner those open, approved or invited)."""
        return page(_out(service.list_offers(web.session(), web.principal(), **args)), args["limit"])

    @blp.arguments(OfferCreateSchema)
    @blp.response(201, OfferSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a draft offer (brand; admin with brand_id)."""
        return _out([service.create_offer(web.session(), web.principal(), data)])[0]


@blp.route("/<int:offer_id>")
class OfferItem(MethodView):
    @blp.response(200, OfferSchema)
    def get(self, offer_id: int) -> Any:
        """Read an offer."""
        return _out([service.get_offer(web.session(), web.principal(), offer_id)])[0]

    @blp.arguments(OfferUpdateSchema)
    @blp.response(200, OfferSchema)
    def patch(self, data: dict[str, Any], offer_id: int) -> Any:
        """Change an offer's settings (its brand, admin); events are matched by key."""
        return _out([service.update_offer(web.session(), web.principal(), offer_id, data)])[0]


def _status_view(action: str) -> type[MethodView]:
    class StatusChange(MethodView):
        @blp.response(200, OfferSchema)
        def post(self, offer_id: int) -> Any:
            return _out([service.change_status(web.session(), web.principal(), offer_id, action)])[0]

    StatusChange.post.__doc__ = (
        f"{action.capitalize()} the offer (its brand, admin); 409 when its status does not allow it."
    )
    StatusChange.__name__ = f"Offer{action.capitalize()}"
    return StatusChange


for _action in ("activate", "pause", "archive"):
    blp.route(f"/<int:offer_id>/{_action}", endpoint=f"offer_{_action}")(_status_view(_action))


@blp.route("/<int:offer_id>/applications")
class Applications(MethodView):
    @blp.arguments(AccessListArgs, location="query")
    @blp.response(200, AccessListSchema)
    def get(self, args: dict[str, Any], offer_id: int) -> dict[str, Any]:
        """List applications and invitations (its brand, admin, finance; a partner sees its own)."""
        items = service.list_access(web.session(), web.principal(), offer_id, **args)
        return page([dump_access(a) for a in items], args["limit"])

    @blp.arguments(ApplicationInSchema)
    @blp.response(201, AccessSchema)
    def post(self, data: dict[str, Any], offer_id: int) -> Any:
        """Apply to run an approval-only offer (partner); the answer is pending."""
        return dump_access(service.apply_to_offer(web.session(), web.principal(), offer_id, data.get("note")))


def _decision_view(decision: str) -> type[MethodView]:
    class Decision(MethodView):
        @blp.response(200, AccessSchema)
        def post(self, offer_id: int, access_id: int) -> Any:
            return dump_access(service.decide_access(web.session(), web.principal(), offer_id, access_id, decision))

    Decision.post.__doc__ = f"{decision.capitalize()} a partner's application (its brand, admin)."
    Decision.__name__ = f"Application{decision.capitalize()}"
    return Decision


for _decision in ("approve", "reject"):
    blp.route(f"/<int:offer_id>/applications/<int:access_id>/{_decision}", endpoint=f"application_{_decision}")(
        _decision_view(_decision)
    )


@blp.route("/<int:offer_id>/invitations")
class Invitations(MethodView):
    @blp.arguments(InvitationInSchema)
    @blp.response(201, AccessSchema)
    def post(self, data: dict[str, Any], offer_id: int) -> Any:
        """Invite a partner to a private offer; the invitation is its approval (its brand, admin)."""
        return dump_access(service.invite(web.session(), web.principal(), offer_id, data["partner_id"]))


@blp.route("/<int:offer_id>/overrides")
class Overrides(MethodView):
    @blp.arguments(OverrideListArgs, location="query")
    @blp.response(200, OverrideListSchema)
    def get(self, args: dict[str, Any], offer_id: int) -> dict[str, Any]:
        """List per-partner payout overrides (its brand, admin)."""
        session, principal = web.session(), web.principal()
        items = service.list_overrides(session, principal, offer_id, **args)
        offer = service.get_offer(session, principal, offer_id)
        return page([dump_override(o, offer) for o in items], args["limit"])

    @blp.arguments(OverrideInSchema)
    @blp.response(200, OverrideSchema)
    def put(self, data: dict[str, Any], offer_id: int) -> Any:
        """Set one partner's payout for one event, replacing any earlier one (its brand, admin)."""
        session, principal = web.session(), web.principal()
        override = service.set_override(session, principal, offer_id, data)
        return dump_override(override, service.get_offer(session, principal, offer_id))


@blp.route("/<int:offer_id>/overrides/<int:override_id>")
class OverrideItem(MethodView):
    @blp.response(204)
    def delete(self, offer_id: int, override_id: int) -> None:
        """Remove a per-partner override (its brand, admin)."""
        service.delete_override(web.session(), web.principal(), offer_id, override_id)
