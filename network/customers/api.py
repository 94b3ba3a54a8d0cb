"""HTTP API for coupon codes and bound customers."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from network import web
from network.clock import now_utc
from network.customers import service
from network.customers.schemas import (
    CouponInSchema,
    CouponListArgs,
    CouponListSchema,
    CouponSchema,
    CustomerListArgs,
    CustomerListSchema,
    CustomerSchema,
    MoveInSchema,
    dump_coupon,
    dump_customer,
)
from network.schemas import page

blp = web.Blueprint("customers", __name__, url_prefix="/api/v1", description="Coupon codes and bound customers")
blp.before_request(web.authenticate)


@blp.route("/coupons")
class Coupons(MethodView):
    @blp.arguments(CouponListArgs, location="query")
    @blp.response(200, CouponListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List coupon codes: a brand its own, a partner those assigned to it, admin and finance all."""
        items = service.list_coupons(web.session(), web.principal(), **args)
        return page([dump_coupon(c) for c in items], args["limit"])

    @blp.arguments(CouponInSchema)
    @blp.response(201, CouponSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a coupon code for one of the brand's offers, assigned to a partner (brand, admin)."""
        return dump_coupon(service.create_coupon(web.session(), web.principal(), **data))


@blp.route("/coupons/<int:coupon_id>")
class CouponItem(MethodView):
    @blp.response(200, CouponSchema)
    def get(self, coupon_id: int) -> dict[str, Any]:
        """Read a coupon code."""
        return dump_coupon(service.get_coupon(web.session(), web.principal(), coupon_id))

    @blp.response(204)
    def delete(self, coupon_id: int) -> None:
        """Delete a coupon code (its brand, admin); its conversions keep the code."""
        service.delete_coupon(web.session(), web.principal(), coupon_id)


@blp.route("/customers")
class Customers(MethodView):
    @blp.arguments(CustomerListArgs, location="query")
    @blp.response(200, CustomerListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List bound customers: a brand its own, a partner those bound to it, admin and finance all."""
        items = service.list_customers(web.session(), web.principal(), **args)
        return page([dump_customer(c) for c in items], args["limit"])


@blp.route("/customers/<int:customer_id>")
class CustomerItem(MethodView):
    @blp.response(200, CustomerSchema)
    def get(self, customer_id: int) -> dict[str, Any]:
        """Read a bound customer (by the binding's id)."""
        return dump_customer(service.get_customer(web.session(), web.principal(), customer_id))

    @blp.response(204)
    def delete(self, customer_id: int) -> None:
        """Unbind a customer (its brand, admin; audited): postbacks without a click no longer attribute it."""
        service.unbind_customer(web.session(), web.principal(), customer_id, now=now_utc())


@blp.route("/customers/<int:customer_id>/move")
class CustomerMove(MethodView):
    @blp.arguments(MoveInSchema)
    @blp.response(200, CustomerSchema)
    def post(self, data: dict[str, Any], customer_id: int) -> dict[str, Any]:
        """Bind a customer to another partner on the same offer (its brand, admin; audited)."""
        customer = service.move_customer(web.session(), web.principal(), customer_id, now=now_utc(), **data)
        return dump_customer(customer)
