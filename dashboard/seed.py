"""Build a database: from the files in ``sample_data/`` or from a freshly generated sample.

Everything is loaded in one transaction (a failure leaves no half-built database), reports are
triaged by the engine, care-team events are generated from the triage when the sample has none,
and the ``open_reports`` index is built from the events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from dashboard.db import Database, DatabaseError, run
from dashboard.retriage import retriage
from dashboard.rules import RuleSet
from dashboard.sample import SampleData, generate, generate_events

LOAD_ORDER = ("panels", "staff", "patients", "regimens", "administrations", "reports")
# Columns moved forward with the sample when it is loaded at a later date.
TIME_COLUMNS = {
    "regimens": ("start_date", "end_date"),
    "administrations": ("given_at",),
    "reports": ("reported_at", "received_at"),
    "events": ("acted_at",),
}
# Rows dated after "now" once shifted are left out (they have not happened yet).
NOT_AFTER = {"administrations": "given_at", "reports": "reported_at", "events": "acted_at"}


@dataclass(frozen=True)
class SeedStats:
    patients: int
    reports: int
    administrations: int
    events: int
    open_reports: int
    seconds: float
    triage_seconds: float


def _column_types(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return {
        name: dtype
        for name, dtype in con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index",
            [table],
        ).fetchall()
    }


def _require_empty(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    if con.execute("SELECT count(*) FROM patients").fetchall()[0][0]:
        raise DatabaseError(f"{path} already holds data; seed a new file, or pass --force to replace it")


def _finish(con: duckdb.DuckDBPyConnection, meta: dict[str, str]) -> None:
    run(con, 
        """
        INSERT INTO open_reports
        SELECT r.report_id, r.patient_id, p.panel_id, r.reported_at
        FROM reports r JOIN patients p ON p.patient_id = r.patient_id
        WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.report_id = r.report_id AND e.action = 'resolve')
        """
    )
    # Continue the numbering of events and reports after the loaded ones (DuckDB sequences cannot
    # be altered, so the existing ones are advanced).
    top_event, top_report = con.execute(
        "SELECT (SELECT coalesce(max(event_id), 0) FROM events),"
        " (SELECT coalesce(max(TRY_CAST(regexp_extract(report_id, '^R-(\\d+)$', 1) AS BIGINT)), 0) FROM reports)"
    ).fetchall()[0]
    for seq, top in (("events_seq", top_event), ("reports_seq", top_report)):
        if top:
            run(con, f"SELECT max(nextval('{seq}')) FROM range(?)", [int(top)])
    con.executemany("INSERT INTO meta VALUES (?, ?)", [[k, str(v)] for k, v in meta.items()])


def _counts(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int, int, int]:
    return con.execute(
        "SELECT (SELECT count(*) FROM patients), (SELECT count(*) FROM reports),"
        " (SELECT count(*) FROM administrations), (SELECT count(*) FROM events),"
        " (SELECT count(*) FROM open_reports)"
    ).fetchall()[0]


def seed_generated(db: Database, rules: RuleSet, data: SampleData, *, now: datetime, seed: int) -> SeedStats:
    """Load a generated sample, triage it and generate its care-team events."""
    started = time.perf_counter()
    db.migrate()

    def work(con: duckdb.DuckDBPyConnection) -> float:
        _require_empty(con, db.path)
        for table in LOAD_ORDER:
            frame = getattr(data, table)
            con.register("bl_src", frame)
            cols = ", ".join(f'"{c}"' for c in frame.columns)
            run(con, f"INSERT INTO {table} ({cols}) SELECT {cols} FROM bl_src")
            con.unregister("bl_src")
        stats = retriage(con, rules, now=now, record_changes=False)
        tri = con.execute("SELECT report_id, tier, causes FROM triage_results").df()
        events = generate_events(
            reports=data.reports, triage=tri, patients=data.patients, staff=data.staff,
            rules_version=rules.version, as_of=now, seed=seed,
        )
        con.register("bl_src", events)
        run(con, "INSERT INTO events SELECT * FROM bl_src")
        con.unregister("bl_src")
        _finish(con, {**data.meta, "generated": "true"})
        return stats.seconds

    triage_seconds = db.transaction(work, attempts=1)
    with db.connect() as con:
        counts = _counts(con)
    return SeedStats(*counts, seconds=time.perf_counter() - started, triage_seconds=triage_seconds)


def seed_from_files(db: Database, rules: RuleSet, folder: Path, *, now: datetime) -> SeedStats:
    """Load the sample files, moved forward in whole days so that the sample ends today."""
    started = time.perf_counter()
    folder = Path(folder)
    missing = [t for t in (*LOAD_ORDER, "events") if not (folder / f"{t}.csv").exists()]
    if missing or not (folder / "meta.csv").exists():
        raise DatabaseError(f"the sample folder {folder} lacks {', '.join(missing) or 'meta'}.csv")
    db.migrate()

    def work(con: duckdb.DuckDBPyConnection) -> float:
        _require_empty(con, db.path)
        meta = dict(con.execute(f"SELECT key, value FROM read_csv('{_q(folder / 'meta.csv')}', header=true,"
                                " columns={'key': 'VARCHAR', 'value': 'VARCHAR'})").fetchall())
        as_of = datetime.fromisoformat(meta["as_of"])
        shift = (now.date() - as_of.date()).days
        for table in (*LOAD_ORDER, "events"):
            types = _column_types(con, table)
            spec = "{" + ", ".join(f"'{c}': '{t}'" for c, t in types.items()) + "}"
            src = f"read_csv('{_q(folder / f'{table}.csv')}', header=true, columns={spec}, nullstr='')"
            moved = [f"{c} + INTERVAL ({shift}) DAY AS {c}" for c in TIME_COLUMNS.get(table, ())]
            select = f"SELECT * REPLACE ({', '.join(moved)}) FROM {src}" if moved else f"SELECT * FROM {src}"
            conds = []
            if table in NOT_AFTER:
                conds.append(f"{NOT_AFTER[table]} <= ?")
            if table in ("events",):
                conds.append("report_id IN (SELECT report_id FROM reports)")
            where = f" WHERE {' AND '.join(conds)}" if conds else ""
            params = [now] if table in NOT_AFTER else []
            run(con, f"INSERT INTO {table} SELECT * FROM ({select}){where}", params)
            if table == "reports":
                stats = retriage(con, rules, now=now, record_changes=False)
        meta.update({"as_of": now.isoformat(timespec="minutes"), "sample_as_of": as_of.isoformat(),
                     "shifted_days": str(shift), "sample_folder": folder.name})
        _finish(con, meta)
        return stats.seconds

    triage_seconds = db.transaction(work, attempts=1)
    with db.connect() as con:
        counts = _counts(con)
    return SeedStats(*counts, seconds=time.perf_counter() - started, triage_seconds=triage_seconds)


def _q(path: Path) -> str:
    return str(path).replace("'", "''")


def write_sample_files(db: Database, folder: Path) -> list[Path]:
    """Export a seeded database's source tables (and meta) as the CSV files it can be rebuilt from."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with db.connect() as con:
        for table in (*LOAD_ORDER, "events"):
            order = {"administrations": "administration_id", "reports": "report_id", "events": "event_id"}.get(table, "1")
            path = folder / f"{table}.csv"
            run(con, 
                f"COPY (SELECT * FROM {table} ORDER BY {order}) TO '{_q(path)}' (HEADER, DELIMITER ',')"
            )
            written.append(path)
        path = folder / "meta.csv"
        run(con, 
            f"COPY (SELECT key, value FROM meta WHERE key IN ('created_by', 'synthetic', 'seed', 'as_of',"
            f" 'patients', 'reports') ORDER BY key) TO '{_q(path)}' (HEADER, DELIMITER ',')"
        )
        written.append(path)
    return written


def generate_sample(*, patients: int, reports: int, seed: int, now: datetime) -> SampleData:
    return generate(patients=patients, reports=reports, seed=seed, as_of=now)
