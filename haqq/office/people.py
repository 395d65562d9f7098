"""People in the one-stop shop: search, a person's whole picture, a citizen's benefits, declining
or stopping a benefit, and who looked at a person's data.

Each use case takes a connection, the principal and values (no HTTP), checks the principal's
rights (:func:`haqq.domain.access.require`) and logs every look an official takes at a person
(:func:`haqq.office.access.log_access`). The results are typed models, shown by the console and
answered by the API as they are.

Everything about one person is read through the per-person indexes (``cases.beneficiary_fin``
and ``subject_fin``, ``events.fin``, ``entitlements.fin`` and ``subject_fin``, ``payments.fin``,
``notifications.fin``, ``citizen_choices.fin``, ``appeals.fin``, ``data_access_log.fin``) and
primary keys: never a scan, whatever the size of the store.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, or_, select

from haqq.adapters.store import messagelog
from haqq.adapters.store.schema import (
    accounts,
    appeals,
    case_transitions,
    cases,
    citizen_choices,
    data_access_log,
    decisions,
    entitlements,
    events,
    notifications,
    payments,
    recovery_claims,
)
from haqq.domain.access import Action, Principal, require
from haqq.domain.errors import CatalogueError, HaqqError
from haqq.domain.fin import is_fin
from haqq.domain.money import format_azn
from haqq.domain.quiet import QuietHours
from haqq.office.access import log_access, requester
from haqq.pipeline import choices, intake
from haqq.ports import Exchange, PersonDirectory
from haqq.rules import plain
from haqq.rules.catalogue import Catalogue, Program, ScheduleKind
from haqq.rules.messages import MessageCatalogue

#: Payments still to come (not yet at the bank).
UPCOMING = ("scheduled", "queued", "held")
#: Case states a citizen may appeal (with no appeal open on the case).
APPEALABLE = ("denied", "lapsed")
#: The most entries of the data-access log a person's picture shows (newest first).
ACCESS_SHOWN = 200
#: The most life events one ``POST /events`` takes.
INTAKE_MAX = 5000

Lang = Literal["az", "ru", "en"]


class UnknownPerson(HaqqError):
    """Neither the registries' directory nor haqq's own records know this FIN."""

    def __init__(self, fin: str) -> None:
        super().__init__(f"no person with FIN {fin} in the registries or in haqq's records")
        self.fin = fin


class UnknownCase(HaqqError):
    def __init__(self, case_id: str) -> None:
        super().__init__(f"no case {case_id}")
        self.case_id = case_id


class NoDecision(HaqqError):
    def __init__(self, case_id: str) -> None:
        super().__init__(f"case {case_id} has no decision yet")
        self.case_id = case_id


class CannotDecline(HaqqError):
    """A decline or stop that cannot be applied now (nothing was changed); says why."""


class TooManyEvents(HaqqError):
    """More life events in one request than :data:`INTAKE_MAX`."""


# --- the models ------------------------------------------------------------------------------


class PersonHit(BaseModel):
    fin: str
    name: str | None = Field(description="as the civil registry holds it; null when searched in haqq's records only")
    birth_date: str | None
    phone: str | None
    cases: int = Field(description="how many cases haqq holds where the person is beneficiary or subject")


class SearchResult(BaseModel):
    hits: list[PersonHit]
    more: bool


class Identity(BaseModel):
    fin: str
    name: str
    birth_date: str
    sex: str
    address: str | None
    phone: str | None
    language: str | None
    death_date: str | None
    source: str = Field(description="the registry the card came from")
    read_at: datetime = Field(description="when it was read")


class Relative(BaseModel):
    relation: str = Field(description="mother | father | spouse | children")
    fin: str
    name: str | None
    birth_date: str | None
    death_date: str | None


class RegistryFact(BaseModel):
    """One fact a decision rested on, with the message that brought it."""

    case_id: str
    program_id: str
    name: str
    value: Any
    service: str = Field(description="the port's service (civil_registry/person), or default")
    institution: str | None
    message_id: str | None
    answered_at: datetime | None


class EventView(BaseModel):
    id: int
    source: str
    source_event_id: str
    type: str
    fin: str
    occurred_at: datetime
    received_at: datetime
    status: str
    payload: dict[str, Any]


class TransitionView(BaseModel):
    source: str | None
    target: str
    at: datetime
    cause: str


class DecisionView(BaseModel):
    case_id: str
    outcome: str
    amount: int = Field(description="qəpik")
    amount_text: str
    branch: str | None
    legal_basis: dict[str, Any]
    catalogue_version: str
    decided_at: datetime
    explanation: list[str] = Field(description="the decision in plain language, line by line")
    trace: dict[str, Any] = Field(description="reasons, parameters, facts and the messages that brought them")


class CaseSummary(BaseModel):
    id: str
    program_id: str
    program_version: int
    state: str
    subject_fin: str
    beneficiary_fin: str
    created_at: datetime
    updated_at: datetime
    review_reason: str | None


class CaseView(CaseSummary):
    program_name: str
    catalogue_version: str
    pipeline_version: str
    event_id: int
    decision: DecisionView | None
    transitions: list[TransitionView]


class EntitlementView(BaseModel):
    id: str = Field(description="the case's id")
    program_id: str
    fin: str
    subject_fin: str
    schedule: str
    amount: int = Field(description="qəpik")
    start_date: date
    end_date: date | None
    status: str
    ended_reason: str | None
    created_at: datetime


class PaymentView(BaseModel):
    id: int
    case_id: str
    entitlement_id: str
    program_id: str
    period: str
    period_start: date
    amount: int = Field(description="qəpik")
    due_at: datetime
    status: str
    iban: str | None
    sent_at: datetime | None
    settled_at: datetime | None
    reason: str | None


class RecoveryView(BaseModel):
    id: int
    payment_id: int
    amount: int
    reason: str
    status: str
    created_at: datetime


class AccountView(BaseModel):
    bank: str
    iban: str | None
    status: str
    card_status: str


class SmsView(BaseModel):
    id: int
    case_id: str
    kind: str
    phone: str | None
    language: str
    text: str
    status: str
    due_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None


class ChoiceView(BaseModel):
    case_id: str
    choice: str
    channel: str
    at: datetime
    source: str | None
    note: str | None


class AppealView(BaseModel):
    id: int
    case_id: str
    reason: str
    opened_by: str
    channel: str
    opened_at: datetime
    status: str
    decided_by: str | None
    decision_reason: str | None
    decided_at: datetime | None


class AccessEntry(BaseModel):
    """One look at a person's data: who, when, why, and through which message."""

    id: int
    at: datetime
    institution: str
    service: str
    requester: str
    purpose: str
    legal_basis: str
    case_id: str | None
    message_id: str


