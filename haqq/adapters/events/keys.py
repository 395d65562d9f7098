"""Keys and secrets of the senders haqq takes events from, and haqq's own signing key.

Loaded from a YAML file (``load_keys(path)``) or from ``HAQQ_EVENT_KEYS``: the path of such a
file, or the YAML/JSON text itself when it starts with ``{``. Shape::

    receiver_id: haqq.gov.az            # haqq's id; a notify addressed elsewhere is refused
    max_age_seconds: 300                 # freshness window of message_ts (replay protection)
    spdci:                               # per SPDCI sender_id
      civilregistry.gov.az:
        source: civil_registry           # the haqq event source its events are stored under
        key_id: k1
        algorithm: ed25519               # or hmac-sha256
        key: <base64 of the raw 32-byte Ed25519 public key | the shared secret>
    webhooks:
      opencrvs: {source: opencrvs, secret: <shared secret of X-Hub-Signature>}
    signer:                              # haqq's own key, to sign subscribe requests
      sender_id: haqq.gov.az
      key_id: h1
      algorithm: ed25519
      key: <base64 of the raw 32-byte Ed25519 private key | the shared secret>

No key is built in: test keys live in the tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from haqq.adapters.events.errors import KeysError

ENV_VAR = "HAQQ_EVENT_KEYS"

Algorithm = Literal["ed25519", "hmac-sha256"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SenderKey(_Frozen):
    """How to verify one SPDCI sender, and the haqq source its events are stored under."""

    source: str = Field(min_length=1, max_length=40)
    key_id: str = Field(min_length=1)
    algorithm: Algorithm
    key: str = Field(min_length=1)


class SignerKey(_Frozen):
    """haqq's own identity and key for the messages it signs (subscribe requests)."""

    sender_id: str = Field(min_length=1)
    key_id: str = Field(min_length=1)
    algorithm: Algorithm
    key: str = Field(min_length=1)


class WebhookSender(_Frozen):
    source: str = Field(min_length=1, max_length=40)
    secret: str = Field(min_length=16)


class EventKeys(_Frozen):
    receiver_id: str | None = None
    max_age_seconds: int = Field(default=300, gt=0)
    max_skew_seconds: int = Field(default=60, ge=0)
    spdci: dict[str, SenderKey] = Field(default_factory=dict)
    webhooks: dict[str, WebhookSender] = Field(default_factory=dict)
    signer: SignerKey | None = None


def parse_keys(data: object, *, where: str = "keys") -> EventKeys:
    if not isinstance(data, Mapping):
        raise KeysError(f"{where}: expected a mapping at the top level")
    try:
        return EventKeys.model_validate(dict(data))
    except ValidationError as exc:
        raise KeysError(f"{where}: {exc}") from None


def load_keys(path: Path | None = None, *, env: Mapping[str, str] | None = None) -> EventKeys:
    """The keys from ``path``, else from ``HAQQ_EVENT_KEYS`` (a path or inline YAML/JSON)."""
    if path is None:
        value = (os.environ if env is None else env).get(ENV_VAR, "").strip()
        if not value:
            raise KeysError(f"no keys file given and {ENV_VAR} is not set")
        if value.startswith("{"):
            try:
                return parse_keys(yaml.safe_load(value), where=ENV_VAR)
            except yaml.YAMLError as exc:
                raise KeysError(f"{ENV_VAR}: not valid YAML/JSON: {exc}") from None
        path = Path(value)
    try:
        text = path.read_text(encoding="utf-8")
        return parse_keys(yaml.safe_load(text), where=str(path))
    except OSError as exc:
        raise KeysError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise KeysError(f"{path}: not valid YAML: {exc}") from None
