"""Team leads' response times: report to answer and to resolution, against each tier's targets.

One query reads the reports of the period and panels (filtered by report time, so a year's window
reads a year, not the history) with what the care team did about each, as of ``now``: an action
after ``now`` has not happened yet. Every table and chart is an aggregate of that per-report frame,
and the reports behind any figure come from the same frame (:func:`reports_behind`).

The tier a report is measured against is the tier in force when it was first answered (the
``tier_before`` of that event), or its current tier while it waits. Its response target is that
tier's ``respond_within_minutes``; its resolution target that tier's ``resolve_within_minutes``,
both counted from the time of the report.

A report's response is one of:

- answered in time: first answered no later than its target;
- answered late: first answered after its target;
- unanswered, past target: not answered, and its target passed before ``now`` (a breach: it can
  only be answered late);
- unanswered, within target: not answered, and its target not passed yet (not decided: left out of
  the share within target and the times, and counted apart).

The share within target is answered in time over every decided report (answered, or unanswered
past target). The median and the 90th percentile are over the same reports: the time to the first
answer, or for a report still unanswered past its target the time it has waited so far (the least
it will take, so the figures never flatter). The median is the middle value (the mean of the two
middle values for an even count). The 90th percentile is the nearest-rank one: the
ceil(0.9 x n)-th shortest time, the time within which at least 90% of the reports were answered.
Resolution is measured in the same way: resolved in time, resolved late, open past the resolution
target, open within it.

Durations are real minutes between instants (:mod:`dashboard.clock`), right across a change of the
clocks. In hours: reported on a weekday (Monday to Friday), at or after ``in_hours[0]`` o'clock and
before ``in_hours[1]`` o'clock, local time. A repeat is a report made while the same patient had an
earlier report still open (not resolved).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from dashboard import clock
from dashboard.db import Database
from dashboard.labels import ACTION_LABELS, ESCALATION_LABELS, OUTCOME_LABELS, duration
from dashboard.rules import RuleSet
from dashboard.workflow import RESPONSES_SQL


# A report's response, and its resolution, as of now.
IN_TIME, LATE, PAST_TARGET, WITHIN_TARGET = "answered in time", "answered late", "unanswered, past target", \
    "unanswered, within target"
RESPONSES = (IN_TIME, LATE, PAST_TARGET, WITHIN_TARGET)
RESOLVED_IN_TIME, RESOLVED_LATE, OPEN_PAST_TARGET, OPEN_WITHIN_TARGET = (
    "resolved in time", "resolved late", "open, past resolution target", "open, within resolution target")
RESOLUTIONS = (RESOLVED_IN_TIME, RESOLVED_LATE, OPEN_PAST_TARGET, OPEN_WITHIN_TARGET)

# Each report is measured against the tier in force when it was first answered (the tier the
# responder saw, kept on the event), else the override in force as of ``now``, else its triage's.
# This is the response-time reading of a tier, as of a moment; ``current_tiers`` (the tier now, for
# the queue, the timeline and the actions) is the same rule without the moment.
TIMINGS_SQL = f"""
WITH r AS (
    SELECT r.report_id, r.patient_id, r.reported_at, p.panel_id, p.name AS patient_name, p.mrn
    FROM reports r JOIN patients p ON p.patient_id = r.patient_id
    WHERE r.reported_at >= $start AND r.reported_at < $end AND r.reported_at <= $now
      AND p.panel_id IN (SELECT unnest($panels::VARCHAR[]))
),
e AS (
    SELECT report_id,
           min(acted_at) FILTER (WHERE action IN {RESPONSES_SQL}) AS first_response_at,
           arg_min(tier_before, {{'t': acted_at, 'i': event_id}})
               FILTER (WHERE action IN {RESPONSES_SQL}) AS tier_at_response,
           arg_min(coalesce(actor_name, actor), {{'t': acted_at, 'i': event_id}})
               FILTER (WHERE action IN {RESPONSES_SQL}) AS responder,
           arg_min(action, {{'t': acted_at, 'i': event_id}}) FILTER (WHERE action IN {RESPONSES_SQL}) AS first_action,
           arg_min(reached, {{'t': acted_at, 'i': event_id}}) FILTER (WHERE action IN {RESPONSES_SQL}) AS first_reached,
           list(DISTINCT escalated_to ORDER BY escalated_to) FILTER (WHERE action = 'escalate') AS escalated_to,
           min(acted_at) FILTER (WHERE action = 'resolve') AS resolved_at,
           arg_min(outcome, {{'t': acted_at, 'i': event_id}}) FILTER (WHERE action = 'resolve') AS outcome,
           arg_min(coalesce(actor_name, actor), {{'t': acted_at, 'i': event_id}})
               FILTER (WHERE action = 'resolve') AS resolver,
           arg_max(tier_after, {{'t': acted_at, 'i': event_id}}) FILTER (WHERE action = 'override') AS override_tier
    FROM events
    WHERE report_id IN (SELECT report_id FROM r) AND acted_at <= $now
    GROUP BY report_id
),
-- Every report of these patients, with when it closed (as of now), to find the repeats.
closed AS (
    SELECT report_id, min(acted_at) AS resolved_at FROM events
    WHERE action = 'resolve' AND acted_at <= $now
      AND report_id IN (SELECT report_id FROM reports WHERE patient_id IN (SELECT patient_id FROM r))
    GROUP BY report_id
),
seq AS (
    SELECT o.report_id,
           max(coalesce(c.resolved_at, 'infinity'::TIMESTAMPTZ)) OVER (
               PARTITION BY o.patient_id ORDER BY o.reported_at, o.report_id
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) > o.reported_at AS is_repeat
    FROM reports o LEFT JOIN closed c ON c.report_id = o.report_id
    WHERE o.patient_id IN (SELECT patient_id FROM r)
)
SELECT r.report_id, r.patient_id, r.panel_id, r.patient_name, r.mrn, r.reported_at,
       -- A report without a triage result is measured against the highest tier (never left out).
       coalesce(e.tier_at_response, e.override_tier, t.tier, $highest) AS tier,
       e.first_response_at, e.responder, e.first_action, e.first_reached, coalesce(e.escalated_to, []) AS escalated_to,
       e.resolved_at, e.outcome, e.resolver, coalesce(s.is_repeat, FALSE) AS is_repeat
