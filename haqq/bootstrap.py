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
from typing import TYPE_CHECKING

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
from haqq.domain.quiet import QuietHours
from haqq.pipeline.runs import Office
from haqq.pipeline.texting import SmsPolicy
from haqq.pipeline.worker import Role, Worker
from haqq.ports import Bank, Clock, Institutions, SmsGateway
from haqq.rules.catalogue import Catalogue, load_catalogue
from haqq.rules.messages import MessageCatalogue, default_messages, load_messages

if TYPE_CHECKING:
    from haqq.entrypoints.web.context import WebContext


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
    #: The SMS gateway: ``simulated`` (in-process), ``kannel`` (its HTTP ``sendsms``) or
    #: ``smpp`` (SMPP 3.4 to an SMSC).
    sms_gateway: str = "simulated"
    #: Kannel's sendsms URL with its user, e.g. ``http://haqq:secret@kannel:13013/cgi-bin/sendsms``.
    kannel_url: str | None = None
    #: The SMSC, e.g. ``smpp://system_id:password@smsc.example:2775``.
    smpp_url: str | None = None
    #: Where a gateway pushes receipts and replies: haqq serve's address (``/sms/kannel/dlr``).
    sms_callback_url: str = "http://127.0.0.1:8080"
    sms_sender: str = "HAQQ"
    #: No SMS at night (local time, ``HH:MM-HH:MM``; ``off`` for none).
    sms_quiet: str = "22:00-08:00"
    #: Messages a second the gateway takes (shared by the workers; 0: no limit).
    sms_rate: float = 0.0
    #: The SMS catalogue (None: the built-in ``haqq/rules/messages.yaml``).
    messages_path: Path | None = None
    #: Bearer tokens: the local issuer's secret (None: one haqq makes and keeps in the database),
    #: or an identity provider's public key (PEM file), issuer and audience.
    jwt_secret: str | None = None
    jwt_public_key: Path | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    #: A caseworker's decision in the review queue granting more than this (qəpik) needs a
    #: supervisor's second approval.
    review_threshold: int = 50_000

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
            sms_gateway=env("HAQQ_SMS_GATEWAY")
            or ("kannel" if env("HAQQ_KANNEL_URL") else "smpp" if env("HAQQ_SMPP_URL") else "simulated"),
            kannel_url=env("HAQQ_KANNEL_URL"),
            smpp_url=env("HAQQ_SMPP_URL"),
            sms_callback_url=env("HAQQ_SMS_CALLBACK_URL", "http://127.0.0.1:8080"),
            sms_sender=env("HAQQ_SMS_SENDER", "HAQQ"),
            sms_quiet=env("HAQQ_SMS_QUIET", "22:00-08:00"),
            sms_rate=_number(env("HAQQ_SMS_RATE"), "HAQQ_SMS_RATE"),
            messages_path=Path(p) if (p := env("HAQQ_MESSAGES")) else None,
            jwt_secret=env("HAQQ_JWT_SECRET") or None,
            jwt_public_key=Path(p) if (p := env("HAQQ_JWT_PUBLIC_KEY")) else None,
            jwt_issuer=env("HAQQ_JWT_ISSUER") or None,
            jwt_audience=env("HAQQ_JWT_AUDIENCE") or None,
            review_threshold=_minor(env("HAQQ_REVIEW_APPROVAL_AZN"), 500),
        )
        values = {**base.__dict__, **{k: v for k, v in overrides.items() if v is not None}}
        return cls(**values)


