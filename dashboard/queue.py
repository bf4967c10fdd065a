"""The nurses' triage queue: open reports of chosen panels, their clocks, grouped by patient.

Reads only the ``open_reports`` index and the events of those reports, never the whole history,
so the queue stays instant at a million reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from dashboard import clock
from dashboard.alert_log import report_alerts, summary_words
from dashboard.db import Database
from dashboard.guidance import Line, guidance_for, within_words
from dashboard.labels import ACTION_LABELS, ESCALATION_LABELS, FLAG_LABELS, OUTCOME_LABELS, duration, red_flags
from dashboard.models import REPORT_FLAGS
from dashboard.retriage import explanations
from dashboard.rules import RuleSet
from dashboard.triage import RECENT_SACT
from dashboard.workflow import RESPONSES_SQL


OPEN_SQL = f"""
WITH o AS (
    SELECT report_id, patient_id, panel_id FROM open_reports
    WHERE panel_id IN (SELECT unnest($panels::VARCHAR[]))
),
ev AS (SELECT * FROM events WHERE report_id IN (SELECT report_id FROM o)),
st AS (
    SELECT report_id,
           min(acted_at) FILTER (WHERE action IN {RESPONSES_SQL}) AS first_response_at,
           arg_min(coalesce(actor_name, actor), event_id) FILTER (WHERE action IN {RESPONSES_SQL}) AS first_responder,
           arg_max(action, event_id) FILTER (WHERE action NOT IN ('retriaged', 'note')) AS last_action,
           max(acted_at) AS last_action_at,
           arg_max(escalated_to, event_id) FILTER (WHERE action = 'escalate') AS escalated_to,
           max(event_id) FILTER (WHERE action = 'escalate') AS escalated_event,
           arg_max(reached, event_id) FILTER (WHERE action = 'call_back') AS reached,
           max(acted_at) FILTER (WHERE action = 'call_back') AS last_call_back_at,
           max(event_id) FILTER (WHERE action = 'call_back') AS call_back_event,
           count(*) FILTER (WHERE action = 'call_back') AS call_backs,
           arg_max(action, event_id) FILTER (WHERE action IN ('take', 'release')) AS claim,
           arg_max(actor, event_id) FILTER (WHERE action IN ('take', 'release')) AS claim_actor,
           arg_max(coalesce(actor_name, actor), event_id) FILTER (WHERE action IN ('take', 'release')) AS claim_name
    FROM ev GROUP BY report_id
),
al AS (  -- the alerts that went out for each report (the alerts worker's log)
    SELECT report_id, count(*) FILTER (WHERE result = 'sent') AS alerts_sent,
           count(*) FILTER (WHERE result = 'gave_up') AS alerts_undelivered
    FROM alert_log WHERE report_id IN (SELECT report_id FROM o) GROUP BY report_id
)
SELECT o.report_id, o.patient_id, o.panel_id, p.name AS patient_name, p.mrn, p.cancer_type,
       r.reported_at, r.source, r.pain_score, r.onset, r.trend, r.location, r.duration_days,
       {", ".join("r." + f for f in REPORT_FLAGS)}, r.temperature_c,
       c.triage_tier, c.tier, t.rule_ids, t.causes,
       t.rules_version, st.first_response_at, st.first_responder, st.last_action, st.last_action_at,
       st.escalated_to, st.reached, coalesce(st.call_backs, 0) AS call_backs,
       -- A call-back that did not reach the patient, with nothing done since but acknowledging:
       -- the re-call clock runs from it.
       CASE WHEN st.reached = FALSE AND coalesce(st.escalated_event, 0) < st.call_back_event
            THEN st.last_call_back_at END AS not_reached_at,
       CASE WHEN st.claim = 'take' THEN st.claim_actor END AS taken_by,
       CASE WHEN st.claim = 'take' THEN st.claim_name END AS taken_by_name,
       coalesce(al.alerts_sent, 0) AS alerts_sent, coalesce(al.alerts_undelivered, 0) AS alerts_undelivered
FROM o
JOIN reports r ON r.report_id = o.report_id
JOIN patients p ON p.patient_id = o.patient_id
JOIN current_tiers c ON c.report_id = o.report_id
JOIN triage_results t ON t.report_id = o.report_id
LEFT JOIN st ON st.report_id = o.report_id
LEFT JOIN al ON al.report_id = o.report_id
"""


def open_reports(db: Database, panels: list[str]) -> pd.DataFrame:
    """Every open report of the panels, with its current tier (after any override) and state."""
    return db.query(OPEN_SQL, {"panels": list(panels)})


def _present(value: Any) -> bool:
    return value is not None and not (pd.api.types.is_scalar(value) and pd.isna(value))


def status_of(row: dict[str, Any]) -> str:
    last = row.get("last_action")
    if not _present(last):
        return "new"
    if _present(row.get("escalated_to")):
        return f"escalated to {ESCALATION_LABELS.get(row['escalated_to'], row['escalated_to'])}"
    if row.get("call_backs"):
        return "called back" if row.get("reached") else "call-back: not reached"
    return ACTION_LABELS.get(last, last).lower()


# What a report needs now, most pressing first: its clock (to answer, or to call again) has run
# out; it waits for an answer or a re-call; it was answered and is open.
OVERDUE, WAITING, ANSWERED = 0, 1, 2
FILTERS = {"all": "All", "unanswered": "Unanswered", "overdue": "Overdue", "mine": "Taken by me"}


@dataclass(frozen=True)
class Queue:
    """The queue as shown: one row per patient episode (group), most urgent first."""

    rows: pd.DataFrame  # one row per group head, showing the group's worst state
    reports: pd.DataFrame  # every open report, with its group head

    @property
    def unacknowledged_emergencies(self) -> pd.DataFrame:
        r = self.reports
        if r.empty:
            return r
        return r[(r["tier"] == "emergency") & r["first_response_at"].isna()].sort_values("reported_at")

    @property
    def overdue(self) -> int:
        """Reports whose clock has run out: unanswered past their target, or a re-call due."""
        return int(self.reports["overdue"].sum()) if not self.reports.empty else 0

    @property
    def open_too_long(self) -> int:
        return int(self.reports["open_too_long"].sum()) if not self.reports.empty else 0

    def filtered(self, which: str, actor: str | None = None) -> pd.DataFrame:
        """The group rows with at least one report matching the filter (unanswered, overdue, mine)."""
        r, rows = self.reports, self.rows
        if which == "all" or rows.empty:
            return rows
        if which == "unanswered":
            keep = r.loc[r["state"] != ANSWERED, "group_head"]
        elif which == "overdue":
            keep = r.loc[r["overdue"], "group_head"]
        elif which == "mine":
            keep = r.loc[r["taken_by"] == actor, "group_head"]
        else:
            raise ValueError(f"unknown filter {which!r}")
        return rows[rows["report_id"].isin(set(keep))].reset_index(drop=True)


def build_queue(df: pd.DataFrame, rules: RuleSet, now: datetime) -> Queue:
    """Order and group the open reports; add clocks and words. Pure: frame in, queue out.

    Each report's clock is its response target until first answered; after a call-back that did
    not reach the patient, a re-call clock (the tier's ``recall_after_minutes``) runs from that
    call. A patient's reports form one group whose row shows its most urgent tier and its worst
    state: an overdue report is never hidden under an answered one. Groups that need something
    done (overdue or waiting for an answer or a re-call) come first, by tier, overdue first, then
    nearest clock; then the groups answered and still open, by tier.
    """
    if df.empty:
        empty = df.assign(group_head=pd.Series(dtype=object), repeats=pd.Series(dtype=int),
                          overdue=pd.Series(dtype=bool), open_too_long=pd.Series(dtype=bool),
                          state=pd.Series(dtype=int), taken_by=pd.Series(dtype=object))
        return Queue(rows=empty, reports=empty)
    df = df.copy()
    tiers = rules.tier_ids
    df["tier_rank"] = df["tier"].map(rules.tier_rank)
    # Every clock runs in real minutes between instants (clock.py): right across a change of the clocks.
    df["target_minutes"] = df["tier"].map({t: rules.respond_within_minutes(t) for t in tiers})
    df["respond_by"] = clock.add_minutes(df["reported_at"], df["target_minutes"])
    df["answered"] = df["first_response_at"].notna()
    df["recall_at"] = clock.add_minutes(df["not_reached_at"], df["tier"].map(
        {t: rules.recall_after_minutes(t) for t in tiers}))
    resolve_minutes = df["tier"].map({t: rules.resolve_within_minutes(t) for t in tiers})
    # The clock that matters now: to answer, or to call again.
    df["due_at"] = df["respond_by"].where(~df["answered"], df["recall_at"])
    waiting = ~df["answered"] | df["recall_at"].notna()
    left = -clock.minutes_between(df["due_at"], now)  # minutes left on the clock that matters (NaN: none)
    df["overdue"] = waiting & (left < 0)
    df["state"] = np.where(df["overdue"], OVERDUE, np.where(waiting, WAITING, ANSWERED))
    df["open_too_long"] = df["answered"] & (clock.minutes_between(df["reported_at"], now) > resolve_minutes)
    took = clock.minutes_between(df["reported_at"], df["first_response_at"])
    clocks = []
    for recall_at, answered, minutes_took, target, minutes_left in zip(
            df["recall_at"], df["answered"], took, df["target_minutes"], left):
        if not pd.isna(recall_at):
            clocks.append(f"re-call in {duration(minutes_left)}" if minutes_left >= 0
                          else f"OVERDUE re-call {duration(-minutes_left)}")
        elif answered:
            late = "" if minutes_took <= target else f", {duration(minutes_took - target)} late"
            clocks.append(f"answered in {duration(minutes_took)}{late}")
        else:
            clocks.append(f"{duration(minutes_left)} left" if minutes_left >= 0 else f"OVERDUE {duration(-minutes_left)}")
    df["clock"] = clocks
    df["minutes_left"] = left.fillna(float("inf"))
    df.loc[df["open_too_long"], "clock"] = df.loc[df["open_too_long"], "clock"] + " · OPEN PAST RESOLUTION TARGET"
    df["waiting"] = [duration(m) for m in clock.minutes_between(df["reported_at"], now)]
    fever = rules.parameter("neutropenic_fever_c")
    low = rules.parameter("neutropenic_low_temperature_c")
    records = df[[*REPORT_FLAGS, "temperature_c", "trend", "location", "onset"]].to_dict("records")
    df["red_flags"] = [", ".join(red_flags(r, fever_c=fever, low_c=low)) for r in records]
    df["cause_labels"] = [", ".join(rules.cause_short(c) for c in cs) for cs in df["causes"]]
    df["status"] = [status_of(r) for r in df[["last_action", "escalated_to", "call_backs", "reached"]].to_dict("records")]
    df["taken_by"] = df["taken_by"].where(df["taken_by"].notna(), None)
    # Most urgent first; then what it needs now (overdue, waiting, answered); then the nearest clock.
    df = df.sort_values(["tier_rank", "state", "due_at", "reported_at"], ascending=[False, True, True, True],
                        kind="stable", na_position="last")
    df["group_head"] = df.groupby("patient_id", sort=False)["report_id"].transform("first")
    size = df.groupby("patient_id")["report_id"].transform("size")
    df["repeats"] = (size - 1).astype(int)
    reports = df.reset_index(drop=True)
    heads = reports[reports["report_id"] == reports["group_head"]].reset_index(drop=True)
    # The group's worst state: the most pressing member (overdue first, then the nearest clock).
    worst = (reports.sort_values(["state", "due_at"], kind="stable", na_position="last")
             .groupby("patient_id", sort=False).head(1).set_index("patient_id"))
    w = worst.loc[heads["patient_id"]].reset_index()
    other = (w["report_id"] != heads["report_id"]).to_numpy()
    heads["group_state"] = w["state"].to_numpy()
    heads["group_due_at"] = w["due_at"].to_numpy()
    heads["clock"] = np.where(other & (w["state"] < heads["state"]).to_numpy(),
                              w["clock"] + " (" + w["report_id"] + ")", heads["clock"])
    heads["status"] = np.where(other & (w["state"] < heads["state"]).to_numpy(),
                               w["status"] + " (" + w["report_id"] + ")", heads["status"])
    heads["group_overdue"] = heads["group_state"] == OVERDUE
    latest = reports.groupby("patient_id")["reported_at"].max()
    heads["latest_report_at"] = heads["patient_id"].map(latest)
    claims = reports.dropna(subset=["taken_by_name"]).groupby("patient_id")["taken_by_name"].first()
    heads["taken_by_name"] = heads["patient_id"].map(claims)
    # The group's alerts: how many went out, how many could not be delivered, and any not yet seen
    # (an alerted report that nobody has answered).
    alerted = reports.assign(unseen=(reports["alerts_sent"] > 0) & ~reports["answered"]).groupby("patient_id").agg(
        sent=("alerts_sent", "sum"), undelivered=("alerts_undelivered", "sum"), unseen=("unseen", "any"))
    a = alerted.loc[heads["patient_id"]]
    heads["alerts"] = [summary_words(int(s), int(u), bool(n))
                       for s, u, n in zip(a["sent"], a["undelivered"], a["unseen"])]
    # Groups that need something done (overdue or waiting) come before those answered and open;
    # within each, the most urgent tier first, then overdue first, then the nearest clock.
    heads["in_hand"] = heads["group_state"] == ANSWERED
    heads = heads.sort_values(["in_hand", "tier_rank", "group_state", "group_due_at", "reported_at"],
                              ascending=[True, False, True, True, True], kind="stable", na_position="last")
    return Queue(rows=heads.reset_index(drop=True), reports=reports)


def flag_words(fields: list[str]) -> list[str]:
    """Red-flag fields in words."""
    return [FLAG_LABELS.get(f, f) for f in fields]


def group_table(open_frame: pd.DataFrame, rules: RuleSet, report_ids: list[str], now: datetime) -> pd.DataFrame:
    """A patient's other open reports, each with its own answers: tier, clock, pain, red flags, status."""
    q = build_queue(open_frame[open_frame["report_id"].isin(report_ids)], rules, now)
    r = q.reports
    if r.empty:
        return pd.DataFrame(columns=["Report", "Reported", "Tier", "Clock", "Pain", "Red flags", "Status"])
    return pd.DataFrame({
        "Report": r["report_id"], "Reported": [f"{t:%d %b %H:%M}" for t in r["reported_at"]],
        "Tier": [rules.tier_by_id[t].label.upper() for t in r["tier"]], "Clock": r["clock"],
        "Pain": r["pain_score"].astype(int).astype(str) + "/10", "Red flags": r["red_flags"], "Status": r["status"],
    })


def group_members(open_frame: pd.DataFrame, report_id: str) -> list[str]:
    """The open reports grouped with this one (the same patient's), itself first.

    ``open_frame`` is :func:`open_reports`; the queue groups by patient, so this is its group.
    """
    mine = open_frame.loc[open_frame["report_id"] == report_id, "patient_id"]
    if mine.empty:
        return [report_id]
    members = open_frame.loc[open_frame["patient_id"] == mine.iloc[0], "report_id"].tolist()
    return [report_id] + sorted(m for m in members if m != report_id)


# --------------------------------------------------------------------------- one report


REPORT_SQL = """
SELECT r.*, p.name AS patient_name, p.mrn, p.date_of_birth, p.sex, p.cancer_type, p.bone_metastases,
       p.osteoporosis, p.long_term_steroids, p.low_platelets, p.panel_id, pn.name AS panel_name,
       pc.phone, coalesce(s.name, r.entered_by) AS entered_by_name,
       c.triage_tier, c.override_tier, c.tier, t.rule_ids, t.leading_causes, t.causes, t.unrecognised_drugs,
       t.respond_within_minutes, t.respond_by, t.rules_version, t.triaged_at,
       (SELECT list(u.field ORDER BY u.field) FROM report_unasked u WHERE u.report_id = r.report_id) AS unasked,
       EXISTS (SELECT 1 FROM open_reports o WHERE o.report_id = r.report_id) AS is_open
FROM reports r
JOIN patients p ON p.patient_id = r.patient_id
JOIN panels pn ON pn.panel_id = p.panel_id
LEFT JOIN patient_contacts pc ON pc.patient_id = p.patient_id
LEFT JOIN staff s ON s.staff_id = r.entered_by
JOIN current_tiers c ON c.report_id = r.report_id
JOIN triage_results t ON t.report_id = r.report_id
WHERE r.report_id = ?
"""
EVENTS_SQL = """
SELECT event_id, acted_at, actor AS actor_id, coalesce(actor_name, actor) AS actor, role, action, tier_before,
       tier_after, note, reached, escalated_to, outcome, rules_version
FROM events WHERE report_id = ? ORDER BY event_id
"""
_LISTS = ("rule_ids", "leading_causes", "causes", "drug_effects", "evidence", "unrecognised_drugs", "unasked")


def age_on(born: Any, day: Any) -> int | None:
    """Age in whole years on a day (None when the date of birth is unknown)."""
    b, d = _stamp(born), _stamp(day)
    if b is None or d is None:
        return None
    return d.year - b.year - ((d.month, d.day) < (b.month, b.day))


def taken_by(events: pd.DataFrame) -> tuple[str, str] | None:
    """Who has taken the report (actor id, name), from its events: the last take not released or resolved."""
    holder = None
    for e in events.itertuples():
        if e.action == "take":
            holder = (e.actor_id, e.actor)
        elif e.action in ("release", "resolve"):
            holder = None
    return holder


def panel_of(db: Database, report_id: str) -> str | None:
    """The panel of a report's patient, or None when there is no such report."""
    return db.scalar("SELECT p.panel_id FROM reports r JOIN patients p USING (patient_id) WHERE r.report_id = ?",
                     [str(report_id)[:64]])


def report_detail(db: Database, rules: RuleSet, report_id: str) -> dict[str, Any] | None:
    """Everything the detail view shows about one report, or None if there is no such report.

    The drug effects that fit the report's timing and the doses or courses behind each fact come
    from the engine, now; the words for all of it from :func:`explain`.
    """
    with db.connect() as con:
        rows = con.execute(REPORT_SQL, [report_id]).df()
        if rows.empty:
            return None
        events = con.execute(EVENTS_SQL, [report_id]).df()
        alerts = report_alerts(con, report_id)
        found = explanations(con, rules, [report_id]).get(report_id, {"drug_effects": [], "evidence": []})
    detail = {**rows.iloc[0].to_dict(), **found}
    for key in _LISTS:
        value = detail.get(key)
        detail[key] = [] if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)) else [
            dict(v) if isinstance(v, dict) else v for v in value]
    detail["override_tier"] = detail["override_tier"] if isinstance(detail["override_tier"], str) else None
    detail["phone"] = detail["phone"] if isinstance(detail["phone"], str) else None
    detail["note"] = detail["note"] if isinstance(detail["note"], str) else None
    detail["age"] = age_on(detail["date_of_birth"], detail["reported_at"])
    detail["duration_days"] = None if not _present(detail.get("duration_days")) else int(detail["duration_days"])
    detail["events"] = events
    detail["alerts"] = alerts
    detail["taken_by"] = taken_by(events)
    # The red flags in words, by the rules' own thresholds (a fever, a low temperature).
    detail["red_flag_words"] = red_flags(detail, fever_c=rules.parameter("neutropenic_fever_c"),
                                         low_c=rules.parameter("neutropenic_low_temperature_c"))
    detail["explained"] = explain(
        rules, tier=detail["triage_tier"], rule_ids=detail["rule_ids"], leading=detail["leading_causes"],
        causes=detail["causes"], unrecognised=detail["unrecognised_drugs"], drug_effects=detail["drug_effects"],
        evidence=detail["evidence"], reported_at=detail["reported_at"], duration_days=detail["duration_days"])
    return detail


