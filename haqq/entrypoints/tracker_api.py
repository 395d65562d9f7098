"""Who looked at my data: the Data Tracker (Estonia's *Andmejälgija*) usage service.

Follows the usage protocol v3 (``dumonitor-openapi-v3.yaml``, 3.0.0-rc.3): its parameter names,
response field names, paging, period filter and ``Error`` shape. Routes of :func:`make_tracker_app`:
``GET /v3/findUsage`` (operation ``findUsage``: every record haqq read about one person) and
``GET /v3/heartbeat`` (``heartbeat``: ``{"status": "OK"|"FAIL", "message"}``, 200 either way;
``FAIL`` when the store cannot be read).

Adapted to Azerbaijan: the spec's ``PersonCode`` (``EE`` + 11 digits) is a FIN, 7 upper-case Latin
letters and digits (:func:`haqq.domain.fin.check_fin`), for ``userCode`` (whose data) and the
``X-Road-UserId`` header (who asks; it may differ under representation, which the calling portal
has checked). A missing or bad FIN, date-time (RFC 3339 with an offset) or paging value is
answered 400 with the spec's ``Error`` (``{"code", "message"}``), a store failure 500 likewise.

Every record is a ``DATA_REQUEST`` (haqq's system asked another institution's system for the
person's data) under ``dataRequests``; the other three lists are always empty. Mapping from
``data_access_log`` (``dal``) joined with ``message_log`` (``ml``; :mod:`haqq.adapters.store.usage`):

- ``logTime`` <- ``dal.at`` (haqq's clock; shown at Baku's ``+04:00``). ``periodStart`` and
  ``periodEnd`` filter on it, both included; a period ending before it starts holds nothing.
- ``purpose`` <- ``dal.purpose``; ``legalBasis`` <- ``dal.legal_basis``.
- ``queryId`` <- ``dal.message_id`` (the X-Road message id, as the spec suggests).
- ``queryGroupId`` <- ``dal.case_id``, the case the data served (haqq's case ids are digests,
  unique on their own); absent for lookups made before any case (who may be entitled?).
- ``target`` <- ``{type: member class of ml.service (else GOV), name: dal.institution,
  systemName: X-Road subsystem of ml.service (else dal.service)}``; never ``code`` (an 8-digit
  Estonian registry code).
- ``initiatorOrg`` <- ``ml.client`` (``AZ/GOV/MLSPP/HAQQ`` -> ``{type: GOV, name: MLSPP,
  systemName: HAQQ}``), or ``{type: GOV, name: operator}`` when it is not an X-Road id.
- ``initiatorPerson`` <- ``ml.user_id`` (else ``dal.requester``) when an official, not ``haqq``,
  caused the read: ``code`` if it is a FIN, else ``alternativeCode``.
- ``logSourceSystem`` <- ``system_name`` (``haqq``). ``bulkProcessing`` <- ``false``: each read
  serves one event or case (the population sweep reads a snapshot, not people), so
  ``includeBulkProcessing`` changes nothing.
- Extensions (the spec's objects allow other properties): ``requestHash`` <- ``ml.request_hash``
  (the provider's hash of the request: proof of what was asked and answered), ``xRoadService``
  <- ``ml.service``.

``processingType`` without ``DATA_REQUEST``, or ``logSourceSystems`` without ``system_name``,
gives nothing. Serve it like the events app: ``uvicorn.run(make_tracker_app(db.make_engine()))``.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

import structlog
from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from haqq.adapters.store.schema import data_access_log
from haqq.adapters.store.usage import UsageRow, find_usage
from haqq.adapters.xroad.client import AUTOMATIC_USER
from haqq.adapters.xroad.ids import ClientId, InvalidIdentifier, ServiceId
from haqq.domain.errors import HaqqError, InvalidFin
from haqq.domain.fin import check_fin, is_fin
from haqq.pipeline.work import BAKU

log = structlog.get_logger()

FIN_PATTERN = "^[0-9A-Z]{7}$"
#: The FIN the description gives as its example (the spec's own is ``EE12345678901``).
EXAMPLE_FIN = "5ZK7N2R"
INT32_MAX = 2**31 - 1
MAX_LIMIT = 10_000


class TrackerError(HaqqError):
    """A request the service answers with the spec's ``Error``: ``status``, ``code``, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)


class Error(_Model):
    """The spec's ``Error``."""

    code: str = Field(examples=["INVALID_FIN"])
    message: str


