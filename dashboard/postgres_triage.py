"""The rules engine on a PostgreSQL store: the same DuckDB query, fed from PostgreSQL.

The engine stays in DuckDB (:func:`dashboard.retriage.retriage`, one implementation of the rules):
the rows it reads are copied from PostgreSQL into a scratch DuckDB database with the replica's
schema, the engine runs there as it runs on the DuckDB file, and what it wrote (results, new
guidance sets, "retriaged" events) is written back to PostgreSQL.

* **Some reports** (a new report, an import's batch) are read and written inside the caller's
  transaction, so a report and its triage commit together, or not at all.
* **Every report** (``backline retriage``, new rules) is read as Arrow with the ADBC driver and
  written back with its bulk ingest (binary COPY), in one transaction of its own that first locks
  the results against other writers: a report taken in on another server meanwhile waits, then
  triages itself after the commit, so no report is ever left without a result.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
import duckdb
import pyarrow as pa

from dashboard.config import get_settings
from dashboard.db import run
from dashboard.replica import replica_schema
from dashboard.models import PATIENT_FLAGS, ReportIn
from dashboard.rules import RuleSet

# What the engine reads, and what retriage() compares against or adds to.
INPUTS = ("reports", "patients", "administrations", "open_reports", "triage_results", "guidance_sets")
WRITTEN = ("triage_results", "guidance_sets", "events")


# Read as Arrow and queried in place (registered, not copied into tables): the engine only reads them,
# and only these columns of them (dashboard.retriage._db_sources), which is what is read.
READ_IN_PLACE = ("reports", "patients", "administrations", "open_reports")
ENGINE_COLUMNS = {
    "reports": ["report_id", "patient_id", *ReportIn.model_fields],
    "patients": ["patient_id", "cancer_type", *PATIENT_FLAGS],
    "administrations": ["administration_id", "patient_id", "drug", "given_at", "stopped_at"],
}


def _scratch(in_place: tuple[str, ...] = ()) -> duckdb.DuckDBPyConnection:
    settings = get_settings()
    con = duckdb.connect(":memory:", config={"threads": settings.duckdb_threads,
                                             "memory_limit": settings.duckdb_memory_limit})
    con.execute("SET TimeZone = $tz", {"tz": settings.timezone})
    for ddl in replica_schema():
        if not any(ddl.startswith(f"CREATE TABLE {t} (") for t in in_place):
            con.execute(ddl)
    return con


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [c for c, in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                                    "ORDER BY column_index", [table]).fetchall()]


def _insert_rows(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], rows: list[tuple]) -> None:
    """Rows read from PostgreSQL into a scratch table: a few one by one, many as one frame."""
    if len(rows) <= 50:
        if rows:
            con.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                            rows)
        return
    import pandas as pd

    con.register("bl_pg_rows", pd.DataFrame(rows, columns=columns, dtype=object))
    try:
        run(con, f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM bl_pg_rows")
    finally:
        con.unregister("bl_pg_rows")


def retriage_some(pg: Any, rules: RuleSet, *, now: datetime, report_ids: list[str], record_changes: bool):
    """Triage these reports inside ``pg``'s transaction (a :class:`PgConnection`)."""
    from dashboard.retriage import retriage

    started = time.perf_counter()
    scratch = _scratch()
    try:
        ids = list(report_ids)
        where = {
            "reports": "report_id IN (SELECT unnest($ids::VARCHAR[]))",
            "patients": "patient_id IN (SELECT patient_id FROM reports WHERE report_id IN (SELECT unnest($ids::VARCHAR[])))",
            "administrations": "patient_id IN (SELECT patient_id FROM reports WHERE report_id IN (SELECT unnest($ids::VARCHAR[])))",
            "open_reports": "report_id IN (SELECT unnest($ids::VARCHAR[]))",
            "triage_results": "report_id IN (SELECT unnest($ids::VARCHAR[]))",
        }
        for table, condition in where.items():
            columns = _columns(scratch, table)
            rows = pg.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE {condition}", {"ids": ids}).fetchall()
            _insert_rows(scratch, table, columns, rows)
        known = {k for k, in pg.execute("SELECT guidance_key FROM guidance_sets").fetchall()}
        run(scratch, "CREATE TABLE bl_known (guidance_key VARCHAR)")
        _insert_rows(scratch, "bl_known", ["guidance_key"], [(k,) for k in known])
        # The scratch store's guidance: the keys the store has (their content is not needed to add new ones).
        run(scratch, "INSERT INTO guidance_sets (guidance_key, rules_version, tier, causes, unrecognised_drugs, "
                     "imaging, referral, advice, leading_causes) SELECT guidance_key, '', 'routine', [], [], [], [], "
                     "[], [] FROM bl_known")
        run(scratch, "BEGIN TRANSACTION")
        stats = retriage(scratch, rules, now=now, report_ids=ids, record_changes=record_changes)
        run(scratch, "COMMIT")
        # Back to PostgreSQL, in the caller's transaction.
        pg.execute("DELETE FROM triage_results WHERE report_id IN (SELECT unnest($ids::VARCHAR[]))", {"ids": ids})
        for table, select in (
            ("guidance_sets", "SELECT * FROM guidance_sets WHERE guidance_key NOT IN (SELECT guidance_key FROM bl_known)"),
            ("triage_results", "SELECT * FROM triage_results"),
            ("events", "SELECT * EXCLUDE (event_id) FROM events"),  # the scratch store's are all new
        ):
            cursor = scratch.execute(select)
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
            if rows:
                with pg.raw.cursor() as cur:
                    cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) "
                                    f"VALUES ({', '.join('%s' for _ in columns)})", rows)
    finally:
        scratch.close()
    from dashboard.retriage import RetriageStats

    return RetriageStats(stats.reports, time.perf_counter() - started, stats.changed_open, stats.rules_version)