class AccessLog(BaseModel):
    entries: list[AccessEntry]
    more: bool


class Picture(BaseModel):
    """Everything about one person, for a caseworker's page or the API."""

    fin: str
    identity: Identity | None
    identity_note: str | None = Field(description="why there is no identity card, when there is none")
    family: list[Relative]
    registry_data: list[RegistryFact]
    events: list[EventView]
    cases: list[CaseView]
    entitlements: list[EntitlementView]
    account: AccountView | None
    payments: list[PaymentView]
    recoveries: list[RecoveryView]
    sms: list[SmsView]
    choices: list[ChoiceView]
    appeals: list[AppealView]
    access_log: list[AccessEntry] = Field(description=f"newest first, at most {ACCESS_SHOWN}")
    access_log_more: bool


class Benefit(BaseModel):
    """One case where the citizen is the beneficiary, as they see it."""

    case_id: str
    program_id: str
    program_name: str
    state: str
    status: str = Field(description="the entitlement's status when there is one, else the case's state")
    entitlement_status: str | None
    schedule: str | None
    amount: int | None = Field(description="qəpik")
    amount_text: str | None
    outcome: str | None
    explanation: list[str]
    next_payments: list[PaymentView]
    can_stop: bool = Field(description="whether it can be declined or stopped now")
    stop_kind: Literal["stop", "decline"] | None
    can_appeal: bool
    appeal_status: str | None
    created_at: datetime


class DeclineResult(BaseModel):
    case_id: str
    choice: str
    outcome: str
    cancelled_payments: int
    confirmation_sms: str | None


class Refusal(BaseModel):
    index: int = Field(description="the event's place in the request, from 0")
    event_id: str | None
    error: str


class IntakeResult(BaseModel):
    accepted: int
    duplicates: int
    refused: list[Refusal]


# --- helpers ---------------------------------------------------------------------------------


