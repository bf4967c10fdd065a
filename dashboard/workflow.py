"""The care team's actions on reports, appended as events; a report's state derives from them.

Every action is validated (pydantic), checked against the actor's role, and appended in one
transaction that is retried when it loses a write conflict. Nothing is updated in place: the
``open_reports`` index is the only row removed (when a report is resolved), in the same
transaction as the ``resolve`` event, and it can be rebuilt from the events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal

import duckdb
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dashboard import clock
from dashboard.access import Action, Forbidden, User, require, require_panels, require_patient_panel
from dashboard.db import Database, run
from dashboard.labels import ESCALATION_LABELS, OUTCOME_LABELS
from dashboard.models import REPORT_FLAGS, InputError, NoteText, ReportIn, errors_of
from dashboard.retriage import retriage
from dashboard.rules import RuleSet

Tier = Literal["emergency", "urgent", "soon", "routine"]
EscalateTo = Literal[tuple(ESCALATION_LABELS)]  # type: ignore[valid-type]
Outcome = Literal[tuple(OUTCOME_LABELS)]  # type: ignore[valid-type]
# The actions that answer a report (its response clock stops at the first).
RESPONSE_ACTIONS = ("acknowledge", "call_back", "escalate", "resolve", "override")
RESPONSES_SQL = "(" + ", ".join(f"'{a}'" for a in RESPONSE_ACTIONS) + ")"  # for `action IN ...`
# The same action with the same answers by the same person on the same report within this time
# is a repeated click, not a second action.
REPEAT_WINDOW = timedelta(seconds=60)
PAST_TENSE = {"acknowledge": "acknowledged", "call_back": "called back", "escalate": "escalated",
              "resolve": "resolved", "override": "overridden", "note": "noted", "take": "taken",
              "release": "released", "retriaged": "re-triaged"}


class ActionIn(BaseModel):
    """One action as the forms send it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["acknowledge", "call_back", "escalate", "resolve", "override", "note", "take", "release"]
    report_ids: Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(min_length=1, max_length=50)]
    note: NoteText | None = None
    reached: bool | None = None
    escalated_to: EscalateTo | None = None
    outcome: Outcome | None = None
    tier_after: Tier | None = None
    # The form submission this came from (a repeated click sends the same id).
    request_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None


@dataclass(frozen=True)
class PriorAction:
    """An earlier action by someone else on a report this action also touched."""

    report_id: str
    actor: str
    actor_name: str
    acted_at: datetime
    action: str

    def text(self) -> str:
        """ "already called back by Helen Costa on 21 Nov 2026 at 03:17" """
        return (f"already {PAST_TENSE.get(self.action, self.action)} by {self.actor_name} "
                f"on {self.acted_at:%d %b %Y} at {self.acted_at:%H:%M}")


@dataclass(frozen=True)
class ActionResult:
    event_ids: list[int]
    recorded: list[str]  # the reports an event was appended for
    # Reports left as they were, with the reason (a repeated click, already acknowledged by you, ...).
    unchanged: list[tuple[str, str]]
    # Earlier responses by other people to the reports touched (who, what, when), first first.
    already: list[PriorAction]
    # Reports that were already resolved before this action (nothing but a note is recorded on them).
    already_resolved: list[PriorAction]


def result_message(result: ActionResult, action: str) -> tuple[str, str]:
    """What to tell the person who acted, and how (success, warning): what was recorded, what was
    left as it was and why, and what others had done before (who, what, when)."""
    n = len(result.recorded)
    verb = PAST_TENSE.get(action, action).capitalize()
    parts = [f"{verb}: {n} report{'s' if n != 1 else ''} ({', '.join(result.recorded)})." if n
             else "Nothing recorded."]
    parts += [f"{rid}: {why}." for rid, why in result.unchanged]
    if result.already:
        first = result.already[0]
        others = len(result.already) - 1
        parts.append(f"Note: {first.report_id} was {first.text()}"
                     + (f" (and {others} more earlier action{'s' if others > 1 else ''} by others)." if others else "."))
    return " ".join(parts), ("warning" if result.unchanged or result.already else "success")


