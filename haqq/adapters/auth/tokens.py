"""Bearer tokens: JSON Web Tokens, verified with configurable keys.

Embedded mode: haqq issues and verifies its own tokens (HS256 with a secret it keeps in the
database, or ``HAQQ_JWT_SECRET``). Production: a ministry's identity provider issues them and
haqq only verifies, with the provider's public key (``HAQQ_JWT_PUBLIC_KEY``, a PEM file; RS256,
ES256 or EdDSA), issuer (``HAQQ_JWT_ISSUER``) and audience (``HAQQ_JWT_AUDIENCE``).

Claims haqq reads: ``sub`` (who), ``role`` (caseworker, supervisor, auditor, citizen, system),
``name`` (shown in logs and pages), ``fin`` (a citizen's FIN), ``exp``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import jwt
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from haqq.adapters.store.schema import service_keys
from haqq.domain.access import NotSignedIn, Principal, Role
from haqq.domain.errors import HaqqError

LOCAL_ISSUER = "haqq"
AUDIENCE = "haqq"
ASYMMETRIC = ["RS256", "ES256", "EdDSA"]


class TokenConfigError(HaqqError):
    """Token settings that cannot work (an unreadable key file, a key of the wrong kind)."""


@dataclass(frozen=True)
class TokenKeys:
    """How tokens are checked and, for the local issuer, made."""

    #: HS256 secret of the local issuer (None when an outside provider issues tokens).
    secret: str | None
    #: The outside provider's public key (PEM), when it issues tokens.
    public_key: str | None = None
    issuer: str = LOCAL_ISSUER
    audience: str = AUDIENCE
    #: How long a token the local issuer makes stays good.
    lifetime: timedelta = timedelta(hours=8)

    @property
    def can_issue(self) -> bool:
        return self.secret is not None

    def issue(self, principal: Principal, *, now: datetime) -> str:
        """A signed token for ``principal`` (local issuer only)."""
        if self.secret is None:
            raise TokenConfigError("tokens come from the identity provider here; haqq cannot issue them")
        claims: dict[str, object] = {
            "sub": principal.subject, "role": principal.role.value, "name": principal.name,
            "iss": self.issuer, "aud": self.audience, "iat": int(now.timestamp()),
            "exp": int((now + self.lifetime).timestamp()),
        }
        if principal.fin:
            claims["fin"] = principal.fin
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def verify(self, token: str) -> Principal:
        """The principal a token names; :class:`NotSignedIn` saying why when it does not hold."""
        key, algorithms = (self.public_key, ASYMMETRIC) if self.public_key else (self.secret, ["HS256"])
        if key is None:
            raise NotSignedIn("no key to check tokens with")
        try:
            claims = jwt.decode(
                token, key, algorithms=algorithms, audience=self.audience, issuer=self.issuer,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise NotSignedIn("the token has expired: sign in again") from exc
        except jwt.InvalidTokenError as exc:
            raise NotSignedIn(f"the token does not hold: {exc}") from exc
        try:
            role = Role(str(claims.get("role", "")))
        except ValueError as exc:
            raise NotSignedIn(f"the token names no known role ({claims.get('role')!r})") from exc
        fin = claims.get("fin")
        if role is Role.CITIZEN and not fin:
            raise NotSignedIn("a citizen's token must carry their FIN")
        return Principal(subject=str(claims["sub"]), role=role, name=str(claims.get("name") or claims["sub"]),
                         fin=str(fin) if fin else None)


def local_secret(engine: Engine, *, now: datetime) -> str:
    """The local issuer's secret, made on first use and kept in the database, so every process
    (and every restart) of one installation signs and checks with the same one."""
    with engine.begin() as conn:
        found = conn.execute(select(service_keys.c.value).where(service_keys.c.name == "jwt")).scalar()
        if found:
            return str(found)
    made = secrets.token_urlsafe(48)
    try:
        with engine.begin() as conn:
            conn.execute(insert(service_keys).values(name="jwt", value=made, created_at=now))
    except IntegrityError:
        pass  # another process made it first: use theirs
    with engine.begin() as conn:
        return str(conn.execute(select(service_keys.c.value).where(service_keys.c.name == "jwt")).scalar_one())


def token_keys(
    engine: Engine, *, now: datetime, secret: str | None = None, public_key: Path | None = None,
    issuer: str | None = None, audience: str | None = None,
) -> TokenKeys:
    """The configured keys: an outside provider's public key when given, else the local issuer."""
    if public_key is not None:
        try:
            pem = public_key.read_text()
        except OSError as exc:
            raise TokenConfigError(f"{public_key}: cannot read the identity provider's key: {exc}") from exc
        if "PUBLIC KEY" not in pem:
            raise TokenConfigError(f"{public_key}: not a PEM public key")
        return TokenKeys(secret=None, public_key=pem, issuer=issuer or LOCAL_ISSUER, audience=audience or AUDIENCE)
    return TokenKeys(secret=secret or local_secret(engine, now=now), issuer=issuer or LOCAL_ISSUER,
                     audience=audience or AUDIENCE)
