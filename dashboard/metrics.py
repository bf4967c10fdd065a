"""Team leads' response times: report to acknowledgement and to resolution, against each tier's target.

One query builds per-report timings for the period and panels (filtered by report time, so a
year's window reads a year, not the history); every table and chart is a small aggregate of it,
computed in DuckDB. The tier a report is measured against is the tier in force when it was first
answered (the ``tier_before`` of that event), or its current tier while it waits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd

from dashboard.db import Database
from dashboard.rules import RuleSet
from dashboard.workflow import RESPONSE_ACTIONS

_RESPONSES = "(" + ", ".join(f"'{a}'" for a in RESPONSE_ACTIONS) + ")"

TIMINGS_SQL = f"""
CREATE OR REPLACE TEMP TABLE bl_timings AS
WITH r AS (
    SELECT r.report_id, r.patient_id, r.reported_at, p.panel_id
    FROM reports r JOIN patients p ON p.patient_id = r.patient_id
    WHERE r.reported_at >= $start AND r.reported_at < $end
      AND p.panel_id IN (SELECT unnest($panels::VARCHAR[]))
),
e AS (
    SELECT report_id,
           min(acted_at) FILTER (WHERE action IN {_RESPONSES}) AS first_response_at,
           arg_min(tier_before, event_id) FILTER (WHERE action IN {_RESPONSES}) AS tier_at_response,
           arg_min(coalesce(actor_name, actor), event_id) FILTER (WHERE action IN {_RESPONSES}) AS responder,
           max(acted_at) FILTER (WHERE action = 'resolve') AS resolved_at,
           arg_max(tier_after, event_id) FILTER (WHERE action = 'override') AS override_tier
    FROM events
    WHERE report_id IN (SELECT report_id FROM r)
    GROUP BY report_id
)
SELECT r.report_id, r.patient_id, r.panel_id, r.reported_at,
       coalesce(e.tier_at_response, e.override_tier, t.tier) AS tier,
       e.first_response_at, e.responder, e.resolved_at,
       date_diff('second', r.reported_at, e.first_response_at) / 60.0 AS minutes_to_ack,
       date_diff('second', r.reported_at, e.resolved_at) / 60.0 AS minutes_to_resolve,
       (dayofweek(r.reported_at) BETWEEN 1 AND 5
        AND hour(r.reported_at) >= $in_start AND hour(r.reported_at) < $in_end) AS in_hours,
       date_trunc('week', r.reported_at)::DATE AS week
FROM r
JOIN triage_results t ON t.report_id = r.report_id
LEFT JOIN e ON e.report_id = r.report_id
"""


@dataclass(frozen=True)
class ResponseTimes:
    by_tier: pd.DataFrame
    hours: pd.DataFrame
    weekly: pd.DataFrame
    volumes: pd.DataFrame
    nurses: pd.DataFrame
    distribution: pd.DataFrame  # per-report minutes (sampled per tier for the chart)
    repeats: int
    reports: int


def _targets_sql(rules: RuleSet) -> str:
    """The tiers' targets as an inline table (values from the validated rules: ids and integers)."""
    rows = ", ".join(f"('{t}', {int(rules.respond_within_minutes(t))}, {int(rules.tier_rank[t])})" for t in rules.tier_ids)
    return f"CREATE OR REPLACE TEMP TABLE bl_targets AS SELECT * FROM (VALUES {rows}) v(tier, target, tier_rank)"


