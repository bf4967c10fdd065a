"""Copy a DuckDB store into an empty PostgreSQL store, every table in one transaction.

``backline seed`` on PostgreSQL builds the sample in a DuckDB file of its own (the same generator,
load and engine as the embedded store) and copies it here; a team moving from one DuckDB file to a
shared PostgreSQL store copies its file the same way (``backline migrate --from-duckdb FILE``).
Rows go as Arrow through the ADBC driver's bulk ingest (PostgreSQL's binary COPY), a batch at a
time; the sequences are set past the copied ids. Any failure rolls the whole copy back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import adbc_driver_postgresql.dbapi as adbc

from dashboard.db import Database, DatabaseError
from dashboard.postgres_store import PostgresDatabase, StoreUnavailable, _plain

# Parents before children (the foreign keys are checked row by row).
TABLES = ("meta", "panels", "staff", "patients", "patient_contacts", "regimens", "administrations", "reports",
          "report_unasked", "guidance_sets", "triage_results", "events", "open_reports", "alert_log",
          "fhir_imports", "fhir_resources")
# Each sequence, and the largest id it has handed out, read from the DuckDB store.
SEQUENCES = {
    "events_seq": "SELECT max(event_id) FROM events",
    "reports_seq": "SELECT greatest(max(TRY_CAST(regexp_extract(report_id, '^R-(\\d+)$', 1) AS BIGINT)),"
                   " (SELECT TRY_CAST(value AS BIGINT) FROM meta WHERE key = 'generated_reports')) FROM reports",
    "alert_log_seq": "SELECT max(log_id) FROM alert_log",
    "fhir_imports_seq": "SELECT max(import_id) FROM fhir_imports",
}
BATCH_ROWS = 200_000


@dataclass(frozen=True)
class CopyStats:
    rows: dict[str, int]
    seconds: float


def require_empty(con, store: str) -> None:
    """Refuse to write into a PostgreSQL store that holds any report, event or patient."""
    held = con.execute("SELECT (SELECT count(*) FROM reports), (SELECT count(*) FROM events),"
                       " (SELECT count(*) FROM patients)").fetchone()
    if any(held):
        raise DatabaseError(
            f"{store} already holds {held[0]:,} reports, {held[1]:,} events and {held[2]:,} patients; a command "
            "never replaces a store's records (its administrator drops and creates the database to start again)")


def copy_to_postgres(source: Database, target: PostgresDatabase,
                     progress: Callable[[str], None] | None = None) -> CopyStats:
    """Every row of ``source`` into the empty ``target`` (migrated to the same version), or nothing."""
    started = time.perf_counter()
    target.migrate()
    counts: dict[str, int] = {}
    try:
        pg = adbc.connect(target.url, autocommit=False)
    except Exception as exc:  # noqa: BLE001 - ADBC's own error types
        raise StoreUnavailable(_plain(exc, target.url)) from None
    try:
        with pg.cursor() as cur:
            cur.execute("SELECT set_config('TimeZone', 'UTC', true)")
            cur.execute("SELECT (SELECT count(*) FROM reports) + (SELECT count(*) FROM events)"
                        " + (SELECT count(*) FROM patients)")
            if cur.fetchone()[0]:
                with target.pg() as con:
                    require_empty(con, target.path)
        with source.connect() as duck:
            for table in TABLES:
                if progress is not None:
                    progress(f"copying {table}")
                columns = [c for c, in duck.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index",
                    [table]).fetchall()]
                counts[table] = duck.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
                if not counts[table]:
                    continue
                reader = duck.sql(f"SELECT {', '.join(columns)} FROM {table}").to_arrow_reader(BATCH_ROWS)
                with pg.cursor() as cur:
                    cur.adbc_ingest(table, reader, mode="append")
            tops = {seq: duck.execute(sql).fetchall()[0][0] for seq, sql in SEQUENCES.items()}
        with pg.cursor() as cur:
            for seq, top in tops.items():
                if top:
                    cur.execute(f"SELECT setval('{seq}', {int(top)})")
                    cur.fetchall()
        pg.commit()
    except DatabaseError:
        pg.rollback()
        raise
    except Exception as exc:  # noqa: BLE001 - a refused row or a lost server: nothing was copied
        try:
            pg.rollback()
        except Exception:  # noqa: BLE001
            pass
        raise DatabaseError(f"copying into {target.path} failed, nothing was copied: "
                            f"{' '.join(str(exc).split())[:400]}") from None
    finally:
        pg.close()
    return CopyStats(counts, time.perf_counter() - started)
