"""What every console page shares: the signed-in person, the errors shown as pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from haqq.domain.access import Principal
from haqq.entrypoints.web.auth import principal_of
from haqq.entrypoints.web.context import WebContext


class FormError(Exception):
    """A form filled wrongly: shown on the page it came from, naming the field."""

    def __init__(self, message: str, *, back: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.back = back


def context_of(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.ctx
    return ctx


def current_principal(request: Request) -> Principal:
    """The console's dependency: the person signed in (else a redirect to the sign-in page)."""
    return principal_of(request, context_of(request))


#: ``who: Who`` in a page's parameters: the person signed in.
Who = Annotated[Principal, Depends(current_principal)]
