"""Decide one case: run the program's checks, then its amount table, and say why.

Pure and total: facts come in as values (what each institution answered), the date as a value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from haqq.domain.money import divide
from haqq.rules.catalogue import Beneficiary, Branch, Condition, Mode, ParamRef, Program

#: What one institution answered about one person: ``{service: {field: value}}``.
Facts = Mapping[str, Mapping[str, Any]]


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


@dataclass(frozen=True, slots=True)
class ParameterUse:
    name: str
    value: int
    effective_from: date
    reference: str


@dataclass(frozen=True, slots=True)
class Decision:
    """A decision with its reasons, the branch that decided and the values it used."""

    program_id: str
    program_version: int
    outcome: Outcome
    amount: int = 0
    branch: str | None = None
    reasons: tuple[Reason, ...] = ()
    parameters: tuple[ParameterUse, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "program": self.program_id,
            "program_version": self.program_version,
            "outcome": self.outcome.value,
            "amount": self.amount,
            "branch": self.branch,
            "reasons": [_slots(r) for r in self.reasons],
            "parameters": [
                {**_slots(p), "effective_from": p.effective_from.isoformat()}
                for p in self.parameters
            ],
            "facts": dict(self.facts),
        }


def _slots(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


# --- checks ----------------------------------------------------------------------------------

CheckResult = tuple[Outcome, str, str] | None


def _known(b: Facts, s: Facts) -> CheckResult:
    if not b.get("civil_registry/person"):
        return Outcome.NEEDS_REVIEW, "unknown_person", "the civil registry does not know the person"
    return None


def _alive(b: Facts, s: Facts) -> CheckResult:
    person = b.get("civil_registry/person") or {}
    if not person.get("alive", False):
        return Outcome.DENIED, "deceased", "the beneficiary is not alive"
    return None


def _deceased(b: Facts, s: Facts) -> CheckResult:
    person = s.get("civil_registry/person") or {}
    if person.get("alive", True) or not person.get("death_date"):
        return (
            Outcome.NEEDS_REVIEW,
            "death_not_confirmed",
            "the civil registry does not confirm the death",
        )
    return None


def _identity_valid(b: Facts, s: Facts) -> CheckResult:
    identity = b.get("interior/identity")
    if not identity:
        return Outcome.NEEDS_REVIEW, "no_identity", "the interior ministry has no identity record"
    if not identity.get("document_valid", False):
        return Outcome.NEEDS_REVIEW, "identity_document_invalid", "the identity document is not valid"
    return None


def _resident(b: Facts, s: Facts) -> CheckResult:
    identity = b.get("interior/identity") or {}
    if not identity.get("resident", False):
        return Outcome.DENIED, "not_resident", "the beneficiary is not resident"
    return None


def _consistent(b: Facts, s: Facts) -> CheckResult:
    civil = (b.get("civil_registry/person") or {}).get("birth_date")
    interior = (b.get("interior/identity") or {}).get("birth_date")
    if civil and interior and civil != interior:
        return (
            Outcome.NEEDS_REVIEW,
            "inconsistent_records",
            f"registries disagree on the birth date (civil registry {civil}, interior {interior})",
        )
    return None


def _disability_active(b: Facts, s: Facts) -> CheckResult:
    status = s.get("disability/status") or {}
    if not status.get("active", False):
        return Outcome.DENIED, "no_disability_status", "no active disability status"
    return None


CHECKS: Mapping[str, Callable[[Facts, Facts], CheckResult]] = {
    "known_person": _known,
    "alive": _alive,
    "deceased": _deceased,
    "identity_valid": _identity_valid,
    "resident": _resident,
    "consistent_records": _consistent,
    "disability_active": _disability_active,
}


# --- amount ----------------------------------------------------------------------------------


class _Trace:
    def __init__(self, program: Program, day: date, subject: Facts) -> None:
        self.program = program
        self.day = day
        self.subject = subject
        self.parameters: dict[str, ParameterUse] = {}
        self.facts: dict[str, Any] = {}

    def param(self, name: str) -> int | None:
        value = self.program.parameters[name].as_of(self.day)
        if value is None:
            return None
        self.parameters[name] = ParameterUse(name, value.value, value.from_, value.reference)
        return value.value

    def fact(self, path: str) -> Any:
        service, _, name = path.partition(".")
        value = (self.subject.get(service) or {}).get(name)
        self.facts[path] = value
        return value

    def number(self, ref: int | ParamRef) -> int | None:
        return ref if isinstance(ref, int) else self.param(ref.parameter)


def _matches(cond: Condition, t: _Trace) -> bool:
    value = t.fact(cond.fact)
    if cond.equals is not None:
        return bool(value == cond.equals)
    if cond.at_least is not None:
        bound = t.number(cond.at_least)
        return isinstance(value, int) and bound is not None and value >= bound
    return True


def _amount(branch: Branch, t: _Trace) -> int | None:
    v = branch.value
    if v.parameter is not None:
        base = t.param(v.parameter)
    else:
        raw = t.fact(v.fact or "")
        base = raw if isinstance(raw, int) else None
    if base is None:
        return None
    if v.divide_by is not None:
        by = t.param(v.divide_by.parameter)
        if not by:
            return None
        base = divide(base, 1, by, v.rounding)
    if v.at_least is not None:
        floor = t.param(v.at_least.parameter)
        if floor is not None:
            base = max(base, floor)
    return base


def decide(
    program: Program,
    *,
    beneficiary: Facts,
    subject: Facts,
    already_paid: bool,
    day: date,
) -> Decision:
    """Run the checks in order (the first failing one decides), then the amount table."""
    for name in program.checks:
        if name == "not_already_paid":
            if already_paid:
                return Decision(
                    program.id,
                    program.version,
                    Outcome.DENIED,
                    reasons=(Reason("already_paid", "already paid for this event", program.legal_reference()),),
                )
            continue
        failed = CHECKS[name](beneficiary, subject)
        if failed is not None:
            outcome, code, text = failed
            return Decision(
                program.id,
                program.version,
                outcome,
                reasons=(Reason(code, text, program.legal_reference()),),
            )
    if program.mode is Mode.STOP:
        return Decision(
            program.id,
            program.version,
            Outcome.STOP,
            reasons=(Reason("stop", "entitlements end", program.legal_reference()),),
        )
    trace = _Trace(program, day, subject)
    for branch in program.amount:
        if branch.when is None or _matches(branch.when, trace):
            amount = _amount(branch, trace)
            if amount is None or amount <= 0:
                return Decision(
                    program.id,
                    program.version,
                    Outcome.NEEDS_REVIEW,
                    branch=branch.id,
                    reasons=(
                        Reason("no_amount", f"no amount in force on {day.isoformat()}", branch.reference),
                    ),
                    parameters=tuple(trace.parameters.values()),
                    facts=trace.facts,
                )
            return Decision(
                program.id,
                program.version,
                Outcome.GRANTED,
                amount=amount,
                branch=branch.id,
                reasons=(Reason(branch.id, "all conditions are met", branch.reference),),
                parameters=tuple(trace.parameters.values()),
                facts=trace.facts,
            )
    # Unreachable for a validated program (its last branch has no condition); total anyway.
    return Decision(
        program.id,
        program.version,
        Outcome.NEEDS_REVIEW,
        reasons=(Reason("no_branch", "no branch of the amount table applies", program.legal_reference()),),
    )


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
) -> str | None:
    """Who receives the benefit; None when nobody qualifies (the case goes to a person)."""
    if relation is Beneficiary.SELF:
        return subject
    if relation is Beneficiary.MOTHER_ELSE_FATHER:
        if mother is not None and mother.alive and mother.resident:
            return mother.fin
        if father is not None and father.alive:
            return father.fin
        # A living mother abroad is still the beneficiary (the checks deny with the reason);
        # with neither parent alive, a person must decide.
        return mother.fin if mother is not None and mother.alive else None
    if relation is Beneficiary.SELF_OR_GUARDIAN:
        if _age(subject_birth, day) >= 18:
            return subject
        for parent in (mother, father):
            if parent is not None and parent.alive:
                return parent.fin
        return None
    # SPOUSE_ELSE_ADULT_CHILD
    if spouse is not None and spouse.alive:
        return spouse.fin
    adults = [c for c in children if c.alive and _age(c.birth_date, day) >= 18]
    adults.sort(key=lambda c: (c.birth_date or date.max, c.fin))
    return adults[0].fin if adults else None
