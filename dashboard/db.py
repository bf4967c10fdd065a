"""The store: a DuckDB file, its numbered migrations and safe ways in and out.

Connections are opened per unit of work and closed after it, so that another process (``backline
retriage`` while the app is serving) can take the file between them; an open that finds the file
locked retries for a while before giving up with a clear message. Within one process DuckDB shares
one database instance between connections, so threads never block each other on the file.

Writes go through :meth:`Database.transaction`, which retries a transaction that lost a write
conflict. Migrations are ``dashboard/migrations/NNN_name.sql``, each applied once, in its own
transaction, and recorded in ``schema_migrations``.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import duckdb
import pandas as pd
import psycopg

from dashboard.config import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_CONNECT_LOCK = threading.Lock()
T = TypeVar("T")


class DatabaseError(Exception):
    """A database problem said plainly: missing, locked, read-only, too new, or corrupt."""


class DatabaseBusy(DatabaseError):
    pass


# What either store raises when the database refuses a row (a key, a check, a reference) ...
CONSTRAINT_ERRORS = (duckdb.ConstraintException, psycopg.errors.IntegrityError)
# ... and any error of either engine.
ENGINE_ERRORS = (duckdb.Error, psycopg.Error)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    out = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        m = re.fullmatch(r"(\d{3})_([a-z0-9_]+)\.sql", path.name)
        if not m:
            raise DatabaseError(f"migration file name {path.name!r} is not NNN_name.sql")
        out.append(Migration(int(m.group(1)), m.group(2), path.read_text(encoding="utf-8")))
    versions = [m.version for m in out]
    if versions != list(range(1, len(out) + 1)):
        raise DatabaseError(f"migrations must be numbered 001, 002, ... without gaps (found {versions})")
    return out


def latest_version() -> int:
    return len(migrations())


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text or "lock on file" in text


def _plain(exc: Exception, path: Path) -> str:
    text = str(exc)
    if "Read-only file system" in text or "Permission denied" in text:
        return f"the database file {path} cannot be opened for writing (read-only or no permission)"
    if "not a valid DuckDB database file" in text or "corrupt" in text.lower():
        return f"{path} is not a readable DuckDB database (damaged, or not a database file)"
    if "older version" in text.lower() or "newer version" in text.lower() or "storage version" in text.lower():
        return f"{path} was written by a different DuckDB version and cannot be opened here"
    return f"could not open the database {path}: {text.splitlines()[0]}"


class Database:
    """A DuckDB file, opened per unit of work."""

    def __init__(self, path: Path | str, *, read_only: bool = False, lock_timeout: float | None = None):
        self.path = Path(path)
        self.read_only = read_only
        self.lock_timeout = get_settings().lock_timeout_seconds if lock_timeout is None else lock_timeout
        self.conflicts = 0  # write conflicts retried (for tests and benchmarks)

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r})"

    engine = "duckdb"

    @property
    def location(self) -> str:
        """What :func:`open_store` opens this store again from."""
        return str(self.path)

    # ---- connections
    def _open(self) -> duckdb.DuckDBPyConnection:
        if self.read_only and not self.exists():
            raise DatabaseError(f"the database file {self.path} does not exist")
        settings = get_settings()
        config = {"threads": settings.duckdb_threads, "memory_limit": settings.duckdb_memory_limit}
        if self.read_only:
            config["access_mode"] = "READ_ONLY"
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.01
        while True:
            try:
                # One connect at a time in this process: a second thread must not pick up the
                # shared database instance before the first has finished setting it up.
                with _CONNECT_LOCK:
                    con = duckdb.connect(str(self.path), config=config)
                # Times are instants (TIMESTAMPTZ); calendar days, casts and the values read back
                # are in the service's time zone.
                con.execute("SET TimeZone = $tz", {"tz": settings.timezone})
                return con
            except duckdb.Error as exc:
                if _is_lock_error(exc):
                    if time.monotonic() >= deadline:
                        raise DatabaseBusy(
                            f"the database {self.path} is in use by another process "
                            f"(waited {self.lock_timeout:.0f} s); try again when it has finished"
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 1.5, 0.25)
                    continue
                raise DatabaseError(_plain(exc, self.path)) from None
            except OSError as exc:
                raise DatabaseError(_plain(exc, self.path)) from None

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one unit of work, closed afterwards."""
        if not self.read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._open()
        try:
            yield con
        finally:
            con.close()

    def query(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
        with self.connect() as con:
            return con.execute(sql, params or []).df()

    def rows(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> list[tuple]:
        with self.connect() as con:
            return con.execute(sql, params or []).fetchall()

    def scalar(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> Any:
        rows = self.rows(sql, params)
        return rows[0][0] if rows else None

    def transaction(self, work: Callable[[duckdb.DuckDBPyConnection], T], *, attempts: int | None = None) -> T:
        """Run ``work(con)`` in a transaction; retry it when it loses a write conflict.

        Two transactions that change the same row conflict in DuckDB; the loser is rolled back and
        run again (after a short random wait) until it commits, so no action is ever lost. Gives up
        only after ``write_retry_seconds`` (or ``attempts`` tries, when given).
        """
        deadline = time.monotonic() + get_settings().write_retry_seconds
        attempt = 0
        with self.connect() as con:
            while True:
                attempt += 1
                run(con, "BEGIN TRANSACTION")
                try:
                    result = work(con)
                    run(con, "COMMIT")
                    return result
                except duckdb.TransactionException:
                    _rollback(con)
                    self.conflicts += 1
                    if (attempts is not None and attempt >= attempts) or time.monotonic() > deadline:
                        raise
                    time.sleep(random.uniform(0, min(0.2, 0.002 * 2 ** min(attempt, 10))))
                except BaseException:
                    _rollback(con)
                    raise

    # ---- schema
    def schema_version(self, con: duckdb.DuckDBPyConnection) -> int:
        exists = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_migrations'"
        ).fetchall()[0][0]
        if not exists:
            return 0
        return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchall()[0][0]

    def migrate(self) -> list[int]:
        """Apply the migrations this database has not had yet; return their versions."""
        known = migrations()
        applied: list[int] = []
        with self.connect() as con:
            run(con, 
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
            )
            current = self.schema_version(con)
            if current > len(known):
                raise DatabaseError(
                    f"{self.path} has schema version {current}, newer than this Backline knows "
                    f"({len(known)}); upgrade Backline before opening it"
                )
            for m in known[current:]:
                run(con, "BEGIN TRANSACTION")
                try:
                    run(con, m.sql)
                    run(con, 
                        "INSERT INTO schema_migrations VALUES (?, ?, now()::TIMESTAMP)", [m.version, m.name]
                    )
                    run(con, "COMMIT")
                except BaseException:
                    _rollback(con)
                    raise
                applied.append(m.version)
        return applied

    def exists(self) -> bool:
        try:
            return self.path.exists()
        except OSError as exc:  # e.g. a folder on the way that may not be entered
            raise DatabaseError(_plain(exc, self.path)) from None

    def check_schema(self) -> tuple:
        """Refuse a database that is not at this code's schema version; return the data version.

        The data version is a cheap fingerprint that changes whenever a report, an event or a
        triage is written (cached reads are keyed on it), read in the same connection.
        """
        if not self.exists():
            raise DatabaseError(f"the database file {self.path} does not exist; create it with `backline seed`")
        with self.connect() as con:
            current = self.schema_version(con)
            version = data_version(con) if current == latest_version() else ()
        latest = latest_version()
        if current > latest:
            raise DatabaseError(
                f"{self.path} has schema version {current}, newer than this Backline knows ({latest})"
            )
        if current < latest:
            raise DatabaseError(
                f"{self.path} has schema version {current}; run `backline migrate` to bring it to {latest}"
            )
        return version

    def meta(self) -> dict[str, str]:
        return dict(self.rows("SELECT key, value FROM meta"))

    def verify_schema(self) -> None:
        """Refuse a database that is not at this code's schema version."""
        self.check_schema()


def run(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | dict[str, Any] | None = None) -> list[tuple]:
    """Execute a statement and read its result to the end.

    DuckDB 2.0 results stream and hold the connection until read; reading them here keeps the
    connection free for the next statement (registering a frame, say).
    """
    return con.execute(sql, params or []).fetchall()


def data_version(con: duckdb.DuckDBPyConnection) -> tuple:
    return tuple(con.execute(
        "SELECT (SELECT max(event_id) FROM events), (SELECT count(*) FROM reports),"
        " (SELECT max(triaged_at) FROM triage_results), (SELECT count(*) FROM open_reports),"
        " (SELECT max(log_id) FROM alert_log), (SELECT max(import_id) FROM fhir_imports)").fetchall()[0])


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        run(con, "ROLLBACK")
    except duckdb.Error:
        pass


_STORES: dict[str, Any] = {}
_STORES_LOCK = threading.Lock()


def open_store(location: Path | str) -> Any:
    """The store at ``location``: a PostgreSQL URL (one store object per URL in a process: it holds
    the connection pool and the replica), or a DuckDB file."""
    from dashboard.postgres_store import PostgresDatabase, is_postgres_url

    if is_postgres_url(str(location)):
        with _STORES_LOCK:
            if str(location) not in _STORES:
                _STORES[str(location)] = PostgresDatabase(str(location))
            return _STORES[str(location)]
    return Database(location)


def close_stores() -> None:
    with _STORES_LOCK:
        for store in _STORES.values():
            store.close()
        _STORES.clear()


def default_database(path: Path | str | None = None, url: str | None = None) -> Any:
    """The store a command or the app uses: ``url`` (or ``$BACKLINE_DATABASE_URL``) names a
    PostgreSQL store; else the DuckDB file ``path`` (or ``$BACKLINE_DB``, or the default file)."""
    url = url or os.environ.get("BACKLINE_DATABASE_URL") or get_settings().database_url
    if path is None and url:
        return open_store(url)
    return Database(path or os.environ.get("BACKLINE_DB") or get_settings().db)
