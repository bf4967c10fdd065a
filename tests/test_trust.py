"""Trust: the audit trail nobody can rewrite, hostile and wrong input, and database files that cannot be used."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from dashboard import clock
from dashboard.access import Forbidden, Role, User
from dashboard.db import Database
from dashboard.metrics import audit_csv
from dashboard.models import InputError
from dashboard.workflow import act, submit_report
from tests.conftest import ROOT, SEED_NOW, both_stores, give_every_panel, run_cli

NURSE = User(actor="N0001", name="Test Nurse", role=Role.NURSE)
LEAD = User(actor="L004", name="Test Lead", role=Role.LEAD)
HOSTILE = [
    "'; DROP TABLE events; --",
    "Robert'); DELETE FROM reports; --",
    "=HYPERLINK(\"http://evil.example\",\"click\")",
    "<script>alert(1)</script>",
    "😀 back pain 🦴 since Tuesday",
    "%_%' OR '1'='1",
]


@pytest.fixture(autouse=True)
def _nurses_on_every_panel(request, monkeypatch):
    give_every_panel(request, monkeypatch, globals(), ("NURSE",))


def snapshot(db: Database) -> tuple:
    return tuple(db.scalar(f"SELECT count(*) FROM {t}") for t in
                 ("reports", "events", "open_reports", "triage_results", "patients", "guidance_sets"))


def a_patient(db: Database) -> str:
    return db.scalar("SELECT min(patient_id) FROM patients")


def an_open(db: Database) -> str:
    return db.scalar("SELECT min(report_id) FROM open_reports")


# --------------------------------------------------------------------------- audit trail


def test_no_code_path_updates_or_deletes_an_event():
    """Static proof: no statement in the product changes or removes an event row."""
    pattern = re.compile(r"\b(UPDATE\s+events|DELETE\s+FROM\s+events|TRUNCATE\s+(TABLE\s+)?events|DROP\s+TABLE\s+events)\b",
                         re.IGNORECASE)
    offenders = []
    for path in [*ROOT.glob("dashboard/**/*.py"), *ROOT.glob("dashboard/**/*.sql"), *ROOT.glob("pages/*.py"),
                 ROOT / "streamlit_app.py"]:
        text = path.read_text()
        for i, line in enumerate(text.splitlines(), 1):
            if pattern.search(line) and not _rebuilds_events_keeping_every_row(path, line, text):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert offenders == []


def _rebuilds_events_keeping_every_row(path: Path, line: str, text: str) -> bool:
    """A migration may rebuild the events table (DuckDB cannot add a column to a referenced table)
    only by copying every row aside first and back, ids included, with the append-only triggers
    restored, in the same file (one transaction); tests/test_upgrade.py checks the rows survive."""
    if path.suffix != ".sql" or "migrations" not in path.parts or not re.search(r"DROP\s+TABLE\s+events\b", line, re.I):
        return False
    flat = re.sub(r"\s+", " ", text)
    copied = re.search(r"CREATE TABLE (\w+) AS SELECT \* FROM events;", flat)
    # Every row back, by name; a column may be converted on the way (migration 006: its time as an
    # instant), never left out or filtered.
    back = copied and re.search(rf"INSERT INTO events BY NAME SELECT \* (REPLACE \([^;]*? AS \w+\) )?FROM "
                                rf"{copied.group(1)};", flat)
    return bool(back) and all(s in flat for s in (
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events",
        "CREATE TRIGGER events_no_delete BEFORE DELETE ON events",
    ))


@both_stores
def test_every_action_records_who_what_when_and_the_tiers(fresh_db, rules):
    rid = an_open(fresh_db)
    tier = fresh_db.scalar("SELECT tier FROM triage_results WHERE report_id = ?", [rid])
    act(fresh_db, NURSE, SEED_NOW, action="escalate", report_ids=[rid], escalated_to="mscc_coordinator",
        note="Handed over to the MSCC coordinator")
    row = fresh_db.query("SELECT * FROM events WHERE report_id = ? ORDER BY event_id DESC LIMIT 1", [rid]).iloc[0]
    assert (row["actor"], row["actor_name"], row["role"], row["action"]) == ("N0001", "Test Nurse", "nurse", "escalate")
    assert row["acted_at"] == clock.aware(SEED_NOW) and row["report_id"] == rid  # stored as the instant
    assert row["tier_before"] == row["tier_after"] == tier
    assert row["rules_version"] == rules.version
    assert row["note"] == "Handed over to the MSCC coordinator" and row["escalated_to"] == "mscc_coordinator"


@both_stores
def test_audit_export_neutralises_spreadsheet_formulas(fresh_db):
    rid = an_open(fresh_db)
    act(fresh_db, NURSE, SEED_NOW, action="note", report_ids=[rid], note=HOSTILE[2])
    from dashboard.metrics import audit_trail

    panels = [r[0] for r in fresh_db.rows("SELECT panel_id FROM panels")]
    csv = audit_csv(audit_trail(fresh_db, panels, (SEED_NOW - timedelta(days=1)).date(), SEED_NOW.date())).decode()
    assert "'=HYPERLINK" in csv and ",=HYPERLINK" not in csv


# --------------------------------------------------------------------------- hostile and wrong input


@both_stores
@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_stored_as_text(fresh_db, rules, text):
    done = submit_report(fresh_db, rules, NURSE, SEED_NOW, patient_id=a_patient(fresh_db), note=text,
                         report={"reported_at": SEED_NOW, "pain_score": 3})
    assert fresh_db.scalar("SELECT note FROM reports WHERE report_id = ?", [done.report_id]) == text
    act(fresh_db, NURSE, SEED_NOW, action="note", report_ids=[done.report_id], note=text)
    assert fresh_db.scalar("SELECT note FROM events WHERE report_id = ? AND action = 'note'", [done.report_id]) == text
    assert fresh_db.scalar("SELECT count(*) FROM patients") > 0


WRONG_REPORTS = [
    ({"report": {"reported_at": SEED_NOW, "pain_score": 11}}, "report.pain_score"),
    ({"report": {"reported_at": SEED_NOW, "pain_score": 3, "temperature_c": 100.4}}, "report.temperature_c"),
    ({"report": {"reported_at": SEED_NOW + timedelta(hours=2), "pain_score": 3}}, "report.reported_at"),
    ({"report": {"reported_at": "2026-02-30T10:00", "pain_score": 3}}, "report.reported_at"),
    ({"report": {"reported_at": "1850-01-01T10:00", "pain_score": 3}}, "report.reported_at"),
    ({"report": {"reported_at": SEED_NOW, "pain_score": 3, "leg_weaknes": True}}, "report.leg_weaknes"),
    ({"report": {"reported_at": SEED_NOW, "pain_score": 3, "duration_days": -1}}, "report.duration_days"),
    ({"report": {"reported_at": SEED_NOW, "pain_score": 3}, "note": "x" * 5000}, "note"),
    ({"report": {"reported_at": SEED_NOW, "pain_score": 3}, "note": "line\x00break"}, "note"),
    ({"report": {"reported_at": SEED_NOW, "pain_score": 3}, "patient_id": "P-NOBODY"}, "patient_id"),
    ({"report": {"reported_at": SEED_NOW, "pain_score": 3}, "patient_id": "' OR 1=1 --"}, "patient_id"),
]


@both_stores
@pytest.mark.parametrize("fields, field", WRONG_REPORTS, ids=[w[1] + str(i) for i, w in enumerate(WRONG_REPORTS)])
def test_a_wrong_report_is_refused_naming_the_field_and_changes_nothing(fresh_db, rules, fields, field):
    before = snapshot(fresh_db)
    fields = {"patient_id": a_patient(fresh_db), **fields}
    with pytest.raises(InputError) as info:
        submit_report(fresh_db, rules, NURSE, SEED_NOW, **fields)
    assert field in [f for f, _ in info.value.problems], info.value.problems
    assert snapshot(fresh_db) == before


WRONG_ACTIONS = [
    ({"action": "resolve"}, ""),  # no outcome
    ({"action": "override", "tier_after": "routine"}, ""),  # no reason
    ({"action": "escalate", "escalated_to": "the porter"}, "escalated_to"),
    ({"action": "call_back"}, ""),  # reached or not?
    ({"action": "delete"}, "action"),
    ({"action": "note", "note": "x" * 2001}, "note"),
    ({"action": "note", "note": "bidi \u202e override"}, "note"),
]


@both_stores
@pytest.mark.parametrize("fields, field", WRONG_ACTIONS, ids=[str(w[0]["action"]) + str(i) for i, w in enumerate(WRONG_ACTIONS)])
def test_a_wrong_action_is_refused_and_changes_nothing(fresh_db, fields, field):
    before = snapshot(fresh_db)
    physician = User(actor="P001", name="Dr Test", role=Role.PHYSICIAN)
    with pytest.raises(InputError) as info:
        act(fresh_db, physician, SEED_NOW, report_ids=[an_open(fresh_db)], **fields)
    assert any(field in f for f, _ in info.value.problems), info.value.problems
    assert snapshot(fresh_db) == before


@both_stores
def test_an_action_on_an_unknown_report_changes_nothing(fresh_db):
    before = snapshot(fresh_db)
    with pytest.raises(InputError, match="unknown report"):
        act(fresh_db, NURSE, SEED_NOW, action="acknowledge", report_ids=["R-0000001' OR '1'='1"])
    assert snapshot(fresh_db) == before


@both_stores
def test_a_role_may_not_do_what_is_not_its_own(fresh_db, rules):
    before = snapshot(fresh_db)
    with pytest.raises(Forbidden):
        act(fresh_db, LEAD, SEED_NOW, action="acknowledge", report_ids=[an_open(fresh_db)])
    with pytest.raises(Forbidden):
        act(fresh_db, NURSE, SEED_NOW, action="override", report_ids=[an_open(fresh_db)], tier_after="routine",
            note="looks fine")
    with pytest.raises(Forbidden):
        submit_report(fresh_db, rules, LEAD, SEED_NOW, patient_id=a_patient(fresh_db),
                      report={"reported_at": SEED_NOW, "pain_score": 3})
    assert snapshot(fresh_db) == before


# --------------------------------------------------------------------------- files that cannot be used


def test_missing_database(tmp_path):
    proc = run_cli("retriage", "--db", str(tmp_path / "absent.duckdb"))
    assert proc.returncode == 4 and b"does not exist" in proc.stderr and b"Traceback" not in proc.stderr


HOLD = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    con.execute("SELECT count(*) FROM reports").fetchall()
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
""")


