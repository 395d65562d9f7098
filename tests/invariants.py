"""What must hold in the store after any replay, however it was interrupted."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import Engine, func, select

from haqq.adapters.store.schema import (
    case_transitions,
    cases,
    data_access_log,
    decisions,
    entitlements,
    events,
    notifications,
    payments,
)
from haqq.bootstrap import Haqq
from haqq.domain.cases import REOPENING, RESTING, TRANSITIONS, CaseState


def check_invariants(app: Haqq) -> Counter[str]:
    """Assert what must hold after any replay; returns cases per final state."""
    engine: Engine = app.engine
    with engine.connect() as conn:
        states = Counter(dict(conn.execute(select(cases.c.state, func.count()).group_by(cases.c.state)).all()))
        assert states, "the replay started no case"
        unfinished = {s: n for s, n in states.items() if CaseState(s) not in RESTING}
        assert not unfinished, f"cases left unfinished: {unfinished}"

        # Every recorded step is an allowed transition, and each case's trail is a chain.
        trail: dict[str, list[tuple[str | None, str]]] = {}
        for row in conn.execute(select(case_transitions.c.case_id, case_transitions.c.source, case_transitions.c.target).order_by(case_transitions.c.id)):
            trail.setdefault(row.case_id, []).append((row.source, row.target))
        final = dict(conn.execute(select(cases.c.id, cases.c.state)).all())
        assert set(trail) == set(final)
        for case_id, steps in trail.items():
            assert steps[0] == (None, "detected"), case_id
            for (_, before), (source, target) in zip(steps, steps[1:], strict=False):
                assert source == before, f"{case_id}: trail broken at {source}"
                # The pipeline's moves, or an appeal re-running a finished case.
                allowed = TRANSITIONS[CaseState(source)] | REOPENING.get(CaseState(source), frozenset())
                assert CaseState(target) in allowed, f"{case_id}: {source}->{target}"
            assert steps[-1][1] == final[case_id]

        # Every decision carries its reasons, legal basis and the messages its data came from.
        for row in conn.execute(select(decisions.c.outcome, decisions.c.legal_basis, decisions.c.trace)):
            assert row.legal_basis["act"] and row.legal_basis["article"]
            assert row.trace["reasons"], row.trace
            if row.outcome == "granted":
                assert row.trace["branch"] and row.trace["sources"]
                assert all(src["message_id"] for src in row.trace["sources"].values())

        # Nothing paid twice: one payment per entitlement and period, one entitlement per key.
        dup_pay = conn.execute(
            select(payments.c.entitlement_id, payments.c.period, func.count())
            .group_by(payments.c.entitlement_id, payments.c.period)
            .having(func.count() > 1)
        ).all()
        assert dup_pay == []
        dup_ent = conn.execute(
            select(entitlements.c.program_id, entitlements.c.once_key, func.count())
            .group_by(entitlements.c.program_id, entitlements.c.once_key)
            .having(func.count() > 1)
        ).all()
        assert dup_ent == []
        births = conn.execute(
            select(entitlements.c.subject_fin, func.count())
            .where(entitlements.c.program_id == "birth_benefit")
            .group_by(entitlements.c.subject_fin)
            .having(func.count() > 1)
        ).all()
        assert births == []

        # Nothing texted twice: one SMS per case and kind, and the gateway sent each key once.
        dup_sms = conn.execute(
            select(notifications.c.case_id, notifications.c.kind, func.count())
            .where(notifications.c.kind.in_(("granted", "consent_request", "reminder")))
            .group_by(notifications.c.case_id, notifications.c.kind)
            .having(func.count() > 1)
        ).all()
        assert dup_sms == []
        sent = conn.execute(select(func.count()).select_from(notifications).where(notifications.c.status.in_(("sent", "delivered", "failed")))).scalar_one()
        # Nothing left in the outbox but messages held for the morning (quiet hours) after the
        # replay's last moment.
        last = conn.execute(select(func.max(notifications.c.sent_at))).scalar_one()
        pending = conn.execute(select(func.count()).select_from(notifications).where(
            notifications.c.status == "pending", notifications.c.due_at <= last)).scalar_one()
        assert pending == 0
        assert app.sms.sent_count() == sent  # type: ignore[attr-defined]
        # The bank paid (or refused) each payment haqq handed it exactly once; a payment sent in
        # the last round may still wait for the bank's report when the replay ends, and one the
        # bank refused may have been cancelled by a stop since (it keeps the bank's reason code).
        at_bank = conn.execute(select(func.count()).select_from(payments).where(
            payments.c.status.in_(("accepted", "rejected", "sent"))
            | ((payments.c.status == "cancelled") & payments.c.reason_code.is_not(None))
        )).scalar_one()
        assert app.bank.transfer_count() == at_bank  # type: ignore[attr-defined]
        accepted = conn.execute(select(func.count()).select_from(payments).where(payments.c.status == "accepted")).scalar_one()
        # Every payment goes to an account, and the bank takes almost all of them.
        no_iban = conn.execute(select(func.count()).select_from(payments).where(payments.c.iban.is_(None))).scalar_one()
        assert no_iban == 0
        rejected = conn.execute(select(func.count()).select_from(payments).where(payments.c.status == "rejected")).scalar_one()
        assert rejected <= max(2, accepted // 50), f"{rejected} of {accepted} payments rejected"

        # Every data request is logged against the case it served.
        logged = conn.execute(select(func.count(func.distinct(data_access_log.c.case_id)))).scalar_one()
        gathered = conn.execute(select(func.count()).select_from(cases).where(cases.c.facts.is_not(None))).scalar_one()
        assert logged == gathered
        assert conn.execute(select(func.count()).select_from(events).where(events.c.status == "received")).scalar_one() == 0
    return states
