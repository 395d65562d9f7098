"""Telling the citizen, and hearing back, on real stores: STOP by SMS, declining through the API,
delivery receipts, retries with backoff, quiet hours, the notify-mode claim and replies haqq
refuses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from haqq.adapters.store import db
from haqq.adapters.store.schema import (
    citizen_choices,
    entitlements,
    inbound_sms,
    notifications,
    payments,
    sms_parts,
    sms_receipts,
)
from haqq.bootstrap import Haqq, ManualClock, Settings, build
from haqq.domain.quiet import QuietHours
from haqq.entrypoints.choices_api import make_choices_app
from haqq.pipeline import choices, texting
from haqq.pipeline.work import BAKU
from haqq.ports import DeliveryReceipt, GatewayUnavailable, OutgoingSms, SubmitResult
from haqq.rules.messages import reply_code
from tests.helpers import country_copy, country_query, generated_country, rows, run_at, take_events

GRANTED = datetime(2025, 1, 6, 10, tzinfo=BAKU)
HANDED = ("sent", "delivered", "failed")


@pytest.fixture(scope="module")
def country_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, population=20_000, seed=3)


def disabled_person(country: Path, k: int = 0) -> dict[str, Any]:
    """Someone the disability payment is granted to in January, alive all year, with a phone."""
    found = country_query(
        country,
        "SELECT fin, disability_group FROM persons WHERE disability_group IS NOT NULL "
        "AND disability_since < '2025-01-01' AND (disability_until IS NULL OR disability_until > '2025-12-31') "
        "AND pensions NOT LIKE '%disability%' AND death_date IS NULL AND birth_date < '1990-01-01' "
        "AND phone IS NOT NULL AND mia_birth_date IS NULL AND resident = 1 ORDER BY fin LIMIT ? OFFSET ?",
        (1, k),
    )
    assert found, "the country has nobody with a disability status all year"
    return dict(found[0])


def grant(app: Haqq, person: Mapping[str, Any], at: datetime = GRANTED) -> str:
    event = {
        "source": "disability_registry", "event_id": f"TEST-DIS-{person['fin']}-{at:%H%M}",
        "type": "disability_status_granted", "fin": person["fin"],
        "occurred_at": at.isoformat(), "payload": {"group": person["disability_group"]},
    }
    take_events(app, [event], at)
    run_at(app, *(at + timedelta(days=d) for d in (0, 1, 2, 4, 6, 10)))
    ent = rows(app.engine, entitlements, entitlements.c.fin == person["fin"],
               entitlements.c.program_id == "disability_payment")
    assert len(ent) == 1, ent
    return str(ent[0]["id"])


def reply(app: Haqq, phone: str, text: str, at: datetime, gid: str) -> None:
    """A citizen's SMS as a gateway stores it in the inbox."""
    with app.engine.begin() as conn:
        conn.execute(insert(inbound_sms).values(
            gateway_id=gid, gateway="test", phone=phone, text=text, received_at=at, status="new"))


def the_grant_sms(app: Haqq, case_id: str) -> dict[str, Any]:
    told = rows(app.engine, notifications, notifications.c.case_id == case_id,
                notifications.c.kind.in_(("granted", "card_ready")))
    assert len(told) == 1, told
    return told[0]


@pytest.fixture
def app(store_url: str, country_file: Path, tmp_path: Path) -> Haqq:
    haqq = build(Settings(database_url=store_url, country=country_copy(country_file, tmp_path)))
    db.upgrade(haqq.engine)
    return haqq


