"""Who is asking: a bearer token in the ``Authorization`` header (the API's clients) or in the
console's session cookie (people in a browser). Both carry the same JWT."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from haqq.domain.access import NotSignedIn, Principal
from haqq.entrypoints.web.context import WebContext

#: The console's cookie: HttpOnly, SameSite=Strict (a form on another site cannot post with it).
SESSION_COOKIE = "haqq_session"


def token_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.cookies.get(SESSION_COOKIE) or None


def principal_of(request: Request, ctx: WebContext) -> Principal:
    """The signed-in principal, or :class:`NotSignedIn` saying what is missing or wrong."""
    token = token_of(request)
    if token is None:
        raise NotSignedIn("sign in first: no bearer token and no session")
    return ctx.keys.verify(token)


def context_of(request: Request) -> WebContext:
    """The wiring of the app serving the request (the API and the console keep it in their
    app's state)."""
    ctx: WebContext = request.app.state.ctx
    return ctx


def current_principal(request: Request) -> Principal:
    """The dependency giving a route its principal (NotSignedIn when there is none: the API
    answers 401, the console sends the visitor to sign in)."""
    return principal_of(request, context_of(request))


#: ``who: Who`` in a route's parameters: the signed-in principal.
Who = Annotated[Principal, Depends(current_principal)]
