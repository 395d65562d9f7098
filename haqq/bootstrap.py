"""The composition root: the one place where haqq's parts are wired together.

Nothing is wired at import time; entry points call :func:`build` with their settings.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import structlog
from sqlalchemy import Engine

from haqq.adapters.bank.http import HttpBank
from haqq.adapters.institutions.simulated import (
    SimulatedBank,
    SimulatedInstitutions,
    SimulatedSmsGateway,
)
from haqq.adapters.store.db import make_engine
from haqq.adapters.xroad.client import XRoadInstitutions, XRoadSettings
from haqq.adapters.xroad.directory import load_directory
from haqq.adapters.xroad.providers import simulated_providers
from haqq.adapters.xroad.security_server import SecurityServer
from haqq.domain.errors import HaqqError
from haqq.pipeline.runs import Office
from haqq.pipeline.worker import Worker
from haqq.ports import Bank, Clock, Institutions, SmsGateway
from haqq.rules.catalogue import Catalogue, load_catalogue


class ConfigurationError(HaqqError):
    """Settings that cannot be wired; the message says which and why."""


#: Who approves and sends runs when the payment office is automatic (the simulation's office).
AUTOMATIC_OFFICE = "payment office (automatic)"


def configure_logging() -> None:
    """Logs go to stderr, so stdout carries only what a command prints (``--json`` output stays
    one JSON object); called by every process haqq starts, worker processes included."""
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))


def wall_clock() -> datetime:
    return datetime.now(UTC)


class SystemClock:
    def now(self) -> datetime:
        return wall_clock()


class ManualClock:
    """A simulated clock the replay moves forward."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment


#: How haqq reaches the registries: ``simulated`` (the country's institutions called directly,
#: in-process), ``xroad`` (the same through the X-Road REST protocol and a security-server
#: simulator, in-process, no sockets), ``http`` (a real security server at ``xroad_url``).
REGISTRIES = ("simulated", "xroad", "http")


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    country: Path = Path("country.db")
    catalogue_dir: Path | None = None
    seed: int = 1
    batch_size: int = 1000
    registries: str = "xroad"
    xroad_url: str | None = None
    xroad_directory: Path | None = None
    #: Mutual TLS to the security server: client certificate and key, and the CA to trust.
    xroad_cert: Path | None = None
    xroad_key: Path | None = None
    xroad_ca: Path | None = None
    #: How payments reach the bank: ``runs`` (payment runs as ISO 20022 files) or ``direct``
    #: (the bank's batch transfer call, payment by payment).
    payments: str = "runs"
    #: ``automatic``: the worker makes, approves and sends each day's runs (the embedded
    #: simulation's payment office); ``manual``: people do, with ``haqq payments``.
    payment_office: str = "automatic"
    #: Above this total (qəpik) a run needs a second approver.
    approval_threshold: int = 100_000_000
    #: The most payments one pain.001 file carries.
    payment_file_max: int = 100_000
    #: The partner bank's API (``haqq bank serve``); None: the simulated bank in-process.
    bank_url: str | None = None

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ.get
        base = cls(
            database_url=env("HAQQ_DATABASE_URL"),
            country=Path(env("HAQQ_COUNTRY", "country.db")),
            catalogue_dir=Path(p) if (p := env("HAQQ_CATALOGUE")) else None,
            registries=env("HAQQ_REGISTRIES") or ("http" if env("HAQQ_XROAD_URL") else "xroad"),
            xroad_url=env("HAQQ_XROAD_URL"),
            xroad_directory=Path(p) if (p := env("HAQQ_XROAD_DIRECTORY")) else None,
            xroad_cert=Path(p) if (p := env("HAQQ_XROAD_CERT")) else None,
            xroad_key=Path(p) if (p := env("HAQQ_XROAD_KEY")) else None,
            xroad_ca=Path(p) if (p := env("HAQQ_XROAD_CA")) else None,
            payments=env("HAQQ_PAYMENTS", "runs"),
            payment_office=env("HAQQ_PAYMENT_OFFICE", "automatic"),
            approval_threshold=_minor(env("HAQQ_APPROVAL_THRESHOLD_AZN"), 1_000_000),
            payment_file_max=int(env("HAQQ_PAYMENT_FILE_MAX", "100000")),
            bank_url=env("HAQQ_BANK_URL"),
        )
        values = {**base.__dict__, **{k: v for k, v in overrides.items() if v is not None}}
        return cls(**values)


