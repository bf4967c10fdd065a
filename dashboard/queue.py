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

from dashboard.db import Database
from dashboard.labels import ACTION_LABELS, ESCALATION_LABELS, OUTCOME_LABELS, duration, red_flags
from dashboard.models import REPORT_FLAGS
from dashboard.retriage import explanations
from dashboard.rules import RuleSet
from dashboard.workflow import RESPONSE_ACTIONS

_RESPONSES = "(" + ", ".join(f"'{a}'" for a in RESPONSE_ACTIONS) + ")"

OPEN_SQL = f"""
WITH o AS (
    SELECT report_id, patient_id, panel_id FROM open_reports
    WHERE panel_id IN (SELECT unnest($panels::VARCHAR[]))
),
ev AS (SELECT * FROM events WHERE report_id IN (SELECT report_id FROM o)),
st AS (
    SELECT report_id,
           min(acted_at) FILTER (WHERE action IN {_RESPONSES}) AS first_response_at,
           arg_min(coalesce(actor_name, actor), event_id) FILTER (WHERE action IN {_RESPONSES}) AS first_responder,
           arg_max(tier_after, event_id) FILTER (WHERE action = 'override') AS override_tier,
           arg_max(action, event_id) AS last_action,
           max(acted_at) AS last_action_at,
           arg_max(escalated_to, event_id) FILTER (WHERE action = 'escalate') AS escalated_to,
           bool_or(reached) FILTER (WHERE action = 'call_back') AS reached,
           count(*) FILTER (WHERE action = 'call_back') AS call_backs
    FROM ev GROUP BY report_id
)
SELECT o.report_id, o.patient_id, o.panel_id, p.name AS patient_name, p.mrn, p.cancer_type,
       r.reported_at, r.source, r.pain_score, r.onset, r.trend, r.location, r.duration_days,
       {", ".join("r." + f for f in REPORT_FLAGS)}, r.temperature_c,
       t.tier AS triage_tier, coalesce(st.override_tier, t.tier) AS tier, t.rule_ids, t.causes,
       t.rules_version, st.first_response_at, st.first_responder, st.last_action, st.last_action_at,
       st.escalated_to, st.reached, coalesce(st.call_backs, 0) AS call_backs
FROM o
JOIN reports r ON r.report_id = o.report_id
JOIN patients p ON p.patient_id = o.patient_id
JOIN triage_results t ON t.report_id = o.report_id
LEFT JOIN st ON st.report_id = o.report_id
"""


def open_reports(db: Database, panels: list[str]) -> pd.DataFrame:
    """Every open report of the panels, with its current tier (after any override) and state."""
    return db.query(OPEN_SQL, {"panels": list(panels)})


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and value is not pd.NA


def status_of(row: dict[str, Any]) -> str:
    last = row.get("last_action")
    if not _present(last):
        return "new"
    if _present(row.get("escalated_to")):
        return f"escalated to {ESCALATION_LABELS.get(row['escalated_to'], row['escalated_to'])}"
    if row.get("call_backs"):
        return "called back" if row.get("reached") else "call-back: not reached"
    return ACTION_LABELS.get(last, last).lower()


def clock_text(respond_by: datetime, first_response_at: datetime | None, target_minutes: int,
               reported_at: datetime, now: datetime) -> tuple[str, float]:
    """The response clock in words, and minutes left (negative when overdue; +inf once answered)."""
    if first_response_at is not None and not pd.isna(first_response_at):
        took = (first_response_at - reported_at).total_seconds() / 60
        verdict = "" if took <= target_minutes else f", {duration(took - target_minutes)} late"
        return f"answered in {duration(took)}{verdict}", float("inf")
    left = (respond_by - now).total_seconds() / 60
    if left >= 0:
        return f"{duration(left)} left", left
    return f"OVERDUE {duration(-left)}", left


@dataclass(frozen=True)
class Queue:
    """The queue as shown: one row per patient episode (group), most urgent first."""

    rows: pd.DataFrame  # one row per group head
    reports: pd.DataFrame  # every open report, with its group head

    @property
    def unacknowledged_emergencies(self) -> pd.DataFrame:
        r = self.reports
        return r[(r["tier"] == "emergency") & r["first_response_at"].isna()].sort_values("reported_at")


