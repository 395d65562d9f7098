"""The SMPP gateway against a fake SMSC speaking real SMPP 3.4 over a loopback socket.

No mocks: every test puts real PDUs on a TCP connection (see ``tests/smsc_fake.py``).
"""

from __future__ import annotations

import socket
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TypeVar

import pytest

from haqq.adapters.sms.smpp import (
    SmppGateway,
    decode_text,
    parse_receipt,
    receipt_status,
)
from haqq.domain import sms
from haqq.ports import DeliveryReceipt, GatewayUnavailable, OutgoingSms, SmsGateway
from tests.smsc_fake import SmscFake

pytestmark = pytest.mark.timeout(15)

T = TypeVar("T")
Connect = Callable[..., SmppGateway]
AT = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
LATIN = "Your application was received. Reply YES 4821 to confirm."
AZERI = "Müraciətiniz qəbul edildi. Təsdiq üçün 'bəli 4821' yazın."
RUSSIAN = (
    "Уважаемый гражданин! Ваше заявление на назначение пособия по рождению ребёнка принято. "
    "Решение будет принято в течение десяти рабочих дней. Для подтверждения согласия "
    "ответьте на это сообщение словом «да» и кодом 4821. Спасибо."
)


def now() -> datetime:
    return datetime.now(UTC)


def sms_to(key: str, phone: str, text: str) -> OutgoingSms:
    return OutgoingSms(key=key, phone=phone, text=text, at=AT)


def wait_for(probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 3.0) -> T:
    deadline = time.monotonic() + timeout
    value = probe()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.02)
        value = probe()
    return value


@pytest.fixture
def fake() -> Iterator[SmscFake]:
    with SmscFake() as f:
        yield f


@pytest.fixture
def connect() -> Iterator[Connect]:
    made: list[SmppGateway] = []

    def make(smsc: SmscFake, **kwargs: object) -> SmppGateway:
        options: dict[str, object] = {"timeout": 2.0} | kwargs
        password = str(options.pop("password", smsc.password))
        gw = SmppGateway(smsc.host, smsc.port, smsc.system_id, password, **options)  # type: ignore[arg-type]
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.close()


def receipts_for(gw: SmppGateway, count: int) -> list[DeliveryReceipt]:
    got = wait_for(lambda: list(gw.receipts(as_of=now())), lambda r: len(r) >= count)
    assert len(got) == count, got
    return got


# -- submitting -----------------------------------------------------------------------------


def test_latin_gsm7_and_azerbaijani_ucs2_go_as_one_part_each(
    fake: SmscFake, connect: Connect
) -> None:
    gw: SmsGateway = connect(fake)  # the port, statically
    assert gw.name == "smpp"
    results = gw.submit(
        [sms_to("lat", "+994501110001", LATIN), sms_to("az", "+994501110002", AZERI)]
    )

    assert {k: r.status for k, r in results.items()} == {"lat": "accepted", "az": "accepted"}
    lat, az = fake.parts
    assert results["lat"].parts == (lat.message_id,) and results["lat"].gateway_id == lat.message_id
    assert results["az"].parts == (az.message_id,)
    # GSM-7 as unpacked septets with data_coding 0; Azerbaijani needs UCS-2 (data_coding 8).
    assert (lat.data_coding, lat.esm_class, lat.udh) == (0x00, 0x00, b"")
    assert lat.short_message == LATIN.encode("ascii")
    assert (az.data_coding, az.esm_class, az.udh) == (0x08, 0x00, b"")
    assert az.short_message == AZERI.encode("utf-16-be")
    assert fake.texts("994501110001") == [LATIN] and fake.texts("994501110002") == [AZERI]
    # International number, alphanumeric sender, a receipt asked for.
    assert (lat.dest_addr_ton, lat.source_addr, lat.source_addr_ton) == (1, "HAQQ", 5)
    assert lat.registered_delivery == 1


def test_long_russian_text_is_split_with_udh_and_joins_back(
    fake: SmscFake, connect: Connect
) -> None:
    gw = connect(fake)
    result = gw.submit([sms_to("ru-1", "+994501110003", RUSSIAN)])["ru-1"]

    total = sms.segments(RUSSIAN)
    assert total == 4
    assert result.status == "accepted"
    assert result.parts == tuple(p.message_id for p in fake.parts)
    assert result.gateway_id == result.parts[0]
    ref = zlib.crc32(b"ru-1") % 256
    for seq, part in enumerate(fake.parts, start=1):
        assert part.esm_class & 0x40 and part.data_coding == 0x08
        assert part.udh == bytes((0x05, 0x00, 0x03, ref, total, seq))
        assert len(part.short_message) <= 140
    assert fake.texts("994501110003") == [RUSSIAN]

    # The same key sent again (another process, say) puts the very same bytes on the wire.
    again = connect(fake)
    again.submit([sms_to("ru-1", "+994501110003", RUSSIAN)])
    first, second = fake.parts[:total], fake.parts[total:]
    assert [p.short_message for p in first] == [p.short_message for p in second]