def retriage_all(store: Any, rules: RuleSet, *, now: datetime, record_changes: bool = True):
    """Triage every report of a PostgreSQL store and replace every result, in one transaction."""
    from dashboard.postgres_store import StoreUnavailable, _plain
    from dashboard.retriage import RetriageStats, retriage

    started = time.perf_counter()
    held: list = []  # the Arrow tables the scratch database reads in place
    try:
        pg = adbc.connect(store.url, autocommit=False)
    except Exception as exc:  # noqa: BLE001 - ADBC's own error types
        raise StoreUnavailable(_plain(exc, store.url)) from None
    scratch = _scratch(READ_IN_PLACE)
    try:
        with pg.cursor() as cur:
            cur.execute("SELECT set_config('TimeZone', %s, true)" % _literal(get_settings().timezone))
            cur.fetchall()
            # Other writers of results wait from here to the commit (readers do not).
            cur.execute("LOCK TABLE triage_results IN EXCLUSIVE MODE")
            schema = _scratch()
            for table in INPUTS:
                columns = ENGINE_COLUMNS.get(table) or _columns(schema, table)
                # Of the results, only the open reports' are compared (their tier changes are recorded).
                where = " WHERE report_id IN (SELECT report_id FROM open_reports)" if table == "triage_results" else ""
                cur.execute(f"SELECT {', '.join(columns)} FROM {table}{where}")
                data = cur.fetch_arrow_table()
                if table in READ_IN_PLACE:
                    scratch.register(table, data)
                    held.append(data)
                elif data.num_rows:
                    scratch.register("bl_rows", data)
                    run(scratch, f"INSERT INTO {table} BY NAME SELECT * FROM bl_rows")
                    scratch.unregister("bl_rows")
                del data
            schema.close()
        run(scratch, "CREATE TABLE bl_known AS SELECT guidance_key FROM guidance_sets")
        read = time.perf_counter()
        run(scratch, "BEGIN TRANSACTION")
        stats = retriage(scratch, rules, now=now, record_changes=record_changes)
        run(scratch, "COMMIT")
        triaged = time.perf_counter()
        with pg.cursor() as cur:
            cur.execute("TRUNCATE triage_results")
            columns = _columns(scratch, "triage_results")
            cur.adbc_ingest("triage_results", scratch.sql(f"SELECT {', '.join(columns)} FROM triage_results")
                            .to_arrow_reader(200_000), mode="append")
            fresh = scratch.sql("SELECT * FROM guidance_sets WHERE guidance_key NOT IN "
                                "(SELECT guidance_key FROM bl_known)").to_arrow_table()
            if fresh.num_rows:
                cur.adbc_ingest("guidance_sets", fresh, mode="append")
            # The events table is not read in: every event in the scratch store is a new "retriaged" one.
            events = scratch.sql("SELECT * EXCLUDE (event_id) FROM events").to_arrow_table()
            if events.num_rows:
                cur.adbc_ingest("events", _drop_nulls_columns(events), mode="append")
        pg.commit()
    except adbc.Error as exc:
        _rollback(pg)
        raise StoreUnavailable(_plain(exc, store.url)) from None
    except BaseException:
        _rollback(pg)
        raise
    finally:
        pg.close()
        scratch.close()
        held.clear()
    done = time.perf_counter()
    return RetriageStats(stats.reports, done - started, stats.changed_open, stats.rules_version,
                         phases={"read": read - started, "triage": triaged - read, "write": done - triaged})


def _rollback(pg) -> None:
    try:
        pg.rollback()
    except Exception:  # noqa: BLE001 - the server may be gone; nothing was committed
        pass


def _drop_nulls_columns(table: pa.Table) -> pa.Table:
    """Columns that are null throughout are left to the table's defaults (and to their own types)."""
    keep = [name for name in table.column_names if table.column(name).null_count < table.num_rows]
    return table.select(keep)


def _literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"
