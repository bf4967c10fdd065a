"""Alerts that reach a person: a real SMTP server (STARTTLS and AUTH) and a real webhook receiver
on loopback, a real DuckDB file, the clock injected (never slept) and a real worker process killed
mid-chain."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from dashboard import clock
from dashboard.access import Role, User
from dashboard.alert_channels import message_id, verify_signature
from dashboard.alert_config import AlertConfigError, load_alert_config
from dashboard.alerts import HEARTBEAT_KEY, claim, heartbeat, plan, run_cycle, worker_status
from dashboard.db import ENGINE_ERRORS, Database
from dashboard.workflow import act, submit_report
from tests.conftest import ROOT, SEED_NOW, altered, both_stores, panels_of, run_cli, store_args, write

pytestmark = both_stores
from tests.servers import SMTP_PASSWORD, SMTP_USER, Receiver, free_port, start_smtp

# Ten days after the sample's "now": its own reports are long past the look-back, so only the
# reports a test makes are alerted. A Monday, 12:00 in London.
T0 = clock.aware(SEED_NOW + timedelta(days=10))
SECRET = "hook-signing-key-for-tests"
ENV = {"BACKLINE_TEST_SMTP_PASSWORD": SMTP_PASSWORD, "BACKLINE_TEST_HOOK_SECRET": SECRET}


class Clock:
    """The worker's clock, moved by the test."""

    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def to(self, minutes: float) -> "Clock":
        self.at = T0 + timedelta(minutes=minutes)
        return self


@pytest.fixture(autouse=True)
def secrets(monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="module")
def smtp(tmp_path_factory):
    server = start_smtp(tmp_path_factory.mktemp("smtp"))
    yield server
    server.controller.stop()


@pytest.fixture
def mail(smtp):
    with smtp.mailbox.lock:
        smtp.mailbox.messages.clear()
        smtp.mailbox.logins.clear()
    return smtp.mailbox


@pytest.fixture
def receiver():
    hook = Receiver()
    yield hook
    hook.stop()


def config_data(smtp, receiver, **changes) -> dict:
    data = {
        "app_url": "https://backline.hospital.example",
        "poll_seconds": 0.3,
        "look_back_hours": 24,
        "leads": ["lead"],
        "overdue_tiers": ["urgent", "soon"],
        "retry": {"attempts": 3, "backoff_seconds": [60, 300]},
        "channels": {
            "mail": {"type": "smtp", "host": smtp.host, "port": smtp.port, "security": "starttls",
                     "username": SMTP_USER, "password_env": "BACKLINE_TEST_SMTP_PASSWORD",
                     "sender": "backline@hospital.example", "ca_file": str(smtp.ca_file), "timeout_seconds": 5,
                     "patient_identifiers": True},
            "pager": {"type": "webhook", "url": receiver.url, "secret_env": "BACKLINE_TEST_HOOK_SECRET",
                      "timeout_seconds": 1},
        },
        "contacts": {
            "nurse": {"name": "Ward on-call nurse", "channel": "mail", "address": "ward@hospital.example"},
            "aos": {"name": "Acute oncology on-call", "channel": "pager", "address": "bleep-4411"},
            "lead": {"name": "Team lead", "channel": "mail", "address": "lead@hospital.example"},
        },
        "chains": [{"name": "emergencies", "panels": ["*"], "tiers": ["emergency"], "steps": [
            {"after_minutes": 0, "notify": ["nurse"]},
            {"after_minutes": 15, "notify": ["aos"]},
            {"after_minutes": 30, "notify": ["lead"]},
        ]}],
    }
    data.update(changes)
    return data


