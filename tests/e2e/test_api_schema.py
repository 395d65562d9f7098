"""The API (``/api/v1``) against its own OpenAPI document, with Schemathesis: generated requests
(valid and malformed) from a supervisor's token against the whole app in-process on a replayed
year, and the real records' pages read by every role. No answer is a 5xx; every answer conforms
to the documented status codes, content types and schemas. And the document itself: every
operation is named, answers a typed 200/201, and documents its 4xx errors as the Problem shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import Engine
from starlette.applications import Starlette

from haqq.adapters.auth.tokens import token_keys
from haqq.adapters.events.keys import EventKeys
from haqq.adapters.store import db
from haqq.domain.access import Principal, Role
from haqq.entrypoints.cli_serve import make_http_app
from tests.e2e.console_server import Picks, ReplayedYear, pick_records, store_copy

pytestmark = pytest.mark.slow

OPENAPI = "/api/v1/openapi.json"
#: Generated requests per operation (valid and malformed); about thirty operations.
MAX_EXAMPLES = 30


@dataclass(frozen=True)
class Api:
    app: Starlette
    engine: Engine
    picks: Picks
    store: Path

    def bearer(self, role: Role, *, fin: str | None = None) -> dict[str, str]:
        keys = token_keys(self.engine, now=datetime.now(UTC))
        principal = Principal(subject=f"fuzz-{role.value}", role=role, name=f"Fuzz {role.value}", fin=fin)
        return {"Authorization": f"Bearer {keys.issue(principal, now=datetime.now(UTC))}"}


@pytest.fixture(scope="module")
def api(replayed_year: ReplayedYear, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    own = store_copy(replayed_year, tmp_path_factory.mktemp("api-schema"))
    engine = db.make_engine(f"sqlite:///{own.store}")
    db.upgrade(engine)
    try:
        yield Api(app=make_http_app(engine, EventKeys()), engine=engine,
                  picks=pick_records(own.store, own.country), store=own.store)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def api_schema(api: Api) -> Any:
    return schemathesis.openapi.from_asgi(OPENAPI, api.app)


@pytest.fixture(scope="module")
def openapi(api_schema: Any) -> dict[str, Any]:
    """The document as the app serves it at /api/v1/openapi.json."""
    document: dict[str, Any] = api_schema.raw_schema
    assert document.get("openapi", "").startswith("3."), document.get("openapi")
    return document


# --- generated requests ---------------------------------------------------------------------------
#
# Driven through Hypothesis directly, one operation after another: schemathesis' pytest
# integration for a schema from a fixture (``schemathesis.pytest.from_fixture``) reads
# ``request.node._nodeid``, which pytest 9 no longer has.
#
# Every check of schemathesis runs but ``positive_data_acceptance``: a request the schema admits
# may still break a rule of the domain (a grant with no amount) and get a 422 naming the field.


def fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> tuple[str, str] | None:
    """Generated requests of ``mode`` against one operation: None, or (a one-line summary, the
    whole report with a curl command to reproduce)."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate, Phase.shrink])
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (no parameters, no body): nothing to test
        assert mode is GenerationMode.NEGATIVE, operation.label
        return None
    except (Exception, BaseExceptionGroup) as exc:  # a failed check: go on with the other operations
        found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
        kinds = "; ".join(sorted({f"{getattr(e, 'code', '')} {getattr(e, 'title', type(e).__name__)}".strip()
                                  for e in found}))
        return f"{operation.label} ({mode.value}): {kinds}", f"{operation.label} ({mode.value}):\n{exc}"
    return None


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_generated_requests_conform(api: Api, api_schema: Any, mode: GenerationMode) -> None:
    """No 5xx, and every answer is what the document says, for requests that fit the document
    (positive) and ones that do not (negative), as a supervisor (who may do most)."""
    headers = api.bearer(Role.SUPERVISOR)
    failures: list[tuple[str, str]] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        failure = fuzz(operation, mode, headers)
        if failure:
            failures.append(failure)
    assert operations >= 20
    assert not failures, (f"{len(failures)} of {operations} operations:\n" + "\n".join(f[0] for f in failures)
                          + "\n\n" + "\n\n".join(f[1] for f in failures))


# --- the real records -----------------------------------------------------------------------------


def _reads(picks: Picks) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    """GET operations with path parameters that name real records (generated ones rarely do)."""
    return [
        ("/persons/{fin}", {"fin": picks.stoppable_fin}, {}),
        ("/persons/{fin}", {"fin": picks.denied_fin}, {}),
        ("/persons/{fin}/benefits", {"fin": picks.stoppable_fin}, {}),
        ("/persons/{fin}/access-log", {"fin": picks.stoppable_fin}, {}),
        ("/cases/{case_id}", {"case_id": picks.stoppable_case}, {}),
        ("/cases/{case_id}", {"case_id": picks.denied_case}, {}),
        ("/cases/{case_id}/decision", {"case_id": picks.stoppable_case}, {}),
        ("/cases/{case_id}/decision", {"case_id": picks.denied_case}, {}),
        ("/review/{case_id}", {"case_id": picks.review_case}, {}),
        ("/programs/{program_id}", {"program_id": picks.stoppable_program}, {}),
        ("/cases", {}, {"fin": picks.stoppable_fin}),
        ("/entitlements", {}, {"fin": picks.stoppable_fin}),
        ("/payments", {}, {"fin": picks.stoppable_fin, "limit": "5"}),
        ("/notifications", {}, {"fin": picks.stoppable_fin}),
        ("/events", {}, {"fin": picks.stoppable_fin}),
        ("/persons", {}, {"q": picks.stoppable_fin}),
        ("/review", {}, {"limit": "5"}),
        ("/appeals", {}, {}),
        ("/programs", {}, {}),
        ("/dashboard", {}, {}),
    ]


