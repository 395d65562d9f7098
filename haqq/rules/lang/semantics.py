"""The exact semantics of the language's functions, in plain integer arithmetic.

The interpreter calls these; the vectorised backend re-implements the same integer formulas
as Polars expressions (see :mod:`haqq.rules.lang.columns`), and the tests check both against
each other and against :func:`haqq.domain.money.divide`.

A function that has no defined value raises :class:`Undefined`: division by a divisor that is
not positive, a date outside 0001-01-01..9999-12-31, a parameter with no value in force.
"""

from __future__ import annotations

from datetime import date, timedelta

from haqq.domain.money import Rounding


class Undefined(Exception):  # noqa: N818 - an outcome of evaluation, not an error of haqq
    """The value of an expression is undefined (division by zero, date out of range, ...)."""


def is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def div(numerator: int, denominator: int, rounding: Rounding) -> int:
    """``numerator / denominator`` rounded as told; the same as ``money.divide(n, 1, d, r)``.

    ``down`` rounds towards minus infinity (floor); ``half_up`` rounds halves away from zero;
    ``half_even`` rounds halves to the even neighbour. A denominator <= 0 is undefined.
    """
    if denominator <= 0:
        raise Undefined(f"division by {denominator}")
    if rounding is Rounding.DOWN:
        return numerator // denominator
    if rounding is Rounding.HALF_UP:
        q = (2 * abs(numerator) + denominator) // (2 * denominator)
        return -q if numerator < 0 else q
    q, r = divmod(numerator, denominator)
    twice = 2 * r
    if twice > denominator or (twice == denominator and q % 2 == 1):
        return q + 1
    return q


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (or earlier), clamped to the end of a shorter month."""
    total = day.year * 12 + day.month - 1 + months
    year, month0 = divmod(total, 12)
    if not 1 <= year <= 9999:
        raise Undefined(f"date out of range: {day.isoformat()} + {months} months")
    month = month0 + 1
    return date(year, month, min(day.day, days_in_month(year, month)))


def add_days(day: date, days: int) -> date:
    try:
        return day + timedelta(days=days)
    except OverflowError:
        raise Undefined(f"date out of range: {day.isoformat()} + {days} days") from None


def months_between(start: date, end: date) -> int:
    """Whole months from ``start`` to ``end``: the largest n with add_months(start, n) <= end.

    Negative when ``end`` is before ``start``: ``-months_between(end, start)``.
    """
    if end < start:
        return -months_between(end, start)
    n = (end.year - start.year) * 12 + end.month - start.month
    if start.day > end.day and end.day < days_in_month(end.year, end.month):
        n -= 1
    return n


def age_at(born: date, at: date) -> int:
    """Whole years from ``born`` to ``at``: whole months divided by 12, rounded towards zero.

    A birthday on 29 February falls on 28 February in a year that is not a leap year. Before
    birth the age is negative, counted the same way backwards (a day before birth is 0).
    """
    months = months_between(born, at)
    return -(-months // 12) if months < 0 else months // 12