def write_config(folder: Path, data: dict, name: str = "alerts.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def loaded(tmp_path, smtp, receiver):
    return load_alert_config(write_config(tmp_path, config_data(smtp, receiver)))


@pytest.fixture
def nurse(fresh_db):
    return User(actor="N9100", name="Nia Test", role=Role.NURSE, panels=panels_of(fresh_db))


def emergency(db, rules, nurse, received: datetime, patient_id: str | None = None) -> str:
    patient_id = patient_id or db.scalar("SELECT min(patient_id) FROM patients")
    done = submit_report(db, rules, nurse, received, patient_id=patient_id,
                         report={"reported_at": received - timedelta(minutes=2), "pain_score": 7,
                                 "leg_weakness": True, "difficulty_walking": True, "location": "thoracic"})
    assert done.tier == "emergency"
    return done.report_id


def log_of(db, report_id: str) -> list[dict]:
    with db.connect() as con:
        cursor = con.execute("SELECT * FROM alert_log WHERE report_id = ? ORDER BY log_id", [report_id])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def body_text(msg) -> str:
    return msg.get_body(("plain",)).get_content()


# --------------------------------------------------------------------------- delivery and escalation


def test_a_new_emergency_is_emailed_to_the_first_step_over_starttls_with_a_sign_in(fresh_db, rules, nurse, loaded,
                                                                                   mail, receiver):
    rid = emergency(fresh_db, rules, nurse, T0)
    stats = run_cycle(fresh_db, loaded, rules, Clock(T0))
    assert (stats.sent, stats.failed) == (1, 0)
    [msg] = mail.to("ward@hospital.example")
    assert mail.logins == [SMTP_USER]
    assert msg["Subject"] == "[Backline] EMERGENCY back-pain report on " \
        f"{fresh_db.scalar('SELECT panel_id FROM reports JOIN patients USING (patient_id) WHERE report_id = ?', [rid])}" \
        ": acknowledge now"
    assert f"https://backline.hospital.example/?report={rid}" in body_text(msg)
    assert msg["Message-ID"] == message_id(f"{rid}|emergency|emergencies|1|nurse")
    assert receiver.requests == []
    # Every try is in the trail: claimed, then sent, with whom, how and when.
    rows = log_of(fresh_db, rid)
    assert [(r["result"], r["contact"], r["channel_type"], r["step"]) for r in rows] == [
        ("sending", "nurse", "smtp", 1), ("sent", "nurse", "smtp", 1)]
    assert rows[1]["detail"] == f"accepted by 127.0.0.1:{loaded.config.channels['mail'].port}"
    # At most once per step: the next cycles send nothing more until the next step is due.
    assert run_cycle(fresh_db, loaded, rules, Clock(T0 + timedelta(minutes=14))).sent == 0
    assert len(mail.messages) == 1


def test_an_unacknowledged_emergency_escalates_after_each_steps_delay(fresh_db, rules, nurse, loaded, mail,
                                                                      receiver):
    rid = emergency(fresh_db, rules, nurse, T0)
    clock_ = Clock(T0)
    sent = [run_cycle(fresh_db, loaded, rules, clock_.to(m)).sent for m in (0, 14.9, 15, 16, 29.9, 30, 45, 120)]
    assert sent == [1, 0, 1, 0, 0, 1, 0, 0]
    [hook] = receiver.requests
    assert hook.json["step"] == 2 and hook.json["to"] == "Acute oncology on-call"
    assert hook.json["address"] == "bleep-4411" and hook.json["report_id"] == rid
    assert hook.json["headline"].endswith("still not acknowledged (escalation 2 of 3)")
    [lead] = mail.to("lead@hospital.example")
    assert "escalation 3 of 3" in lead["Subject"]
    steps = [(r["step"], r["due_at"]) for r in log_of(fresh_db, rid) if r["result"] == "sent"]
    assert steps == [(1, T0), (2, T0 + timedelta(minutes=15)), (3, T0 + timedelta(minutes=30))]


def test_an_acknowledgement_stops_the_chain(fresh_db, rules, nurse, loaded, mail, receiver):
    rid = emergency(fresh_db, rules, nurse, T0)
    assert run_cycle(fresh_db, loaded, rules, Clock(T0)).sent == 1
    act(fresh_db, nurse, T0 + timedelta(minutes=4), action="acknowledge", report_ids=[rid])
    for minutes in (15, 30, 60, 600):
        assert run_cycle(fresh_db, loaded, rules, Clock(T0).to(minutes)).sent == 0
    assert receiver.requests == [] and len(mail.messages) == 1


def test_an_answer_between_planning_and_sending_stops_the_alert(fresh_db, rules, nurse, loaded):
    """The claim checks the report again in its own transaction: an acknowledgement just before wins."""
    rid = emergency(fresh_db, rules, nurse, T0)
    from dashboard.alerts import UNANSWERED_SQL

    due = plan(fresh_db.query(UNANSWERED_SQL), fresh_db.query("SELECT * FROM alert_log"), loaded, rules, T0)
    [first] = [d for d in due if d.report["report_id"] == rid]
    act(fresh_db, nurse, T0, action="acknowledge", report_ids=[rid])
    assert claim(fresh_db, first, loaded, T0) is False
    assert log_of(fresh_db, rid) == []


def test_a_receiver_that_answers_500_is_retried_with_backoff_then_the_next_step_and_the_lead_are_told(
        fresh_db, rules, nurse, loaded, mail, receiver):
    rid = emergency(fresh_db, rules, nurse, T0)
    clock_ = Clock(T0)
    run_cycle(fresh_db, loaded, rules, clock_.to(0))
    receiver.mode = "error"
    first = run_cycle(fresh_db, loaded, rules, clock_.to(15))
    assert (first.sent, first.failed) == (0, 1)
    assert run_cycle(fresh_db, loaded, rules, clock_.to(15.9)).failed == 0  # backoff: 60 s
    assert run_cycle(fresh_db, loaded, rules, clock_.to(16)).failed == 1
    assert run_cycle(fresh_db, loaded, rules, clock_.to(20.9)).failed == 0  # backoff: 300 s
    last = run_cycle(fresh_db, loaded, rules, clock_.to(21))
    assert (last.failed, last.gave_up) == (1, 1)
    # Three tries of the same alert, each signed, each with the same id.
    assert len(receiver.requests) == 3
    assert {r.headers["x-backline-alert-id"] for r in receiver.requests} == {f"{rid}|emergency|emergencies|2|aos"}
    # Given up: the lead hears of it, and the chain's next step goes now instead of at 30 min.
    lead = mail.to("lead@hospital.example")
    assert sorted(m["Subject"] for m in lead) == sorted([
        f"[Backline] EMERGENCY report on {hook_panel(receiver)}: the alert to Acute oncology on-call could not be "
        "delivered",
        f"[Backline] EMERGENCY report on {hook_panel(receiver)} still not acknowledged (escalation 3 of 3)"])
    rows = log_of(fresh_db, rid)
    tries = [(r["attempt"], r["result"], r["detail"]) for r in rows if r["contact"] == "aos"]
    assert tries == [(1, "sending", None), (1, "failed", "the receiver answered HTTP 500"),
                     (2, "sending", None), (2, "failed", "the receiver answered HTTP 500"),
                     (3, "sending", None), (3, "failed", "the receiver answered HTTP 500"),
                     (3, "gave_up", "no delivery after 3 tries; the leads are told and the chain goes on")]
    failed = [r for r in rows if r["result"] == "failed"]
    assert [r["retry_at"] - r["logged_at"] for r in failed[:2]] == [timedelta(seconds=60), timedelta(seconds=300)]
    assert failed[2]["retry_at"] is None
    step3 = [r for r in rows if r["step"] == 3 and r["result"] == "sent"]
    assert step3[0]["due_at"] == T0 + timedelta(minutes=21)
    # Nothing is sent twice afterwards, and the given-up alert is not tried again.
    receiver.mode = "ok"
    for minutes in (30, 60, 300):
        assert run_cycle(fresh_db, loaded, rules, clock_.to(minutes)).sent == 0
    assert len(receiver.requests) == 3


def hook_panel(receiver) -> str:
    return receiver.requests[0].json["panel"]


def test_a_receiver_that_hangs_is_timed_out_and_tried_again(fresh_db, rules, nurse, loaded, receiver):
    rid = emergency(fresh_db, rules, nurse, T0 - timedelta(minutes=15))
    receiver.mode = "hang"
    stats = run_cycle(fresh_db, loaded, rules, Clock(T0))
    assert stats.failed == 1
    [failed] = [r for r in log_of(fresh_db, rid) if r["result"] == "failed"]
    assert failed["detail"] == "no answer in time" and failed["contact"] == "aos"
    receiver.mode = "ok"
    assert run_cycle(fresh_db, loaded, rules, Clock(T0 + timedelta(seconds=60))).sent == 1
    assert [r.headers["x-backline-alert-id"] for r in receiver.requests] == [f"{rid}|emergency|emergencies|2|aos"] * 2


def test_a_channel_that_is_down_does_not_stop_the_others(fresh_db, rules, nurse, tmp_path, smtp, receiver, mail):
    data = config_data(smtp, receiver)
    data["channels"]["mail"]["port"] = free_port()  # nothing listens there
    data["chains"][0]["steps"][0]["notify"] = ["nurse", "aos"]
    loaded = load_alert_config(write_config(tmp_path, data))
    rid = emergency(fresh_db, rules, nurse, T0)
    stats = run_cycle(fresh_db, loaded, rules, Clock(T0))
    assert (stats.sent, stats.failed) == (1, 1)
    assert len(receiver.requests) == 1
    [failed] = [r for r in log_of(fresh_db, rid) if r["result"] == "failed"]
    assert failed["contact"] == "nurse" and failed["detail"].startswith("could not connect")


def test_an_overdue_report_tells_the_lead_when_its_tiers_clock_runs_out(fresh_db, rules, nurse, loaded, mail):
    patient = fresh_db.scalar("SELECT min(patient_id) FROM patients")
    done = submit_report(fresh_db, rules, nurse, T0, patient_id=patient,
                         report={"reported_at": T0, "pain_score": 9, "onset": "sudden", "location": "lumbar"})
    assert done.tier in ("urgent", "soon")
    target = rules.respond_within_minutes(done.tier)
    assert run_cycle(fresh_db, loaded, rules, Clock(T0).to(target - 1)).sent == 0
    assert run_cycle(fresh_db, loaded, rules, Clock(T0).to(target)).sent == 1
    [msg] = mail.to("lead@hospital.example")
    assert msg["Subject"].endswith(f"not acknowledged within {target} min")
    assert run_cycle(fresh_db, loaded, rules, Clock(T0).to(target + 60)).sent == 0


def test_the_rota_decides_who_is_on_call(fresh_db, rules, nurse, tmp_path, smtp, receiver, mail):
    data = config_data(smtp, receiver)
    data["contacts"]["night"] = {"name": "Night nurse", "channel": "mail", "address": "night@hospital.example"}
    data["rotas"] = {"ward": [
        {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "20:00", "contacts": ["nurse"]},
        {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "20:00", "end": "08:00", "contacts": ["night"]},
        {"days": ["sat", "sun"], "start": "08:00", "end": "08:00", "contacts": ["night"]}]}
    data["chains"][0]["steps"][0]["notify"] = ["ward"]
    loaded = load_alert_config(write_config(tmp_path, data))
    config = loaded.config
    monday_noon, monday_night = datetime(2026, 11, 30, 12, 0), datetime(2026, 11, 30, 23, 0)
    saturday_3am, monday_7am = datetime(2026, 12, 5, 3, 0), datetime(2026, 12, 7, 7, 59)
    assert [config.contacts_for(["ward"], m) for m in (monday_noon, monday_night, saturday_3am, monday_7am)] == [
        ["nurse"], ["night"], ["night"], ["night"]]
    # A report at 23:00 on a Monday goes to the night nurse.
    late = clock.aware(monday_night)
    emergency(fresh_db, rules, nurse, late)
    assert run_cycle(fresh_db, loaded, rules, Clock(late)).sent == 1
    assert [m["To"] for m in mail.wait_for(1)] == ["night@hospital.example"]


def test_a_worker_started_on_an_old_database_pages_nobody_for_old_reports(fresh_db, rules, loaded, mail):
    """The sample's reports are ten days old: outside the 24-hour look-back, nothing is sent."""
    assert fresh_db.scalar("SELECT count(*) FROM open_reports") > 0
    assert run_cycle(fresh_db, loaded, rules, Clock(T0)).sent == 0
    assert mail.messages == []


# --------------------------------------------------------------------------- what an alert may say


def test_the_webhook_signature_verifies_and_a_changed_body_or_key_does_not(fresh_db, rules, nurse, loaded,
                                                                           receiver):
    emergency(fresh_db, rules, nurse, T0 - timedelta(minutes=15))
    run_cycle(fresh_db, loaded, rules, Clock(T0))
    [req] = receiver.requests
    stamp, signature = req.headers["x-backline-timestamp"], req.headers["x-backline-signature"]
    # What a receiver computes on its own, from the shared key: HMAC-SHA256 over "TIMESTAMP.BODY".
    expected = "sha256=" + hmac.new(SECRET.encode(), stamp.encode() + b"." + req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)
    assert abs(time.time() - int(stamp)) < 60
    assert verify_signature(SECRET, stamp, req.body, signature)
    assert not verify_signature(SECRET, stamp, req.body.replace(b'"emergency"', b'"routine"'), signature)
    assert not verify_signature("another key", stamp, req.body, signature)
    assert not verify_signature(SECRET, str(int(stamp) - 1), req.body, signature)
    assert not verify_signature(SECRET, stamp, req.body, signature, now=int(stamp) + 301)  # a replay, later
    assert req.headers["content-type"] == "application/json; charset=utf-8"


@pytest.mark.parametrize("allowed", [False, True])
def test_alerts_carry_no_patient_name_or_mrn_unless_the_channel_may(fresh_db, rules, nurse, tmp_path, smtp,
                                                                   receiver, mail, allowed):
    data = config_data(smtp, receiver)
    data["channels"]["mail"]["patient_identifiers"] = allowed
    data["channels"]["pager"]["patient_identifiers"] = allowed
    data["chains"][0]["steps"][0]["notify"] = ["nurse", "aos"]
    loaded = load_alert_config(write_config(tmp_path, data))
    rid = emergency(fresh_db, rules, nurse, T0)
    name, mrn = fresh_db.rows("SELECT name, mrn FROM patients JOIN reports USING (patient_id) WHERE report_id = ?",
                              [rid])[0]
    assert run_cycle(fresh_db, loaded, rules, Clock(T0)).sent == 2
    [msg] = mail.wait_for(1)
    [req] = receiver.requests
    raw_mail = msg.as_string()
    raw_hook = req.body.decode()
    family = name.split()[-1]
    for raw in (raw_mail, raw_hook):
        assert rid in raw  # the link to the report is always there
        assert (mrn in raw) is allowed
        assert (family in raw) is allowed
    if allowed:
        assert req.json["patient"] == {"name": name, "mrn": mrn}
        assert f"MRN: {mrn}" in body_text(msg)
    else:
        assert "patient" not in req.json
        assert set(req.json) == {"alert_id", "kind", "headline", "tier", "panel", "report_id", "reported_at",
                                 "due_at", "to", "link", "step", "steps", "chain", "address"}


# --------------------------------------------------------------------------- restarts, races, recovery


def test_two_workers_at_once_send_each_alert_once(fresh_db, rules, nurse, loaded, mail):
    rid = emergency(fresh_db, rules, nurse, T0)
    start = threading.Barrier(3)
    results = []

    def worker():
        start.wait()
        results.append(run_cycle(fresh_db, loaded, rules, Clock(T0)))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.sent for r in results) == 1
    assert len(mail.messages) == 1
    assert [r["result"] for r in log_of(fresh_db, rid)] == ["sending", "sent"]