def describe_event(row: dict[str, Any]) -> str:
    """One line of a report's history in words (the note is kept apart: it is shown as plain text)."""
    action = row["action"]
    text = ACTION_LABELS.get(action, action)
    if action == "call_back":
        text += ": reached" if row.get("reached") else ": not reached"
    elif action == "escalate" and row.get("escalated_to"):
        text += f" to {ESCALATION_LABELS.get(row['escalated_to'], row['escalated_to'])}"
    elif action == "resolve" and row.get("outcome"):
        text += f": {OUTCOME_LABELS.get(row['outcome'], row['outcome'])}"
    elif action in ("override", "retriaged"):
        text += f": {row.get('tier_before')} → {row.get('tier_after')}"
    return text


def history(detail: dict[str, Any]) -> pd.DataFrame:
    """A report's history as plain text rows (When, Who, What, Note): the report itself, then every event."""
    first = {"When": detail["reported_at"], "Who": (detail.get("entered_by_name") or "patient (ePRO)")
             if detail.get("source") == "phone" else "patient (ePRO)",
             "What": f"Reported by {'phone' if detail.get('source') == 'phone' else 'ePRO'}",
             "Note": detail.get("note") or ""}
    rows = [first] + [
        {"When": e["acted_at"], "Who": f"{e['actor']} ({e['role']})", "What": describe_event(e),
         "Note": e["note"] if isinstance(e.get("note"), str) else ""}
        for e in detail["events"].to_dict("records")
    ]
    return pd.DataFrame(rows, columns=["When", "Who", "What", "Note"])


