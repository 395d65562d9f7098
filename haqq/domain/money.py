"""Money is integer minor units (qəpik for AZN); rounding is always explicit."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from enum import StrEnum

CURRENCY = "AZN"
MINOR_PER_MAJOR = 100


class Rounding(StrEnum):
    HALF_UP = "half_up"
    HALF_EVEN = "half_even"
    DOWN = "down"


def divide(amount: int, numerator: int, denominator: int, rounding: Rounding) -> int:
    """``amount * numerator / denominator`` in minor units, rounded as told."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    exact = Decimal(amount) * Decimal(numerator) / Decimal(denominator)
    if rounding is Rounding.DOWN:
        return int(exact.to_integral_value(rounding="ROUND_FLOOR"))
    mode = ROUND_HALF_UP if rounding is Rounding.HALF_UP else ROUND_HALF_EVEN
    return int(exact.quantize(Decimal(1), rounding=mode))


def format_azn(minor: int) -> str:
    """``45000`` -> ``'450.00 AZN'``."""
    sign = "-" if minor < 0 else ""
    major, rest = divmod(abs(minor), MINOR_PER_MAJOR)
    return f"{sign}{major:,}.{rest:02d} {CURRENCY}"
