"""Who may see and do what. Pure data and functions; the Streamlit side is in ``dashboard.ui``.

Roles: a nurse works the queue; a physician does everything a nurse can, reviews timelines and
may override a tier; a team lead monitors response times and reads the queue without acting on
it; an admin reloads the rules. Pages and actions both check these tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    NURSE = "nurse"
    PHYSICIAN = "physician"
    LEAD = "lead"
    ADMIN = "admin"


class Page(StrEnum):
    QUEUE = "queue"
    TIMELINE = "timeline"
    GUIDANCE = "guidance"
    METRICS = "metrics"
    RULES = "rules"


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    CALL_BACK = "call_back"
    ESCALATE = "escalate"
    RESOLVE = "resolve"
    OVERRIDE = "override"
    NOTE = "note"
    TAKE = "take"
    RELEASE = "release"
    NEW_REPORT = "new_report"
    EXPORT_AUDIT = "export_audit"
    RELOAD_RULES = "reload_rules"


PAGES: dict[Page, frozenset[Role]] = {
    Page.QUEUE: frozenset({Role.NURSE, Role.PHYSICIAN, Role.LEAD}),
    Page.TIMELINE: frozenset({Role.PHYSICIAN}),
    Page.GUIDANCE: frozenset(Role),
    Page.METRICS: frozenset({Role.LEAD}),
    Page.RULES: frozenset(Role),
}
ACTIONS: dict[Action, frozenset[Role]] = {
    Action.ACKNOWLEDGE: frozenset({Role.NURSE, Role.PHYSICIAN}),
    Action.CALL_BACK: frozenset({Role.NURSE, Role.PHYSICIAN}),
    Action.ESCALATE: frozenset({Role.NURSE, Role.PHYSICIAN}),
    Action.RESOLVE: frozenset({Role.NURSE, Role.PHYSICIAN}),
    Action.NOTE: frozenset({Role.NURSE, Role.PHYSICIAN}),
    Action.TAKE: frozenset({Role.NURSE, Role.PHYSICIAN}),
    Action.RELEASE: frozenset({Role.NURSE, Role.PHYSICIAN}),
    Action.NEW_REPORT: frozenset({Role.NURSE, Role.PHYSICIAN}),
    Action.OVERRIDE: frozenset({Role.PHYSICIAN}),
    Action.EXPORT_AUDIT: frozenset({Role.LEAD}),
    Action.RELOAD_RULES: frozenset({Role.ADMIN}),
}
# Who may see identifiable patient data at all (the guidance page hides its report picker otherwise).
PATIENT_DATA: frozenset[Role] = frozenset({Role.NURSE, Role.PHYSICIAN, Role.LEAD})


@dataclass(frozen=True)
class User:
    """The person acting: a staff member in demo mode, or the identity provider's user."""

    actor: str  # staff id, or the identity provider's e-mail / subject
    name: str
    role: Role | None  # None: signed in, but no Backline role assigned
    panels: tuple[str, ...] = field(default=())  # the panels this person belongs to (default choice)
    demo: bool = False
    role_source: str | None = None  # where the role came from (token claim, role map, demo)

    def may_see(self, page: Page) -> bool:
        return self.role is not None and self.role in PAGES[page]

    def may(self, action: Action) -> bool:
        return self.role is not None and self.role in ACTIONS[action]

    @property
    def sees_patient_data(self) -> bool:
        return self.role in PATIENT_DATA


class Forbidden(Exception):
    """A role tried to do what is not its own."""


def require(user: User | None, action: Action) -> User:
    if user is None:
        raise Forbidden("not signed in")
    if not user.may(action):
        raise Forbidden(f"a {user.role.value} may not {action.value.replace('_', ' ')}")
    return user


def parse_role(value: object) -> Role | None:
    """A role from a token claim: a string, or a list of strings (the highest-privilege known role wins)."""
    candidates = value if isinstance(value, (list, tuple)) else [value]
    found = [Role(v.strip().lower()) for v in candidates if isinstance(v, str) and v.strip().lower() in Role.__members__.values()]
    if not found:
        return None
    precedence = [Role.PHYSICIAN, Role.NURSE, Role.LEAD, Role.ADMIN]
    return sorted(found, key=precedence.index)[0]
