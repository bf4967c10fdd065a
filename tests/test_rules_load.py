"""The rules fail closed: a mistake in any file stops loading with a message naming file and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dashboard.rules import RULE_FILES, RulesError, load_rules
from tests.conftest import ROOT, jsonl, make_case, run_cli


@pytest.fixture
def rules_copy(tmp_path) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", folder)
    return folder


def edit(folder: Path, name: str, old: str, new: str) -> None:
    path = folder / name
    text = path.read_text()
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1))


def test_the_rules_in_force_load(rules):
    assert [r.id for r in rules.rules] == ["E1", "E2", "E3", "E4", "U1", "U2", "U3", "U4", "U5", "U6", "U7",
                                           "S1", "S2", "S3", "R1", "R2"]
    assert rules.tier_ids == ["emergency", "urgent", "soon", "routine"]
    assert [rules.respond_within_minutes(t) for t in rules.tier_ids] == [15, 120, 1440, 4320]
    assert set(rules.cause_codes) == {
        "mscc", "neutropenic_sepsis", "spinal_infection", "spinal_haematoma", "spinal_metastasis",
        "pathological_fracture", "fragility_fracture", "tumour_flare", "hypercalcaemia", "cipn", "ai_arthralgia",
        "gcsf_bone_pain", "taxane_acute_pain", "anti_her2_infusion"}
    for r in rules.rules:
        assert r.rationale.strip() and r.source and r.condition.strip()
    # Both neutropenic-sepsis thresholds are kept; UKONS is the default.
    p = rules.parameters["neutropenic_fever_c"]
    assert p.value == 37.5 and [a.value for a in p.alternatives] == [38.0]
    # Every tier has default guidance for reports whose leading rule names no cause.
    assert set(rules.guidance.tier_defaults) == set(rules.tier_ids)
    # The cancer types of the contract, with synonyms.
    assert rules.resolve_cancer_type("Multiple Myeloma") == "myeloma"
    assert {"breast", "lung", "prostate", "colorectal", "myeloma", "lymphoma", "other"} <= set(rules.cancer_types)


def test_version_is_a_hash_of_the_files(rules_copy, rules):
    assert load_rules(rules_copy).version == rules.version
    edit(rules_copy, "tiers.yaml", "Act now", "Act now!")
    assert load_rules(rules_copy).version != rules.version
    before = load_rules(rules_copy).version
    edit(rules_copy, "cancer_types.yaml", "melanoma: {label: Melanoma", "melanoma: {label: Skin melanoma")
    assert load_rules(rules_copy).version != before


# Rule indices in triage_rules.yaml: E1 0, E2 1, E3 2, E4 3, U1 4, U2 5, U3 6, U4 7, U5 8, U6 9, U7 10,
# S1 11, S2 12, S3 13, R1 14, R2 15.
U2_HEAD = "  - id: U2\n    tier: urgent\n"
MISTAKES = [
    ("triage_rules.yaml", "any: [leg_weakness,", "any: [leg_weaknes,", "rules[0].when.any[0]", "leg_weaknes"),
    ("triage_rules.yaml", "any: [leg_weakness, difficulty_walking, leg_numbness, saddle_numbness,",
     "any: [leg_weakness, difficulty_walking, leg_numbness, sadle_numbness,", "rules[0].when.any[3]", "sadle_numbness"),
    ("triage_rules.yaml", "value: [thoracic, cervical]", "value: [thorasic, cervical]", "rules[4].when.any[0].value",
     "thorasic"),
    ("triage_rules.yaml", "value: [new, changed]", "value: [new, altered]", "rules[6].when.all[2].any[0].value",
     "altered"),
    ("triage_rules.yaml", "{unknown: pain_pattern}", "{unknown: pain_patern}", "rules[6].when.all[2].any[1]",
     "pain_patern"),
    ("triage_rules.yaml", U2_HEAD + "    title: Severe or uncontrolled pain\n    condition: Pain score 7 or more, or "
     "pain not controlled by regular analgesia.\n    when:\n      any:\n        - {field: pain_score, op: \">=\"",
     U2_HEAD + "    title: Severe or uncontrolled pain\n    condition: Pain score 7 or more, or "
     "pain not controlled by regular analgesia.\n    when:\n      any:\n        - {field: pain_score, op: \"=>\"",
     "rules[5].when.any[0].op", ""),
    ("triage_rules.yaml", "        - {field: pain_score, op: \">=\", value: $severe_pain_score}\n        - "
     "uncontrolled_by_analgesia", "        - {field: pain_score, op: \">=\", value: $severe_pain}\n        - "
     "uncontrolled_by_analgesia", "rules[5].when.any[0].value", "$severe_pain"),
    ("triage_rules.yaml", U2_HEAD, "  - id: U2\n    tier: urgnet\n", "rules[5].tier", "urgnet"),
    ("triage_rules.yaml", U2_HEAD, "  - id: U1\n    tier: urgent\n", "rules[5].id", "duplicate"),
    ("triage_rules.yaml", "    cause: mscc", "    cause: cord_compression", "rules[0].cause", "cord_compression"),
    ("triage_rules.yaml", "    cause: hypercalcaemia", "    cause: hypercalcemia", "rules[10].cause", "hypercalcemia"),
    ("triage_rules.yaml", "    source: [nice_ng234, seeds]", "    source: [nice_ng234, nice_cg75]", "rules[0].source[1]",
     "nice_cg75"),
    ("triage_rules.yaml", "    rationale: >-\n      Neurological", "    rationales: >-\n      Neurological",
     "rules[0]", ""),
    ("triage_rules.yaml", "{rules_fired: [U1, U2, U3, U4], at_least: 1}",
     "{rules_fired: [U1, U2, U3, U9], at_least: 1}", "rules[2].when.all[1].rules_fired[3]", "U9"),
    ("triage_rules.yaml", "{rules_fired: [U1, U2, U3, U4], at_least: 1}",
     "{rules_fired: [U1, U2, E3], at_least: 1}", "rules[2].when", "reads itself"),
    ("triage_rules.yaml", "    value: 42\n", "    value: forty-two\n", "parameters.sact_lookback_days.value", ""),
    ("triage_rules.yaml", "    days_before_report: {min: 0, max: $sact_lookback_days}",
     "    days_before_report: {min: 0, max: $neutropenic_fever_c}", "facts.recent_sact.days_before_report.max",
     "whole number"),
    ("triage_rules.yaml", "    exposure: first\n", "    exposure: earliest\n",
     "facts.lhrh_agonist_started_recently.exposure", "'first'"),
    ("triage_rules.yaml", "    of: [{drug_class: anticoagulant}]", "    of: [{drug_class: anticoagulants}]",
     "facts.anticoagulated.of[0].drug_class", "anticoagulants"),
    ("triage_rules.yaml", "  - id: E1\n", "  - id: E1\n  - id: E1\n", "rules[0]", ""),
    ("drugs.yaml", "{name: docetaxel, class: cytotoxic,", "{name: docetaxel, class: cytotoxicc,",
     "drugs[6].class", "cytotoxicc"),
    ("drugs.yaml", "synonyms: [Taxotere, Docefrez]", "synonyms: [Taxotere, Taxol]", "drugs[6].synonyms[1]", "Taxol"),
    ("drugs.yaml", "{name: letrozole, class: aromatase_inhibitor, continuous: true,",
     "{name: letrozole, class: aromatase_inhibitor, continuous: yes please,", "drugs[", "continuous"),
    ("drugs.yaml", "    onset_window: {start_day: 0, end_day: 4}", "    onset_window: {start_day: 4, end_day: 0}",
     "effects[0].onset_window", "before start_day"),
    ("drugs.yaml", "    lasts_at_most_days: 7\n    back_pain: true\n    lowers_moderate_pain: true\n    note: Bone pain",
     "    lasts_at_most_days: -7\n    back_pain: true\n    lowers_moderate_pain: true\n    note: Bone pain",
     "effects[0].lasts_at_most_days", ""),
    ("drugs.yaml", "    back_pain: true\n    lowers_moderate_pain: false\n    note: Intravenous",
     "    back_pain: true\n    lowers_moderate_pain: maybe\n    note: Intravenous",
     "effects[3].lowers_moderate_pain", ""),
    ("drugs.yaml", "{name: vincristine, class: cytotoxic, neurotoxic: true,", "{name: vincristine, class: cytotoxic,",
     "effects (cipn).drugs", "vincristine"),
    ("guidance.yaml", "  taxane_acute_pain:\n    label:", "  taxane_pain:\n    label:", "effects[2].cause",
     "taxane_acute_pain"),
    ("guidance.yaml", "{topic: spine_mri, within_hours: 24, text: \"Whole-spine MRI as soon",
     "{topic: spine_mri, within_hours: soon, text: \"Whole-spine MRI as soon",
     "causes.mscc.imaging[0].within_hours", ""),
    ("guidance.yaml", "{topic: spine_mri, within_hours: 24, text: \"Whole-spine MRI as soon",
     "{topic: Spine MRI, within_hours: 24, text: \"Whole-spine MRI as soon", "causes.mscc.imaging[0].topic", ""),
    ("guidance.yaml", "only_for_rules: [E3], text: \"MRI spine", "only_for_rules: [E9], text: \"MRI spine",
     "causes.spinal_infection.imaging[0].only_for_rules[0]", "E9"),
    ("guidance.yaml", "  soon:\n    imaging:", "  later:\n    imaging:", "tier_defaults", ""),
    # Advice read to the patient has a topic; staff notes are a list of their own, with known sources.
    ("guidance.yaml", "      - {topic: transport, text: \"Do not drive yourself: come in by ambulance.\"}",
     "      - \"Do not drive yourself: come in by ambulance.\"", "causes.mscc.advice[0]", ""),
    ("guidance.yaml", "    staff_notes:\n      - text:", "    staff_note:\n      - text:",
     "causes.gcsf_bone_pain.staff_note", "unknown field"),
    ("guidance.yaml", "    staff_notes:\n      - text: \"An antihistamine", "    staff_notes:\n      - kind: staff\n"
     "        text: \"An antihistamine", "causes.gcsf_bone_pain.staff_notes[0].kind", "unknown field"),
    ("guidance.yaml", "      - text: \"An antihistamine (loratadine) is used by some services for G-CSF bone pain.\"",
     "      - {text: \"An antihistamine (loratadine) is used by some services.\", source: [loratadine_trial]}",
     "causes.gcsf_bone_pain.staff_notes[0].source[0]", "loratadine_trial"),
    ("guidance.yaml", "{topic: pain_relief, text: \"Simple pain relief", "{topic: activity, text: \"Simple pain relief",
     "tier_defaults.routine.analgesic_advice[0].topic", "already advised"),
    ("guidance.yaml", "  within_24_hours: >-", "  within_a_day: >-", "safety_net", ""),
    ("tiers.yaml", "respond_within_minutes: 15", "respond_within_minutes: 600", "tiers", "longer"),
    # The names the code reads are checked at load: a rule set the code cannot run never starts.
    ("tiers.yaml", "  - id: soon\n", "  - id: later\n", "tiers[2].id", "unknown tier 'later'"),
    ("tiers.yaml", "  - id: urgent\n", "  - id: routine\n", "tiers[", "routine"),
    ("tiers.yaml", "respond_within_minutes: 120", "respond_within_minutes: two hours", "tiers[1].respond_within_minutes", ""),
    ("sources.yaml", "  nice_cg151:\n", "  nice_cg151:\n  nice_cg151:\n", "line", "duplicate key"),
    ("cancer_types.yaml", "  myeloma: {label: Multiple myeloma, synonyms: [multiple myeloma,",
     "  myeloma: {label: Multiple myeloma, synonyms: [lymphoma,", "cancer_types.lymphoma.name",
     "already names 'myeloma'"),
    ("cancer_types.yaml", "  upper_gi: {label:", "  Upper-GI: {label:", "cancer_types.Upper-GI", "lower_snake_case"),
    ("cancer_types.yaml", "  sarcoma: {label: Sarcoma, synonyms: []}", "  sarcoma: {labels: Sarcoma, synonyms: []}",
     "cancer_types.sarcoma", ""),
    ("cancer_types.yaml", "cancer_types:\n", "cancer_type:\n", "cancer_type", ""),
]


@pytest.mark.parametrize("file, old, new, field, word", MISTAKES, ids=[f"{m[0]}:{m[3]}" for m in MISTAKES])
def test_a_mistake_stops_loading_naming_file_and_field(rules_copy, file, old, new, field, word):
    edit(rules_copy, file, old, new)
    with pytest.raises(RulesError) as info:
        load_rules(rules_copy)
    err = info.value
    assert err.file in RULE_FILES
    assert field in f"{err.file}: {err.field}", str(err)
    assert word in str(err)


def test_a_parameter_the_code_reads_is_required_even_when_no_rule_reads_it(rules_copy):
    edit(rules_copy, "triage_rules.yaml", "value: $neutropenic_low_temperature_c}", "value: 36.0}")
    edit(rules_copy, "triage_rules.yaml", "  neutropenic_low_temperature_c:\n", "  low_temperature_for_sepsis_c:\n")
    with pytest.raises(RulesError) as info:
        load_rules(rules_copy)
    assert (info.value.file, info.value.field) == ("triage_rules.yaml", "parameters")
    assert "'neutropenic_low_temperature_c' is required" in str(info.value)


def test_rules_that_read_each_other_stop_loading(rules_copy):
    edit(rules_copy, "triage_rules.yaml", "{rules_fired: [U1, U2, U3, U4], at_least: 1}",
         "{rules_fired: [U1, U2], at_least: 1}")
    edit(rules_copy, "triage_rules.yaml", "    when:\n      any: [leg_weakness,",
         "    when:\n      any: [{rules_fired: [E3], at_least: 1}, leg_weakness,")
    edit(rules_copy, "triage_rules.yaml", "  - id: U2\n    tier: urgent\n    title: Severe or uncontrolled pain\n"
         "    condition: Pain score 7 or more, or pain not controlled by regular analgesia.\n    when:\n      any:\n",
         "  - id: U2\n    tier: urgent\n    title: Severe or uncontrolled pain\n"
         "    condition: Pain score 7 or more, or pain not controlled by regular analgesia.\n    when:\n      any:\n"
         "        - {rules_fired: [E1], at_least: 1}\n")
    with pytest.raises(RulesError, match="depend on each other"):
        load_rules(rules_copy)


def test_a_missing_file_stops_loading(rules_copy):
    (rules_copy / "drugs.yaml").unlink()
    with pytest.raises(RulesError, match="drugs.yaml: file is missing"):
        load_rules(rules_copy)


def test_a_stray_rules_file_stops_loading(rules_copy):
    (rules_copy / "extra_rules.yaml").write_text("rules: []\n")
    with pytest.raises(RulesError, match="extra_rules.yaml"):
        load_rules(rules_copy)


def test_invalid_yaml_names_the_line(rules_copy):
    (rules_copy / "tiers.yaml").write_text("tiers:\n  - id: [unclosed\n")
    with pytest.raises(RulesError, match=r"tiers.yaml: line \d+"):
        load_rules(rules_copy)


def test_the_command_refuses_to_run_on_bad_rules(rules_copy):
    edit(rules_copy, "triage_rules.yaml", "any: [leg_weakness,", "any: [leg_weaknes,")
    proc = run_cli("--rules", str(rules_copy), "triage", "-", stdin=jsonl(make_case()))
    assert proc.returncode == 3 and proc.stdout == b""
    assert b"triage_rules.yaml: rules[0].when.any[0]" in proc.stderr


def test_changing_a_threshold_in_rules_changes_triage(rules_copy):
    """Thresholds are data: a service raising the fever threshold to NICE CG151's 38.0 needs no code."""
    from tests.conftest import triage

    edit(rules_copy, "triage_rules.yaml", "  neutropenic_fever_c:\n    value: 37.5", "  neutropenic_fever_c:\n    value: 38.0")
    custom = load_rules(rules_copy)
    case = make_case({"temperature_c": 37.7}, meds=[("docetaxel", "2026-11-15T10:00:00")])
    assert triage(custom, case).tier == "routine"
    assert triage(load_rules(ROOT / "rules"), case).tier == "emergency"
