"""Signing in: argon2 accounts, the local issuer's tokens (one secret per installation, kept in
the store), and tokens from an outside identity provider checked with its public key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy import Engine, select

from haqq.adapters.auth.passwords import AccountError, accounts, add_account, sign_in
from haqq.adapters.auth.tokens import TokenConfigError, TokenKeys, local_secret, token_keys
from haqq.adapters.store import db
from haqq.adapters.store.schema import officials
from haqq.domain.access import NotSignedIn, Principal, Role
from haqq.domain.errors import InvalidFin

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_passwords_are_kept_as_argon2_hashes_only(engine: Engine) -> None:
    with engine.begin() as conn:
        add_account(conn, "aynur", "correct horse", role=Role.CASEWORKER, name="Aynur M.", fin=None, now=NOW)
        stored = conn.execute(select(officials.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    with engine.begin() as conn:
        who = sign_in(conn, "aynur", "correct horse")
        assert (who.subject, who.role, who.name) == ("aynur", Role.CASEWORKER, "Aynur M.")
        for user, password in (("aynur", "wrong horse"), ("nobody", "correct horse")):
            with pytest.raises(NotSignedIn, match="wrong username or password"):
                sign_in(conn, user, password)


def test_accounts_refuse_what_cannot_work(engine: Engine) -> None:
    with engine.begin() as conn:
        add_account(conn, "c1", "long enough", role=Role.CITIZEN, name="x", fin="5ZK7N2R", now=NOW)
    with engine.begin() as conn:
        with pytest.raises(AccountError, match="already"):
            add_account(conn, "c1", "long enough", role=Role.CITIZEN, name="x", fin="5ZK7N2R", now=NOW)
        with pytest.raises(AccountError, match="at least 8"):
            add_account(conn, "c2", "short", role=Role.CASEWORKER, name="x", fin=None, now=NOW)
        with pytest.raises(AccountError, match="FIN"):
            add_account(conn, "c3", "long enough", role=Role.CITIZEN, name="x", fin=None, now=NOW)
        with pytest.raises(InvalidFin):
            add_account(conn, "c4", "long enough", role=Role.CITIZEN, name="x", fin="nope", now=NOW)
    with engine.begin() as conn:
        add_account(conn, "c1", "another password", role=Role.CITIZEN, name="x", fin="5ZK7N2R", now=NOW, replace=True)
        assert [a.username for a in accounts(conn)] == ["c1"]
        assert sign_in(conn, "c1", "another password").fin == "5ZK7N2R"


def test_one_secret_per_installation(store_url: str) -> None:
    """Two processes (here two engines) of one installation sign and check with the same key."""
    first, second = db.make_engine(store_url), db.make_engine(store_url)
    db.upgrade(first)
    secret = local_secret(first, now=NOW)
    assert local_secret(second, now=NOW) == secret and len(secret) > 40
    token = token_keys(first, now=NOW).issue(Principal("aynur", Role.CASEWORKER, "Aynur"), now=datetime.now(UTC))
    assert token_keys(second, now=NOW).verify(token).subject == "aynur"
    first.dispose()
    second.dispose()


def test_local_tokens_carry_role_and_fin_and_expire() -> None:
    keys = TokenKeys(secret="s" * 48, lifetime=timedelta(minutes=5))
    now = datetime.now(UTC)
    citizen = keys.verify(keys.issue(Principal("5ZK7N2R", Role.CITIZEN, "Aysel", fin="5ZK7N2R"), now=now))
    assert (citizen.role, citizen.fin) == (Role.CITIZEN, "5ZK7N2R")
    with pytest.raises(NotSignedIn, match="expired"):
        keys.verify(keys.issue(Principal("a", Role.AUDITOR, "a"), now=now - timedelta(hours=1)))
    forged = TokenKeys(secret="t" * 48).issue(Principal("a", Role.SUPERVISOR, "a"), now=now)
    with pytest.raises(NotSignedIn, match="does not hold"):
        keys.verify(forged)
    other_audience = TokenKeys(secret="s" * 48, audience="elsewhere").issue(Principal("a", Role.AUDITOR, "a"), now=now)
    with pytest.raises(NotSignedIn):
        keys.verify(other_audience)
    no_fin = jwt.encode({"sub": "x", "role": "citizen", "iss": "haqq", "aud": "haqq",
                         "exp": int((now + timedelta(minutes=1)).timestamp())}, "s" * 48, algorithm="HS256")
    with pytest.raises(NotSignedIn, match="FIN"):
        keys.verify(no_fin)
    bad_role = jwt.encode({"sub": "x", "role": "admin", "iss": "haqq", "aud": "haqq",
                           "exp": int((now + timedelta(minutes=1)).timestamp())}, "s" * 48, algorithm="HS256")
    with pytest.raises(NotSignedIn, match="role"):
        keys.verify(bad_role)


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_an_identity_providers_tokens_are_checked_with_its_public_key(kind: str, tmp_path: Path, sqlite_url: str) -> None:
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "rsa"
        else ed25519.Ed25519PrivateKey.generate()
    )
    algorithm = "RS256" if kind == "rsa" else "EdDSA"
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "idp.pem").write_bytes(pem)
    engine = db.make_engine(sqlite_url)
    db.upgrade(engine)
    keys = token_keys(engine, now=NOW, public_key=tmp_path / "idp.pem", issuer="https://id.gov.az", audience="haqq-az")
    assert not keys.can_issue
    now = datetime.now(UTC)
    claims = {"sub": "5ZK7N2R", "role": "citizen", "fin": "5ZK7N2R", "name": "Aysel", "iss": "https://id.gov.az",
              "aud": "haqq-az", "exp": int((now + timedelta(minutes=5)).timestamp())}
    who = keys.verify(jwt.encode(claims, private, algorithm=algorithm))
    assert (who.subject, who.role, who.fin) == ("5ZK7N2R", Role.CITIZEN, "5ZK7N2R")
    with pytest.raises(NotSignedIn):
        keys.verify(jwt.encode({**claims, "iss": "https://elsewhere"}, private, algorithm=algorithm))
    # A token signed with a shared secret is refused where a provider's key is configured.
    with pytest.raises(NotSignedIn):
        keys.verify(jwt.encode(claims, "s" * 48, algorithm="HS256"))
    with pytest.raises(TokenConfigError, match="cannot issue|identity provider"):
        keys.issue(Principal("a", Role.AUDITOR, "a"), now=now)
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(TokenConfigError, match="not a PEM public key"):
        token_keys(engine, now=NOW, public_key=tmp_path / "bad.pem")
    engine.dispose()