def test_a_claim_left_without_a_result_is_sent_again_with_the_same_id(fresh_db, rules, nurse, loaded, mail):
    """A worker that stopped during a send: after a while the try counts as failed and goes again."""
    rid = emergency(fresh_db, rules, nurse, T0)
    from dashboard.alerts import UNANSWERED_SQL, stale_after_seconds

    [due] = [d for d in plan(fresh_db.query(UNANSWERED_SQL), fresh_db.query("SELECT * FROM alert_log"), loaded,
                             rules, T0) if d.report["report_id"] == rid]
    assert claim(fresh_db, due, loaded, T0)  # ...and the worker died here
    assert claim(fresh_db, due, loaded, T0) is False  # nobody else may take it meanwhile
    stale = stale_after_seconds(loaded)
    assert run_cycle(fresh_db, loaded, rules, Clock(T0 + timedelta(seconds=stale - 1))).sent == 0
    assert run_cycle(fresh_db, loaded, rules, Clock(T0 + timedelta(seconds=stale))).sent == 1
    [(_, msg)] = mail.messages
    assert msg["Message-ID"] == message_id(due.key)  # a receiver can tell it from a first copy
    assert [(r["attempt"], r["result"]) for r in log_of(fresh_db, rid)] == [
        (1, "sending"), (1, "failed"), (2, "sending"), (2, "sent")]