def test_database_locked_by_another_process(fresh_db):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(fresh_db.path), "30"], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"holding"
        proc = run_cli("retriage", "--db", str(fresh_db.path), env={"BACKLINE_LOCK_TIMEOUT_SECONDS": "1"})
        assert proc.returncode == 4
        assert b"in use by another process" in proc.stderr and b"Traceback" not in proc.stderr
    finally:
        holder.kill()
        holder.wait()
    # Once the other process is gone, it works.
    assert run_cli("retriage", "--db", str(fresh_db.path)).returncode == 0


def test_a_read_only_database(fresh_db, tmp_path):
    """A database file without write permission gets a plain message. Run as the same user in the
    test's own folder, wherever the repository is cloned (a private 0700 home included): as root,
    the command runs without the capabilities that let root write any file, so it obeys the file's
    mode as anyone would."""
    path = tmp_path / "ro.duckdb"
    shutil.copy(fresh_db.path, path)
    os.chmod(path, 0o444)
    cmd = [sys.executable, "-m", "dashboard", "retriage", "--db", str(path)]
    if os.geteuid() == 0:
        caps = "-dac_override,-dac_read_search"
        cmd = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", *cmd]
    try:
        proc = subprocess.run(cmd, capture_output=True, cwd=ROOT, timeout=120)
    finally:
        os.chmod(path, 0o644)
    assert proc.returncode == 4, proc.stderr
    assert b"read-only or no permission" in proc.stderr and b"Traceback" not in proc.stderr


