"""The triage command, exactly as the brief's contract says: shape, order, and every error."""

from __future__ import annotations

import json

import pytest

from tests.conftest import jsonl, make_case, run_cli

KEYS = ["report_id", "tier", "rule_ids", "suspected_causes", "respond_within_minutes", "imaging", "referral",
        "advice", "unrecognised_drugs", "rules_version"]


def test_output_shape_and_order(tmp_path, rules):
    cases = [
        make_case({"pain_score": 5}, meds=[("pegfilgrastim", "2026-11-18T10:00:00")], report_id="R-1"),
        make_case({"leg_weakness": True}, report_id="R-2"),
        make_case({"pain_score": 5}, report_id="R-3"),
        make_case({"pain_score": 5}, meds=[("pegfilgrastim", "2026-11-18T10:00:00")], report_id="R-1"),
    ]
    path = tmp_path / "cases.jsonl"
    path.write_text(jsonl(*cases))
    proc = run_cli("triage", str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    lines = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    assert [x["report_id"] for x in lines] == ["R-1", "R-2", "R-3", "R-1"]
    for line in lines:
        assert list(line) == KEYS
        assert line["rules_version"] == rules.version
        assert all(isinstance(line[k], list) for k in ("rule_ids", "suspected_causes", "imaging", "referral",
                                                       "advice", "unrecognised_drugs"))
    assert lines[0] == {**lines[0], "tier": "routine", "rule_ids": ["R2"], "suspected_causes": ["gcsf_bone_pain"],
                        "respond_within_minutes": 4320, "unrecognised_drugs": []}
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
    ("unknown medication key", {**make_case(), "medications": [{"drug": "x", "given_at": None, "dose": 1}]},
     "medications[0].dose"),
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
def test_each_malformed_case_is_refused_naming_line_and_field(name, case, field):
    good = make_case()
    proc = run_cli("triage", "-", stdin=jsonl(good) + json.dumps(case) + "\n" + jsonl(good))
    assert proc.returncode == 2
    assert proc.stdout == b""
    err = proc.stderr.decode()
    assert f"line 2: {field}:" in err, err
    assert "line 1" not in err and "line 3" not in err


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
    a = make_case({"pain_score": 5, "reported_at": "2026-11-20T09:30:00Z"}, meds=[("Neulasta", "2026-11-20T06:00:00")])
    b = make_case({"pain_score": 5, "reported_at": "2026-11-20T09:30:00+05:00"}, meds=[("Neulasta", "2026-11-20T06:00:00")])
    proc = run_cli("triage", "-", stdin=jsonl(a, b))
    out = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    assert [o["rule_ids"] for o in out] == [["R2"], ["S1"]]


def test_python_m_and_console_script_agree(rules):
    import shutil
    import subprocess

    exe = shutil.which("backline") or str((__import__("sys").prefix)) + "/bin/backline"
    case = jsonl(make_case({"pain_score": 8}))
    a = run_cli("triage", "-", stdin=case)
    b = subprocess.run([exe, "triage", "-"], input=case.encode(), capture_output=True)
    assert a.stdout == b.stdout and a.returncode == b.returncode == 0
