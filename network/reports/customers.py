"""Customer figures of a report grouped by partner: distinct customers and their value over the period.

Read raw from the period's conversions that carry a customer_id (ix_conversions_brand_customer keeps
them apart), one query per report, and added to the rows of the page; rows without customers get 0.
Definitions: network.reports.rules (`CUSTOMER_METRICS`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from network.auth import Principal
from network.conversions.models import Conversion
from network.reports import rules
from network.reports.sources import Scope

_COUNTED = ("pending", "approved")


def add(
    session: Session,
    principal: Principal,
    rows: list[dict[str, Any]],
    dims: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    where: Scope,
) -> None:
    """Add the customer columns to report rows grouped by partner (and maybe offer)."""
    if not rows:
        return
    keys = [Conversion.partner_id] + ([Conversion.offer_id] if "offer" in dims else []) + [Conversion.currency]
    query = (
        select(
            *keys,
            func.count(distinct(Conversion.customer_id)).label("customers"),
            func.coalesce(func.sum(Conversion.amount_minor), 0).label("sale_minor"),
            func.coalesce(func.sum(Conversion.payout_minor), 0).label("payout_minor"),
        )
        .where(
            Conversion.customer_id.is_not(None),
            Conversion.status.in_(_COUNTED),
            Conversion.created_at >= start,
            Conversion.created_at < end,
        )
        .group_by(*keys)
    )
    for column, value in (
        (Conversion.brand_id, where.brand_id),
        (Conversion.partner_id, where.partner_id),
        (Conversion.offer_id, where.offer_filter),
        (Conversion.partner_id, where.partner_filter),
    ):
        if value is not None:
            query = query.where(column == value)
    found = {tuple(row[:-3]): row for row in session.execute(query)}
    for row in rows:
        key = (row["partner_id"], *([row["offer_id"]] if "offer" in dims else []), row["currency"])
        hit = found.get(key)
        customers, sale, payout = (int(hit.customers), int(hit.sale_minor), int(hit.payout_minor)) if hit else (0, 0, 0)
        row.update(rules.customer_values(principal.role, row["currency"], customers, sale, payout))
