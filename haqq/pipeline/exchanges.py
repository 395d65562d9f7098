"""The partner bank and the SMS gateway as seen by the message log.

:class:`LoggedBank` and :class:`LoggedSms` stand in front of the real adapters and note every
exchange that carries something (a lookup, a request, a transfer, a text, an answer) as an
:class:`Exchange`; the worker writes the notes to the message log in the transaction that
records what the exchange did, so the log and the effects it explains land together. Empty
looks (no answers yet, no inbound text) are not exchanges worth a log entry.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Literal

from haqq.ports import (
    Account,
    AccountAnswer,
    AccountRequest,
    Bank,
    BankFile,
    DeliveryReceipt,
    Exchange,
    InboundSms,
    OutgoingSms,
    SmsGateway,
    SubmitResult,
    Transfer,
    TransferResult,
)

CLIENT = "haqq"


class _Notes:
    def __init__(self, sink: list[Exchange], wall: Callable[[], datetime], who: str) -> None:
        self.sink = sink
        self.wall = wall
        self.who = who

    def note(
        self, service: str, persons: int, *, direction: Literal["out", "in"] = "out",
        message_id: str | None = None, detail: str | None = None,
    ) -> None:
        self.sink.append(Exchange(
            message_id=message_id or str(uuid.uuid4()), direction=direction, client=CLIENT,
            service=f"{self.who}/{service}", user=CLIENT, issue=None, at=self.wall(),
            persons=persons, detail=detail,
        ))


class LoggedBank:
    """A :class:`Bank` that notes its exchanges in ``sink``."""

    def __init__(self, bank: Bank, sink: list[Exchange], wall: Callable[[], datetime]) -> None:
        self.inner = bank
        self.name = bank.name
        self._notes = _Notes(sink, wall, f"bank:{bank.name}")

    def find_accounts(self, fins: Sequence[str], *, as_of: datetime) -> Mapping[str, Account]:
        if not fins:
            return {}
        found = self.inner.find_accounts(fins, as_of=as_of)
        self._notes.note("find_accounts", len(fins))
        return found

    def request_accounts(self, requests: Sequence[AccountRequest]) -> None:
        if not requests:
            return
        self.inner.request_accounts(requests)
        self._notes.note("request_accounts", len(requests))

    def account_answers(self, keys: Sequence[str], *, as_of: datetime) -> Mapping[str, AccountAnswer]:
        answers = self.inner.account_answers(keys, as_of=as_of)
        done = sum(a.status != "pending" for a in answers.values())
        if done:
            self._notes.note("account_answers", done, direction="in")
        return answers

    def transfer(self, transfers: Sequence[Transfer]) -> Mapping[str, TransferResult]:
        if not transfers:
            return {}
        results = self.inner.transfer(transfers)
        self._notes.note("transfer", len(transfers))
        return results

    def send_file(self, name: str, content: bytes, *, at: datetime) -> None:
        self.inner.send_file(name, content, at=at)
        payments = content.count(b"<CdtTrfTxInf>")
        self._notes.note("send_file", payments, message_id=name, detail=f"pain.001, {len(content):,} bytes")

    def files(self, *, as_of: datetime) -> Sequence[BankFile]:
        found = self.inner.files(as_of=as_of)
        for f in found:
            payments = f.content.count(b"<TxInfAndSts>") + f.content.count(b"<TxDtls>")
            self._notes.note("files", payments, direction="in", message_id=f.name,
                             detail=f"{f.kind}, {len(f.content):,} bytes")
        return found

    def ready_files(self, *, as_of: datetime) -> Sequence[str]:
        return self.inner.ready_files(as_of=as_of)  # a look, not an exchange worth logging

    def ack_files(self, names: Sequence[str]) -> None:
        self.inner.ack_files(names)


class LoggedSms:
    """An :class:`SmsGateway` that notes its exchanges in ``sink``."""

    def __init__(self, sms: SmsGateway, sink: list[Exchange], wall: Callable[[], datetime]) -> None:
        self.inner = sms
        self.name = sms.name
        self._notes = _Notes(sink, wall, f"sms:{sms.name}")

    def submit(self, messages: Sequence[OutgoingSms]) -> Mapping[str, SubmitResult]:
        if not messages:
            return {}
        results = self.inner.submit(messages)
        self._notes.note("submit", len(messages))
        return results

    def inbound(self, *, as_of: datetime, limit: int = 10_000) -> Sequence[InboundSms]:
        received = self.inner.inbound(as_of=as_of, limit=limit)
        if received and limit > 1:  # a look with limit 1 only asks whether there is any
            self._notes.note("inbound", len(received), direction="in")
        return received

    def receipts(self, *, as_of: datetime, limit: int = 10_000) -> Sequence[DeliveryReceipt]:
        received = self.inner.receipts(as_of=as_of, limit=limit)
        if received and limit > 1:
            self._notes.note("receipts", len(received), direction="in")
        return received

    def ack(self, ids: Sequence[str]) -> None:
        self.inner.ack(ids)
