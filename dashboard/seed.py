"""Build a database: from a sample made by the generator, or from a folder of files.

Everything is loaded in one transaction (a failure leaves no half-built database), reports are
triaged by the engine, care-team events are generated from the triage when the sample has none,
and the ``open_reports`` index is built from the events.

Only the generator's path marks a database as synthetic (``meta``: ``synthetic``, ``created_by``,
and the last event and report it made), and only a marked database runs in demo mode. Loading
files never writes the mark, whatever the folder's ``meta.csv`` says: files can hold anything.
Events and reports numbered after the mark's are the care team's (or a re-triage's), so a
database holding any is never replaced by ``backline seed --force``.
"""

from __future__ import annotations

import ctypes
import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dashboard import clock
from dashboard.config import get_settings
from dashboard.db import Database, DatabaseError, run
from dashboard.identity import CREATED_BY, MARK_KEYS, is_generated
from dashboard.retriage import retriage
from dashboard.rules import RuleSet
from dashboard.sample import SampleData, event_table, generate

# DuckDB's memory limit while seeding: with the sample's frames in memory beside it, the whole
# process stays under 2 GB at a million reports (the app's limit, duckdb_memory_limit, is for queries).
SEED_MEMORY_LIMIT = "1GB"
LOAD_ORDER = ("panels", "staff", "patients", "regimens", "administrations", "reports")
# Columns moved forward with the sample when it is loaded at a later date.
TIME_COLUMNS = {
    "regimens": ("start_date", "end_date"),
    "administrations": ("given_at", "stopped_at"),
    "reports": ("reported_at", "received_at"),
    "events": ("acted_at",),
}
# Rows dated after "now" once shifted are left out (they have not happened yet).
NOT_AFTER = {"administrations": "given_at", "reports": "reported_at", "events": "acted_at"}
# The default sample, as `make run` builds it on first use (deterministic: the same seed and day
# give the same database).
DEFAULT_SAMPLE = {"patients": 400, "reports": 6000, "seed": 7}


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


