"""The simulated registries, bank and SMS gateway over a real (small) country file."""

from __future__ import annotations

import json
import pickle
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from haqq.adapters.institutions import (
    SimulatedBank,
    SimulatedInstitutions,
    SimulatedSmsGateway,
    iban_is_valid,
)
from haqq.country import generate_country
from haqq.country.schema import BAKU
from haqq.domain.errors import InstitutionError, NaiveDatetime
from haqq.domain.iban import make_iban
from haqq.ports import (
    AccountRequest,
    Bank,
    Institutions,
    OutgoingSms,
    Service,
    SmsGateway,
    Transfer,
)

FIELDS = {
    Service.CIVIL_PERSON: {"name", "sex", "birth_date", "alive", "death_date"},
    Service.CIVIL_FAMILY: {"mother_fin", "father_fin", "spouse_fin", "children"},
    Service.INTERIOR_IDENTITY: {
        "document_valid",
        "document_number",
        "birth_date",
        "address",
        "resident",
    },
    Service.TAX_INCOME: {"employed", "monthly_income"},
    Service.PENSION_RECORD: {"pension_capital", "insurance_months", "pensions"},
    Service.DISABILITY_STATUS: {"active", "group", "since", "until"},
    Service.MOBILE_NUMBER: {"phone", "language"},
}
NOON = datetime(2025, 7, 1, 12, tzinfo=BAKU)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("country") / "country.db"
    generate_country(path, population=5_000, seed=11)
    return path


@pytest.fixture
def country(pristine: Path, tmp_path: Path) -> Path:
    """A private copy per test: the bank and the gateway write into the file."""
    path = tmp_path / "country.db"
    shutil.copy(pristine, path)
    return path


def sql(path: Path, query: str, *args: object) -> list[Any]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(query, args).fetchall()


def one_event(path: Path, etype: str, extra: str = "") -> tuple[str, datetime, str]:
    fin, at, payload = sql(
        path,
        f"SELECT e.fin, e.occurred_at, e.payload FROM life_events e "
        f"JOIN persons p ON p.fin = e.fin WHERE e.type = ? {extra} ORDER BY e.id LIMIT 1",
        etype,
    )[0]
    return fin, datetime.fromisoformat(at), payload


def ask(inst: SimulatedInstitutions, service: Service, fin: str, at: datetime) -> Any:
    return inst.query(service, [fin], as_of=at, purpose="test").records.get(fin)


# ---- registries ---------------------------------------------------------------------------------


def test_the_adapters_satisfy_the_ports(country: Path) -> None:
    inst: Institutions = SimulatedInstitutions(country)
    bank: Bank = SimulatedBank(country)
    sms: SmsGateway = SimulatedSmsGateway(country)
    assert bank.name == "HAQB"
    assert inst and sms


def test_every_service_answers_exactly_its_documented_fields(country: Path) -> None:
    inst = SimulatedInstitutions(country)
    fins = [
        r[0]
        for r in sql(
            country, "SELECT fin FROM persons WHERE birth_date < '2025' ORDER BY id LIMIT 300"
        )
    ]
    for service, fields in FIELDS.items():
        answer = inst.query(service, [*fins, "ZZZZZZZ"], as_of=NOON, purpose="test")
        assert answer.service is service and answer.answered_at == NOON
        assert set(answer.records) == set(fins), "unknown FIN must be absent"
        for record in answer.records.values():
            assert set(record) == fields
    a = inst.query(Service.CIVIL_PERSON, fins[:1], as_of=NOON, purpose="t")
    b = inst.query(Service.CIVIL_PERSON, fins[:1], as_of=NOON, purpose="t")
    assert a.message_id != b.message_id


