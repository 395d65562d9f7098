"""API routes: the dashboard's figures (see :mod:`haqq.office.dashboard` for what each means and
how they are kept fast)."""

from __future__ import annotations

from fastapi import APIRouter

from haqq.entrypoints.api.common import ApiError, Who, problems
from haqq.entrypoints.web.context import WebContext
from haqq.office.dashboard import Dashboard, DashboardUnavailable, dashboard


def routes(ctx: WebContext) -> APIRouter:
    router = APIRouter(tags=["dashboard"])

    @router.get("/dashboard", operation_id="getDashboard", response_model=Dashboard,
                responses=problems(401, 403, 503))
    def get_dashboard(who: Who) -> Dashboard:
        """What haqq did: benefits assigned per day by program, the time from a life event to the
        money, the cases waiting and why, consent answers, citizens' choices, payments by status,
        and the share of benefits assigned with no application. Kept in memory and recomputed
        in the background at most every 60 s: ``computed_at`` says when."""
        try:
            return dashboard(who, ctx.engine, ctx.catalogue)
        except DashboardUnavailable as exc:
            raise ApiError(503, "unavailable", str(exc)) from exc

    return router
