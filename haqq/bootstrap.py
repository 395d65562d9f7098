"""The composition root: the one place where haqq's parts are wired together.

Nothing is wired at import time; entry points call :func:`build` with their settings.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from haqq.adapters.institutions.simulated import (
    SimulatedBank,
    SimulatedInstitutions,
    SimulatedSmsGateway,
)
from haqq.adapters.store.db import make_engine
from haqq.pipeline.worker import Worker
from haqq.ports import Bank, Clock, Institutions, SmsGateway
from haqq.rules.catalogue import Catalogue, load_catalogue


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


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    country: Path = Path("country.db")
    catalogue_dir: Path | None = None
    seed: int = 1
    batch_size: int = 1000

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        base = cls(
            database_url=os.environ.get("HAQQ_DATABASE_URL"),
            country=Path(os.environ.get("HAQQ_COUNTRY", "country.db")),
            catalogue_dir=Path(p) if (p := os.environ.get("HAQQ_CATALOGUE")) else None,
        )
        values = {**base.__dict__, **{k: v for k, v in overrides.items() if v is not None}}
        return cls(**values)


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
        )


def build(settings: Settings | None = None, *, engine: Engine | None = None) -> Haqq:
    """Wire haqq on the embedded default: the store from the settings, simulated institutions."""
    settings = settings or Settings.from_env()
    return Haqq(
        settings=settings,
        engine=engine or make_engine(settings.database_url),
        catalogue=load_catalogue(settings.catalogue_dir),
        institutions=SimulatedInstitutions(settings.country),
        bank=SimulatedBank(settings.country, seed=settings.seed),
        sms=SimulatedSmsGateway(settings.country, seed=settings.seed),
    )
