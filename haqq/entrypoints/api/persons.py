"""API routes: persons (see :func:`routes`)."""

from __future__ import annotations

from fastapi import APIRouter

from haqq.entrypoints.web.context import WebContext


def routes(ctx: WebContext) -> APIRouter:
    router = APIRouter(tags=["persons"])
    return router