def build_queue(df: pd.DataFrame, rules: RuleSet, now: datetime) -> Queue:
    """Order and group the open reports; add clocks and words. Pure: frame in, queue out."""
    if df.empty:
        empty = df.assign(group_head=pd.Series(dtype=object), repeats=pd.Series(dtype=int))
        return Queue(rows=empty, reports=empty)
    df = df.copy()
    rank = rules.tier_rank
    targets = {t: rules.respond_within_minutes(t) for t in rules.tier_ids}
    df["tier_rank"] = df["tier"].map(rank)
    df["target_minutes"] = df["tier"].map(targets)
    df["respond_by"] = df["reported_at"] + pd.to_timedelta(df["target_minutes"], unit="m")
    df["answered"] = df["first_response_at"].notna()
    clocks = [
        clock_text(rb, fr if not pd.isna(fr) else None, tm, ra, now)
        for rb, fr, tm, ra in zip(df["respond_by"], df["first_response_at"], df["target_minutes"], df["reported_at"])
    ]
    df["clock"] = [c[0] for c in clocks]
    df["minutes_left"] = [c[1] for c in clocks]
    df["overdue"] = df["minutes_left"] < 0
    df["waiting"] = [duration((now - ra).total_seconds() / 60) for ra in df["reported_at"]]
    fever = rules.parameter("neutropenic_fever_c")
    low = rules.parameter("neutropenic_low_temperature_c")
    records = df[[*REPORT_FLAGS, "temperature_c", "trend", "location", "onset"]].to_dict("records")
    df["red_flags"] = [", ".join(red_flags(r, fever_c=fever, low_c=low)) for r in records]
    df["cause_labels"] = [", ".join(rules.cause_short(c) for c in cs) for cs in df["causes"]]
    df["status"] = [status_of(r) for r in df[["last_action", "escalated_to", "call_backs", "reached"]].to_dict("records")]
    # Most urgent first; unanswered before answered; then nearest the target (overdue first).
    df = df.sort_values(["tier_rank", "answered", "respond_by"], ascending=[False, True, True], kind="stable")
    df["group_head"] = df.groupby("patient_id", sort=False)["report_id"].transform("first")
    size = df.groupby("patient_id")["report_id"].transform("size")
    df["repeats"] = (size - 1).astype(int)
    heads = df[df["report_id"] == df["group_head"]].reset_index(drop=True)
    latest = df.groupby("patient_id")["reported_at"].max()
    heads["latest_report_at"] = heads["patient_id"].map(latest)
    return Queue(rows=heads, reports=df.reset_index(drop=True))


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
       p.osteoporosis, p.long_term_steroids, p.panel_id, pn.name AS panel_name,
       t.tier AS triage_tier, t.rule_ids, t.causes, t.unrecognised_drugs,
       t.respond_within_minutes, t.respond_by, t.rules_version, t.triaged_at,
       g.imaging, g.referral, g.advice,
       (SELECT arg_max(tier_after, event_id) FROM events e
         WHERE e.report_id = r.report_id AND e.action = 'override') AS override_tier,
       EXISTS (SELECT 1 FROM open_reports o WHERE o.report_id = r.report_id) AS is_open
FROM reports r
JOIN patients p ON p.patient_id = r.patient_id
JOIN panels pn ON pn.panel_id = p.panel_id
JOIN triage_results t ON t.report_id = r.report_id
JOIN guidance_sets g ON g.guidance_key = t.guidance_key
WHERE r.report_id = ?
"""
EVENTS_SQL = """
SELECT event_id, acted_at, coalesce(actor_name, actor) AS actor, role, action, tier_before, tier_after,
       note, reached, escalated_to, outcome, rules_version
