"""The bank over HTTP: :class:`HttpBank` against the real app of :func:`make_bank_app` around a
:class:`SimulatedBank` on a small country file (through ``fastapi.testclient.TestClient``).

Every answer through HTTP must equal the in-process bank's; every failure must become a typed
error naming the endpoint and the status.
"""

from __future__ import annotations

import pickle
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from haqq.adapters.bank.http import BankError, HttpBank
from haqq.adapters.bank.iso20022 import (
    CreditTransfer,
    MalformedBankFile,
    PaymentRun,
    credit_transfer_file,
    debit_credit_notification,
    payment_status_report,
    validate,
)
from haqq.adapters.bank.service import MAX_BATCH, make_bank_app
from haqq.adapters.institutions import SimulatedBank
from haqq.country.schema import BAKU
from haqq.domain.errors import HaqqError, InstitutionError, NaiveDatetime
from haqq.ports import (
    Account,
    AccountAnswer,
    AccountRequest,
    Bank,
    BankFile,
    Transfer,
    TransferResult,
)
from tests.helpers import TEST_DEBTOR, UNKNOWN_IBAN, country_copy, generated_country

DATA = Path(__file__).resolve().parents[1] / "data" / "iso20022"
AT = datetime(2025, 7, 1, 12, tzinfo=BAKU)
DEBTOR = TEST_DEBTOR


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, 3_000, 11)


@pytest.fixture
def country(pristine: Path, tmp_path: Path) -> Path:
    return country_copy(pristine, tmp_path)


@pytest.fixture
def direct(country: Path) -> SimulatedBank:
    return SimulatedBank(country)


@pytest.fixture
def client(direct: SimulatedBank) -> Iterator[TestClient]:
    with TestClient(make_bank_app(direct)) as test_client:
        yield test_client


@pytest.fixture
def bank(client: TestClient) -> HttpBank:
    return HttpBank("http://testserver", client=client)


def sql(path: Path, query: str, *args: object) -> list[Any]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(query, args).fetchall()


def pain001(name: str, transfers: Sequence[CreditTransfer]) -> bytes:
    return credit_transfer_file(
        PaymentRun(name, AT, DEBTOR, date(2025, 7, 1), transfers, f"{name[:30]}-1")
    )


def pay(e2e: str, iban: str, amount: int) -> CreditTransfer:
    return CreditTransfer(e2e, amount, f"Vətəndaş {e2e}", iban, None, f"müavinət {e2e}")


def envelope(items: list[dict[str, Any]], total: int | None = None) -> dict[str, Any]:
    return {
        "signature": "not checked by the simulated bank",
        "header": {
            "version": "1.0.0",
            "message_id": "m-1",
            "message_ts": AT.isoformat(),
            "action": "resolve",
            "sender_id": "haqq",
            "total_count": len(items) if total is None else total,
        },
        "message": {"transaction_id": "t-1", "resolve_request": items},
    }


# ---- accounts ---------------------------------------------------------------------------------


def test_http_bank_satisfies_the_port(bank: HttpBank) -> None:
    port: Bank = bank
    assert port.name == "HAQB"
    assert HttpBank("http://x", name="OTHER").name == "OTHER"


def test_find_accounts_answers_what_the_bank_does(
    bank: HttpBank, direct: SimulatedBank, country: Path
) -> None:
    fins = [r[0] for r in sql(country, "SELECT fin FROM persons ORDER BY id LIMIT 400")]
    closed_fin, closed_at = sql(
        country, "SELECT fin, closed_at FROM bank_accounts WHERE closed_at > '2025' LIMIT 1"
    )[0]
    fins += [closed_fin, "ZZZZZZZ", "not-a-fin"]
    for moment in (
        AT,
        datetime.fromisoformat(closed_at),
        datetime.fromisoformat(closed_at) - timedelta(days=1),
    ):
        expected = direct.find_accounts(fins, as_of=moment)
        got = bank.find_accounts(fins, as_of=moment)
        assert got == expected
        assert (closed_fin in got) is (moment < datetime.fromisoformat(closed_at))
    assert len(bank.find_accounts(fins, as_of=AT)) > 50
    assert bank.find_accounts([], as_of=AT) == {}


