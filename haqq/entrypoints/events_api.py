"""The HTTP face through which registries push life events: SPDCI notify and OpenCRVS webhooks.

Routes of :func:`make_events_app`:

- ``POST /spdci/registry/notify``: a signed SPDCI ``notify`` envelope; answers the spec's
  ``Response`` (``message.ack_status`` ``ACK``, or ``ERR`` with ``message.error.code``).
- ``POST /spdci/registry/on-subscribe``: a registry's signed answer to haqq's subscribe; logged
  and acknowledged.
- ``POST /webhooks/opencrvs``: an OpenCRVS-style webhook signed with ``X-Hub-Signature``.

Accepted events go through :func:`haqq.pipeline.intake.parse_all` and
:func:`haqq.pipeline.intake.store` in one transaction (``engine.begin()``): a refused message
writes nothing. Every refusal is logged (structlog) with the channel, sender, code and reason.

Mounting it (the CLI does not yet): build the keys and the engine, then serve the app, e.g.::

    from haqq.adapters.events.keys import load_keys
    from haqq.adapters.store import db
    from haqq.entrypoints.events_api import make_events_app

    app = make_events_app(load_keys(), engine=db.make_engine())
    uvicorn.run(app, host="0.0.0.0", port=8080)        # or parent.mount("/events", app)
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from haqq.adapters.events import spdci, webhooks
from haqq.adapters.events.errors import EventRefused, Malformed
from haqq.adapters.events.keys import EventKeys
from haqq.adapters.events.subscribe import parse_on_subscribe
from haqq.adapters.store import messagelog
from haqq.domain.errors import HaqqError
from haqq.domain.events import LifeEvent
from haqq.entrypoints.events_openapi import (
    NOTIFY_REQUEST,
    NOTIFY_RESPONSES,
    ON_SUBSCRIBE_REQUEST,
    ON_SUBSCRIBE_RESPONSES,
    OPENCRVS_HEADERS,
    OPENCRVS_REQUEST,
    OPENCRVS_RESPONSES,
    _json_body,
)
from haqq.pipeline import intake
from haqq.ports import Exchange

log = structlog.get_logger()

#: Stores parsed events in one transaction, at ``now``, with the message that carried them (for
#: the message log); returns the intake report.
StoreEvents = Callable[[Sequence[LifeEvent], datetime, Exchange], intake.IntakeReport]


class EventsApiError(HaqqError):
    """The events app was built wrongly (neither or both of ``engine`` and ``store``)."""


def engine_store(engine: Engine) -> StoreEvents:
    """Store a batch in one ``engine.begin()`` transaction."""

    def store(batch: Sequence[LifeEvent], now: datetime, message: Exchange) -> intake.IntakeReport:
        with engine.begin() as conn:
            report = intake.store(conn, batch, received_at=now, wall=now)
            messagelog.append(conn, [message])
            return report

    return store


def _parse(raws: list[dict[str, Any]], where: str) -> list[LifeEvent]:
    report = intake.IntakeReport()
    parsed = intake.parse_all(((f"{where}#{n}", r) for n, r in enumerate(raws, 1)), report)
    if report.rejected:
        reasons = "; ".join(f"{w}: {why}" for w, why in report.rejected)
        raise Malformed("err.request.bad", reasons)
    return parsed


def _digest(body: bytes) -> str:
    """The message's SHA-256, base64: what the message log keeps as its hash."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def _claimed_sender(raw: object) -> object:
    header = raw.get("header") if isinstance(raw, dict) else None
    return header.get("sender_id") if isinstance(header, dict) else None


