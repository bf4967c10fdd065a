"""The care team's actions on reports, appended as events; a report's state derives from them.

Every action is validated (pydantic), checked against the actor's role, and appended in one
transaction that is retried when it loses a write conflict. Nothing is updated in place: the
``open_reports`` index is the only row removed (when a report is resolved), in the same
transaction as the ``resolve`` event, and it can be rebuilt from the events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

import duckdb
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dashboard.access import Action, Forbidden, User, require
from dashboard.db import Database, run
from dashboard.models import InputError, NoteText, ReportIn, errors_of
from dashboard.retriage import retriage
from dashboard.rules import RuleSet

Tier = Literal["emergency", "urgent", "soon", "routine"]
EscalateTo = Literal["acute_oncology", "mscc_coordinator", "physician", "emergency_services"]
Outcome = Literal["self_care_advice", "analgesia_adjusted", "clinic_review_booked", "imaging_requested",
                  "admitted", "referred_to_ed", "referred_to_mscc", "no_further_action", "other"]
RESPONSE_ACTIONS = ("acknowledge", "call_back", "escalate", "resolve", "override")


class ActionIn(BaseModel):
    """One action as the forms send it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["acknowledge", "call_back", "escalate", "resolve", "override", "note"]
    report_ids: Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(min_length=1, max_length=50)]
    note: NoteText | None = None
    reached: bool | None = None
    escalated_to: EscalateTo | None = None
    outcome: Outcome | None = None
    tier_after: Tier | None = None

    @model_validator(mode="after")
    def _complete(self) -> ActionIn:
        if self.action == "call_back" and self.reached is None:
            raise ValueError("a call-back needs reached or not reached")
        if self.action == "escalate" and self.escalated_to is None:
            raise ValueError("an escalation needs whom it went to")
        if self.action == "resolve" and self.outcome is None:
            raise ValueError("resolving needs an outcome")
        if self.action == "override" and (self.tier_after is None or not self.note):
            raise ValueError("an override needs the new tier and a reason")
        if self.action == "note" and not self.note:
            raise ValueError("a note needs text")
        return self


@dataclass(frozen=True)
class PriorResponse:
    report_id: str
    actor_name: str
    acted_at: datetime
    action: str


@dataclass(frozen=True)
class ActionResult:
    event_ids: list[int]
    # Reports someone had already responded to before this action (who, when, what).
    already: list[PriorResponse]
    # Reports that were already resolved before this action.
    already_resolved: list[PriorResponse]


def validate_action(**fields) -> ActionIn:
    try:
        return ActionIn.model_validate(fields)
    except ValidationError as exc:
        raise InputError(errors_of(exc)) from None


CURRENT_TIER_SQL = """
    SELECT t.report_id, coalesce(o.tier_after, t.tier) AS tier, t.rules_version
    FROM triage_results t
    LEFT JOIN (SELECT report_id, arg_max(tier_after, event_id) AS tier_after FROM events
               WHERE action = 'override' AND report_id IN (SELECT unnest($ids)) GROUP BY report_id) o
      ON o.report_id = t.report_id
    WHERE t.report_id IN (SELECT unnest($ids))
"""