def test_mapper_resolve_follows_the_g2p_connect_envelope(
    client: TestClient, direct: SimulatedBank, country: Path
) -> None:
    fin, iban = sql(country, "SELECT fin, iban FROM bank_accounts WHERE closed_at IS NULL LIMIT 1")[
        0
    ]
    at = AT.isoformat()
    items = [
        {
            "reference_id": "1",
            "timestamp": at,
            "id": f"fin:{fin}@civil-registry",
            "scope": "details",
        },
        {"reference_id": "2", "timestamp": at, "id": f"fin:{fin}"},
        {"reference_id": "3", "timestamp": at, "id": "fin:ZZZZZZZ@civil-registry"},
        {"reference_id": "4", "timestamp": at, "id": "nid:12345@nid"},
        {"reference_id": "5", "timestamp": at, "fa": "account:x@haqb"},
        {"reference_id": "1", "timestamp": at, "id": f"fin:{fin}"},
    ]
    response = client.post("/mapper/resolve", json=envelope(items))
    assert response.status_code == 200
    body = response.json()
    header = body["header"]
    assert (header["action"], header["status"], header["sender_id"], header["receiver_id"]) == (
        "on-resolve",
        "succ",
        "HAQB",
        "haqq",
    )
    assert (header["total_count"], header["completed_count"]) == (6, 6)
    assert body["message"]["transaction_id"] == "t-1"
    answers = body["message"]["resolve_response"]
    assert [(a["reference_id"], a["status"], a["status_reason_code"]) for a in answers] == [
        ("1", "succ", "succ.fa.active"),
        ("2", "succ", "succ.fa.active"),
        ("3", "succ", "succ.id.not_found"),
        ("4", "rjct", "rjct.id.invalid"),
        ("5", "rjct", "rjct.resolve_type.not_supported"),
        ("1", "rjct", "rjct.reference_id.duplicate"),
    ]
    assert answers[0]["fa"] == f"account:{iban}@haqb"
    assert answers[0]["account_provider_info"] == {"name": "HAQB", "code": "HAQB"}
    assert answers[0]["additional_info"][0] == {"name": "card_status", "value": "issued"}
    assert answers[0]["additional_info"][1]["name"] == "holder" and answers[0]["additional_info"][1]["value"]
    assert "fa" not in answers[1]  # scope yes_no (the spec's default) tells no details
    assert answers[0]["timestamp"] == at

    wrong_count = client.post("/mapper/resolve", json=envelope(items[:2], total=3))
    assert wrong_count.status_code == 400
    assert wrong_count.json()["error"] == "rjct.total_count.invalid"
    naive = envelope(
        [{"reference_id": "1", "timestamp": "2025-07-01T12:00:00", "id": f"fin:{fin}"}]
    )
    assert client.post("/mapper/resolve", json=naive).status_code == 422
    wrong_action = envelope(items[:1])
    wrong_action["header"]["action"] = "link"
    assert client.post("/mapper/resolve", json=wrong_action).status_code == 422


def test_account_requests_and_answers_over_http(
    bank: HttpBank, direct: SimulatedBank, country: Path
) -> None:
    people = sql(
        country,
        "SELECT fin, name FROM persons WHERE death_date IS NULL "
        "AND fin NOT IN (SELECT fin FROM bank_accounts) ORDER BY id LIMIT 30",
    )
    requests = [AccountRequest(f"acc-{fin}", fin, name, AT) for fin, name in people]
    bank.request_accounts(requests)
    bank.request_accounts(requests[:5])  # idempotent by key
    assert sql(country, "SELECT count(*) FROM bank_account_requests")[0][0] == len(people)
    keys = [r.key for r in requests] + ["never-asked"]
    for moment in (AT + timedelta(hours=1), AT + timedelta(days=6)):
        got: Mapping[str, AccountAnswer] = bank.account_answers(keys, as_of=moment)
        assert got == direct.account_answers(keys, as_of=moment)
    later = bank.account_answers(keys, as_of=AT + timedelta(days=6))
    assert "never-asked" not in later
    assert {a.status for a in later.values()} <= {"opened", "refused"}
    opened = [a for a in later.values() if a.status == "opened"]
    assert opened and all(a.iban and a.answered_at and a.answered_at.utcoffset() for a in opened)