def validate_action(**fields) -> ActionIn:
    try:
        request = ActionIn.model_validate(fields)
    except ValidationError as exc:
        raise InputError(errors_of(exc)) from None
    missing = {
        "call_back": ("reached", request.reached is None, "choose whether the patient was reached"),
        "escalate": ("escalated_to", request.escalated_to is None, "choose whom it goes to"),
        "resolve": ("outcome", request.outcome is None, "choose an outcome"),
        "note": ("note", not request.note, "write the note"),
    }.get(request.action)
    problems = [(missing[0], missing[2])] if missing and missing[1] else []
    if request.action == "override":
        if request.tier_after is None:
            problems.append(("tier_after", "choose the new tier"))
        if not request.note:
            problems.append(("note", "a reason is required for an override"))
        if len(request.report_ids) > 1:
            problems.append(("report_ids", "an override applies to the one report reviewed, not to a group"))
    if problems:
        raise InputError(problems)
    return request


_EVENT_FIELDS = ("actor", "name", "acted_at", "action", "request_id", "note", "reached", "escalated_to",
                 "outcome", "tier_after")


def _state(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, dict]:
    """What the care team has done so far on each report, read inside the action's transaction
    (in SQL that DuckDB and PostgreSQL share)."""
    rows = con.execute(
        """
        SELECT r.report_id, EXISTS (SELECT 1 FROM open_reports o WHERE o.report_id = r.report_id) AS is_open,
               c.tier, c.rules_version
        FROM reports r JOIN current_tiers c ON c.report_id = r.report_id
        WHERE r.report_id IN (SELECT unnest($ids::VARCHAR[]))
        """,
        {"ids": ids},
    ).fetchall()
    states = {r[0]: {"open": r[1], "tier": r[2], "version": r[3], "events": []} for r in rows}
    for report_id, *values in con.execute(
        """
        SELECT e.report_id, e.actor, coalesce(e.actor_name, e.actor), e.acted_at, e.action, e.request_id, e.note,
               e.reached, e.escalated_to, e.outcome, e.tier_after
        FROM events e WHERE e.report_id IN (SELECT unnest($ids::VARCHAR[])) AND e.action <> 'retriaged'
        ORDER BY e.event_id
        """,
        {"ids": ids},
    ).fetchall():
        states[report_id]["events"].append(dict(zip(_EVENT_FIELDS, values)))
    return states


def _taken_by(events: list[dict]) -> str | None:
    holder = None
    for e in events:
        if e["action"] == "take":
            holder = e["actor"]
        elif e["action"] in ("release", "resolve"):
            holder = None
    return holder


_ANSWERS = ("note", "reached", "escalated_to", "outcome", "tier_after")


def _unchanged_reason(request: ActionIn, user: User, state: dict, now: datetime) -> str | None:
    """Why this action would change nothing on this report (None: it is a real change)."""
    events = state["events"]
    if request.request_id and any(e["request_id"] == request.request_id for e in events):
        return "already recorded (the same form was sent twice)"
    if not state["open"] and request.action != "note":
        return "already resolved"
    mine = [e for e in events if e["actor"] == user.actor]
    asked = {k: getattr(request, k) for k in _ANSWERS if k != "tier_after" or request.action == "override"}
    # A repeated click repeats this person's latest action on the report: take, release, take again
    # is three actions, however quick.
    last = mine[-1] if mine else None
    if (last is not None and last["action"] == request.action and abs(now - last["acted_at"]) <= REPEAT_WINDOW
            and all(last[k] == v for k, v in asked.items())):
        return f"already recorded by you at {last['acted_at']:%H:%M:%S} (a repeated click)"
    if request.action == "acknowledge" and any(e["action"] == "acknowledge" for e in mine):
        return "already acknowledged by you"
    if request.action == "override" and request.tier_after == state["tier"]:
        return f"the tier is already {state['tier']}"
    holder = _taken_by(events)
    if request.action == "take" and holder == user.actor:
        return "already yours"
    if request.action == "release" and holder is None:
        return "not taken by anyone"
    return None


