"""``haqq bench explain``: decide persons one by one with the interpreter and its trace.

The persons come from the registry snapshot of a cached synthetic country, as the sweep sees
them (every swept program's universe, its beneficiaries and relations); each is decided by the
per-person interpreter, which returns the decision with its trace (the deciding row, the checks
passed, every fact read with its source, every parameter with its date and reference), the
explanation haqq keeps for a citizen. Measured: persons decided per second (building the
persons from the frames is not counted).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping
from datetime import date
from typing import Any

import polars as pl

from bench.pipeline import YEAR, cached_country
from haqq.rules.catalogue import load_catalogue
from haqq.rules.lang import Case, Person, Schema
from haqq.rules.lang.columns import CHILD_PARENT, SEP
from haqq.rules.lang.types import SINGLE_RELATIONS
from haqq.sweep.evaluate import load, swept
from haqq.sweep.frames import program_frame

DAY = date(YEAR, 12, 31)
SOURCE = "registry snapshot"


def _person(schema: Schema, fin: str, row: Mapping[str, Any], prefix: str) -> Person:
    values = schema.defaults()
    sources = dict.fromkeys(values, "default")
    for name in values:
        value = row.get(f"{prefix}{name}")
        if value is not None:
            values[name] = value
            sources[name] = SOURCE
    return Person(fin, values, sources)


def cases(schema: Schema, population: pl.DataFrame, children: pl.DataFrame | None) -> list[Case]:
    """The interpreter's cases of a population frame (the facts it holds, else defaults)."""
    kids: dict[str, list[Person]] = {}
    if children is not None:
        for row in children.iter_rows(named=True):
            kids.setdefault(row[CHILD_PARENT], []).append(_person(schema, row["fin"], row, ""))
    out = []
    for row in population.iter_rows(named=True):
        people = []
        for role in ("subject", "beneficiary"):
            fin = row["fin"] if role == "subject" else row[f"beneficiary{SEP}fin"]
            who = _person(schema, fin, row, f"{role}{SEP}")
            for relation in SINGLE_RELATIONS:
                if row.get(f"{role}{SEP}{relation}{SEP}exists"):
                    setattr(who, relation, _person(schema, "", row, f"{role}{SEP}{relation}{SEP}"))
            who.children = tuple(kids.get(fin, ()))
            people.append(who)
        out.append(Case(people[0], people[1], bool(row["already_paid"])))
    return out


def run_bench(*, population: int, persons: int, seed: int) -> dict[str, Any]:
    country = cached_country(population, seed)
    catalogue = load_catalogue()
    programs = swept(catalogue)
    registry = load(country, DAY, programs, catalogue.schema)
    work: list[tuple[Any, Case]] = []
    share = max(1, persons // len(programs))
    for program in programs:
        frame = program_frame(registry, program)
        pop = frame.population.filter(pl.col("__review").is_null()).head(share)
        work += [(program.interpreter, c) for c in cases(catalogue.schema, pop, frame.children)]
    began = time.perf_counter()
    facts = 0
    for interpreter, case in work:
        _result, trace = interpreter.evaluate(case, DAY)
        facts += len(trace.facts)
    seconds = time.perf_counter() - began
    return {
        "persons": len(work),
        "programs": len(programs),
        "seconds": round(seconds, 3),
        "persons_per_second": round(len(work) / seconds, 1),
        "facts_traced_per_person": round(facts / max(len(work), 1), 1),
        "population": population,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