def make_events_app(
    keys: EventKeys, *, engine: Engine | None = None, store: StoreEvents | None = None,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """The app; events are written with ``engine`` or handed to ``store`` (exactly one)."""
    if store is not None and engine is None:
        save = store
    elif engine is not None and store is None:
        save = engine_store(engine)
    else:
        raise EventsApiError("make_events_app needs exactly one of engine= and store=")
    now_of = clock or (lambda: datetime.now(UTC))
    guard = spdci.ReplayGuard(timedelta(seconds=keys.max_age_seconds))
    app = FastAPI(title="haqq life events in", docs_url=None, redoc_url=None)

    def spdci_refused(exc: EventRefused, sender: object, correlation: str,
                      now: datetime, route: str) -> JSONResponse:
        log.warning("event message refused", channel="spdci", route=route, sender=sender,
                    code=exc.code, reason=exc.message, correlation_id=correlation)
        return JSONResponse(spdci.refusal(exc.code, exc.message, correlation, now),
                            status_code=exc.status)

    async def read_json(request: Request) -> object:
        try:
            return json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise Malformed("err.request.bad", f"the body is not JSON: {exc}") from None

    @app.post("/spdci/registry/notify", responses=NOTIFY_RESPONSES,
              openapi_extra=_json_body(NOTIFY_REQUEST))
    async def notify(request: Request) -> JSONResponse:
        now, correlation, raw = now_of(), uuid.uuid4().hex, None
        try:
            raw = await read_json(request)
            message = spdci.accept_notify(raw, keys=keys, now=now)
        except EventRefused as exc:
            return spdci_refused(exc, _claimed_sender(raw), correlation, now, "notify")
        try:
            guard.claim(message.sender_id, message.message_id, message.message_ts, now)
        except EventRefused as exc:
            return spdci_refused(exc, message.sender_id, correlation, now, "notify")
        try:
            batch = _parse(message.events, message.message_id)
            inbound = Exchange(
                message_id=message.message_id, direction="in", client=message.sender_id,
                service="spdci/registry/notify", user=message.sender_id,
                issue=message.transaction_id, at=now, status=200,
                request_hash=_digest(await request.body()), persons=len(batch),
            )
            report = await run_in_threadpool(save, batch, now, inbound)
        except EventRefused as exc:
            guard.release(message.sender_id, message.message_id)
            return spdci_refused(exc, message.sender_id, correlation, now, "notify")
        except Exception:
            guard.release(message.sender_id, message.message_id)
            log.exception("storing notified events failed", channel="spdci",
                          sender=message.sender_id, message_id=message.message_id)
            return JSONResponse(spdci.refusal("err.service.unavailable", "could not store",
                                              correlation, now), status_code=500)
        log.info("events notified", channel="spdci", sender=message.sender_id,
                 message_id=message.message_id, transaction_id=message.transaction_id,
                 accepted=report.accepted, duplicates=report.duplicates)
        return JSONResponse(spdci.ack(correlation, now))

    @app.post("/spdci/registry/on-subscribe", responses=ON_SUBSCRIBE_RESPONSES,
              openapi_extra=_json_body(ON_SUBSCRIBE_REQUEST))
    async def on_subscribe(request: Request) -> JSONResponse:
        now, correlation, raw = now_of(), uuid.uuid4().hex, None
        try:
            raw = await read_json(request)
            sender, _, message = spdci.verify_envelope(
                raw, action="on-subscribe", keys=keys, now=now)
            answers = parse_on_subscribe(message)
        except EventRefused as exc:
            return spdci_refused(exc, _claimed_sender(raw), correlation, now, "on-subscribe")
        log.info("subscription answered", channel="spdci", sender=sender, answers=answers)
        return JSONResponse(spdci.ack(correlation, now))

    @app.post("/webhooks/opencrvs", responses=OPENCRVS_RESPONSES,
              openapi_extra={**_json_body(OPENCRVS_REQUEST), "parameters": OPENCRVS_HEADERS})
    async def opencrvs(request: Request) -> JSONResponse:
        body, now = await request.body(), now_of()
        sender = keys.webhooks.get("opencrvs")
        try:
            if sender is None:
                raise Malformed("not_configured", "no secret is configured for opencrvs")
            webhooks.verify_hub_signature(body, request.headers.get("X-Hub-Signature"),
                                          sender.secret)
            raws = webhooks.to_events(webhooks.parse_body(body), source=sender.source)
            batch = _parse(raws, "opencrvs")
        except EventRefused as exc:
            code = "malformed" if exc.code == "err.request.bad" else exc.code
            log.warning("event message refused", channel="opencrvs", sender="opencrvs",
                        code=code, reason=exc.message)
            status = 404 if code == "not_configured" else exc.status
            return JSONResponse(webhooks.error_body(code, exc.message), status_code=status)
        inbound = Exchange(
            message_id=request.headers.get("X-Request-Id") or _digest(body)[:32], direction="in",
            client=sender.source, service="webhooks/opencrvs", user=sender.source, issue=None,
            at=now, status=200, request_hash=_digest(body), persons=len(batch),
        )
        report = await run_in_threadpool(save, batch, now, inbound)
        log.info("events notified", channel="opencrvs", sender="opencrvs",
                 event_ids=[b.event_id for b in batch], accepted=report.accepted,
                 duplicates=report.duplicates)
        return JSONResponse({"status": "accepted", "accepted": report.accepted,
                             "duplicates": report.duplicates})

    return app
