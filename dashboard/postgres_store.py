"""The store on PostgreSQL: the system of record when several app servers or sites share one.

``BACKLINE_DATABASE_URL=postgresql://...`` (or ``--database-url``) selects it; without it the
DuckDB file of :mod:`dashboard.db` is the store, as before. Both offer the same interface, so
pages, workflow and metrics do not know which one is in use:

* **Writes** go through :meth:`PostgresDatabase.transaction` on a pooled psycopg 3 connection, in a
  transaction that is retried when PostgreSQL reports a serialization failure or a deadlock. The
  work sees a :class:`PgConnection`, which takes the same ``?`` and ``$name`` parameters as DuckDB,
  so that statements written in the SQL both engines share are written once.
* **Reads** and the rules engine run in DuckDB, on a replica of the tables held in this process
  (:mod:`dashboard.replica`), fed as Arrow by the ADBC PostgreSQL driver and kept fresh by
  ``LISTEN/NOTIFY``: every committed change, on any server, is announced by a trigger and applied
  before the next read. One engine remains the only implementation of the rules.
* **Schema**: the same numbered migrations as DuckDB's, written for PostgreSQL where the SQL
  differs (``dashboard/migrations/postgresql/``), each in its own transaction and recorded in
  ``schema_migrations``. The change-announcing triggers are installed after them.
"""

from __future__ import annotations

import random
import re
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from dashboard.config import get_settings
from dashboard.db import MIGRATIONS_DIR, DatabaseError, Migration, migrations

T = TypeVar("T")
PG_MIGRATIONS_DIR = MIGRATIONS_DIR / "postgresql"
CHANNEL = "backline_changes"
# Tables whose rows are never changed or removed; the app's role may not UPDATE or DELETE them.
APPEND_ONLY = ("events", "alert_log", "fhir_imports", "fhir_resources", "schema_migrations")
# For each table, the column whose values name the rows a change touched: the replica reloads all
# rows with those values (several rows may share one: a report's unasked questions).
ROW_KEYS = {
    "meta": "key", "panels": "panel_id", "staff": "staff_id", "patients": "patient_id",
    "patient_contacts": "patient_id", "regimens": "regimen_id", "administrations": "administration_id",
    "reports": "report_id", "report_unasked": "report_id", "guidance_sets": "guidance_key",
    "triage_results": "report_id", "events": "event_id", "open_reports": "report_id",
    "alert_log": "log_id", "fhir_imports": "import_id", "fhir_resources": "fhir_id",
}
# A statement touching more rows than this announces "reload the table" instead of its keys (a
# notification carries at most 8,000 bytes).
NOTIFY_KEYS = 100


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def is_postgres_url(location: str | None) -> bool:
    return bool(location) and str(location).startswith(("postgresql://", "postgres://"))


# --------------------------------------------------------------------------- parameters

_TOKEN = re.compile(r"""('(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|\$\$.*?\$\$|::|\?|\$[A-Za-z_][A-Za-z0-9_]*|%)""", re.S)


def to_psycopg(sql: str) -> str:
    """DuckDB's parameters (``?``, ``$name``) as psycopg's (``%s``, ``%(name)s``), outside quotes."""
    def swap(m: re.Match) -> str:
        token = m.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        if token.startswith("$") and not token.startswith("$$"):
            return f"%({token[1:]})s"
        return token
    return _TOKEN.sub(swap, sql)


class PgResult:
    """What DuckDB's ``execute`` returns, as far as Backline uses it."""

    def __init__(self, cursor: psycopg.Cursor):
        self._cursor = cursor
        self.description = cursor.description

    def fetchall(self) -> list[tuple]:
        if self._cursor.description is None:  # INSERT, UPDATE, DELETE: the row count, as DuckDB gives it
            return [(self._cursor.rowcount,)]
        return self._cursor.fetchall()

    def fetchone(self) -> tuple | None:
        return self._cursor.fetchone()

    def df(self) -> pd.DataFrame:
        rows = self.fetchall()
        return pd.DataFrame(rows, columns=[d.name for d in self._cursor.description or []])