def act(db: Database, user: User, now: datetime, **fields) -> ActionResult:
    """Validate, authorise and append one action (one event per report that it changes).

    Only real changes are recorded: a repeated click (the same ``request_id``, or the same action
    with the same answers by the same person within ``REPEAT_WINDOW``), a second acknowledgement
    by the same person, an override to the tier already in force, releasing a report nobody has
    taken, or any action but a note on a resolved report leaves the report as it was and says why.
    """
    request = validate_action(**fields)
    require(user, Action(request.action))
    ids = list(dict.fromkeys(request.report_ids))
    now = clock.aware(now)  # stored as the instant it names

    def work(con: duckdb.DuckDBPyConnection) -> ActionResult:
        p = {"ids": ids}
        # Take the reports' rows first: a concurrent action on the same report now conflicts and
        # is retried after this one commits, so it sees this one.
        run(con, "UPDATE open_reports SET actions = actions + 1 WHERE report_id IN (SELECT unnest($ids::VARCHAR[]))", p)
        states = _state(con, ids)
        missing = [i for i in ids if i not in states]
        if missing:
            raise InputError([("report_ids", f"unknown report {missing[0]!r}")])
        require_panels(con, user, ids)  # a nurse acts on the reports of their own panels only
        already, already_resolved, unchanged, event_ids, recorded = [], [], [], [], []
        for rid in ids:
            state = states[rid]
            for e in state["events"]:
                if e["actor"] != user.actor and e["action"] in (*RESPONSE_ACTIONS, "take"):
                    prior = PriorAction(rid, e["actor"], e["name"], e["acted_at"], e["action"])
                    already.append(prior)
                    if e["action"] == "resolve":
                        already_resolved.append(prior)
            reason = _unchanged_reason(request, user, state, now)
            if reason is not None:
                unchanged.append((rid, reason))
                continue
            tier_after = request.tier_after if request.action == "override" else state["tier"]
            event_ids.append(run(
                con,
                """
                INSERT INTO events (report_id, acted_at, actor, actor_name, role, action, tier_before,
                                    tier_after, rules_version, note, reached, escalated_to, outcome, request_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING event_id
                """,
                [rid, now, user.actor, user.name, user.role.value, request.action, state["tier"], tier_after,
                 state["version"], request.note, request.reached, request.escalated_to, request.outcome,
                 request.request_id],
            )[0][0])
            recorded.append(rid)
        if request.action == "resolve" and recorded:
            run(con, "DELETE FROM open_reports WHERE report_id IN (SELECT unnest($ids::VARCHAR[]))", {"ids": recorded})
        return ActionResult(event_ids=event_ids, recorded=recorded, unchanged=unchanged,
                            already=sorted(already, key=lambda a: a.acted_at), already_resolved=already_resolved)

    return db.transaction(work)


# --------------------------------------------------------------------------- new reports


