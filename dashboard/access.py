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
    IMPORTS = "imports"


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
    EXPORT_FHIR = "export_fhir"


# The file that renders each page, in the order of the menu (the entry point routes to them).
PAGE_FILES: dict[Page, str] = {
    Page.QUEUE: "pages/triage_queue.py",
    Page.TIMELINE: "pages/patient_timeline.py",
    Page.GUIDANCE: "pages/guidance.py",
    Page.METRICS: "pages/response_times.py",
    Page.RULES: "pages/rules.py",
    Page.IMPORTS: "pages/imports.py",
}
PAGES: dict[Page, frozenset[Role]] = {
    Page.QUEUE: frozenset({Role.NURSE, Role.PHYSICIAN, Role.LEAD}),
    Page.TIMELINE: frozenset({Role.PHYSICIAN}),
    Page.GUIDANCE: frozenset(Role),
    Page.METRICS: frozenset({Role.LEAD}),
    Page.RULES: frozenset(Role),
    Page.IMPORTS: frozenset({Role.LEAD, Role.ADMIN}),
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
    Action.EXPORT_FHIR: frozenset({Role.LEAD}),
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

    def first_page(self) -> Page | None:
        """The first page of the menu this person may see."""
        return next((p for p in PAGE_FILES if self.may_see(p)), None)

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
    """A role from a token claim: a string, or a list of strings.

    From a list the first known role in the order physician, nurse, lead, admin wins (unknown
    entries are ignored): the role that may act clinically comes first, so a person the provider
    gives several roles keeps every clinical action one of them allows. A physician may do all a
    nurse may and more; a nurse acts on the queue, which a lead only reads; an admin sees no
    patient data.
    """
    candidates = value if isinstance(value, (list, tuple)) else [value]
    found = [Role(v.strip().lower()) for v in candidates if isinstance(v, str) and v.strip().lower() in Role.__members__.values()]
    if not found:
        return None
    precedence = [Role.PHYSICIAN, Role.NURSE, Role.LEAD, Role.ADMIN]
    return sorted(found, key=precedence.index)[0]


# --------------------------------------------------------------------------- panels


def visible_panels(user: User, all_panel_ids) -> list[str]:
    """The panels whose reports this person may see and act on, in the order given.

    Panels are an access boundary for nurses: a nurse sees the panels assigned to them (none if
    none is). Physicians and leads belong to the service and see every panel; an admin sees no
    patient data, hence no panel.
    """
    if user.role == Role.NURSE:
        return [p for p in all_panel_ids if p in user.panels]
    if user.role in (Role.PHYSICIAN, Role.LEAD):
        return list(all_panel_ids)
    return []


def may_see_panel(user: User, panel_id: object) -> bool:
    return isinstance(panel_id, str) and bool(visible_panels(user, [panel_id]))


def require_patient_panel(user: User, patient_id: str, panel_id: object) -> None:
    """Refuse (InputError on ``patient_id``) a report entered for a patient outside the person's panels."""
    from dashboard.models import InputError

    if not may_see_panel(user, panel_id):
        raise InputError([("patient_id", f"patient {patient_id} is not in your panels")])


def require_panels(con, user: User, report_ids: list[str]) -> None:
    """Refuse (InputError on ``report_ids``) an action on a report outside the person's panels.

    ``con`` is the action's transaction; each report's panel is its patient's.
    """
    from dashboard.models import InputError

    rows = con.execute(
        "SELECT r.report_id, p.panel_id FROM reports r JOIN patients p USING (patient_id)"
        " WHERE r.report_id IN (SELECT unnest($ids::VARCHAR[])) ORDER BY r.report_id", {"ids": list(report_ids)}).fetchall()
    outside = [rid for rid, panel in rows if not may_see_panel(user, panel)]
    if outside:
        raise InputError([("report_ids", f"report {outside[0]} is not in your panels")])
