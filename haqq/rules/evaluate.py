"""Decide one case with its program's rules, and say why; find who receives the money.

Pure and total: facts come in as values (what each institution answered), the date as a value.
The rules run on the per-person interpreter of :mod:`haqq.rules.lang`; the decision keeps its
trace: the deciding check or branch, every fact read with the service it came from, and every
parameter used with its effective date and legal reference.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from haqq.rules.catalogue import Beneficiary, Mode, Program
from haqq.rules.lang import Case, Evaluation, Person, Schema
from haqq.rules.lang import Outcome as RuleOutcome

#: What the institutions answered about one person: ``{service: record or None}``.
Facts = Mapping[str, Mapping[str, Any] | None]


class Outcome(StrEnum):
    GRANTED = "granted"
    DENIED = "denied"
    NEEDS_REVIEW = "needs_review"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    text: str
    reference: str
    #: The reason in each language (``en``, ``az``, ``ru``) where the catalogue gives them.
    texts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ParameterUse:
    name: str
    value: int | date
    effective_from: date
    reference: str


@dataclass(frozen=True, slots=True)
class FactUse:
    name: str
    value: Any
    source: str


@dataclass(frozen=True, slots=True)
class Decision:
    """A decision with its reasons, the row that decided and the values it used."""

    program_id: str
    program_version: int
    outcome: Outcome
    amount: int = 0
    branch: str | None = None
    reasons: tuple[Reason, ...] = ()
    parameters: tuple[ParameterUse, ...] = ()
    facts: tuple[FactUse, ...] = ()
    checks_passed: tuple[str, ...] = ()
    day: date | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "program": self.program_id,
            "program_version": self.program_version,
            "outcome": self.outcome.value,
            "amount": self.amount,
            "branch": self.branch,
            "date": self.day.isoformat() if self.day else None,
            "checks_passed": list(self.checks_passed),
            "reasons": [
                {"code": r.code, "text": r.text, "reference": r.reference, "texts": dict(r.texts)}
                for r in self.reasons
            ],
            "parameters": [
                {
                    "name": p.name,
                    "value": _json(p.value),
                    "effective_from": p.effective_from.isoformat(),
                    "reference": p.reference,
                }
                for p in self.parameters
            ],
            "facts": [
                {"name": f.name, "value": _json(f.value), "source": f.source} for f in self.facts
            ],
        }


def _json(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Relations:
    """The family of a role as the civil registry gave it: each relation's FIN and answers."""

    mother: tuple[str, Facts] | None = None
    father: tuple[str, Facts] | None = None
    spouse: tuple[str, Facts] | None = None
    children: Sequence[tuple[str, Facts]] = ()


def person(
    schema: Schema,
    fin: str,
    answers: Facts,
    relations: Relations | None = None,
    only: Collection[str] | None = None,
) -> Person:
    """A person's typed facts (and relations) from the institutions' answers; ``only`` the
    facts named, when given (a program's :attr:`~haqq.rules.catalogue.Program.fact_names`)."""
    r = relations or Relations()
    return schema.person(
        fin, answers, mother=r.mother, father=r.father, spouse=r.spouse, children=r.children,
        only=only,
    )


def decide(
    program: Program,
    *,
    subject: Person,
    beneficiary: Person,
    already_paid: bool,
    day: date,
) -> Decision:
    """Run the program's checks in order (the first that fails decides), then its amount table."""
    evaluation = program.interpreter.evaluate(Case(subject, beneficiary, already_paid), day)
    return from_evaluation(program, evaluation)


#: ``{subject.birth_date}`` in a reason's text: the value the check read.
PLACEHOLDER = re.compile(r"\{([a-z_]+(?:\.[a-z_]+)+)\}")


def fill(text: str, values: Mapping[str, Any]) -> str:
    """A reason's text with each ``{role.fact}`` replaced by the value the decision read."""

    def value(match: re.Match[str]) -> str:
        found = values.get(match.group(1))
        if found is None:
            return match.group(0)
        return str(_json(found))

    return PLACEHOLDER.sub(value, text)