def act(db: Database, user: User, now: datetime, **fields) -> ActionResult:
    """Validate, authorise and append one action (one event per report named)."""
    request = validate_action(**fields)
    require(user, Action(request.action))
    ids = list(dict.fromkeys(request.report_ids))

    def work(con: duckdb.DuckDBPyConnection) -> ActionResult:
        p = {"ids": ids}
        known = {r[0] for r in con.execute(
            "SELECT report_id FROM reports WHERE report_id IN (SELECT unnest($ids))", p).fetchall()}
        missing = [i for i in ids if i not in known]
        if missing:
            raise InputError([("report_ids", f"unknown report {missing[0]!r}")])
        # Take the reports' rows first: a concurrent action on the same report now conflicts and
        # is retried after this one commits, so it sees this one.
        run(con, "UPDATE open_reports SET actions = actions + 1 WHERE report_id IN (SELECT unnest($ids))", p)
        prior = con.execute(
            f"""
            SELECT report_id, arg_min(coalesce(actor_name, actor), event_id), min(acted_at),
                   arg_min(action, event_id),
                   bool_or(action = 'resolve'),
                   arg_max(coalesce(actor_name, actor), event_id) FILTER (WHERE action = 'resolve'),
                   max(acted_at) FILTER (WHERE action = 'resolve')
            FROM events
            WHERE report_id IN (SELECT unnest($ids)) AND action IN {RESPONSE_ACTIONS}
            GROUP BY report_id
            """,
            p,
        ).fetchall()
        tiers = {r[0]: (r[1], r[2]) for r in con.execute(CURRENT_TIER_SQL, p).fetchall()}
        event_ids = []
        for rid in ids:
            tier_before, version = tiers.get(rid, (None, None))
            tier_after = request.tier_after if request.action == "override" else tier_before
            event_ids.append(run(
                con,
                """
                INSERT INTO events (report_id, acted_at, actor, actor_name, role, action, tier_before,
                                    tier_after, rules_version, note, reached, escalated_to, outcome)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING event_id
                """,
                [rid, now, user.actor, user.name, user.role.value, request.action, tier_before, tier_after,
                 version, request.note, request.reached, request.escalated_to, request.outcome],
            )[0][0])
        if request.action == "resolve":
            run(con, "DELETE FROM open_reports WHERE report_id IN (SELECT unnest($ids))", p)
        return ActionResult(
            event_ids=event_ids,
            already=[PriorResponse(r[0], r[1], r[2], r[3]) for r in prior],
            already_resolved=[PriorResponse(r[0], r[5], r[6], "resolve") for r in prior if r[4]],
        )

    return db.transaction(work)


# --------------------------------------------------------------------------- new reports


class NewReport(BaseModel):
    """A report entered by the care team (the phone-call case)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    patient_id: Annotated[str, Field(min_length=1, max_length=64)]
    report: ReportIn
    note: NoteText | None = None


@dataclass(frozen=True)
class Submitted:
    report_id: str
    tier: str
    rule_ids: list[str]
    causes: list[str]


def submit_report(db: Database, rules: RuleSet, user: User, now: datetime, **fields) -> Submitted:
    """Validate, store and triage a new report in one transaction; it joins the open queue."""
    require(user, Action.NEW_REPORT)
    try:
        new = NewReport.model_validate(fields)
    except ValidationError as exc:
        raise InputError(errors_of(exc)) from None
    if new.report.reported_at > now:
        raise InputError([("report.reported_at", "is in the future")])

    def work(con: duckdb.DuckDBPyConnection) -> Submitted:
        panel = con.execute("SELECT panel_id FROM patients WHERE patient_id = ?", [new.patient_id]).fetchall()
        if not panel:
            raise InputError([("patient_id", f"unknown patient {new.patient_id!r}")])
        report_id = con.execute("SELECT 'R-' || lpad(nextval('reports_seq')::VARCHAR, 7, '0')").fetchall()[0][0]
        cols = list(ReportIn.model_fields)
        values = [getattr(new.report, c) for c in cols]
        run(
            con,
            f"INSERT INTO reports (report_id, patient_id, received_at, source, entered_by, note, {', '.join(cols)})"
            f" VALUES (?, ?, ?, 'phone', ?, ?, {', '.join('?' for _ in cols)})",
            [report_id, new.patient_id, now, user.actor, new.note, *values],
        )
        run(con, "INSERT INTO open_reports (report_id, patient_id, panel_id, reported_at) VALUES (?, ?, ?, ?)",
            [report_id, new.patient_id, panel[0][0], new.report.reported_at])
        retriage(con, rules, now=now, report_ids=[report_id], record_changes=False)
        tier, rule_ids, causes = con.execute(
            "SELECT tier, rule_ids, causes FROM triage_results WHERE report_id = ?", [report_id]).fetchall()[0]
        return Submitted(report_id, tier, list(rule_ids), list(causes))

    return db.transaction(work)


__all__ = ["ActionIn", "ActionResult", "Forbidden", "NewReport", "Submitted", "act", "submit_report",
           "validate_action"]
