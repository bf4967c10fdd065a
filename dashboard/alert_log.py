"""The alert log read back for people: which alerts went out for a report, and whether anyone has seen them.

"Seen" means answered in Backline: an e-mail or a bleep cannot say whether it was read, but the
report's first answer (acknowledge, call back, escalate, resolve or override) after an alert went
out shows that the alert, or the queue, reached someone. An alert is one row here whatever its
number of tries: its last result, when it went (or last failed), and how many tries it took.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from dashboard.labels import duration
from dashboard.workflow import RESPONSES_SQL


REPORT_ALERTS_SQL = f"""
WITH tries AS (
    SELECT alert_key, arg_max(result, log_id) AS result, max(attempt) AS tries,
           arg_max(detail, log_id) AS detail, arg_max(retry_at, log_id) AS retry_at,
           min(logged_at) AS first_try_at, max(logged_at) FILTER (WHERE result = 'sent') AS sent_at,
           max(logged_at) AS last_at, any_value(kind) AS kind, any_value(tier) AS tier, any_value(chain) AS chain,
           any_value(step) AS step, any_value(steps) AS steps, any_value(contact_name) AS contact_name,
           any_value(channel) AS channel, any_value(channel_type) AS channel_type, any_value(address) AS address,
           min(due_at) AS due_at, min(log_id) AS first_log_id
    FROM alert_log WHERE report_id = $report GROUP BY alert_key
)
SELECT t.*,
       (SELECT min(e.acted_at) FROM events e WHERE e.report_id = $report AND e.action IN {RESPONSES_SQL}
          AND e.acted_at >= t.sent_at) AS answered_after_at
FROM tries t ORDER BY t.due_at, t.first_log_id
"""

ALERT_COLUMNS = ["When", "To", "Channel", "What", "Result", "Seen"]
CHANNEL_WORDS = {"smtp": "e-mail", "webhook": "webhook", "mailbox": "mailbox file", "log": "log"}
_TRY_WORDS = {"sent": "sent", "failed": "failed", "gave_up": "given up", "sending": "sending"}


def what_words(row: dict[str, Any]) -> str:
    if row["kind"] == "chain":
        return f"step {row['step']} of {row['steps']} ({row['chain']})"
    if row["kind"] == "overdue":
        return "overdue: the lead told"
    return "an alert could not be delivered: the lead told"


def result_words(row: dict[str, Any]) -> str:
    result, tries = row["result"], int(row["tries"])
    if result == "sent":
        return "sent" + (f" (try {tries})" if tries > 1 else "")
    if result == "failed":
        retry = row["retry_at"]
        again = f"; tries again at {pd.Timestamp(retry):%H:%M}" if _present(retry) else ""
        return f"failed (try {tries}): {row['detail']}{again}"
    if result == "gave_up":
        return f"not delivered after {tries} tries"
    return "sending"


def seen_words(row: dict[str, Any]) -> str:
    if row["result"] != "sent":
        return ""
    answered = row["answered_after_at"]
    if not _present(answered):
        return "not yet"
    minutes = (pd.Timestamp(answered) - pd.Timestamp(row["sent_at"])).total_seconds() / 60
    return f"answered {duration(max(minutes, 0))} after"


def _present(value: Any) -> bool:
    return value is not None and not (pd.api.types.is_scalar(value) and pd.isna(value))


def report_alerts(con: duckdb.DuckDBPyConnection, report_id: str) -> pd.DataFrame:
    """One row per alert of a report, in the order they were due: when, to whom, how, what, result, seen."""
    rows = con.execute(REPORT_ALERTS_SQL, {"report": report_id}).df().to_dict("records")
    return pd.DataFrame([{
        "When": r["sent_at"] if _present(r["sent_at"]) else r["last_at"],
        "To": r["contact_name"],
        "Channel": f"{CHANNEL_WORDS.get(r['channel_type'], r['channel_type'])} ({r['channel']})",
        "What": what_words(r),
        "Result": result_words(r),
        "Seen": seen_words(r),
    } for r in rows], columns=ALERT_COLUMNS)


def summary_words(sent: int, undelivered: int, unseen: bool) -> str:
    """The queue's "Alerts" cell: how many went out, whether anyone has answered since, any undelivered."""
    if not sent and not undelivered:
        return ""
    parts = [f"{sent} sent"] if sent else []
    if sent:
        parts.append("not seen" if unseen else "seen")
    if undelivered:
        parts.append(f"{undelivered} undelivered")
    return " · ".join(parts)
