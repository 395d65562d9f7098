"""What every API route shares: the one error shape, pagination, the signed-in principal."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field

from haqq.domain.access import Action, Principal, require
from haqq.entrypoints.web.auth import Who, context_of, current_principal

T = TypeVar("T")


class Problem(BaseModel):
    """Every error the API answers with: a code a program can branch on and a message a person
    can read, naming what is wrong."""

    error: str = Field(description="what is wrong, in plain words")
    code: str = Field(description="not_signed_in | forbidden | not_found | conflict | invalid | unavailable")


class ApiError(Exception):
    """Raised by routes; answered as a :class:`Problem` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", what)


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def invalid(message: str) -> ApiError:
    return ApiError(422, "invalid", message)


#: The documented errors, for ``responses=`` on each route.
def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    text = {
        401: "not signed in, or the token does not hold",
        403: "the role or identity may not do this",
        404: "no such record",
        409: "the action does not apply to the record as it is now; nothing changed",
        422: "a malformed request; the message names the field",
        503: "a registry or store cannot answer now",
    }
    return {s: {"model": Problem, "description": text[s]} for s in statuses}


class Page(BaseModel, Generic[T]):
    """One page of a list; ask again with ``offset=next_offset`` for the next."""

    items: list[T]
    limit: int
    offset: int
    next_offset: int | None = Field(description="the offset of the next page; null on the last")


def page_of(rows: list[T], *, limit: int, offset: int, more: bool | None = None) -> Page[T]:
    """A page from up to ``limit + 1`` rows (the extra row says there is a next page), or from
    ``limit`` rows and ``more`` when the caller already knows whether a next page exists."""
    if more is None:
        more = len(rows) > limit
    return Page[T](items=rows[:limit], limit=limit, offset=offset, next_offset=offset + limit if more else None)


class Paging(BaseModel):
    limit: int
    offset: int


def paging(
    limit: Annotated[int, Query(ge=1, le=200, description="at most this many items")] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="skip this many items")] = 0,
) -> Paging:
    return Paging(limit=limit, offset=offset)


PagingDep = Annotated[Paging, Depends(paging)]


def allow(principal: Principal, action: Action, *, fin: str | None = None) -> None:
    """403 unless the principal may take the action (on ``fin``'s records)."""
    require(principal, action, fin=fin)

#: Shared with the console (see :mod:`haqq.entrypoints.web.auth`).
__all__ = ["ApiError", "Page", "PagingDep", "Problem", "Who", "allow", "conflict", "context_of", "current_principal",
           "invalid", "not_found", "page_of", "paging", "problems"]