FROM r
LEFT JOIN triage_results t ON t.report_id = r.report_id
LEFT JOIN e ON e.report_id = r.report_id
LEFT JOIN seq s ON s.report_id = r.report_id
ORDER BY r.reported_at, r.report_id
"""


@dataclass(frozen=True)
class ResponseTimes:
    by_tier: pd.DataFrame
    hours: pd.DataFrame
    weekly: pd.DataFrame
    volumes: pd.DataFrame
    nurses: pd.DataFrame
    distribution: pd.DataFrame  # per-report minutes measured (sampled per tier for the chart)
    timings: pd.DataFrame  # one row per report: the reports behind every figure
    repeats: int
    reports: int
    past_target: int  # unanswered, past the response target (breaches)
    within_target: int  # unanswered, target not passed yet
    now: datetime


def median(values: pd.Series) -> float:
    """The middle value (the mean of the two middle values for an even count); NaN when none."""
    v = pd.Series(values, dtype="float64").dropna().to_numpy()
    return float(np.median(v)) if len(v) else math.nan


def percentile(values: pd.Series, q: float = 0.9) -> float:
    """Nearest-rank percentile: the ceil(q x n)-th smallest value; NaN when none."""
    v = np.sort(pd.Series(values, dtype="float64").dropna().to_numpy())
    if not len(v):
        return math.nan
    rank = max(1, math.ceil(round(q * len(v), 9)))
    return float(v[rank - 1])


def _against_target(took: np.ndarray, done: np.ndarray, waited: np.ndarray, target: np.ndarray,
                    labels: tuple[str, str, str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Each report against a target: (in time, late, not done past the target, not done within it),
    and the minutes it counts with (the time taken; the time waited so far once past the target)."""
    in_time, late, past, within = labels
    verdict = np.select([done & (took <= target), done, waited > target], [in_time, late, past], within).astype(object)
    return verdict, np.where(done, took, np.where(verdict == past, waited, np.nan))


