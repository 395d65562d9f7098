"""Who may do what: the roles of the one-stop shop and the actions each may take.

Pure: the entry points (API, console) turn a bearer token into a :class:`Principal` and ask
:func:`require` before they touch anything. A citizen acts only on their own records; officials
act on anyone's, and every such action is logged in that person's data-access log (the office
layer does that, not this module).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from haqq.domain.errors import HaqqError


class Role(StrEnum):
    CASEWORKER = "caseworker"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"
    CITIZEN = "citizen"
    #: A registry or another system pushing life events or reading what it is allowed to.
    SYSTEM = "system"


#: Officials: people working for the ministry, whose look at a record is logged.
OFFICIALS: frozenset[Role] = frozenset({Role.CASEWORKER, Role.SUPERVISOR, Role.AUDITOR})


class Action(StrEnum):
    SEARCH_PERSONS = "search_persons"
    VIEW_PERSON = "view_person"
    INTAKE_EVENTS = "intake_events"
    VIEW_CASES = "view_cases"
    WORK_REVIEW = "work_review"
    APPROVE_REVIEW = "approve_review"
    OPEN_APPEAL = "open_appeal"
    DECIDE_APPEAL = "decide_appeal"
    DECLINE_BENEFIT = "decline_benefit"
    VIEW_PROGRAMS = "view_programs"
    VIEW_DASHBOARD = "view_dashboard"
    VIEW_ACCESS_LOG = "view_access_log"


R = Role
A = Action

#: The permission table. A citizen's rights hold for their own records only (see :func:`require`).
PERMISSIONS: Mapping[Action, frozenset[Role]] = {
    A.SEARCH_PERSONS: frozenset({R.CASEWORKER, R.SUPERVISOR, R.AUDITOR}),
    A.VIEW_PERSON: frozenset({R.CASEWORKER, R.SUPERVISOR, R.AUDITOR, R.CITIZEN}),
    A.INTAKE_EVENTS: frozenset({R.SYSTEM, R.SUPERVISOR}),
    A.VIEW_CASES: frozenset({R.CASEWORKER, R.SUPERVISOR, R.AUDITOR, R.CITIZEN}),
    A.WORK_REVIEW: frozenset({R.CASEWORKER, R.SUPERVISOR}),
    A.APPROVE_REVIEW: frozenset({R.SUPERVISOR}),
    A.OPEN_APPEAL: frozenset({R.CITIZEN, R.CASEWORKER, R.SUPERVISOR}),
    A.DECIDE_APPEAL: frozenset({R.CASEWORKER, R.SUPERVISOR}),
    A.DECLINE_BENEFIT: frozenset({R.CITIZEN, R.CASEWORKER, R.SUPERVISOR}),
    A.VIEW_PROGRAMS: frozenset(R),
    A.VIEW_DASHBOARD: frozenset({R.CASEWORKER, R.SUPERVISOR, R.AUDITOR}),
    A.VIEW_ACCESS_LOG: frozenset({R.SUPERVISOR, R.AUDITOR, R.CITIZEN, R.CASEWORKER}),
}

#: Actions on one person's records: a citizen may take them on their own FIN only.
ON_A_PERSON: frozenset[Action] = frozenset(
    {A.VIEW_PERSON, A.VIEW_CASES, A.OPEN_APPEAL, A.DECLINE_BENEFIT, A.VIEW_ACCESS_LOG}
)


class NotSignedIn(HaqqError):
    """No credentials, or credentials that do not hold (expired, forged, wrong issuer)."""


class AccessDenied(HaqqError):
    """A signed-in principal asked for something their role or identity does not allow."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the token's subject, their role, and for a citizen their FIN."""

    subject: str
    role: Role
    name: str
    fin: str | None = None

    def __post_init__(self) -> None:
        if self.role is Role.CITIZEN and not self.fin:
            raise AccessDenied(f"{self.subject}: a citizen's credentials must carry their FIN")

    @property
    def is_official(self) -> bool:
        return self.role in OFFICIALS


def allowed(principal: Principal, action: Action, *, fin: str | None = None) -> bool:
    """Whether ``principal`` may take ``action`` (on the records of ``fin`` when given)."""
    if principal.role not in PERMISSIONS[action]:
        return False
    if principal.role is Role.CITIZEN and action in ON_A_PERSON:
        return fin is not None and fin == principal.fin
    return True


def require(principal: Principal, action: Action, *, fin: str | None = None) -> None:
    """Raise :class:`AccessDenied`, naming what was refused, unless :func:`allowed`."""
    if allowed(principal, action, fin=fin):
        return
    if principal.role is Role.CITIZEN and action in ON_A_PERSON:
        raise AccessDenied("a citizen may see and act on their own records only")
    raise AccessDenied(f"the {principal.role.value} role may not {action.value.replace('_', ' ')}")