def test_a_key_is_sent_once_per_call_and_a_final_answer_is_remembered(
    fake: SmscFake, connect: Connect
) -> None:
    gw = connect(fake)
    twice = [sms_to("k", "+994501110004", LATIN), sms_to("k", "+994501110004", LATIN)]
    first = gw.submit(twice)
    assert len(fake.submits) == 1 and first["k"].status == "accepted"
    assert gw.submit([sms_to("k", "+994501110004", LATIN)]) == first
    assert len(fake.submits) == 1


def test_rejected_number_is_rejected_with_the_smpp_reason(connect: Connect) -> None:
    with SmscFake(reject_prefix="99470") as fake:
        gw = connect(fake)
        results = gw.submit(
            [sms_to("bad", "+994701234567", LATIN), sms_to("good", "+994501110005", LATIN)]
        )
    assert results["bad"].status == "rejected"
    assert results["bad"].reason is not None
    assert "ESME_RINVDSTADR" in results["bad"].reason and "0x0B" in results["bad"].reason
    assert results["bad"].parts == ()
    assert results["good"].status == "accepted"


def test_throttling_is_retry(connect: Connect) -> None:
    with SmscFake(throttle_every=2) as fake:
        gw = connect(fake)
        results = gw.submit([sms_to(f"t{i}", f"+99450111010{i}", LATIN) for i in range(4)])
    assert [results[f"t{i}"].status for i in range(4)] == ["accepted", "retry"] * 2
    assert "ESME_RTHROTTLED" in (results["t1"].reason or "")
    assert "t1" not in fake.texts("994501110101")


def test_once_throttled_the_rest_of_the_batch_waits(connect: Connect) -> None:
    with SmscFake(throttle_every=3) as fake:
        gw = connect(fake, window=1)
        results = gw.submit([sms_to(f"w{i}", f"+99450111020{i}", LATIN) for i in range(5)])
        assert len(fake.submits) == 3
    assert [results[f"w{i}"].status for i in range(5)] == ["accepted"] * 2 + ["retry"] * 3
    assert "not sent" in (results["w4"].reason or "")
    # Retry results are not remembered: offered again, they are sent.
    with SmscFake() as other:
        gw2 = connect(other)
        assert gw2.submit([sms_to("w4", "+994501110204", LATIN)])["w4"].status == "accepted"


def test_text_that_cannot_be_encoded_is_rejected_without_sending(
    fake: SmscFake, connect: Connect
) -> None:
    gw = connect(fake)
    result = gw.submit([sms_to("empty", "+994501110006", "")])["empty"]
    assert result.status == "rejected" and "encode" in (result.reason or "")
    assert fake.submits == []


def test_wrong_password_is_gateway_unavailable(fake: SmscFake, connect: Connect) -> None:
    gw = connect(fake, password="wrong")
    with pytest.raises(GatewayUnavailable, match="ESME_RBINDFAIL"):
        gw.submit([sms_to("x", "+994501110007", LATIN)])
    assert fake.binds == [("haqq", False)]
    assert fake.submits == []


def test_smsc_down_is_gateway_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gw = SmppGateway("127.0.0.1", port, "haqq", "secret", timeout=1.0)
    with pytest.raises(GatewayUnavailable, match="cannot reach"):
        gw.submit([sms_to("x", "+994501110008", LATIN)])
    with pytest.raises(GatewayUnavailable):
        gw.receipts(as_of=now())
    gw.close()


def test_an_smsc_that_stops_answering_mid_batch(connect: Connect) -> None:
    with SmscFake(silent_after=2) as fake:
        gw = connect(fake, timeout=0.3)
        results = gw.submit([sms_to(f"h{i}", f"+99450111060{i}", LATIN) for i in range(4)])
        assert [results[f"h{i}"].status for i in range(4)] == ["accepted"] * 2 + ["retry"] * 2
        assert "may have been sent" in (results["h2"].reason or "")
        # The link was given up; the next call binds again, and finds the SMSC still hung.
        with pytest.raises(GatewayUnavailable, match="before any answer"):
            gw.submit([sms_to("h9", "+994501110609", LATIN)])
        assert len(fake.binds) == 2


