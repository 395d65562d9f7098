"""The institutions' REST services: the provider information systems behind the X-Road
security-server simulator, answering from the synthetic country.

Each service of the port (:class:`haqq.ports.Service`) routed by the directory is one
:class:`RegistryService` that answers, on its route's ``path`` (for example
``/v1/persons/query``):

- ``POST {path}`` with ``{"asOf": "<ISO 8601 aware datetime>", "fins": [...]}`` (and an optional
  ``"purpose"`` string) ->
  200 ``{"asOf": ..., "records": {fin: record}}`` (FINs the registry does not know are absent);
- ``GET {path without /query}/{fin}?asOf=...`` -> 200 ``{"asOf": ..., "fin": ..., "record": {...}}``
  or 404.

Bad input is the provider's own 400 (``{"status", "error", "message"}``, the message naming what
is wrong), never an X-Road error. The data comes from
:meth:`haqq.adapters.institutions.simulated.SimulatedInstitutions.records`, so the REST services
answer exactly what the in-process adapter does. Each service also describes itself in OpenAPI
3.0 (:meth:`RegistryService.openapi`), the security server's ``getOpenAPI``.

Services take and give :class:`httpx.Request` / :class:`httpx.Response`, so the security server
calls them in-process (embedded mode) exactly as it would call a real provider over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

import httpx
import orjson

from haqq.adapters.institutions.simulated import SimulatedInstitutions
from haqq.adapters.xroad.directory import Directory, Route
from haqq.adapters.xroad.ids import ServiceId
from haqq.country.schema import baku_date
from haqq.domain.errors import HaqqError
from haqq.domain.fin import is_fin
from haqq.ports import Service

#: The most FINs one batch may carry.
MAX_FINS = 10_000
JSON = "application/json; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One method and path a service answers (``*`` stands for a path segment)."""

    method: str
    path: str


class ProviderService(Protocol):
    """A provider information system's REST service, as the security server sees it."""

    @property
    def service_id(self) -> ServiceId: ...

    def endpoints(self) -> Sequence[Endpoint]: ...

    def openapi(self) -> dict[str, Any]: ...

    def handle(self, request: httpx.Request) -> httpx.Response: ...


class InvalidInput(HaqqError):
    """A request a provider refuses (answered 400); the message names what is wrong."""


def _date(nullable: bool = False) -> dict[str, Any]:
    return {"type": "string", "format": "date", "nullable": nullable}


_STR: dict[str, Any] = {"type": "string"}
_BOOL: dict[str, Any] = {"type": "boolean"}
_INT: dict[str, Any] = {"type": "integer"}
_FIN: dict[str, Any] = {"type": "string", "pattern": "^[0-9A-Z]{7}$"}
_FIN_OR_NULL: dict[str, Any] = {**_FIN, "nullable": True}

#: The record each service answers, per FIN, as :class:`haqq.ports.Service` documents it.
RECORD_FIELDS: Mapping[Service, Mapping[str, dict[str, Any]]] = {
    Service.CIVIL_PERSON: {
        "name": _STR,
        "sex": {"type": "string", "enum": ["F", "M"]},
        "birth_date": _date(),
        "alive": _BOOL,
        "death_date": _date(nullable=True),
    },
    Service.CIVIL_FAMILY: {
        "mother_fin": _FIN_OR_NULL,
        "father_fin": _FIN_OR_NULL,
        "spouse_fin": _FIN_OR_NULL,
        "children": {"type": "array", "items": _FIN},
    },
    Service.INTERIOR_IDENTITY: {
        "document_valid": _BOOL,
        "document_number": _STR,
        "birth_date": _date(),
        "address": _STR,
        "resident": _BOOL,
    },
    Service.TAX_INCOME: {
        "employed": _BOOL,
        "monthly_income": {**_INT, "minimum": 0, "description": "qəpik"},
    },
    Service.PENSION_RECORD: {
        "pension_capital": {**_INT, "description": "qəpik"},
        "insurance_months": {**_INT, "minimum": 0},
        "pensions": {"type": "array", "items": _STR},
    },
    Service.DISABILITY_STATUS: {
        "active": _BOOL,
        "group": {**_INT, "minimum": 1, "maximum": 3, "nullable": True},
        "since": _date(nullable=True),
        "until": _date(nullable=True),
    },
    Service.MOBILE_NUMBER: {
        "phone": {"type": "string", "pattern": r"^\+994[0-9]{9}$", "nullable": True},
        "language": {"type": "string", "enum": ["az", "ru", "en"]},
    },
}