def test_stop_by_sms_ends_a_recurring_benefit_cancels_what_is_unpaid_and_confirms(app: Haqq, country_file: Path) -> None:
    case_id = grant(app, disabled_person(country_file))
    run_at(app, *(GRANTED + timedelta(days=d) for d in (20, 40, 60, 70)))
    told = the_grant_sms(app, case_id)
    assert told["reply_code"] == reply_code(case_id) and f"STOP {told['reply_code']}" in told["text"]
    asked = datetime(2025, 3, 20, 12, tzinfo=BAKU)
    reply(app, told["phone"], f"  stop  {told['reply_code']} ", asked, "MO-1")
    run_at(app, asked + timedelta(minutes=5), asked + timedelta(days=60))

    ent = rows(app.engine, entitlements, entitlements.c.id == case_id)[0]
    assert ent["status"] == "ended" and ent["end_date"] == date(2025, 3, 20)
    assert "stopped by the citizen by SMS on 2025-03-20" in ent["ended_reason"]
    paid = rows(app.engine, payments, payments.c.entitlement_id == case_id)
    assert all(p["period_start"] <= date(2025, 3, 20) for p in paid if p["status"] != "cancelled"), paid
    assert not [p for p in paid if p["period"] in ("2025-04", "2025-05")]
    choice = rows(app.engine, citizen_choices, citizen_choices.c.case_id == case_id)
    assert [(c["choice"], c["channel"], c["source"]) for c in choice] == [("stop", "sms", "MO-1")]
    confirmed = rows(app.engine, notifications, notifications.c.case_id == case_id, notifications.c.kind == "stopped")
    assert len(confirmed) == 1 and confirmed[0]["status"] in HANDED and confirmed[0]["phone"] == told["phone"]
    assert "2025-03-20" in confirmed[0]["text"]
    inbox = rows(app.engine, inbound_sms, inbound_sms.c.gateway_id == "MO-1")[0]
    assert (inbox["status"], inbox["case_id"]) == ("applied", case_id)

    # Again: refused, nothing changes, no second confirmation.
    reply(app, told["phone"], f"STOP {told['reply_code']}", asked + timedelta(days=61), "MO-2")
    run_at(app, asked + timedelta(days=62))
    again = rows(app.engine, inbound_sms, inbound_sms.c.gateway_id == "MO-2")[0]
    assert again["status"] == "refused" and "already ended" in again["outcome"]
    assert len(rows(app.engine, notifications, notifications.c.case_id == case_id, notifications.c.kind == "stopped")) == 1
    assert len(rows(app.engine, citizen_choices, citizen_choices.c.case_id == case_id)) == 1


@pytest.mark.parametrize(
    ("text", "from_other_number", "why"),
    [
        ("STOP {code}", True, "no grant with code {code} was sent to this number"),
        ("STOP 0000", False, "no grant with code 0000 was sent to this number"),
        ("YES {code}", False, "no consent request with code {code} was sent to this number"),
        ("please stop paying me", False, "not a reply haqq understands"),
        ("STOP", False, "not a reply haqq understands"),
    ],
)
def test_a_reply_haqq_cannot_match_is_refused_and_changes_nothing(
    app: Haqq, country_file: Path, text: str, from_other_number: bool, why: str
) -> None:
    case_id = grant(app, disabled_person(country_file))
    told = the_grant_sms(app, case_id)
    phone = "+994559999999" if from_other_number else told["phone"]
    at = GRANTED + timedelta(days=3)
    reply(app, phone, text.format(code=told["reply_code"]), at, "MO-X")
    run_at(app, at + timedelta(minutes=1))
    inbox = rows(app.engine, inbound_sms, inbound_sms.c.gateway_id == "MO-X")[0]
    assert inbox["status"] == "refused"
    assert inbox["outcome"].startswith(why.format(code=told["reply_code"]))
    assert rows(app.engine, entitlements, entitlements.c.id == case_id)[0]["status"] == "active"
    assert rows(app.engine, citizen_choices) == []


