"""The SPDCI message signature (``MsgSignature``): an HTTP-signature-like string over the
canonical JSON of ``{header, message}``.

The spec's form (registry_core_api_v1.0.0.yaml, ``components.schemas.MsgSignature``)::

    Signature: namespace="spdci", kidId="{sender_id}|{unique_key_id}|{algorithm}",
      algorithm="ed25519", created="1606970629", expires="1607030629",
      headers="(created) (expires) digest", signature="Base64(signing content)"

haqq's exact scheme (the spec names the parameters, not the bytes; this fixes them):

- body: ``json.dumps({"header": header, "message": message}, sort_keys=True,
  separators=(",", ":"), ensure_ascii=False)`` in UTF-8 (``message`` is ``null`` if absent);
- ``digest``: ``SHA-256=`` + standard base64 of SHA-256(body);
- signing content: ``"(created): {created}\\n(expires): {expires}\\ndigest: {digest}"`` (UTF-8),
  the lines in the order of ``headers``, which must be exactly those three;
- ``signature``: standard base64 of Ed25519(signing content) with the sender's key (the spec's
  example algorithm), or of HMAC-SHA256(secret, signing content) for ``hmac-sha256``;
- ``kidId`` (``keyId`` is read too) is ``sender_id|key_id|algorithm`` and must match the
  envelope's ``header.sender_id`` and the configured key; ``created`` must not be in the
  future beyond the allowed skew, ``expires`` not in the past.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from haqq.adapters.events.errors import Unauthenticated
from haqq.adapters.events.keys import SenderKey, SignerKey

NAMESPACE = "spdci"
COVERED = ("(created)", "(expires)", "digest")
_PARAM = re.compile(r'\s*([A-Za-z]+)\s*=\s*"([^"]*)"\s*(?:,|$)')

MISSING = "err.signature.missing"
INVALID = "err.signature.invalid"


@dataclass(frozen=True, slots=True)
class SignatureParams:
    sender_id: str
    key_id: str
    algorithm: str
    created: int
    expires: int
    headers: tuple[str, ...]
    signature: bytes


def canonical_body(header: Any, message: Any) -> bytes:
    text = json.dumps(
        {"header": header, "message": message},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return text.encode("utf-8")


def digest(body: bytes) -> str:
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def signing_content(created: int, expires: int, body_digest: str) -> bytes:
    return f"(created): {created}\n(expires): {expires}\ndigest: {body_digest}".encode()


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Unauthenticated(INVALID, f"{what} is not base64") from None


def _raw_sign(algorithm: str, key: str, content: bytes) -> bytes:
    if algorithm == "hmac-sha256":
        return hmac.new(key.encode("utf-8"), content, hashlib.sha256).digest()
    private = Ed25519PrivateKey.from_private_bytes(_b64(key, "the signing key"))
    return private.sign(content)


def sign(
    header: Any, message: Any, signer: SignerKey, *, created: datetime,
    ttl: timedelta = timedelta(minutes=5),
) -> str:
    """The ``signature`` value for an envelope of ``header`` and ``message``."""
    start = int(created.timestamp())
    end = int((created + ttl).timestamp())
    content = signing_content(start, end, digest(canonical_body(header, message)))
    value = base64.b64encode(_raw_sign(signer.algorithm, signer.key, content)).decode("ascii")
    kid = f"{signer.sender_id}|{signer.key_id}|{signer.algorithm}"
    return (
        f'Signature: namespace="{NAMESPACE}", kidId="{kid}", algorithm="{signer.algorithm}", '
        f'created="{start}", expires="{end}", headers="{" ".join(COVERED)}", '
        f'signature="{value}"'
    )


def parse_signature(value: object) -> SignatureParams:
    """The parameters of a signature string; :class:`Unauthenticated` if absent or garbled."""
    if value is None or value == "":
        raise Unauthenticated(MISSING, "the envelope has no signature")
    if not isinstance(value, str):
        raise Unauthenticated(INVALID, "signature must be a string")
    text = value.strip()
    if text.lower().startswith("signature:"):
        text = text[len("signature:"):]
    params: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _PARAM.match(text, pos)
        if match is None:
            raise Unauthenticated(INVALID, f"signature is not name=\"value\" pairs at {pos}")
        params[match.group(1)] = match.group(2)
        pos = match.end()
    kid = params.get("kidId", params.get("keyId"))
    needed = {"kidId": kid, **{k: params.get(k) for k in
              ("algorithm", "created", "expires", "headers", "signature")}}
    absent = [k for k, v in needed.items() if not v]
    if absent or kid is None:
        raise Unauthenticated(INVALID, f"signature lacks {', '.join(absent)}")
    if params.get("namespace", NAMESPACE) != NAMESPACE:
        raise Unauthenticated(INVALID, f"signature namespace must be {NAMESPACE!r}")
    parts = kid.split("|")
    if len(parts) != 3 or not all(parts):
        raise Unauthenticated(INVALID, "kidId must be sender_id|key_id|algorithm")
    if parts[2] != params["algorithm"]:
        raise Unauthenticated(INVALID, "kidId and algorithm name different algorithms")
    try:
        created, expires = int(params["created"]), int(params["expires"])
    except ValueError:
        raise Unauthenticated(INVALID, "created and expires must be Unix seconds") from None
    return SignatureParams(
        parts[0], parts[1], params["algorithm"], created, expires,
        tuple(params["headers"].split()), _b64(params["signature"], "signature"),
    )


def verify(
    params: SignatureParams, header: Any, message: Any, key: SenderKey, *,
    now: datetime, skew: timedelta,
) -> None:
    """Check ``params`` against the envelope and the sender's key, or raise Unauthenticated."""
    if params.key_id != key.key_id or params.algorithm != key.algorithm:
        raise Unauthenticated(INVALID, f"unknown key {params.key_id}|{params.algorithm}")
    if params.headers != COVERED:
        raise Unauthenticated(INVALID, f"headers must be {' '.join(COVERED)!r}")
    moment = now.timestamp()
    if params.created > moment + skew.total_seconds():
        raise Unauthenticated(INVALID, "signature created in the future")
    if params.expires < moment - skew.total_seconds() or params.expires <= params.created:
        raise Unauthenticated(INVALID, "signature expired")
    content = signing_content(
        params.created, params.expires, digest(canonical_body(header, message))
    )
    if key.algorithm == "hmac-sha256":
        expected = hmac.new(key.key.encode("utf-8"), content, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, params.signature):
            raise Unauthenticated(INVALID, "signature does not verify")
        return
    try:
        public = Ed25519PublicKey.from_public_bytes(_b64(key.key, "the sender's public key"))
        public.verify(params.signature, content)
    except (InvalidSignature, ValueError):
        raise Unauthenticated(INVALID, "signature does not verify") from None
