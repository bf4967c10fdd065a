"""This process's DuckDB replica of a PostgreSQL store: where reads and the rules engine run.

The replica holds every table of the store in an in-memory DuckDB database with the DuckDB
schema's columns (no keys or checks: PostgreSQL enforces those), so that the queries the pages,
metrics and the engine run on the DuckDB file run unchanged here.

It is fed as Arrow by the ADBC PostgreSQL driver and kept fresh by ``LISTEN/NOTIFY``: a trigger
on every table announces each committed statement's rows (or "the whole table" for a big one), a
listener thread collects the announcements in commit order, and every read first applies what has
arrived, refetching the rows named (a refetch always reads the committed state, so applying an
announcement twice or late is harmless). When the listener is cut off (the server restarted, the
network dropped), announcements may have been lost, so everything is reloaded once it is back; and
while it is cut off, reads say that the store is unavailable rather than show a queue that may be
out of date.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

import adbc_driver_postgresql.dbapi as adbc
import duckdb
import psycopg

from dashboard.config import get_settings
from dashboard.db import migrations, run

if TYPE_CHECKING:
    from dashboard.postgres_store import PostgresDatabase

_SCHEMA_LOCK = threading.Lock()
_SCHEMA: list[str] | None = None


def replica_schema() -> list[str]:
    """The DDL of the replica: the DuckDB schema's tables (columns only) and views, in order."""
    global _SCHEMA
    with _SCHEMA_LOCK:
        if _SCHEMA is None:
            con = duckdb.connect(":memory:")
            for m in migrations():
                con.execute(m.sql)
            ddl = []
            for table, in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT internal AND "
                                      "table_name <> 'append_only_guard' ORDER BY table_name").fetchall():
                cols = con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
                                   "ORDER BY column_index", [table]).fetchall()
                ddl.append(f'CREATE TABLE {table} ({", ".join(f"{c} {t}" for c, t in cols)})')
            ddl.append("CREATE TABLE schema_migrations (version INTEGER, name VARCHAR, applied_at TIMESTAMP)")
            ddl += [sql for sql, in con.execute("SELECT sql FROM duckdb_views() WHERE NOT internal "
                                                "ORDER BY view_name").fetchall()]
            con.close()
            _SCHEMA = ddl
        return _SCHEMA


def _literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