def classify(frame: pd.DataFrame, rules: RuleSet, now: datetime, in_hours: tuple[int, int] = (8, 18)) -> pd.DataFrame:
    """Each report's targets, times, response and resolution as of ``now``, in or out of hours, week."""
    df = frame.copy()
    tiers = rules.tier_ids
    df["target_minutes"] = df["tier"].map({t: rules.respond_within_minutes(t) for t in tiers})
    df["resolve_target_minutes"] = df["tier"].map({t: rules.resolve_within_minutes(t) for t in tiers})
    waited = clock.minutes_between(df["reported_at"], now).to_numpy()
    for end, target, verdict, minutes, time_to, labels in (
            ("first_response_at", "target_minutes", "response", "ack_minutes", "minutes_to_ack", RESPONSES),
            ("resolved_at", "resolve_target_minutes", "resolution", "resolve_minutes", "minutes_to_resolve",
             RESOLUTIONS)):
        df[time_to] = clock.minutes_between(df["reported_at"], df[end]).to_numpy()
        df[verdict], df[minutes] = _against_target(df[time_to].to_numpy(), df[end].notna().to_numpy(), waited,
                                                   df[target].to_numpy(dtype="float64"), labels)
    df["waited_minutes"] = waited
    local = clock.local(df["reported_at"])
    df["in_hours"] = ((local.dt.day_of_week < 5) & (local.dt.hour >= in_hours[0])
                      & (local.dt.hour < in_hours[1])).astype(bool)
    df["week"] = (local.dt.normalize() - pd.to_timedelta(local.dt.day_of_week, unit="D")).dt.date
    return df


def timings(db: Database, rules: RuleSet, panels: list[str], start: date, end: date, now: datetime, *,
            in_hours: tuple[int, int] = (8, 18)) -> pd.DataFrame:
    """One row per report made from ``start`` up to and including ``end`` (and by ``now``), as of ``now``."""
    params = {"start": datetime.combine(start, datetime.min.time()),
              "end": datetime.combine(end + timedelta(days=1), datetime.min.time()),
              "now": now, "panels": list(panels), "highest": rules.tier_ids[0]}
    with db.connect() as con:
        frame = con.execute(TIMINGS_SQL, params).df()
    return classify(frame, rules, now, in_hours)


def figures(group: pd.DataFrame) -> dict[str, float]:
    """The figures of a set of classified reports (see the module's docstring for each definition)."""
    resp, res = group["response"], group["resolution"]
    decided = int((resp != WITHIN_TARGET).sum())
    res_decided = int((res != OPEN_WITHIN_TARGET).sum())
    in_time, res_in_time = int((resp == IN_TIME).sum()), int((res == RESOLVED_IN_TIME).sum())
    return {
        "reports": len(group),
        "answered": int(resp.isin([IN_TIME, LATE]).sum()),
        "answered_in_time": in_time,
        "answered_late": int((resp == LATE).sum()),
        "unanswered_past_target": int((resp == PAST_TARGET).sum()),
        "unanswered_within_target": int((resp == WITHIN_TARGET).sum()),
        "within_target": in_time / decided if decided else math.nan,
        "median_ack": median(group["ack_minutes"]),
        "p90_ack": percentile(group["ack_minutes"]),
        "resolved": int(res.isin([RESOLVED_IN_TIME, RESOLVED_LATE]).sum()),
        "resolved_late": int((res == RESOLVED_LATE).sum()),
        "open_past_resolution_target": int((res == OPEN_PAST_TARGET).sum()),
        "resolved_within_target": res_in_time / res_decided if res_decided else math.nan,
        "median_resolve": median(group["resolve_minutes"]),
        "p90_resolve": percentile(group["resolve_minutes"]),
        "repeats": int(group["is_repeat"].sum()),
    }


