"""What every console page shares: the signed-in person, the errors shown as pages."""

from __future__ import annotations

from haqq.entrypoints.web.auth import Who, context_of, current_principal


class FormError(Exception):
    """A form filled wrongly: shown on the page it came from, naming the field."""

    def __init__(self, message: str, *, back: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.back = back

__all__ = ["FormError", "Who", "context_of", "current_principal"]
