"""Money in qəpik with explicit rounding; the FIN format."""

from __future__ import annotations

from fractions import Fraction
from math import floor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haqq.domain.errors import HaqqError, InvalidFin
from haqq.domain.fin import FIN_ALPHABET, check_fin, is_fin
from haqq.domain.money import CURRENCY, MINOR_PER_MAJOR, Rounding, divide, format_azn

# --- format_azn ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "text"),
    [
        (0, "0.00 AZN"),
        (1, "0.01 AZN"),
        (10, "0.10 AZN"),
        (99, "0.99 AZN"),
        (100, "1.00 AZN"),
        (45000, "450.00 AZN"),
        (30050, "300.50 AZN"),
        (99999, "999.99 AZN"),
        (100000, "1,000.00 AZN"),
        (123456789, "1,234,567.89 AZN"),
        (100000000000, "1,000,000,000.00 AZN"),
        (-1, "-0.01 AZN"),
        (-5, "-0.05 AZN"),
        (-45000, "-450.00 AZN"),
        (-123456789, "-1,234,567.89 AZN"),
    ],
)
def test_format_azn(minor: int, text: str) -> None:
    assert format_azn(minor) == text


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_format_azn_round_trips(minor: int) -> None:
    text = format_azn(minor)
    number, currency = text.split(" ")
    assert currency == CURRENCY
    major, cents = number.lstrip("-").replace(",", "").split(".")
    assert len(cents) == 2
    value = int(major) * MINOR_PER_MAJOR + int(cents)
    assert (-value if number.startswith("-") else value) == minor
    assert number.startswith("-") == (minor < 0)


# --- divide ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "numerator", "denominator", "half_up", "half_even", "down"),
    [
        (5, 1, 2, 3, 2, 2),  # 2.5
        (7, 1, 2, 4, 4, 3),  # 3.5
        (1, 1, 2, 1, 0, 0),  # 0.5
        (3, 1, 2, 2, 2, 1),  # 1.5
        (-5, 1, 2, -3, -2, -3),  # -2.5: half up is away from zero; down is the floor
        (-1, 1, 2, -1, 0, -1),  # -0.5
        (10, 1, 3, 3, 3, 3),  # 3.33...
        (20, 1, 3, 7, 7, 6),  # 6.66...
        (30000, 1, 1, 30000, 30000, 30000),
        (30000, 15, 31, 14516, 14516, 14516),  # 14516.129...
        (30000, 1, 80, 375, 375, 375),  # exact
        (4320072, 1, 144, 30001, 30000, 30000),  # 30000.5
        (4320216, 1, 144, 30002, 30002, 30001),  # 30001.5
        (0, 7, 9, 0, 0, 0),
    ],
)
def test_divide_rounding_modes(
    amount: int, numerator: int, denominator: int, half_up: int, half_even: int, down: int
) -> None:
    assert divide(amount, numerator, denominator, Rounding.HALF_UP) == half_up
    assert divide(amount, numerator, denominator, Rounding.HALF_EVEN) == half_even
    assert divide(amount, numerator, denominator, Rounding.DOWN) == down


@pytest.mark.parametrize("denominator", [0, -1, -144])
def test_divide_refuses_a_non_positive_denominator(denominator: int) -> None:
    for mode in Rounding:
        with pytest.raises(ValueError, match="denominator must be positive"):
            divide(100, 1, denominator, mode)


def test_divide_returns_int() -> None:
    for mode in Rounding:
        assert type(divide(10, 1, 4, mode)) is int


amounts = st.integers(min_value=-(10**12), max_value=10**12)
numerators = st.integers(min_value=0, max_value=10**6)
denominators = st.integers(min_value=1, max_value=10**6)


@settings(max_examples=300, deadline=None)
@given(amounts, numerators, denominators, st.sampled_from(list(Rounding)))
def test_divide_is_within_one_of_exact(amount: int, num: int, den: int, mode: Rounding) -> None:
    exact = Fraction(amount * num, den)
    result = divide(amount, num, den, mode)
    assert abs(result - exact) < 1
    if mode is Rounding.DOWN:
        assert result <= exact
        assert result == floor(exact)
    else:
        assert abs(result - exact) <= Fraction(1, 2)


@settings(max_examples=300, deadline=None)
@given(amounts, numerators, denominators)
def test_divide_half_modes_match_exact_arithmetic(amount: int, num: int, den: int) -> None:
    exact = Fraction(amount * num, den)
    low = floor(exact)
    frac = exact - low
    if frac < Fraction(1, 2):
        up = even = low
    elif frac > Fraction(1, 2):
        up = even = low + 1
    else:
        up = low + 1 if exact > 0 else low  # half away from zero
        even = low if low % 2 == 0 else low + 1
    assert divide(amount, num, den, Rounding.HALF_UP) == up
    assert divide(amount, num, den, Rounding.HALF_EVEN) == even


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(10**9), max_value=10**9), st.integers(min_value=1, max_value=10**4))
def test_divide_at_exact_half_boundaries(k: int, den_half: int) -> None:
    """(2k+1)/2 is exactly half way: half up goes away from zero, half even to the even one."""
    amount = 2 * k + 1
    half_up = divide(amount, den_half, 2 * den_half, Rounding.HALF_UP)
    half_even = divide(amount, den_half, 2 * den_half, Rounding.HALF_EVEN)
    down = divide(amount, den_half, 2 * den_half, Rounding.DOWN)
    assert down == k
    assert half_up == (k + 1 if amount > 0 else k)
    assert half_even % 2 == 0
    assert half_even in (k, k + 1)


# --- FIN -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fin", ["5ABC12D", "0000000", "ZZZZZZZ", "AZ12345", "IOQ1234"])
def test_good_fins(fin: str) -> None:
    assert is_fin(fin)
    assert check_fin(fin) == fin


@pytest.mark.parametrize(
    "value",
    [
        "5abc12d",
        "5ABC12",
        "5ABC12DE",
        " 5ABC12D",
        "5ABC12D ",
        "\n5ABC12D",
        "5ABC\n12D",
        "5AB-12D",
        "5ABÇ12D",
        "5ABC１2D",  # full-width digit
        "",
        None,
        5123456,
        b"5ABC12D",
        ["5ABC12D"],
    ],
)
def test_bad_fins(value: object) -> None:
    assert not is_fin(value)
    with pytest.raises(InvalidFin) as info:
        check_fin(value)
    assert isinstance(info.value, HaqqError)
    assert info.value.value == value
    assert str(info.value).startswith(f"invalid FIN {value!r}: a FIN is 7 characters")


@pytest.mark.parametrize("value", ["5ABC12D\n", "0000000\n"])
def test_fin_with_a_trailing_newline_is_refused(value: str) -> None:
    assert not is_fin(value)
    with pytest.raises(InvalidFin):
        check_fin(value)


def test_fin_alphabet_avoids_lookalikes_and_is_valid() -> None:
    assert not set("IOQ") & set(FIN_ALPHABET)
    assert len(FIN_ALPHABET) == 33
    assert is_fin(FIN_ALPHABET[:7])


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=FIN_ALPHABET, min_size=7, max_size=7))
def test_any_synthetic_fin_is_a_fin(fin: str) -> None:
    assert check_fin(fin) == fin


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12))
def test_is_fin_agrees_with_the_definition(value: str) -> None:
    expected = len(value) == 7 and all(c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ" for c in value)
    assert is_fin(value) == expected