def test_transfers_over_http_are_those_of_the_bank(bank: HttpBank, country: Path) -> None:
    fin, iban = sql(country, "SELECT fin, iban FROM bank_accounts WHERE closed_at IS NULL LIMIT 1")[
        0
    ]
    results = bank.transfer(
        [
            Transfer("pay-1", fin, iban, 45_000, "birth benefit", AT),
            Transfer("pay-2", fin, UNKNOWN_IBAN, 100, "x", AT),
            Transfer("pay-3", fin, iban, 0, "x", AT),
        ]
    )
    assert results == {
        "pay-1": TransferResult("pay-1", "accepted", None),
        "pay-2": TransferResult("pay-2", "rejected", "AC01 incorrect account number"),
        "pay-3": TransferResult("pay-3", "rejected", "AM12 invalid amount"),
    }
    again = bank.transfer([Transfer("pay-1", fin, iban, 99_999, "retry", AT)])
    assert again == {"pay-1": TransferResult("pay-1", "accepted", None)}
    assert sql(country, "SELECT amount, attempts FROM bank_transfers WHERE key = 'pay-1'") == [
        (45_000, 2)
    ]


# ---- files ------------------------------------------------------------------------------------


def test_the_file_channel_over_http(bank: HttpBank, direct: SimulatedBank, country: Path) -> None:
    (fin, iban), (_, iban2) = sql(
        country,
        "SELECT fin, iban FROM bank_accounts WHERE closed_at IS NULL "
        "AND opened_at < '2025' ORDER BY iban LIMIT 2",
    )
    _, closed_iban = sql(
        country, "SELECT fin, iban FROM bank_accounts WHERE closed_at < '2025-07-01' LIMIT 1"
    )[0]
    name = "RUN/2025-07-01:1"  # '/' and ':' are ISO reference characters: the path quotes them
    transfers = [
        pay("E2E-1", iban, 45_000),
        pay("E2E-2", UNKNOWN_IBAN, 100),
        pay("E2E-3", closed_iban, 300),
        pay("E2E-4", iban2, 1_050),
    ]
    bank.send_file(name, pain001(name, transfers), at=AT)
    bank.send_file(name, b"ignored: the name was seen", at=AT)

    assert bank.files(as_of=AT + timedelta(hours=1)) == []
    next_day = datetime(2025, 7, 2, 10, tzinfo=BAKU)
    files = bank.files(as_of=next_day)
    assert [(f.name, f.kind, f.at) for f in files] == [
        (f"PS-{name}", "pain.002", AT + timedelta(hours=2)),
        (f"NT-{name}", "camt.054", next_day),
    ]
    assert files == list(direct.files(as_of=next_day))  # byte for byte the bank's own
    report = payment_status_report(files[0].content, schema=DATA / "pain.002.001.10.xsd")
    assert report.group_status == "PART"
    assert [(t.end_to_end_id, t.status, t.reason_code) for t in report.transactions] == [
        ("E2E-1", "ACCP", None),
        ("E2E-2", "RJCT", "AC01"),
        ("E2E-3", "RJCT", "AC04"),
        ("E2E-4", "ACCP", None),
    ]
    validate(files[1].content, DATA / "camt.054.001.08.xsd")
    entries = debit_credit_notification(files[1].content).entries
    assert [(e.end_to_end_id, e.amount_minor) for e in entries] == [
        ("E2E-1", 45_000),
        ("E2E-4", 1_050),
    ]
    assert sum(e.amount_minor for e in entries) == 46_050
    assert sql(
        country, "SELECT key, fin FROM bank_transfers WHERE status = 'accepted' ORDER BY key"
    )[0] == (
        "E2E-1",
        fin,
    )

    bank.ack_files([f"PS-{name}"])
    assert [f.name for f in bank.files(as_of=next_day)] == [f"NT-{name}"]
    bank.ack_files([f"NT-{name}"])
    assert bank.files(as_of=next_day + timedelta(days=9)) == []
    assert bank.files(as_of=next_day + timedelta(days=9)) == direct.files(
        as_of=next_day + timedelta(days=9)
    )