def test_field_types(country: Path) -> None:
    inst = SimulatedInstitutions(country)
    fins = [r[0] for r in sql(country, "SELECT fin FROM persons ORDER BY id LIMIT 500")]
    for rec in inst.query(Service.CIVIL_PERSON, fins, as_of=NOON, purpose="t").records.values():
        assert rec["sex"] in ("F", "M") and isinstance(rec["alive"], bool)
        date.fromisoformat(rec["birth_date"])
    for rec in inst.query(Service.TAX_INCOME, fins, as_of=NOON, purpose="t").records.values():
        assert isinstance(rec["monthly_income"], int) and isinstance(rec["employed"], bool)
        assert (rec["monthly_income"] > 0) == rec["employed"]
    for rec in inst.query(Service.MOBILE_NUMBER, fins, as_of=NOON, purpose="t").records.values():
        assert rec["language"] in ("az", "ru", "en")
        assert rec["phone"] is None or (rec["phone"].startswith("+994") and len(rec["phone"]) == 13)
    for rec in inst.query(Service.PENSION_RECORD, fins, as_of=NOON, purpose="t").records.values():
        assert isinstance(rec["pension_capital"], int) and isinstance(rec["pensions"], list)
        assert (rec["insurance_months"] == 0) == (rec["pension_capital"] == 0)


def test_death_as_of(country: Path) -> None:
    inst = SimulatedInstitutions(country)
    fin, at, _ = one_event(country, "death_registered")
    before = ask(inst, Service.CIVIL_PERSON, fin, at - timedelta(days=1))
    after = ask(inst, Service.CIVIL_PERSON, fin, at)
    assert before["alive"] is True and before["death_date"] is None
    assert after["alive"] is False and after["death_date"] == at.date().isoformat()


def test_birth_as_of(country: Path) -> None:
    inst = SimulatedInstitutions(country)
    child, at, payload = one_event(country, "birth_registered")
    mother = sql(country, "SELECT mother_fin FROM persons WHERE fin = ?", child)[0][0]
    assert ask(inst, Service.CIVIL_PERSON, child, at - timedelta(days=1)) is None
    assert ask(inst, Service.CIVIL_PERSON, child, at)["alive"] is True
    assert child not in ask(inst, Service.CIVIL_FAMILY, mother, at - timedelta(days=1))["children"]
    assert child in ask(inst, Service.CIVIL_FAMILY, mother, at)["children"]
    family = ask(inst, Service.CIVIL_FAMILY, child, at)
    assert family["mother_fin"] == mother and family["children"] == []


def test_marriage_as_of(country: Path) -> None:
    inst = SimulatedInstitutions(country)
    fin, at, payload = one_event(country, "marriage_registered")
    spouse = json.loads(payload)["spouse_fin"]
    assert ask(inst, Service.CIVIL_FAMILY, fin, at - timedelta(days=1))["spouse_fin"] is None
    assert ask(inst, Service.CIVIL_FAMILY, fin, at)["spouse_fin"] == spouse
    assert ask(inst, Service.CIVIL_FAMILY, spouse, at)["spouse_fin"] == fin


def test_disability_as_of(country: Path) -> None:
    inst = SimulatedInstitutions(country)
    fin, at, payload = one_event(country, "disability_status_granted")
    before = ask(inst, Service.DISABILITY_STATUS, fin, at - timedelta(days=1))
    after = ask(inst, Service.DISABILITY_STATUS, fin, at)
    assert before == {"active": False, "group": None, "since": None, "until": None}
    assert after["active"] is True and after["since"] == at.date().isoformat()
    assert after["group"] == json.loads(payload)["group"]
    fin, at, _ = one_event(country, "disability_status_ended")
    assert ask(inst, Service.DISABILITY_STATUS, fin, at - timedelta(days=1))["active"] is True
    ended = ask(inst, Service.DISABILITY_STATUS, fin, at)
    assert ended["active"] is False and ended["until"] == at.date().isoformat()


def test_employment_as_of(country: Path) -> None:
    inst = SimulatedInstitutions(country)
    fin, at, _ = one_event(country, "employment_terminated")
    before = ask(inst, Service.TAX_INCOME, fin, at - timedelta(days=1))
    assert before["employed"] is True and before["monthly_income"] > 0
    assert ask(inst, Service.TAX_INCOME, fin, at) == {"employed": False, "monthly_income": 0}