@pytest.mark.parametrize("role", [Role.CASEWORKER, Role.SUPERVISOR, Role.AUDITOR, Role.CITIZEN])
def test_real_records_conform(api: Api, api_schema: Any, role: Role) -> None:
    """Every role reads the real records: 200 or a documented refusal, in the documented shape.
    Officials get 200 on what they may read; a citizen gets their own records and a 403 on
    another's."""
    picks = api.picks
    fin = picks.stoppable_fin if role is Role.CITIZEN else None
    headers = api.bearer(role, fin=fin)
    statuses: dict[str, int] = {}
    for path, path_parameters, query in _reads(picks):
        operation = api_schema[path]["GET"]
        case = operation.Case(path_parameters=path_parameters, query=query)
        response = case.call_and_validate(headers=headers)
        statuses[case.formatted_path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")] = \
            response.status_code
    if role in (Role.CASEWORKER, Role.SUPERVISOR):
        assert {k: v for k, v in statuses.items() if v != 200} == {}
    if role is Role.CITIZEN:
        assert statuses[f"/persons/{picks.stoppable_fin}"] == 200, statuses
        assert statuses[f"/persons/{picks.denied_fin}"] == 403, statuses
        assert statuses[f"/cases/{picks.denied_case}"] == 403, statuses


def test_no_token_is_401_in_the_problem_shape(api: Api, api_schema: Any) -> None:
    operation = api_schema["/persons/{fin}"]["GET"]
    response = operation.Case(path_parameters={"fin": api.picks.stoppable_fin}).call()
    assert response.status_code == 401
    assert response.json()["code"] == "not_signed_in"
    assert response.headers.get("www-authenticate") in (["Bearer"], "Bearer")


# --- the document ---------------------------------------------------------------------------------


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref: str = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = document
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def _is_typed(document: dict[str, Any], schema_: dict[str, Any]) -> bool:
    """A schema that says what comes back: an object with properties, an array of typed items,
    or a choice of typed schemas; not ``{}`` (anything)."""
    node = _resolve(document, schema_)
    if "anyOf" in node or "oneOf" in node or "allOf" in node:
        return all(_is_typed(document, s) for s in node.get("anyOf", node.get("oneOf", node.get("allOf", []))))
    if node.get("type") == "object":
        return bool(node.get("properties")) or isinstance(node.get("additionalProperties"), dict)
    if node.get("type") == "array":
        return _is_typed(document, node.get("items", {}))
    return "type" in node or "enum" in node or "const" in node


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "patch", "delete"):
                yield f"{method.upper()} {path}", operation


def test_every_operation_is_named_typed_and_documents_its_errors(openapi: dict[str, Any]) -> None:
    problems: list[str] = []
    names: dict[str, str] = {}
    for label, operation in _operations(openapi):
        op_id = operation.get("operationId")
        if not op_id:
            problems.append(f"{label}: no operationId")
        elif op_id in names:
            problems.append(f"{label}: operationId {op_id} is also {names[op_id]}'s")
        else:
            names[op_id] = label
        if not operation.get("summary") and not operation.get("description"):
            problems.append(f"{label}: no summary or description")
        responses: dict[str, Any] = operation.get("responses", {})
        ok = [s for s in ("200", "201") if s in responses]
        if not ok:
            problems.append(f"{label}: documents no 200 or 201")
        for status in ok:
            content = _resolve(openapi, responses[status]).get("content", {})
            body = content.get("application/json", {}).get("schema")
            if body is None or not _is_typed(openapi, body):
                problems.append(f"{label}: its {status} answer has no typed JSON schema ({body})")
        errors = {s: r for s, r in responses.items() if s.startswith("4")}
        if not errors:
            problems.append(f"{label}: documents no 4xx error")
        if op_id != "signIn" and "401" not in errors:
            problems.append(f"{label}: needs a token but does not document 401")
        for status, response in errors.items():
            body = _resolve(openapi, response).get("content", {}).get("application/json", {}).get("schema")
            shape = _resolve(openapi, body) if body else {}
            if set(shape.get("required", ())) < {"error", "code"} or \
                    {"error", "code"} - set(shape.get("properties", {})):
                problems.append(f"{label}: its {status} is not documented as the Problem shape ({body})")
            elif not str(body.get("$ref", "")).endswith("Problem"):
                problems.append(f"{label}: its {status} is a Problem-like shape, not the Problem schema ({body})")
    assert not problems, "\n".join(problems)
    assert len(names) >= 20, sorted(names)
