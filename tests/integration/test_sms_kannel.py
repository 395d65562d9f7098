"""The Kannel gateway end to end: haqq -> sendsms -> bearerbox -> fake SMSC, and the delivery
reports and citizens' replies Kannel pushes back to haqq's SMS app, on a real Kannel 1.4.5.

One Kannel and one SMS app (uvicorn, a SQLite file) serve the whole module; each test uses its
own phone numbers, so what the fake SMSC received is told apart by receiver.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import Engine, func, select
from starlette.applications import Starlette
from starlette.routing import Mount

from haqq.adapters.sms.kannel import KannelGateway, concat_ref, part_id
from haqq.adapters.sms.kannel_box import (
    FakeSms,
    KannelBox,
    free_port,
    measure_kannel,
    mo_url,
    parse_fakesmsc_line,
)
from haqq.adapters.store import db
from haqq.adapters.store.schema import inbound_sms, sms_receipts
from haqq.domain.sms import split
from haqq.entrypoints.sms_api import Refused, kannel_time, make_sms_app, normalise_phone
from haqq.ports import GatewayUnavailable, OutgoingSms
from tests.helpers import serving
from tests.kannel_box import kannel_or_skip, running_box

TOKEN = "kannel-test-token"
NOW = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
T = TypeVar("T")


@dataclass
class Env:
    engine: Engine
    base: str
    box: KannelBox
    gateway: KannelGateway


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    kannel_or_skip()
    tmp = tmp_path_factory.mktemp("kannel")
    engine = db.make_engine(f"sqlite:///{tmp / 'haqq.db'}")
    db.upgrade(engine)
    app = Starlette(routes=[Mount("/sms", app=make_sms_app(engine, token=TOKEN))])
    with serving(app) as port:
        base = f"http://127.0.0.1:{port}"
        with (
            running_box(tmp / "kannel", mo_url=mo_url(base, TOKEN)) as box,
            box.gateway(base, dlr_token=TOKEN) as gateway,
        ):
            yield Env(engine, base, box, gateway)
    engine.dispose()


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def received_by(env: Env, phone: str, count: int) -> list[FakeSms]:
    def probe() -> list[FakeSms] | None:
        got = [m for m in env.box.received() if m.receiver == phone]
        return got if len(got) >= count else None

    return wait_for(f"{count} messages to {phone} at the fake SMSC", probe)


def receipts(env: Env, part_ids: list[str]) -> list[Any]:
    with env.engine.connect() as conn:
        return list(conn.execute(
            select(sms_receipts).where(sms_receipts.c.message_id.in_(part_ids))
        ).all())


def delivered(env: Env, part_ids: list[str]) -> list[Any]:
    def probe() -> list[Any] | None:
        rows = [r for r in receipts(env, part_ids) if r.status == "delivered"]
        return rows if {r.message_id for r in rows} == set(part_ids) else None

    return wait_for(f"delivered reports for {part_ids}", probe)


def count(env: Env, table: Any) -> int:
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# --- sending ---------------------------------------------------------------------------------


def test_latin_and_azerbaijani_texts_reach_the_smsc_and_are_reported_delivered(env: Env) -> None:
    latin = OutgoingSms("t1:latin", "+994501000001", "Salam! Your child benefit was granted.", NOW)
    azeri = OutgoingSms("t1:azeri", "+994501000002", "Salam, Əli! Müavinətiniz təyin edildi: 200 ₼.", NOW)

    results = env.gateway.submit([latin, azeri])

    assert {k: r.status for k, r in results.items()} == {latin.key: "accepted", azeri.key: "accepted"}
    assert results[latin.key].parts == ("K:t1:latin:1",)
    assert results[latin.key].gateway_id == "K:t1:latin:1"
    assert results[azeri.key].parts == ("K:t1:azeri:1",)
    [got_latin] = received_by(env, latin.phone, 1)
    [got_azeri] = received_by(env, azeri.phone, 1)
    assert got_latin.sender == "HAQQ"
    assert (got_latin.kind, got_latin.text()) == ("text", latin.text)
    assert (got_azeri.kind, got_azeri.text()) == ("ucs-2", azeri.text)  # Kannel sent UCS-2

    rows = delivered(env, ["K:t1:latin:1", "K:t1:azeri:1"])
    for row in rows:
        assert row.gateway == "kannel" and row.state == "new"
        assert row.at.tzinfo is not None and abs((row.at - row.received_at).total_seconds()) < 60
        assert row.detail.startswith("type=1 smsc=fake")
        assert row.receipt_id == f"{row.message_id}|1|{int(row.at.timestamp())}"
    # The SMSC's "taken" report (type 8) comes as well, as buffered.
    assert {r.status for r in receipts(env, ["K:t1:latin:1"])} == {"buffered", "delivered"}


def test_a_long_text_goes_as_parts_each_with_its_own_report(env: Env) -> None:
    text = ("Hörmətli vətəndaş, sizə aylıq müavinət təyin edilmişdir. Ödəniş hər ayın "
            "birinci həftəsində kartınıza köçürüləcək. Suallarınız üçün 142 nömrəsinə zəng edin.")
    message = OutgoingSms("t2:long", "+994501000003", text, NOW)
    expected = split(text, concat_ref(message.key))
    assert len(expected) >= 2

    result = env.gateway.submit([message])[message.key]

    assert result.status == "accepted"
    assert result.parts == tuple(part_id(message.key, p.seq) for p in expected)
    got = received_by(env, message.phone, len(expected))
    assert len(got) == len(expected)
    by_seq = {m.udh[5]: m for m in got}
    for part in expected:
        sms = by_seq[part.seq]
        assert sms.udh == part.udh == bytes((5, 0, 3, concat_ref(message.key), len(expected), part.seq))
        assert sms.text(ucs2=True) == part.text
    assert "".join(by_seq[p.seq].text(ucs2=True) for p in expected) == text
    delivered(env, list(result.parts))


def test_a_long_gsm7_text_goes_as_gsm7_parts(env: Env) -> None:
    text = "Dear citizen, " + "your pension was recalculated and will be paid next month. " * 4
    message = OutgoingSms("t2:gsm", "+994501000004", text.strip(), NOW)
    expected = split(message.text, concat_ref(message.key))

    result = env.gateway.submit([message])[message.key]

    assert result.status == "accepted" and len(result.parts) == len(expected) == 2
    got = sorted(received_by(env, message.phone, 2), key=lambda m: m.udh[5])
    assert [m.text(ucs2=False) for m in got] == [p.text for p in expected]
    delivered(env, list(result.parts))


def test_a_key_sent_again_is_answered_from_memory_not_resent(env: Env) -> None:
    message = OutgoingSms("t3:once", "+994501000005", "Once only.", NOW)
    first = env.gateway.submit([message, message])
    again = env.gateway.submit([message])
    assert first[message.key] == again[message.key]
    assert first[message.key].status == "accepted"
    received_by(env, message.phone, 1)
    time.sleep(1.5)  # fakesmsc prints what it received about once a second
    assert len([m for m in env.box.received() if m.receiver == message.phone]) == 1


def test_a_number_kannel_refuses_is_rejected_and_the_rest_accepted(env: Env) -> None:
    bad = OutgoingSms("t4:bad", "not-a-number", "Hello", NOW)
    good = OutgoingSms("t4:good", "+994501000006", "Hello", NOW)
    results = env.gateway.submit([bad, good])
    assert results[bad.key].status == "rejected"
    assert (results[bad.key].reason or "").startswith("400 ")
    assert results[good.key].status == "accepted"


def test_kannel_down_raises_gateway_unavailable(env: Env) -> None:
    closed = f"http://127.0.0.1:{free_port()}/cgi-bin/sendsms"
    with (
        KannelGateway(closed, "haqq", "x", env.base) as down,
        pytest.raises(GatewayUnavailable, match="cannot be reached"),
    ):
        down.submit([OutgoingSms("t5:down", "+994501000007", "Hello", NOW)])


def test_wrong_credentials_raise_gateway_unavailable_not_rejection(env: Env) -> None:
    with (
        KannelGateway(env.box.sendsms_url, env.box.username, "wrong", env.base) as gw,
        pytest.raises(GatewayUnavailable, match="403"),
    ):
        gw.submit([OutgoingSms("t5:auth", "+994501000008", "Hello", NOW)])


# --- what Kannel pushes ----------------------------------------------------------------------


def test_a_citizens_reply_lands_in_inbound_sms_and_nothing_is_texted_back(env: Env) -> None:
    env.box.inject_mo("994501000009", "9000", "Bəli 4821  razıyam")
    env.box.inject_mo("+994501000010", "9000", "Хорошо, согласен", ucs2=True)

    def rows() -> list[Any] | None:
        with env.engine.connect() as conn:
            got = list(conn.execute(select(inbound_sms).where(
                inbound_sms.c.phone.in_(["+994501000009", "+994501000010"])
            )).all())
        return got if len(got) == 2 else None

    by_phone = {r.phone: r for r in wait_for("two replies in inbound_sms", rows)}
    assert by_phone["+994501000009"].text == "Bəli 4821  razıyam"
    assert by_phone["+994501000010"].text == "Хорошо, согласен"
    for row in by_phone.values():
        assert row.gateway == "kannel" and row.status == "new"
        assert row.gateway_id.startswith("kannel:") and len(row.gateway_id) == len("kannel:") + 36
        assert row.received_at.tzinfo is not None
    time.sleep(1.5)  # a reply text would have reached the fake SMSC by now
    assert not [m for m in env.box.received() if m.receiver.endswith(("994501000009", "994501000010"))]


def test_malformed_or_unauthorised_reports_are_refused_and_write_nothing(env: Env) -> None:
    before = count(env, sms_receipts), count(env, inbound_sms)
    url = f"{env.base}/sms/kannel/dlr"
    good = {"id": "K:t6:x:1", "type": "1", "at": "1740823200", "token": TOKEN}
    cases = [
        ({k: v for k, v in good.items() if k != "id"}, 400, "'id' is missing"),
        ({**good, "type": "3"}, 400, "unknown DLR type"),
        ({**good, "type": "delivered"}, 400, "unknown DLR type"),
        ({**good, "at": "yesterday"}, 400, "'at'"),
        ({**good, "token": "wrong"}, 403, "token"),
        ({k: v for k, v in good.items() if k != "token"}, 403, "token"),
    ]
    with httpx.Client(timeout=5) as client:
        for params, status, error in cases:
            response = client.get(url, params=params)
            assert response.status_code == status, params
            assert error in response.json()["error"]
        response = client.post(f"{env.base}/sms/kannel/mo", data={"text": "hi", "token": TOKEN})
        assert response.status_code == 400 and "'from' is missing" in response.json()["error"]
    assert (count(env, sms_receipts), count(env, inbound_sms)) == before


def test_the_same_report_twice_is_stored_once(env: Env) -> None:
    params = {"id": "K:t7:x:1", "type": "2", "at": "2025-03-01 10:00:05", "smsc": "fake",
              "reply": "NACK/0x0000000b/Invalid Destination Address", "token": TOKEN}
    with httpx.Client(timeout=5) as client:
        first = client.get(f"{env.base}/sms/kannel/dlr", params=params)
        again = client.post(f"{env.base}/sms/kannel/dlr", data=params)
    assert first.status_code == again.status_code == 200
    assert first.content == again.content == b""
    [row] = receipts(env, ["K:t7:x:1"])
    assert row.status == "failed"
    assert row.at == datetime(2025, 3, 1, 10, 0, 5, tzinfo=UTC)
    assert row.detail == "type=2 smsc=fake reply=NACK/0x0000000b/Invalid Destination Address"


# --- the pure parts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("+994501234567", "+994501234567"),
        ("994501234567", "+994501234567"),
        ("00994501234567", "+994501234567"),
        ("0501234567", "+994501234567"),
        ("501234567", "+994501234567"),
        ("+994 50 123 45 67", "+994501234567"),
        ("9000", "9000"),
        ("HAQQ", "HAQQ"),
    ],
)
def test_phones_are_stored_as_haqq_stores_them(raw: str, stored: str) -> None:
    assert normalise_phone(raw) == stored


def test_a_sender_that_is_no_number_is_refused() -> None:
    with pytest.raises(Refused):
        normalise_phone("<script>")


def test_kannel_times_are_read_as_utc_unless_told() -> None:
    from zoneinfo import ZoneInfo

    assert kannel_time("1740823205") == datetime(2025, 3, 1, 10, 0, 5, tzinfo=UTC)
    assert kannel_time("2025-03-01 10:00:05") == datetime(2025, 3, 1, 10, 0, 5, tzinfo=UTC)
    assert kannel_time("2025-03-01 14:00:05", ZoneInfo("Asia/Baku")) == datetime(
        2025, 3, 1, 10, 0, 5, tzinfo=UTC
    )


def test_part_ids_are_safe_in_a_dlr_url() -> None:
    assert part_id("12ab:granted:1", 2) == "K:12ab:granted:1:2"
    hashed = part_id("a key/with spaces%", 1)
    assert hashed.startswith("KH:") and hashed.endswith(":1") and len(hashed) <= 80
    assert part_id("x" * 90, 3).startswith("KH:")


def test_fakesmsc_lines_are_parsed() -> None:
    line = "2026-01-01 00:00:00 [1] [0] DEBUG: Got message 3: <HAQQ +99450 udh %05%00%03%07%02%01 data ab+c>"
    sms = parse_fakesmsc_line(line)
    assert sms == FakeSms("HAQQ", "+99450", "udh", b"ab c", b"\x05\x00\x03\x07\x02\x01")
    assert parse_fakesmsc_line("INFO: fakesmsc starting") is None


# --- measuring ------------------------------------------------------------------------------


def test_measure_kannel_reports_throughput_and_round_trip(tmp_path: Path) -> None:
    kannel_or_skip()
    result = measure_kannel(30, workdir=tmp_path, app_in_process=True)
    assert result.accepted == result.messages == 30
    assert result.receipts == result.parts == 30
    assert result.messages_per_second > 0
    assert 0 <= result.dlr_median_ms <= result.dlr_p95_ms <= result.dlr_max_ms
    assert "msg/s" in result.summary()
