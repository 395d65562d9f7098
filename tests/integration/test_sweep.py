"""The sweep decides as the per-person interpreter does, on the institutions' own answers.

A small synthetic country is swept as of a date; for a sample of every program's subjects (every
branch represented) the interpreter decides again from what the simulated institutions answer
(as the pipeline's gather step asks them), and must agree on outcome, branch and amount. The
vectorised beneficiary must equal :func:`resolve_beneficiary` for every subject.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from haqq.adapters.institutions import SimulatedInstitutions
from haqq.country.schema import BAKU
from haqq.ports import Service
from haqq.rules.catalogue import Beneficiary, load_catalogue
from haqq.rules.evaluate import Candidate, Relations, person, resolve_beneficiary
from haqq.rules.lang import Case
from haqq.sweep.evaluate import NO_BENEFICIARY, evaluate, load, swept
from haqq.sweep.facts import SNAPSHOT_FACTS, not_held
from tests.helpers import generated_country

DAYS = [date(2025, 12, 31), date(2025, 6, 15)]
CATALOGUE = load_catalogue()


@pytest.fixture(scope="module")
def country(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, population=8_000, seed=5)


class Answers:
    """Every service's answers for a set of FINs on a day, as the gather step receives them."""

    def __init__(self, country: Path, fins: set[str], day: date) -> None:
        ask = SimulatedInstitutions(country)
        moment = datetime.combine(day, time(12), tzinfo=BAKU)
        self.by_service = {
            s: dict(ask.query(s, sorted(fins), as_of=moment, purpose="test").records) for s in Service
        }
        ask.close()

    def of(self, fin: str) -> dict[str, Mapping[str, Any] | None]:
        return {s.value: self.by_service[s].get(fin) for s in Service}

    def family(self, fin: str) -> Mapping[str, Any]:
        return self.by_service[Service.CIVIL_FAMILY].get(fin) or {}


def _related(country: Path, fins: set[str], day: date) -> Answers:
    """Answers for ``fins``, their relations, and their relations' relations (two rounds)."""
    first = Answers(country, fins, day)
    more = set(fins)
    for fin in fins:
        links = first.family(fin)
        more.update(f for f in (links.get("mother_fin"), links.get("father_fin"), links.get("spouse_fin")) if f)
        more.update(links.get("children") or [])
    second = Answers(country, more, day)
    third = set(more)
    for fin in more:
        links = second.family(fin)
        third.update(f for f in (links.get("mother_fin"), links.get("father_fin"), links.get("spouse_fin")) if f)
        third.update(links.get("children") or [])
    return Answers(country, third, day)


def _person(answers: Answers, fin: str) -> Any:
    links = answers.family(fin)

    def one(key: str) -> tuple[str, Mapping[str, Any]] | None:
        linked = links.get(key)
        return (linked, answers.of(linked)) if linked else None

    relations = Relations(
        mother=one("mother_fin"), father=one("father_fin"), spouse=one("spouse_fin"),
        children=[(c, answers.of(c)) for c in links.get("children") or []],
    )
    return person(CATALOGUE.schema, fin, answers.of(fin), relations)


def _sample(decisions: pl.DataFrame, per_branch: int) -> pl.DataFrame:
    return decisions.group_by("program", "branch", maintain_order=True).head(per_branch)


@pytest.mark.parametrize("day", DAYS)
def test_the_sweep_decides_as_the_interpreter(country: Path, day: date) -> None:
    programs = swept(CATALOGUE)
    registry = load(country, day, programs, CATALOGUE.schema)
    assert registry.defaulted == ()  # the default catalogue reads only facts the snapshot holds
    result = evaluate(registry, programs)
    decided = result.decisions
    assert set(decided["program"].unique()) == {p.id for p in programs}
    # Every program has subjects, and some of them are granted.
    granted = decided.filter(pl.col("outcome") == "granted").group_by("program").len()
    assert granted.height == len(programs), granted
    sample = _sample(decided, 12)
    fins = {f for f in sample["subject_fin"].to_list() + sample["fin"].to_list() if f}
    answers = _related(country, fins, day)
    checked = 0
    for row in sample.iter_rows(named=True):
        program = CATALOGUE[row["program"]]
        if row["branch"] == NO_BENEFICIARY:
            assert row["fin"] is None
            continue
        subject = _person(answers, row["subject_fin"])
        beneficiary = _person(answers, row["fin"])
        result_, _trace = program.interpreter.evaluate(Case(subject, beneficiary, False), day)
        got = (row["outcome"], row["branch"], row["amount"])
        assert got == (result_.outcome.value, result_.branch, result_.amount), (row, result_)
        checked += 1
    assert checked > 50


