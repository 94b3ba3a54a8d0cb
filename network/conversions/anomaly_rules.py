"""Pure rules of the anomaly job (network/conversions/anomalies.py): which partners of an offer stand
far from its median, and the evidence of it. No database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

#: A partner's conversion rate this many times the offer's median, or its median time from click to
#: conversion this many times shorter than the offer's, is an anomaly.
ANOMALY_FACTOR = 3
#: What a median and a partner's own figures need before they say anything: partners on the offer,
#: a partner's clicks, and its conversions.
ANOMALY_MIN_PARTNERS = 3
ANOMALY_MIN_CLICKS = 20
ANOMALY_MIN_CONVERSIONS = 5


@dataclass(frozen=True, slots=True)
class PartnerFigures:
    """One partner's clicks on an offer over a period, and the seconds from click to each accepted conversion."""

    partner_id: int
    clicks: int
    seconds: tuple[float, ...]


def _median(values: list[Fraction]) -> Fraction:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _rate(value: Fraction) -> str:
    return f"{float(value):.4f}"


def anomalies(figures: list[PartnerFigures], *, start: dt.datetime, end: dt.datetime) -> dict[int, dict[str, Any]]:
    """Return the evidence of each partner whose conversion rate or time to convert is far from the offer's median.

    Only partners with enough clicks (or conversions) count towards a median, and a median needs
    ANOMALY_MIN_PARTNERS of them; a partner is judged only on figures it has enough of.
    """
    period = {"from": start.isoformat(), "to": end.isoformat()}
    found = {partner_id: {**evidence, **period} for partner_id, evidence in _rate_anomalies(figures).items()}
    for partner_id, evidence in _time_anomalies(figures).items():
        found.setdefault(partner_id, {**evidence, **period})
    return found


def _rate_anomalies(figures: list[PartnerFigures]) -> dict[int, dict[str, Any]]:
    """Partners whose conversion rate is ANOMALY_FACTOR times the median of those with enough clicks."""
    rated = {f.partner_id: Fraction(len(f.seconds), f.clicks) for f in figures if f.clicks >= ANOMALY_MIN_CLICKS}
    if len(rated) < ANOMALY_MIN_PARTNERS:
        return {}
    median = _median(list(rated.values()))
    converted = {f.partner_id for f in figures if len(f.seconds) >= ANOMALY_MIN_CONVERSIONS}
    return {
        partner_id: {"kind": "conversion_rate", "cr": _rate(rate), "median": _rate(median)}
        for partner_id, rate in rated.items()
        if partner_id in converted and rate > median * ANOMALY_FACTOR
    }


def _time_anomalies(figures: list[PartnerFigures]) -> dict[int, dict[str, Any]]:
    """Partners whose median time to convert is ANOMALY_FACTOR times shorter than the median of the others'."""
    timed = {
        f.partner_id: _median([Fraction(s) for s in f.seconds])
        for f in figures
        if len(f.seconds) >= ANOMALY_MIN_CONVERSIONS
    }
    if len(timed) < ANOMALY_MIN_PARTNERS:
        return {}
    median = _median(list(timed.values()))
    return {
        partner_id: {"kind": "time_to_convert", "median_seconds": int(seconds), "offer_median_seconds": int(median)}
        for partner_id, seconds in timed.items()
        if seconds * ANOMALY_FACTOR < median
    }
