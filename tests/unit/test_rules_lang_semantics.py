"""The functions of the language: rounding at .5, month ends, leap years, age on 29 February.

Each is checked on exact values in the interpreter's semantics and in the Polars formulas.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from haqq.domain.money import Rounding, divide
from haqq.rules.lang import Undefined, add_days, add_months, age_at, div, months_between
from haqq.rules.lang import columns as vc


def _polars(expr: pl.Expr, **cols: list[Any]) -> list[Any]:
    return pl.DataFrame(cols).select(expr.alias("x"))["x"].to_list()


@pytest.mark.parametrize(
    ("n", "d", "half_up", "half_even", "down"),
    [
        (5, 2, 3, 2, 2),
        (7, 2, 4, 4, 3),
        (-5, 2, -3, -2, -3),
        (-7, 2, -4, -4, -4),
        (1, 3, 0, 0, 0),
        (2, 3, 1, 1, 0),
        (-1, 3, 0, 0, -1),
        (1_440_000, 144, 10_000, 10_000, 10_000),
        (1_440_072, 144, 10_001, 10_000, 10_000),  # exactly .5
        (1_440_216, 144, 10_002, 10_002, 10_001),  # 10001.5 -> even is 10002
        (0, 7, 0, 0, 0),
    ],
)
def test_div_rounds_as_told(n: int, d: int, half_up: int, half_even: int, down: int) -> None:
    got = [div(n, d, Rounding(r)) for r in ("half_up", "half_even", "down")]
    assert got == [half_up, half_even, down]
    for mode, want in zip(("half_up", "half_even", "down"), got, strict=True):
        assert _polars(vc.divide(pl.col("n"), pl.col("d"), Rounding(mode)), n=[n], d=[d]) == [want]


@given(st.integers(-10**15, 10**15), st.integers(1, 10**6), st.sampled_from(list(Rounding)))
def test_div_is_money_divide(n: int, d: int, mode: Rounding) -> None:
    assert div(n, d, mode) == divide(n, 1, d, mode)


def test_div_by_zero_or_a_negative_divisor_is_undefined() -> None:
    for bad in (0, -1):
        with pytest.raises(Undefined, match=f"division by {bad}"):
            div(10, bad, Rounding.HALF_UP)


@pytest.mark.parametrize(
    ("start", "months", "want"),
    [
        (date(2025, 1, 31), 1, date(2025, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2024, 3, 31), -1, date(2024, 2, 29)),
        (date(2025, 3, 31), 1, date(2025, 4, 30)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 2, 29), 48, date(2028, 2, 29)),
        (date(2025, 12, 15), 1, date(2026, 1, 15)),
        (date(2025, 1, 15), -1, date(2024, 12, 15)),
        (date(2025, 5, 31), -216, date(2007, 5, 31)),
    ],
)
def test_add_months_clamps_to_the_month_end(start: date, months: int, want: date) -> None:
    assert add_months(start, months) == want
    expr, _ = vc.call("add_months", [pl.col("d"), pl.col("n")], date(2025, 1, 1))
    assert _polars(expr, d=[start], n=[months]) == [want]


def test_dates_out_of_range_are_undefined_in_both_backends() -> None:
    with pytest.raises(Undefined):
        add_months(date(9999, 12, 1), 1)
    with pytest.raises(Undefined):
        add_days(date(1, 1, 1), -1)
    frame = pl.DataFrame({"d": [date(9999, 12, 1), date(2000, 1, 1)], "n": [31, 31]})
    for fn in ("add_months", "add_days"):
        value, err = vc.call(fn, [pl.col("d"), pl.col("n")], date(2025, 1, 1))
        assert err is not None
        assert frame.select(err.alias("e"))["e"].to_list() == [True, False]


@pytest.mark.parametrize(
    ("start", "end", "want"),
    [
        (date(2025, 1, 31), date(2025, 2, 28), 1),  # the end of a shorter month counts
        (date(2025, 1, 31), date(2025, 2, 27), 0),
        (date(2024, 1, 31), date(2024, 2, 28), 0),  # 2024 has a 29 February
        (date(2024, 1, 31), date(2024, 2, 29), 1),
        (date(2025, 1, 15), date(2025, 2, 14), 0),
        (date(2025, 1, 15), date(2025, 2, 15), 1),
        (date(2025, 2, 15), date(2025, 1, 15), -1),
        (date(2025, 3, 31), date(2025, 2, 28), -1),
        (date(2025, 2, 28), date(2025, 3, 31), 1),
        (date(2025, 1, 1), date(2025, 1, 1), 0),
    ],
)
def test_months_between_is_whole_months(start: date, end: date, want: int) -> None:
    assert months_between(start, end) == want
    assert _polars(vc.months_between(pl.col("a"), pl.col("b")), a=[start], b=[end]) == [want]


@pytest.mark.parametrize(
    ("born", "at", "want"),
    [
        (date(2007, 2, 28), date(2025, 2, 28), 18),
        (date(2007, 3, 1), date(2025, 2, 28), 17),
        (date(2004, 2, 29), date(2022, 2, 28), 18),  # 29 Feb birthday counts on 28 Feb
        (date(2004, 2, 29), date(2022, 2, 27), 17),
        (date(2004, 2, 29), date(2024, 2, 28), 19),  # a leap year has its own 29 February
        (date(2004, 2, 29), date(2024, 2, 29), 20),
        (date(1990, 5, 15), date(2020, 5, 14), 29),
        (date(2025, 1, 2), date(2025, 1, 1), 0),  # a day before birth
        (date(2025, 1, 2), date(2024, 1, 2), -1),  # a year before birth
    ],
)
def test_age_at_and_29_february(born: date, at: date, want: int) -> None:
    assert age_at(born, at) == want
    expr, _ = vc.call("age_at", [pl.col("b"), pl.col("a")], at)
    assert _polars(expr, b=[born], a=[at]) == [want]
    expr, _ = vc.call("age", [pl.col("b")], at)
    assert _polars(expr, b=[born]) == [want]


@given(st.dates(date(1900, 1, 1), date(2100, 12, 31)), st.dates(date(1900, 1, 1), date(2100, 12, 31)),
       st.integers(-2400, 2400))
def test_polars_date_formulas_match_python(a: date, b: date, n: int) -> None:
    frame = pl.DataFrame({"a": [a], "b": [b], "n": [n]})
    got = frame.select(
        vc.months_between(pl.col("a"), pl.col("b")).alias("m"),
        vc.call("add_months", [pl.col("a"), pl.col("n")], b)[0].alias("am"),
        vc.call("add_days", [pl.col("a"), pl.col("n")], b)[0].alias("ad"),
        vc.call("age", [pl.col("a")], b)[0].alias("age"),
    ).row(0)
    assert got == (months_between(a, b), add_months(a, n), add_days(a, n), age_at(a, b))


def test_min_and_max_take_dates_as_well_as_ints() -> None:
    early, late = date(2024, 2, 29), date(2025, 1, 31)
    for fn, want in (("min", early), ("max", late)):
        expr, err = vc.call(fn, [pl.col("a"), pl.col("b")], late)
        assert err is None
        assert _polars(expr, a=[late], b=[early]) == [want]
