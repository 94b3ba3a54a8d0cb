"""The anomaly job: partners whose conversion rate or time to convert is far from their offer's median.

Daily, over the last `DAYS` days: each offer's clicks per partner come from the hourly rollups
(rollup_hours, the hours rolled up), its accepted conversions (pending, approved, reversed) from the
conversions themselves (their times from click to conversion). The pure rule
(anomaly_rules.anomalies) names the partners; each of their pending and approved conversions of the offer
in the period gets the `anomaly` flag with its evidence (the figure, the median, the period). A
pending one is held for review when the offer holds anomalies (its hold ends: no hold_until); none
is ever rejected, and an approved one stays approved, flagged for the brand to look at. Each update
is conditional on the status read, so a brand's decision meanwhile wins; a conversion already
flagged is left as it is, so the job may run again over the same days.

API: `flag_anomalies`, `DAYS`.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from network.conversions import anomaly_rules
from network.conversions.models import Conversion, ConversionStatus
from network.offers import rules as offer_rules
from network.offers.models import Offer, OfferStatus
from network.rollups.models import BY_OFFER_AND_PARTNER, RollupHour

#: The period each run looks back over.
DAYS = 7
_ACCEPTED = (ConversionStatus.PENDING.value, ConversionStatus.APPROVED.value, ConversionStatus.REVERSED.value)
_OPEN = (ConversionStatus.PENDING.value, ConversionStatus.APPROVED.value)


def _clicks(session: Session, start: dt.datetime, end: dt.datetime) -> dict[int, dict[int, int]]:
    """Return clicks by offer and partner over the period, from the hourly rollups (their offer-and-partner cube)."""
    found: dict[int, dict[int, int]] = defaultdict(dict)
    rows = session.execute(
        select(RollupHour.offer_id, RollupHour.partner_id, func.sum(RollupHour.clicks))
        .where(RollupHour.cube == BY_OFFER_AND_PARTNER, RollupHour.hour >= start, RollupHour.hour < end)
        .group_by(RollupHour.offer_id, RollupHour.partner_id)
    )
    for offer_id, partner_id, clicks in rows:
        if offer_id is not None:
            found[offer_id][partner_id] = int(clicks or 0)
    return found


def _figures(
    session: Session, offer_id: int, clicks: dict[int, int], start: dt.datetime, end: dt.datetime
) -> list[anomaly_rules.PartnerFigures]:
    """Return each partner's clicks and seconds to convert on an offer over the period."""
    seconds: dict[int, list[float]] = defaultdict(list)
    rows = session.execute(
        select(Conversion.partner_id, Conversion.created_at, Conversion.clicked_at).where(
            Conversion.offer_id == offer_id,
            Conversion.created_at >= start,
            Conversion.created_at < end,
            Conversion.status.in_(_ACCEPTED),
        )
    )
    for partner_id, created_at, clicked_at in rows:
        if clicked_at is not None:  # a customer's or a coupon's conversion has no click to time
            seconds[partner_id].append(max((created_at - clicked_at).total_seconds(), 0.0))
    partners = sorted(set(clicks) | set(seconds))
    return [anomaly_rules.PartnerFigures(p, clicks.get(p, 0), tuple(seconds.get(p, ()))) for p in partners]


def _flag(
    session: Session, offer: Offer, partner_id: int, evidence: dict[str, Any], start: dt.datetime, end: dt.datetime
) -> int:
    """Flag the partner's open conversions of the offer in the period; return how many were flagged."""
    holds = "anomaly" in offer_rules.hold_flags(offer.hold_flags)
    found = session.execute(
        select(Conversion.id, Conversion.status, Conversion.flags, Conversion.evidence, Conversion.hold_until).where(
            Conversion.offer_id == offer.id,
            Conversion.partner_id == partner_id,
            Conversion.created_at >= start,
            Conversion.created_at < end,
            Conversion.status.in_(_OPEN),
        )
    ).all()
    flagged = 0
    for conversion_id, status, flags, known, hold_until in found:
        if "anomaly" in (flags or []):
            continue
        held = None if holds and status == ConversionStatus.PENDING.value else hold_until
        changed = session.execute(
            update(Conversion)
            .where(Conversion.id == conversion_id, Conversion.status == status)
            .values(flags=[*(flags or []), "anomaly"], evidence={**(known or {}), "anomaly": evidence}, hold_until=held)
            .execution_options(synchronize_session=False)
        )
        flagged += changed.rowcount  # type: ignore[attr-defined]
    return flagged


def flag_anomalies(session: Session, *, now: dt.datetime, days: int = DAYS) -> int:
    """Flag the conversions of every partner whose figures on an offer are anomalies over the last `days`; return how many."""
    start = now - dt.timedelta(days=days)
    clicks = _clicks(session, start, now)
    # Offers clicked in the period, and the active ones (conversions on clicks from before it).
    offer_ids = set(clicks) | set(session.scalars(select(Offer.id).where(Offer.status == OfferStatus.ACTIVE.value)))
    flagged = 0
    for offer_id in sorted(offer_ids):
        found = anomaly_rules.anomalies(
            _figures(session, offer_id, clicks.get(offer_id, {}), start, now), start=start, end=now
        )
        if not found:
            continue
        offer = session.get(Offer, offer_id)
        assert offer is not None
        for partner_id, evidence in sorted(found.items()):
            flagged += _flag(session, offer, partner_id, evidence, start, now)
    return flagged