def test_a_file_of_a_newer_schema_in_the_app(fresh_db, monkeypatch):
    from streamlit.testing.v1 import AppTest

    fresh_db.rows("INSERT INTO schema_migrations VALUES (999, 'future', now()::TIMESTAMP)")
    monkeypatch.setenv("BACKLINE_DB", str(fresh_db.path))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60).run()
    assert any("newer than this Backline knows" in e.value for e in at.error)
    assert not at.dataframe and not at.exception


WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from dashboard.db import open_store
    def work(con):
        con.execute("INSERT INTO events (report_id, acted_at, actor, role, action, note)"
                    " SELECT report_id, now()::TIMESTAMP, 'crash-test', 'nurse', 'note', 'half-done'"
                    " FROM reports").fetchall()
        print("written, not committed", flush=True)
        time.sleep(60)
    open_store(sys.argv[1]).transaction(work)
""")


@both_stores
def test_a_crash_in_the_middle_of_a_write_leaves_it_absent(fresh_db):
    before = snapshot(fresh_db)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, fresh_db.location, str(ROOT)], stdout=subprocess.PIPE)
    assert writer.stdout.readline().strip() == b"written, not committed"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert snapshot(fresh_db) == before
    assert fresh_db.scalar("SELECT count(*) FROM events WHERE actor = 'crash-test'") == 0


def test_a_crash_during_seeding_leaves_an_openable_file(tmp_path):
    """Kill `backline seed` as it starts each step (it says so on standard error): the file then
    opens and holds either everything or nothing. Killed inside its one transaction (loading,
    triaging, making the events, committing), it holds nothing; killed after, everything."""
    outcomes = {}
    for step in ("loading", "triaging", "events", "committing", "committed"):
        path = tmp_path / f"seed-{step}.duckdb"
        proc = subprocess.Popen([sys.executable, "-m", "dashboard", "seed", "--db", str(path), "--patients", "300",
                                 "--reports", "20000", "--progress"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            said = []
            for line in proc.stderr:
                said.append(line.decode().strip())
                if said[-1] == f"seed: {step}":
                    proc.send_signal(signal.SIGKILL)
                    break
            assert said and said[-1] == f"seed: {step}", said  # the kill came at the step named
        finally:
            proc.kill()
            proc.wait()
        db = Database(path)
        db.migrate()  # opens, replays the write-ahead log, completes the schema
        counts = snapshot(db)
        complete = counts[0] > 0 and counts[0] == counts[3] and counts[1] > 0
        empty = counts[0] == counts[1] == counts[3] == counts[4] == 0
        assert complete or empty, (step, counts)
        outcomes[step] = "complete" if complete else "empty"
    # Killed inside the transaction, nothing is left; after its commit, everything. (A kill as the
    # commit starts may land on either side of it.)
    assert outcomes["loading"] == outcomes["triaging"] == outcomes["events"] == "empty", outcomes
    assert outcomes["committed"] == "complete", outcomes


# --------------------------------------------------------------------------- re-triage while serving


def test_retriage_while_the_app_serves(fresh_db, monkeypatch):
    """`backline retriage` from another process takes the file between page runs; pages wait briefly."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("BACKLINE_DB", str(fresh_db.path))
    stop = threading.Event()
    runs, errors = [], []

    def nurse_refreshing():
        at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
        at.session_state["demo_actor"] = fresh_db.scalar("SELECT min(staff_id) FROM staff WHERE role = 'nurse'")
        while not stop.is_set():
            started = time.perf_counter()
            at.run()
            runs.append((started, time.perf_counter() - started))
            if at.exception:
                errors.extend(e.message for e in at.exception)
            if at.error:
                errors.extend(e.value for e in at.error)

    def wait_for_runs(n: int) -> None:
        deadline = time.monotonic() + 120
        while len(runs) < n and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.05)
        assert len(runs) >= n, f"the page ran {len(runs)} times, not {n}"

    thread = threading.Thread(target=nurse_refreshing)
    thread.start()
    try:
        wait_for_runs(2)  # the nurse's page is serving
        began = time.perf_counter()
        proc = run_cli("retriage", "--db", str(fresh_db.path), env={"BACKLINE_LOCK_TIMEOUT_SECONDS": "60"})
        ended = time.perf_counter()
        wait_for_runs(len(runs) + 2)  # and goes on serving after it
    finally:
        stop.set()
        thread.join(timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert errors == []
    # The race happened: some page run was under way while the other process held the file.
    assert any(start < ended and start + took > began for start, took in runs), "no page run overlapped the retriage"
    assert max(took for _, took in runs) < 20
    assert fresh_db.scalar("SELECT count(*) FROM triage_results") == fresh_db.scalar("SELECT count(*) FROM reports")