# -- receipts ---------------------------------------------------------------------------------


def test_receipts_for_every_part_answered_on_ack(fake: SmscFake, connect: Connect) -> None:
    gw = connect(fake)
    results = gw.submit(
        [sms_to("ru", "+994501110010", RUSSIAN), sms_to("lat", "+994501110011", LATIN)]
    )
    part_ids = set(results["ru"].parts) | set(results["lat"].parts)
    assert len(part_ids) == 5

    receipts = receipts_for(gw, 5)
    assert {r.message_id for r in receipts} == part_ids
    assert {r.status for r in receipts} == {"delivered"}
    assert all(r.at.tzinfo is not None and "DELIVRD" in (r.detail or "") for r in receipts)
    assert len({r.receipt_id for r in receipts}) == 5

    # Held, not answered, until acknowledged.
    time.sleep(0.1)
    assert len(fake.unanswered("receipt")) == 5
    gw.ack([r.receipt_id for r in receipts])
    assert wait_for(lambda: fake.unanswered("receipt"), lambda u: not u) == []
    assert gw.receipts(as_of=now()) == []


@pytest.mark.parametrize("tlvs", [True, False], ids=["tlv", "text-only"])
def test_failed_and_expired_receipts(connect: Connect, tlvs: bool) -> None:
    stats = {"99455": "UNDELIV", "99451": "EXPIRED", "99477": "REJECTD"}
    with SmscFake(stat_by_prefix=stats, receipt_tlvs=tlvs) as fake:
        gw = connect(fake)
        results = gw.submit(
            [
                sms_to("u", "+994551110012", LATIN),
                sms_to("e", "+994511110013", LATIN),
                sms_to("r", "+994771110014", LATIN),
                sms_to("d", "+994501110015", LATIN),
            ]
        )
        by_id = {r.message_id: r for r in receipts_for(gw, 4)}
    status = {k: by_id[res.gateway_id].status for k, res in results.items()}
    assert status == {"u": "failed", "e": "expired", "r": "failed", "d": "delivered"}
    assert by_id[results["u"].gateway_id].detail == "stat:UNDELIV err:034"


def test_receipt_text_format_and_states() -> None:
    text = (
        "id:1234567890 sub:001 dlvrd:000 submit date:2503010900 done date:2503010905 "
        "stat:EXPIRED err:027 text:Salam"
    )
    parsed = parse_receipt(text, None, None)
    assert parsed is not None
    assert (parsed.message_id, parsed.stat, parsed.err, parsed.done) == (
        "1234567890", "EXPIRED", "027", "2503010905",
    )  # fmt: skip
    # The TLVs win over the text (the text's id may be written differently).
    tlv = parse_receipt(text, "499602D2", 2)
    assert tlv is not None and (tlv.message_id, tlv.stat) == ("499602D2", "DELIVRD")
    assert parse_receipt("no receipt here", None, None) is None
    mapping = {
        "DELIVRD": "delivered", "UNDELIV": "failed", "REJECTD": "failed", "DELETED": "failed",
        "UNKNOWN": "failed", "EXPIRED": "expired", "ENROUTE": "buffered", "ACCEPTD": "buffered",
    }  # fmt: skip
    assert {stat: receipt_status(stat) for stat in mapping} == mapping


def test_unacked_receipts_are_redelivered_after_reconnect_and_acked_ones_are_not(
    fake: SmscFake, connect: Connect
) -> None:
    first = connect(fake)
    first.submit([sms_to(f"a{i}", f"+99450111030{i}", LATIN) for i in range(4)])
    receipts = receipts_for(first, 4)
    stored, not_stored = receipts[:2], receipts[2:]
    first.ack([r.receipt_id for r in stored])
    wait_for(lambda: fake.unanswered("receipt"), lambda u: len(u) == 2)
    first.close()  # gone before storing the other two (a crash, as far as the SMSC knows)

    second = connect(fake)
    again = receipts_for(second, 2)
    assert {r.receipt_id for r in again} == {r.receipt_id for r in not_stored}
    assert {r.message_id for r in again} == {r.message_id for r in not_stored}
    assert all(d.sends == 2 for d in fake.unanswered("receipt"))
    second.ack([r.receipt_id for r in again])
    assert wait_for(lambda: fake.unanswered(), lambda u: not u) == []
    time.sleep(0.1)
    assert second.receipts(as_of=now()) == []


