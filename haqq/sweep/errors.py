"""The errors of the sweep and the what-if: each names what is wrong, in one line."""

from __future__ import annotations

from haqq.domain.errors import HaqqError


class SweepError(HaqqError):
    """Base of the sweep's errors."""


class UnknownProgram(SweepError):
    """A program that is not in the catalogue, or is not swept."""


class UnknownParameter(SweepError):
    """A what-if parameter that no (chosen) program has, or a value of the wrong kind."""


class BadDate(SweepError):
    """A date that is not an ISO date (YYYY-MM-DD)."""