def test_inconsistent_birth_dates_show_between_ministries(country: Path) -> None:
    inst = SimulatedInstitutions(country)
    odd = [r[0] for r in sql(country, "SELECT fin FROM persons WHERE mia_birth_date IS NOT NULL")]
    assert odd
    civil = inst.query(Service.CIVIL_PERSON, odd, as_of=NOON, purpose="t").records
    interior = inst.query(Service.INTERIOR_IDENTITY, odd, as_of=NOON, purpose="t").records
    assert all(civil[f]["birth_date"] != interior[f]["birth_date"] for f in odd)


def test_query_is_fast_and_checks_its_arguments(country: Path) -> None:
    inst = SimulatedInstitutions(country)
    fins = [r[0] for r in sql(country, "SELECT fin FROM persons ORDER BY id LIMIT 1000")]
    inst.query(Service.CIVIL_FAMILY, fins, as_of=NOON, purpose="warm-up")
    for service in Service:
        started = time.perf_counter()
        answer = inst.query(service, fins, as_of=NOON, purpose="t")
        assert time.perf_counter() - started < 0.1, service
        assert len(answer.records) > 900
    with pytest.raises(NaiveDatetime):
        inst.query(Service.CIVIL_PERSON, fins, as_of=datetime(2025, 1, 1), purpose="t")  # noqa: DTZ001
    with pytest.raises(InstitutionError):
        inst.query("nope/service", fins, as_of=NOON, purpose="t")  # type: ignore[arg-type]
    with pytest.raises(InstitutionError):
        SimulatedInstitutions(country.with_name("missing.db")).query(
            Service.CIVIL_PERSON, fins, as_of=NOON, purpose="t"
        )


# ---- bank ---------------------------------------------------------------------------------------


def test_find_accounts_from_the_country(country: Path) -> None:
    bank = SimulatedBank(country)
    holders = sql(country, "SELECT fin, iban FROM bank_accounts WHERE closed_at IS NULL LIMIT 50")
    found = bank.find_accounts([f for f, _ in holders] + ["ZZZZZZZ"], as_of=NOON)
    assert {f: a.iban for f, a in found.items()} == dict(holders)
    assert all(a.bank == "HAQB" and iban_is_valid(a.iban) for a in found.values())


def test_account_requests_are_answered_later_and_idempotent(country: Path) -> None:
    bank = SimulatedBank(country, seed=5)
    people = sql(
        country,
        "SELECT fin, name FROM persons WHERE death_date IS NULL "
        "AND fin NOT IN (SELECT fin FROM bank_accounts) LIMIT 400",
    )
    at = datetime(2025, 3, 1, 9, tzinfo=BAKU)
    requests = [AccountRequest(f"acc-{fin}", fin, name, at) for fin, name in people]
    bank.request_accounts(requests)
    bank.request_accounts(requests[:10])  # a retry records nothing new
    assert sql(country, "SELECT count(*) FROM bank_account_requests")[0][0] == len(people)
    keys = [r.key for r in requests]
    assert {a.status for a in bank.account_answers(keys, as_of=at).values()} == {"pending"}
    assert set(bank.account_answers(keys, as_of=at + timedelta(hours=23))) == set(keys)
    later = bank.account_answers(keys + ["never-asked"], as_of=at + timedelta(days=5, seconds=1))
    assert "never-asked" not in later
    statuses = Counter(a.status for a in later.values())
    assert statuses["pending"] == 0 and 0 < statuses["refused"] < 0.06 * len(keys)
    for req in requests:
        answer = later[req.key]
        assert answer.answered_at is not None
        assert timedelta(days=1) <= answer.answered_at - at <= timedelta(days=5)
        if answer.status == "opened":
            assert answer.iban and iban_is_valid(answer.iban) and answer.reason is None
            before = bank.find_accounts([req.fin], as_of=answer.answered_at - timedelta(seconds=1))
            assert req.fin not in before
            now = bank.find_accounts([req.fin], as_of=answer.answered_at)
            assert now[req.fin].iban == answer.iban
        else:
            assert answer.iban is None and answer.reason
    # Same seed, same key: same answer, even in another bank object.
    again = SimulatedBank(country, seed=5).account_answers(keys, as_of=at + timedelta(days=6))
    assert again == later


