"""FHIR R4 in: bundles and Bulk Data exports into real DuckDB files, triaged on arrival; all or
nothing, idempotent, every refusal naming the resource, its id and the field."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from dashboard.fhir_import import ImportRefused, import_fhir
from dashboard.fhir_questionnaire import QUESTIONNAIRE_URL, questionnaire
from dashboard.labels import FLAG_QUESTIONS
from dashboard.models import REPORT_FLAGS
from tests.conftest import SEED_NOW, altered, both_stores, run_cli, store_args

pytestmark = both_stores

NOW = SEED_NOW
PANEL_MAP = {"Organization/breast-unit": "BRE-A"}


def answer(link: str, value) -> dict:
    key = {bool: "valueBoolean", int: "valueInteger", float: "valueDecimal"}.get(type(value), "valueCoding")
    given = {"system": "https://backline.example/fhir/CodeSystem/back-pain-answers", "code": value} \
        if key == "valueCoding" else value
    return {"linkId": link, "answer": [{key: given}]}


def response(rid: str, patient: str, authored: str, *, pain: int | None = 6, flags: dict | None = None,
             skip: tuple[str, ...] = (), **choices) -> dict:
    items = [] if pain is None else [answer("pain_score", pain)]
    items += [answer(k, v) for k, v in choices.items()]
    items += [answer(f, (flags or {}).get(f, False)) for f in REPORT_FLAGS if f not in skip]
    return {"resourceType": "QuestionnaireResponse", "id": rid, "questionnaire": QUESTIONNAIRE_URL,
            "status": "completed", "subject": {"reference": f"Patient/{patient}"}, "authored": authored,
            "item": items}


def bundle(*resources: dict, kind: str = "collection") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": [
        {"fullUrl": f"https://ehr.example/fhir/{r['resourceType']}/{r['id']}", "resource": r} for r in resources]}


PATIENT = {"resourceType": "Patient", "id": "fhir-pt-1",
           "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                "code": "MR"}]}, "system": "https://ehr.example/mrn",
                           "value": "MRN-F0001"}],
           "name": [{"use": "official", "family": "Okafor", "given": ["Adaeze"]}], "gender": "female",
           "birthDate": "1968-04-02", "managingOrganization": {"reference": "Organization/breast-unit"}}
BREAST = {"resourceType": "Condition", "id": "fhir-cond-1", "subject": {"reference": "Patient/fhir-pt-1"},
          "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "C50.9"}]},
          "recordedDate": "2026-03-01"}
BONE = {"resourceType": "Condition", "id": "fhir-cond-2", "subject": {"reference": "Patient/fhir-pt-1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "94222008",
                             "display": "Secondary malignant neoplasm of bone"}]}}
DOSE = {"resourceType": "MedicationAdministration", "id": "fhir-dose-1", "status": "completed",
        "medicationCodeableConcept": {"text": "Paclitaxel 175 mg/m2 infusion"},
        "subject": {"reference": "Patient/fhir-pt-1"}, "effectiveDateTime": "2026-11-17T10:00:00Z"}


def sample(tmp_path: Path, *resources: dict, name: str = "bundle.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(bundle(*resources)))
    return path


def counts(db) -> dict[str, int]:
    return {t: db.scalar(f"SELECT count(*) FROM {t}") for t in
            ("patients", "administrations", "reports", "open_reports", "triage_results", "fhir_resources")}


def test_a_bundle_is_imported_and_its_report_triaged_on_arrival(fresh_db, rules, tmp_path):
    emergency = response("fhir-qr-1", "fhir-pt-1", "2026-11-20T09:00:00Z", flags={"leg_weakness": True},
                         location="thoracic")
    result = import_fhir(fresh_db, rules, sample(tmp_path, PATIENT, BREAST, BONE, DOSE, emergency), now=NOW,
                         panel_map=PANEL_MAP)
    patient = fresh_db.query("SELECT * FROM patients WHERE patient_id = 'fhir-pt-1'").iloc[0]
    assert (patient["mrn"], patient["name"], patient["cancer_type"], bool(patient["bone_metastases"]),
            patient["panel_id"], str(patient["date_of_birth"])[:10]) == (
        "MRN-F0001", "Adaeze Okafor", "breast", True, "BRE-A", "1968-04-02")
    dose = fresh_db.query("SELECT drug, given_at FROM administrations WHERE patient_id = 'fhir-pt-1'").iloc[0]
    assert dose["drug"] == "paclitaxel"
    [(report_id, tier)] = result.reports
    assert tier == "emergency"
    assert fresh_db.scalar("SELECT count(*) FROM open_reports WHERE report_id = ?", [report_id]) == 1
    row = fresh_db.query("SELECT source, leg_weakness, location FROM reports WHERE report_id = ?", [report_id]).iloc[0]
    assert (row["source"], bool(row["leg_weakness"]), row["location"]) == ("epro", True, "thoracic")
    assert dict(result.counts["Patient"]) == {"read": 1, "new": 1}
    log = fresh_db.query("SELECT * FROM fhir_imports").iloc[-1]
    assert log["result"] == "imported" and json.loads(log["counts"])["QuestionnaireResponse"]["new"] == 1


def test_importing_the_same_file_twice_changes_nothing(fresh_db, rules, tmp_path):
    path = sample(tmp_path, PATIENT, BREAST, DOSE, response("fhir-qr-1", "fhir-pt-1", "2026-11-20T09:00:00Z"))
    import_fhir(fresh_db, rules, path, now=NOW, panel_map=PANEL_MAP)
    before = counts(fresh_db)
    again = import_fhir(fresh_db, rules, path, now=NOW + timedelta(hours=1), panel_map=PANEL_MAP)
    assert counts(fresh_db) == before
    assert again.reports == [] and all(c.get("new", 0) == 0 and c.get("updated", 0) == 0
                                       for c in again.counts.values())
    assert again.counts["Patient"]["unchanged"] == 1


def test_a_newer_version_updates_its_row_and_the_history_keeps_both(fresh_db, rules, tmp_path):
    first = response("fhir-qr-1", "fhir-pt-1", "2026-11-20T09:00:00Z", pain=3)
    import_fhir(fresh_db, rules, sample(tmp_path, PATIENT, BREAST, first), now=NOW, panel_map=PANEL_MAP)
    [(report_id,)] = fresh_db.rows("SELECT backline_key FROM fhir_resources WHERE fhir_id = 'fhir-qr-1'")
    amended = response("fhir-qr-1", "fhir-pt-1", "2026-11-20T09:00:00Z", pain=3, flags={"saddle_numbness": True})
    moved = {**PATIENT, "name": [{"family": "Okafor-Reid", "given": ["Adaeze"]}]}
    result = import_fhir(fresh_db, rules, sample(tmp_path, moved, BREAST, amended, name="v2.json"), now=NOW,
                         panel_map=PANEL_MAP)
    assert result.counts["QuestionnaireResponse"]["updated"] == 1 and result.counts["Patient"]["updated"] == 1
    assert fresh_db.scalar("SELECT name FROM patients WHERE patient_id = 'fhir-pt-1'") == "Adaeze Okafor-Reid"
    assert fresh_db.scalar("SELECT tier FROM triage_results WHERE report_id = ?", [report_id]) == "emergency"
    history = fresh_db.rows("SELECT change FROM fhir_resources WHERE fhir_id = 'fhir-qr-1' ORDER BY import_id")
    assert [h[0] for h in history] == ["new", "updated"]
    assert fresh_db.scalar("SELECT count(*) FROM events WHERE report_id = ? AND action = 'retriaged'",
                           [report_id]) == 1  # the open report's tier rose, and its history says so


def test_a_red_flag_left_unanswered_counts_as_yes_and_is_recorded_as_not_asked(fresh_db, rules, tmp_path):
    result = import_fhir(fresh_db, rules, sample(tmp_path, PATIENT, BREAST, response(
        "fhir-qr-1", "fhir-pt-1", "2026-11-20T09:00:00Z", pain=2, skip=("bladder_or_bowel_change",))), now=NOW,
        panel_map=PANEL_MAP)
    [(report_id, tier)] = result.reports
    assert tier == "emergency"
    assert fresh_db.rows("SELECT field FROM report_unasked WHERE report_id = ?", [report_id]) == [
        ("bladder_or_bowel_change",)]


def test_the_pain_score_and_temperature_come_from_observations_near_the_response(fresh_db, rules, tmp_path):
    pain = {"resourceType": "Observation", "id": "obs-pain", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
            "subject": {"reference": "Patient/fhir-pt-1"}, "effectiveDateTime": "2026-11-20T08:30:00Z",
            "valueQuantity": {"value": 8, "unit": "{score}"}}
    fever = {"resourceType": "Observation", "id": "obs-temp", "status": "final",
             "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
             "subject": {"reference": "Patient/fhir-pt-1"}, "effectiveDateTime": "2026-11-20T09:40:00Z",
             "valueQuantity": {"value": 38.4, "unit": "Cel"}}
    late = {**fever, "id": "obs-late", "effectiveDateTime": "2026-11-20T13:00:00Z",
            "valueQuantity": {"value": 36.6, "unit": "Cel"}}
    qr = response("fhir-qr-1", "fhir-pt-1", "2026-11-20T09:00:00Z", pain=None)
    result = import_fhir(fresh_db, rules, sample(tmp_path, PATIENT, BREAST, DOSE, qr, pain, fever, late), now=NOW,
                         panel_map=PANEL_MAP)
    [(report_id, _)] = result.reports
    row = fresh_db.query("SELECT pain_score, temperature_c FROM reports WHERE report_id = ?", [report_id]).iloc[0]
    assert (int(row["pain_score"]), float(row["temperature_c"])) == (8, 38.4)
    assert result.counts["Observation"]["not_used"] == 1  # the one four hours later


COURSE = {"resourceType": "MedicationStatement", "id": "fhir-course-1", "status": "completed",
          "medicationCodeableConcept": {"coding": [{"display": "Arimidex"}]},
          "subject": {"reference": "Patient/fhir-pt-1"},
          "effectivePeriod": {"start": "2026-01-10", "end": "2026-01-01"}}
REFUSALS = [
    (COURSE, "MedicationStatement/fhir-course-1", "effectivePeriod.end", "before it starts"),
    (altered(PATIENT, "identifier.0.value", "SAMPLE-MRN"), "Patient/fhir-pt-1", "identifier", "is already Patient/"),
    (altered(PATIENT, "birthDate", "1850-01-01"), "Patient/fhir-pt-1", "birthDate", "not a plausible date of birth"),
    (altered(PATIENT, "birthDate", "1968-13-40"), "Patient/fhir-pt-1", "birthDate", "does not match"),
    (altered(PATIENT, "identifier", []), "Patient/fhir-pt-1", "identifier", "no MRN"),
    (altered(PATIENT, "managingOrganization", {"reference": "Organization/elsewhere"}), "Patient/fhir-pt-1",
     "generalPractitioner", "no panel"),
    (altered(DOSE, "subject", {"reference": "Patient/nobody"}), "MedicationAdministration/fhir-dose-1", "subject",
     "Patient/nobody is neither in the file nor in Backline"),
    (altered(DOSE, "effectiveDateTime", KeyError), "MedicationAdministration/fhir-dose-1", "", ""),
    (altered(response("fhir-qr-1", "fhir-pt-1", "2026-11-20T09:00:00Z"), "item.0.answer.0.valueInteger", 11),
     "QuestionnaireResponse/fhir-qr-1", "item[pain_score]", ""),
    (altered(response("fhir-qr-1", "fhir-pt-1", "2026-11-20T09:00:00Z"), "questionnaire", "http://other/q"),
     "QuestionnaireResponse/fhir-qr-1", "questionnaire", "not to Backline's questionnaire"),
    (altered(BREAST, "code", {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "K21.9"}]}),
     "Patient/fhir-pt-1", "", "no primary cancer"),
]


@pytest.mark.parametrize("broken,resource,path,words", REFUSALS, ids=[f"{r[1]} {r[2] or r[3]}" for r in REFUSALS])
def test_one_bad_resource_and_nothing_of_the_file_is_imported(fresh_db, rules, tmp_path, broken, resource, path,
                                                             words):
    parts = {r["id"]: r for r in (PATIENT, BREAST, DOSE, response("fhir-qr-1", "fhir-pt-1", "2026-11-20T09:00:00Z"))}
    parts[broken["id"]] = broken
    if "SAMPLE-MRN" in json.dumps(broken):  # the MRN of a patient Backline already has
        sample_mrn = fresh_db.scalar("SELECT min(mrn) FROM patients")
        parts[broken["id"]] = json.loads(json.dumps(broken).replace("SAMPLE-MRN", sample_mrn))
    before = counts(fresh_db)
    with pytest.raises(ImportRefused) as caught:
        import_fhir(fresh_db, rules, sample(tmp_path, *parts.values()), now=NOW, panel_map=PANEL_MAP)
    assert counts(fresh_db) == before
    found = [p for p in caught.value.problems if p.resource == resource]
    assert found, caught.value.problems
    assert any(p.path.startswith(path) and words in p.problem for p in found), found
    log = fresh_db.query("SELECT result, problems FROM fhir_imports ORDER BY import_id").iloc[-1]
    assert log["result"] == "refused" and resource in log["problems"]


def test_bad_json_is_refused_naming_the_line(fresh_db, rules, tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Patient.ndjson").write_text(json.dumps(PATIENT) + "\n{not json\n")
    before = counts(fresh_db)
    with pytest.raises(ImportRefused) as caught:
        import_fhir(fresh_db, rules, folder, now=NOW, panel_map=PANEL_MAP)
    assert str(caught.value.problems[0]) == "Patient.ndjson line 2: not JSON (Expecting property name enclosed " \
                                            "in double quotes)"
    assert counts(fresh_db) == before


def test_a_bulk_data_export_folder_is_imported(fresh_db, rules, tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    for kind, items in {"Patient": [PATIENT], "Condition": [BREAST, BONE], "MedicationAdministration": [DOSE],
                        "QuestionnaireResponse": [response("fhir-qr-1", "fhir-pt-1", "2026-11-20T09:00:00Z")]}.items():
        (folder / f"{kind}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in items))
    result = import_fhir(fresh_db, rules, folder, now=NOW, panel_map=PANEL_MAP)
    assert len(result.reports) == 1 and result.counts["Condition"]["new"] == 2


def test_the_command_line_imports_and_refuses_with_exit_2(fresh_db, tmp_path):
    good = sample(tmp_path, PATIENT, BREAST, DOSE, response("fhir-qr-1", "fhir-pt-1", "2026-11-20T09:00:00Z"))
    done = run_cli("import", str(good), *store_args(fresh_db), "--panel", "BRE-A")
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert "QuestionnaireResponse: 1 read, 1 new" in out and "triaged R-" in out
    broken = sample(tmp_path, altered(PATIENT, "id", "fhir-pt-2") | {"birthDate": "yesterday"}, name="broken.json")
    done = run_cli("import", str(broken), *store_args(fresh_db), "--panel", "BRE-A")
    assert done.returncode == 2
    assert "broken.json: Patient/fhir-pt-2 birthDate:" in done.stderr.decode()
    assert "nothing of it was written" in done.stderr.decode()


def test_the_questionnaire_asks_every_report_field_in_the_forms_words():
    q = questionnaire()
    items = {i["linkId"]: i for group in q["item"] for i in [group, *group.get("item", [])]}
    for flag in REPORT_FLAGS:
        assert items[flag]["text"] == FLAG_QUESTIONS[flag] and items[flag]["required"] is True
    assert {"pain_score", "pain_pattern", "onset", "trend", "location", "duration_days", "temperature_c"} <= set(items)
    assert q["url"] == QUESTIONNAIRE_URL
    done = run_cli("fhir", "questionnaire")
    assert done.returncode == 0 and json.loads(done.stdout) == q


# --------------------------------------------------------------------------- published examples

EXAMPLES = Path(__file__).parent / "fhir_examples"


def example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def test_mcode_examples_import_a_cancer_patient_with_a_cancer_related_medication(fresh_db, rules, tmp_path):
    """mCODE's own examples (tests/fhir_examples/SOURCES.md): Jenny M, her primary breast cancer and a
    doxorubicin administration by RxNorm code; John Anyperson's lung cancer and brain metastasis."""
    names = ["mcode-cancer-patient-jenny-m.json", "mcode-primary-cancer-condition-jenny-m.json",
             "mcode-medication-administration-doxorubicin-jenny-m.json", "mcode-cancer-patient-john-anyperson.json",
             "mcode-primary-cancer-condition-nsclc.json", "mcode-secondary-cancer-condition-brain-mets.json"]
    path = sample(tmp_path, *(example(n) for n in names), name="mcode.json")
    result = import_fhir(fresh_db, rules, path, now=NOW, panel_map={"*": "BRE-A"})
    jenny = fresh_db.query("SELECT * FROM patients WHERE patient_id = 'cancer-patient-jenny-m'").iloc[0]
    assert (jenny["mrn"], jenny["cancer_type"], jenny["sex"]) == ("MRN1234", "breast", "female")
    assert fresh_db.scalar("SELECT cancer_type FROM patients WHERE patient_id = 'cancer-patient-john-anyperson'") \
        == "lung"
    assert fresh_db.rows("SELECT drug FROM administrations WHERE patient_id = 'cancer-patient-jenny-m'") == [
        ("doxorubicin",)]
    assert result.unrecognised_drugs == []
    assert result.counts["Condition"]["not_used"] == 1  # a brain metastasis: nothing the triage reads