def test_one_report_by_name(client: TestClient, bank: HttpBank, country: Path) -> None:
    iban = sql(country, "SELECT iban FROM bank_accounts WHERE closed_at IS NULL LIMIT 1")[0][0]
    bank.send_file("RUN-G", pain001("RUN-G", [pay("E2E-G", iban, 10)]), at=AT)
    ready = (AT + timedelta(hours=2)).isoformat()
    got = client.get("/files/PS-RUN-G", params={"as_of": ready})
    assert got.status_code == 200 and got.headers["content-type"].startswith("application/xml")
    assert got.headers["X-Bank-File-Kind"] == "pain.002"
    assert payment_status_report(got.content).original_message_id == "RUN-G"
    early = client.get("/files/PS-RUN-G", params={"as_of": AT.isoformat()})
    assert (early.status_code, early.json()["error"]) == (404, "not_found")
    assert client.get("/files/NO-SUCH").status_code == 404
    listed = client.get("/files", params={"as_of": ready}).json()["files"]
    assert listed == [
        {"name": "PS-RUN-G", "kind": "pain.002", "at": ready, "size": len(got.content)}
    ]


class PlainBank:
    """A bank with only the port's methods (no ``file``), like a wrapper of the real one."""

    def __init__(self, inner: SimulatedBank) -> None:
        self.inner = inner
        self.name = inner.name

    def find_accounts(self, fins: Sequence[str], *, as_of: datetime) -> Mapping[str, Account]:
        return self.inner.find_accounts(fins, as_of=as_of)

    def request_accounts(self, requests: Sequence[AccountRequest]) -> None:
        self.inner.request_accounts(requests)

    def account_answers(
        self, keys: Sequence[str], *, as_of: datetime
    ) -> Mapping[str, AccountAnswer]:
        return self.inner.account_answers(keys, as_of=as_of)

    def transfer(self, transfers: Sequence[Transfer]) -> Mapping[str, TransferResult]:
        return self.inner.transfer(transfers)

    def send_file(self, name: str, content: bytes, *, at: datetime) -> None:
        self.inner.send_file(name, content, at=at)

    def files(self, *, as_of: datetime) -> Sequence[BankFile]:
        return self.inner.files(as_of=as_of)

    def ready_files(self, *, as_of: datetime) -> Sequence[str]:
        return self.inner.ready_files(as_of=as_of)

    def ack_files(self, names: Sequence[str]) -> None:
        self.inner.ack_files(names)


def test_a_bank_without_an_archive_is_served_too(direct: SimulatedBank, country: Path) -> None:
    iban = sql(country, "SELECT iban FROM bank_accounts WHERE closed_at IS NULL LIMIT 1")[0][0]
    with TestClient(make_bank_app(PlainBank(direct))) as client:
        bank = HttpBank("http://testserver/", client=client)
        bank.send_file("RUN-P", pain001("RUN-P", [pay("E2E-P", iban, 10)]), at=AT)
        files = bank.files(as_of=AT + timedelta(days=2))
        assert bank.ready_files(as_of=AT + timedelta(days=2)) == [f.name for f in files]
        assert [f.name for f in files] == ["PS-RUN-P", "NT-RUN-P"]
        assert files == list(direct.files(as_of=AT + timedelta(days=2)))
        no_moment = client.get("/files/PS-RUN-P")
        assert (no_moment.status_code, no_moment.json()["error"]) == (400, "bad_request")


# ---- errors -----------------------------------------------------------------------------------


