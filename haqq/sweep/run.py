"""One sweep, start to end: load the registry, evaluate, compare with the store."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl
from sqlalchemy import Engine

from haqq.rules.catalogue import Catalogue, Program
from haqq.sweep.compare import ENTITLEMENT_SCHEMA, compare, read_entitlements, store_inputs
from haqq.sweep.errors import BadDate
from haqq.sweep.evaluate import Evaluation, evaluate, load, swept
from haqq.sweep.frames import Registry

Step = Callable[[str], None]


def parse_date(text: str, what: str = "date") -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadDate(f"{what} {text!r} is not a date (YYYY-MM-DD)") from None


@dataclass
class Sweep:
    day: date
    programs: list[Program]
    registry: Registry
    evaluation: Evaluation
    findings: pl.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)


def run(
    catalogue: Catalogue,
    country: Path,
    day: date,
    *,
    engine: Engine | None,
    program_id: str | None = None,
    step: Step | None = None,
) -> Sweep:
    """Sweep ``country`` as of ``day`` (against the store of ``engine``, when given)."""
    say = step or (lambda _text: None)
    programs = swept(catalogue, program_id)
    began = time.perf_counter()
    say("reading the registry snapshot")
    registry = load(country, day, programs, catalogue.schema)
    loaded = time.perf_counter()
    say("reading the entitlements")
    ents = (
        read_entitlements(engine, [p.id for p in programs]) if engine is not None
        else pl.DataFrame(schema=ENTITLEMENT_SCHEMA)
    )
    inputs = store_inputs(registry, programs, ents)
    read = time.perf_counter()
    evaluation = evaluate(
        registry, programs, paid=inputs.paid, extra=inputs.extra,
        progress=lambda pid: say(f"evaluating {pid}"),
    )
    findings = compare(evaluation, inputs.active)
    done = time.perf_counter()
    seconds = {"load": loaded - began, "store": read - loaded, "evaluate": done - read}
    return Sweep(day, programs, registry, evaluation, findings, seconds)
