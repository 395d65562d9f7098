"""What every web route needs, wired once by :func:`haqq.entrypoints.web.app.make_app`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine

from haqq.adapters.auth.tokens import TokenKeys
from haqq.domain.quiet import QuietHours
from haqq.ports import PersonDirectory
from haqq.rules.catalogue import Catalogue
from haqq.rules.messages import MessageCatalogue, default_messages


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class WebContext:
    engine: Engine
    keys: TokenKeys
    catalogue: Catalogue
    #: The registries' person search; None when no registry is reachable (search by FIN only).
    directory: PersonDirectory | None = None
    messages: MessageCatalogue = field(default_factory=default_messages)
    quiet: QuietHours | None = None
    #: A review decision granting more than this (qəpik) needs a supervisor's approval.
    review_threshold: int = 50_000
    now: Callable[[], datetime] = _utc_now