def test_declining_through_the_api_before_any_payment(store_url: str, country_file: Path, tmp_path: Path) -> None:
    # The payment office is manual: the first payment waits, scheduled, for a person's run.
    app = build(Settings(database_url=store_url, country=country_copy(country_file, tmp_path),
                         payment_office="manual"))
    db.upgrade(app.engine)
    person = disabled_person(country_file, 1)
    case_id = grant(app, person)
    waiting = rows(app.engine, payments, payments.c.entitlement_id == case_id)
    assert waiting and {p["status"] for p in waiting} == {"scheduled"}
    now = GRANTED + timedelta(days=3)
    client = TestClient(make_choices_app(app.engine, clock=lambda: now))
    code = reply_code(case_id)

    assert client.post("/cases/NOPE/decline", json={"fin": person["fin"], "code": code}).status_code == 404
    wrong = client.post(f"/cases/{case_id}/decline", json={"fin": person["fin"], "code": "0000" if code != "0000" else "1111"})
    assert wrong.status_code == 409 and "code does not match" in wrong.json()["error"]
    other = client.post(f"/cases/{case_id}/decline", json={"fin": "AAAAAAA", "code": code})
    assert other.status_code == 409 and "only the beneficiary" in other.json()["error"]
    malformed = client.post(f"/cases/{case_id}/decline", json={"fin": "x", "code": code})
    assert malformed.status_code == 422 and malformed.json()["error"].startswith("fin:")
    assert rows(app.engine, entitlements, entitlements.c.id == case_id)[0]["status"] in ("pending", "active")

    done = client.post(f"/cases/{case_id}/decline", json={"fin": person["fin"], "code": code})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["choice"] == "decline" and body["cancelled_payments"] == len(waiting)
    assert rows(app.engine, entitlements, entitlements.c.id == case_id)[0]["status"] == "declined"
    assert {p["status"] for p in rows(app.engine, payments, payments.c.entitlement_id == case_id)} == {"cancelled"}
    assert [(c["choice"], c["channel"]) for c in rows(app.engine, citizen_choices)] == [("decline", "api")]
    confirmation = rows(app.engine, notifications, notifications.c.key == body["confirmation_sms"])
    assert confirmation[0]["kind"] == "declined" and confirmation[0]["status"] == "pending"
    again = client.post(f"/cases/{case_id}/decline", json={"fin": person["fin"], "code": code})
    assert again.status_code == 409 and "already declined" in again.json()["error"]


def test_receipts_settle_each_message_from_its_parts(app: Haqq, country_file: Path) -> None:
    case_id = grant(app, disabled_person(country_file))
    told = the_grant_sms(app, case_id)
    parts = rows(app.engine, sms_parts, sms_parts.c.notification_id == told["id"])
    assert told["parts"] == len(parts) >= 1
    # The simulated network's receipts come 5 to 120 seconds after the message.
    run_at(app, told["sent_at"] + timedelta(minutes=3))
    settled = rows(app.engine, notifications, notifications.c.id == told["id"])[0]
    assert settled["status"] in ("delivered", "failed")
    if settled["status"] == "delivered":
        assert settled["delivered_at"] is not None
        assert {p["status"] for p in rows(app.engine, sms_parts, sms_parts.c.notification_id == told["id"])} == {"delivered"}
    # Receipts taken from the gateway's connection are applied at once, not kept in the inbox.
    assert rows(app.engine, sms_receipts) == []
    done = rows(app.engine, sms_parts, sms_parts.c.notification_id == told["id"])
    assert all(p["status"] in ("delivered", "failed", "expired") and p["at"] is not None for p in done)

    # Pushed receipts (Kannel's) wait in the inbox: one for a part haqq never sent is refused
    # and kept; one repeated is ignored; one for a known part is applied.
    at = told["sent_at"] + timedelta(minutes=4)
    with app.engine.begin() as conn:
        texting.store_receipts(conn, "test", [
            DeliveryReceipt("R-unknown", "no-such-part", "delivered", at),
            DeliveryReceipt("R-1", parts[0]["message_id"], settled_part_status(settled["status"]), at),
            DeliveryReceipt("R-1", parts[0]["message_id"], "failed", at),
        ], at)
        assert texting.apply_receipts(conn, 100) == 2
    inbox = {r["receipt_id"]: r for r in rows(app.engine, sms_receipts)}
    assert (inbox["R-unknown"]["state"], inbox["R-unknown"]["outcome"]) == ("refused", "no message part with this id was sent")
    # The repeat ("failed") was ignored: the first word stands.
    assert (inbox["R-1"]["state"], inbox["R-1"]["status"]) == ("applied", settled_part_status(settled["status"]))
    assert rows(app.engine, notifications, notifications.c.id == told["id"])[0]["status"] == settled["status"]


