"""API routes: the program catalogue, each program's parameters with their history, and the value
that applies on a date."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query

from haqq.entrypoints.api.common import Who, not_found, problems
from haqq.entrypoints.web.context import WebContext
from haqq.office.programs import (
    CatalogueView,
    ParameterView,
    ProgramDetail,
    UnknownParameter,
    UnknownProgram,
    catalogue_view,
    parameter_at,
    program_detail,
)

BAKU = ZoneInfo("Asia/Baku")

ProgramId = Annotated[str, Path(min_length=1, max_length=60, pattern=r"^[a-z0-9_]+$")]
ParameterName = Annotated[str, Path(min_length=1, max_length=60, pattern=r"^[a-z0-9_]+$")]
AsOf = Annotated[date | None, Query(description="the date the value applies on; default today (Baku)")]


def _today(now: datetime) -> date:
    return now.astimezone(BAKU).date()


def routes(ctx: WebContext) -> APIRouter:
    router = APIRouter(tags=["programs"])

    @router.get("/programs", operation_id="listPrograms", response_model=CatalogueView, responses=problems(401, 403))
    def list_programs(who: Who) -> CatalogueView:
        """Every program: names in az/ru/en, legal basis, mode, triggers, beneficiary, schedule;
        and the catalogue's version."""
        return catalogue_view(who, ctx.catalogue)

    @router.get("/programs/{program_id}", operation_id="getProgram", response_model=ProgramDetail,
                responses=problems(401, 403, 404, 422))
    def get_program(who: Who, program_id: ProgramId, as_of: AsOf = None) -> ProgramDetail:
        """One program with every parameter's full history (value, from when, legal reference)
        and the value that applies on ``as_of``."""
        try:
            return program_detail(who, ctx.catalogue, program_id, as_of or _today(ctx.now()))
        except UnknownProgram as exc:
            raise not_found(str(exc)) from exc

    @router.get("/programs/{program_id}/parameters/{name}", operation_id="getProgramParameter",
                response_model=ParameterView, responses=problems(401, 403, 404, 422))
    def get_parameter(who: Who, program_id: ProgramId, name: ParameterName, as_of: AsOf = None) -> ParameterView:
        """One parameter: the value that applies on ``as_of`` and its history."""
        try:
            return parameter_at(who, ctx.catalogue, program_id, name, as_of or _today(ctx.now()))
        except (UnknownProgram, UnknownParameter) as exc:
            raise not_found(str(exc)) from exc

    return router
