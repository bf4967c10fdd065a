"""The imports page (AppTest): a lead or an admin sees every FHIR import, what it read and why one was
refused; a lead downloads the FHIR export of a period; nobody else opens the page."""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B.bundle import Bundle

from dashboard.fhir_import import ImportRefused, import_fhir
from dashboard.rules import load_rules
from tests.conftest import ROOT, SEED_NOW
from tests.test_fhir_import import BREAST, DOSE, PANEL_MAP, PATIENT, response, sample
from tests.test_pages import ADMIN, LEAD, NURSE, app_db, open_app, texts  # noqa: F401


@pytest.fixture
def imported(app_db, tmp_path):  # noqa: F811
    rules = load_rules(ROOT / "rules")
    good = sample(tmp_path, PATIENT, BREAST, DOSE, response("fhir-qr-1", "fhir-pt-1", "2026-11-20T09:00:00Z"),
                  name="ward-feed.json")
    import_fhir(app_db, rules, good, now=SEED_NOW, panel_map=PANEL_MAP, actor="A006")
    broken = sample(tmp_path, {**PATIENT, "id": "fhir-pt-9", "birthDate": "not a date"}, name="broken-feed.json")
    with pytest.raises(ImportRefused):
        import_fhir(app_db, rules, broken, now=SEED_NOW, panel_map=PANEL_MAP, actor="A006")
    return app_db


def test_the_imports_page_lists_each_import_and_why_one_was_refused(imported):
    at = open_app(ADMIN, "imports")
    [log] = [d.value for d in at.dataframe if "resources" in d.value.columns]
    assert list(log["result"]) == ["refused", "imported"]
    assert log.iloc[1]["source"].endswith("ward-feed.json")
    assert "QuestionnaireResponse 1" in log.iloc[1]["resources"] and "new" in log.iloc[1]["changes"]
    refused = int(log.iloc[0]["import_id"])
    at.selectbox(key="import_refused").set_value(refused).run()
    [problems] = [d.value for d in at.dataframe if "problem" in d.value.columns]
    assert problems.iloc[0]["resource"] == "Patient/fhir-pt-9" and problems.iloc[0]["path"] == "birthDate"
    assert not [b for b in at.get("download_button") if b.key == "fhir_export"]  # admins do not export patient data


def test_a_lead_downloads_the_fhir_export_of_a_period(imported):
    from datetime import date

    from dashboard import ui
    from dashboard.config import get_settings
    from dashboard.ui import Context

    at = open_app(LEAD, "imports")
    assert [b for b in at.get("download_button") if b.key == "fhir_export"]
    rules = load_rules(ROOT / "rules")
    ctx = Context(user=None, rules=rules, db=imported, settings=get_settings(), now=SEED_NOW, version=())
    body = json.loads(ui.fhir_export_bytes(ctx, date(2026, 11, 20), date(2026, 11, 21)))
    Bundle.model_validate(body)
    kinds = {e["resource"]["resourceType"] for e in body["entry"]}
    assert {"QuestionnaireResponse", "RiskAssessment", "Task", "Patient"} <= kinds


def test_a_nurse_cannot_open_the_imports_page(imported):
    at = open_app(NURSE, "imports")
    assert "fhir-pt-1" not in texts(at)
    assert not [d for d in at.dataframe if "resources" in d.value.columns]


def test_an_imported_report_is_in_the_nurses_queue_at_once(imported):
    report_id = imported.scalar("SELECT backline_key FROM fhir_resources WHERE fhir_id = 'fhir-qr-1'")
    at = open_app(NURSE)
    table = at.dataframe[0].value
    assert report_id in set(table["Report"])
    assert table[table["Report"] == report_id].iloc[0]["Patient"] == "Adaeze Okafor · MRN-F0001"
