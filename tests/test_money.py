"""Money: strict parsing, formatting back, and one half-up rounding, for exponents 0, 2 and 3."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from network import money
from network.money import MoneyError

#: One currency per ISO 4217 exponent.
BY_EXPONENT = {0: "JPY", 2: "USD", 3: "BHD"}
CURRENCIES = st.sampled_from(sorted(BY_EXPONENT.values()))
MINOR = st.integers(min_value=0, max_value=10**15 - 1)


@pytest.mark.parametrize(
    ("currency", "exp"),
    [("JPY", 0), ("KRW", 0), ("USD", 2), ("EUR", 2), ("GBP", 2), ("BHD", 3), ("KWD", 3)],
)
def test_exponents_follow_iso_4217(currency: str, exp: int):
    assert money.exponent(currency) == exp


@pytest.mark.parametrize("currency", ["usd", "XYZ", "", "US", "USDD", None, 840])
def test_unknown_currencies_are_refused(currency):
    with pytest.raises(MoneyError):
        money.exponent(currency)


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.50", "USD", 1250),
        ("12.5", "USD", 1250),
        ("12", "USD", 1200),
        ("0", "USD", 0),
        ("0.01", "USD", 1),
        ("1000", "JPY", 1000),
        ("1.234", "BHD", 1234),
        ("1.2", "BHD", 1200),
        ("999999999999999.99", "USD", 99999999999999999),
    ],
)
def test_parse_reads_major_units_into_minor_units(text: str, currency: str, minor: int):
    assert money.parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("NaN", "USD"),
        ("nan", "USD"),
        ("Infinity", "USD"),
        ("-Infinity", "USD"),
        ("inf", "USD"),
        ("1e9", "USD"),
        ("1E2", "USD"),
        ("1.5e1", "USD"),
        ("1,000", "USD"),
        ("1,000.00", "USD"),
        ("100,00", "USD"),
        ("1_000", "USD"),
        ("1 000", "USD"),
        ("\uff11\uff10\uff10", "USD"),  # fullwidth digits
        ("٣", "USD"),  # Arabic-Indic digit
        ("1२", "USD"),  # Devanagari digit
        ("10.005", "USD"),
        ("1.5", "JPY"),
        ("1.0", "JPY"),
        ("1.2345", "BHD"),
        ("-5", "USD"),
        ("-0.01", "USD"),
        ("+5", "USD"),
        (" 5", "USD"),
        ("5 ", "USD"),
        ("5\n", "USD"),
        ("5.", "USD"),
        (".5", "USD"),
        ("", "USD"),
        ("0x10", "USD"),
        ("1234567890123456", "USD"),
        ("12.50", "XYZ"),
    ],
)
def test_parse_refuses_anything_loose(text: str, currency: str):
    with pytest.raises(MoneyError):
        money.parse_amount(text, currency)


@pytest.mark.parametrize("value", [12.5, 12, Decimal("12.50"), None, b"12.50"])
def test_parse_takes_strings_only_so_floats_never_touch_money(value):
    with pytest.raises(MoneyError):
        money.parse_amount(value, "USD")  # type: ignore[arg-type]


def test_negative_amounts_only_where_allowed():
    assert money.parse_amount("-5.25", "USD", allow_negative=True) == -525
    with pytest.raises(MoneyError):
        money.parse_amount("-5.25", "USD")


@given(minor=MINOR, currency=CURRENCIES)
def test_format_then_parse_round_trips(minor: int, currency: str):
    text = money.format_amount(minor, currency)
    assert money.parse_amount(text, currency) == minor
    exp = money.exponent(currency)
    # The canonical form has exactly the currency's decimals, and no sign, exponent or separator.
    assert text.isascii() and "e" not in text.lower() and "," not in text
    assert (len(text.partition(".")[2]) if "." in text else 0) == exp


@given(minor=MINOR, currency=CURRENCIES)
def test_negative_amounts_round_trip_when_allowed(minor: int, currency: str):
    text = money.format_amount(-minor, currency)
    assert money.parse_amount(text, currency, allow_negative=True) == -minor


@given(whole=st.integers(min_value=0, max_value=10**12), data=st.data(), currency=CURRENCIES)
def test_parse_is_exact_for_any_allowed_number_of_decimals(whole: int, data: st.DataObject, currency: str):
    exp = money.exponent(currency)
    places = data.draw(st.integers(min_value=0, max_value=exp))
    frac = data.draw(st.integers(min_value=0, max_value=10**places - 1)) if places else 0
    text = f"{whole}.{frac:0{places}d}" if places else str(whole)
    assert money.parse_amount(text, currency) == Decimal(text) * 10**exp
    assert Decimal(money.format_amount(money.parse_amount(text, currency), currency)) == Decimal(text)


@given(
    whole=st.integers(min_value=0, max_value=10**9), extra=st.integers(min_value=1, max_value=4), currency=CURRENCIES
)
def test_more_decimals_than_the_currency_has_are_refused(whole: int, extra: int, currency: str):
    places = money.exponent(currency) + extra
    with pytest.raises(MoneyError):
        money.parse_amount(f"{whole}.{'1' * places}", currency)


@given(text=st.text(max_size=24), currency=CURRENCIES)
def test_any_text_either_parses_exactly_or_is_refused(text: str, currency: str):
    try:
        minor = money.parse_amount(text, currency)
    except MoneyError:
        return
    # Only plain ASCII decimals get through, and they mean exactly what they say.
    assert text.isascii() and all(c in "0123456789." for c in text)
    assert Decimal(minor) / 10 ** money.exponent(currency) == Decimal(text)


@given(digits=st.text(alphabet=st.characters(categories=["Nd"]), min_size=1, max_size=6), currency=CURRENCIES)
def test_non_ascii_digits_are_refused(digits: str, currency: str):
    if digits.isascii():
        return
    with pytest.raises(MoneyError):
        money.parse_amount(digits, currency)


# ---- percentages and rounding ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scaled"),
    [("12.5", 125_000), ("10", 100_000), ("0", 0), ("100", 1_000_000), ("0.0001", 1), ("33.3333", 333_333)],
)
def test_percent_parses_into_ten_thousandths(text: str, scaled: int):
    assert money.parse_percent(text) == scaled
    assert Decimal(money.format_percent(scaled)) == Decimal(text)


@pytest.mark.parametrize(
    "text", ["100.0001", "101", "-1", "1e2", "NaN", "Infinity", "12.34567", "12,5", "", " 5", "\uff15", "12.5%", 12.5]
)
def test_percent_refuses_anything_loose_or_out_of_range(text):
    with pytest.raises(MoneyError):
        money.parse_percent(text)


def _half_up(value: Fraction) -> int:
    """Round a fraction to an integer, ties away from zero (the documented rule)."""
    magnitude = abs(value)
    rounded = int(magnitude + Fraction(1, 2))  # floor(x + 1/2) for x >= 0
    return rounded if value >= 0 else -rounded


@given(
    amount=st.integers(min_value=-(10**15), max_value=10**15),
    percent=st.integers(min_value=0, max_value=100 * money.PERCENT_SCALE),
)
def test_percent_of_is_exact_then_rounded_half_up_once(amount: int, percent: int):
    exact = Fraction(amount * percent, 100 * money.PERCENT_SCALE)
    assert money.percent_of(amount, percent) == _half_up(exact)


@pytest.mark.parametrize(
    ("currency", "amount", "percent", "expected"),
    [
        # Exact ties of half a minor unit round up, for every exponent (RELIABILITY.md case 19).
        ("JPY", "5", "10", 1),  # 0.5 yen -> 1
        ("JPY", "15", "10", 2),  # 1.5 yen -> 2
        ("JPY", "25", "10", 3),  # 2.5 yen -> 3 (not banker's 2)
        ("USD", "0.05", "10", 1),  # 0.5 cent -> 1
        ("USD", "0.25", "10", 3),  # 2.5 cents -> 3
        ("USD", "80.00", "10", 800),  # SPEC §9: partner earns 8.00
        ("USD", "80.00", "15", 1200),  # SPEC §9: network earns 12.00
        ("USD", "0.04", "12.5", 1),  # 0.5 cent -> 1
        ("BHD", "0.005", "10", 1),  # 0.5 fils -> 1
        ("BHD", "0.025", "10", 3),  # 2.5 fils -> 3
        ("BHD", "0.004", "10", 0),  # 0.4 fils -> 0
        ("USD", "0.06", "10", 1),  # 0.6 cent -> 1
    ],
)
def test_revshare_ties_round_half_up_for_each_exponent(currency: str, amount: str, percent: str, expected: int):
    minor = money.parse_amount(amount, currency)
    assert money.percent_of(minor, money.parse_percent(percent)) == expected


def test_negative_ties_round_away_from_zero():
    assert money.percent_of(-5, money.parse_percent("10")) == -1
    assert money.round_half_up(Decimal("-2.5")) == -3
    assert money.round_half_up(Decimal("2.4999")) == 2


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [("50.00", "USD", 5000), ("50.00", "JPY", 50), ("50.50", "JPY", 51), ("50", "BHD", 50000), ("0.001", "USD", 1)],
)
def test_a_threshold_for_every_currency_rounds_up_what_a_currency_cannot_hold(text, currency, minor):
    assert money.parse_threshold(text, currency) == minor


@pytest.mark.parametrize("text", ["-1", "NaN", "1e3", "50,00", "", "\uff11"])
def test_a_threshold_is_a_plain_non_negative_decimal(text):
    with pytest.raises(MoneyError):
        money.parse_threshold(text, "USD")
