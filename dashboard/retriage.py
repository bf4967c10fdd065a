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
import pandas as pd

from dashboard.db import Database, run
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
        "(SELECT patient_id AS dose_key, drug, given_at, stopped_at, administration_id AS seq"
        f" FROM administrations{dose_where})"
    )
    return cases, doses


# The guidance key of a result, in SQL; guidance_key() below is the same in Python. The separators
# are control characters, which no validated name can contain.
KEY_SQL = ("left(md5(concat_ws(chr(31), $version, tier, array_to_string(rule_ids, chr(30)), "
           "array_to_string(leading_causes, chr(30)), array_to_string(causes, chr(30)), "
           "array_to_string(unrecognised_drugs, chr(30)))), 16)")
RESULT_COLUMNS = ("report_id, tier, rule_ids, leading_causes, causes, unrecognised_drugs, guidance_key, "
                  "respond_within_minutes, respond_by, rules_version, triaged_at")


def guidance_key(rules_version: str, tier: str, rule_ids: list[str], leading: list[str], causes: list[str],
                 unrecognised: list[str]) -> str:
    text = "\x1f".join([rules_version, tier, "\x1e".join(rule_ids), "\x1e".join(leading), "\x1e".join(causes),
                        "\x1e".join(unrecognised)])
    return hashlib.md5(text.encode()).hexdigest()[:16]  # noqa: S324 - a key, not a secret


def _add_guidance(con: duckdb.DuckDBPyConnection, rules: RuleSet, results: str, params: dict | None = None) -> None:
    """Store the guidance of every (tier, causes, unrecognised drugs) in ``results`` (a table, or a query
    with ``params``) not stored yet."""
    missing = con.execute(
        f"SELECT guidance_key, any_value(tier), any_value(rule_ids), any_value(leading_causes), any_value(causes),"
        f" any_value(unrecognised_drugs) FROM {results}"
        " WHERE guidance_key NOT IN (SELECT guidance_key FROM guidance_sets) GROUP BY guidance_key",
        params or {},
    ).fetchall()
    if not missing:
        return
    cols: dict[str, list] = {k: [] for k in ("keys", "tiers", "causes", "unknown", "imaging", "referral", "advice",
                                             "leading")}
    for key, tier, rule_ids, leading, causes, unknown in missing:
        g = guidance_for(rules, tier, tuple(rule_ids), tuple(leading), tuple(causes), tuple(unknown))
        for name, value in zip(cols, (key, tier, list(causes), list(unknown), g.imaging_text, g.referral_text,
                                      g.advice, list(leading)), strict=True):
            cols[name].append(value)
    run(con, "INSERT INTO guidance_sets (guidance_key, rules_version, tier, causes, unrecognised_drugs, imaging,"
             " referral, advice, leading_causes) SELECT unnest($keys), $version, unnest($tiers),"
             " unnest($causes::VARCHAR[][]), unnest($unknown::VARCHAR[][]), unnest($imaging::VARCHAR[][]),"
             " unnest($referral::VARCHAR[][]), unnest($advice::VARCHAR[][]), unnest($leading::VARCHAR[][])",
        {**cols, "version": rules.version})


def _record_changes(con: duckdb.DuckDBPyConnection, new: str, rules: RuleSet, now: datetime,
                    old: str = "triage_results", params: dict | None = None) -> int:
    """Append a 'retriaged' event for every open report whose tier the new results change (``new`` and
    ``old``, the results before, are tables or queries with ``params``)."""
    return run(
        con,
        f"""
        INSERT INTO events (report_id, acted_at, actor, actor_name, role, action, tier_before, tier_after,
                            rules_version, note)
        SELECT n.report_id, $now, 'system', 'Backline', 'system', 'retriaged', o.tier, n.tier, $version,
               'Tier changed from ' || o.tier || ' to ' || n.tier || ' when the rules were re-applied (rules '
               || o.rules_version || ' -> ' || $version || '); rules now firing: '
               || CASE WHEN len(n.rule_ids) = 0 THEN 'none' ELSE array_to_string(n.rule_ids, ', ') END
        FROM open_reports q
        JOIN {new} n ON n.report_id = q.report_id
        JOIN {old} o ON o.report_id = q.report_id
        WHERE o.tier <> n.tier
        ORDER BY n.report_id
        """,
        {**(params or {}), "now": now, "version": rules.version},
    )[0][0]


