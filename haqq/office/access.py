"""Every look an official takes at a person's records goes into that person's data-access log,
the same log the data exchange writes and the Data Tracker serves ("who looked at my data")."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, insert

from haqq.adapters.store.schema import data_access_log
from haqq.domain.access import Principal

#: The institution named in the log for looks taken in haqq itself.
INSTITUTION = "haqq"
#: Why an official may look (illustrative; a deployment names its own law).
OFFICIAL_BASIS = "Law on Personal Data, art. 8: processing by the social protection authority for its services (illustrative)"


def requester(principal: Principal) -> str:
    return f"{principal.role.value}:{principal.subject}"[:60]


def log_access(
    conn: Connection, principal: Principal, fins: Iterable[str], *, what: str, purpose: str, at: datetime,
    case_id: str | None = None,
) -> int:
    """Log that ``principal`` saw or acted on ``what`` (a page, an API resource, an action) of
    each person in ``fins``; a citizen looking at their own records is not logged. Returns the
    rows written."""
    if not principal.is_official:
        return 0
    message = f"{INSTITUTION}-{uuid.uuid4().hex[:20]}"
    rows = [
        {"fin": fin, "at": at, "wall_at": at, "institution": INSTITUTION, "service": what[:60],
         "message_id": message, "case_id": case_id, "event_id": None, "requester": requester(principal),
         "purpose": f"{principal.name}: {purpose}", "legal_basis": OFFICIAL_BASIS}
        for fin in dict.fromkeys(fins)
    ]
    if rows:
        conn.execute(insert(data_access_log), rows)
    return len(rows)
