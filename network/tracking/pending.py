"""A click answered but not yet written: what the redirect hands the writer, and what conversions may read."""

from __future__ import annotations

import datetime as dt
import operator
from dataclasses import dataclass
from typing import Any

from network.tracking.models import Click

#: The clicks table's columns, in table order (the writer's rows follow it).
CLICK_COLUMNS = tuple(c.name for c in Click.__table__.columns)


@dataclass(slots=True)
class PendingClick:
    """A click not yet written: the attributes of Click, plus what the flush still has to derive."""

    id: str
    link_id: int
    offer_id: int
    partner_id: int
    created_at: dt.datetime
    sub1: str | None = None
    sub2: str | None = None
    sub3: str | None = None
    sub4: str | None = None
    sub5: str | None = None
    utm: dict[str, str] | None = None
    referrer: str | None = None
    country: str | None = None
    device: str | None = None
    ip: str | None = None
    visitor: str | None = None
    is_unique: bool = False
    is_bot: bool = False
    fallback_reason: str | None = None
    #: Not stored: the user agent, the trusted country header and the method, read at flush.
    agent: str | None = None
    country_header: str | None = None
    head: bool = False
    enriched: bool = False

    @property
    def billable(self) -> bool:
        """Return whether the click may be paid as CPC (see Click.billable)."""
        return self.is_unique and not self.is_bot and self.fallback_reason is None

    def row(self) -> dict[str, Any]:
        """Return the clicks-table row."""
        return dict(zip(CLICK_COLUMNS, ROW(self), strict=True))


#: The clicks-table values of a PendingClick, in column order (one C call).
ROW = operator.attrgetter(*CLICK_COLUMNS)
