"""The store: migrations, append-only events, and clear messages for a file that cannot be used."""

from __future__ import annotations

import duckdb
import psycopg
import pytest

from dashboard.db import Database, DatabaseError, latest_version
from tests.conftest import both_stores

# What either store raises when the database itself refuses a statement.
REFUSED = (duckdb.Error, psycopg.Error)


def write(db, sql: str, params=None):
    """A statement in a transaction of the store's own (on PostgreSQL, writes never go to the replica)."""
    return db.transaction(lambda con: con.execute(sql, params or []).fetchall())


def test_migrations_apply_once_and_are_idempotent(tmp_path):
    db = Database(tmp_path / "m.duckdb")
    assert db.migrate() == list(range(1, latest_version() + 1))
    assert db.migrate() == []
    rows = db.rows("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [r[0] for r in rows] == list(range(1, latest_version() + 1))
    tables = {r[0] for r in db.rows("SELECT table_name FROM duckdb_tables()")}
    assert {"panels", "staff", "patients", "regimens", "administrations", "reports", "triage_results",
            "guidance_sets", "events", "open_reports", "meta"} <= tables


def test_a_newer_schema_is_refused(tmp_path):
    db = Database(tmp_path / "new.duckdb")
    db.migrate()
    db.rows("INSERT INTO schema_migrations VALUES (999, 'future', now()::TIMESTAMP)")
    with pytest.raises(DatabaseError, match="newer than this Backline knows"):
        db.migrate()
    with pytest.raises(DatabaseError, match="newer"):
        db.check_schema()


@both_stores
def test_events_are_append_only_in_the_database(fresh_db):
    before = fresh_db.rows("SELECT * FROM events ORDER BY event_id")
    for sql in ("UPDATE events SET note = 'rewritten'", "DELETE FROM events WHERE event_id = 1",
                "DELETE FROM events", "TRUNCATE events"):
        with pytest.raises(REFUSED, match="append-only"):
            write(fresh_db, sql)
    assert fresh_db.rows("SELECT * FROM events ORDER BY event_id") == before


@both_stores
@pytest.mark.parametrize(
    "column, value",
    [("pain_score", 11), ("temperature_c", 100.4), ("onset", "suddenly"), ("source", "fax"), ("duration_days", -1)],
)
def test_reports_table_checks_values(fresh_db, column, value):
    patient = fresh_db.scalar("SELECT min(patient_id) FROM patients")
    row = {"report_id": "R-X", "patient_id": patient, "reported_at": "2026-11-20 09:00", "received_at": "2026-11-20 09:00",
           "source": "epro", "pain_score": 3, column: value}
    cols = ", ".join(row)
    with pytest.raises(REFUSED, match="(?i)check|constraint"):
        write(fresh_db, f"INSERT INTO reports ({cols}) VALUES ({', '.join('?' for _ in row)})", list(row.values()))
    assert fresh_db.scalar("SELECT count(*) FROM reports WHERE report_id = 'R-X'") == 0


@both_stores
def test_a_report_for_an_unknown_patient_is_refused(fresh_db):
    with pytest.raises(REFUSED, match="(?i)foreign key"):
        write(fresh_db, "INSERT INTO reports (report_id, patient_id, reported_at, received_at, source, pain_score)"
                        " VALUES ('R-X', 'P-NOBODY', now(), now(), 'epro', 3)")
    assert fresh_db.scalar("SELECT count(*) FROM reports WHERE report_id = 'R-X'") == 0


@pytest.mark.parametrize("fresh_db", ["postgresql"], indirect=True)
def test_reads_on_postgresql_never_write(fresh_db):
    """Reads go to the replica on PostgreSQL: a write sent that way is refused rather than changing
    a copy that PostgreSQL would never hear of."""
    with pytest.raises(DatabaseError, match="transaction"):
        fresh_db.rows("DELETE FROM open_reports")
    assert fresh_db.scalar("SELECT count(*) FROM open_reports") > 0


def test_a_missing_database_says_so(tmp_path):
    with pytest.raises(DatabaseError, match="does not exist"):
        Database(tmp_path / "absent.duckdb").check_schema()
    with pytest.raises(DatabaseError, match="does not exist"):
        Database(tmp_path / "absent.duckdb", read_only=True).query("SELECT 1")


def test_a_file_that_is_not_a_database_says_so(tmp_path):
    path = tmp_path / "junk.duckdb"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DatabaseError, match="not a readable DuckDB database|could not open"):
        Database(path).query("SELECT 1")
