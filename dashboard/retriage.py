"""Triage reports stored in the database with the engine, and store the results.

Used for every report the store holds: at intake (a batch of one), after seeding, and by
``backline retriage`` when the rules change. The engine runs as one query over the ``reports``,
``patients`` and ``administrations`` tables; guidance is looked up once per distinct
(tier, causes, unrecognised drugs) and joined back, so a million reports cost a handful of
set operations, not a million Python calls.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime

import duckdb

from dashboard.db import run
from dashboard.guidance import guidance_for
from dashboard.models import PATIENT_FLAGS, ReportIn
from dashboard.rules import RuleSet
from dashboard.triage import triage_sql

_REPORT_COLS = ", ".join(f"r.{c}" for c in ReportIn.model_fields)
_PATIENT_COLS = ", ".join(f"p.{c}" for c in ("cancer_type", *PATIENT_FLAGS))


def _db_sources(filtered: bool) -> tuple[str, str]:
    where = " WHERE r.report_id IN (SELECT unnest($ids::VARCHAR[]))" if filtered else ""
    cases = (
        f"(SELECT r.report_id AS case_id, r.patient_id AS dose_key, r.report_id, {_PATIENT_COLS}, {_REPORT_COLS}"
        f" FROM reports r JOIN patients p ON p.patient_id = r.patient_id{where})"
    )
    dose_where = (
        " WHERE patient_id IN (SELECT r.patient_id FROM reports r"
        " WHERE r.report_id IN (SELECT unnest($ids::VARCHAR[])))"
        if filtered
        else ""
    )
    doses = (
        "(SELECT patient_id AS dose_key, drug, given_at, administration_id AS seq"
        f" FROM administrations{dose_where})"
    )
    return cases, doses


_GUIDANCE_DDL = """
CREATE OR REPLACE TEMP TABLE bl_guidance (
    guidance_key VARCHAR, tier VARCHAR, causes VARCHAR[], unrecognised_drugs VARCHAR[], imaging VARCHAR[],
    referral VARCHAR[], advice VARCHAR[], minutes INTEGER)
"""


def guidance_key(rules_version: str, tier: str, causes: list[str], unrecognised: list[str]) -> str:
    text = "\x1f".join([rules_version, tier, ",".join(causes), ",".join(unrecognised)])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _guidance_rows(rules: RuleSet, combos: list[tuple]) -> list[list]:
    rows = []
    for tier, causes, unknown in combos:
        g = guidance_for(rules, tier, tuple(causes), tuple(unknown))
        rows.append([guidance_key(rules.version, tier, causes, unknown), tier, causes, unknown, g.imaging,
                     g.referral, g.advice, rules.respond_within_minutes(tier)])
    return rows


@dataclass(frozen=True)
class RetriageStats:
    reports: int
    seconds: float
    changed_open: int
    rules_version: str

    @property
    def per_second(self) -> float:
        return self.reports / self.seconds if self.seconds > 0 else float("inf")


def retriage(
    con: duckdb.DuckDBPyConnection,
    rules: RuleSet,
    *,
    now: datetime,
    report_ids: list[str] | None = None,
    record_changes: bool = True,
) -> RetriageStats:
    """Triage the reports (all, or those listed) and replace their stored results.

    Must run inside a transaction the caller owns. For open reports whose tier changes, a
    ``retriaged`` event is appended (actor ``system``) so the audit trail says why a clock moved.
    """
    started = time.perf_counter()
    filtered = report_ids is not None
    # Parameters, not registered frames: registration is not safe while other threads connect.
    ids = {"ids": list(report_ids)} if filtered else None
    cases, doses = _db_sources(filtered)
    run(con, f"CREATE OR REPLACE TEMP TABLE bl_new AS {triage_sql(rules, cases, doses)}", ids)
    combos = con.execute("SELECT DISTINCT tier, causes, unrecognised_drugs FROM bl_new").fetchall()
    run(con, _GUIDANCE_DDL)
    con.executemany("INSERT INTO bl_guidance VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _guidance_rows(rules, combos))
    run(
        con,
        """
        INSERT INTO guidance_sets
        SELECT guidance_key, ?, tier, causes, unrecognised_drugs, imaging, referral, advice FROM bl_guidance
        WHERE guidance_key NOT IN (SELECT guidance_key FROM guidance_sets)
        """,
        [rules.version],
    )
    changed = 0
    if record_changes:
        changed = run(
            con,
            """
            INSERT INTO events (report_id, acted_at, actor, actor_name, role, action, tier_before, tier_after,
                                rules_version, note)
            SELECT n.report_id, ?, 'system', 'Backline', 'system', 'retriaged', o.tier, n.tier, ?,
                   'Tier changed when the rules were re-applied (rules ' || o.rules_version || ' -> ' || ? || ')'
            FROM bl_new n
            JOIN triage_results o ON o.report_id = n.report_id
            JOIN open_reports q ON q.report_id = n.report_id
            WHERE o.tier <> n.tier
            ORDER BY n.report_id
            """,
            [now, rules.version, rules.version],
        )[0][0]
    select = """
        SELECT n.report_id, n.tier, n.rule_ids, n.causes, n.links, n.evidence, n.unrecognised_drugs,
               g.guidance_key, g.minutes, n.reported_at + to_minutes(g.minutes), ?, ?
        FROM bl_new n
        JOIN bl_guidance g
          ON g.tier = n.tier AND g.causes = n.causes AND g.unrecognised_drugs = n.unrecognised_drugs
    """
    if filtered:
        run(con, "DELETE FROM triage_results WHERE report_id IN (SELECT unnest($ids::VARCHAR[]))", ids)
        inserted = run(con, f"INSERT INTO triage_results {select}", [rules.version, now])[0][0]
    else:
        # Replacing every row: build the table anew and swap it in (deleting a million keys from
        # the primary-key index costs ten times more than building a fresh one).
        ddl = run(con, "SELECT sql FROM duckdb_tables() WHERE table_name = 'triage_results' AND NOT temporary")[0][0]
        run(con, "DROP TABLE IF EXISTS triage_results_next")
        run(con, ddl.replace("CREATE TABLE triage_results", "CREATE TABLE triage_results_next", 1))
        inserted = run(con, f"INSERT INTO triage_results_next {select}", [rules.version, now])[0][0]
        run(con, "DROP TABLE triage_results")
        run(con, "ALTER TABLE triage_results_next RENAME TO triage_results")
    run(con, "DROP TABLE bl_new")
    run(con, "DROP TABLE bl_guidance")
    return RetriageStats(inserted, time.perf_counter() - started, changed, rules.version)