def test_a_dropped_link_is_bound_again_and_held_receipts_are_not_doubled(connect: Connect) -> None:
    with SmscFake(resend_after=0.3) as fake:
        gw = connect(fake)
        gw.submit([sms_to("d1", "+994501110401", LATIN), sms_to("d2", "+994501110402", LATIN)])
        held = receipts_for(gw, 2)
        time.sleep(0.45)  # the SMSC sends them again on the same session
        assert sorted(gw.receipts(as_of=now()), key=str) == sorted(held, key=str)
        fake.drop()  # and the network fails
        time.sleep(0.05)
        result = gw.submit([sms_to("d3", "+994501110403", LATIN)])["d3"]
        assert result.status == "accepted"
        assert fake.binds == [("haqq", True), ("haqq", True)]
        got = receipts_for(gw, 3)
        assert {r.receipt_id for r in held} < {r.receipt_id for r in got}
        gw.ack([r.receipt_id for r in got])
        assert wait_for(lambda: fake.unanswered(), lambda u: not u) == []


# -- inbound ----------------------------------------------------------------------------------


def test_mo_in_ucs2_through_inbound_answered_on_ack(fake: SmscFake, connect: Connect) -> None:
    gw = connect(fake)
    assert gw.inbound(as_of=now()) == []  # binds
    fake.mo("+994501234567", "bəli 4821", data_coding=0x08)
    got = wait_for(lambda: list(gw.inbound(as_of=now())), bool)
    assert [(m.phone, m.text) for m in got] == [("+994501234567", "bəli 4821")]
    assert got[0].received_at.tzinfo is not None
    assert len(fake.unanswered("mo")) == 1
    gw.ack([got[0].gateway_id])
    assert wait_for(lambda: fake.unanswered("mo"), lambda u: not u) == []
    assert gw.inbound(as_of=now()) == []


def test_mo_in_gsm7_and_in_concatenated_parts(fake: SmscFake, connect: Connect) -> None:
    gw = connect(fake)
    gw.inbound(as_of=now())
    fake.mo("+994501234568", "YES 4821 {ok} @ 10€", data_coding=0x00)
    long_reply = "Bəli, razıyam. Xahiş edirəm ödənişi kartıma köçürün. Kod: 4821. " * 2
    fake.mo("+994501234569", long_reply, data_coding=0x08, part_chars=60)
    assert len(fake.unanswered("mo")) == 4  # 1 + 3 parts
    got = wait_for(lambda: list(gw.inbound(as_of=now())), lambda m: len(m) >= 2)
    assert sorted((m.phone, m.text) for m in got) == [
        ("+994501234568", "YES 4821 {ok} @ 10€"),
        ("+994501234569", long_reply),
    ]
    gw.ack([m.gateway_id for m in got])
    assert wait_for(lambda: fake.unanswered("mo"), lambda u: not u) == []


def test_inbound_not_acked_is_handed_on_again_after_reconnect(
    fake: SmscFake, connect: Connect
) -> None:
    first = connect(fake)
    first.inbound(as_of=now())
    fake.mo("+994501234570", "bəli 4821")
    assert wait_for(lambda: list(first.inbound(as_of=now())), bool)
    first.close()
    second = connect(fake)
    got = wait_for(lambda: list(second.inbound(as_of=now())), bool)
    assert [m.text for m in got] == ["bəli 4821"]
    second.ack([m.gateway_id for m in got])
    assert wait_for(lambda: fake.unanswered(), lambda u: not u) == []


def test_decode_by_data_coding() -> None:
    assert decode_text(0x00, bytes([0x00, 0x02, 0x1B, 0x65, 0x41])) == "@$€A"
    assert decode_text(0x08, "ə".encode("utf-16-be")) == "ə"
    assert decode_text(0x03, "é".encode("latin-1")) == "é"


# -- keep-alive -------------------------------------------------------------------------------


def test_enquire_link_keeps_the_session(fake: SmscFake, connect: Connect) -> None:
    gw = connect(fake, enquire_link_interval=0.2)
    gw.inbound(as_of=now())  # binds
    gw.inbound(as_of=now())  # recent traffic: no need to ask
    assert fake.enquire_links == 0
    time.sleep(0.3)  # idle for longer than the interval
    gw.inbound(as_of=now())
    assert fake.enquire_links == 1
    # The SMSC asks too, and is answered when the gateway next reads.
    fake.ping()
    time.sleep(0.05)
    gw.receipts(as_of=now())
    assert wait_for(lambda: fake.enquire_link_resps, lambda n: n == 1) == 1
    assert gw.submit([sms_to("e2", "+994501110502", LATIN)])["e2"].status == "accepted"
    assert fake.binds == [("haqq", True)] and fake.bound_sessions == 1
