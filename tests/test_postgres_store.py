"""PostgreSQL as the system of record: its schema, its roles, several app servers on one store, and
a server that goes away mid-write. A real server (tests/postgres.py); each test its own database."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import psycopg
import pytest

from dashboard.access import Role, User
from dashboard.db import Database, DatabaseError, latest_version
from dashboard.postgres_store import PostgresDatabase, StoreUnavailable, to_psycopg
from dashboard.workflow import act, submit_report
from tests.conftest import SEED_NOW, panels_of, postgres_store

NOW = datetime(2026, 11, 20, 12, 0)


def nurse(db, actor: str = "N9001", name: str = "Anne Test") -> User:
    return User(actor=actor, name=name, role=Role.NURSE, panels=panels_of(db))


def eventually(check, timeout: float = 10.0):
    """``check()`` until it is true (another server's replica hears of a change when it is announced)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.fixture
def pg_fresh(postgres_server, _fresh_template):
    store = postgres_store(postgres_server, _fresh_template)
    yield store
    store.close()


@pytest.fixture
def second_server(pg_fresh):
    """Another app server on the same PostgreSQL database: its own pool and its own replica."""
    other = PostgresDatabase(pg_fresh.url)
    yield other
    other.close()


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("duck, pg", [
    ("SELECT ? , ?", "SELECT %s , %s"),
    ("WHERE id IN (SELECT unnest($ids::VARCHAR[]))", "WHERE id IN (SELECT unnest(%(ids)s::VARCHAR[]))"),
    ("SELECT 'what?' || ?", "SELECT 'what?' || %s"),  # a ? inside quotes is text
    ("SELECT '$notaparam', \"q?\"", "SELECT '$notaparam', \"q?\""),
    ("SELECT 100 % 7, 'it''s ?'", "SELECT 100 %% 7, 'it''s ?'"),
    ("SELECT x::VARCHAR -- a comment?\nFROM t", "SELECT x::VARCHAR -- a comment?\nFROM t"),
])
def test_parameters_are_translated_outside_quotes_only(duck, pg):
    assert to_psycopg(duck) == pg


# --------------------------------------------------------------------------- schema and roles


def test_migrations_apply_once_and_give_the_same_tables_as_duckdb(postgres_server, tmp_path):
    store = PostgresDatabase(postgres_server.create_database())
    try:
        assert store.migrate() == list(range(1, latest_version() + 1))
        assert store.migrate() == []
        assert store.schema_version() == latest_version()
        duck = Database(tmp_path / "same.duckdb")
        duck.migrate()
        duck_columns = {}
        for table, column in duck.rows("SELECT table_name, column_name FROM duckdb_columns() WHERE NOT internal "
                                       "AND table_name <> 'append_only_guard' ORDER BY table_name, column_index"):
            duck_columns.setdefault(table, []).append(column)
        with store.pg() as con:
            pg_columns = {}
            for table, column in con.execute(
                    "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
                    "AND table_name <> 'append_only_guard' ORDER BY table_name, ordinal_position").fetchall():
                pg_columns.setdefault(table, []).append(column)
        assert {t: sorted(c) for t, c in pg_columns.items()} == {t: sorted(c) for t, c in duck_columns.items()}
    finally:
        store.close()


def test_a_newer_schema_is_refused(postgres_server):
    store = PostgresDatabase(postgres_server.create_database())
    try:
        store.migrate()
        store.transaction(lambda con: con.execute(
            "INSERT INTO schema_migrations VALUES (999, 'future', now()::TIMESTAMP)").fetchall())
        with pytest.raises(DatabaseError, match="newer than this Backline knows"):
            store.migrate()
        with pytest.raises(DatabaseError, match="newer"):
            store.check_schema()
    finally:
        store.close()


def test_the_app_role_may_not_change_or_remove_an_event(postgres_server, pg_fresh):
    """The owner migrates; the app's role reads and writes but cannot UPDATE or DELETE an
    append-only table (and the trigger refuses it to every role, the owner included)."""
    with psycopg.connect(postgres_server.url("postgres"), autocommit=True) as con:
        con.execute("DROP ROLE IF EXISTS backline_app_test")
        con.execute("CREATE ROLE backline_app_test LOGIN")
    pg_fresh.migrate(app_role="backline_app_test")
    app_url = pg_fresh.url.replace("postgres@", "backline_app_test@", 1)
    with psycopg.connect(app_url) as con:
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] > 0
        for sql in ("UPDATE events SET note = 'rewritten'", "DELETE FROM events", "TRUNCATE events",
                    "DELETE FROM alert_log", "UPDATE fhir_resources SET version = 'x'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute(sql)
            con.rollback()
    app = PostgresDatabase(app_url)
    try:
        result = act(app, nurse(app), NOW, action="acknowledge",
                     report_ids=[app.scalar("SELECT min(report_id) FROM open_reports")])
        assert len(result.event_ids) == 1  # the app's own work is allowed
    finally:
        app.close()


def test_copying_into_a_store_that_holds_records_is_refused(pg_fresh, rules, tmp_path):
    from dashboard.seed import seed_sample

    before = pg_fresh.scalar("SELECT count(*) FROM events")
    with pytest.raises(DatabaseError, match="never replaces a store's records"):
        seed_sample(pg_fresh, rules, now=SEED_NOW, patients=20, reports=50)
    assert pg_fresh.scalar("SELECT count(*) FROM events") == before


# --------------------------------------------------------------------------- several app servers


def test_an_action_on_one_server_shows_on_the_other(pg_fresh, second_server):
    rid = second_server.scalar("SELECT min(report_id) FROM open_reports")  # the second server has read once
    assert second_server.scalar("SELECT count(*) FROM events WHERE report_id = ? AND actor = 'N9001'", [rid]) == 0
    act(pg_fresh, nurse(pg_fresh), NOW, action="acknowledge", report_ids=[rid])
    assert eventually(lambda: second_server.scalar(
        "SELECT count(*) FROM events WHERE report_id = ? AND actor = 'N9001'", [rid]) == 1)
    assert second_server.replica.loads == 1  # applied as an announcement, not by reloading everything


def test_a_report_taken_in_on_one_server_is_triaged_and_queued_on_the_other(pg_fresh, second_server, rules):
    patient = pg_fresh.scalar("SELECT min(patient_id) FROM patients")
    second_server.scalar("SELECT count(*) FROM open_reports")
    made = submit_report(pg_fresh, rules, nurse(pg_fresh), NOW, patient_id=patient,
                         report={"reported_at": NOW, "pain_score": 8, "leg_weakness": True})
    assert made.tier == "emergency"

    def seen():
        return second_server.rows("SELECT o.report_id, t.tier FROM open_reports o JOIN triage_results t "
                                  "USING (report_id) WHERE o.report_id = ?", [made.report_id])
    assert eventually(seen) == [(made.report_id, "emergency")]


def test_the_acknowledgement_race_across_two_servers_keeps_both_and_tells_the_second(pg_fresh, second_server,
                                                                                       rules):
    a, b = nurse(pg_fresh, "N9001", "Anne Test"), nurse(pg_fresh, "N9002", "Bea Test")
    patient = pg_fresh.scalar("SELECT min(patient_id) FROM patients")
    for attempt in range(20):
        rid = submit_report(pg_fresh, rules, a, NOW + timedelta(minutes=attempt), patient_id=patient,
                            report={"reported_at": NOW + timedelta(minutes=attempt), "pain_score": 4 + attempt % 5}
                            ).report_id
        barrier = threading.Barrier(2)
        results, errors, spans = {}, [], {}

        def work(store, user):
            try:
                barrier.wait()
                began = time.monotonic()
                results[user.actor] = act(store, user, NOW + timedelta(minutes=attempt), action="acknowledge",
                                          report_ids=[rid])
                spans[user.actor] = (began, time.monotonic())
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(s, u)) for s, u in ((pg_fresh, a), (second_server, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        events = pg_fresh.rows("SELECT actor, acted_at FROM events WHERE report_id = ? ORDER BY event_id", [rid])
        assert [e[0] for e in events] in (["N9001", "N9002"], ["N9002", "N9001"])
        first, second = events[0][0], events[1][0]
        assert results[first].already == []
        assert [p.actor for p in results[second].already] == [first]
        (a0, a1), (b0, b1) = spans.values()
        if a0 < b1 and b0 < a1:  # the two really overlapped: the database serialised them
            return
    raise AssertionError("in 20 tries the two acknowledgements never overlapped: the race was not tested")


# --------------------------------------------------------------------------- a server that goes away


def test_a_killed_server_loses_no_committed_action_and_the_store_recovers(rules, tmp_path):
    """Its own server, killed (immediate stop: no checkpoint, clients cut off) during a stream of
    actions, then started again: every action that returned is in the database, the ones in flight
    say the store is unavailable (no traceback), and the store and its replica recover by themselves."""
    from dashboard.seed import seed_sample
    from tests.postgres import PostgresServer

    server = PostgresServer().start()
    store = PostgresDatabase(server.create_database())
    stop = threading.Event()
    try:
        seed_sample(store, rules, now=SEED_NOW, patients=30, reports=200)
        user = nurse(store)
        reports = [r for r, in store.rows("SELECT report_id FROM open_reports ORDER BY report_id")]
        returned, refused, crashed = [], [], []

        def stream():
            k = 0
            while not stop.is_set():
                rid = reports[k % len(reports)]
                try:
                    result = act(store, user, NOW + timedelta(minutes=2 * k), action="note", report_ids=[rid],
                                 note=f"note {k}")
                    returned.extend(result.event_ids)
                except StoreUnavailable as exc:
                    refused.append(str(exc))
                    time.sleep(0.05)
                except Exception as exc:  # pragma: no cover - anything else fails the test
                    crashed.append(repr(exc))
                    raise
                k += 1

        writer = threading.Thread(target=stream, daemon=True)
        writer.start()
        assert eventually(lambda: len(returned) >= 20)
        server.kill()
        # An action in flight, or one that waits for a connection (pg_connect_timeout_seconds), is refused.
        assert eventually(lambda: refused or crashed, timeout=30), crashed
        assert crashed == []
        with pytest.raises(StoreUnavailable, match="unavailable"):
            store.rows("SELECT count(*) FROM events")  # reads say so too: no stale queue shown as current
        server.restart()
        count_then = len(returned)
        assert eventually(lambda: len(returned) >= count_then + 20, timeout=30)
        stop.set()
        writer.join(timeout=30)
        stored = {e for e, in store.rows("SELECT event_id FROM events WHERE actor = 'N9001'")}
        assert set(returned) <= stored  # every action that returned was committed and kept
        assert all("unavailable" in r and "Traceback" not in r for r in refused)
        assert store.replica.loads >= 2  # the replica reloaded once the server was back
    finally:
        stop.set()
        store.close()
        server.cleanup()


def test_the_app_says_the_store_is_unavailable_and_recovers(rules, monkeypatch):
    """The queue page on a PostgreSQL store whose server is stopped: a plain message, no traceback, no
    queue shown as current; with the server back, the same session shows the queue again."""
    from dashboard.db import close_stores
    from dashboard.seed import seed_sample
    from tests.postgres import PostgresServer
    from tests.test_pages import NURSE, open_app, texts

    server = PostgresServer().start()
    url = server.create_database()
    try:
        seed_sample(PostgresDatabase(url), rules, now=SEED_NOW)
        monkeypatch.delenv("BACKLINE_DB", raising=False)
        monkeypatch.setenv("BACKLINE_DATABASE_URL", url)
        monkeypatch.setenv("BACKLINE_PG_CONNECT_TIMEOUT_SECONDS", "2")
        from dashboard.config import get_settings

        get_settings.cache_clear()
        at = open_app(NURSE, "triage_queue")
        assert "Open reports" in texts(at) or at.dataframe
        server.kill()
        at.run()
        assert not at.exception
        body = texts(at)
        assert "The store is unavailable" in body and "Traceback" not in body
        assert not at.dataframe  # no queue shown from a copy that may be out of date
        server.restart()
        at.run()
        assert not at.exception
        assert "The store is unavailable" not in texts(at) and at.dataframe
    finally:
        close_stores()
        from dashboard.config import get_settings

        monkeypatch.undo()
        get_settings.cache_clear()
        server.cleanup()


def test_twenty_nurses_on_two_app_servers_keep_every_action_in_order(pg_fresh, rules):
    """Two processes (two app servers), ten nurses each, fifty actions per nurse on the same five
    reports, all at once: every recorded action is stored exactly once, attributed, in each nurse's
    order, and every later responder on either server was told of the first."""
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    patients = [p for p, in pg_fresh.rows("SELECT patient_id FROM patients ORDER BY patient_id LIMIT 5")]
    entering = nurse(pg_fresh, "T999", "Entering Nurse")
    reports = [submit_report(pg_fresh, rules, entering, NOW, patient_id=p, report={"reported_at": NOW, "pain_score": 5}
                             ).report_id for p in patients]
    before = pg_fresh.scalar("SELECT count(*) FROM events")
    procs = [subprocess.Popen([sys.executable, "-m", "tests.stress_worker", pg_fresh.url, str(first), "10", "50",
                               *reports], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for first in (0, 10)]
    lines = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:] + out[-2000:]
        lines += [json.loads(x) for x in out.splitlines()]
    assert len(lines) == 1000 and not [x for x in lines if "error" in x]
    recorded = [x for x in lines if x["event"] is not None]
    assert {x["reason"] for x in lines if x["event"] is None} <= {"already acknowledged by you"}
    assert pg_fresh.scalar("SELECT count(*) FROM events") == before + len(recorded)
    stored = {e: (a, r, act_) for e, a, r, act_ in pg_fresh.rows(
        "SELECT event_id, actor, report_id, action FROM events WHERE actor LIKE 'T0%' OR actor LIKE 'T01%'")}
    for x in recorded:
        assert stored[x["event"]] == (x["nurse"], x["report"], x["action"])
    for who in {x["nurse"] for x in lines}:
        mine = [x["event"] for x in sorted(lines, key=lambda x: x["k"]) if x["nurse"] == who and x["event"]]
        assert mine == sorted(mine)  # each nurse's actions in the order she made them
    for rid in reports:
        first_id, first_actor = pg_fresh.rows(
            "SELECT event_id, actor FROM events WHERE report_id = ? AND action IN ('acknowledge', 'call_back', "
            "'escalate') ORDER BY event_id LIMIT 1", [rid])[0]
        for x in recorded:
            if x["report"] == rid and x["action"] != "note" and x["nurse"] != first_actor and x["event"] > first_id:
                assert first_actor in x["told"], x


def test_the_engine_fed_from_postgresql_agrees_with_the_engine_on_the_file(pg_fresh, rules):
    """Every report re-triaged inside a PostgreSQL transaction (as an import's batch is) gets exactly
    the result the engine gave on the DuckDB file it was seeded from: tier, rules, causes, guidance."""
    from dashboard.retriage import retriage

    columns = "report_id, tier, rule_ids, leading_causes, causes, unrecognised_drugs, guidance_key, respond_by"
    before = pg_fresh.rows(f"SELECT {columns} FROM triage_results ORDER BY report_id")
    ids = [r[0] for r in before]
    stats = pg_fresh.transaction(lambda con: retriage(con, rules, now=SEED_NOW, report_ids=ids, record_changes=True))
    assert stats.reports == len(ids) == 597 and stats.changed_open == 0
    assert pg_fresh.rows(f"SELECT {columns} FROM triage_results ORDER BY report_id") == before