def test_hl7_examples_a_patient_and_a_body_temperature_fill_a_report(fresh_db, rules, tmp_path):
    """The HL7 R4 Patient example (Peter Chalmers) and its body-temperature Observation (36.5 °C) with
    a response to Backline's questionnaire at the same time; a breast cancer Condition of our own."""
    temperature = example("hl7-observation-pain-or-temp.json")
    at = temperature["effectiveDateTime"]
    condition = {**BREAST, "subject": {"reference": "Patient/example"}}
    qr = response("hl7-qr", "example", at)
    path = sample(tmp_path, example("hl7-patient-example.json"), condition, temperature, qr, name="hl7.json")
    result = import_fhir(fresh_db, rules, path, now=NOW, panel_map={"Organization/1": "BRE-A"})
    [(report_id, _)] = result.reports
    assert fresh_db.scalar("SELECT temperature_c FROM reports WHERE report_id = ?", [report_id]) == 36.5
    assert fresh_db.scalar("SELECT name FROM patients WHERE patient_id = 'example'").startswith("Peter")


def test_the_hl7_medication_administration_alone_is_refused_for_its_unknown_patient(fresh_db, rules, tmp_path):
    path = sample(tmp_path, example("hl7-medicationadministration-example.json"), name="medadmin.json")
    with pytest.raises(ImportRefused) as caught:
        import_fhir(fresh_db, rules, path, now=NOW, panel_map={"*": "BRE-A"})
    assert [str(p) for p in caught.value.problems] == [
        "MedicationAdministration/medadminexample03 subject: Patient/pat1 is neither in the file nor in Backline"]