def _candidate(answers: Answers, fin: str | None) -> Candidate | None:
    if not fin:
        return None
    civil = answers.by_service[Service.CIVIL_PERSON].get(fin)
    if civil is None:
        return None
    identity = answers.by_service[Service.INTERIOR_IDENTITY].get(fin) or {}
    born = civil.get("birth_date")
    return Candidate(fin, bool(civil["alive"]), bool(identity.get("resident")), date.fromisoformat(born) if born else None)


def _expected(program_beneficiary: Beneficiary, answers: Answers, subject: str, day: date) -> str | None:
    links = answers.family(subject)
    if program_beneficiary is Beneficiary.MINOR_CHILDREN_VIA_SURVIVING_PARENT:
        # The pipeline resolves from the death of a parent: any parent of the child who died.
        dead = [
            p for p in (links.get("mother_fin"), links.get("father_fin"))
            if p and not (answers.by_service[Service.CIVIL_PERSON].get(p) or {}).get("alive")
        ]
        assert dead, subject
        kids = answers.family(dead[0]).get("children") or []
        children = [c for c in (_candidate(answers, k) for k in kids) if c is not None]
        parents = {c.fin: (answers.family(c.fin).get("mother_fin"), answers.family(c.fin).get("father_fin")) for c in children}
        people = {f: c for f in {p for pair in parents.values() for p in pair if p} if (c := _candidate(answers, f))}
        picks = resolve_beneficiary(
            program_beneficiary, subject=dead[0], subject_birth=None, mother=None, father=None,
            spouse=None, children=children, day=day, child_parents=parents, people=people,
        )
        return next(p.beneficiary for p in picks if p.subject == subject)
    civil = answers.by_service[Service.CIVIL_PERSON].get(subject) or {}
    born = civil.get("birth_date")
    kids = [c for c in (_candidate(answers, k) for k in links.get("children") or []) if c is not None]
    picks = resolve_beneficiary(
        program_beneficiary, subject=subject,
        subject_birth=date.fromisoformat(born) if born else None,
        mother=_candidate(answers, links.get("mother_fin")),
        father=_candidate(answers, links.get("father_fin")),
        spouse=_candidate(answers, links.get("spouse_fin")),
        children=kids, day=day,
    )
    assert len(picks) == 1
    return picks[0].beneficiary


@pytest.mark.parametrize("day", DAYS)
def test_the_vectorised_beneficiary_is_resolve_beneficiary(country: Path, day: date) -> None:
    programs = [p for p in swept(CATALOGUE) if p.beneficiary is not Beneficiary.SELF]
    assert {p.beneficiary for p in programs} == set(Beneficiary) - {Beneficiary.SELF}
    registry = load(country, day, programs, CATALOGUE.schema)
    decided = evaluate(registry, programs).decisions
    subjects = set(decided["subject_fin"].to_list())
    answers = _related(country, subjects, day)
    nobody = 0
    for row in decided.iter_rows(named=True):
        program = CATALOGUE[row["program"]]
        expected = _expected(program.beneficiary, answers, row["subject_fin"], day)
        assert row["fin"] == expected, (program.id, row)
        nobody += expected is None
    assert decided.height > 500


def test_every_fact_is_mapped_or_declared_not_held() -> None:
    assert set(SNAPSHOT_FACTS) == set(CATALOGUE.schema.facts)
    assert not_held(CATALOGUE.schema.facts) == ["address", "children_count", "document_number", "name"]


def test_universes_computed_per_distinct_value_equal_the_direct_filter(
    country: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from haqq.sweep import frames

    programs = swept(CATALOGUE)
    registry = load(country, DAYS[0], programs, CATALOGUE.schema)
    direct = {p.id: frames.universe(registry, p)[frames.S_ROW].to_list() for p in programs}
    monkeypatch.setattr(frames, "DISTINCT_FROM", 0)
    distinct = {p.id: frames.universe(registry, p)[frames.S_ROW].sort().to_list() for p in programs}
    assert {k: sorted(v) for k, v in direct.items()} == distinct
    assert all(direct.values())


def test_rows_of_finds_each_fin_in_its_own_order(country: Path) -> None:
    programs = swept(CATALOGUE)
    registry = load(country, DAYS[0], programs, CATALOGUE.schema)
    fins = registry.persons["fin"].sample(500, seed=1).to_list()
    rows = registry.rows_of_fins([*fins, "ZZZZZZZ", None])  # type: ignore[list-item]
    assert registry.persons["fin"].gather(rows).to_list() == [*fins, None, None]