def from_evaluation(program: Program, evaluation: Evaluation) -> Decision:
    result, trace = evaluation
    outcome = Outcome(result.outcome.value)
    amount = result.amount
    text = "all conditions are met"
    texts: Mapping[str, str] = {}
    check = next((c for c in program.table.checks if c.id == result.branch), None)
    if check is not None:
        values = {f.name: f.value for f in trace.facts}
        texts = {lang: fill(t, values) for lang, t in check.reason.model_dump().items()}
        text = texts["en"]
    elif trace.error is not None:
        text = f"no amount could be computed: {trace.error}"
    elif result.outcome is RuleOutcome.GRANTED and program.mode is Mode.STOP:
        outcome, amount, text = Outcome.STOP, 0, "entitlements end"
    return Decision(
        program.id,
        program.version,
        outcome,
        amount=amount,
        branch=result.branch,
        reasons=(Reason(result.branch, text, trace.reference, texts),),
        parameters=tuple(ParameterUse(*p) for p in trace.parameters),
        facts=tuple(FactUse(*f) for f in trace.facts),
        checks_passed=trace.checks_passed,
        day=trace.today,
    )


__all__ = [
    "Decision",
    "FactUse",
    "Outcome",
    "ParameterUse",
    "Reason",
    "Relations",
    "decide",
    "from_evaluation",
    "person",
    "Candidate",
    "Pick",
    "resolve_beneficiary",
]


# --- beneficiaries ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the trigger step knows of a possible beneficiary."""

    fin: str
    alive: bool
    resident: bool
    birth_date: date | None


def _age(born: date | None, day: date) -> int:
    if born is None:
        return -1
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


@dataclass(frozen=True, slots=True)
class Pick:
    """One case a life event starts: whose right it is and who receives the money.

    ``beneficiary`` is None when nobody qualifies; ``reason`` then says why (a person decides).
    """

    subject: str
    beneficiary: str | None
    reason: str = ""


def resolve_beneficiary(
    relation: Beneficiary,
    *,
    subject: str,
    subject_birth: date | None,
    mother: Candidate | None,
    father: Candidate | None,
    spouse: Candidate | None,
    children: Sequence[Candidate],
    day: date,
    child_parents: Mapping[str, tuple[str | None, str | None]] | None = None,
    people: Mapping[str, Candidate] | None = None,
) -> list[Pick]:
    """The cases an event about ``subject`` starts under ``relation`` (possibly none).

    ``child_parents`` (a child's mother and father FINs) and ``people`` (candidates by FIN) are
    needed only for relations through a child's other parent.
    """
    nobody = [Pick(subject, None, f"no beneficiary found ({relation.value})")]
    if relation is Beneficiary.SELF:
        return [Pick(subject, subject)]
    if relation is Beneficiary.MOTHER:
        return [Pick(subject, mother.fin)] if mother is not None else nobody
    if relation is Beneficiary.MOTHER_ELSE_FATHER:
        if mother is not None and mother.alive and mother.resident:
            return [Pick(subject, mother.fin)]
        if father is not None and father.alive:
            return [Pick(subject, father.fin)]
        # A living mother abroad is still the beneficiary (the checks deny with the reason);
        # with neither parent alive, a person must decide.
        return [Pick(subject, mother.fin)] if mother is not None and mother.alive else nobody
    if relation is Beneficiary.SELF_OR_GUARDIAN:
        if _age(subject_birth, day) >= 18:
            return [Pick(subject, subject)]
        for parent in (mother, father):
            if parent is not None and parent.alive:
                return [Pick(subject, parent.fin)]
        return nobody
    if relation is Beneficiary.MINOR_CHILDREN_VIA_SURVIVING_PARENT:
        picks = []
        for child in sorted(children, key=lambda c: c.fin):
            if not child.alive or not 0 <= _age(child.birth_date, day) < 18:
                continue
            parents = (child_parents or {}).get(child.fin, (None, None))
            other = next((p for p in parents if p and p != subject), None)
            found = (people or {}).get(other) if other else None
            if found is not None and found.alive:
                picks.append(Pick(child.fin, found.fin))
            else:
                picks.append(Pick(child.fin, None, "no surviving parent on record: a guardian must be found"))
        return picks
    # SPOUSE_ELSE_ADULT_CHILD
    if spouse is not None and spouse.alive:
        return [Pick(subject, spouse.fin)]
    adults = [c for c in children if c.alive and _age(c.birth_date, day) >= 18]
    adults.sort(key=lambda c: (c.birth_date or date.max, c.fin))
    return [Pick(subject, adults[0].fin)] if adults else nobody
