"""The data-exchange directory: which X-Road service answers each service of the port, who may
call what, and the faults the simulator injects (``directory.yaml`` by default)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from haqq.adapters.xroad.ids import ClientId, InvalidIdentifier, ServiceId
from haqq.domain.errors import HaqqError
from haqq.ports import Service

DEFAULT = Path(__file__).with_name("directory.yaml")


class DirectoryError(HaqqError):
    """A directory file that cannot be used; the message names the file and what is wrong."""


class _Route(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str
    path: str

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/") or "//" in v or ".." in v:
            raise ValueError(f"path {v!r} must start with '/' and hold no '//' or '..'")
        return v


class _Down(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    start: datetime = Field(alias="from")
    until: datetime

    @field_validator("start", "until")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("times must carry a timezone (for example +04:00)")
        return v


class _Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")
    latency_ms: float = Field(0.0, ge=0)
    error_rate: float = Field(0.0, ge=0, le=1)
    down: list[_Down] = Field(default_factory=list)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instance: str
    client: str
    services: dict[str, _Route]
    access: dict[str, list[str]] = Field(default_factory=dict)
    faults: dict[str, _Fault] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Route:
    """Where one service of the port is answered."""

    service: ServiceId
    path: str


@dataclass(frozen=True, slots=True)
class Fault:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    down: tuple[tuple[datetime, datetime], ...] = ()

    def is_down(self, moment: datetime) -> bool:
        return any(start <= moment < until for start, until in self.down)


@dataclass(frozen=True)
class Directory:
    instance: str
    client: ClientId
    routes: Mapping[Service, Route]
    access: Mapping[ClientId, frozenset[ServiceId]] = field(default_factory=dict)
    faults: Mapping[ClientId, Fault] = field(default_factory=dict)

    def route(self, service: Service) -> Route:
        try:
            return self.routes[service]
        except KeyError:
            raise DirectoryError(f"the directory names no X-Road service for {service}") from None

    @property
    def providers(self) -> frozenset[ClientId]:
        return frozenset(r.service.provider for r in self.routes.values())

    def allowed(self, client: ClientId, service: ServiceId) -> bool:
        return service in self.access.get(client, frozenset())

    def with_faults(self, faults: Mapping[ClientId, Fault]) -> Directory:
        return Directory(self.instance, self.client, self.routes, self.access, dict(faults))


def load_directory(path: Path | str | None = None) -> Directory:
    """Read a directory file (``HAQQ_XROAD_DIRECTORY``, else the packaged one)."""
    source = Path(path or os.environ.get("HAQQ_XROAD_DIRECTORY") or DEFAULT)
    try:
        raw: Any = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DirectoryError(f"{source}: cannot read the directory: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise DirectoryError(f"{source}: not valid YAML: {exc}") from None
    try:
        parsed = _File.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DirectoryError(f"{source}: {where}: {first['msg']}") from None
    try:
        return _build(parsed)
    except (InvalidIdentifier, ValueError) as exc:
        raise DirectoryError(f"{source}: {exc}") from None


def _build(f: _File) -> Directory:
    routes: dict[Service, Route] = {}
    for name, route in f.services.items():
        try:
            service = Service(name)
        except ValueError:
            known = ", ".join(s.value for s in Service)
            raise ValueError(f"services: unknown service {name!r} (known: {known})") from None
        sid = ServiceId.parse(route.service)
        if sid.provider.instance != f.instance:
            raise ValueError(f"services.{name}: {sid} is not in the instance {f.instance}")
        routes[service] = Route(sid, route.path)
    missing = sorted(s.value for s in Service if s not in routes)
    if missing:
        raise ValueError(f"services: no route for {', '.join(missing)}")
    access = {
        ClientId.parse(client): frozenset(ServiceId.parse(s) for s in services)
        for client, services in f.access.items()
    }
    faults = {
        ClientId.parse(provider): Fault(
            fault.latency_ms, fault.error_rate, tuple((d.start, d.until) for d in fault.down)
        )
        for provider, fault in f.faults.items()
    }
    return Directory(f.instance, ClientId.parse(f.client), routes, access, faults)
