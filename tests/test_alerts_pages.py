"""What the care team sees of the alerts in the app (AppTest): which alerts went out for a report and
whether anyone has seen them, the link in an alert opening its report, whether the worker runs, the
time from alert to answer, and every alert in the audit export."""

from __future__ import annotations

from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import metrics
from dashboard.access import Role, User
from dashboard.alert_config import load_alert_config
from dashboard.alerts import heartbeat, run_cycle
from dashboard.config import local_now
from dashboard.rules import load_rules
from dashboard.ui import plain
from dashboard.workflow import act, submit_report
from tests.conftest import ROOT
from tests.test_pages import APP, LEAD, NURSE, app_db, nurse_panel, open_app, texts  # noqa: F401


@pytest.fixture
def alerted(app_db, tmp_path):  # noqa: F811
    """A new emergency on the nurse's panel, alerted by the demo configuration (a mailbox file, the log)."""
    rules = load_rules(ROOT / "rules")
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "alerts.yaml").write_text((ROOT / "sample_data" / "alerts.yaml").read_text())
    loaded = load_alert_config(folder / "alerts.yaml")
    panel = nurse_panel(app_db)
    patient = app_db.scalar("SELECT min(patient_id) FROM patients p WHERE panel_id = ? AND NOT EXISTS "
                            "(SELECT 1 FROM open_reports o WHERE o.patient_id = p.patient_id)", [panel])
    now = local_now().replace(second=0, microsecond=0) - timedelta(minutes=10)  # ten minutes ago
    nurse = User(actor=NURSE, name="Test Nurse", role=Role.NURSE, panels=(panel,))
    rid = submit_report(app_db, rules, nurse, now, patient_id=patient, report={
        "reported_at": now - timedelta(minutes=1), "pain_score": 8, "leg_weakness": True}).report_id
    assert run_cycle(app_db, loaded, rules, lambda: now).sent >= 1
    return {"db": app_db, "rid": rid, "loaded": loaded, "now": now, "nurse": nurse, "rules": rules}


def queue_row(at, rid: str):
    table = at.dataframe[0].value
    return table[table["Report"] == rid].iloc[0]


def test_the_queue_shows_which_alerts_went_out_and_whether_anyone_has_seen_them(alerted):
    rid, db = alerted["rid"], alerted["db"]
    at = open_app(NURSE)
    assert queue_row(at, rid)["Alerts"] == "1 sent · not seen"
    at.session_state["selected_report"] = rid
    at.run()
    [alerts] = [d.value for d in at.dataframe if "Seen" in d.value.columns]
    row = alerts.iloc[0]
    assert row["To"] == "Ward on-call nurse (day)" or row["To"] == "Acute oncology night nurse"
    assert row["Channel"] == "mailbox file (ward_mail)" and row["What"] == "step 1 of 3 (emergencies)"
    assert row["Result"] == "sent" and row["Seen"] == "not yet"
    # Acknowledged: the alert counts as seen, and the chain stops.
    act(db, alerted["nurse"], alerted["now"] + timedelta(minutes=3), action="acknowledge", report_ids=[rid])
    at = open_app(NURSE)
    assert queue_row(at, rid)["Alerts"] == "1 sent · seen"
    at.session_state["selected_report"] = rid
    at.run()
    [alerts] = [d.value for d in at.dataframe if "Seen" in d.value.columns]
    assert alerts.iloc[0]["Seen"] == "answered 3 min after"


def test_the_link_in_an_alert_opens_its_report_only_within_ones_panels(alerted, app_db):  # noqa: F811
    rid = alerted["rid"]
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["demo_actor"] = NURSE
    at.query_params["report"] = rid
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.session_state["selected_report"] == rid
    assert f"report **{plain(rid)}**" in texts(at)
    other = app_db.scalar("SELECT min(report_id) FROM open_reports WHERE panel_id <> ?", [nurse_panel(app_db)])
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["demo_actor"] = NURSE
    at.query_params["report"] = other
    at.run()
    assert "selected_report" not in at.session_state
    assert "not in the panels you may see" in texts(at)


def test_the_queue_says_when_no_alerts_worker_is_running(alerted):
    db = alerted["db"]
    assert "No alerts worker has run on this database" in "\n".join(w.value for w in open_app(NURSE).warning)
    heartbeat(db, alerted["loaded"], local_now())
    at = open_app(NURSE)
    assert not [w for w in at.warning if "alerts worker" in w.value]
    assert "Alerts are on" in texts(at)


def test_the_response_times_page_shows_the_time_from_alert_to_answer(alerted):
    db, rid, now = alerted["db"], alerted["rid"], alerted["now"]
    act(db, alerted["nurse"], now + timedelta(minutes=6), action="acknowledge", report_ids=[rid])
    at = open_app(LEAD, "response_times")
    panels = [p for (p,) in db.rows("SELECT panel_id FROM panels ORDER BY panel_id")]
    at.multiselect(key="metrics_panels").set_value(panels).run()
    assert not at.exception, [e.message for e in at.exception]
    [table] = [d.value for d in at.dataframe if "alerted" in d.value.columns]
    row = table.iloc[0]
    assert (row["tier"], row["alerted"], row["answered"], row["unanswered"]) == ("▲▲ EMERGENCY", 1, 1, 0)
    assert row["median_minutes"] == "6 min"


def test_every_alert_try_is_in_the_audit_export(alerted):
    db, rid, now = alerted["db"], alerted["rid"], alerted["now"]
    panels = [p for (p,) in db.rows("SELECT panel_id FROM panels")]
    trail = metrics.audit_trail(db, panels, now.date(), now.date())
    mine = trail[trail["report_id"] == rid]
    assert list(mine["action"]) == ["alert_sending", "alert_sent"]
    sent = mine.iloc[1]
    assert sent["role"] == "system" and sent["alert_channel"] == "ward_mail (mailbox)"
    assert sent["alert_to"].endswith("@backline.example>") and sent["note"].startswith("chain step 1 of 3")
    csv = metrics.audit_csv(trail).decode()
    assert "alert_sent" in csv