def _table(df: pd.DataFrame, keys: list[str], rules: RuleSet, *, first: dict[str, str] | None = None) -> pd.DataFrame:
    """The figures per group of ``keys`` in the keys' order, the highest tier first (``first``: columns
    to carry from each group's first row)."""
    rows = []
    for key, g in df.groupby(keys, sort=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        for col, src in (first or {}).items():
            row[col] = g[src].iloc[0]
        rows.append({**row, **figures(g)})
    out = pd.DataFrame(rows, columns=[*keys, *(first or {}), *figures(df.head(0))])
    if out.empty:
        return out
    out["_tier"] = -out["tier"].map(rules.tier_rank)
    return out.sort_values([k if k != "tier" else "_tier" for k in keys]).drop(columns="_tier").reset_index(drop=True)


def response_times(db: Database, rules: RuleSet, panels: list[str], start: date, end: date, now: datetime, *,
                   in_hours: tuple[int, int] = (8, 18), sample_per_tier: int = 4000) -> ResponseTimes:
    """Response-time tables for reports made from ``start`` up to and including ``end``, as of ``now``."""
    df = timings(db, rules, panels, start, end, now, in_hours=in_hours)
    by_tier = _table(df, ["tier"], rules, first={"target_minutes": "target_minutes",
                                                 "resolve_target_minutes": "resolve_target_minutes"})
    hours = _table(df.assign(period=np.where(df["in_hours"], "in hours", "out of hours")), ["tier", "period"], rules)
    weekly = _table(df, ["week", "tier"], rules)  # by week, then tier
    volumes = weekly[["week", "tier", "reports"]].copy()
    answered = df[df["response"].isin([IN_TIME, LATE])]
    nurse_rows = []
    for nurse, g in answered.groupby("responder", sort=False):
        emergencies = g[g["tier"] == rules.tier_ids[0]]
        nurse_rows.append({"nurse": nurse, "reports": len(g), "within_target": float((g["response"] == IN_TIME).mean()),
                           "median_ack": median(g["ack_minutes"]), "emergencies": len(emergencies),
                           "median_ack_emergency": median(emergencies["ack_minutes"])})
    nurses = pd.DataFrame(nurse_rows, columns=["nurse", "reports", "within_target", "median_ack", "emergencies",
                                               "median_ack_emergency"])
    nurses = nurses.sort_values(["reports", "nurse"], ascending=[False, True]).reset_index(drop=True)
    measured = df.loc[df["ack_minutes"].notna(), ["tier", "ack_minutes", "response"]]
    distribution = (measured.sample(frac=1, random_state=0).groupby("tier").head(sample_per_tier)
                    .rename(columns={"ack_minutes": "minutes_to_ack"}))
    return ResponseTimes(by_tier, hours, weekly, volumes, nurses, distribution.reset_index(drop=True), df,
                         repeats=int(df["is_repeat"].sum()), reports=len(df),
                         past_target=int((df["response"] == PAST_TARGET).sum()),
                         within_target=int((df["response"] == WITHIN_TARGET).sum()), now=now)


# ---------------------------------------------------------------------------- the reports behind a figure

# What a lead can ask to see, per tier: (what the list is called, the column, its values).
BEHIND: dict[str, tuple[str, tuple[str, ...]]] = {
    "answered late": ("response", (LATE,)),
    "unanswered, past target": ("response", (PAST_TARGET,)),
    "unanswered, within target": ("response", (WITHIN_TARGET,)),
    "answered in time": ("response", (IN_TIME,)),
    "open past resolution target": ("resolution", (OPEN_PAST_TARGET,)),
    "resolved late": ("resolution", (RESOLVED_LATE,)),
    "repeats": ("is_repeat", (True,)),
    "all": ("response", RESPONSES),
}


# The outcome chart's bars, in the order of its traces (charts.response_outcomes): each is a list of
# BEHIND, so a click on a bar opens the reports it counts.
OUTCOME_BARS = (IN_TIME, LATE, PAST_TARGET, WITHIN_TARGET)


def choice_from_click(points: list[dict]) -> str | None:
    """The figure a lead clicked on the outcome chart ("tier: which", as the reports-behind choice
    names it), from the chart's selection (the first point: its trace, and its tier as customdata)."""
    if not points:
        return None
    point = points[0]
    trace, tier = point.get("curve_number"), point.get("customdata")
    if isinstance(tier, (list, tuple)):
        tier = tier[0] if tier else None
    if not isinstance(trace, int) or not 0 <= trace < len(OUTCOME_BARS) or not isinstance(tier, str):
        return None
    return f"{tier}: {OUTCOME_BARS[trace]}"


def behind_choices(df: pd.DataFrame, rules: RuleSet) -> list[tuple[str, str, int]]:
    """(tier, which, count) for every non-empty list behind a figure, highest tier first, late first."""
    out = []
    for tier in rules.tier_ids:
        sub = df[df["tier"] == tier]
        for which, (col, values) in BEHIND.items():
            n = int(sub[col].isin(values).sum())
            if n:
                out.append((tier, which, n))
    return out


def _first_action_words(action: str | None, reached: object) -> str:
    if action is None or pd.isna(action):
        return ""
    words = ACTION_LABELS.get(action, action)
    if action == "call_back" and reached is not None and not pd.isna(reached):
        words += " (reached)" if bool(reached) else " (not reached)"
    return words


def reports_behind(df: pd.DataFrame, tier: str | None, which: str) -> pd.DataFrame:
    """The reports behind a figure (a tier, or every tier when None, and one of :data:`BEHIND`),
    oldest first: who the patient is, when reported and answered, by whom, how long it took or has
    waited and how late, and what happened."""
    col, values = BEHIND[which]
    rows = df[df[col].isin(values) & ((df["tier"] == tier) if tier is not None else True)]
    rows = rows.sort_values(["reported_at", "report_id"])
    took = rows["ack_minutes"].where(rows["ack_minutes"].notna(), rows["waited_minutes"])
    late = took - rows["target_minutes"]
    out = pd.DataFrame({
        "report_id": rows["report_id"],
        "patient_name": rows["patient_name"],
        "mrn": rows["mrn"],
        "panel_id": rows["panel_id"],
        "tier": rows["tier"],
        "reported_at": rows["reported_at"],
        "in_hours": np.where(rows["in_hours"], "in hours", "out of hours"),
        "response": rows["response"],
        "answered_at": rows["first_response_at"],
        "answered_by": rows["responder"].fillna(""),
        "first_action": [_first_action_words(a, r) for a, r in zip(rows["first_action"], rows["first_reached"])],
        "time_to_answer": [("waited " if pd.isna(a) else "") + duration(m)
                           for a, m in zip(rows["first_response_at"], took)],
        "late_by": ["" if not x > 0 else "under 1 min" if x < 0.5 else duration(x) for x in late],
        "escalated_to": [", ".join(ESCALATION_LABELS.get(x, x) for x in (e if e is not None else []))
                         for e in rows["escalated_to"]],
        "outcome": [OUTCOME_LABELS.get(o, o) if isinstance(o, str) else "still open" for o in rows["outcome"]],
        "resolved_at": rows["resolved_at"],
        "resolved_by": rows["resolver"].fillna(""),
        "resolution": rows["resolution"],
        "repeat": rows["is_repeat"].astype(bool),
    })
    return out.reset_index(drop=True)


# ---------------------------------------------------------------------------- durations in words


def in_words(minutes: float | None) -> str:
    """A duration for a lead's table: 45 min, 3 h 20 min, 4 d 12 h (blank when there is none)."""
    if minutes is None or pd.isna(minutes):
        return ""
    return duration(minutes)


def words_columns(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The frame with the named minute columns as durations in words."""
    return frame.assign(**{c: [in_words(m) for m in frame[c]] for c in columns if c in frame})


def tick_words(minutes: float) -> str:
    """A round duration (an axis tick, a target), as short as it reads: 15 min, 2 h, 1 d, 1 d 12 h."""
    minutes = int(round(minutes))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 24 * 60:
        h, m = divmod(minutes, 60)
        return f"{h} h" if not m else f"{h} h {m:02d} min"
    d, rest = divmod(minutes, 24 * 60)
    h = rest // 60
    return f"{d} d" if not h else f"{d} d {h} h"


def overdue(q) -> pd.DataFrame:
    """Open reports past their response target and still unanswered, oldest first (from a built queue)."""
    late = q.reports[q.reports["overdue"]] if not q.reports.empty else q.reports
    cols = ["report_id", "panel_id", "patient_name", "mrn", "tier", "reported_at", "clock", "status"]
    return late.sort_values("reported_at")[cols] if not late.empty else pd.DataFrame(columns=cols)


# ---------------------------------------------------------------------------- alerts

# The reports of the period that the alerts worker alerted someone about, with the first alert that
# went out and the report's first answer (as of now). The tier is the one the alert was sent for.
ALERT_RESPONSE_SQL = f"""
WITH sent AS (
    SELECT a.report_id, arg_min(a.tier, a.log_id) AS tier, min(a.logged_at) AS alerted_at, count(*) AS alerts,
           max(coalesce(a.step, 1)) AS highest_step
    FROM alert_log a
    JOIN reports r ON r.report_id = a.report_id
    JOIN patients p ON p.patient_id = r.patient_id
    WHERE a.result = 'sent' AND a.logged_at <= $now AND r.reported_at >= $start AND r.reported_at < $end
      AND p.panel_id IN (SELECT unnest($panels::VARCHAR[]))
    GROUP BY a.report_id
)
SELECT s.*, (SELECT min(e.acted_at) FROM events e WHERE e.report_id = s.report_id AND e.action IN {RESPONSES_SQL}
               AND e.acted_at <= $now) AS answered_at
FROM sent s
"""
ALERT_COLUMNS = ["tier", "alerted", "answered", "unanswered", "beyond_first_step", "median_minutes", "p90_minutes"]


def alert_response(db: Database, rules: RuleSet, panels: list[str], start: date, end: date,
                   now: datetime) -> pd.DataFrame:
    """Per tier: the reports alerted, and the time from the first alert to the report's first answer.

    As in the response times, a report still unanswered counts with the time it has waited since its
    first alert (the least it will take). ``beyond_first_step``: reports whose chain went past its
    first step (nobody answered within the first step's time).
    """
    params = {"start": datetime.combine(start, datetime.min.time()),
              "end": datetime.combine(end + timedelta(days=1), datetime.min.time()), "now": now,
              "panels": list(panels)}
    with db.connect() as con:
        df = con.execute(ALERT_RESPONSE_SQL, params).df()
    if df.empty:
        return pd.DataFrame(columns=ALERT_COLUMNS)
    answered = df["answered_at"].notna()
    took = clock.minutes_between(df["alerted_at"], df["answered_at"].where(answered, pd.Timestamp(clock.aware(now))))
    df["minutes"] = np.maximum(took.to_numpy(dtype="float64"), 0)  # answered while the alert went out: 0
    rows = []
    for tier, g in df.groupby("tier", sort=False):
        got = g["answered_at"].notna()
        rows.append({"tier": tier, "alerted": len(g), "answered": int(got.sum()), "unanswered": int((~got).sum()),
                     "beyond_first_step": int((g["highest_step"] > 1).sum()),
                     "median_minutes": median(g["minutes"]), "p90_minutes": percentile(g["minutes"])})
    out = pd.DataFrame(rows, columns=ALERT_COLUMNS)
    return out.sort_values("tier", key=lambda t: -t.map(rules.tier_rank)).reset_index(drop=True)


def audit_trail(db: Database, panels: list[str], start: date, end: date) -> pd.DataFrame:
    """Every event of the period (by action time) for the panels, and every alert sent, failed, retried
    or given up (role "system", action ``alert_<result>``, whom and by which channel), in time order:
    the CSV leads export."""
    return db.query(
        """
        WITH period AS (SELECT ?::TIMESTAMPTZ AS since, ?::TIMESTAMPTZ AS until, ?::VARCHAR[] AS panels)
        SELECT e.event_id, NULL::BIGINT AS alert_log_id, e.acted_at, e.report_id, r.patient_id, p.panel_id,
               e.actor, e.actor_name, e.role, e.action, e.tier_before, e.tier_after, e.rules_version, e.reached,
               e.escalated_to, e.outcome, e.note, NULL AS alert_to, NULL AS alert_channel, NULL::INTEGER AS alert_try
        FROM events e
        JOIN reports r ON r.report_id = e.report_id
        JOIN patients p ON p.patient_id = r.patient_id
        CROSS JOIN period
        WHERE e.acted_at >= period.since AND e.acted_at < period.until AND list_contains(period.panels, p.panel_id)
        UNION ALL
        SELECT NULL, a.log_id, a.logged_at, a.report_id, r.patient_id, p.panel_id, 'alerts',
               'Backline alerts (' || coalesce(a.worker, '?') || ')', 'system', 'alert_' || a.result, a.tier, NULL,
               NULL, NULL, NULL, NULL,
               coalesce(a.kind || coalesce(' step ' || a.step || ' of ' || a.steps, '') || ': ' || a.detail,
                        a.kind || coalesce(' step ' || a.step || ' of ' || a.steps, '')),
               a.contact_name || ' <' || a.address || '>', a.channel || ' (' || a.channel_type || ')', a.attempt
        FROM alert_log a
        JOIN reports r ON r.report_id = a.report_id
        JOIN patients p ON p.patient_id = r.patient_id
        CROSS JOIN period
        WHERE a.logged_at >= period.since AND a.logged_at < period.until AND list_contains(period.panels, p.panel_id)
        ORDER BY acted_at, event_id NULLS LAST, alert_log_id
        """,
        [datetime.combine(start, datetime.min.time()), datetime.combine(end + timedelta(days=1), datetime.min.time()),
         list(panels)],
    )


def audit_csv(frame: pd.DataFrame) -> bytes:
    """CSV with spreadsheet formula injection neutralised (a leading = + - @ is quoted)."""
    safe = frame.copy()
    for col in safe.columns:
        if safe[col].dtype == object or str(safe[col].dtype).startswith("str"):
            safe[col] = safe[col].map(lambda v: "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r") else v)
    return safe.to_csv(index=False).encode("utf-8")
