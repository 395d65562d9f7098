"""X-Road identifiers: a client (member or subsystem) and a service, as the REST protocol writes
them (``INSTANCE/CLASS/MEMBER[/SUBSYSTEM]`` and ``.../SERVICE``).

Each part is percent-encoded on its own (the ``/`` between parts never is), and only the
characters the protocol allows in an identifier are accepted: letters, digits and ``'()+,-.=?``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from haqq.domain.errors import HaqqError

#: Protocol for REST, section 4.8.
_PART = re.compile(r"^[A-Za-z0-9'()+,\-.=?]{1,255}$")
MAX_PATH = 2000


class InvalidIdentifier(HaqqError):
    """An X-Road identifier that breaks the protocol's rules; the message says which part."""


def _check(part: str, what: str, text: str) -> str:
    if not _PART.match(part):
        raise InvalidIdentifier(
            f"invalid X-Road {what} {part!r} in {text!r}: only letters, digits and '()+,-.=? are allowed"
        )
    return part


def _encode(part: str) -> str:
    return quote(part, safe="")


@dataclass(frozen=True, slots=True, order=True)
class ClientId:
    """A member (``subsystem`` None) or one of its subsystems."""

    instance: str
    member_class: str
    member_code: str
    subsystem: str | None = None

    @classmethod
    def parse(cls, text: str) -> ClientId:
        """From ``INSTANCE/CLASS/MEMBER[/SUBSYSTEM]``, each part percent-encoded."""
        parts = [unquote(p) for p in text.strip().split("/")]
        if len(parts) not in (3, 4):
            raise InvalidIdentifier(
                f"invalid X-Road client {text!r}: expected INSTANCE/CLASS/MEMBER[/SUBSYSTEM]"
            )
        names = ("instance", "member class", "member code", "subsystem code")
        for part, what in zip(parts, names, strict=False):
            _check(part, what, text)
        return cls(*parts)

    def parts(self) -> tuple[str, ...]:
        head = (self.instance, self.member_class, self.member_code)
        return head if self.subsystem is None else (*head, self.subsystem)

    def encoded(self) -> str:
        return "/".join(_encode(p) for p in self.parts())

    def __str__(self) -> str:
        return "/".join(self.parts())


@dataclass(frozen=True, slots=True, order=True)
class ServiceId:
    """A service of a provider (a member or subsystem)."""

    provider: ClientId
    code: str

    @classmethod
    def parse(cls, text: str) -> ServiceId:
        """From ``INSTANCE/CLASS/MEMBER[/SUBSYSTEM]/SERVICE``."""
        head, sep, code = text.strip().rpartition("/")
        if not sep:
            raise InvalidIdentifier(f"invalid X-Road service {text!r}: expected .../SERVICE")
        service = unquote(code)
        _check(service, "service code", text)
        return cls(ClientId.parse(head), service)

    def encoded(self) -> str:
        return f"{self.provider.encoded()}/{_encode(self.code)}"

    def __str__(self) -> str:
        return f"{self.provider}/{self.code}"


def split_path(path: str, *, subsystems: frozenset[ClientId] | None = None) -> tuple[ServiceId, str]:
    """A request path ``/r1/{serviceId}[/path]`` as (service, the rest of the path).

    A service id has four parts (member) or five (subsystem). Which one is meant is decided by
    the providers the caller knows (``subsystems``): a path whose first four parts name a known
    subsystem is read as a subsystem's service; otherwise the five-part form is assumed when the
    path has enough parts.
    """
    if len(path) > MAX_PATH:
        raise InvalidIdentifier(f"request path longer than {MAX_PATH} characters")
    parts = path.split("/")
    if len(parts) < 2 or parts[0] != "" or parts[1] != "r1":
        raise InvalidIdentifier(f"invalid X-Road request path {path!r}: expected /r1/{{serviceId}}[/path]")
    rest = parts[2:]
    if len(rest) < 4:
        raise InvalidIdentifier(f"invalid X-Road request path {path!r}: the service id is incomplete")
    as_subsystem = len(rest) >= 5
    if subsystems is not None and len(rest) >= 5:
        head = ClientId.parse("/".join(rest[:4]))
        as_subsystem = head in subsystems
    n = 5 if as_subsystem else 4
    service = ServiceId.parse("/".join(rest[:n]))
    tail = "/" + "/".join(rest[n:]) if len(rest) > n else ""
    return service, tail