class Holding:
    """A gateway holding delivery receipts until haqq acknowledges them."""

    name = "holding"

    def __init__(self, receipts: Sequence[DeliveryReceipt]) -> None:
        self.held = {r.receipt_id: r for r in receipts}

    def inbound(self, *, as_of: datetime, limit: int = 10_000) -> list[Any]:
        return []

    def receipts(self, *, as_of: datetime, limit: int = 10_000) -> list[DeliveryReceipt]:
        return list(self.held.values())

    def ack(self, ids: Sequence[str]) -> None:
        for i in ids:
            self.held.pop(i, None)


def test_a_receipt_that_comes_before_its_part_is_recorded_waits_for_it(app: Haqq, country_file: Path) -> None:
    # Another worker sent the message and has not recorded its parts yet: the receipt stays at
    # the gateway (not acknowledged, not refused) and is applied once the part is there; one
    # whose part never comes is refused after the grace.
    told = the_grant_sms(app, grant(app, disabled_person(country_file, 1)))
    at = told["sent_at"] + timedelta(minutes=1)
    gateway = Holding([DeliveryReceipt("R-early", "M-early", "delivered", at),
                       DeliveryReceipt("R-never", "M-never", "delivered", at)])
    seconds = [0.0]
    unplaced = texting.Unplaced(grace=30.0, clock=lambda: seconds[0])

    def fetch() -> None:
        with app.engine.begin() as conn:
            acks = texting.fetch(conn, cast(Any, gateway), at, 100, unplaced=unplaced)
        gateway.ack(acks)

    fetch()
    assert set(gateway.held) == {"R-early", "R-never"} and rows(app.engine, sms_receipts) == []
    with app.engine.begin() as conn:
        conn.execute(insert(sms_parts).values(message_id="M-early", notification_id=told["id"], seq=9,
                                              status="sent", at=told["sent_at"]))
    seconds[0] = 10.0
    fetch()
    assert set(gateway.held) == {"R-never"} and rows(app.engine, sms_receipts) == []
    assert rows(app.engine, sms_parts, sms_parts.c.message_id == "M-early")[0]["status"] == "delivered"
    seconds[0] = 31.0
    fetch()
    assert gateway.held == {}
    assert [(r["receipt_id"], r["state"]) for r in rows(app.engine, sms_receipts)] == [("R-never", "refused")]


def settled_part_status(message_status: str) -> str:
    return "delivered" if message_status == "delivered" else "failed"


class Flaky:
    """A gateway that cannot be reached for its first ``down`` submits, then refuses for now
    (throttled) ``throttled`` times, then is the simulated one."""

    def __init__(self, inner: Any, down: int, throttled: int = 0) -> None:
        self.inner, self.down, self.throttled, self.name = inner, down, throttled, "flaky"
        self.calls = 0

    def submit(self, messages: Sequence[OutgoingSms]) -> Mapping[str, SubmitResult]:
        self.calls += 1
        if self.down > 0:
            self.down -= 1
            raise GatewayUnavailable("connection refused")
        if self.throttled > 0:
            self.throttled -= 1
            return {m.key: SubmitResult(m.key, "", "retry", "ESME_RTHROTTLED (0x58)") for m in messages}
        return self.inner.submit(messages)

    def inbound(self, *, as_of: datetime, limit: int = 10_000) -> Any:
        return self.inner.inbound(as_of=as_of, limit=limit)

    def receipts(self, *, as_of: datetime, limit: int = 10_000) -> Any:
        return self.inner.receipts(as_of=as_of, limit=limit)

    def ack(self, ids: Sequence[str]) -> None:
        self.inner.ack(ids)


