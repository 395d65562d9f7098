"""Reconciliation: what was sent, accepted, rejected, settled and is still open, per run and per
program, with the recovery claims; read in one grouped query, so it costs the same for a day's
run as for a year of payroll."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, case, func, select

from haqq.adapters.store.schema import payment_runs, payments, recovery_claims
from haqq.domain.payments import PaymentStatus

P = PaymentStatus


@dataclass
class Tally:
    """Counts and amounts (qəpik) by outcome. ``open``: money that may still go out (due, in a
    run not yet sent, at the bank without a report, rejected or held awaiting a person)."""

    payments: int = 0
    amount: int = 0
    sent: list[int] = field(default_factory=lambda: [0, 0])
    accepted: list[int] = field(default_factory=lambda: [0, 0])
    rejected: list[int] = field(default_factory=lambda: [0, 0])
    settled: list[int] = field(default_factory=lambda: [0, 0])
    open: list[int] = field(default_factory=lambda: [0, 0])
    held: list[int] = field(default_factory=lambda: [0, 0])
    cancelled: list[int] = field(default_factory=lambda: [0, 0])

    def add(self, status: str, settled: bool, n: int, amount: int) -> None:
        def put(bucket: list[int]) -> None:
            bucket[0] += n
            bucket[1] += amount

        self.payments += n
        self.amount += amount
        if status in (P.SENT, P.ACCEPTED, P.REJECTED):
            put(self.sent)
        if status == P.ACCEPTED:
            put(self.accepted)
            if settled:
                put(self.settled)
        elif status == P.REJECTED:
            put(self.rejected)
        elif status == P.CANCELLED:
            put(self.cancelled)
        if status == P.HELD:
            put(self.held)
        if status in (P.SCHEDULED, P.QUEUED, P.SENT, P.REJECTED, P.HELD):
            put(self.open)


@dataclass
class Reconciliation:
    runs: dict[str, Tally]
    run_status: dict[str, str]
    programs: dict[str, Tally]
    total: Tally
    #: status -> [claims, amount]
    recoveries: dict[str, list[int]]
    #: program -> [claims, amount] still open
    recoveries_open: dict[str, list[int]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": {k: {"status": self.run_status.get(k), **asdict(v)} for k, v in self.runs.items()},
            "programs": {k: asdict(v) for k, v in self.programs.items()},
            "total": asdict(self.total),
            "recoveries": self.recoveries,
            "recoveries_open_by_program": self.recoveries_open,
        }


def reconcile(conn: Connection, run_id: int | None = None) -> Reconciliation:
    settled = case((payments.c.settled_at.is_not(None), 1), else_=0)
    stmt = (
        select(payment_runs.c.label, payment_runs.c.status.label("run_status"), payments.c.program_id,
               payments.c.status, settled.label("settled"), func.count().label("n"),
               func.coalesce(func.sum(payments.c.amount), 0).label("amount"))
        .select_from(payments.outerjoin(payment_runs, payment_runs.c.id == payments.c.run_id))
        .group_by(payment_runs.c.label, payment_runs.c.status, payments.c.program_id,
                  payments.c.status, settled)
    )
    if run_id is not None:
        stmt = stmt.where(payments.c.run_id == run_id)
    runs: dict[str, Tally] = defaultdict(Tally)
    programs: dict[str, Tally] = defaultdict(Tally)
    total = Tally()
    run_status: dict[str, str] = {}
    for r in conn.execute(stmt):
        label = r.label or "(not in a run)"
        if r.label:
            run_status[label] = r.run_status
        for tally in (runs[label], programs[r.program_id], total):
            tally.add(r.status, bool(r.settled), int(r.n), int(r.amount))
    recoveries: dict[str, list[int]] = {}
    recoveries_open: dict[str, list[int]] = {}
    rstmt = (
        select(recovery_claims.c.status, payments.c.program_id, func.count(), func.sum(recovery_claims.c.amount))
        .join(payments, payments.c.id == recovery_claims.c.payment_id)
        .group_by(recovery_claims.c.status, payments.c.program_id)
    )
    if run_id is not None:
        rstmt = rstmt.where(payments.c.run_id == run_id)
    for status, program, n, amount in conn.execute(rstmt):
        bucket = recoveries.setdefault(status, [0, 0])
        bucket[0] += n
        bucket[1] += int(amount)
        if status == "open":
            recoveries_open[program] = [n, int(amount)]
    return Reconciliation(dict(runs), run_status, dict(programs), total, recoveries, recoveries_open)
