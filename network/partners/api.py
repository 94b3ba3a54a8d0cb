"""HTTP API for partners."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from network import web
from network.partners import service
from network.partners.schemas import (
    PartnerCreateSchema,
    PartnerListArgs,
    PartnerListSchema,
    PartnerSchema,
    PartnerSecretSchema,
    PartnerStatusSchema,
    PartnerUpdateSchema,
)
from network.schemas import page

blp = web.Blueprint("partners", __name__, url_prefix="/api/v1/partners", description="Partners (affiliates)")
blp.before_request(web.authenticate)


@blp.route("")
class Partners(MethodView):
    @blp.arguments(PartnerListArgs, location="query")
    @blp.response(200, PartnerListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List partners (admin, finance; a partner sees itself)."""
        return page(service.list_partners(web.session(), web.principal(), **args), args["limit"])

    @blp.arguments(PartnerCreateSchema)
    @blp.response(201, PartnerSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Onboard a partner (admin)."""
        return service.create_partner(web.session(), web.principal(), **data)


@blp.route("/<int:partner_id>")
class PartnerItem(MethodView):
    @blp.response(200, PartnerSchema)
    def get(self, partner_id: int) -> Any:
        """Read a partner (admin, finance, the partner itself)."""
        return service.get_partner(web.session(), web.principal(), partner_id)

    @blp.arguments(PartnerUpdateSchema)
    @blp.response(200, PartnerSchema)
    def patch(self, data: dict[str, Any], partner_id: int) -> Any:
        """Change a partner's profile and postback URL (the partner itself, admin; the threshold: admin)."""
        settings = web.settings()
        return service.update_partner(
            web.session(),
            web.principal(),
            partner_id,
            allow_http=settings.postback_allow_http,
            allowed_networks=settings.postback_allowed_networks,
            **data,
        )


@blp.route("/<int:partner_id>/status")
class PartnerStatus(MethodView):
    @blp.arguments(PartnerStatusSchema)
    @blp.response(200, PartnerSchema)
    def post(self, data: dict[str, Any], partner_id: int) -> Any:
        """Activate, suspend, reject or return a partner to pending (admin)."""
        return service.set_status(web.session(), web.principal(), partner_id, data["status"])


@blp.route("/<int:partner_id>/postback-secret")
class PostbackSecret(MethodView):
    @blp.response(200, PartnerSecretSchema)
    def get(self, partner_id: int) -> Any:
        """Read the secret that signs POST deliveries (the partner itself, admin)."""
        return {"postback_secret": service.postback_secret(web.session(), web.principal(), partner_id)}

    @blp.response(200, PartnerSecretSchema)
    def post(self, partner_id: int) -> Any:
        """Rotate the secret that signs POST deliveries (the partner itself, admin)."""
        partner = service.rotate_postback_secret(web.session(), web.principal(), partner_id)
        return {"postback_secret": partner.postback_secret}