def problem(status: int, message: str) -> httpx.Response:
    """A provider's own error answer (no X-Road-Error header: the provider is not X-Road)."""
    body = {"status": status, "error": httpx.codes.get_reason_phrase(status), "message": message}
    return httpx.Response(status, content=json.dumps(body).encode(), headers={"Content-Type": JSON})


def _ok(body: Mapping[str, Any]) -> httpx.Response:
    # orjson: a batch answer carries thousands of records, and encoding them is most of the
    # protocol's cost in-process.
    return httpx.Response(200, content=orjson.dumps(body), headers={"Content-Type": JSON})


def parse_as_of(value: object) -> datetime:
    """An aware datetime from ISO 8601 text, or :class:`InvalidInput` naming the problem."""
    if not isinstance(value, str):
        raise InvalidInput(f"asOf must be an ISO 8601 date-time string, not {type(value).__name__}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"asOf {value!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(f"asOf {value!r} has no timezone offset (for example +04:00 or Z)")
    try:
        baku_date(moment)  # what the registries are asked by: the day in Baku
    except OverflowError:
        raise InvalidInput(f"asOf {value!r} is out of range: it has no date in Asia/Baku") from None
    return moment


def parse_query(body: bytes) -> tuple[datetime, list[str]]:
    """The batch request's ``asOf`` and ``fins``, validated."""
    try:
        data: Any = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput('the body must be a JSON object {"asOf": ..., "fins": [...]}')
    unknown = sorted(set(data) - {"asOf", "fins", "purpose"})
    if unknown:
        raise InvalidInput(f"unknown field(s) {', '.join(unknown)}: expected asOf, fins, purpose")
    if not isinstance(data.get("purpose", ""), str):
        raise InvalidInput("purpose must be a string")
    if "asOf" not in data:
        raise InvalidInput("asOf is missing")
    as_of = parse_as_of(data["asOf"])
    fins = data.get("fins")
    if not isinstance(fins, list):
        raise InvalidInput("fins is missing or not a list of FINs")
    if len(fins) > MAX_FINS:
        raise InvalidInput(f"fins holds {len(fins):,} FINs; at most {MAX_FINS:,} per request")
    for i, fin in enumerate(fins):
        if not is_fin(fin):
            raise InvalidInput(
                f"fins[{i}] {fin!r} is not a FIN: 7 upper-case Latin letters and digits"
            )
    return as_of, fins


class RegistryService:
    """One registry service of the synthetic country, on the path its directory route names."""

    def __init__(self, service: Service, route: Route, institutions: SimulatedInstitutions) -> None:
        self.service = service
        self.route = route
        self.institutions = institutions
        self.query_path = route.path
        self.item_prefix = route.path.removesuffix("/query") + "/"

    @property
    def service_id(self) -> ServiceId:
        return self.route.service

    def endpoints(self) -> Sequence[Endpoint]:
        return (Endpoint("POST", self.query_path), Endpoint("GET", self.item_prefix + "*"))

    def handle(self, request: httpx.Request) -> httpx.Response:
        # The raw (still percent-encoded) path: an encoded "/" in a FIN must not split it.
        path = request.url.raw_path.partition(b"?")[0].decode("ascii", "replace")
        if path == self.query_path:
            if request.method != "POST":
                return self._not_allowed("POST")
            return self._batch(request)
        if path.startswith(self.item_prefix) and "/" not in path[len(self.item_prefix) :]:
            if request.method not in ("GET", "HEAD"):
                return self._not_allowed("GET")
            return self._one(request, path[len(self.item_prefix) :])
        return problem(404, f"no resource at {path}: see this service's OpenAPI description")

    def _not_allowed(self, allow: str) -> httpx.Response:
        response = problem(405, f"this resource answers {allow} only")
        response.headers["Allow"] = allow
        return response

    def _batch(self, request: httpx.Request) -> httpx.Response:
        try:
            if request.url.query:
                raise InvalidInput("this resource takes no query parameters: asOf and fins go in the body")
            as_of, fins = parse_query(request.content)
        except InvalidInput as exc:
            return problem(400, str(exc))
        records = self.institutions.records(self.service, fins, as_of=as_of)
        return _ok({"asOf": as_of.isoformat(), "records": records})

    def _one(self, request: httpx.Request, fin: str) -> httpx.Response:
        fin = unquote(fin)
        params = parse_qs(request.url.query.decode("ascii", "replace"), keep_blank_values=True)
        try:
            unknown = sorted(set(params) - {"asOf"})
            if unknown:
                raise InvalidInput(f"unknown query parameter(s) {', '.join(unknown)}: expected asOf")
            values = params.get("asOf", [])
            if len(values) != 1:
                raise InvalidInput("asOf must be given exactly once as a query parameter")
            as_of = parse_as_of(values[0])
            if not is_fin(fin):
                raise InvalidInput(f"{fin!r} is not a FIN: 7 upper-case Latin letters and digits")
        except InvalidInput as exc:
            return problem(400, str(exc))
        record = self.institutions.records(self.service, [fin], as_of=as_of).get(fin)
        if record is None:
            return problem(404, f"{self.service}: no person with FIN {fin} as of {as_of.isoformat()}")
        return _ok({"asOf": as_of.isoformat(), "fin": fin, "record": record})

    def openapi(self) -> dict[str, Any]:
        """This service's OpenAPI 3.0 description (what ``getOpenAPI`` returns)."""
        fields = RECORD_FIELDS[self.service]
        record = {
            "type": "object",
            "required": list(fields),
            "additionalProperties": False,
            "properties": {name: dict(schema) for name, schema in fields.items()},
        }
        as_of = {"type": "string", "format": "date-time", "description": "with a timezone offset"}
        error = {"$ref": "#/components/schemas/Error"}
        errors = {
            code: {"description": what, "content": {"application/json": {"schema": error}}}
            for code, what in (("400", "Invalid input"), ("404", "Unknown FIN or path"))
        }
        title = self.service.value.replace("_", " ").replace("/", ": ")
        return {
            "openapi": "3.0.3",
            "info": {
                "title": f"{title[0].upper()}{title[1:]}",
                "version": "1.0.0",
                "description": f"The synthetic country's {self.service} service ({self.service_id}).",
            },
            "paths": {
                self.query_path: {
                    "post": {
                        "operationId": f"{self.service_id.code}Query",
                        "summary": f"{self.service} of many persons as of a moment",
                        "requestBody": {
                            "required": True,
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Query"}}},
                        },
                        "responses": {
                            "200": {
                                "description": "The records of the FINs known as of asOf",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Answer"}}},
                            },
                            "400": errors["400"],
                        },
                    }
                },
                self.item_prefix + "{fin}": {
                    "get": {
                        "operationId": f"{self.service_id.code}One",
                        "summary": f"{self.service} of one person as of a moment",
                        "parameters": [
                            {"name": "fin", "in": "path", "required": True, "schema": _FIN},
                            {"name": "asOf", "in": "query", "required": True, "schema": as_of},
                        ],
                        "responses": {
                            "200": {
                                "description": "The person's record as of asOf",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/One"}}},
                            },
                            **errors,
                        },
                    }
                },
            },
            "components": {
                "schemas": {
                    "Query": {
                        "type": "object",
                        "required": ["asOf", "fins"],
                        "additionalProperties": False,
                        "properties": {
                            "asOf": as_of,
                            "fins": {"type": "array", "maxItems": MAX_FINS, "items": _FIN},
                            "purpose": {**_STR, "description": "why the data is asked (kept, not used)"},
                        },
                    },
                    "Answer": {
                        "type": "object",
                        "required": ["asOf", "records"],
                        "properties": {
                            "asOf": as_of,
                            "records": {
                                "type": "object",
                                "additionalProperties": {"$ref": "#/components/schemas/Record"},
                            },
                        },
                    },
                    "One": {
                        "type": "object",
                        "required": ["asOf", "fin", "record"],
                        "properties": {
                            "asOf": as_of,
                            "fin": _FIN,
                            "record": {"$ref": "#/components/schemas/Record"},
                        },
                    },
                    "Record": record,
                    "Error": {
                        "type": "object",
                        "required": ["status", "error", "message"],
                        "properties": {"status": _INT, "error": _STR, "message": _STR},
                    },
                }
            },
        }


def simulated_providers(
    directory: Directory, institutions: SimulatedInstitutions
) -> dict[ServiceId, RegistryService]:
    """One provider service per route of the directory, over the synthetic country."""
    return {
        route.service: RegistryService(service, route, institutions)
        for service, route in directory.routes.items()
    }
