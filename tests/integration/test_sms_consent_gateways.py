"""Consent, the Kazakh way, through the gateways operators run: the request goes out over SMPP
(to an SMSC fake speaking SMPP 3.4 on loopback) or Kannel's HTTP sendsms (a real Kannel and its
fake SMSC), the citizen's "bəli <code>" comes back as a mobile-originated SMS, and the case is
assigned. A delivery receipt marks the request delivered."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from haqq.adapters.sms.kannel_box import mo_url, serving
from haqq.adapters.store import db
from haqq.adapters.store.schema import cases, citizen_choices, inbound_sms, notifications
from haqq.bootstrap import Haqq, Settings, build
from haqq.entrypoints.sms_api import make_sms_app
from tests.helpers import (
    country_copy,
    country_event,
    country_query,
    generated_country,
    rows,
    run_at,
    take_events,
)
from tests.kannel_box import running_box
from tests.smsc_fake import SmscFake

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def country_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, population=20_000, seed=5)


def ask_consent(app: Haqq, country: Path) -> tuple[dict[str, Any], datetime]:
    """A funeral allowance asked of a surviving spouse: the consent request, once sent."""
    deaths = country_query(
        country,
        "SELECT d.fin FROM persons d JOIN persons s ON s.fin = d.spouse_fin WHERE d.death_date IS NOT NULL "
        "AND s.phone IS NOT NULL AND s.death_date IS NULL AND s.resident = 1 ORDER BY d.fin LIMIT 6",
    )
    events = [country_event(country, d["fin"], "death_registered") for d in deaths]
    assert events, "the country has no death with a surviving spouse"
    # On the wall clock: a real gateway stamps what it pushes with the time it came.
    at = datetime.now(UTC)
    take_events(app, events, at)
    run_at(app, at, at + timedelta(minutes=1))
    asked = rows(app.engine, notifications, notifications.c.kind == "consent_request",
                 notifications.c.status.in_(("sent", "delivered")))
    assert asked, rows(app.engine, notifications)
    return asked[0], at


def until(check: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.05)


def the_answer_assigns(app: Haqq, request: dict[str, Any], at: datetime, gateway: str) -> None:
    case = rows(app.engine, cases, cases.c.id == request["case_id"])[0]
    assert case["state"] != "awaiting_consent" and case["consent_answer"] == "yes", (case, rows(app.engine, inbound_sms))
    taken = rows(app.engine, inbound_sms, inbound_sms.c.case_id == request["case_id"])
    assert [(t["status"], t["gateway"], t["outcome"]) for t in taken] == [("applied", gateway, "yes")]
    assert [(c["choice"], c["channel"]) for c in rows(app.engine, citizen_choices)] == [("consent", "sms")]


def test_consent_over_smpp(store_url: str, country_file: Path, tmp_path: Path) -> None:
    with SmscFake(receipt_delay=0.0) as fake:
        app = build(Settings(database_url=store_url, country=country_copy(country_file, tmp_path),
                             sms_gateway="smpp", smpp_url=f"smpp://haqq:secret@127.0.0.1:{fake.port}",
                             sms_quiet="off"))
        db.upgrade(app.engine)
        request, at = ask_consent(app, country_file)
        phone = request["phone"]
        assert fake.texts(phone.lstrip("+")) or fake.texts(phone), "the SMSC got no request"
        fake.mo(phone, f" bəli {request['reply_code']} ", data_coding=0x08)

        def answered() -> bool:
            run_at(app, at + timedelta(minutes=5))
            return bool(rows(app.engine, inbound_sms))

        until(answered, "the citizen's answer through the SMSC")
        run_at(app, at + timedelta(minutes=6), at + timedelta(days=1))
        the_answer_assigns(app, request, at, "smpp")
        # The SMSC's receipt for the request marked it delivered.
        until(lambda: (run_at(app, at + timedelta(days=1, minutes=1)) or True) and rows(
            app.engine, notifications, notifications.c.id == request["id"])[0]["status"] == "delivered",
            "the delivery receipt")
        app.sms.close()  # type: ignore[attr-defined]


def test_consent_over_kannel(store_url: str, country_file: Path, tmp_path: Path) -> None:
    app = build(Settings(database_url=store_url, country=country_copy(country_file, tmp_path), sms_quiet="off"))
    db.upgrade(app.engine)
    web = Starlette(routes=[Mount("/sms", app=make_sms_app(app.engine))])
    with serving(web) as port:
        base = f"http://127.0.0.1:{port}"
        with running_box(tmp_path / "kannel", mo_url=mo_url(base)) as box:
            app.sms = box.gateway(base)
            request, at = ask_consent(app, country_file)
            phone = request["phone"]
            box.wait_received(1)
            box.inject_mo(phone, "HAQQ", f"Bəli {request['reply_code']}", ucs2=True)
            until(lambda: bool(rows(app.engine, inbound_sms)), "the citizen's answer through Kannel")
            now = datetime.now(UTC)
            run_at(app, now + timedelta(minutes=5), now + timedelta(days=1))
            the_answer_assigns(app, request, at, "kannel")
            parts = request["parts"]
            until(lambda: (run_at(app, at + timedelta(days=1, minutes=1)) or True) and rows(
                app.engine, notifications, notifications.c.id == request["id"])[0]["status"] == "delivered",
                f"the delivery reports of the request's {parts} parts")