@dataclass(frozen=True)
class RetriageStats:
    reports: int
    seconds: float
    changed_open: int
    rules_version: str
    # Where the time went, when the engine was fed from elsewhere (read, triage, write back).
    phases: dict[str, float] | None = None

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
    if getattr(con, "engine", None) == "postgresql":  # the same engine, fed from PostgreSQL
        from dashboard import postgres_triage

        if report_ids is None:
            return postgres_triage.retriage_all(con.store, rules, now=now, record_changes=record_changes)
        return postgres_triage.retriage_some(con, rules, now=now, report_ids=report_ids,
                                             record_changes=record_changes)
    started = time.perf_counter()
    filtered = report_ids is not None
    # Parameters, not registered frames: registration is not safe while other threads connect.
    params: dict = {"version": rules.version, "now": now}
    if filtered:
        params["ids"] = list(report_ids)
    cases, doses = _db_sources(filtered)
    minutes = "CASE tier " + " ".join(
        f"WHEN '{t}' THEN {int(rules.respond_within_minutes(t))}" for t in rules.tier_ids) + " END"
    select = (
        f"SELECT report_id, tier, rule_ids, leading_causes, causes, unrecognised_drugs, {KEY_SQL} AS guidance_key,"
        f" {minutes} AS respond_within_minutes, reported_at + to_minutes({minutes}) AS respond_by,"
        f" $version::VARCHAR AS rules_version, $now::TIMESTAMPTZ AS triaged_at"
        f" FROM ({triage_sql(rules, cases, doses, details=False)})"
    )
    if filtered:
        # The new results go straight into triage_results, with no table of them in between: a table
        # made (or emptied) and dropped inside a transaction is kept until the transaction ends, and
        # the FHIR import triages one chunk after another in one transaction.
        ids = {"ids": params["ids"]}
        listed = "report_id IN (SELECT unnest($ids::VARCHAR[]))"
        # The results before, of the open reports among these: what a change of tier is measured from.
        before = run(con, f"SELECT o.report_id, o.tier, o.rules_version FROM triage_results o WHERE o.{listed}"
                          " AND o.report_id IN (SELECT report_id FROM open_reports)", ids) if record_changes else []
        run(con, f"DELETE FROM triage_results WHERE {listed}", ids)
        inserted = run(con, f"INSERT INTO triage_results ({RESULT_COLUMNS}) {select}", params)[0][0]
        new = f"(SELECT * FROM triage_results WHERE {listed})"
        _add_guidance(con, rules, new, ids)
        changed = 0
        if before:
            old = ("(SELECT unnest($old_ids::VARCHAR[]) AS report_id, unnest($old_tiers::VARCHAR[]) AS tier,"
                   " unnest($old_versions::VARCHAR[]) AS rules_version)")
            old_ids, old_tiers, old_versions = (list(c) for c in zip(*before))
            changed = _record_changes(con, new, rules, now, old, {**ids, "old_ids": old_ids, "old_tiers": old_tiers,
                                                                   "old_versions": old_versions})
    else:
        # Replacing every row: build the table anew and swap it in (deleting a million keys from
        # the primary-key index costs ten times more than building a fresh one).
        # The key is added after the rows (a third faster than filling a keyed table); adding it checks it.
        ddl = run(con, "SELECT sql FROM duckdb_tables() WHERE table_name = 'triage_results' AND NOT temporary")[0][0]
        keyless = ddl.replace("CREATE TABLE triage_results", "CREATE TABLE triage_results_next", 1)
        keyless = keyless.replace(", PRIMARY KEY(report_id)", "").replace("report_id VARCHAR PRIMARY KEY", "report_id VARCHAR")
        run(con, "DROP TABLE IF EXISTS triage_results_next")
        run(con, keyless)
        inserted = run(con, f"INSERT INTO triage_results_next ({RESULT_COLUMNS}) {select}", params)[0][0]
        if keyless != ddl.replace("CREATE TABLE triage_results", "CREATE TABLE triage_results_next", 1):
            run(con, "ALTER TABLE triage_results_next ADD PRIMARY KEY (report_id)")
        _add_guidance(con, rules, "triage_results_next")
        changed = _record_changes(con, "triage_results_next", rules, now) if record_changes else 0
        run(con, "DROP TABLE triage_results")
        run(con, "ALTER TABLE triage_results_next RENAME TO triage_results")
    return RetriageStats(inserted, time.perf_counter() - started, changed, rules.version)