def test_unknown_or_dead_persons_are_refused(country: Path) -> None:
    bank = SimulatedBank(country)
    dead, died = sql(
        country, "SELECT fin, death_date FROM persons WHERE death_date IS NOT NULL LIMIT 1"
    )[0]
    after = datetime.fromisoformat(died).replace(tzinfo=BAKU) + timedelta(days=1)
    bank.request_accounts(
        [
            AccountRequest("k-unknown", "ZZZZZZZ", "Nobody", NOON),
            AccountRequest("k-dead", dead, "Dead", after),
        ]
    )
    # Both requests are answered within 5 days of the later one.
    answers = bank.account_answers(["k-unknown", "k-dead"], as_of=max(after, NOON) + timedelta(days=6))
    assert answers["k-unknown"].status == "refused"
    assert answers["k-unknown"].reason == "identity could not be confirmed"
    assert answers["k-dead"].status == "refused"


def test_transfers(country: Path) -> None:
    bank = SimulatedBank(country)
    fin, iban = sql(country, "SELECT fin, iban FROM bank_accounts WHERE closed_at IS NULL LIMIT 1")[
        0
    ]
    pay = Transfer("pay-1", fin, iban, 45_000, "birth benefit", NOON)
    assert bank.transfer([pay])["pay-1"].status == "accepted"
    # A retry, even with other details, returns the first result and pays nothing more.
    changed = Transfer("pay-1", fin, iban, 99_999, "other", NOON)
    assert bank.transfer([changed, changed])["pay-1"].status == "accepted"
    assert bank.transfer_count() == 1
    assert sql(country, "SELECT amount, attempts FROM bank_transfers")[0] == (45_000, 3)
    broken = iban[:-1] + str((int(iban[-1]) + 1) % 10)
    unknown = make_iban("AZ", "HAQB" + "7" * 20)
    results = bank.transfer(
        [
            Transfer("pay-2", fin, broken, 100, "x", NOON),
            Transfer("pay-3", fin, unknown, 100, "x", NOON),
            Transfer("pay-4", fin, iban, 0, "x", NOON),
        ]
    )
    assert results["pay-2"].reason == "AC01 incorrect account number"
    assert results["pay-3"].reason == "AC01 incorrect account number"
    assert results["pay-4"].status == "rejected"
    closed_fin, closed_iban, closed_at = sql(
        country,
        "SELECT fin, iban, closed_at FROM bank_accounts WHERE closed_at IS NOT NULL "
        "AND closed_at > '2025-01-02' LIMIT 1",
    )[0]
    closed = datetime.fromisoformat(closed_at)
    results = bank.transfer(
        [
            Transfer("pay-5", closed_fin, closed_iban, 100, "x", closed - timedelta(days=1)),
            Transfer("pay-6", closed_fin, closed_iban, 100, "x", closed + timedelta(hours=1)),
        ]
    )
    assert results["pay-5"].status == "accepted"
    assert results["pay-6"].status == "rejected"
    assert results["pay-6"].reason == "AC04 closed account"
    assert closed_fin not in bank.find_accounts([closed_fin], as_of=closed)
    assert closed_fin in bank.find_accounts([closed_fin], as_of=closed - timedelta(days=1))


def test_adapters_pickle_into_other_processes(country: Path) -> None:
    bank = SimulatedBank(country, seed=3)
    bank.find_accounts(["ZZZZZZZ"], as_of=NOON)  # opens a connection
    copy = pickle.loads(pickle.dumps(bank))
    assert copy.seed == 3 and copy.find_accounts(["ZZZZZZZ"], as_of=NOON) == {}


# ---- SMS gateway --------------------------------------------------------------------------------