def _number(value: str | None, name: str) -> float:
    if not value:
        return 0.0
    try:
        number = float(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, not {value!r}") from None
    if number < 0:
        raise ConfigurationError(f"{name} must not be negative")
    return number


def _minor(azn: str | None, default_azn: int) -> int:
    """An amount in AZN from the environment (``"1000000"`` or ``"2500.50"``) in qəpik."""
    if not azn:
        return default_azn * 100
    major, _, minor = azn.strip().partition(".")
    if not major.isdigit() or (minor and (not minor.isdigit() or len(minor) > 2)):
        raise ConfigurationError(f"not an amount in AZN: {azn!r} (like 1000000 or 2500.50)")
    return int(major) * 100 + int(minor.ljust(2, "0") or 0)


PAYMENT_CHANNELS = ("runs", "direct")
SMS_GATEWAYS = ("simulated", "kannel", "smpp")
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
    messages: MessageCatalogue = field(default_factory=default_messages)

    def worker(
        self, clock: Clock, batch_size: int | None = None, *, shard: int = 0, shards: int = 1,
        role: Role = "all",
    ) -> Worker:
        """A worker; ``shard`` of ``shards`` when several share an embedded (SQLite) store;
        ``role`` says whether it does everything, the cases only, or the payment office only."""
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
            messages=self.messages,
            sms_policy=self.sms_policy(),
            role=role,
        )

    def web_context(self) -> WebContext:
        """What the web app needs: the store, the token keys, the registries' person search."""
        from haqq.adapters.auth.tokens import token_keys
        from haqq.adapters.institutions.directory import CountryDirectory
        from haqq.entrypoints.web.context import WebContext

        s = self.settings
        return WebContext(
            engine=self.engine,
            keys=token_keys(self.engine, now=self.wall(), secret=s.jwt_secret, public_key=s.jwt_public_key,
                            issuer=s.jwt_issuer, audience=s.jwt_audience),
            catalogue=self.catalogue,
            directory=CountryDirectory(s.country) if s.country.exists() else None,
            messages=self.messages,
            quiet=QuietHours.parse(s.sms_quiet),
            review_threshold=s.review_threshold,
            now=self.wall,
        )

    def sms_policy(self) -> SmsPolicy:
        """How SMS go out, as configured (quiet hours, the gateway's rate)."""
        return SmsPolicy(quiet=QuietHours.parse(self.settings.sms_quiet), rate=self.settings.sms_rate)

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


def sms_gateway(settings: Settings) -> SmsGateway:
    """The SMS gateway as the settings say (see :data:`SMS_GATEWAYS`)."""
    QuietHours.parse(settings.sms_quiet)  # a bad setting fails at start, not at night
    if settings.sms_gateway not in SMS_GATEWAYS:
        raise ConfigurationError(
            f"unknown SMS gateway {settings.sms_gateway!r}: choose one of {', '.join(SMS_GATEWAYS)}"
        )
    if settings.sms_gateway == "kannel":
        if not settings.kannel_url:
            raise ConfigurationError("the kannel gateway needs its sendsms URL (HAQQ_KANNEL_URL)")
        from haqq.adapters.sms.kannel import KannelGateway

        url = httpx.URL(settings.kannel_url)
        return KannelGateway(
            str(url.copy_with(username=None, password=None)), url.username, url.password,
            settings.sms_callback_url, sender=settings.sms_sender,
            dlr_token=os.environ.get("HAQQ_SMS_TOKEN") or None,
        )
    if settings.sms_gateway == "smpp":
        if not settings.smpp_url:
            raise ConfigurationError("the smpp gateway needs the SMSC (HAQQ_SMPP_URL=smpp://id:password@host:port)")
        from haqq.adapters.sms.smpp import SmppGateway

        url = httpx.URL(settings.smpp_url.replace("smpp://", "http://", 1))
        if not url.host or not url.username:
            raise ConfigurationError(f"HAQQ_SMPP_URL {settings.smpp_url!r}: expected smpp://system_id:password@host:port")
        return SmppGateway(url.host, url.port or 2775, url.username, url.password,
                           source_addr=settings.sms_sender)
    return SimulatedSmsGateway(settings.country, seed=settings.seed)


def build(settings: Settings | None = None, *, engine: Engine | None = None) -> Haqq:
    """Wire haqq: the store from the settings, the registries as configured (by default the
    simulated country's, through the X-Road protocol in-process), the bank and SMS gateway as
    configured (by default simulated, in-process)."""
    settings = settings or Settings.from_env()
    configure_logging()
    catalogue = load_catalogue(settings.catalogue_dir)
    full = {p.id: p.names.model_dump() for p in catalogue.programs.values()}
    return Haqq(
        settings=settings,
        engine=engine or make_engine(settings.database_url),
        catalogue=catalogue,
        institutions=institutions(settings),
        bank=bank(settings),
        sms=sms_gateway(settings),
        messages=load_messages(settings.messages_path, programs=full)
        if settings.messages_path else default_messages(),
    )
