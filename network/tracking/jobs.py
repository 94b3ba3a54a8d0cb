"""Scheduled tracking work: forget raw click IPs after the fraud window, and stale visitor windows."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from network.offers.models import Offer
from network.tracking.models import Click, ClickVisitor
from network.tracking.unique import UNIQUE_WINDOW


def purge_click_ips(session: Session, *, now: dt.datetime, retention_days: int) -> int:
    """Null the raw IP of clicks older than `retention_days`, and drop spent visitor windows; return the count."""
    # The keyed visitor hash stays: reports and uniqueness never needed the raw address. Windows of
    # uniqueness that ended long ago decide nothing any more.
    cutoff = now - dt.timedelta(days=retention_days)
    purged = 0
    # Offer by offer, so each UPDATE walks the (offer_id, created_at) index: clicks carry no index of
    # their own for this daily job, as every index slows the click writer.
    for offer_id in session.scalars(select(Offer.id).order_by(Offer.id)):
        result = session.execute(
            update(Click)
            .where(Click.offer_id == offer_id, Click.created_at < cutoff, Click.ip.is_not(None))
            .values(ip=None)
            .execution_options(synchronize_session=False)
        )
        purged += result.rowcount  # type: ignore[attr-defined]
    session.execute(
        delete(ClickVisitor)
        .where(ClickVisitor.window_start < now - 2 * UNIQUE_WINDOW)
        .execution_options(synchronize_session=False)
    )
    return purged