class Replica:
    def __init__(self, store: "PostgresDatabase"):
        from dashboard.postgres_store import ROW_KEYS

        self.store = store
        self.keys = dict(ROW_KEYS, schema_migrations="version")
        settings = get_settings()
        self.duck = duckdb.connect(":memory:", config={"threads": settings.duckdb_threads,
                                                       "memory_limit": settings.duckdb_memory_limit})
        self.duck.execute("SET TimeZone = $tz", {"tz": settings.timezone})
        for ddl in replica_schema():
            self.duck.execute(ddl)
        self.columns = {t: [c for c, in self.duck.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index", [t]).fetchall()]
            for t in self.keys}
        self._cond = threading.Condition()
        self._sync_lock = threading.Lock()
        self._queue: deque[str] = deque()
        self._tokens: deque[str] = deque(maxlen=10_000)
        self._reload_all = True
        self._listening = False
        self._listen_error = "not connected yet"
        self._closed = False
        self._adbc = None
        self.loads = 0  # full loads (for tests and benchmarks)
        self.applied = 0  # announcements applied
        self._thread = threading.Thread(target=self._listen, name="backline-replica", daemon=True)
        self._thread.start()

    # ---- the listener
    def _listen(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                timeout = max(1, int(get_settings().pg_connect_timeout_seconds))
                with psycopg.connect(self.store.url, autocommit=True, connect_timeout=timeout) as con:
                    from dashboard.postgres_store import CHANNEL

                    con.execute(f"LISTEN {CHANNEL}")
                    with self._cond:
                        # Anything committed before LISTEN is read by the reload; everything after is announced.
                        self._reload_all = True
                        self._listening = True
                        self._cond.notify_all()
                    delay = 0.1
                    while not self._closed:
                        for n in con.notifies(timeout=1.0):
                            with self._cond:
                                self._queue.append(n.payload)
                                self._cond.notify_all()
                        con.execute("SELECT 1")  # notices a server that went away while all was quiet
            except psycopg.Error as exc:
                with self._cond:
                    self._listening = False
                    self._listen_error = " ".join(str(exc).split())[:300]
                    self._reload_all = True
                    self._cond.notify_all()
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def close(self) -> None:
        self._closed = True
        self._thread.join(timeout=5)
        if self._adbc is not None:
            try:
                self._adbc.close()
            except Exception:  # noqa: BLE001 - closing a connection to a server that went away
                pass
        self.duck.close()

    # ---- reading PostgreSQL as Arrow
    def _fetch(self, sql: str):
        for attempt in (1, 2):
            try:
                if self._adbc is None:
                    self._adbc = adbc.connect(self.store.url, autocommit=True)
                with self._adbc.cursor() as cur:
                    cur.execute(sql)
                    return cur.fetch_arrow_table()
            except Exception as exc:  # noqa: BLE001 - ADBC raises its own errors; a broken link is retried once
                try:
                    if self._adbc is not None:
                        self._adbc.close()
                except Exception:  # noqa: BLE001
                    pass
                self._adbc = None
                if attempt == 2:
                    from dashboard.postgres_store import StoreUnavailable, _plain

                    raise StoreUnavailable(_plain(exc, self.store.url)) from None
        raise AssertionError("unreachable")

    def _select(self, table: str) -> str:
        return "SELECT " + ", ".join(f'"{c}"' for c in self.columns[table]) + f" FROM {table}"

    def _rows(self, table: str, keys: list[str] | None):
        """The committed rows of ``table`` (all, or those whose key is one of ``keys``), as Arrow."""
        if keys is None:
            return self._fetch(self._select(table))
        return self._fetch(self._select(table) + f" WHERE {self.keys[table]}::text IN ({', '.join(map(_literal, keys))})")

    def _write(self, changes: list[tuple[str, list[str] | None, object]]) -> None:
        """Replace the rows fetched, every table in one DuckDB transaction (a read sees all or none)."""
        con = self.duck.cursor()
        try:
            run(con, "BEGIN TRANSACTION")
            for number, (table, keys, data) in enumerate(changes):
                if keys is None:
                    run(con, f"DELETE FROM {table}")
                else:
                    run(con, f"DELETE FROM {table} WHERE {self.keys[table]}::VARCHAR IN (SELECT unnest(?::VARCHAR[]))",
                        [keys])
                if data.num_rows:
                    name = f"bl_rows_{number}"
                    con.register(name, data)
                    run(con, f"INSERT INTO {table} BY NAME SELECT * FROM {name}")
                    con.unregister(name)
            run(con, "COMMIT")
        except BaseException:
            try:
                run(con, "ROLLBACK")
            except duckdb.Error:
                pass
            raise
        finally:
            con.close()

    # ---- bringing the replica up to date
    def sync(self) -> None:
        """Apply every announcement that has arrived (or reload everything when some may be lost)."""
        from dashboard.postgres_store import StoreUnavailable

        with self._sync_lock:
            with self._cond:
                if not self._listening:
                    self._cond.wait_for(lambda: self._listening or self._closed,
                                        timeout=get_settings().pg_connect_timeout_seconds)
                if not self._listening:
                    raise StoreUnavailable(f"the PostgreSQL store {self.store.path} is unavailable: "
                                           f"{self._listen_error}")
                items = list(self._queue)
                self._queue.clear()
                full, self._reload_all = self._reload_all, False
            try:
                self._apply(items, full)
            except BaseException:
                with self._cond:
                    self._reload_all = True  # start again from the whole store next time
                raise

    def _apply(self, items: list[str], full: bool) -> None:
        whole: set[str] = set()
        keys: dict[str, set[str]] = {}
        for payload in items:
            message = json.loads(payload)
            if "token" in message:
                self._tokens.append(message["token"])
                continue
            table = message["table"]
            if table not in self.keys:
                continue
            if message.get("all"):
                whole.add(table)
            else:
                keys.setdefault(table, set()).update(message.get("keys") or [])
        if full:
            whole, keys = set(self.keys), {}
        wanted = [(t, None) for t in sorted(whole)] + [(t, sorted(k)) for t, k in sorted(keys.items())
                                                        if t not in whole and k]
        if wanted:
            self._write([(t, k, self._rows(t, k)) for t, k in wanted])
        if full:
            self.loads += 1
        self.applied += len(items)

    def wait_for(self, token: str, timeout: float = 10.0) -> None:
        """After a commit of this process's: wait until its announcements have arrived, and apply them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(token in p for p in self._queue) and token not in self._tokens:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._listening:
                    self._reload_all = True  # not heard: the next read reloads everything
                    return
                self._cond.wait(remaining)
        self.sync()

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.sync()
        cur = self.duck.cursor()
        cur.execute("SET TimeZone = $tz", {"tz": get_settings().timezone})
        try:
            yield cur
        finally:
            cur.close()

