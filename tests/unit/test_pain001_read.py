"""Reading a pain.001.001.09 credit transfer initiation back: the bank's side of haqq's files.

A written run reads back to the very same :class:`PaymentRun` (with and without the XSD), and
every kind of broken file is a :class:`MalformedBankFile` that names what is wrong.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from haqq.adapters.bank import iso20022, iso20022_read
from haqq.adapters.bank.iso20022 import (
    CreditTransfer,
    MalformedBankFile,
    PaymentRun,
    credit_transfer_file,
    credit_transfer_initiation,
)
from haqq.domain.errors import HaqqError
from haqq.domain.iban import make_iban
from tests.helpers import TEST_DEBTOR

DATA = Path(__file__).resolve().parents[1] / "data" / "iso20022"
PAIN_001_XSD = DATA / "pain.001.001.09.xsd"
BAKU = timezone(timedelta(hours=4))

DEBTOR = TEST_DEBTOR


def transfer(n: int, amount: int = 45_000) -> CreditTransfer:
    return CreditTransfer(
        end_to_end_id=f"HAQQ-PAY-{n:08d}",
        amount_minor=amount,
        creditor_name=f"Aygün Məmmədova {n}",
        creditor_iban=make_iban("AZ", f"HAQB{n:020d}"),
        creditor_bic="HAQBAZ22" if n % 2 else None,
        remittance=f"Uşaq doğulmasına görə birdəfəlik müavinət, ödəniş {n}" if n % 3 else "",
    )


def run(transfers: tuple[CreditTransfer, ...]) -> PaymentRun:
    return PaymentRun(
        message_id="HAQQ-RUN-2026-05-01",
        created_at=datetime(2026, 5, 1, 9, 30, tzinfo=BAKU),
        debtor=DEBTOR,
        requested_execution=date(2026, 5, 4),
        transfers=transfers,
        payment_info_id="HAQQ-RUN-2026-05-01-1",
    )


RUN = run((transfer(1), transfer(2, 1), transfer(3, 30_050), transfer(4, 10**11)))
FILE = credit_transfer_file(RUN)


def test_the_model_is_one_class_whichever_module_it_is_imported_from() -> None:
    assert iso20022.PaymentRun is iso20022_read.PaymentRun
    assert iso20022.CreditTransfer is iso20022_read.CreditTransfer
    assert iso20022.Debtor is iso20022_read.Debtor


@pytest.mark.parametrize("schema", [None, PAIN_001_XSD])
def test_a_written_run_reads_back_the_same(schema: Path | None) -> None:
    back = credit_transfer_initiation(FILE, schema=schema)
    assert back == RUN
    assert back.transfers[3].amount_minor == 100_000_000_000
    assert back.transfers[1].creditor_bic is None and back.transfers[0].creditor_bic == "HAQBAZ22"
    assert back.transfers[2].remittance == "" and back.transfers[0].remittance.startswith("Uşaq")
    assert back.created_at.utcoffset() == timedelta(hours=4)


def test_a_large_run_reads_back_in_order() -> None:
    many = tuple(transfer(n, 100 + n) for n in range(1, 3_001))
    back = credit_transfer_initiation(credit_transfer_file(run(many)))
    assert back.transfers == many
    assert sum(t.amount_minor for t in back.transfers) == sum(100 + n for n in range(1, 3_001))


def test_a_zero_amount_is_read_for_the_bank_to_refuse() -> None:
    one = credit_transfer_file(run((transfer(1, 1),)))
    zero = one.replace(b">0.01<", b">0.00<")
    assert zero.count(b">0.00<") == 3  # the amount and both control sums
    assert credit_transfer_initiation(zero).transfers[0].amount_minor == 0


def edit(old: bytes, new: bytes, xml: bytes = FILE) -> bytes:
    assert old in xml, old
    return xml.replace(old, new, 1)


def without(tag: bytes, xml: bytes = FILE) -> bytes:
    start = xml.index(b"<" + tag + b">")
    end = xml.index(b"</" + tag + b">", start) + len(tag) + 3
    return xml[:start] + xml[end:]


SECOND_INFO = FILE.replace(
    b"</PmtInf>", b"</PmtInf>" + FILE[FILE.index(b"<PmtInf>") : FILE.index(b"</PmtInf>") + 9]
)


@pytest.mark.parametrize(
    ("xml", "words"),
    [
        (b"not xml at all", "not well-formed"),
        (FILE[:-40], "not well-formed"),
        (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "x">]><d>&e;</d>', "DTDs and entities"),
        (FILE.replace(b"pain.001.001.09", b"pain.001.001.03"), "root element"),
        (
            edit(b"<CstmrCdtTrfInitn>", b"<CstmrPmtStsRpt>").replace(
                b"</CstmrCdtTrfInitn>", b"</CstmrPmtStsRpt>"
            ),
            "not CstmrCdtTrfInitn",
        ),
        (without(b"GrpHdr"), "GrpHdr is missing"),
        (without(b"EndToEndId"), "PmtId/EndToEndId is missing (in CdtTrfTxInf number 1)"),
        (edit(b"<EndToEndId>HAQQ-PAY-00000002", b"<EndToEndId>" + b"X" * 36), "longer than 35"),
        (without(b"Cdtr"), "Cdtr/Nm is missing (in CdtTrfTxInf number 1)"),
        (without(b"CdtrAcct"), "CdtrAcct/Id/IBAN is missing"),
        (edit(b">0.01<", b">0.011<"), "no amount in minor units (in CdtTrfTxInf number 2)"),
        (edit(b">0.01<", b">lots<"), "'lots' is no amount"),
        (edit(b'<InstdAmt Ccy="AZN">0.01', b"<InstdAmt>0.01"), "no ISO 4217 currency"),
        (
            edit(b"<NbOfTxs>4</NbOfTxs>", b"<NbOfTxs>5</NbOfTxs>"),
            "GrpHdr/NbOfTxs says 5 but the file has 4",
        ),
        (edit(b"<NbOfTxs>4</NbOfTxs>", b"<NbOfTxs>four</NbOfTxs>"), "not a number of transactions"),
        (
            edit(b"<CtrlSum>1000000750.51</CtrlSum>", b"<CtrlSum>1000000750.50</CtrlSum>"),
            "GrpHdr/CtrlSum is 100000075050",
        ),
        (
            edit(
                b"<NbOfTxs>4</NbOfTxs><CtrlSum>1000000750.51</CtrlSum><PmtTpInf>",
                b"<NbOfTxs>3</NbOfTxs><PmtTpInf>",
            ),
            "PmtInf/NbOfTxs says 3",
        ),
        (SECOND_INFO, "more than one PmtInf"),
        (without(b"ReqdExctnDt"), "PmtInf/ReqdExctnDt is missing"),
        (edit(b"<PmtMtd>TRF</PmtMtd>", b"<PmtMtd>CHK</PmtMtd>"), "only TRF"),
        (
            edit(b"<CreDtTm>2026-05-01T09:30:00+04:00", b"<CreDtTm>2026-05-01T09:30:00"),
            "has no UTC offset",
        ),
        (without(b"DbtrAgt"), "DbtrAgt/FinInstnId/BICFI is missing"),
        (without(b"InitgPty"), "organisation id"),
    ],
)
def test_broken_files_raise_a_typed_error_naming_the_fault(xml: bytes, words: str) -> None:
    with pytest.raises(MalformedBankFile) as caught:
        credit_transfer_initiation(xml)
    assert words in str(caught.value)
    assert isinstance(caught.value, HaqqError)


def test_every_transfer_missing_leaves_no_transaction() -> None:
    start, end = FILE.index(b"<CdtTrfTxInf>"), FILE.rindex(b"</CdtTrfTxInf>") + 14
    with pytest.raises(MalformedBankFile, match="CdtTrfTxInf is missing"):
        credit_transfer_initiation(FILE[:start] + FILE[end:])


def test_text_instead_of_bytes_is_refused() -> None:
    with pytest.raises(MalformedBankFile, match="expected bytes"):
        credit_transfer_initiation(FILE.decode())  # type: ignore[arg-type]


def test_with_the_schema_a_violation_is_named() -> None:
    broken = edit(b"<ChrgBr>DEBT</ChrgBr>", b"<ChrgBr>NOPE</ChrgBr>")
    assert credit_transfer_initiation(broken).transfers == RUN.transfers  # not read without it
    with pytest.raises(MalformedBankFile, match="breaks pain.001.001.09.xsd"):
        credit_transfer_initiation(broken, schema=PAIN_001_XSD)


def test_names_come_back_as_the_writer_cleaned_them() -> None:
    messy = replace(transfer(1), creditor_name="  Aygün \t  Məmmədova  ", remittance="a\x01b")
    back = credit_transfer_initiation(credit_transfer_file(run((messy,))))
    assert back.transfers[0].creditor_name == "Aygün Məmmədova"
    assert back.transfers[0].remittance == "a b"
