"""Signing in to the local issuer: a token for a username and password, and who the token names."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form
from pydantic import BaseModel

from haqq.adapters.auth.passwords import sign_in
from haqq.entrypoints.api.common import ApiError, Who, problems
from haqq.entrypoints.web.context import WebContext


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    role: str


class Me(BaseModel):
    subject: str
    role: str
    name: str
    fin: str | None


def routes(ctx: WebContext) -> APIRouter:
    router = APIRouter(tags=["sign-in"])

    @router.post("/auth/token", operation_id="signIn", response_model=Token, responses=problems(401, 422, 409))
    def token(
        username: Annotated[str, Form(min_length=1, max_length=60)],
        password: Annotated[str, Form(min_length=1, max_length=200)],
    ) -> Token:
        """A bearer token from haqq's own issuer (OAuth2 password form). Where an identity
        provider issues the tokens, sign in there instead."""
        if not ctx.keys.can_issue:
            raise ApiError(409, "conflict", "tokens come from the identity provider here; sign in there")
        with ctx.engine.begin() as conn:
            principal = sign_in(conn, username, password)
        return Token(access_token=ctx.keys.issue(principal, now=ctx.now()),
                     expires_in=int(ctx.keys.lifetime.total_seconds()), role=principal.role.value)

    @router.get("/me", operation_id="whoAmI", response_model=Me, responses=problems(401))
    def me(principal: Who) -> Me:
        """Who the token names."""
        return Me(subject=principal.subject, role=principal.role.value, name=principal.name, fin=principal.fin)

    return router