FROM events WHERE report_id = ? ORDER BY event_id
"""


def report_detail(db: Database, rules: RuleSet, report_id: str) -> dict[str, Any] | None:
    """Everything the detail view shows about one report, or None if there is no such report.

    Which dose explains the pain and which dose each fact rests on come from the engine, now.
    """
    with db.connect() as con:
        rows = con.execute(REPORT_SQL, [report_id]).df()
        if rows.empty:
            return None
        events = con.execute(EVENTS_SQL, [report_id]).df()
        explained = explanations(con, rules, [report_id]).get(report_id, {"links": [], "evidence": []})
    detail = {**rows.iloc[0].to_dict(), **explained}
    for key in ("rule_ids", "causes", "links", "evidence", "unrecognised_drugs", "imaging", "referral", "advice"):
        value = detail.get(key)
        detail[key] = [] if value is None else [dict(v) if isinstance(v, dict) else v for v in value]
    detail["override_tier"] = detail["override_tier"] if isinstance(detail["override_tier"], str) else None
    detail["tier"] = detail["override_tier"] or detail["triage_tier"]
    detail["events"] = events
    return detail


def describe_event(row: dict[str, Any]) -> str:
    """One line of a report's history in words."""
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
    note = row.get("note")
    if isinstance(note, str) and note:
        text += f" — {note}"
    return text


def queue_table(q: Queue, rules: RuleSet) -> pd.DataFrame:
    """The queue as a table of words (one row per patient episode)."""
    rows = q.rows
    if rows.empty:
        return pd.DataFrame(columns=["Tier", "Clock", "Patient", "Pain", "Red flags", "Suspected", "Status",
                                     "Repeats", "Waiting", "Panel", "Report"])
    return pd.DataFrame({
        "Tier": [f"{rules.tier_by_id[t].label.upper()}" for t in rows["tier"]],
        "Clock": rows["clock"],
        "Patient": rows["patient_name"] + " · " + rows["mrn"],
        "Pain": rows["pain_score"].astype(int),
        "Red flags": rows["red_flags"],
        "Suspected": rows["cause_labels"],
        "Status": rows["status"],
        "Repeats": [f"+{n}" if n else "" for n in rows["repeats"]],
        "Waiting": rows["waiting"],
        "Panel": rows["panel_id"],
        "Report": rows["report_id"],
    })


def rules_fired_text(rules: RuleSet, rule_ids: list[str]) -> list[dict[str, str]]:
    """Each rule that fired: id, title, tier, condition, rationale and sources, for the detail view."""
    out = []
    for rid in rule_ids:
        r = rules.rule_by_id[rid]
        out.append({"id": r.id, "title": r.title, "tier": r.tier, "condition": r.condition,
                    "rationale": r.rationale, "sources": "; ".join(rules.source_titles(r.source))})
    return out


def cause_links_text(rules: RuleSet, detail: dict[str, Any]) -> list[str]:
    """Each suspected cause with the dose it is linked to, in words."""
    links = {l["cause"]: l for l in (detail.get("links") or [])}
    evidence = {e["fact"]: e for e in (detail.get("evidence") or [])}
    fact_for_cause = {"neutropenic_sepsis": "recent_sact", "cipn": "neurotoxic_drug_given",
                      "ai_arthralgia": "aromatase_inhibitor_established"}
    report = {k: detail.get(k) for k in (*REPORT_FLAGS, "temperature_c", "trend", "location", "onset")}
    patient = [w for k, w in (("bone_metastases", "known bone metastases"), ("osteoporosis", "osteoporosis"),
                              ("long_term_steroids", "long-term steroids")) if detail.get(k)]
    if "myeloma" in str(detail.get("cancer_type", "")).lower():
        patient.append("myeloma")
    features = ", ".join(red_flags(report) + patient) or "see the report"
    lines = []
    for cause in detail.get("causes") or []:
        label = rules.cause_label(cause)
        if cause in links:
            l = links[cause]
            end = "onwards" if l.get("end_day") is None else l["end_day"]
            lines.append(f"{label}: {l['drug']} given {l['given_at']:%d %b %Y %H:%M}, "
                         f"pain began on day {l['day']} of the {l['start_day']}-{end} day window")
        elif fact_for_cause.get(cause) in evidence:
            e = evidence[fact_for_cause[cause]]
            lines.append(f"{label}: {e['drug']} given {e['given_at']:%d %b %Y} ({e['days_before']} days before the report)")
        else:
            lines.append(f"{label}: from the report's and the patient's features ({features})")
    return lines