def test_a_patient_moved_to_another_panel_or_given_a_new_mrn_is_refused_and_nothing_changes(fresh_db, rules,
                                                                                            tmp_path):
    """The store keys a patient by MRN and panel (the open queue is filed by panel): an import that would
    change either is refused, naming it, rather than half-applied."""
    qr = response("fhir-qr-1", "fhir-pt-1", "2026-11-20T09:00:00Z")
    import_fhir(fresh_db, rules, sample(tmp_path, PATIENT, BREAST, DOSE, qr), now=NOW, panel_map=PANEL_MAP)
    other = fresh_db.scalar("SELECT min(panel_id) FROM panels WHERE panel_id <> 'BRE-A'")
    moved = {**PATIENT, "managingOrganization": {"reference": "Organization/other-unit"},
             "identifier": [{**PATIENT["identifier"][0], "value": "MRN-F0002"}],
             "name": [{"family": "Okafor", "given": ["Ada"]}]}
    before = counts(fresh_db)
    with pytest.raises(ImportRefused) as caught:
        import_fhir(fresh_db, rules, sample(tmp_path, moved, name="moved.json"), now=NOW,
                    panel_map={**PANEL_MAP, "Organization/other-unit": other})
    assert [(p.path, p.problem.split(":")[0]) for p in caught.value.problems] == [
        ("identifier", "the MRN changes from MRN-F0001 to MRN-F0002"),
        ("generalPractitioner", f"the panel changes from BRE-A to {other}")]
    assert counts(fresh_db) == before
    assert fresh_db.rows("SELECT mrn, name FROM patients WHERE patient_id = 'fhir-pt-1'") == [("MRN-F0001",
                                                                                              "Adaeze Okafor")]


