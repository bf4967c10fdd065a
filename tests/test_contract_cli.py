"""The triage command, exactly as the brief's contract says: shape, order, and every error."""

from __future__ import annotations

import json

import pytest

from dashboard.models import InputError
from dashboard.triage import triage_records
from tests.conftest import jsonl, make_case, run_cli

KEYS = ["report_id", "tier", "rule_ids", "leading_causes", "suspected_causes", "drug_effects", "recent_sact",
        "respond_within_minutes", "imaging", "referral", "advice", "unrecognised_drugs", "rules_version"]


def test_output_shape_and_order(tmp_path, rules):
    cases = [
        make_case({"pain_score": 5, "duration_days": 1}, meds=[("pegfilgrastim", "2026-11-18T10:00:00")], report_id="R-1"),
        make_case({"leg_weakness": True}, report_id="R-2"),
        make_case({"pain_score": 5}, report_id="R-3"),
        make_case({"pain_score": 5, "duration_days": 1}, meds=[("pegfilgrastim", "2026-11-18T10:00:00")], report_id="R-4"),
    ]
    path = tmp_path / "cases.jsonl"
    path.write_text(jsonl(*cases))
    proc = run_cli("triage", str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    lines = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    assert [x["report_id"] for x in lines] == ["R-1", "R-2", "R-3", "R-4"]
    for line in lines:
        assert list(line) == KEYS
        assert line["rules_version"] == rules.version
        assert all(isinstance(line[k], list) for k in ("rule_ids", "suspected_causes", "imaging", "referral",
                                                       "advice", "unrecognised_drugs"))
    assert lines[0] == {**lines[0], "tier": "routine", "rule_ids": ["R2"], "leading_causes": ["gcsf_bone_pain"],
                        "suspected_causes": ["gcsf_bone_pain"], "respond_within_minutes": 4320,
                        "unrecognised_drugs": [],
                        "drug_effects": [{"cause": "gcsf_bone_pain", "drug": "pegfilgrastim",
                                          "given_at": "2026-11-18T10:00:00", "status": "explained"}],
                        "recent_sact": {"recent": True, "because": [{"drug": "pegfilgrastim",
                                                                     "given_at": "2026-11-18T10:00:00",
                                                                     "counted_as": "gcsf"}]}}
    assert lines[1]["tier"] == "emergency" and lines[1]["respond_within_minutes"] == 15
    assert lines[2]["tier"] == "soon" and lines[2]["respond_within_minutes"] == 1440


def test_standard_input_and_blank_lines(rules):
    proc = run_cli("triage", "-", stdin="\n" + jsonl(make_case()) + "\n  \n")
    assert proc.returncode == 0
    assert [json.loads(x)["tier"] for x in proc.stdout.decode().splitlines()] == ["routine"]


def test_minimal_case_defaults(rules):
    minimal = {"report_id": "R-9", "patient": {"patient_id": "P", "cancer_type": "lung"},
               "report": {"reported_at": "2026-11-20T09:30:00", "pain_score": 2}}
    proc = run_cli("triage", "-", stdin=jsonl(minimal))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rule_ids"] == ["R1"]


def test_empty_input_is_success():
    proc = run_cli("triage", "-", stdin="")
    assert proc.returncode == 0 and proc.stdout == b""


def _bad(line_no: int, case_or_text) -> tuple[int, str]:
    return line_no, case_or_text if isinstance(case_or_text, str) else json.dumps(case_or_text)


def _with(path: list[str], value) -> dict:
    case = make_case()
    target = case
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return case


def _without(path: list[str]) -> dict:
    case = make_case()
    target = case
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return case


ERRORS = [
    ("pain 11", _with(["report", "pain_score"], 11), "report.pain_score"),
    ("pain -1", _with(["report", "pain_score"], -1), "report.pain_score"),
    ("pain 5.5", _with(["report", "pain_score"], 5.5), "report.pain_score"),
    ("pain text", _with(["report", "pain_score"], "5"), "report.pain_score"),
    ("pain true", _with(["report", "pain_score"], True), "report.pain_score"),
    ("temperature 100.4", _with(["report", "temperature_c"], 100.4), "report.temperature_c"),
    ("temperature 29.9", _with(["report", "temperature_c"], 29.9), "report.temperature_c"),
    ("misspelt red flag", _with(["report", "leg_weaknes"], True), "report.leg_weaknes"),
    ("unknown top key", _with(["priority"], "high"), "priority"),
    ("unknown patient key", _with(["patient", "bone_mets"], True), "patient.bone_mets"),
    ("unknown medication key", {**make_case(), "medications": [{"drug": "x", "given_at": "2026-11-01T10:00:00",
                                                                "dose": 1}]}, "medications[0].dose"),
    ("medication without a date", {**make_case(), "medications": [{"drug": "docetaxel"}]}, "medications[0].given_at"),
    ("medication date null", {**make_case(), "medications": [{"drug": "docetaxel", "given_at": None}]},
     "medications[0].given_at"),
    ("medication without a drug", {**make_case(), "medications": [{"given_at": "2026-11-01T10:00:00"}]},
     "medications[0].drug"),
    ("stopped before given", {**make_case(), "medications": [{"drug": "letrozole", "given_at": "2026-11-01T10:00:00",
                                                              "stopped_at": "2026-10-01T10:00:00"}]}, "medications[0]"),
    ("stop date on a dose", {**make_case(), "medications": [{"drug": "pegfilgrastim", "given_at": "2026-11-01T10:00:00",
                                                             "stopped_at": "2026-11-02T10:00:00"}]},
     "medications[0].stopped_at"),
    ("pain 5.0", _with(["report", "pain_score"], 5.0), "report.pain_score"),
    ("flag null", _with(["report", "leg_weakness"], None), "report.leg_weakness"),
    ("temperature as text", _with(["report", "temperature_c"], "37"), "report.temperature_c"),
    ("duration 36501", _with(["report", "duration_days"], 36501), "report.duration_days"),
    ("duration 2.0", _with(["report", "duration_days"], 2.0), "report.duration_days"),
    ("date only", _with(["report", "reported_at"], "2026-11-20"), "report.reported_at"),
    ("time skipped by the clocks", _with(["report", "reported_at"], "2026-03-29T01:30:00"), "report.reported_at"),
    ("dose date only", {**make_case(), "medications": [{"drug": "docetaxel", "given_at": "2026-11-01"}]},
     "medications[0].given_at"),
    ("bad pain pattern", _with(["report", "pain_pattern"], "worse"), "report.pain_pattern"),
    ("unknown cancer type", _with(["patient", "cancer_type"], "lungs"), "patient.cancer_type"),
    ("flag of v2 as text", _with(["report", "saddle_numbness"], "no"), "report.saddle_numbness"),
    ("low platelets null", _with(["patient", "low_platelets"], None), "patient.low_platelets"),
    ("flag as text", _with(["report", "leg_weakness"], "yes"), "report.leg_weakness"),
    ("bad onset", _with(["report", "onset"], "suddenly"), "report.onset"),
    ("bad location", _with(["report", "location"], "neck"), "report.location"),
    ("impossible date", _with(["report", "reported_at"], "2026-02-30T10:00:00"), "report.reported_at"),
    ("not a date", _with(["report", "reported_at"], "yesterday"), "report.reported_at"),
    ("bad dose date", {**make_case(), "medications": [{"drug": "x", "given_at": "2026-13-01T00:00:00"}]},
     "medications[0].given_at"),
    ("negative duration", _with(["report", "duration_days"], -2), "report.duration_days"),
    ("missing report_id", _without(["report_id"]), "report_id"),
    ("missing pain", _without(["report", "pain_score"]), "report.pain_score"),
    ("missing reported_at", _without(["report", "reported_at"]), "report.reported_at"),
    ("missing cancer type", _without(["patient", "cancer_type"]), "patient.cancer_type"),
    ("missing patient", _without(["patient"]), "patient"),
    ("empty report_id", _with(["report_id"], "  "), "report_id"),
    ("control characters", _with(["patient", "patient_id"], "P\u0000-1"), "patient.patient_id"),
    ("bidi override", _with(["patient", "cancer_type"], "breast\u202e"), "patient.cancer_type"),
    ("very long id", _with(["report_id"], "R" * 10_000), "report_id"),
    ("medications not a list", _with(["medications"], {"drug": "x"}), "medications"),
]


@pytest.mark.parametrize("name, case, field", ERRORS, ids=[e[0] for e in ERRORS])
def test_each_malformed_case_is_refused_naming_line_and_field(rules, name, case, field):
    """Through the one validation the command, the forms and imports share: nothing is triaged."""
    with pytest.raises(InputError) as caught:
        triage_records(rules, [make_case(report_id="R-0"), case, make_case(report_id="R-2")])
    fields = [f for f, _ in caught.value.problems]
    assert any(f == f"line 2: {field}" or f.startswith(f"line 2: {field}") for f in fields), caught.value.problems
    assert not any(f.startswith(("line 1", "line 3")) for f in fields)


def test_the_command_names_each_bad_line_once_and_writes_nothing():
    good = make_case()
    two_problems = _with(["report", "pain_score"], 5.0)
    two_problems["report"]["rigors"] = None
    cases = [good, two_problems, _with(["patient", "cancer_type"], "lungs"), _with(["report_id"], "R-1")]
    proc = run_cli("triage", "-", stdin=jsonl(*cases))
    assert proc.returncode == 2 and proc.stdout == b""
    lines = proc.stderr.decode().splitlines()
    assert [x.split(":")[0] for x in lines] == ["line 2", "line 3", "line 4"]
    assert "report.pain_score" in lines[0] and "report.rigors" in lines[0]
    assert "patient.cancer_type" in lines[1] and "'lungs'" in lines[1]
    assert "report_id" in lines[2] and "already used on line 1" in lines[2]


def test_version_1_lines_stay_valid_and_take_the_new_defaults(rules):
    v1 = {"report_id": "R-1", "patient": {"patient_id": "P-1", "cancer_type": "breast", "bone_metastases": True},
          "medications": [{"drug": "pegfilgrastim", "given_at": "2026-11-18T10:00:00"}],
          "report": {"reported_at": "2026-11-20T09:30:00", "pain_score": 5, "duration_days": 2}}
    [out] = triage_records(rules, [v1])
    # pain_pattern defaults to null: read as new pain in known bone disease (U3).
    assert out["tier"] == "urgent" and out["rule_ids"] == ["U3"]


@pytest.mark.parametrize("given, code", [("Multiple myeloma", "myeloma"), ("  BREAST ", "breast"),
                                         ("head-and-neck", "head_and_neck"), ("upper_gi", "upper_gi")])
def test_cancer_types_are_codes_or_their_synonyms(rules, given, code):
    assert rules.resolve_cancer_type(given) == code
    triage_records(rules, [make_case(patient={"cancer_type": given})])


def test_an_ambiguous_local_time_is_the_first_of_the_two(rules):
    """01:30 on 25 Oct 2026 happens twice in London; the first (BST, 00:30 UTC) is meant. A dose at
    01:45 BST is then after the report and ignored."""
    case = make_case({"reported_at": "2026-10-25T01:30:00", "temperature_c": 37.8},
                     meds=[("docetaxel", "2026-10-25T00:45:00Z")])
    [out] = triage_records(rules, [case])
    assert "E2" not in out["rule_ids"]


@pytest.mark.parametrize("name", ["pegfilgrastim", "PEGFILGRASTIM", " pegfilgrastim ", "peg-filgrastim",
                                  "peg_filgrastim", "pegfilgrastim-jmdb", "Neulasta"])
def test_drug_names_ignore_case_spaces_hyphens_and_biosimilar_suffixes(rules, name):
    [out] = triage_records(rules, [make_case({"pain_score": 5, "duration_days": 1},
                                             meds=[(name, "2026-11-18T10:00:00")])])
    assert out["unrecognised_drugs"] == [] and out["rule_ids"] == ["R2"]


@pytest.mark.parametrize("name", ["pegfilgrastim held", "pegfilgrastm", "pegfilgrastim-jmdbx"])
def test_nothing_else_is_fuzzy(rules, name):
    [out] = triage_records(rules, [make_case(meds=[(name, "2026-11-18T10:00:00")])])
    assert out["unrecognised_drugs"] == [name]


BRIEF_DRUGS = """pomalidomide olaparib niraparib osimertinib sacituzumab_govitecan teclistamab elranatamab ipilimumab
topotecan ifosfamide methotrexate bendamustine cytarabine docetaxel cabazitaxel trastuzumab_deruxtecan ribociclib
abemaciclib palbociclib capecitabine goserelin leuprorelin triptorelin buserelin degarelix relugolix apixaban
rivaroxaban edoxaban dabigatran warfarin enoxaparin dalteparin tinzaparin paracetamol ibuprofen naproxen codeine
morphine oxycodone ondansetron metoclopramide pegfilgrastim lipegfilgrastim filgrastim tbo-filgrastim paclitaxel
nab-paclitaxel trastuzumab pertuzumab letrozole anastrozole exemestane eribulin bortezomib thalidomide
lenalidomide tamoxifen enzalutamide abiraterone fulvestrant denosumab zoledronic_acid dexamethasone""".split()
NOT_SACT = {"paracetamol", "ibuprofen", "naproxen", "codeine", "morphine", "oxycodone", "ondansetron", "metoclopramide"}


@pytest.mark.parametrize("name", [n.replace("_", " ") for n in BRIEF_DRUGS if n != "platinum_free"])
def test_every_drug_the_brief_names_is_recognised(rules, name):
    info = rules.resolve_drug(name)
    assert info is not None, name
    if name in NOT_SACT:
        assert not info.sact


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"report_id": "R-1", "report_id": "R-2"}', "report_id: appears twice"),
        ('{"x": NaN}', "NaN"),
        ("42", "JSON object"),
    ],
)
def test_lines_that_are_not_objects(text, fragment):
    proc = run_cli("triage", "-", stdin=jsonl(make_case()) + text + "\n")
    assert proc.returncode == 2 and proc.stdout == b""
    assert "line 2:" in proc.stderr.decode() and fragment in proc.stderr.decode()