def test_a_message_the_gateway_cannot_take_is_offered_again_later_then_given_up(app: Haqq, country_file: Path) -> None:
    flaky = Flaky(app.sms, down=1, throttled=1)
    app.sms = flaky
    case_id = grant(app, disabled_person(country_file))
    told = the_grant_sms(app, case_id)
    for _ in range(3):  # down, then throttled: put off 30 s, then 60 s; the third try goes
        if told["status"] != "pending":
            break
        run_at(app, told["due_at"] + timedelta(seconds=1))
        told = the_grant_sms(app, case_id)
    assert told["status"] in HANDED and told["attempts"] == 3 and told["gateway"] == "flaky", told

    app.sms = Flaky(flaky.inner, down=100)
    worker = app.worker(ManualClock(GRANTED))
    worker.sms_policy = texting.SmsPolicy(max_attempts=3)
    moment = GRANTED + timedelta(days=20, hours=3)
    with app.engine.begin() as conn:
        choices.confirm(conn, case_id, "declined", at=moment, program="disability_payment")
    for _ in range(3):
        worker.clock = ManualClock(moment)
        worker.run_until_idle()
        pending = rows(app.engine, notifications, notifications.c.case_id == case_id, notifications.c.kind == "declined")[0]
        moment = max(moment, pending["due_at"]) + timedelta(seconds=1)
    assert pending["status"] == "undeliverable" and pending["attempts"] == 3
    assert pending["reason"] == "gave up after 3 attempts: connection refused"


def test_quiet_hours_hold_a_message_until_the_morning(app: Haqq, country_file: Path) -> None:
    quiet = QuietHours.parse(app.settings.sms_quiet)
    assert quiet is not None and str(quiet) == "22:00-08:00"
    case_id = grant(app, disabled_person(country_file), at=datetime(2025, 1, 6, 23, 30, tzinfo=BAKU))
    texted = rows(app.engine, notifications)
    assert texted and all(not quiet.covers(n["due_at"]) for n in texted)
    late = datetime(2025, 1, 20, 23, 30, tzinfo=BAKU)
    with app.engine.begin() as conn:
        key = choices.confirm(conn, case_id, "declined", at=late, program="disability_payment", quiet=quiet)
    run_at(app, late + timedelta(minutes=5))
    held = rows(app.engine, notifications, notifications.c.key == key)[0]
    assert held["due_at"] == datetime(2025, 1, 21, 8, 0, tzinfo=BAKU) and held["status"] == "pending"
    run_at(app, datetime(2025, 1, 21, 8, 0, 1, tzinfo=BAKU))
    assert rows(app.engine, notifications, notifications.c.key == key)[0]["status"] in HANDED


def test_a_claim_after_a_notice_is_recorded_once(app: Haqq, country_file: Path) -> None:
    found = country_query(
        country_file,
        "SELECT e.fin FROM life_events e JOIN persons p ON p.fin = e.fin WHERE e.type = 'employment_terminated' "
        "AND p.phone IS NOT NULL AND p.resident = 1 ORDER BY e.fin LIMIT 5",
    )
    from tests.helpers import country_event

    events = [country_event(country_file, f["fin"], "employment_terminated") for f in found]
    assert events, "the country has nobody whose employment ends"
    first = min(datetime.fromisoformat(e["occurred_at"]) for e in events)
    take_events(app, events, first)
    run_at(app, *(first + timedelta(days=d) for d in (0, 1, 2, 3)))
    told = rows(app.engine, notifications, notifications.c.kind == "may_claim")
    assert told, "no notify-mode notice was sent"
    case_id = told[0]["case_id"]
    client = TestClient(make_choices_app(app.engine, clock=lambda: first + timedelta(days=10)))
    done = client.post(f"/cases/{case_id}/claimed", json={"channel": "office", "source": "DOST-7"})
    assert done.status_code == 201, done.text
    assert [(c["choice"], c["channel"], c["source"]) for c in rows(app.engine, citizen_choices)] == [
        ("claimed", "office", "DOST-7")]
    assert client.post(f"/cases/{case_id}/claimed", json={"channel": "office"}).status_code == 409
    bad = client.post(f"/cases/{case_id}/claimed", json={"channel": "pigeon"})
    assert bad.status_code == 422 and bad.json()["error"].startswith("channel:")