def _rows(conn: Connection, stmt: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(stmt)]


def _program(catalogue: Catalogue | None, program_id: str) -> Program | None:
    if catalogue is None:
        return None
    try:
        return catalogue[program_id]
    except CatalogueError:
        return None


def program_name(catalogue: Catalogue | None, program_id: str, lang: str) -> str:
    prog = _program(catalogue, program_id)
    return str(getattr(prog.names, lang)) if prog is not None else program_id


def _parse_moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def explain_decision(
    row: Mapping[str, Any], *, catalogue: Catalogue | None, lang: str, fin: str,
) -> list[str]:
    """The plain-language lines of a stored decision (a short line when its trace is not one
    the explainer knows, e.g. a decision made by hand)."""
    trace = row.get("trace") or {}
    prog = _program(catalogue, str(row["program_id"]))
    name = str(getattr(prog.names, lang)) if prog is not None else str(row["program_id"])
    try:
        return plain.explain(
            {**trace, "outcome": row["outcome"], "amount": row["amount"]},
            program_name=name,
            fin=fin,
            lang=lang,
            monthly=prog is not None and prog.schedule.kind is ScheduleKind.MONTHLY,
            legal_basis=row.get("legal_basis") or None,
            units={n: p.unit for n, p in prog.parameter_history.items()} if prog is not None else None,
            catalogue_version=row.get("catalogue_version"),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return [f"{name}: {row['outcome']}, {format_azn(int(row['amount'] or 0))}"]


def _decision(row: Mapping[str, Any], *, catalogue: Catalogue | None, lang: str) -> DecisionView | None:
    if row.get("outcome") is None:
        return None
    return DecisionView(
        case_id=row["id"],
        outcome=row["outcome"],
        amount=int(row["amount"] or 0),
        amount_text=format_azn(int(row["amount"] or 0)),
        branch=row.get("branch"),
        legal_basis=dict(row.get("legal_basis") or {}),
        catalogue_version=row["decision_catalogue_version"],
        decided_at=row["decided_at"],
        explanation=explain_decision(
            {**row, "catalogue_version": row["decision_catalogue_version"]},
            catalogue=catalogue, lang=lang, fin=row["beneficiary_fin"],
        ),
        trace=dict(row.get("trace") or {}),
    )


def _case_query() -> Any:
    return select(
        cases,
        decisions.c.outcome,
        decisions.c.amount,
        decisions.c.branch,
        decisions.c.legal_basis,
        decisions.c.catalogue_version.label("decision_catalogue_version"),
        decisions.c.trace,
        decisions.c.decided_at,
    ).outerjoin(decisions, decisions.c.case_id == cases.c.id)


def _case_views(
    conn: Connection, rows: list[dict[str, Any]], *, catalogue: Catalogue | None, lang: str,
) -> list[CaseView]:
    ids = [r["id"] for r in rows]
    steps: dict[str, list[TransitionView]] = {}
    if ids:
        for t in conn.execute(
            select(case_transitions).where(case_transitions.c.case_id.in_(ids)).order_by(case_transitions.c.id)
        ):
            steps.setdefault(t.case_id, []).append(
                TransitionView(source=t.source, target=t.target, at=t.at, cause=t.cause)
            )
    return [
        CaseView(
            **{k: r[k] for k in CaseSummary.model_fields},
            program_name=program_name(catalogue, r["program_id"], lang),
            catalogue_version=r["catalogue_version"],
            pipeline_version=r["pipeline_version"],
            event_id=r["event_id"],
            decision=_decision(r, catalogue=catalogue, lang=lang),
            transitions=steps.get(r["id"], []),
        )
        for r in rows
    ]


def _registry_facts(fin: str, case_rows: Iterable[Mapping[str, Any]]) -> list[RegistryFact]:
    """The registry facts about ``fin`` that stored decisions used, with their messages."""
    found = []
    for c in case_rows:
        trace = c.get("trace") or {}
        sources: Mapping[str, Mapping[str, Any]] = trace.get("sources") or {}
        mine = {p for p, who in (("beneficiary.", c["beneficiary_fin"]), ("subject.", c["subject_fin"])) if who == fin}
        for fact in trace.get("facts") or []:
            name, where = str(fact.get("name", "")), str(fact.get("source", ""))
            if where == "caller" or not any(name.startswith(p) for p in mine):
                continue
            src = sources.get(where) or {}
            found.append(RegistryFact(
                case_id=c["id"], program_id=c["program_id"], name=name, value=fact.get("value"),
                service=where, institution=src.get("institution") or (None if where == "default" else where.split("/")[0]),
                message_id=src.get("message_id"), answered_at=_parse_moment(src.get("answered_at")),
            ))
    return found


def _access_entries(conn: Connection, fin: str, *, limit: int, offset: int = 0) -> list[AccessEntry]:
    dal = data_access_log
    stmt = (
        select(dal.c.id, dal.c.at, dal.c.institution, dal.c.service, dal.c.requester, dal.c.purpose,
               dal.c.legal_basis, dal.c.case_id, dal.c.message_id)
        .where(dal.c.fin == fin)
        .order_by(dal.c.at.desc(), dal.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [AccessEntry.model_validate(r) for r in _rows(conn, stmt)]


def _cases_of(conn: Connection, fins: Sequence[str]) -> dict[str, int]:
    """How many cases name each FIN as beneficiary or subject."""
    if not fins:
        return {}
    counts = dict.fromkeys(fins, 0)
    for r in conn.execute(
        select(cases.c.id, cases.c.beneficiary_fin, cases.c.subject_fin)
        .where(or_(cases.c.beneficiary_fin.in_(fins), cases.c.subject_fin.in_(fins)))
    ):
        for fin in {r.beneficiary_fin, r.subject_fin}:
            if fin in counts:
                counts[fin] += 1
    return counts


def _haqq_knows(conn: Connection, fin: str) -> bool:
    """Whether haqq holds anything about ``fin`` (each probe one indexed lookup)."""
    probes = (
        select(cases.c.id).where(cases.c.beneficiary_fin == fin),
        select(cases.c.id).where(cases.c.subject_fin == fin),
        select(events.c.id).where(events.c.fin == fin),
        select(entitlements.c.id).where(entitlements.c.fin == fin),
    )
    return any(conn.execute(p.limit(1)).first() is not None for p in probes)


def _log_people(
    conn: Connection, principal: Principal, fins: Iterable[str], *, what: str, purpose: str, at: datetime,
    case_id: str | None = None,
) -> None:
    log_access(conn, principal, fins, what=what, purpose=purpose, at=at, case_id=case_id)


# --- search ----------------------------------------------------------------------------------


def search(
    conn: Connection, directory: PersonDirectory | None, principal: Principal, query: str, limit: int, offset: int,
    *, at: datetime,
) -> SearchResult:
    """Persons by FIN, phone or the start of their name (through the registries' directory);
    without a directory, by FIN over haqq's own records. Logged in each found person's log."""
    require(principal, Action.SEARCH_PERSONS)
    text = " ".join(query.split())
    if not text or limit < 1 or offset < 0:
        return SearchResult(hits=[], more=False)
    hits: list[PersonHit] = []
    if directory is not None:
        cards = list(directory.search(text, limit=offset + limit + 1))
        page = cards[offset:offset + limit + 1]
        counts = _cases_of(conn, [c.fin for c in page])
        hits = [PersonHit(fin=c.fin, name=c.name, birth_date=c.birth_date, phone=c.phone, cases=counts.get(c.fin, 0))
                for c in page]
    fin = text.upper()
    if not hits and offset == 0 and is_fin(fin) and _haqq_knows(conn, fin):
        hits = [PersonHit(fin=fin, name=None, birth_date=None, phone=None, cases=_cases_of(conn, [fin])[fin])]
    shown = hits[:limit]
    _log_people(conn, principal, [h.fin for h in shown], what="search", purpose=f"search for '{text[:80]}'", at=at)
    return SearchResult(hits=shown, more=len(hits) > limit)


# --- a person's picture ----------------------------------------------------------------------


def view_person(
    engine: Engine, directory: PersonDirectory | None, principal: Principal, fin: str, at: datetime, lang: str,
    *, catalogue: Catalogue | None = None, what: str = "person page",
) -> Picture:
    """:func:`picture` with the look logged first in its own short write transaction, and the
    reading in a read-only one: on SQLite readers then never wait for one another behind the
    write lock (the page shows the look just logged)."""
    require(principal, Action.VIEW_PERSON, fin=fin)
    if principal.is_official:
        with engine.begin() as conn:
            _log_people(conn, principal, [fin], what=what, purpose="looked at the person's record", at=at)
    with engine.connect().execution_options(read_only=True) as conn, conn.begin():
        return picture(conn, directory, principal, fin, at, lang, catalogue=catalogue, what=what, log=False)


def picture(
    conn: Connection, directory: PersonDirectory | None, principal: Principal, fin: str, at: datetime, lang: str,
    *, catalogue: Catalogue | None = None, what: str = "person page", log: bool = True,
) -> Picture:
    """Everything the registries and haqq hold about ``fin``; the look is logged (officials)
    unless ``log`` is false (the caller logged it: :func:`view_person`)."""
    require(principal, Action.VIEW_PERSON, fin=fin)
    if lang not in plain.LANGUAGES:
        lang = "en"
    identity: Identity | None = None
    note: str | None = None
    card = None
    family: list[Relative] = []
    if directory is None:
        note = "no registry directory is connected: haqq's own records only"
    else:
        try:
            card = directory.card(fin)
            if card is None:
                note = "the registries' directory has no card for this FIN"
            else:
                identity = Identity(
                    fin=card.fin, name=card.name, birth_date=card.birth_date, sex=card.sex, address=card.address,
                    phone=card.phone, language=card.language, death_date=card.death_date, source=card.source,
                    read_at=card.read_at,
                )
                links = [(rel, f) for rel, fins in card.family.items() for f in fins]
                known = directory.cards([f for _, f in links]) if links else {}
                for rel, f in links:
                    kin = known.get(f)
                    family.append(Relative(
                        relation=rel, fin=f, name=kin.name if kin else None,
                        birth_date=kin.birth_date if kin else None, death_date=kin.death_date if kin else None,
                    ))
        except HaqqError as exc:
            note = f"the registries' directory did not answer: {exc}"

    case_rows = _rows(
        conn,
        _case_query().where(or_(cases.c.beneficiary_fin == fin, cases.c.subject_fin == fin))
        .order_by(cases.c.created_at.desc(), cases.c.id),
    )
    event_ids = sorted({int(c["event_id"]) for c in case_rows})
    event_rows = _rows(
        conn,
        select(events).where(or_(events.c.fin == fin, events.c.id.in_(event_ids)) if event_ids else events.c.fin == fin)
        .order_by(events.c.occurred_at, events.c.id),
    )
    ent_rows = _rows(
        conn,
        select(entitlements).where(or_(entitlements.c.fin == fin, entitlements.c.subject_fin == fin))
        .order_by(entitlements.c.created_at),
    )
    if card is None and not case_rows and not event_rows and not ent_rows:
        raise UnknownPerson(fin)
    pay_rows = _rows(conn, select(payments).where(payments.c.fin == fin).order_by(payments.c.period_start, payments.c.id))
    account = conn.execute(
        select(accounts.c.bank, accounts.c.iban, accounts.c.status, accounts.c.card_status).where(accounts.c.fin == fin)
    ).first()
    recoveries = _rows(conn, select(recovery_claims).where(recovery_claims.c.fin == fin).order_by(recovery_claims.c.id))
    sms = _rows(conn, select(notifications).where(notifications.c.fin == fin).order_by(notifications.c.due_at, notifications.c.id))
    chosen = _rows(conn, select(citizen_choices).where(citizen_choices.c.fin == fin).order_by(citizen_choices.c.at))
    appealed = _rows(conn, select(appeals).where(appeals.c.fin == fin).order_by(appeals.c.opened_at))
    if log:
        _log_people(conn, principal, [fin], what=what, purpose="looked at the person's record", at=at)
    access = _access_entries(conn, fin, limit=ACCESS_SHOWN + 1)
    return Picture(
        fin=fin,
        identity=identity,
        identity_note=note,
        family=family,
        registry_data=_registry_facts(fin, case_rows),
        events=[EventView.model_validate(r) for r in event_rows],
        cases=_case_views(conn, case_rows, catalogue=catalogue, lang=lang),
        entitlements=[EntitlementView.model_validate(r) for r in ent_rows],
        account=AccountView.model_validate(dict(account._mapping)) if account is not None else None,
        payments=[PaymentView.model_validate(r) for r in pay_rows],
        recoveries=[RecoveryView.model_validate(r) for r in recoveries],
        sms=[SmsView.model_validate(r) for r in sms],
        choices=[ChoiceView.model_validate(r) for r in chosen],
        appeals=[AppealView.model_validate(r) for r in appealed],
        access_log=access[:ACCESS_SHOWN],
        access_log_more=len(access) > ACCESS_SHOWN,
    )


# --- a citizen's benefits --------------------------------------------------------------------


def my_benefits(
    conn: Connection, principal: Principal, at: datetime, lang: str, *, catalogue: Catalogue | None = None,
    fin: str | None = None,
) -> list[Benefit]:
    """Each case where the person (the citizen signed in, or ``fin`` for an official) is the
    beneficiary: what was decided and why, the amount, the state, the payments to come, and
    whether it can be stopped or declined, or appealed, now."""
    who = fin or principal.fin
    if who is None:
        raise UnknownPerson("(none)")
    require(principal, Action.VIEW_PERSON, fin=who)
    if lang not in plain.LANGUAGES:
        lang = "en"
    rows = _rows(
        conn,
        _case_query().add_columns(
            entitlements.c.status.label("ent_status"), entitlements.c.schedule, entitlements.c.amount.label("ent_amount"),
        )
        .outerjoin(entitlements, entitlements.c.id == cases.c.id)
        .where(cases.c.beneficiary_fin == who)
        .order_by(cases.c.created_at.desc(), cases.c.id),
    )
    pays: dict[str, list[dict[str, Any]]] = {}
    for p in _rows(conn, select(payments).where(payments.c.fin == who).order_by(payments.c.due_at, payments.c.id)):
        pays.setdefault(p["entitlement_id"], []).append(p)
    open_appeals: dict[str, str] = {}
    for a in conn.execute(select(appeals.c.case_id, appeals.c.status).where(appeals.c.fin == who).order_by(appeals.c.id)):
        open_appeals[a.case_id] = a.status
    _log_people(conn, principal, [who], what="benefits", purpose="looked at the person's benefits", at=at)
    out = []
    for r in rows:
        mine = pays.get(r["id"], [])
        at_bank = sum(1 for p in mine if p["status"] not in (*choices.NOT_AT_BANK, "cancelled"))
        monthly = r["schedule"] == "monthly"
        status = r["ent_status"]
        can_stop = status in ("pending", "active") and (monthly or at_bank == 0)
        amount = r["ent_amount"] if r["ent_amount"] is not None else r["amount"]
        appeal = open_appeals.get(r["id"])
        out.append(Benefit(
            case_id=r["id"],
            program_id=r["program_id"],
            program_name=program_name(catalogue, r["program_id"], lang),
            state=r["state"],
            status=status or r["state"],
            entitlement_status=status,
            schedule=r["schedule"],
            amount=amount,
            amount_text=format_azn(int(amount)) if amount is not None else None,
            outcome=r["outcome"],
            explanation=explain_decision(
                {**r, "catalogue_version": r["decision_catalogue_version"]}, catalogue=catalogue, lang=lang, fin=who,
            ) if r["outcome"] is not None else [],
            next_payments=[PaymentView.model_validate(p) for p in mine if p["status"] in UPCOMING][:3],
            can_stop=can_stop,
            stop_kind=("stop" if monthly and at_bank else "decline") if can_stop else None,
            can_appeal=r["state"] in APPEALABLE and appeal != "open",
            appeal_status=appeal,
            created_at=r["created_at"],
        ))
    return out


# --- declining or stopping -------------------------------------------------------------------


def decline(
    conn: Connection, principal: Principal, case_id: str, at: datetime, quiet: QuietHours | None,
    messages: MessageCatalogue | None, *, channel: Literal["console", "api"] = "api", note: str | None = None,
) -> DeclineResult:
    """Decline a benefit (or stop a recurring one) in one step: the citizen on their own case,
    a caseworker or supervisor on the person's behalf (logged in the person's log)."""
    row = conn.execute(select(cases.c.beneficiary_fin).where(cases.c.id == case_id)).first()
    if row is None:
        raise UnknownCase(case_id)
    fin = str(row.beneficiary_fin)
    require(principal, Action.DECLINE_BENEFIT, fin=fin)
    if principal.is_official:
        stored = "office"
    else:
        stored = channel if channel in choices.CHANNELS else "api"
    source = f"{channel}:{requester(principal)}" + (f": {note}" if note else "")
    try:
        done = choices.stop(conn, case_id, at=at, now=at, channel=stored, source=source[:120], fin=fin,
                            quiet=quiet, messages=messages)
    except choices.ChoiceRefused as exc:
        raise CannotDecline(f"this benefit cannot be declined or stopped now: {exc}") from None
    _log_people(conn, principal, [fin], what=f"{done.choice} on behalf", at=at, case_id=case_id,
                purpose=f"{done.choice} of case {case_id} on the person's behalf")
    return DeclineResult(case_id=case_id, choice=done.choice, outcome=done.outcome,
                         cancelled_payments=done.cancelled, confirmation_sms=done.confirmation)


# --- who looked ------------------------------------------------------------------------------


def access_log(
    conn: Connection, principal: Principal, fin: str, limit: int, offset: int, *, at: datetime | None = None,
) -> AccessLog:
    """Who read ``fin``'s data, when, why, through which message: newest first, one page.
    An official's look at the log is itself logged (when ``at`` is given)."""
    require(principal, Action.VIEW_ACCESS_LOG, fin=fin)
    if limit < 1 or offset < 0:
        return AccessLog(entries=[], more=False)
    if at is not None:
        _log_people(conn, principal, [fin], what="access log", purpose="looked at who read the person's data", at=at)
    rows = _access_entries(conn, fin, limit=limit + 1, offset=offset)
    return AccessLog(entries=rows[:limit], more=len(rows) > limit)


# --- cases, entitlements, payments, SMS, events (the API's lists) -----------------------------


def _case_fins(conn: Connection, case_id: str) -> tuple[str, str]:
    row = conn.execute(select(cases.c.beneficiary_fin, cases.c.subject_fin).where(cases.c.id == case_id)).first()
    if row is None:
        raise UnknownCase(case_id)
    return str(row.beneficiary_fin), str(row.subject_fin)


def _require_case(principal: Principal, beneficiary: str, subject: str) -> None:
    require(principal, Action.VIEW_CASES, fin=subject if principal.fin == subject else beneficiary)


def list_cases(
    conn: Connection, principal: Principal, *, fin: str | None, state: str | None, program: str | None,
    limit: int, offset: int, at: datetime,
) -> tuple[list[CaseSummary], bool]:
    """Cases, newest first (by a person, a state, a program); a citizen only their own."""
    require(principal, Action.VIEW_CASES, fin=fin)
    stmt = select(*(cases.c[k] for k in CaseSummary.model_fields))
    if fin is not None:
        stmt = stmt.where(or_(cases.c.beneficiary_fin == fin, cases.c.subject_fin == fin)).order_by(
            cases.c.created_at.desc(), cases.c.id.desc())
    else:
        stmt = stmt.order_by(cases.c.id.desc())
    if state is not None:
        stmt = stmt.where(cases.c.state == state)
    if program is not None:
        stmt = stmt.where(cases.c.program_id == program)
    rows = [CaseSummary.model_validate(r) for r in _rows(conn, stmt.limit(limit + 1).offset(offset))]
    shown = rows[:limit]
    _log_people(conn, principal, [f for c in shown for f in (c.beneficiary_fin, c.subject_fin)],
                what="cases api", purpose="listed cases", at=at)
    return shown, len(rows) > limit


def case_detail(
    conn: Connection, principal: Principal, case_id: str, *, at: datetime, lang: str, catalogue: Catalogue | None,
) -> CaseView:
    beneficiary, subject = _case_fins(conn, case_id)
    _require_case(principal, beneficiary, subject)
    rows = _rows(conn, _case_query().where(cases.c.id == case_id))
    _log_people(conn, principal, [beneficiary, subject], what="case api", purpose=f"looked at case {case_id}",
                at=at, case_id=case_id)
    return _case_views(conn, rows, catalogue=catalogue, lang=lang if lang in plain.LANGUAGES else "en")[0]


def decision_of(
    conn: Connection, principal: Principal, case_id: str, *, at: datetime, lang: str, catalogue: Catalogue | None,
) -> DecisionView:
    beneficiary, subject = _case_fins(conn, case_id)
    _require_case(principal, beneficiary, subject)
    rows = _rows(conn, _case_query().where(cases.c.id == case_id))
    found = _decision(rows[0], catalogue=catalogue, lang=lang if lang in plain.LANGUAGES else "en")
    if found is None:
        raise NoDecision(case_id)
    _log_people(conn, principal, [beneficiary, subject], what="decision api",
                purpose=f"looked at the decision of case {case_id}", at=at, case_id=case_id)
    return found


def entitlements_of(
    conn: Connection, principal: Principal, fin: str, *, limit: int, offset: int, at: datetime,
) -> tuple[list[EntitlementView], bool]:
    require(principal, Action.VIEW_PERSON, fin=fin)
    rows = _rows(conn, select(entitlements).where(or_(entitlements.c.fin == fin, entitlements.c.subject_fin == fin))
                 .order_by(entitlements.c.created_at.desc(), entitlements.c.id).limit(limit + 1).offset(offset))
    _log_people(conn, principal, [fin], what="entitlements api", purpose="listed the person's entitlements", at=at)
    return [EntitlementView.model_validate(r) for r in rows[:limit]], len(rows) > limit


def payments_of(
    conn: Connection, principal: Principal, fin: str, *, limit: int, offset: int, at: datetime,
) -> tuple[list[PaymentView], bool]:
    require(principal, Action.VIEW_PERSON, fin=fin)
    rows = _rows(conn, select(payments).where(payments.c.fin == fin)
                 .order_by(payments.c.due_at.desc(), payments.c.id.desc()).limit(limit + 1).offset(offset))
    _log_people(conn, principal, [fin], what="payments api", purpose="listed the person's payments", at=at)
    return [PaymentView.model_validate(r) for r in rows[:limit]], len(rows) > limit


def notifications_of(
    conn: Connection, principal: Principal, fin: str, *, limit: int, offset: int, at: datetime,
) -> tuple[list[SmsView], bool]:
    require(principal, Action.VIEW_PERSON, fin=fin)
    rows = _rows(conn, select(notifications).where(notifications.c.fin == fin)
                 .order_by(notifications.c.due_at.desc(), notifications.c.id.desc()).limit(limit + 1).offset(offset))
    _log_people(conn, principal, [fin], what="sms api", purpose="listed the SMS sent to the person", at=at)
    return [SmsView.model_validate(r) for r in rows[:limit]], len(rows) > limit


def events_of(
    conn: Connection, principal: Principal, fin: str, *, limit: int, offset: int, at: datetime,
) -> tuple[list[EventView], bool]:
    require(principal, Action.VIEW_PERSON, fin=fin)
    rows = _rows(conn, select(events).where(events.c.fin == fin)
                 .order_by(events.c.occurred_at.desc(), events.c.id.desc()).limit(limit + 1).offset(offset))
    _log_people(conn, principal, [fin], what="events api", purpose="listed the person's life events", at=at)
    return [EventView.model_validate(r) for r in rows[:limit]], len(rows) > limit


def take_in(conn: Connection, principal: Principal, raws: Sequence[object], *, at: datetime) -> IntakeResult:
    """Life events sent as JSON by a registry's system client (or a supervisor): each checked
    on its own; the good ones stored in the caller's transaction (idempotent by source and
    event id), the others refused with the reason; nothing of a refused event is written.
    The message is chained onto the message log."""
    require(principal, Action.INTAKE_EVENTS)
    if len(raws) > INTAKE_MAX:
        raise TooManyEvents(f"at most {INTAKE_MAX} events in one request, not {len(raws)}")
    report = intake.IntakeReport()
    parsed = intake.parse_all(((str(i), raw) for i, raw in enumerate(raws)), report)
    stored = intake.store(conn, parsed, received_at=at, wall=at)
    refused = []
    for where, reason in report.rejected:
        i = int(where)
        raw = raws[i]
        event_id = raw.get("event_id") if isinstance(raw, Mapping) else None
        refused.append(Refusal(index=i, event_id=event_id if isinstance(event_id, str) else None, error=reason))
    messagelog.append(conn, [Exchange(
        message_id=f"api-{uuid.uuid4().hex}", direction="in", client=requester(principal),
        service="haqq/api/v1/events", user=principal.subject, issue=None, at=at, status=200,
        persons=len(parsed), detail=f"accepted {stored.accepted}, duplicates {stored.duplicates}, refused {len(refused)}",
    )])
    return IntakeResult(accepted=stored.accepted, duplicates=stored.duplicates, refused=refused)