def test_every_bad_line_gets_a_message():
    bad = json.dumps(_with(["report", "pain_score"], 12))
    proc = run_cli("triage", "-", stdin=bad + "\n" + jsonl(make_case()) + bad + "\n")
    assert proc.returncode == 2 and proc.stdout == b""
    lines = proc.stderr.decode().splitlines()
    assert [x.split(":")[0] for x in lines] == ["line 1", "line 3"]


def test_non_utf8_line():
    proc = run_cli("triage", "-", stdin=jsonl(make_case()).encode() + b'{"report_id": "\xff"}\n')
    assert proc.returncode == 2 and proc.stdout == b"" and b"line 2: not UTF-8" in proc.stderr


def test_missing_file():
    proc = run_cli("triage", "/nonexistent/cases.jsonl")
    assert proc.returncode == 2 and proc.stdout == b"" and b"cannot read" in proc.stderr


def test_timezone_aware_times_are_converted(rules):
    """09:30Z is 09:30 in London in November; +05:00 is 04:30, before the dose on the 20th."""
    a = make_case({"pain_score": 5, "duration_days": 0, "reported_at": "2026-11-20T09:30:00Z"},
                  meds=[("Neulasta", "2026-11-20T06:00:00")], report_id="R-a")
    b = make_case({"pain_score": 5, "duration_days": 0, "reported_at": "2026-11-20T09:30:00+05:00"},
                  meds=[("Neulasta", "2026-11-20T06:00:00")], report_id="R-b")
    out = triage_records(rules, [a, b])
    assert [o["rule_ids"] for o in out] == [["R2"], ["S1"]]


def test_python_m_and_console_script_agree(rules):
    import shutil
    import subprocess

    exe = shutil.which("backline") or str((__import__("sys").prefix)) + "/bin/backline"
    case = jsonl(make_case({"pain_score": 8}))
    a = run_cli("triage", "-", stdin=case)
    b = subprocess.run([exe, "triage", "-"], input=case.encode(), capture_output=True)
    assert a.stdout == b.stdout and a.returncode == b.returncode == 0