# The queue table's columns, in order (an empty queue, or an empty filter, has the same columns).
QUEUE_COLUMNS = ["Tier", "Clock", "Alerts", "Patient", "Pain", "Red flags", "Suspected", "Status", "Taken by",
                 "Repeats", "Waiting", "Panel", "Report"]


def queue_table(q: Queue, rules: RuleSet, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """The queue as a table of words (one row per patient episode); ``rows``: a filtered subset of q.rows."""
    rows = q.rows if rows is None else rows
    if rows.empty:
        return pd.DataFrame(columns=QUEUE_COLUMNS)
    return pd.DataFrame({
        "Tier": [f"{rules.tier_by_id[t].label.upper()}" for t in rows["tier"]],
        "Clock": rows["clock"],
        "Alerts": rows["alerts"],
        "Patient": rows["patient_name"] + " · " + rows["mrn"],
        "Pain": rows["pain_score"].astype(int),
        "Red flags": rows["red_flags"],
        "Suspected": rows["cause_labels"],
        "Status": rows["status"],
        "Taken by": [n if isinstance(n, str) else "" for n in rows["taken_by_name"]],
        "Repeats": [f"+{n}" if n else "" for n in rows["repeats"]],
        "Waiting": rows["waiting"],
        "Panel": rows["panel_id"],
        "Report": rows["report_id"],
    })


# --------------------------------------------------------------------------- a triage in words
#
# One composition of words for a triaged report, shared by the queue's detail, the referral summary
# and the what-if form: the rules that fired, the leading causes and those also considered, each drug
# effect and the exposures behind the facts, and the guidance lines (from guidance_for) with their
# times.

COUNTED_AS_WORDS = {"sact": "SACT", "gcsf": "G-CSF", "unrecognised": "unrecognised drug: may be anticancer treatment"}


def rules_fired_text(rules: RuleSet, rule_ids: list[str]) -> list[dict[str, str]]:
    """Each rule that fired: id, title, tier, condition, rationale and sources, for the detail view."""
    out = []
    for rid in rule_ids:
        r = rules.rule_by_id.get(rid)
        if r is None:  # made under other rules; the page says the rules changed
            out.append({"id": rid, "title": "(not in the rules in force)", "tier": "", "condition": "", "rationale": "",
                        "sources": ""})
            continue
        out.append({"id": r.id, "title": r.title, "tier": r.tier, "condition": r.condition,
                    "rationale": r.rationale, "sources": "; ".join(rules.source_titles(r.source))})
    return out


def _stamp(value: Any) -> pd.Timestamp | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return pd.Timestamp(value)


def day_text(value: Any, ref: Any = None, *, time: bool = False) -> str:
    """A date in words: 18 Nov (with the year when it is not the reference's), and the time if asked."""
    t = _stamp(value)
    if t is None:
        return "unknown"
    r = _stamp(ref)
    text = f"{t.day} {t:%b}" + (f" {t.year}" if r is None or r.year != t.year else "")
    return text + (f" {t:%H:%M}" if time else "")


def _window_of(rules: RuleSet, cause: str, drug: str):
    info = rules.resolve_drug(drug)
    for e in rules.effects:
        if e.cause == cause and info is not None and info.generic in e.drugs:
            return e
    return None


def _window_text(effect) -> str:
    w = effect.onset_window
    return f"{w.start_day}-{w.end_day}" if w.end_day is not None else f"{w.start_day} onwards"


def drug_effect_text(rules: RuleSet, effect: dict[str, Any], reported_at: Any, duration_days: int | None) -> str:
    """One drug effect in words: "G-CSF bone pain explained: pegfilgrastim given 18 Nov 10:00, onset day 1
    of 0-4", or "... possible: ..., onset unknown (the report is on day 2 of 0-4)"."""
    label = rules.cause_label(effect["cause"]) if effect["cause"] in rules.guidance.causes else effect["cause"]
    given = _stamp(effect.get("given_at"))
    reported = _stamp(reported_at)
    rule = _window_of(rules, effect["cause"], effect["drug"])
    window = f" of {_window_text(rule)}" if rule is not None else ""
    text = f"{label} {effect['status']}: {effect['drug']} given {day_text(given, reported, time=True)}"
    if effect["status"] == "explained" and given is not None and reported is not None and duration_days is not None:
        onset = (reported.normalize() - pd.Timedelta(days=duration_days)) - given.normalize()
        text += f", onset day {onset.days}{window}"
        if rule is not None and rule.lasts_at_most_days is not None:
            text += f", lasting {duration_days} of at most {rule.lasts_at_most_days} days"
    else:
        day = (reported.normalize() - given.normalize()).days if given is not None and reported is not None else None
        text += ", onset unknown" + (f" (the report is on day {day}{window})" if day is not None else "")
    if not effect.get("lowers", rule.lowers_moderate_pain if rule is not None else False):
        text += "; never lowers the tier"
    return text


def exposure_text(item: dict[str, Any], ref: Any = None) -> str:
    """A dose ("docetaxel 10 Nov") or a course ("letrozole 3 Jan 2025 to 10 Nov", "... from 3 Jan, running")."""
    given = day_text(item.get("given_at"), ref)
    if item.get("course"):
        stopped = _stamp(item.get("stopped_at"))
        return f"{item['drug']} from {given}, " + (f"stopped {day_text(stopped, ref)}" if stopped is not None
                                                    else "running")
    return f"{item['drug']} {given}"


def _is_course(rules: RuleSet, item: dict[str, Any]) -> bool:
    info = rules.resolve_drug(item["drug"])
    return bool(info.continuous) if info is not None else _stamp(item.get("stopped_at")) is not None


def _grouped(rules: RuleSet, items: list[dict[str, Any]], ref: Any) -> list[str]:
    """Exposures in words, one per drug and reason: its latest dose (and how many more), or each course."""
    groups: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for item in items:
        groups.setdefault((item["drug"], item.get("counted_as")), []).append(item)
    out = []
    for (drug, counted), group in groups.items():
        group = sorted(group, key=lambda x: _stamp(x["given_at"]))
        why = f" ({COUNTED_AS_WORDS.get(counted, counted)})" if counted and counted in COUNTED_AS_WORDS else ""
        courses = [g for g in group if _is_course(rules, g)]
        doses = [g for g in group if not _is_course(rules, g)]
        for c in courses:
            out.append(exposure_text({**c, "course": True}, ref) + why)
        if doses:
            more = len(doses) - 1
            notes = [COUNTED_AS_WORDS[counted]] if counted in COUNTED_AS_WORDS else []
            notes += [f"also {more} earlier dose{'s' if more > 1 else ''}"] if more else []
            out.append(exposure_text(doses[-1], ref) + (f" ({'; '.join(notes)})" if notes else ""))
    return out


def recent_sact_text(rules: RuleSet, evidence: list[dict[str, Any]], reported_at: Any) -> str:
    """Whether SACT was recent, and what made it so, in words."""
    days = rules.parameter("sact_lookback_days")
    items = [e for e in evidence if e["fact"] == RECENT_SACT]
    if not items:
        return (f"Recent SACT: no, no SACT in the {days} days before the report (nor a G-CSF dose or an "
                "unrecognised drug)")
    return "Recent SACT: yes, because " + ", ".join(_grouped(rules, items, reported_at))


def fact_description(rules: RuleSet, name: str) -> str:
    fact = rules.facts.get(name)
    if fact is None:
        return name
    try:
        return fact.description.format(**{k: p.value for k, p in rules.parameters.items()})
    except (KeyError, IndexError, ValueError):
        return fact.description


def facts_read_by(rules: RuleSet, rule_ids: list[str]) -> set[str]:
    """The treatment facts that the conditions of these rules read."""
    found: set[str] = set()

    def walk(c: Any) -> None:
        if isinstance(c, str):
            if c in rules.facts:
                found.add(c)
            return
        for attr in ("any", "all"):
            for x in getattr(c, attr, None) or []:
                walk(x)
        if getattr(c, "not_", None) is not None:
            walk(c.not_)

    for rid in rule_ids:
        if rid in rules.rule_by_id:
            walk(rules.rule_by_id[rid].when)
    return found


def fact_lines(rules: RuleSet, evidence: list[dict[str, Any]], reported_at: Any,
               rule_ids: list[str] | None = None) -> list[str]:
    """The other treatment facts that held (those the fired rules read, when given), with the doses or
    courses each rests on."""
    used = facts_read_by(rules, rule_ids) if rule_ids is not None else None
    names = list(dict.fromkeys(e["fact"] for e in evidence if e["fact"] != RECENT_SACT
                               and (used is None or e["fact"] in used)))
    return [f"{fact_description(rules, n)}: " + ", ".join(_grouped(rules, [e for e in evidence if e["fact"] == n],
                                                                       reported_at)) for n in names]


def guidance_line(line: Line) -> dict[str, Any]:
    """A guidance line for display: its topic, its time in words ("now", "within 1 week") and its text."""
    return {"topic": line.topic, "when": within_words(line.within_hours), "text": line.text}


def guidance_line_text(line: dict[str, Any]) -> str:
    """A displayed guidance line as one text: "today · Whole-spine MRI ..."."""
    return f"{line['when']} · {line['text']}"


def explain(rules: RuleSet, *, tier: str, rule_ids: list[str], leading: list[str], causes: list[str],
            unrecognised: list[str], drug_effects: list[dict[str, Any]], evidence: list[dict[str, Any]],
            reported_at: Any, duration_days: int | None) -> dict[str, Any]:
    """A triage in words: the one composition the detail, the referral summary and the what-if show."""
    known_rules = tuple(r for r in rule_ids if r in rules.rule_by_id)
    known = set(rules.guidance.causes)
    g = guidance_for(rules, tier, known_rules, tuple(c for c in leading if c in known),
                     tuple(c for c in causes if c in known), tuple(unrecognised))
    label = lambda c: rules.cause_label(c) if c in known else c  # noqa: E731
    return {
        "rules_fired": rules_fired_text(rules, list(rule_ids)),
        "leading": [label(c) for c in leading],
        "leading_note": ("" if leading else
                         f"No cause named by the rules that set the tier: the {rules.tier_by_id[tier].label.lower()} "
                         "tier's own guidance."),
        "also_considered": [label(c) for c in g.also_considered],
        "drug_effects": [drug_effect_text(rules, e, reported_at, duration_days) for e in drug_effects],
        "recent_sact": recent_sact_text(rules, evidence, reported_at),
        "facts": fact_lines(rules, evidence, reported_at, list(rule_ids)),
        "imaging": [guidance_line(x) for x in g.imaging],
        "referral": [guidance_line(x) for x in g.referral],
        "advice": list(g.advice),
        "staff_notes": g.staff_notes_text,
        "unrecognised": list(unrecognised),
        "guidance": g,
    }


def explain_outcome(rules: RuleSet, outcome: Any, reported_at: Any, duration_days: int | None) -> dict[str, Any]:
    """:func:`explain` for an engine Outcome (the what-if form)."""
    return explain(rules, tier=outcome.tier, rule_ids=outcome.rule_ids, leading=outcome.leading_causes,
                   causes=outcome.causes, unrecognised=outcome.unrecognised_drugs, drug_effects=outcome.drug_effects,
                   evidence=outcome.evidence, reported_at=reported_at, duration_days=duration_days)
