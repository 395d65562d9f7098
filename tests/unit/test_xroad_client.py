"""The X-Road REST client against scripted security-server answers (an httpx transport):
the request it sends, the evidence it keeps, its typed errors, retries and circuit breaker."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from haqq.adapters.xroad.breaker import BreakerState, CircuitBreaker
from haqq.adapters.xroad.client import XRoadInstitutions, XRoadSettings
from haqq.adapters.xroad.directory import load_directory
from haqq.adapters.xroad.errors import (
    CircuitOpen,
    ProviderError,
    ProviderUnreachable,
    SecurityServerError,
    XRoadClientError,
)
from haqq.domain.errors import InstitutionError
from haqq.ports import Exchange, Service

AS_OF = datetime(2025, 5, 1, 9, 30, tzinfo=UTC)
Handler = Callable[[httpx.Request], httpx.Response]


def xroad_error(kind: str, status: int = 500) -> httpx.Response:
    return httpx.Response(
        status, headers={"X-Road-Error": kind, "Content-Type": "application/json; charset=utf-8"},
        content=orjson.dumps({"type": kind, "message": "scripted", "detail": str(uuid.uuid4())}),
    )


def answer(records: dict[str, object]) -> httpx.Response:
    return httpx.Response(
        200, headers={"X-Road-Request-Hash": "aGFzaA==", "X-Road-Id": "echoed"},
        content=orjson.dumps({"records": records}),
    )


class Script:
    """Answers in turn, recording every request."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(item, Exception):
            raise item
        return item


def client(script: Script, sleeps: list[float] | None = None, **settings: object) -> XRoadInstitutions:
    waits = sleeps if sleeps is not None else []
    return XRoadInstitutions(
        load_directory(),
        XRoadSettings(url="https://ss.example", **settings),  # type: ignore[arg-type]
        transport=lambda: httpx.MockTransport(script),
        sleep=waits.append,
        seed=7,
    )


def test_a_query_is_one_post_with_the_protocol_headers_and_keeps_the_evidence() -> None:
    script = Script(answer({"AAAAAA1": {"alive": True}}))
    result = client(script).query(
        Service.CIVIL_PERSON, ["AAAAAA1", "BBBBBB2", "AAAAAA1"], as_of=AS_OF,
        purpose="birth benefit", issue="case-x", user="AZ1234567",
    )
    [request] = script.requests
    assert request.method == "POST"
    assert request.url.path == "/r1/AZ/GOV/MOJ/CIVIL-REGISTRY/person/v1/persons/query"
    assert request.headers["X-Road-Client"] == "AZ/GOV/MLSPP/HAQQ"
    assert request.headers["X-Road-UserId"] == "AZ1234567"
    assert request.headers["X-Road-Issue"] == "case-x"
    uuid.UUID(request.headers["X-Road-Id"])
    body = orjson.loads(request.content)
    assert body["fins"] == ["AAAAAA1", "BBBBBB2"] and body["asOf"] == AS_OF.isoformat()
    assert result.records == {"AAAAAA1": {"alive": True}}
    assert result.message_id == "echoed"
    ex = result.exchange
    assert isinstance(ex, Exchange)
    assert ex.request_hash == "aGFzaA==" and ex.outcome == "ok" and ex.status == 200
    assert ex.service == "AZ/GOV/MOJ/CIVIL-REGISTRY/person" and ex.persons == 2
    assert ex.user == "AZ1234567" and ex.issue == "case-x"


