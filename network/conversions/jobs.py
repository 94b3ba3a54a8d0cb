"""Scheduled conversion work: pending conversions past their hold become approved."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from network.conversions import statuses
from network.conversions.models import Conversion, ConversionStatus

#: Conversions approved per query; the job loops until none are due.
BATCH = 500


def mature_holds(session: Session, *, now: dt.datetime) -> int:
    """Approve pending conversions whose hold has passed (flagged ones have none); return how many.

    Each approval is a conditional UPDATE, so two schedulers running it at once approve each
    conversion once, and a conversion rejected meanwhile stays rejected.
    """
    approved = 0
    after = 0
    while True:
        due = session.scalars(
            select(Conversion)
            .where(
                Conversion.status == ConversionStatus.PENDING.value,
                Conversion.hold_until.is_not(None),
                Conversion.hold_until <= now,
                Conversion.id > after,
            )
            .order_by(Conversion.id)
            .limit(BATCH)
        ).all()
        if not due:
            return approved
        for conversion in due:
            if statuses.transition(session, conversion, "approved", None, actor="system:hold", at=now, due_by=now):
                approved += 1
        after = due[-1].id