def test_a_refused_file_is_a_malformed_bank_file(bank: HttpBank, country: Path) -> None:
    with pytest.raises(
        MalformedBankFile,
        match=r"PUT /files/\{name\} -> 422: bank_file: .*(not well-formed|root element is Document, not)",
    ):
        bank.send_file("RUN-BAD", b"<Document", at=AT)
    with pytest.raises(MalformedBankFile, match="MsgId is 'RUN-A', not 'RUN-B'"):
        bank.send_file("RUN-B", pain001("RUN-A", [pay("E2E-A", UNKNOWN_IBAN, 1)]), at=AT)
    with pytest.raises(NaiveDatetime):
        bank.send_file("RUN-C", b"", at=AT.replace(tzinfo=None))
    with pytest.raises(NaiveDatetime):
        bank.files(as_of=AT.replace(tzinfo=None))
    assert sql(country, "SELECT count(*) FROM bank_files_in")[0][0] == 0


class FailingBank(PlainBank):
    """A bank whose account lookup fails as an institution does when it is down."""

    def find_accounts(self, fins: Sequence[str], *, as_of: datetime) -> Mapping[str, Account]:
        raise InstitutionError("the core banking system is down for maintenance")


def test_an_error_status_becomes_a_typed_error(direct: SimulatedBank) -> None:
    with TestClient(make_bank_app(FailingBank(direct)), raise_server_exceptions=False) as client:
        bank = HttpBank("http://testserver", client=client)
        with pytest.raises(BankError) as caught:
            bank.find_accounts(["AAAAAAA"], as_of=AT)
        error = caught.value
        assert isinstance(error, InstitutionError) and isinstance(error, HaqqError)
        assert (error.endpoint, error.status, error.code, error.transient) == (
            "POST /mapper/resolve",
            503,
            "unavailable",
            True,
        )
        assert "POST /mapper/resolve -> 503" in str(error) and "maintenance" in str(error)

        # The client cuts a batch the service would refuse as too large.
        many = [Transfer(f"k{i}", "f", "i", 1, "r", AT) for i in range(MAX_BATCH + 1)]
        results = bank.transfer(many)
        assert len(results) == MAX_BATCH + 1
        assert {r.reason for r in results.values()} == {"AC01 incorrect account number"}
        too_many = client.post(
            "/transfers",
            json={
                "transfers": [
                    {
                        "key": str(i),
                        "fin": "f",
                        "iban": "i",
                        "amount": 1,
                        "reference": "r",
                        "at": AT.isoformat(),
                    }
                    for i in range(MAX_BATCH + 1)
                ]
            },
        )
        assert (too_many.status_code, too_many.json()["error"]) == (413, "too_large")
        float_amount = client.post(
            "/transfers",
            json={
                "transfers": [
                    {
                        "key": "k",
                        "fin": "f",
                        "iban": "i",
                        "amount": 1.5,
                        "reference": "r",
                        "at": AT.isoformat(),
                    }
                ]
            },
        )
        assert (float_amount.status_code, float_amount.json()["error"]) == (422, "invalid_request")


def test_a_missing_route_or_a_bad_answer_is_a_typed_error(client: TestClient) -> None:
    wrong = HttpBank("http://testserver/nowhere", client=client)
    with pytest.raises(BankError) as caught:
        wrong.ack_files(["x"])
    assert (caught.value.endpoint, caught.value.status, caught.value.transient) == (
        "POST /files/ack",
        404,
        False,
    )


def test_no_answer_at_all_is_a_transient_typed_error() -> None:
    bank = HttpBank("http://127.0.0.1:9", timeout=2.0)  # the discard port: nothing listens
    with pytest.raises(BankError) as caught:
        bank.files(as_of=AT)
    assert (caught.value.endpoint, caught.value.status, caught.value.transient) == (
        "GET /files",
        None,
        True,
    )
    bank.close()


def test_http_bank_pickles_into_another_process(bank: HttpBank) -> None:
    copy = pickle.loads(pickle.dumps(bank))
    assert (copy.base_url, copy.name) == ("http://testserver", "HAQB")