def test_submit_is_idempotent_and_counts_attempts(country: Path) -> None:
    sms = SimulatedSmsGateway(country)
    msg = OutgoingSms("sms-1", "+994501234567", "Salam", NOON)
    first = sms.submit([msg])["sms-1"]
    assert first.status == "accepted" and first.gateway_id
    assert sms.submit([msg, msg])["sms-1"] == first
    assert sms.sent_count() == 1
    assert sms.duplicates() == {"sms-1": 3}
    bad = sms.submit(
        [
            OutgoingSms("sms-2", "+99450123456", "x", NOON),
            OutgoingSms("sms-3", "0501234567", "x", NOON),
        ]
    )
    assert {r.status for r in bad.values()} == {"rejected"}
    assert sms.sent_count() == 1


def test_citizens_answer_consent_requests(country: Path) -> None:
    sms = SimulatedSmsGateway(country, seed=9)
    people = sql(country, "SELECT phone, language FROM persons WHERE phone IS NOT NULL LIMIT 1500")
    language = dict(people)
    messages = [
        OutgoingSms(f"c-{i}", phone, "Razısınız? BƏLİ və ya XEYR", NOON, reply_code=f"{i:04d}")
        for i, (phone, _) in enumerate(people)
    ]
    sms.submit(messages)
    assert sms.inbound(as_of=NOON + timedelta(minutes=9)) == []
    replies = sms.inbound(as_of=NOON + timedelta(days=4), limit=100_000)
    share = len(replies) / len(messages)
    assert 0.86 <= share <= 0.94
    times = [r.received_at for r in replies]
    assert times == sorted(times)
    assert all(timedelta(minutes=10) <= t - NOON <= timedelta(days=3) for t in times)
    assert sum(t - NOON < timedelta(hours=12) for t in times) > len(times) / 2  # skewed early
    code_of = {m.phone: m.reply_code for m in messages}
    yes = {"az": "BƏLİ", "ru": "ДА", "en": "YES"}
    no = {"az": "XEYR", "ru": "НЕТ", "en": "NO"}
    verdicts: Counter[str] = Counter()
    for r in replies:
        word, code = r.text.split()
        assert code == code_of[r.phone]
        lang = language[r.phone]
        assert word.upper() in (yes[lang], no[lang]) or word in ("bəli", "Bəli")
        verdicts["no" if word.upper() == no[lang] else "yes"] += 1
    assert 0.84 <= verdicts["yes"] / len(replies) <= 0.94
    assert any(r.text != r.text.strip() or "  " in r.text for r in replies)
    # Acknowledged replies are not returned again; a retried submit sends no second reply.
    sms.ack([r.gateway_id for r in replies[:100]])
    assert len(sms.inbound(as_of=NOON + timedelta(days=4), limit=100_000)) == len(replies) - 100
    sms.submit(messages[:50])
    assert len(sms.inbound(as_of=NOON + timedelta(days=4), limit=100_000)) == len(replies) - 100
    assert len(sms.inbound(as_of=NOON + timedelta(days=4), limit=7)) == 7


SUBMITTER = """
import sys
from datetime import datetime
from zoneinfo import ZoneInfo
from haqq.adapters.institutions import SimulatedSmsGateway
from haqq.ports import OutgoingSms
sms = SimulatedSmsGateway(sys.argv[1])
at = datetime(2025, 5, 1, 10, tzinfo=ZoneInfo("Asia/Baku"))
for start in range(0, 200, 20):
    sms.submit([OutgoingSms(f"k{i}", "+994551234567", "hi", at, reply_code="1234")
                for i in range(start, start + 20)])
"""


def test_several_processes_share_the_file(country: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", SUBMITTER, str(country)]) for _ in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    sms = SimulatedSmsGateway(country)
    assert sms.sent_count() == 200
    assert sql(country, "SELECT sum(attempts) FROM sms_sent")[0][0] == 600
    assert sql(country, "SELECT count(*) FROM sms_inbound")[0][0] <= 200
