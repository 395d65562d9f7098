"""The OpenAPI description of the events endpoints (:mod:`haqq.entrypoints.events_api`): what
each route takes and answers. The routes read the raw request themselves, since a refusal must
be the protocol's own answer, never FastAPI's 422; these schemas document it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from haqq.adapters.events import spdci, webhooks

# ---- what the routes take and answer, for the OpenAPI description (the routes read the raw
# request themselves: a refusal must be the protocol's own answer, never FastAPI's 422) --------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SpdciError(_Body):
    code: str
    message: str


class SpdciAckMessage(_Body):
    ack_status: Literal["ACK"]
    timestamp: datetime
    correlation_id: str


class SpdciAck(_Body):
    """The spec's ``Response``: taken in."""

    message: SpdciAckMessage


class SpdciErrMessage(_Body):
    ack_status: Literal["ERR"]
    timestamp: datetime
    correlation_id: str
    error: SpdciError


class SpdciRefusal(_Body):
    """The spec's ``Response`` with ``ack_status`` ERR, plus ``errors`` (``HttpErrorResponse``)."""

    message: SpdciErrMessage
    errors: list[SpdciError]


class WebhookAccepted(_Body):
    status: Literal["accepted"]
    accepted: int
    duplicates: int


class WebhookErrorDetail(_Body):
    code: str
    message: str


class WebhookError(_Body):
    error: WebhookErrorDetail


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_NONEMPTY: dict[str, Any] = {"type": "string", "minLength": 1}
_MOMENT: dict[str, Any] = {"type": "string", "format": "date-time"}


def _spdci_envelope(action: str, message: dict[str, Any]) -> dict[str, Any]:
    """A signed SPDCI envelope (``{"signature", "header", "message"}``) of ``action``."""
    header = {
        "type": "object",
        "required": ["message_id", "message_ts", "action", "sender_id"],
        "properties": {
            "version": {"type": "string", "enum": [spdci.VERSION]},
            "message_id": _NONEMPTY,
            "message_ts": _MOMENT,
            "action": {"type": "string", "enum": [action]},
            "status": {"type": "string"},
            "sender_id": _NONEMPTY,
            "receiver_id": {"type": "string"},
            "total_count": {"type": "integer", "minimum": 0},
            "is_msg_encrypted": {"type": "boolean", "enum": [False]},
        },
    }
    signature = {**_NONEMPTY, "description": 'Signature: namespace="...", kidId="sender|key|algorithm", ...'}
    return {
        "type": "object",
        "required": ["signature", "header", "message"],
        "properties": {"signature": signature, "header": header, "message": message},
    }


_PERSON_ID: dict[str, Any] = {
    "type": "object",
    "required": ["identifier"],
    "properties": {"identifier_type": {"type": "string", "enum": ["UIN"]}, "identifier": _NONEMPTY},
}
NOTIFY_REQUEST = _spdci_envelope("notify", {
    "type": "object",
    "required": ["transaction_id", "notify_event"],
    "properties": {
        "transaction_id": _NONEMPTY,
        "notify_event": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["reference_id", "timestamp", "data"],
                "properties": {
                    "reference_id": _NONEMPTY,
                    "timestamp": _MOMENT,
                    "data": {
                        "type": "object",
                        "required": ["reg_event_type", "reg_records"],
                        "properties": {
                            "reg_event_type": _NONEMPTY,
                            "reg_record_type": {"type": "string"},
                            "reg_records": {
                                "type": "object",
                                "properties": {
                                    "identifier": _NONEMPTY,
                                    "parent1_identifier": _PERSON_ID,
                                    "parent2_identifier": _PERSON_ID,
                                    "spouse_identifier": _PERSON_ID,
                                    "personal_details": _PERSON_ID,
                                },
                            },
                        },
                    },
                },
            },
        },
    },
})
ON_SUBSCRIBE_REQUEST = _spdci_envelope("on-subscribe", {
    "type": "object",
    "required": ["subscribe_response"],
    "properties": {
        "transaction_id": {"type": "string"},
        "subscribe_response": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "reference_id": {"type": "string"},
                    "status": {"type": "string"},
                    "status_reason_code": {"type": "string"},
                    "subscriptions": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"code": {"type": "string"}}},
                    },
                },
            },
        },
    },
})
OPENCRVS_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["event"],
    "properties": {
        "id": {"type": "string"},
        "timestamp": _MOMENT,
        "event": {
            "type": "object",
            "required": ["hub", "context"],
            "properties": {
                "hub": {
                    "type": "object",
                    "required": ["topic"],
                    "properties": {"topic": {"type": "string", "enum": list(webhooks.TOPICS)}},
                },
                "context": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["resourceType", "entry"],
                        "properties": {
                            "resourceType": {"type": "string", "enum": ["Bundle"]},
                            "entry": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["resource"],
                                    "properties": {
                                        "fullUrl": {"type": "string"},
                                        "resource": {
                                            "type": "object",
                                            "required": ["resourceType"],
                                            "properties": {"resourceType": {"type": "string"},
                                                           "id": {"type": "string"}},
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
OPENCRVS_HEADERS = [
    {"name": "X-Hub-Signature", "in": "header", "required": True,
     "description": "sha256=<hex HMAC-SHA256 of the raw body with the shared secret>",
     "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"}},
    {"name": "X-Request-Id", "in": "header", "required": False,
     "description": "the message id kept in the message log", "schema": {"type": "string"}},
]


def _refusals(model: type[BaseModel], *pairs: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": model, "description": what} for status, what in pairs}


_SPDCI_REFUSED = (
    (400, "Refused: not the protocol's shape, or a field haqq cannot use"),
    (401, "Refused: missing or bad signature, unknown sender or receiver"),
    (422, "Refused: an event haqq does not take in"),
)
NOTIFY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": SpdciAck, "description": "The events are taken in"},
    **_refusals(SpdciRefusal, *_SPDCI_REFUSED,
                (409, "Refused: the message was already taken in"),
                (500, "The events could not be stored; send again")),
}
ON_SUBSCRIBE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": SpdciAck, "description": "The answer is taken note of"},
    **_refusals(SpdciRefusal, *_SPDCI_REFUSED),
}
OPENCRVS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": WebhookAccepted, "description": "The event is taken in"},
    **_refusals(WebhookError,
                (400, "Refused (malformed): not JSON, or not a notification haqq can read"),
                (401, "Refused: X-Hub-Signature missing or not matching the body"),
                (404, "No secret is configured for OpenCRVS"),
                (422, "Refused (unknown_event): a topic haqq does not take in")),
}


