"""Money as integer minor units of an ISO 4217 currency; strict parsing and one rounding rule."""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

#: ISO 4217 minor-unit exponents that differ from 2; every other known code has 2.
_EXPONENTS: dict[str, int] = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0, "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}  # fmt: skip
_TWO = [
    "AED",
    "AUD",
    "BRL",
    "CAD",
    "CHF",
    "CNY",
    "CZK",
    "DKK",
    "EUR",
    "GBP",
    "HKD",
    "HUF",
    "IDR",
    "ILS",
    "INR",
    "MXN",
    "MYR",
    "NOK",
    "NZD",
    "PHP",
    "PLN",
    "RON",
    "SAR",
    "SEK",
    "SGD",
    "THB",
    "TRY",
    "TWD",
    "USD",
    "ZAR",
]
CURRENCIES: frozenset[str] = frozenset(_TWO) | frozenset(_EXPONENTS)

# ASCII digits only: str.isdigit() and Decimal() accept other scripts' digits.
_AMOUNT = re.compile(r"\A(-?)([0-9]+)(?:\.([0-9]+))?\Z")
_PERCENT = re.compile(r"\A([0-9]{1,3})(?:\.([0-9]{1,4}))?\Z")

#: Percentages are stored as integers of 1/10,000 of a percent ("12.5" -> 125000).
PERCENT_SCALE = 10_000


class MoneyError(ValueError):
    """A value that is not a valid amount, percentage or currency."""


def exponent(currency: str) -> int:
    """Return the ISO 4217 minor-unit exponent of `currency`."""
    code = check_currency(currency)
    return _EXPONENTS.get(code, 2)


def check_currency(currency: str) -> str:
    """Return the currency code if it is a supported ISO 4217 code, else raise."""
    if not isinstance(currency, str) or currency not in CURRENCIES:
        raise MoneyError(f"unsupported currency {currency!r}")
    return currency


def check_amount_syntax(text: str, *, allow_negative: bool = False) -> tuple[str, str, str]:
    """Return (sign, whole, fraction) of a plain decimal string, or raise: the checks that need no currency."""
    if not isinstance(text, str):
        raise MoneyError("amount must be a decimal string")
    match = _AMOUNT.match(text)
    if match is None:
        raise MoneyError("amount must be a plain decimal number like 12.50")
    sign, whole, frac = match.groups()
    if len(whole) > 15:
        raise MoneyError("amount is too large")
    if sign and not allow_negative:
        raise MoneyError("amount must not be negative")
    return sign, whole, frac or ""


def parse_amount(text: str, currency: str, *, allow_negative: bool = False) -> int:
    """Parse a decimal string in major units ("12.50") into minor units, refusing anything loose."""
    sign, whole, frac = check_amount_syntax(text, allow_negative=allow_negative)
    exp = exponent(currency)
    if len(frac) > exp:
        raise MoneyError(f"amount has more than {exp} decimal places for {currency}")
    minor = int(whole) * 10**exp + (int(frac.ljust(exp, "0")) if exp else 0)
    return -minor if sign else minor


def parse_threshold(text: str, currency: str) -> int:
    """Parse one threshold meant for every currency into minor units of `currency`, rounding up
    the decimals the currency lacks ("50.00" JPY -> 50, "50.50" JPY -> 51)."""
    match = _AMOUNT.match(text) if isinstance(text, str) else None
    if match is None or match.group(1):
        raise MoneyError("threshold must be a plain non-negative decimal number like 50.00")
    if len(match.group(2)) > 15:
        raise MoneyError("threshold is too large")
    return int(Decimal(text).scaleb(exponent(currency)).to_integral_value(rounding=ROUND_CEILING))


def format_amount(minor: int, currency: str) -> str:
    """Format minor units as a decimal string in major units."""
    exp = exponent(currency)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(int(minor)), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d}" if exp else f"{sign}{whole}"


def parse_percent(text: str) -> int:
    """Parse a percentage string ("12.5") into 1/10,000ths of a percent, 0..100."""
    if not isinstance(text, str):
        raise MoneyError("percent must be a decimal string")
    match = _PERCENT.match(text)
    if match is None:
        raise MoneyError("percent must be a decimal between 0 and 100 with at most 4 decimals")
    whole, frac = match.groups()
    value = int(whole) * PERCENT_SCALE + int((frac or "").ljust(4, "0"))
    if value > 100 * PERCENT_SCALE:
        raise MoneyError("percent must not exceed 100")
    return value


def format_percent(scaled: int) -> str:
    """Format 1/10,000ths of a percent back to a short decimal string."""
    value = Decimal(scaled) / PERCENT_SCALE
    text = format(value.normalize(), "f")
    return text


def percent_of(amount_minor: int, percent_scaled: int) -> int:
    """Return `percent` of an amount in minor units, computed exactly, rounded half-up once."""
    exact = Decimal(amount_minor) * Decimal(percent_scaled) / Decimal(100 * PERCENT_SCALE)
    return round_half_up(exact)


def round_half_up(value: Decimal) -> int:
    """Round an exact decimal number of minor units to an integer, ties away from zero."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))