def _worker(db, config: Path) -> subprocess.Popen:
    env = {**os.environ, **ENV, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "dashboard", "alerts", *store_args(db), "--config",
                             str(config)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_a_worker_killed_mid_chain_and_restarted_neither_repeats_nor_drops_an_alert(
        fresh_db, rules, nurse, tmp_path, smtp, receiver, mail):
    from dashboard.config import local_now

    config = write_config(tmp_path, config_data(smtp, receiver))
    # Received 14 min 52 s ago: step 1 is due now, step 2 in 8 seconds, by the real clock.
    rid = emergency(fresh_db, rules, nurse, local_now() - timedelta(minutes=14, seconds=52))
    worker = _worker(fresh_db, config)
    try:
        deadline = time.monotonic() + 60
        while not any(r["result"] == "sent" for r in log_of(fresh_db, rid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(mail.to("ward@hospital.example")) == 1
        worker.send_signal(signal.SIGKILL)  # no goodbye: a crash, or the machine going down
        worker.wait(10)
        time.sleep(1)  # restarted a little later
        worker = _worker(fresh_db, config)
        deadline = time.monotonic() + 60
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.1)
        assert receiver.requests, "step 2 never went after the restart"
        time.sleep(2)  # several more cycles of the restarted worker
    finally:
        worker.terminate()
        output = worker.communicate(timeout=20)[0].decode()
    assert worker.returncode == 0, output  # SIGTERM: a clean stop
    assert len(mail.to("ward@hospital.example")) == 1
    assert len(receiver.requests) == 1
    sent = [(r["step"], r["contact"]) for r in log_of(fresh_db, rid) if r["result"] == "sent"]
    assert sent == [(1, "nurse"), (2, "aos")]
    assert "alerts: watching" in output


def test_the_heartbeat_tells_the_app_whether_the_worker_runs(fresh_db, loaded):
    assert not worker_status(fresh_db.meta(), T0).running
    heartbeat(fresh_db, loaded, T0)
    assert worker_status(fresh_db.meta(), T0 + timedelta(seconds=5)).running
    late = worker_status(fresh_db.meta(), T0 + timedelta(minutes=10))
    assert not late.running and "has not run since" in late.words
    assert json.loads(fresh_db.meta()[HEARTBEAT_KEY])["every_seconds"] == 0.3


def test_the_alert_log_is_append_only(fresh_db, rules, nurse, loaded, mail):
    rid = emergency(fresh_db, rules, nurse, T0)
    run_cycle(fresh_db, loaded, rules, Clock(T0))
    for sql in ("UPDATE alert_log SET result = 'sent' WHERE report_id = ?",
                "DELETE FROM alert_log WHERE report_id = ?"):
        with pytest.raises(ENGINE_ERRORS, match="append-only"):
            write(fresh_db, sql, [rid])
    assert len(log_of(fresh_db, rid)) == 2


# --------------------------------------------------------------------------- the configuration fails closed


BAD = [
    ("contacts.nurse.channel", "fax", "contacts.nurse.channel", "unknown channel 'fax'"),
    ("chains.0.steps.1.notify", ["nobody"], "chains[0].steps[1].notify[0]", "unknown contact or rota 'nobody'"),
    ("chains.0.steps.1.after_minutes", 0, "chains[0].steps[1].after_minutes",
     "steps must come later and later"),
    ("channels.mail.security", "none", "channels.mail.security", "a password is never sent without TLS"),
    ("channels.mail.sender", "backline@hospital.example\nBcc: everyone@example.org", "channels.mail.sender",
     "must not contain line breaks"),
    ("contacts.lead.address", "lead@hospital.example, other@example.org", "contacts.lead.address",
     "must be one e-mail address"),
    ("channels.pager.url", "ftp://pager", "channels.pager.url", "should match pattern"),
    ("channels.pager.colour", "red", "channels.pager.colour", "unknown field"),
    ("leads", [], "leads", "at least 1 item"),
    ("app_url", KeyError, "app_url", "required field is missing"),
    ("channels.pager.secret_env", "BACKLINE_TEST_UNSET_SECRET", "channels.pager.secret_env",
     "the environment variable BACKLINE_TEST_UNSET_SECRET is not set"),
    ("rotas", {"ward": [{"days": ["mon"], "start": "08:00", "end": "18:00", "contacts": ["nurse"]}]}, "rotas.ward",
     "nobody is on call on mon at 00:00"),
]


@pytest.mark.parametrize("where,value,field,message", BAD, ids=[b[0] for b in BAD])
def test_an_alerts_file_that_does_not_validate_is_refused_naming_the_file_and_field(
        tmp_path, smtp, receiver, where, value, field, message):
    path = write_config(tmp_path, altered(config_data(smtp, receiver), where, value), name="ward-alerts.yaml")
    with pytest.raises(AlertConfigError) as caught:
        load_alert_config(path)
    assert caught.value.file == "ward-alerts.yaml"
    assert caught.value.field == field
    assert message in caught.value.message


def test_the_worker_refuses_to_start_on_a_bad_file_or_a_panel_nobody_covers(fresh_db, tmp_path, smtp, receiver):
    bad = write_config(tmp_path, altered(config_data(smtp, receiver), "poll_seconds", -1), name="bad.yaml")
    done = run_cli("alerts", *store_args(fresh_db), "--config", str(bad), "--once", env=ENV)
    assert done.returncode == 3
    assert "bad.yaml" in done.stderr.decode() and "poll_seconds" in done.stderr.decode()
    one_panel = config_data(smtp, receiver)
    first = panels_of(fresh_db)[0]
    one_panel["chains"][0]["panels"] = [first]
    partial = write_config(tmp_path, one_panel, name="partial.yaml")
    done = run_cli("alerts", *store_args(fresh_db), "--config", str(partial), "--once", env=ENV)
    assert done.returncode == 3, done.stderr.decode()
    err = done.stderr.decode()
    assert "partial.yaml" in err and "chains" in err and panels_of(fresh_db)[1] in err
    assert fresh_db.scalar("SELECT count(*) FROM alert_log") == 0


def test_the_demo_configuration_validates_and_writes_alerts_to_a_local_mailbox(tmp_path, fresh_db, rules, nurse):
    import mailbox
    import shutil

    folder = tmp_path / "sample_data"
    folder.mkdir()
    shutil.copy(ROOT / "sample_data" / "alerts.yaml", folder / "alerts.yaml")
    loaded = load_alert_config(folder / "alerts.yaml")
    rid = emergency(fresh_db, rules, nurse, T0)
    stats = run_cycle(fresh_db, loaded, rules, Clock(T0))
    assert stats.sent >= 1 and stats.failed == 0
    box = mailbox.mbox(tmp_path / "data" / "alerts.mbox")
    assert any(rid in m.get_payload() for m in box)


def test_the_production_example_validates_and_gives_every_panel_an_emergency_chain(monkeypatch, fresh_db):
    monkeypatch.setenv("BACKLINE_SMTP_PASSWORD", "not-a-real-password")
    monkeypatch.setenv("BACKLINE_PAGING_SECRET", "not-a-real-key")
    loaded = load_alert_config(ROOT / "docs" / "alerts.example.yaml")
    assert loaded.config.uncovered(list(panels_of(fresh_db))) == []
    assert loaded.config.channels["bleep"].patient_identifiers is False


def test_the_readmes_signature_check_accepts_a_real_alert(fresh_db, rules, nurse, loaded, receiver):
    """The receiver's check printed in the README, run on a request the worker really sent."""
    import re

    code = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - the README's own example
    emergency(fresh_db, rules, nurse, T0 - timedelta(minutes=15))
    run_cycle(fresh_db, loaded, rules, Clock(T0))
    [req] = receiver.requests
    headers = {"X-Backline-Timestamp": req.headers["x-backline-timestamp"],
               "X-Backline-Signature": req.headers["x-backline-signature"]}
    assert namespace["verify"](SECRET.encode(), headers, req.body)
    assert not namespace["verify"](b"wrong", headers, req.body)


@pytest.mark.parametrize("hours_after_seed", [0, 0.5, 1, 3, 20, 26, 50, 24 * 3 + 1, 24 * 4, 24 * 5])
def test_the_worker_reads_only_reports_that_can_be_due_and_misses_none(fresh_db, rules, nurse, loaded,
                                                                      hours_after_seed):
    """The narrowed read (chain steps, tier targets and recent log within the look-back) plans exactly
    what planning over every unanswered report would, at moments across reports of every tier."""
    from dashboard.alerts import UNANSWERED_SQL, candidates

    config = replace(loaded, config=loaded.config.model_copy(
        update={"overdue_tiers": ["emergency", "urgent", "soon", "routine"]}))
    patients = [r[0] for r in fresh_db.rows("SELECT patient_id FROM patients ORDER BY patient_id LIMIT 12")]
    answers = [{"pain_score": 2}, {"pain_score": 9, "onset": "sudden"}, {"pain_score": 7, "leg_weakness": True}]
    for i, (pid, hours) in enumerate(zip(patients, [0, 0.2, 2, 5, 23, 30, 47, 60, 70, 0.1, 1, 12])):
        at = clock.aware(SEED_NOW - timedelta(hours=hours))
        submit_report(fresh_db, rules, nurse, at, patient_id=pid,
                      report={"reported_at": at, **answers[i % len(answers)]})
    at = clock.aware(SEED_NOW + timedelta(hours=hours_after_seed))
    narrowed, log_rows = candidates(fresh_db, config, rules, at)
    everything = fresh_db.query(UNANSWERED_SQL)
    assert len(narrowed) <= len(everything)
    planned = plan(everything, log_rows, config, rules, at)
    assert plan(narrowed, log_rows, config, rules, at) == planned
    if hours_after_seed in (0, 1, 26, 24 * 3 + 1):
        assert planned, "a moment chosen to have alerts due plans none: the comparison would prove nothing"