class NewReport(BaseModel):
    """A report entered by the care team (the phone-call case)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    patient_id: Annotated[str, Field(min_length=1, max_length=64)]
    report: ReportIn
    note: NoteText | None = None
    # Red-flag questions the nurse could not ask: each counts as a yes for the triage, and is
    # recorded as not asked.
    unasked: list[Literal[REPORT_FLAGS]] = []  # type: ignore[valid-type]


@dataclass(frozen=True)
class Submitted:
    report_id: str
    tier: str
    rule_ids: list[str]
    causes: list[str]


def submit_report(db: Database, rules: RuleSet, user: User, now: datetime, **fields) -> Submitted:
    """Validate, store and triage a new report in one transaction; it joins the open queue.

    The same report sent twice (the same patient, time and answers, by the same person) is one
    report: the second is refused, naming the first.
    """
    require(user, Action.NEW_REPORT)
    try:
        new = NewReport.model_validate(fields)
    except ValidationError as exc:
        raise InputError(errors_of(exc)) from None
    now = clock.aware(now)
    if clock.aware(new.report.reported_at) > now:
        raise InputError([("report.reported_at", "is in the future")])
    unasked = sorted(set(new.unasked))
    if unasked:
        new = new.model_copy(update={"report": new.report.model_copy(update={f: True for f in unasked})})

    def work(con: duckdb.DuckDBPyConnection) -> Submitted:
        panel = con.execute("SELECT panel_id FROM patients WHERE patient_id = ?", [new.patient_id]).fetchall()
        if not panel:
            raise InputError([("patient_id", f"unknown patient {new.patient_id!r}")])
        require_patient_panel(user, new.patient_id, panel[0][0])  # a nurse enters reports for their own panels
        cols = list(ReportIn.model_fields)
        # Times as the instants they name (a wall-clock time in the repeated hour: its first occurrence).
        values = [clock.aware(v) if isinstance(v, datetime) else v for v in (getattr(new.report, c) for c in cols)]
        same = con.execute(
            "SELECT report_id FROM reports WHERE patient_id = ? AND entered_by = ? AND "
            + " AND ".join(f"{c} IS NOT DISTINCT FROM ?" for c in cols) + " AND note IS NOT DISTINCT FROM ?",
            [new.patient_id, user.actor, *values, new.note]).fetchall()
        if same:
            raise InputError([("report", f"this report was already entered as {same[0][0]}; it is not added twice")])
        report_id = con.execute("SELECT 'R-' || lpad(nextval('reports_seq')::VARCHAR, 7, '0')").fetchall()[0][0]
        run(
            con,
            f"INSERT INTO reports (report_id, patient_id, received_at, source, entered_by, note, {', '.join(cols)})"
            f" VALUES (?, ?, ?, 'phone', ?, ?, {', '.join('?' for _ in cols)})",
            [report_id, new.patient_id, now, user.actor, new.note, *values],
        )
        for field in unasked:
            run(con, "INSERT INTO report_unasked (report_id, field) VALUES (?, ?)", [report_id, field])
        run(con, "INSERT INTO open_reports (report_id, patient_id, panel_id, reported_at) VALUES (?, ?, ?, ?)",
            [report_id, new.patient_id, panel[0][0], clock.aware(new.report.reported_at)])
        retriage(con, rules, now=now, report_ids=[report_id], record_changes=False)
        tier, rule_ids, causes = con.execute(
            "SELECT tier, rule_ids, causes FROM triage_results WHERE report_id = ?", [report_id]).fetchall()[0]
        return Submitted(report_id, tier, list(rule_ids), list(causes))

    return db.transaction(work)


# --------------------------------------------------------------------------- the phone form


def submit_phone_report(db: Database, rules: RuleSet, user: User, now: datetime, *, patient_id: str,
                        reported_at: datetime, pain_score: int | None, pain_pattern: str | None,
                        onset: str | None, flags: dict[str, str | None], note: str | None = None,
                        **answers) -> Submitted:
    """A report taken on the phone, as the form gives it: nothing is recorded that nobody chose.

    The pain score, "is this your usual pain?" and the onset must each be chosen ("not sure" is a
    choice, read as unknown); every red-flag question (``flags``: field -> "yes", "no" or "unasked",
    None while unanswered) must be answered, and "could not ask" counts as yes for the triage and
    is recorded as not asked. Anything unanswered is an InputError naming each question as the
    form asks it, and nothing is stored. ``answers``: the optional fields (trend, location,
    duration_days, temperature_c).
    """
    from dashboard.labels import FLAG_QUESTIONS, ONSET_QUESTION, PAIN_PATTERN_QUESTION, answer, flag_answers

    unknown = sorted(set(flags) - set(REPORT_FLAGS))
    if unknown:
        raise InputError([("unasked", f"unknown red flag {unknown[0]!r}")])
    asked = {f: flags.get(f) for f in FLAG_QUESTIONS}
    bad = [f for f, a in asked.items() if a not in (None, "yes", "no", "unasked")]
    if bad:
        raise InputError([(FLAG_QUESTIONS[bad[0]], "answer yes, no or could not ask")])
    values, unasked, missing = flag_answers(asked)
    problems = [(label, "choose an answer" + (" (\"Not sure\" if the patient cannot say)" if ask else ""))
                for label, value, ask in (("Pain score (0-10)", pain_score, False),
                                          (PAIN_PATTERN_QUESTION, pain_pattern, True),
                                          (ONSET_QUESTION, onset, True)) if value is None]
    problems += [(q, "answer yes, no or could not ask") for q in missing]
    if problems:
        raise InputError(problems)
    return submit_report(db, rules, user, now, patient_id=patient_id, note=note or None, unasked=unasked,
                         report={"reported_at": reported_at, "pain_score": pain_score,
                                 "pain_pattern": answer(pain_pattern), "onset": answer(onset), **answers, **values})


__all__ = ["ActionIn", "ActionResult", "Forbidden", "NewReport", "PriorAction", "Submitted", "act", "submit_phone_report",
           "submit_report",
           "validate_action"]
