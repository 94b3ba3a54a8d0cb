"""HTTP API for keys and brands."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from network import web
from network.accounts import service
from network.accounts.models import Brand
from network.accounts.schemas import (
    BrandCreateSchema,
    BrandListSchema,
    BrandSchema,
    BrandUpdateSchema,
    BrandWithTokenSchema,
    KeyCreateSchema,
    KeyListArgs,
    KeyListSchema,
    KeySchema,
    NewKeySchema,
)
from network.schemas import PageArgs, attrs, page

blp = web.Blueprint("accounts", __name__, url_prefix="/api/v1", description="API keys and brands")
blp.before_request(web.authenticate)


@blp.route("/keys")
class Keys(MethodView):
    @blp.arguments(KeyListArgs, location="query")
    @blp.response(200, KeyListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List API keys, never the keys themselves (admin)."""
        return page(service.list_keys(web.session(), web.principal(), **args), args["limit"])

    @blp.arguments(KeyCreateSchema)
    @blp.response(201, NewKeySchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create an API key; the key is shown in this response only (admin)."""
        row, key = service.issue_key(web.session(), web.principal(), **data)
        return {**attrs(row, KeySchema), "key": key}


@blp.route("/keys/<int:key_id>")
class KeyItem(MethodView):
    @blp.response(200, KeySchema)
    def get(self, key_id: int) -> Any:
        """Read a key's record (admin; any key may read itself)."""
        return service.get_key(web.session(), web.principal(), key_id)


@blp.route("/keys/<int:key_id>/revoke")
class RevokeKey(MethodView):
    @blp.response(200, KeySchema)
    def post(self, key_id: int) -> Any:
        """Revoke an API key at once (admin; any key may revoke itself)."""
        return service.revoke_key(web.session(), web.principal(), key_id)


def _brand(brand: Brand) -> dict[str, Any]:
    """Return a brand, with its postback token only for those who may read it."""
    if service.may_see_token(web.principal(), brand):
        return attrs(brand, BrandWithTokenSchema)
    return attrs(brand, BrandSchema)


@blp.route("/brands")
class Brands(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, BrandListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List brands (admin, finance; a brand sees itself)."""
        return page(service.list_brands(web.session(), web.principal(), **args), args["limit"])

    @blp.arguments(BrandCreateSchema)
    @blp.response(201, BrandWithTokenSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a brand with its postback token (admin)."""
        return service.create_brand(web.session(), web.principal(), **data)


@blp.route("/brands/<int:brand_id>")
class BrandItem(MethodView):
    @blp.response(200, BrandWithTokenSchema)
    def get(self, brand_id: int) -> Any:
        """Read a brand (admin, finance, the brand itself; the token only for admin and the brand)."""
        return _brand(service.get_brand(web.session(), web.principal(), brand_id))

    @blp.arguments(BrandUpdateSchema)
    @blp.response(200, BrandWithTokenSchema)
    def patch(self, data: dict[str, Any], brand_id: int) -> Any:
        """Change a brand's name or settings (admin, the brand itself)."""
        return _brand(service.update_brand(web.session(), web.principal(), brand_id, **data))


@blp.route("/brands/<int:brand_id>/postback-token")
class BrandToken(MethodView):
    @blp.response(200, BrandWithTokenSchema)
    def post(self, brand_id: int) -> Any:
        """Rotate the brand's postback token; the old one stops working at once (admin, the brand)."""
        return service.rotate_postback_token(web.session(), web.principal(), brand_id)