def test_automatic_work_is_done_as_haqq() -> None:
    script = Script(answer({}))
    client(script).query(Service.TAX_INCOME, ["AAAAAA1"], as_of=AS_OF, purpose="p")
    assert script.requests[0].headers["X-Road-UserId"] == "haqq"
    assert "X-Road-Issue" not in script.requests[0].headers


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (xroad_error("Client.BadRequest", 400), XRoadClientError),
        (xroad_error("Server.ServerProxy.AccessDenied"), XRoadClientError),
        (xroad_error("Server.ServerProxy.UnknownService"), XRoadClientError),
        (xroad_error("Server.ServerProxy.NetworkError"), ProviderUnreachable),
        (xroad_error("Server.ServerProxy.ServiceFailed"), ProviderUnreachable),
        (xroad_error("Server.ClientProxy.OutdatedGlobalConf"), SecurityServerError),
        (httpx.Response(400, content=b'{"error": "fins: not a list"}'), ProviderError),
        (httpx.Response(503, content=b"busy"), ProviderError),
    ],
)
def test_errors_are_typed_institution_errors_with_their_exchange(
    response: httpx.Response, kind: type[Exception]
) -> None:
    script = Script(response)
    with pytest.raises(kind) as caught:
        client(script, attempts=1).query(Service.CIVIL_PERSON, ["AAAAAA1"], as_of=AS_OF, purpose="p")
    assert isinstance(caught.value, InstitutionError)
    ex = caught.value.exchange
    assert isinstance(ex, Exchange) and ex.outcome != "ok"
    assert ex.message_id == script.requests[0].headers["X-Road-Id"]


def test_transient_failures_are_retried_with_growing_jittered_waits() -> None:
    script = Script(
        xroad_error("Server.ServerProxy.NetworkError"), httpx.ConnectError("refused"),
        answer({"AAAAAA1": {"x": 1}}),
    )
    sleeps: list[float] = []
    result = client(script, sleeps, attempts=3, backoff=0.1).query(
        Service.CIVIL_PERSON, ["AAAAAA1"], as_of=AS_OF, purpose="p"
    )
    assert result.records == {"AAAAAA1": {"x": 1}}
    assert len(script.requests) == 3
    # One X-Road-Id for the message, however many times it is sent.
    assert len({r.headers["X-Road-Id"] for r in script.requests}) == 1
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.1 and 0 <= sleeps[1] <= 0.2


def test_permanent_failures_are_not_retried() -> None:
    script = Script(xroad_error("Server.ServerProxy.AccessDenied"))
    sleeps: list[float] = []
    with pytest.raises(XRoadClientError):
        client(script, sleeps, attempts=5).query(Service.CIVIL_PERSON, ["AAAAAA1"], as_of=AS_OF, purpose="p")
    assert len(script.requests) == 1 and sleeps == []


def test_the_breaker_opens_per_institution_and_sends_nothing_while_open() -> None:
    script = Script(xroad_error("Server.ServerProxy.NetworkError"))
    xr = client(script, attempts=1, breaker_threshold=2, breaker_reset=60)
    for _ in range(2):
        with pytest.raises(ProviderUnreachable):
            xr.query(Service.TAX_INCOME, ["AAAAAA1"], as_of=AS_OF, purpose="p")
    sent = len(script.requests)
    with pytest.raises(CircuitOpen) as caught:
        xr.query(Service.TAX_INCOME, ["AAAAAA1"], as_of=AS_OF, purpose="p")
    assert len(script.requests) == sent
    assert isinstance(caught.value.exchange, Exchange)
    assert caught.value.exchange.outcome == "haqq.CircuitOpen"
    # Another institution is not affected.
    script.responses = [answer({})]
    xr.query(Service.CIVIL_PERSON, ["AAAAAA1"], as_of=AS_OF, purpose="p")


def test_breaker_half_opens_after_its_pause_and_closes_on_success() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, reset_after=10, clock=lambda: now[0])
    breaker.failed()
    assert breaker.state is BreakerState.CLOSED
    breaker.failed()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    now[0] = 10.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.failed()
    assert breaker.state is BreakerState.OPEN
    now[0] = 20.0
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()


def test_an_unusable_answer_is_a_provider_error() -> None:
    script = Script(httpx.Response(200, content=b"<html>oops</html>"))
    with pytest.raises(ProviderError, match="unusable"):
        client(script).query(Service.CIVIL_PERSON, ["AAAAAA1"], as_of=AS_OF, purpose="p")
