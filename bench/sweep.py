"""``haqq bench sweep``: load the registry snapshot and sweep every program, then the disability
payment again with OpenFisca on the same persons.

The country is generated once per (population, seed) and cached (not counted). Measured: the
snapshot load (only the facts the programs read) plus the evaluation of every swept program with
its relations (universe, beneficiary, facts, children, decision), wall time and peak RSS. Then
the disability payment alone, by haqq (load and evaluation) and by a minimal OpenFisca system
(:mod:`bench.openfisca_disability`: simulation build and calculation) on the same persons, the
results checked equal person by person, and the ratio.
"""

from __future__ import annotations

import gc
import os
import platform
import resource
import time
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from bench.pipeline import YEAR, cached_country
from haqq.rules.catalogue import load_catalogue
from haqq.rules.lang.vector import VectorProgram
from haqq.sweep.evaluate import evaluate, load, swept
from haqq.sweep.frames import program_frame

DAY = date(YEAR, 12, 31)
DISABILITY = "disability_payment"
SITUATION_SAMPLE = 20_000


class BenchFailed(RuntimeError):
    pass


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_bench(*, population: int, seed: int, openfisca: bool, progress: bool = False) -> dict[str, Any]:
    if openfisca:
        from bench import openfisca_disability as ofd

        ofd.build_system  # noqa: B018 - fail early, before the measurement, when missing
        try:
            import openfisca_core  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: F401
        except ImportError:
            raise ofd.OpenFiscaMissing(
                "OpenFisca is not installed: pip install -e \".[bench]\" (or run with --no-openfisca)"
            ) from None
    say = print if progress else (lambda *_a: None)
    say(f"country of {population:,} (generated once, cached)...")
    country = cached_country(population, seed)
    catalogue = load_catalogue()
    programs = swept(catalogue)
    gc.collect()
    began = time.perf_counter()
    registry = load(country, DAY, programs, catalogue.schema)
    loaded = time.perf_counter()
    evaluation = evaluate(registry, programs)
    done = time.perf_counter()
    peak = peak_rss_mb()
    decisions = evaluation.decisions
    granted = decisions.filter(pl.col("outcome") == "granted").group_by("program").len()
    figures: dict[str, Any] = {
        "persons": registry.height,
        "population": population,
        "date": DAY.isoformat(),
        "programs": len(programs),
        "decisions": decisions.height,
        "granted": {r["program"]: r["len"] for r in granted.sort("program").iter_rows(named=True)},
        "load_seconds": round(loaded - began, 3),
        "evaluate_seconds": round(done - loaded, 3),
        "seconds": round(done - began, 3),
        "peak_rss_mb": round(peak, 1),
    }
    del registry, evaluation, decisions
    gc.collect()
    if openfisca:
        figures.update(_openfisca(country, catalogue, say))
    figures["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    return figures


def _openfisca(country: Any, catalogue: Any, say: Any) -> dict[str, Any]:
    from bench import openfisca_disability as ofd

    program = catalogue[DISABILITY]
    say("disability payment: haqq...")
    began = time.perf_counter()
    registry = load(country, DAY, [program], catalogue.schema)
    frame = program_frame(registry, program)
    mine = VectorProgram(program.table).evaluate(frame.population, today=DAY, children=frame.children)
    haqq_seconds = time.perf_counter() - began
    pop = frame.population.filter(pl.col("__review").is_null())
    mine = mine.filter(frame.population["__review"].is_null())
    inputs = _inputs(pop)
    history = {
        name: [(v.from_, int(v.value)) for v in program.table.parameters[name].values]
        for name in ofd.PARAMETERS
    }
    system = ofd.build_system(history)
    say(f"disability payment: OpenFisca on {pop.height:,} persons...")
    began = time.perf_counter()
    theirs = ofd.run(system, inputs, DAY)
    of_seconds = time.perf_counter() - began
    # OpenFisca's documented input, a situation of persons, is far slower to build: measured on
    # a sample (building it for every person takes many minutes), checked equal too.
    sample = {k: v[:SITUATION_SAMPLE] for k, v in inputs.items()}
    entities = ofd.situation(sample, DAY)
    began = time.perf_counter()
    built = ofd.run(system, sample, DAY, entities=entities)
    situation_seconds = time.perf_counter() - began
    for key in theirs:
        if not np.array_equal(theirs[key][:SITUATION_SAMPLE], built[key]):
            raise BenchFailed(f"OpenFisca's two simulations disagree on {key}")
    branches = np.array(ofd.BRANCHES)
    same_outcome = np.array(ofd.OUTCOMES)[theirs["outcome"]] == mine["outcome"].cast(pl.String).to_numpy()
    same_branch = branches[theirs["branch"]] == mine["branch"].cast(pl.String).to_numpy()
    same_amount = theirs["amount"].astype(np.int64) == mine["amount"].to_numpy()
    differ = int((~(same_outcome & same_branch & same_amount)).sum())
    if differ:
        raise BenchFailed(f"OpenFisca and haqq disagree on {differ:,} of {pop.height:,} persons")
    return {
        "openfisca_persons": pop.height,
        "openfisca_equal": True,
        "disability_seconds": round(haqq_seconds, 3),
        "openfisca_seconds": round(of_seconds, 3),
        "openfisca_ratio": round(of_seconds / haqq_seconds, 2),
        "openfisca_situation_persons": len(next(iter(sample.values()))),
        "openfisca_situation_seconds": round(situation_seconds, 3),
    }


def _days(series: pl.Series) -> np.ndarray:
    return series.cast(pl.Date).cast(pl.Int32).fill_null(-25_567).to_numpy().astype(np.int64)


def _inputs(pop: pl.DataFrame) -> dict[str, np.ndarray]:
    """The OpenFisca input arrays (nulls read as the facts' defaults, as haqq reads them)."""

    def flag(name: str) -> np.ndarray:
        return pop[name].fill_null(False).to_numpy().astype(bool)

    def number(name: str) -> np.ndarray:
        return pop[name].cast(pl.Int64).fill_null(0).to_numpy()

    return {
        "beneficiary_known": flag("beneficiary__known"),
        "beneficiary_alive": flag("beneficiary__alive"),
        "beneficiary_identity_known": flag("beneficiary__identity_known"),
        "beneficiary_document_valid": flag("beneficiary__document_valid"),
        "beneficiary_resident": flag("beneficiary__resident"),
        "beneficiary_identity_birth_date": _days(pop["beneficiary__identity_birth_date"]),
        "beneficiary_birth_date": _days(pop["beneficiary__birth_date"]),
        "disability_active": flag("subject__disability_active"),
        "receives_disability_pension": flag("subject__receives_disability_pension"),
        "already_paid": flag("already_paid"),
        "pension_capital": number("subject__pension_capital"),
        "disability_group": number("subject__disability_group"),
    }
