"""HTTP API for keys and brands."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from network import web
from network.accounts import service
from network.accounts.schemas import (
    BrandCreateSchema,
    BrandListSchema,
    BrandSchema,
    BrandUpdateSchema,
    BrandWithTokenSchema,
    KeyCreateSchema,
    KeyListSchema,
    KeySchema,
    NewKeySchema,
)

blp = Blueprint("accounts", __name__, url_prefix="/api/v1", description="API keys and brands")
blp.before_request(web.authenticate)


@blp.route("/keys")
class Keys(MethodView):
    @blp.response(200, KeyListSchema)
    def get(self) -> dict[str, Any]:
        """List API keys (admin)."""
        return {"items": service.list_keys(web.session(), web.principal())}

    @blp.arguments(KeyCreateSchema)
    @blp.response(201, NewKeySchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create an API key; the key is shown in this response only (admin)."""
        service.require(web.principal(), service.Role.ADMIN)
        row, key = service.create_key(web.session(), **data)
        return {**{c: getattr(row, c) for c in KeySchema._declared_fields}, "key": key}


@blp.route("/keys/<int:key_id>/revoke")
class RevokeKey(MethodView):
    @blp.response(200, KeySchema)
    def post(self, key_id: int) -> Any:
        """Revoke an API key (admin; any key may revoke itself)."""
        return service.revoke_key(web.session(), web.principal(), key_id)


@blp.route("/brands")
class Brands(MethodView):
    @blp.response(200, BrandListSchema)
    def get(self) -> dict[str, Any]:
        """List brands (a brand sees itself)."""
        return {"items": service.list_brands(web.session(), web.principal())}

    @blp.arguments(BrandCreateSchema)
    @blp.response(201, BrandWithTokenSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a brand with its postback token (admin)."""
        return service.create_brand(web.session(), web.principal(), **data)


@blp.route("/brands/<int:brand_id>")
class BrandItem(MethodView):
    @blp.response(200, BrandSchema)
    def get(self, brand_id: int) -> Any:
        """Read a brand."""
        return service.get_brand(web.session(), web.principal(), brand_id)

    @blp.arguments(BrandUpdateSchema)
    @blp.response(200, BrandSchema)
    def patch(self, data: dict[str, Any], brand_id: int) -> Any:
        """Change a brand's name or settings."""
        return service.update_brand(web.session(), web.principal(), brand_id, **data)


@blp.route("/brands/<int:brand_id>/postback-token")
class BrandToken(MethodView):
    @blp.response(200, BrandWithTokenSchema)
    def post(self, brand_id: int) -> Any:
        """Rotate the brand's postback token; the old one stops working at once."""
        return service.rotate_postback_token(web.session(), web.principal(), brand_id)