class PgConnection:
    """A psycopg connection inside one transaction, with DuckDB's ``execute(sql, params)``."""

    engine = "postgresql"

    def __init__(self, con: psycopg.Connection, store: "PostgresDatabase"):
        self.raw = con
        self.store = store

    def execute(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> PgResult:
        cursor = self.raw.cursor()
        cursor.execute(to_psycopg(sql), params or None)
        return PgResult(cursor)


_WRITE = re.compile(r"\s*(?:--[^\n]*\n\s*)*(INSERT|UPDATE|DELETE|TRUNCATE|MERGE|ALTER|DROP|COPY|ATTACH|"
                    r"CREATE\s+(?!(?:OR\s+REPLACE\s+)?TEMP))", re.I)


class ReadCursor:
    """A replica cursor that refuses statements that write (temporary tables aside)."""

    def __init__(self, cursor: Any, store: str):
        self._cursor, self._store = cursor, store

    def _check(self, sql: str) -> None:
        if _WRITE.match(sql):
            raise DatabaseError(f"a write on {self._store} must go through the store's transaction(), not a read "
                                f"connection: {' '.join(sql.split())[:80]}")

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self._check(sql)
        return self._cursor.execute(sql, *args, **kwargs)

    def sql(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self._check(sql)
        return self._cursor.sql(sql, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


def is_postgres(con: Any) -> bool:
    return getattr(con, "engine", None) == "postgresql"


# --------------------------------------------------------------------------- the store


def pg_migrations() -> list[Migration]:
    """The PostgreSQL migrations: one for each of DuckDB's, by number and name."""
    out = []
    for m in migrations():
        path = PG_MIGRATIONS_DIR / f"{m.version:03d}_{m.name}.sql"
        if not path.exists():
            raise DatabaseError(f"migration {path.name} has no PostgreSQL version in {PG_MIGRATIONS_DIR}")
        out.append(Migration(m.version, m.name, path.read_text(encoding="utf-8")))
    return out


def _announce_sql() -> str:
    """The triggers that announce every committed change (NOTIFY is delivered at commit, in order)."""
    parts = [f"""
CREATE OR REPLACE FUNCTION backline_announce() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    keys text[];
BEGIN
    -- How many rows first (a bulk load's are not gathered into a list); their keys only when few.
    IF TG_OP = 'DELETE' THEN
        SELECT count(*) INTO n FROM old_rows;
        IF n <= {NOTIFY_KEYS} THEN
            EXECUTE format('SELECT array_agg(%I::text) FROM old_rows', TG_ARGV[0]) INTO keys;
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT count(*) INTO n FROM new_rows;
        IF n <= {NOTIFY_KEYS} THEN
            EXECUTE format('SELECT array_agg(k) FROM (SELECT %I::text AS k FROM new_rows UNION SELECT %I::text '
                           'FROM old_rows) u', TG_ARGV[0], TG_ARGV[0]) INTO keys;
        END IF;
    ELSIF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO n FROM new_rows;
        IF n <= {NOTIFY_KEYS} THEN
            EXECUTE format('SELECT array_agg(%I::text) FROM new_rows', TG_ARGV[0]) INTO keys;
        END IF;
    ELSE
        n := {NOTIFY_KEYS} + 1;  -- TRUNCATE
    END IF;
    IF n > {NOTIFY_KEYS} THEN
        PERFORM pg_notify('{CHANNEL}', json_build_object('table', TG_TABLE_NAME, 'all', true)::text);
    ELSIF n > 0 THEN
        PERFORM pg_notify('{CHANNEL}', json_build_object('table', TG_TABLE_NAME, 'keys', keys)::text);
    END IF;
    RETURN NULL;
END
$$;"""]
    for table, key in ROW_KEYS.items():
        for op, ref in (("insert", "NEW TABLE AS new_rows"), ("update", "NEW TABLE AS new_rows OLD TABLE AS old_rows"),
                        ("delete", "OLD TABLE AS old_rows")):
            name = f"{table}_announce_{op}"
            parts.append(f"DROP TRIGGER IF EXISTS {name} ON {table};")
            parts.append(f"CREATE TRIGGER {name} AFTER {op.upper()} ON {table} REFERENCING {ref} "
                         f"FOR EACH STATEMENT EXECUTE FUNCTION backline_announce('{key}');")
        parts.append(f"DROP TRIGGER IF EXISTS {table}_announce_truncate ON {table};")
        parts.append(f"CREATE TRIGGER {table}_announce_truncate AFTER TRUNCATE ON {table} "
                     f"FOR EACH STATEMENT EXECUTE FUNCTION backline_announce('{key}');")
    return "\n".join(parts)


def _plain(exc: BaseException, url: str) -> str:
    text = " ".join(str(exc).split())
    return f"the PostgreSQL store {redact(url)} is unavailable: {text[:300]}"


class StoreUnavailable(DatabaseError):
    """The PostgreSQL server cannot be reached (down, restarting, refusing): say so, lose nothing."""


_RETRY = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)


class PostgresDatabase:
    """PostgreSQL as the system of record, with the same interface as :class:`dashboard.db.Database`."""

    engine = "postgresql"
    read_only = False

    def __init__(self, url: str, *, pool_size: int | None = None):
        self.url = url
        self.path = redact(url)  # what messages name (the DuckDB store names its file)
        self.conflicts = 0  # transactions retried after a serialization failure or a deadlock
        # Transactions that ran while another of this store's was open (on PostgreSQL two actions on
        # one report do not conflict: the second waits for the first's row lock). For tests.
        self.overlapped = 0
        self._active = 0
        self._pool_size = pool_size or get_settings().pg_pool_size
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()
        self._replica = None

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.path!r})"

    @property
    def location(self) -> str:
        """What :func:`dashboard.db.open_store` opens this store again from."""
        return self.url

    # ---- connections
    def _configure(self, con: psycopg.Connection) -> None:
        con.execute("SELECT set_config('TimeZone', %s, false)", [get_settings().timezone])
        con.commit()

    @property
    def pool(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.url, min_size=1, max_size=self._pool_size, open=False, configure=self._configure,
                    check=ConnectionPool.check_connection, timeout=get_settings().pg_connect_timeout_seconds,
                    kwargs={"connect_timeout": max(1, int(get_settings().pg_connect_timeout_seconds))},
                    name="backline")
                self._pool.open(wait=False)
            return self._pool

    @contextmanager
    def pg(self) -> Iterator[psycopg.Connection]:
        """A pooled connection (outside any transaction of the store's)."""
        try:
            with self.pool.connection() as con:
                yield con
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise StoreUnavailable(_plain(exc, self.url)) from None

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
            if self._replica is not None:
                self._replica.close()
                self._replica = None

    @property
    def replica(self):
        from dashboard.replica import Replica

        with self._lock:
            if self._replica is None:
                self._replica = Replica(self)
            return self._replica

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A DuckDB cursor on this process's replica, brought up to date first: for reads only (a
        write would change a copy PostgreSQL never hears of, so it is refused)."""
        with self.replica.cursor() as cur:
            yield ReadCursor(cur, self.path)

    def query(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
        with self.connect() as con:
            return con.execute(sql, params or []).df()

    def rows(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> list[tuple]:
        with self.connect() as con:
            return con.execute(sql, params or []).fetchall()

    def scalar(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> Any:
        rows = self.rows(sql, params)
        return rows[0][0] if rows else None

    def transaction(self, work: Callable[[PgConnection], T], *, attempts: int | None = None) -> T:
        """Run ``work(con)`` in a PostgreSQL transaction; retry it when it loses a serialization
        conflict or a deadlock. After the commit, this process's replica has the change before the
        call returns (the next read sees it)."""
        deadline = time.monotonic() + get_settings().write_retry_seconds
        attempt = 0
        with self._lock:
            self._active += 1
            self.overlapped += self._active > 1
        try:
            return self._transaction(work, attempts, deadline)
        finally:
            with self._lock:
                self._active -= 1

    def _transaction(self, work: Callable[[PgConnection], T], attempts: int | None, deadline: float) -> T:
        attempt = 0
        with self.pg() as raw:
            while True:
                attempt += 1
                token = f"{id(self)}-{threading.get_ident()}-{time.monotonic_ns()}"
                try:
                    with raw.transaction():
                        result = work(PgConnection(raw, self))
                        raw.execute("SELECT pg_notify(%s, %s)", [CHANNEL, f'{{"token": "{token}"}}'])
                    break
                except _RETRY:
                    self.conflicts += 1
                    if (attempts is not None and attempt >= attempts) or time.monotonic() > deadline:
                        raise
                    time.sleep(random.uniform(0, min(0.2, 0.002 * 2 ** min(attempt, 10))))
                except psycopg.OperationalError as exc:
                    raise StoreUnavailable(_plain(exc, self.url)) from None
        if self._replica is not None:
            self._replica.wait_for(token)
        return result

    # ---- schema
    def schema_version(self, con: psycopg.Connection | None = None) -> int:
        def read(c: psycopg.Connection) -> int:
            exists = c.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]
            return c.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0] if exists else 0
        if con is not None:
            return read(con)
        with self.pg() as c:
            version = read(c)
            c.rollback()
            return version

    def migrate(self, *, app_role: str | None = None) -> list[int]:
        """Apply the migrations this database has not had yet, each in its own transaction, then
        (re)install the change announcements; with ``app_role``, grant that role what the app needs
        and no more (no UPDATE or DELETE on the append-only tables). Returns the versions applied."""
        known = pg_migrations()
        applied: list[int] = []
        with self.pg() as con:
            # One migrator at a time (two app servers starting together); the lock is the session's.
            con.execute("SELECT pg_advisory_lock(hashtext('backline migrate'))")
            con.commit()
            try:
                with con.transaction():
                    con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                                " name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)")
                    current = self.schema_version(con)
                if current > len(known):
                    raise DatabaseError(f"{self.path} has schema version {current}, newer than this Backline "
                                        f"knows ({len(known)}); upgrade Backline before opening it")
                for m in known[current:]:
                    with con.transaction():
                        con.execute(m.sql)
                        con.execute("INSERT INTO schema_migrations VALUES (%s, %s, now()::TIMESTAMP)",
                                    [m.version, m.name])
                    applied.append(m.version)
                with con.transaction():
                    con.execute(_announce_sql())
                    if app_role:
                        grant_app_role(con, app_role)
            finally:
                con.execute("SELECT pg_advisory_unlock(hashtext('backline migrate'))")
                con.commit()
        return applied

    def exists(self) -> bool:
        """Whether the server answers (a PostgreSQL database is created by its administrator)."""
        with self.pg() as con:
            con.execute("SELECT 1")
            con.rollback()
        return True

    def verify_schema(self) -> None:
        """Refuse a database that is not at this code's schema version (without reading any data)."""
        latest = len(migrations())
        current = self.schema_version()
        if current > latest:
            raise DatabaseError(f"{self.path} has schema version {current}, newer than this Backline knows ({latest})")
        if current < latest:
            raise DatabaseError(f"{self.path} has schema version {current}; run `backline migrate` to bring it to "
                                f"{latest}")

    def check_schema(self) -> tuple:
        """Refuse a database that is not at this code's schema version; return the data version."""
        latest = len(migrations())
        current = self.schema_version()
        if current > latest:
            raise DatabaseError(f"{self.path} has schema version {current}, newer than this Backline knows ({latest})")
        if current < latest:
            raise DatabaseError(f"{self.path} has schema version {current}; run `backline migrate` to bring it to "
                                f"{latest}")
        with self.connect() as con:
            from dashboard.db import data_version

            return data_version(con)

    def meta(self) -> dict[str, str]:
        return dict(self.rows("SELECT key, value FROM meta"))


def grant_app_role(con: psycopg.Connection, role: str) -> None:
    """What the app's role may do: read and write the tables, use the sequences, and never UPDATE,
    DELETE or TRUNCATE an append-only table (the triggers refuse it too, for every role)."""
    from psycopg import sql

    r = sql.Identifier(role)
    con.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(r))
    con.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(r))
    con.execute(sql.SQL("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {}").format(r))
    con.execute(sql.SQL("REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM {}").format(r))
    for table in APPEND_ONLY:
        con.execute(sql.SQL("REVOKE UPDATE, DELETE ON {} FROM {}").format(sql.Identifier(table), r))
    con.execute(sql.SQL("REVOKE INSERT ON schema_migrations FROM {}").format(r))
