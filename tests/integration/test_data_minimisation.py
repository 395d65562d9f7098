"""Data minimisation: a case's program reads only what it declares, and the pipeline asks the
institutions for nothing more. (A program whose rules read a service its file does not declare
does not load: see tests/unit/test_catalogue.py.)"""

from __future__ import annotations

import shutil
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from haqq.adapters.store import db
from haqq.adapters.store.schema import cases, data_access_log
from haqq.bootstrap import Settings, build
from haqq.ports import Service
from haqq.replay import replay
from tests.helpers import generated_country


@pytest.fixture(scope="module")
def country_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, population=3000, seed=9)


class Recording:
    """The institution port, recording every request's service and persons."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls: list[tuple[Service, frozenset[str], str | None]] = []

    def query(self, service, fins, *, as_of, purpose, issue=None, user=None):  # type: ignore[no-untyped-def]
        self.calls.append((Service(service), frozenset(fins), issue))
        return self.inner.query(service, fins, as_of=as_of, purpose=purpose, issue=issue, user=user)  # type: ignore[attr-defined]


def test_each_case_reads_only_what_its_program_declares(country_file: Path, tmp_path: Path) -> None:
    country = tmp_path / "country.db"
    shutil.copyfile(country_file, country)
    app = build(Settings(database_url=f"sqlite:///{tmp_path / 'h.db'}", country=country, batch_size=100))
    recording = Recording(app.institutions)
    app.institutions = recording  # type: ignore[assignment]
    db.upgrade(app.engine)
    replay(app, year=2025, tick=timedelta(days=7))
    with app.engine.connect() as conn:
        program_of = dict(conn.execute(select(cases.c.id, cases.c.program_id)).all())
        read = conn.execute(
            select(data_access_log.c.case_id, data_access_log.c.service, data_access_log.c.fin)
            .where(data_access_log.c.case_id.is_not(None))
        ).all()
    assert read
    by_case: dict[str, set[str]] = defaultdict(set)
    for case_id, service, _fin in read:
        declared = app.catalogue[program_of[case_id]].asked
        assert Service(service) in declared, f"{case_id} ({program_of[case_id]}) read {service}"
        by_case[case_id].add(service)
    # What the gather step asked for a batch is exactly what the batch's programs declare.
    gathered = [(s, fins, issue) for s, fins, issue in recording.calls if issue and issue.startswith("case-")]
    assert gathered
    served: dict[str, set[Service]] = defaultdict(set)
    for service, _fins, issue in gathered:
        served[issue or ""].add(service)
    for issue, services in served.items():
        if issue.startswith("case-batch-"):
            continue
        case_id = issue.removeprefix("case-")
        assert services <= app.catalogue[program_of[case_id]].asked, (issue, services)
    # A program that declares only the civil registry's record never has incomes read for it.
    narrow = [p for p in app.catalogue.programs.values() if Service.TAX_INCOME not in p.asked]
    assert narrow
    narrow_ids = {p.id for p in narrow}
    assert not any(
        s == str(Service.TAX_INCOME) and program_of[c] in narrow_ids for c, s, _ in read
    )