class ProcessingType(StrEnum):
    DATA_REQUEST = "DATA_REQUEST"
    DATA_RESPONSE = "DATA_RESPONSE"
    DATA_PROCESSING = "DATA_PROCESSING"
    INTERNAL_PROCESSING = "INTERNAL_PROCESSING"


OrganizationType = Literal["GOV", "COM", "NGO", "NEE"]
ORGANIZATION_TYPES: tuple[OrganizationType, ...] = get_args(OrganizationType)


class Organization(_Model):
    type: OrganizationType
    name: str
    system_name: str | None = None


class Person(_Model):
    code: str | None = Field(default=None, pattern=FIN_PATTERN, description="The official's FIN")
    alternative_code: str | None = Field(default=None, description="The official's user id")


class UsageCommon(_Model):
    log_time: datetime
    purpose: str
    log_source_system: str | None = None
    bulk_processing: bool | None = None
    legal_basis: str | None = None
    query_id: str | None = None
    query_group_id: str | None = Field(default=None, description="The case the data served")
    initiator_org: Organization
    initiator_person: Person | None = None
    request_hash: str | None = Field(default=None, description="Extension: the provider's request hash")
    x_road_service: str | None = Field(default=None, description="Extension: the X-Road service")


class UsageTransfer(UsageCommon):
    target: Organization


class UsageProcessing(UsageCommon):
    source: Organization


class FindUsageResponse(_Model):
    total_usages: int = Field(ge=0, le=INT32_MAX)
    returned_usages: int = Field(ge=0, le=INT32_MAX)
    data_requests: list[UsageTransfer] | None = None
    data_responses: list[UsageTransfer] | None = None
    data_processings: list[UsageProcessing] | None = None
    internal_processings: list[UsageProcessing] | None = None


class HeartbeatResponse(_Model):
    status: Literal["OK", "FAIL"]
    message: str | None = None


def _organization(xroad_id: str | None, *, service: bool) -> Organization | None:
    """The organisation named by an X-Road client or service id (None if it is not one)."""
    if not xroad_id:
        return None
    try:
        client = ServiceId.parse(xroad_id).provider if service else ClientId.parse(xroad_id)
    except InvalidIdentifier:
        return None
    kind: OrganizationType = next((t for t in ORGANIZATION_TYPES if t == client.member_class), "GOV")
    return Organization(type=kind, name=client.member_code, system_name=client.subsystem)


def usage_of(row: UsageRow, *, system_name: str, operator: str) -> UsageTransfer:
    """One access-log row as the spec's ``UsageTransfer`` (the mapping of the module doc)."""
    provider = _organization(row.xroad_service, service=True)
    target = Organization(
        type=provider.type if provider else "GOV",
        name=row.institution,
        system_name=(provider.system_name if provider else None) or row.service,
    )
    initiator = _organization(row.client, service=False) or Organization(type="GOV", name=operator)
    user = row.user_id or row.requester
    person = None
    if user and user != AUTOMATIC_USER:
        person = Person(code=user) if is_fin(user) else Person(alternative_code=user)
    return UsageTransfer(
        log_time=row.at.astimezone(BAKU), purpose=row.purpose, log_source_system=system_name,
        bulk_processing=False, legal_basis=row.legal_basis, query_id=row.message_id,
        query_group_id=row.case_id, initiator_org=initiator, initiator_person=person,
        request_hash=row.request_hash, x_road_service=row.xroad_service, target=target,
    )


def _fin(value: str, name: str) -> str:
    try:
        return check_fin(value)
    except InvalidFin as exc:
        raise TrackerError(400, "INVALID_FIN", f"{name}: {exc}") from None


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _date_time(value: object) -> object:
    """An RFC 3339 date-time with its offset, as the spec's ``format: date-time`` says: no bare
    dates, no times without an offset, no Unix timestamps (which pydantic would take)."""
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("expected an RFC 3339 date-time with an offset, e.g. 2025-03-01T10:00:00+04:00")
    return datetime.fromisoformat(value.upper())


Moment = Annotated[datetime | None, BeforeValidator(_date_time)]


class _TrackerApp(FastAPI):
    """FastAPI, with the 400 it answers in its description instead of FastAPI's 422."""

    def openapi(self) -> dict[str, Any]:
        schema = super().openapi()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        return schema


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "A parameter is missing or invalid (a FIN, a date-time, paging)"},
    500: {"model": Error, "description": "The store could not be read"},
}


