"""Typed errors of the domain. Every error a user can meet names what is wrong."""

from __future__ import annotations


class HaqqError(Exception):
    """Base of every error haqq raises on purpose."""


class InvalidFin(HaqqError):
    def __init__(self, value: object) -> None:
        super().__init__(
            f"invalid FIN {value!r}: a FIN is 7 characters, upper-case Latin letters and digits"
        )
        self.value = value


class InvalidTransition(HaqqError):
    def __init__(self, case_id: str, source: str, target: str) -> None:
        super().__init__(f"case {case_id}: transition {source} -> {target} is not allowed")
        self.case_id = case_id
        self.source = source
        self.target = target


class InvalidEvent(HaqqError):
    """A life event that cannot be accepted: malformed, unknown type, bad field."""


class NaiveDatetime(HaqqError):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what} must be a timezone-aware datetime")


class CatalogueError(HaqqError):
    """A program catalogue file that cannot be loaded; the message names file and field."""


class InstitutionError(HaqqError):
    """An institution's service failed to answer or answered something unusable.

    ``exchange``: the failed exchange, for the message log (a :class:`haqq.ports.Exchange`),
    when the adapter knows it.
    """

    exchange: object | None = None