def _minor(azn: str | None, default_azn: int) -> int:
    """An amount in AZN from the environment (``"1000000"`` or ``"2500.50"``) in qəpik."""
    if not azn:
        return default_azn * 100
    major, _, minor = azn.strip().partition(".")
    if not major.isdigit() or (minor and (not minor.isdigit() or len(minor) > 2)):
        raise ConfigurationError(f"not an amount in AZN: {azn!r} (like 1000000 or 2500.50)")
    return int(major) * 100 + int(minor.ljust(2, "0") or 0)


PAYMENT_CHANNELS = ("runs", "direct")
OFFICES = ("automatic", "manual")


@dataclass
class Haqq:
    """Everything an entry point needs, wired."""

    settings: Settings
    engine: Engine
    catalogue: Catalogue
    institutions: Institutions
    bank: Bank
    sms: SmsGateway
    wall: Callable[[], datetime] = field(default=wall_clock)

    def worker(
        self, clock: Clock, batch_size: int | None = None, *, shard: int = 0, shards: int = 1
    ) -> Worker:
        """A worker; ``shard`` of ``shards`` when several share an embedded (SQLite) store."""
        return Worker(
            engine=self.engine,
            catalogue=self.catalogue,
            institutions=self.institutions,
            bank=self.bank,
            sms=self.sms,
            clock=clock,
            wall=self.wall,
            batch_size=batch_size or self.settings.batch_size,
            shard=shard,
            shards=shards,
            office=self.office() if self.settings.payments == "runs" else None,
        )

    def office(self) -> Office:
        """The payment office as configured."""
        s = self.settings
        return Office(
            threshold=s.approval_threshold,
            file_max=s.payment_file_max,
            automatic=AUTOMATIC_OFFICE if s.payment_office == "automatic" else None,
        )


class InProcessTransport:
    """The HTTP transport of the embedded mode: requests go to a security-server simulator in
    this process, through the same protocol code as over the network (picklable, so a worker
    process gets its own)."""

    def __init__(self, server: SecurityServer) -> None:
        self.server = server

    def __call__(self) -> httpx.BaseTransport:
        return httpx.MockTransport(self.server.handle)


def institutions(settings: Settings) -> Institutions:
    """The registries as the settings say (see :data:`REGISTRIES`)."""
    if settings.registries not in REGISTRIES:
        raise ConfigurationError(
            f"unknown registries {settings.registries!r}: choose one of {', '.join(REGISTRIES)}"
        )
    simulated = SimulatedInstitutions(settings.country)
    if settings.registries == "simulated":
        return simulated
    directory = load_directory(settings.xroad_directory)
    if settings.registries == "xroad":
        server = SecurityServer(directory, simulated_providers(directory, simulated), seed=settings.seed)
        return XRoadInstitutions(
            directory, XRoadSettings(url="http://security-server.embedded"),
            transport=InProcessTransport(server), seed=settings.seed,
        )
    if not settings.xroad_url:
        raise ConfigurationError("registries 'http' needs the security server's URL (HAQQ_XROAD_URL)")
    if (settings.xroad_cert is None) != (settings.xroad_key is None):
        raise ConfigurationError("mutual TLS needs both HAQQ_XROAD_CERT and HAQQ_XROAD_KEY")
    cert = (settings.xroad_cert, settings.xroad_key) if settings.xroad_cert and settings.xroad_key else None
    return XRoadInstitutions(
        directory,
        XRoadSettings(url=settings.xroad_url, cert=cert, verify=settings.xroad_ca or True),
        seed=settings.seed,
    )


def bank(settings: Settings) -> Bank:
    """The partner bank: its API when ``bank_url`` is set, else the simulated bank in-process."""
    if settings.payments not in PAYMENT_CHANNELS:
        raise ConfigurationError(f"unknown payments {settings.payments!r}: choose one of {', '.join(PAYMENT_CHANNELS)}")
    if settings.payment_office not in OFFICES:
        raise ConfigurationError(
            f"unknown payment office {settings.payment_office!r}: choose one of {', '.join(OFFICES)}"
        )
    if settings.payment_file_max < 1:
        raise ConfigurationError("HAQQ_PAYMENT_FILE_MAX must be at least 1")
    if settings.bank_url:
        return HttpBank(settings.bank_url)
    return SimulatedBank(settings.country, seed=settings.seed)


def build(settings: Settings | None = None, *, engine: Engine | None = None) -> Haqq:
    """Wire haqq: the store from the settings, the registries as configured (by default the
    simulated country's, through the X-Road protocol in-process), the simulated bank and SMS
    gateway."""
    settings = settings or Settings.from_env()
    configure_logging()
    return Haqq(
        settings=settings,
        engine=engine or make_engine(settings.database_url),
        catalogue=load_catalogue(settings.catalogue_dir),
        institutions=institutions(settings),
        bank=bank(settings),
        sms=SimulatedSmsGateway(settings.country, seed=settings.seed),
    )
