"""The local issuer's accounts: argon2id password hashes in the ``officials`` table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, insert, select, update

from haqq.adapters.store.schema import officials
from haqq.domain.access import NotSignedIn, Principal, Role
from haqq.domain.errors import HaqqError
from haqq.domain.fin import check_fin

_hasher = PasswordHasher()


class AccountError(HaqqError):
    """An account that cannot be made as asked (taken name, short password, missing FIN)."""


@dataclass(frozen=True)
class Account:
    username: str
    name: str
    role: Role
    fin: str | None
    disabled: bool


def add_account(
    conn: Connection, username: str, password: str, *, role: Role, name: str, fin: str | None, now: datetime,
    replace: bool = False,
) -> Account:
    """Make (or with ``replace``, reset) an account; the password is kept only as its hash."""
    if not username or len(username) > 60:
        raise AccountError("a username is 1 to 60 characters")
    if len(password) < 8:
        raise AccountError("a password is at least 8 characters")
    if role is Role.CITIZEN:
        if not fin:
            raise AccountError("a citizen's account needs their FIN (--fin)")
        check_fin(fin)
    row: dict[str, str | None] = {"name": name or username, "role": role.value, "fin": fin, "password_hash": _hasher.hash(password)}
    exists = conn.execute(select(officials.c.username).where(officials.c.username == username)).first()
    if exists and not replace:
        raise AccountError(f"there is already an account {username!r}")
    if exists:
        conn.execute(update(officials).where(officials.c.username == username).values(**row, disabled=False))
    else:
        conn.execute(insert(officials).values(username=username, created_at=now, **row))
    return Account(username, name or username, role, fin, False)


def accounts(conn: Connection) -> list[Account]:
    return [
        Account(r.username, r.name, Role(r.role), r.fin, bool(r.disabled))
        for r in conn.execute(select(officials).order_by(officials.c.role, officials.c.username))
    ]


def sign_in(conn: Connection, username: str, password: str) -> Principal:
    """The principal whose password this is; one message for every failure, so a caller cannot
    learn which usernames exist."""
    row = conn.execute(select(officials).where(officials.c.username == username)).first()
    wrong = NotSignedIn("wrong username or password")
    if row is None or row.disabled:
        _hasher.hash(password)  # the same work either way
        raise wrong
    try:
        _hasher.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError) as exc:
        raise wrong from exc
    if _hasher.check_needs_rehash(row.password_hash):
        conn.execute(update(officials).where(officials.c.username == username)
                     .values(password_hash=_hasher.hash(password)))
    return Principal(subject=row.username, role=Role(row.role), name=row.name, fin=row.fin)
