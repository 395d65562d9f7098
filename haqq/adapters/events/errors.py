"""Typed refusals of a pushed message: each carries the protocol's code and an HTTP status."""

from __future__ import annotations

from typing import ClassVar

from haqq.domain.errors import HaqqError


class EventRefused(HaqqError):
    """A message haqq will not take in; ``code`` is the protocol's own error code."""

    status: ClassVar[int] = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Unauthenticated(EventRefused):
    """Missing or bad signature, or a sender haqq has no key for."""

    status = 401


class Malformed(EventRefused):
    """Not the protocol's shape, or a field haqq cannot use."""

    status = 400


class Replayed(EventRefused):
    """A message already taken in (same sender and message id)."""

    status = 409


class UnknownEventType(EventRefused):
    """An event haqq does not know how to take in."""

    status = 422


class KeysError(HaqqError):
    """The keys/secrets configuration cannot be loaded; the message names the source."""