def response_times(db: Database, rules: RuleSet, panels: list[str], start: date, end: date, *,
                   in_hours: tuple[int, int] = (8, 18), sample_per_tier: int = 4000) -> ResponseTimes:
    """Response-time tables for reports made from ``start`` up to and including ``end``."""
    params = {"start": datetime.combine(start, datetime.min.time()),
              "end": datetime.combine(end + timedelta(days=1), datetime.min.time()),
              "in_start": in_hours[0], "in_end": in_hours[1], "panels": list(panels)}
    with db.connect() as con:
        con.execute(_targets_sql(rules)).fetchall()
        con.execute(TIMINGS_SQL, params).fetchall()
        within = "avg((minutes_to_ack <= target)::INT) FILTER (WHERE minutes_to_ack IS NOT NULL)"
        by_tier = con.execute(f"""
            SELECT tier, any_value(target) AS target_minutes, count(*) AS reports,
                   count(first_response_at) AS acknowledged,
                   {within} AS within_target,
                   median(minutes_to_ack) AS median_ack, quantile_cont(minutes_to_ack, 0.9) AS p90_ack,
                   count(resolved_at) AS resolved,
                   median(minutes_to_resolve) AS median_resolve, quantile_cont(minutes_to_resolve, 0.9) AS p90_resolve
            FROM bl_timings JOIN bl_targets USING (tier)
            GROUP BY tier ORDER BY any_value(tier_rank) DESC""").df()
        hours = con.execute(f"""
            SELECT tier, CASE WHEN in_hours THEN 'in hours' ELSE 'out of hours' END AS period,
                   count(*) AS reports, {within} AS within_target,
                   median(minutes_to_ack) AS median_ack, quantile_cont(minutes_to_ack, 0.9) AS p90_ack
            FROM bl_timings JOIN bl_targets USING (tier)
            GROUP BY ALL ORDER BY any_value(tier_rank) DESC, period""").df()
        weekly = con.execute(f"""
            SELECT week, tier, count(*) AS reports, {within} AS within_target, median(minutes_to_ack) AS median_ack
            FROM bl_timings JOIN bl_targets USING (tier)
            GROUP BY ALL ORDER BY week, any_value(tier_rank) DESC""").df()
        volumes = con.execute("""
            SELECT week, tier, count(*) AS reports FROM bl_timings GROUP BY ALL ORDER BY week""").df()
        nurses = con.execute(f"""
            SELECT responder AS nurse, count(*) AS reports, {within} AS within_target,
                   median(minutes_to_ack) AS median_ack,
                   count(*) FILTER (WHERE tier = 'emergency') AS emergencies,
                   median(minutes_to_ack) FILTER (WHERE tier = 'emergency') AS median_ack_emergency
            FROM bl_timings JOIN bl_targets USING (tier)
            WHERE responder IS NOT NULL
            GROUP BY responder ORDER BY reports DESC""").df()
        distribution = con.execute("""
            SELECT tier, minutes_to_ack FROM (
                SELECT tier, minutes_to_ack,
                       row_number() OVER (PARTITION BY tier ORDER BY hash(report_id)) AS n
                FROM bl_timings WHERE minutes_to_ack IS NOT NULL)
            WHERE n <= ?""", [sample_per_tier]).df()
        # A repeat: the patient already had an unresolved report when this one came in.
        repeats, total = con.execute("""
            WITH seq AS (
                SELECT r.reported_at,
                       max(coalesce(t.resolved_at, TIMESTAMP '9999-12-31')) OVER (
                           PARTITION BY r.patient_id ORDER BY r.reported_at, r.report_id
                           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS open_until
                FROM bl_timings t JOIN reports r USING (report_id))
            SELECT count(*) FILTER (WHERE open_until > reported_at), count(*) FROM seq""").fetchall()[0]
    return ResponseTimes(by_tier, hours, weekly, volumes, nurses, distribution, int(repeats), int(total))


def overdue(q) -> pd.DataFrame:
    """Open reports past their response target and still unanswered, oldest first (from a built queue)."""
    late = q.reports[q.reports["overdue"]] if not q.reports.empty else q.reports
    cols = ["report_id", "panel_id", "patient_name", "mrn", "tier", "reported_at", "clock", "status"]
    return late.sort_values("reported_at")[cols] if not late.empty else pd.DataFrame(columns=cols)


def audit_trail(db: Database, panels: list[str], start: date, end: date) -> pd.DataFrame:
    """Every event of the period (by action time) for the panels, in order: the CSV leads export."""
    return db.query(
        """
        SELECT e.event_id, e.acted_at, e.report_id, r.patient_id, p.panel_id, e.actor, e.actor_name, e.role,
               e.action, e.tier_before, e.tier_after, e.rules_version, e.reached, e.escalated_to, e.outcome, e.note
        FROM events e
        JOIN reports r ON r.report_id = e.report_id
        JOIN patients p ON p.patient_id = r.patient_id
        WHERE e.acted_at >= ? AND e.acted_at < ? AND p.panel_id IN (SELECT unnest(?::VARCHAR[]))
        ORDER BY e.event_id
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