def _finish(con: duckdb.DuckDBPyConnection, meta: dict[str, str], *, generated: bool) -> None:
    """Index the open reports, continue the numbering, and write ``meta``: with the synthetic mark
    when ``generated`` (the generator made every row), never otherwise."""
    run(con, 
        """
        INSERT INTO open_reports (report_id, patient_id, panel_id, reported_at)
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
    meta = {k: v for k, v in meta.items() if k not in MARK_KEYS and k != "generated"}
    if generated:
        meta.update({"synthetic": "true", "created_by": CREATED_BY, "generated_events": str(int(top_event)),
                     "generated_reports": str(int(top_report))})
    con.executemany("INSERT INTO meta VALUES (?, ?)", [[k, str(v)] for k, v in meta.items()])


def _counts(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int, int, int]:
    return con.execute(
        "SELECT (SELECT count(*) FROM patients), (SELECT count(*) FROM reports),"
        " (SELECT count(*) FROM administrations), (SELECT count(*) FROM events),"
        " (SELECT count(*) FROM open_reports)"
    ).fetchall()[0]


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def seed_generated(db: Database, rules: RuleSet, data: SampleData, *, now: datetime, seed: int,
                   progress: Progress = _quiet) -> SeedStats:
    """Load a generated sample, triage it and generate its care-team events.

    Sized for a million reports in well under 2 GB: frames go in through Arrow, DuckDB works under
    a lower memory limit than the app's (SEED_MEMORY_LIMIT), the events are built as compact Arrow
    columns rather than a frame of Python strings, and memory freed between the steps is handed
    back to the system so that the steps' peaks do not stack.
    """
    if db.engine == "postgresql":
        return _seed_postgres(db, progress, lambda scratch: seed_generated(scratch, rules, data, now=now, seed=seed,
                                                                            progress=progress))
    started = time.perf_counter()
    db.migrate()
    progress("migrated")

    wall_now = clock.wall(now)  # the generator counts in wall-clock time

    def work(con: duckdb.DuckDBPyConnection) -> float:
        _require_empty(con, db.path)
        progress("loading")
        for table in LOAD_ORDER:
            # The generator's wall-clock times stored as the instants they name.
            frame = clock.aware_frame(getattr(data, table), TIME_COLUMNS.get(table, ()))
            src = pa.Table.from_pandas(frame, preserve_index=False)
            con.register("bl_src", src)
            cols = ", ".join(f'"{c}"' for c in frame.columns)
            run(con, f"INSERT INTO {table} ({cols}) SELECT {cols} FROM bl_src")
            con.unregister("bl_src")
            del src
        _release_memory()
        progress("triaging")
        stats = retriage(con, rules, now=now, record_changes=False)
        _release_memory()
        progress("events")
        events = _events(con, rules, data, now=wall_now, seed=seed)
        events = events.set_column(events.schema.get_field_index("acted_at"), "acted_at", pc.assume_timezone(
            events.column("acted_at"), timezone=get_settings().timezone, ambiguous="earliest", nonexistent="latest"))
        con.register("bl_src", events)
        cols = ", ".join(f'"{c}"' for c in events.column_names)
        run(con, f"INSERT INTO events ({cols}) SELECT {cols} FROM bl_src")
        con.unregister("bl_src")
        del events
        _release_memory()
        _finish(con, data.meta, generated=True)
        progress("committing")
        return stats.seconds

    _release_memory()
    with _memory_limit(db, SEED_MEMORY_LIMIT):  # the commit, which writes it all out, included
        triage_seconds = db.transaction(work, attempts=1)
    progress("committed")
    with db.connect() as con:
        counts = _counts(con)
    return SeedStats(*counts, seconds=time.perf_counter() - started, triage_seconds=triage_seconds)


def _events(con: duckdb.DuckDBPyConnection, rules: RuleSet, data: SampleData, *, now: datetime, seed: int) -> pa.Table:
    """The care-team events of the triaged sample (as ``generate_events`` makes them, as Arrow columns)."""
    reports = data.reports
    ids = pa.Table.from_pandas(reports[["report_id"]], preserve_index=False).column(0).combine_chunks()
    con.register("bl_ids", pa.table({"report_id": ids, "row": pa.array(np.arange(len(ids), dtype=np.int64))}))
    # Only what the events depend on, in the sample's report order (as an inner merge would give).
    tri = con.sql(
        "SELECT i.row, t.tier, t.causes[1] AS first_cause FROM bl_ids i JOIN triage_results t USING (report_id)"
        " ORDER BY i.row"
    ).to_arrow_table()
    con.unregister("bl_ids")
    rows = tri.column("row").to_numpy()
    patient_ids = pa.Table.from_pandas(reports[["patient_id"]], preserve_index=False).column(0)
    return event_table(
        report_id=ids.take(rows), patient_id=patient_ids.take(rows), reported_at=reports["reported_at"].to_numpy()[rows],
        tier=tri.column("tier"), first_cause=tri.column("first_cause"), patients=data.patients,
        staff=data.staff, rules_version=rules.version, as_of=now, seed=seed,
    )


@contextmanager
def _memory_limit(db: Database, limit: str):
    """Lower DuckDB's memory limit for this database to ``limit`` (never raise it) while inside.

    The limit belongs to the database instance, which every connection of this process to the
    file shares while one is open: a connection is held open meanwhile, and the limit restored.
    """
    configured, wanted = _bytes(get_settings().duckdb_memory_limit), _bytes(limit)
    if configured is None or wanted is None or configured <= wanted:
        yield
        return
    with db.connect() as con:
        before = run(con, "SELECT current_setting('memory_limit')")[0][0]
        run(con, f"SET memory_limit = '{limit}'")
        try:
            yield
        finally:
            run(con, f"SET memory_limit = '{before}'")


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _bytes(text: str) -> int | None:
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _release_memory() -> None:
    """Hand memory that pandas, numpy and Arrow have freed back to the system.

    glibc keeps freed blocks of a long-lived heap, and Arrow's allocator keeps its own, so without
    this a process's resident size only ever grows: each step's peak would sit on top of the last.
    """
    pa.default_memory_pool().release_unused()
    if _malloc_trim is not None:
        _malloc_trim(0)


def _libc_malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_malloc_trim = _libc_malloc_trim()


def seed_from_files(db: Database, rules: RuleSet, folder: Path, *, now: datetime) -> SeedStats:
    """Load the sample files, moved forward in whole days so that the sample ends today."""
    if db.engine == "postgresql":
        return _seed_postgres(db, _quiet, lambda scratch: seed_from_files(scratch, rules, folder, now=now))
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
            if table == "administrations":
                # A course whose stop date has not come yet (a sample loaded before its as_of) is running.
                moved[-1] = (f"CASE WHEN stopped_at + INTERVAL ({shift}) DAY <= ?::TIMESTAMP"
                             f" THEN stopped_at + INTERVAL ({shift}) DAY END AS stopped_at")
            select = f"SELECT * REPLACE ({', '.join(moved)}) FROM {src}" if moved else f"SELECT * FROM {src}"
            conds = []
            if table in NOT_AFTER:
                conds.append(f"{NOT_AFTER[table]} <= ?")
            if table in ("events",):
                conds.append("report_id IN (SELECT report_id FROM reports)")
            where = f" WHERE {' AND '.join(conds)}" if conds else ""
            params = ([now] if table == "administrations" else []) + ([now] if table in NOT_AFTER else [])
            run(con, f"INSERT INTO {table} SELECT * FROM ({select}){where}", params)
            if table == "reports":
                stats = retriage(con, rules, now=now, record_changes=False)
        meta.update({"as_of": now.isoformat(timespec="minutes"), "sample_as_of": as_of.isoformat(),
                     "shifted_days": str(shift), "sample_folder": folder.name})
        _finish(con, meta, generated=False)
        return stats.seconds

    triage_seconds = db.transaction(work, attempts=1)
    with db.connect() as con:
        counts = _counts(con)
    return SeedStats(*counts, seconds=time.perf_counter() - started, triage_seconds=triage_seconds)


def _seed_postgres(db, progress: Progress, build: Callable[[Database], SeedStats]) -> SeedStats:
    """Seed a PostgreSQL store: build the database in a DuckDB file of its own, exactly as the
    embedded store is built, then copy it in, all in one transaction. Only an empty store is seeded."""
    import tempfile

    from dashboard.transfer import copy_to_postgres, require_empty

    started = time.perf_counter()
    db.migrate()
    with db.pg() as con:
        require_empty(con, db.path)
        con.rollback()
    with tempfile.TemporaryDirectory(prefix="backline-seed-") as tmp:
        scratch = Database(Path(tmp) / "seed.duckdb")
        stats = build(scratch)
        progress("copying")
        copy_to_postgres(scratch, db, progress=None)
    progress("copied")
    return SeedStats(stats.patients, stats.reports, stats.administrations, stats.events, stats.open_reports,
                     seconds=time.perf_counter() - started, triage_seconds=stats.triage_seconds)


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
    return generate(patients=patients, reports=reports, seed=seed, as_of=clock.wall(now))


def seed_sample(db: Database, rules: RuleSet, *, now: datetime, patients: int = DEFAULT_SAMPLE["patients"],
                reports: int = DEFAULT_SAMPLE["reports"], seed: int = DEFAULT_SAMPLE["seed"],
                progress: Progress | None = None) -> SeedStats:
    """Generate a sample (the default one unless told otherwise) and load it, marked as synthetic.
    ``progress`` is told each step as it starts (migrated, loading, triaging, events, committing,
    committed)."""
    progress = progress or _quiet
    progress("generating")
    data = generate_sample(patients=patients, reports=reports, seed=seed, now=now)
    return seed_generated(db, rules, data, now=now, seed=seed, progress=progress)


def not_generated(con: duckdb.DuckDBPyConnection) -> str | None:
    """What in this database the generator did not make (None: every event and report is its own).

    An event or report numbered after the ones the mark records was added since (an action, a
    re-triage, a phone report); without the mark, nothing in the file is known to be synthetic.
    """
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    events, reports = con.execute(
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM reports)").fetchall()[0]
    if not is_generated(meta):
        return (f"was not made by the sample generator and holds {_count(events, 'event')} and "
                f"{_count(reports, 'report')}"
                if events or reports else "was not made by the sample generator")
    top_event, top_report = int(meta["generated_events"]), int(meta["generated_reports"])
    added_events, added_reports = con.execute(
        "SELECT (SELECT count(*) FROM events WHERE event_id > ?),"
        " (SELECT count(*) FROM reports WHERE coalesce(TRY_CAST(regexp_extract(report_id, '^R-(\\d+)$', 1) AS BIGINT),"
        " ?) > ?)", [top_event, top_report + 1, top_report]).fetchall()[0]
    if added_events or added_reports:
        return (f"holds {_count(added_events, 'event')} and {_count(added_reports, 'report')} recorded since the "
                "sample was generated (the care team's actions, phone reports, re-triages)")
    return None


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def replace_refusal(db: Database) -> str | None:
    """Why ``backline seed --force`` must not replace this file (None: it holds only what the
    generator made). The file is opened read-only and left as it was."""
    from dashboard.db import DatabaseBusy

    try:
        with Database(db.path, read_only=True).connect() as con:
            return not_generated(con)
    except DatabaseBusy:
        raise
    except (DatabaseError, duckdb.Error) as exc:
        return f"cannot be read as a Backline database ({' '.join(str(exc).split())[:200]}), so what it holds is unknown"