def explanations(con: duckdb.DuckDBPyConnection, rules: RuleSet, report_ids: list[str]) -> dict[str, dict]:
    """For stored reports: the drug effects that fit each one's timing and the doses or courses its
    facts rest on, from the same engine under the given rules. Nothing is stored."""
    if not report_ids:
        return {}
    cases, doses = _db_sources(True)
    rows = con.execute(
        f"SELECT report_id, drug_effects, evidence FROM ({triage_sql(rules, cases, doses, details=True)})",
        {"ids": list(report_ids)},
    ).fetchall()
    return {r[0]: {"drug_effects": [dict(x) for x in r[1]], "evidence": [dict(x) for x in r[2]]} for r in rows}


def preview_changes(con: duckdb.DuckDBPyConnection, rules: RuleSet) -> pd.DataFrame:
    """What re-triage under ``rules`` would change for the open reports, computed by the engine on the
    stored reports without writing anything: one row per open report whose tier would move."""
    cases, doses = _db_sources(True)
    ids = [r[0] for r in con.execute("SELECT report_id FROM open_reports ORDER BY report_id").fetchall()]
    if not ids:
        return pd.DataFrame(columns=["report_id", "patient_id", "reported_at", "tier_before", "tier_after",
                                     "rules_before", "rule_ids"])
    return con.execute(
        f"""
        SELECT n.report_id, q.patient_id, n.reported_at, o.tier AS tier_before, n.tier AS tier_after,
               o.rule_ids AS rules_before, n.rule_ids
        FROM ({triage_sql(rules, cases, doses, details=False)}) n
        JOIN open_reports q ON q.report_id = n.report_id
        JOIN triage_results o ON o.report_id = n.report_id
        WHERE o.tier <> n.tier
        ORDER BY n.reported_at, n.report_id
        """,
        {"ids": ids},
    ).df()


def stale_results(con: duckdb.DuckDBPyConnection, rules: RuleSet) -> int:
    """How many stored results were made under other rules than these."""
    return con.execute("SELECT count(*) FROM triage_results WHERE rules_version <> $v", {"v": rules.version}
                       ).fetchall()[0][0]


def stale_open_reports(con: duckdb.DuckDBPyConnection, rules: RuleSet) -> int:
    """How many open reports carry a tier from other rules than these (they await a re-triage)."""
    return con.execute("SELECT count(*) FROM open_reports o JOIN triage_results t USING (report_id)"
                       " WHERE t.rules_version <> $v", {"v": rules.version}).fetchall()[0][0]


def upgrade(db: Database, rules: RuleSet, *, now: datetime) -> tuple[list[int], RetriageStats | None]:
    """Apply pending migrations, then re-triage every stored report whose result was made under other
    rules (as after the version 2 upgrade). Open reports whose tier changes get a history entry."""
    applied = db.migrate()
    with db.connect() as con:
        stale = stale_results(con, rules)
    if not stale:
        return applied, None
    return applied, db.transaction(lambda con: retriage(con, rules, now=now))