def make_tracker_app(engine: Engine, *, system_name: str = "haqq", operator: str = "haqq") -> FastAPI:
    """The Data Tracker app over the store at ``engine`` (read-only)."""
    app = _TrackerApp(
        title="haqq Data Tracker (Andmejälgija) usage service",
        version="3.0.0-rc.3",
        description="Who read a person's data, when, from which institution, for which case, why "
        "and on what legal basis. The Data Tracker usage protocol v3, adapted to FINs.",
        docs_url=None, redoc_url=None,
    )

    @app.exception_handler(TrackerError)
    async def tracker_error(_request: Request, exc: TrackerError) -> JSONResponse:
        if exc.status >= 500:
            log.error("data tracker failed", code=exc.code, reason=exc.message, error=str(exc.__cause__))
        return JSONResponse(Error(code=exc.code, message=exc.message).model_dump(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        missing = bool(errors) and all(e.get("type") == "missing" for e in errors)
        reasons = "; ".join(f"{e['loc'][-1] if e.get('loc') else '?'}: {e.get('msg', 'invalid')}" for e in errors)
        body = Error(code="MISSING_PARAMETER" if missing else "INVALID_PARAMETER", message=reasons or "invalid request")
        return JSONResponse(body.model_dump(), status_code=400)

    @app.get(
        "/v3/findUsage", operation_id="findUsage", tags=["usage"], summary="Who read a person's data",
        response_model=FindUsageResponse, response_model_exclude_none=True, responses=_ERRORS,
    )
    def find_usage_route(
        x_road_user_id: Annotated[str, Header(
            alias="X-Road-UserId", description="The FIN of the person who asks",
            examples=[EXAMPLE_FIN], json_schema_extra={"pattern": FIN_PATTERN})],
        user_code: Annotated[str, Query(
            alias="userCode", description="The FIN whose data was read",
            examples=[EXAMPLE_FIN], json_schema_extra={"pattern": FIN_PATTERN})],
        processing_type: Annotated[list[ProcessingType] | None, Query(
            alias="processingType", description="Only these kinds of record (default: all)")] = None,
        include_bulk_processing: Annotated[bool, Query(
            alias="includeBulkProcessing", description="Also mass processing (haqq has none)")] = False,
        log_source_systems: Annotated[list[str] | None, Query(
            alias="logSourceSystems", description="Only records of these systems")] = None,
        period_start: Annotated[Moment, Query(
            alias="periodStart", description="From this moment (included; with an offset)")] = None,
        period_end: Annotated[Moment, Query(
            alias="periodEnd", description="Until this moment (included; with an offset)")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, json_schema_extra={"format": "int32"})] = 1000,
        offset: Annotated[int, Query(ge=0, le=INT32_MAX, json_schema_extra={"format": "int32"})] = 0,
    ) -> FindUsageResponse:
        _fin(x_road_user_id, "X-Road-UserId")
        fin = _fin(user_code, "userCode")
        wanted = ProcessingType.DATA_REQUEST in (processing_type or list(ProcessingType))
        ours = log_source_systems is None or system_name in log_source_systems
        rows: list[UsageRow] = []
        total = 0
        if wanted and ours:
            try:
                with engine.connect() as conn:
                    rows, total = find_usage(conn, fin, since=period_start, until=period_end, offset=offset, limit=limit)
            except SQLAlchemyError as exc:
                raise TrackerError(500, "STORE_UNAVAILABLE", "the usage log could not be read") from exc
        usages = [usage_of(r, system_name=system_name, operator=operator) for r in rows]
        return FindUsageResponse(
            total_usages=total, returned_usages=len(usages), data_requests=usages,
            data_responses=[], data_processings=[], internal_processings=[],
        )

    @app.get(
        "/v3/heartbeat", operation_id="heartbeat", tags=["usage"], summary="Is the service up",
        response_model=HeartbeatResponse, response_model_exclude_none=True, responses={500: _ERRORS[500]},
    )
    def heartbeat() -> HeartbeatResponse:
        try:
            with engine.connect() as conn:
                conn.execute(select(data_access_log.c.id).limit(1)).first()
        except SQLAlchemyError as exc:
            log.error("data tracker heartbeat failed", error=str(exc))
            return HeartbeatResponse(status="FAIL", message="the usage log cannot be read")
        return HeartbeatResponse(status="OK", message="API is ready")

    return app