def test_a_course_by_brand_name_is_kept_from_its_start_to_its_end(fresh_db, rules, tmp_path):
    course = {**COURSE, "effectivePeriod": {"start": "2026-01-01", "end": "2026-10-01"}}
    import_fhir(fresh_db, rules, sample(tmp_path, PATIENT, BREAST, course), now=NOW, panel_map=PANEL_MAP)
    [(drug, given, stopped)] = fresh_db.rows("SELECT drug, given_at, stopped_at FROM administrations "
                                             "WHERE patient_id = 'fhir-pt-1'")
    assert drug == "anastrozole" and (given.date().isoformat(), stopped.date().isoformat()) == ("2026-01-01",
                                                                                                 "2026-10-01")


def test_a_problem_in_a_later_chunk_rolls_back_the_chunks_already_written(fresh_db, rules, tmp_path, monkeypatch):
    """Doses and responses are written a chunk at a time inside one transaction: a bad response after
    several chunks leaves nothing of the file, and a good file crosses chunks whole."""
    monkeypatch.setattr("dashboard.fhir_import.CHUNK", 3)
    folder = tmp_path / "export"
    folder.mkdir()
    doses = [{**DOSE, "id": f"dose-{i}", "effectiveDateTime": f"2026-11-{10 + i:02d}T10:00:00Z"} for i in range(7)]
    answers = [response(f"qr-{i}", "fhir-pt-1", f"2026-11-19T{8 + i:02d}:00:00Z") for i in range(5)]
    files = {"Patient": [PATIENT], "Condition": [BREAST], "MedicationAdministration": doses,
             "QuestionnaireResponse": answers + [altered(answers[0], "id", "qr-bad")
                                                 | {"authored": "2026-12-31T00:00:00Z"}]}
    for kind, items in files.items():
        (folder / f"{kind}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in items))
    before = counts(fresh_db)
    with pytest.raises(ImportRefused) as caught:
        import_fhir(fresh_db, rules, folder, now=NOW, panel_map=PANEL_MAP)
    assert [str(p) for p in caught.value.problems] == ["QuestionnaireResponse/qr-bad authored: is in the future"]
    assert counts(fresh_db) == before
    (folder / "QuestionnaireResponse.ndjson").write_text("".join(json.dumps(r) + "\n" for r in answers))
    result = import_fhir(fresh_db, rules, folder, now=NOW, panel_map=PANEL_MAP)
    assert result.counts["MedicationAdministration"]["new"] == 7 and len(result.reports) == 5
    assert sum(result.tiers.values()) == 5
    assert fresh_db.scalar("SELECT count(*) FROM administrations WHERE patient_id = 'fhir-pt-1'") == 7
