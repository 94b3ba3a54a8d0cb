"""HTTP API for partners."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from network import money, web
from network.auth import Role
from network.errors import ValidationError
from network.partners import service
from network.partners.models import Partner
from network.partners.schemas import (
    PartnerAdminUpdateSchema,
    PartnerCreateSchema,
    PartnerListSchema,
    PartnerSchema,
    PartnerSecretSchema,
    PartnerStatusSchema,
)

blp = Blueprint("partners", __name__, url_prefix="/api/v1/partners", description="Partners (affiliates)")
blp.before_request(web.authenticate)


def _dump(partner: Partner) -> dict[str, Any]:
    return {c: getattr(partner, c) for c in PartnerSchema._declared_fields}


@blp.route("")
class Partners(MethodView):
    @blp.response(200, PartnerListSchema)
    def get(self) -> dict[str, Any]:
        """List partners (a partner sees itself)."""
        return {"items": [_dump(p) for p in service.list_partners(web.session(), web.principal())]}

    @blp.arguments(PartnerCreateSchema)
    @blp.response(201, PartnerSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Onboard a partner (admin)."""
        return _dump(service.create_partner(web.session(), web.principal(), **data))


@blp.route("/<int:partner_id>")
class PartnerItem(MethodView):
    @blp.response(200, PartnerSchema)
    def get(self, partner_id: int) -> Any:
        """Read a partner."""
        return _dump(service.get_partner(web.session(), web.principal(), partner_id))

    @blp.arguments(PartnerAdminUpdateSchema)
    @blp.response(200, PartnerSchema)
    def patch(self, data: dict[str, Any], partner_id: int) -> Any:
        """Change a partner's profile and postback URL (the partner itself; admin also its threshold)."""
        principal = web.principal()
        if "payout_min_amount" in data:
            if principal.role is not Role.ADMIN:
                raise ValidationError("payout_min_amount may only be set by an admin", field="payout_min_amount")
            if data["payout_min_amount"] is not None:
                try:
                    money.parse_amount(data["payout_min_amount"], "USD")
                except money.MoneyError as exc:
                    raise ValidationError(f"payout_min_amount: {exc}", field="payout_min_amount") from exc
        settings = web.settings()
        partner = service.update_partner(
            web.session(),
            principal,
            partner_id,
            allow_http=settings.postback_allow_http,
            allowed_networks=settings.postback_allowed_networks,
            **data,
        )
        return _dump(partner)


@blp.route("/<int:partner_id>/status")
class PartnerStatus(MethodView):
    @blp.arguments(PartnerStatusSchema)
    @blp.response(200, PartnerSchema)
    def post(self, data: dict[str, Any], partner_id: int) -> Any:
        """Activate or suspend a partner (admin)."""
        return _dump(service.set_status(web.session(), web.principal(), partner_id, data["status"]))


@blp.route("/<int:partner_id>/postback-secret")
class PostbackSecret(MethodView):
    @blp.response(200, PartnerSecretSchema)
    def get(self, partner_id: int) -> Any:
        """Read the secret that signs POST deliveries (the partner itself, admin)."""
        partner = service.get_partner(web.session(), web.principal(), partner_id)
        service.require(web.principal(), Role.ADMIN, Role.PARTNER)
        return {"postback_secret": partner.postback_secret}

    @blp.response(200, PartnerSecretSchema)
    def post(self, partner_id: int) -> Any:
        """Rotate the secret that signs POST deliveries."""
        partner = service.rotate_postback_secret(web.session(), web.principal(), partner_id)
        return {"postback_secret": partner.postback_secret}
