"""Every rule of the version 2 brief at each boundary, on both sides, through the one triage function
that the command, the forms and re-triage use. The report is on 20 Nov 2026 at 09:30 (Europe/London);
every count of days is a difference of calendar dates."""

from __future__ import annotations

import pytest

from dashboard.triage import triage_records
from tests.conftest import make_case, triage

REPORT_DAY = "2026-11-20"


def at(day: str, time: str = "10:00") -> str:
    return f"{day}T{time}:00"


def fired(rules, report=None, **kw) -> list[str]:
    return triage(rules, make_case(report, **kw)).rule_ids


# --------------------------------------------------------------------------- E1


@pytest.mark.parametrize("flag", ["leg_weakness", "difficulty_walking", "leg_numbness", "saddle_numbness",
                                  "bladder_or_bowel_change", "radiating_pain"])
def test_e1_each_neurological_flag_is_an_emergency(rules, flag):
    out = triage(rules, make_case({flag: True, "pain_score": 0}))
    assert (out.tier, out.rule_ids[0], out.leading_causes) == ("emergency", "E1", ["mscc"])


def test_e1_not_from_glove_and_stocking_tingling(rules):
    assert "E1" not in fired(rules, {"hand_foot_tingling": True})


# --------------------------------------------------------------------------- E2 and recent SACT

SACT = ("docetaxel", at("2026-11-10"))


@pytest.mark.parametrize("temperature, fires", [(37.4, False), (37.5, True), (36.1, False), (36.0, True)])
def test_e2_temperature_thresholds_with_recent_sact(rules, temperature, fires):
    out = triage(rules, make_case({"temperature_c": temperature}, meds=[SACT]))
    assert ("E2" in out.rule_ids) is fires and (out.tier == "emergency") is fires


@pytest.mark.parametrize("flag", ["rigors", "feels_unwell"])
def test_e2_rigors_or_feeling_unwell_with_recent_sact(rules, flag):
    assert "E2" in fired(rules, {flag: True}, meds=[SACT])


@pytest.mark.parametrize("given_at, recent", [
    (at("2026-10-09", "23:59"), True),   # 42 calendar days before, late in the evening
    (at("2026-10-08", "00:01"), False),  # 43 days
    (at(REPORT_DAY, "09:30"), True),     # the same minute as the report
    (at(REPORT_DAY, "09:31"), False),    # later the same day: ignored
])
def test_e2_sact_dose_in_the_42_days_up_to_the_report(rules, given_at, recent):
    out = triage(rules, make_case({"temperature_c": 37.6}, meds=[("carboplatin", given_at)]))
    assert ("E2" in out.rule_ids) is recent
    assert out.recent_sact["recent"] is recent


@pytest.mark.parametrize("stopped_at, recent", [(at("2026-10-09"), True), (at("2026-10-08"), False), (None, True)])
def test_e2_an_oral_course_counts_until_42_days_after_it_stopped(rules, stopped_at, recent):
    course = ("capecitabine", at("2026-01-05"), stopped_at) if stopped_at else ("capecitabine", at("2026-01-05"))
    out = triage(rules, make_case({"temperature_c": 37.6}, meds=[course]))
    assert ("E2" in out.rule_ids) is recent
    if recent:
        assert out.recent_sact["because"] == [{"drug": "capecitabine", "given_at": "2026-01-05T10:00:00",
                                                "counted_as": "sact"}]


@pytest.mark.parametrize("drug, counted_as", [("pegfilgrastim", "gcsf"), ("filgrastim", "gcsf"),
                                                ("AZD-9833 (trial)", "unrecognised")])
def test_e2_a_gcsf_dose_or_an_unrecognised_drug_makes_sact_recent(rules, drug, counted_as):
    out = triage(rules, make_case({"temperature_c": 37.6}, meds=[(drug, at("2026-11-01"))]))
    assert out.tier == "emergency" and "E2" in out.rule_ids
    assert out.recent_sact == {"recent": True, "because": [{"drug": drug, "given_at": "2026-11-01T10:00:00",
                                                            "counted_as": counted_as}]}


@pytest.mark.parametrize("drug", ["letrozole", "tamoxifen", "zoledronic acid", "denosumab", "dexamethasone",
                                  "apixaban", "paracetamol", "morphine", "ondansetron", "goserelin"])
def test_e2_hormone_bone_steroid_anticoagulant_and_analgesic_drugs_are_not_sact(rules, drug):
    out = triage(rules, make_case({"temperature_c": 37.8}, meds=[(drug, at("2026-11-15"))]))
    assert "E2" not in out.rule_ids and not out.recent_sact["recent"]


@pytest.mark.parametrize("drug", ["trastuzumab", "pembrolizumab", "palbociclib", "Herceptin", "KEYTRUDA",
                                  "teclistamab", "olaparib", "sacituzumab govitecan"])
def test_e2_targeted_anti_her2_immunotherapy_and_bispecifics_are_sact(rules, drug):
    assert "E2" in fired(rules, {"temperature_c": 37.8}, meds=[(drug, at("2026-11-15"))])


# --------------------------------------------------------------------------- E3 and U5


@pytest.mark.parametrize("report, fires", [
    ({"temperature_c": 38.0, "worse_at_night": True}, True),
    ({"temperature_c": 37.9, "worse_at_night": True}, False),
    ({"rigors": True, "location": "thoracic"}, True),
    ({"temperature_c": 38.2, "pain_score": 7}, True),            # with U2
    ({"temperature_c": 38.2}, False),                            # fever alone: U5
    ({"worse_at_night": True, "trend": "worsening", "pain_score": 8}, False),  # features without fever
])
def test_e3_fever_with_a_spinal_pain_feature(rules, report, fires):
    out = triage(rules, make_case(report))
    assert ("E3" in out.rule_ids) is fires
    if fires:
        assert out.tier == "emergency" and "spinal_infection" in out.leading_causes
    else:
        assert out.tier != "emergency"


def test_e3_fires_whether_or_not_sact_is_recent(rules):
    out = triage(rules, make_case({"temperature_c": 38.3, "localised_tenderness": True}, meds=[SACT]))
    assert {"E2", "E3"} <= set(out.rule_ids)


@pytest.mark.parametrize("report, fires", [({"temperature_c": 38.0}, True), ({"temperature_c": 37.9}, False),
                                           ({"temperature_c": 36.0}, True), ({"temperature_c": 36.1}, False),
                                           ({"rigors": True}, True)])
def test_u5_fever_or_low_temperature_without_recent_sact(rules, report, fires):
    out = triage(rules, make_case(report))
    assert ("U5" in out.rule_ids) is fires
    assert "U5" not in fired(rules, report, meds=[SACT])  # with recent SACT it is E2's


# --------------------------------------------------------------------------- E4

SUDDEN_SEVERE = {"onset": "sudden", "pain_score": 7}


@pytest.mark.parametrize("report, meds, patient, fires", [
    (SUDDEN_SEVERE, [("apixaban", at("2025-06-01"))], None, True),                          # running
    (SUDDEN_SEVERE, [("rivaroxaban", at("2025-06-01"), at("2026-11-13"))], None, True),     # stopped 7 days before
    (SUDDEN_SEVERE, [("rivaroxaban", at("2025-06-01"), at("2026-11-12"))], None, False),    # 8 days
    (SUDDEN_SEVERE, [("enoxaparin", at("2026-11-01"))], None, True),
    (SUDDEN_SEVERE, [], {"low_platelets": True}, True),
    ({"onset": "sudden", "pain_score": 6}, [("apixaban", at("2025-06-01"))], None, False),
    ({"onset": "gradual", "pain_score": 9}, [("apixaban", at("2025-06-01"))], None, False),
    ({"onset": None, "pain_score": 9}, [], {"low_platelets": True}, False),
    (SUDDEN_SEVERE, [("apixaban", at(REPORT_DAY, "11:00"))], None, False),                  # started after the report
])
def test_e4_sudden_severe_pain_on_an_anticoagulant_or_low_platelets(rules, report, meds, patient, fires):
    out = triage(rules, make_case(report, meds=meds, patient=patient))
    assert ("E4" in out.rule_ids) is fires
    assert ("spinal_haematoma" in out.leading_causes) is fires


# --------------------------------------------------------------------------- U1, U2


@pytest.mark.parametrize("report", [{"location": "thoracic"}, {"location": "cervical"}, {"trend": "worsening"},
                                    {"worse_at_night": True}, {"worse_on_straining": True},
                                    {"worse_on_movement": True}, {"localised_tenderness": True}])
def test_u1_each_feature_of_spinal_metastasis(rules, report):
    out = triage(rules, make_case({**report, "pain_score": 1}))
    assert (out.rule_ids, out.tier, out.leading_causes) == (["U1"], "urgent", ["spinal_metastasis"])


@pytest.mark.parametrize("report", [{"location": "lumbar"}, {"location": "sacral"}, {"trend": "improving"},
                                    {"location": None, "trend": None}])
def test_u1_not_from_lumbar_sacral_improving_or_unknown(rules, report):
    assert "U1" not in fired(rules, report)


@pytest.mark.parametrize("report, fires", [({"pain_score": 7}, True), ({"pain_score": 6}, False),
                                           ({"pain_score": 2, "uncontrolled_by_analgesia": True}, True)])
def test_u2_severe_or_uncontrolled_pain(rules, report, fires):
    assert ("U2" in fired(rules, report)) is fires


# --------------------------------------------------------------------------- U3


@pytest.mark.parametrize("pattern, fires", [("new", True), ("changed", True), (None, True), ("usual", False)])
@pytest.mark.parametrize("patient", [{"bone_metastases": True}, {"cancer_type": "myeloma"},
                                     {"cancer_type": "Multiple Myeloma"}])
def test_u3_new_changed_or_unknown_pain_in_known_bone_disease(rules, pattern, fires, patient):
    out = triage(rules, make_case({"pain_score": 1, "pain_pattern": pattern}, patient=patient))
    assert ("U3" in out.rule_ids) is fires
    assert ("pathological_fracture" in out.leading_causes) is fires


def test_u3_needs_pain_and_bone_disease(rules):
    assert "U3" not in fired(rules, {"pain_score": 0}, patient={"bone_metastases": True})
    assert "U3" not in fired(rules, {"pain_score": 5, "pain_pattern": "new"})


# --------------------------------------------------------------------------- U4


@pytest.mark.parametrize("report, meds, patient, fires", [
    ({"onset": "sudden", "after_minor_strain": True}, [], None, True),
    ({"onset": "gradual", "after_minor_strain": True}, [], None, False),
    ({"onset": None, "after_minor_strain": True}, [], None, False),
    ({"onset": "sudden"}, [], {"osteoporosis": True}, True),
    ({"onset": "sudden"}, [], {"long_term_steroids": True}, True),
    ({"onset": "sudden"}, [], None, False),
    ({"onset": "sudden"}, [("anastrozole", at("2025-11-20"))], None, True),                  # 365 days running
    ({"onset": "sudden"}, [("anastrozole", at("2025-11-21"))], None, False),                 # 364 days
    ({"onset": "sudden"}, [("letrozole", at("2024-01-01"), at("2026-11-19"))], None, False),  # stopped before
    ({"onset": "sudden"}, [("denosumab", at("2026-04-23"))], None, True),                    # 211 days: stopped
    ({"onset": "sudden"}, [("denosumab", at("2026-04-24"))], None, False),                   # 210 days
    ({"onset": "sudden"}, [("denosumab", at("2025-10-01")), ("denosumab", at("2026-06-01"))], None, False),
])
def test_u4_sudden_onset_with_a_strain_or_fragile_bone(rules, report, meds, patient, fires):
    out = triage(rules, make_case(report, meds=meds, patient=patient))
    assert ("U4" in out.rule_ids) is fires


# --------------------------------------------------------------------------- U6, U7


@pytest.mark.parametrize("meds, fires", [
    ([("goserelin", at("2026-10-23"))], True),                                     # 28 days
    ([("goserelin", at("2026-10-22"))], False),                                    # 29 days
    ([("leuprorelin", at(REPORT_DAY, "08:00"))], True),                            # day 0
    ([("goserelin", at("2026-08-01")), ("goserelin", at("2026-11-01"))], False),   # a later dose does not restart
    ([("degarelix", at("2026-11-01"))], False),                                    # an antagonist causes no flare
])
def test_u6_first_lhrh_agonist_dose_in_prostate_cancer(rules, meds, fires):
    out = triage(rules, make_case({"pain_score": 1}, meds=meds, patient={"cancer_type": "prostate"}))
    assert ("U6" in out.rule_ids) is fires


def test_u6_needs_prostate_cancer_and_pain(rules):
    meds = [("goserelin", at("2026-11-01"))]
    assert "U6" not in fired(rules, {"pain_score": 3}, meds=meds, patient={"cancer_type": "breast"})
    assert "U6" not in fired(rules, {"pain_score": 0}, meds=meds, patient={"cancer_type": "prostate"})


@pytest.mark.parametrize("report, patient, fires", [
    ({"confusion_or_drowsiness": True}, {"bone_metastases": True}, True),
    ({"thirst_or_polyuria": True}, {"cancer_type": "myeloma"}, True),
    ({"thirst_or_polyuria": True}, None, False),
    ({}, {"bone_metastases": True}, False),
])
def test_u7_possible_hypercalcaemia_in_bone_disease(rules, report, patient, fires):
    out = triage(rules, make_case({**report, "pain_pattern": "usual"}, patient=patient))
    assert ("U7" in out.rule_ids) is fires
    assert ("hypercalcaemia" in out.leading_causes) is fires


# --------------------------------------------------------------------------- S1, R2 and the drug effects


@pytest.mark.parametrize("drug, dose_day, duration, explained", [
    ("pegfilgrastim", "2026-11-16", 0, True),     # onset day 4 of 0-4
    ("pegfilgrastim", "2026-11-15", 0, False),    # day 5
    ("pegfilgrastim", "2026-11-20", 0, True),     # day 0
    ("filgrastim", "2026-11-18", 0, True),        # day 2 of 0-2
    ("filgrastim", "2026-11-17", 0, False),       # day 3
    ("docetaxel", "2026-11-17", 0, True),         # day 3 of 1-3
    ("paclitaxel", "2026-11-19", 0, True),        # day 1
    ("paclitaxel", "2026-11-20", 0, False),       # the infusion day is a reaction, not the syndrome
    ("docetaxel", "2026-11-10", 7, True),         # onset day 3, lasted 7 days
    ("docetaxel", "2026-11-09", 8, False),        # onset day 3, lasted 8 days: longer than the usual week
])
def test_r2_and_s1_a_drug_effect_explains_moderate_pain_only_when_its_timing_fits(rules, drug, dose_day, duration,
                                                                                 explained):
    out = triage(rules, make_case({"pain_score": 5, "duration_days": duration}, meds=[(drug, at(dose_day, "08:00"))]))
    assert out.rule_ids == (["R2"] if explained else ["S1"])
    assert out.tier == ("routine" if explained else "soon")
    statuses = [e["status"] for e in out.drug_effects]
    assert statuses == (["explained"] if explained else [])


def test_unknown_onset_explains_nothing_but_lists_the_effect_as_possible(rules):
    out = triage(rules, make_case({"pain_score": 5, "duration_days": None},
                                  meds=[("pegfilgrastim", at("2026-11-18"))]))
    assert (out.tier, out.rule_ids) == ("soon", ["S1"])
    assert out.contract()["drug_effects"] == [{"cause": "gcsf_bone_pain", "drug": "pegfilgrastim",
                                               "given_at": "2026-11-18T10:00:00", "status": "possible"}]
    assert out.leading_causes == [] and out.causes == ["gcsf_bone_pain"]


def test_anti_her2_never_lowers_and_never_stops_another_effect_lowering(rules):
    alone = triage(rules, make_case({"pain_score": 5, "duration_days": 0}, meds=[("trastuzumab", at(REPORT_DAY, "08:00"))]))
    assert alone.rule_ids == ["S1"] and [e["status"] for e in alone.drug_effects] == ["explained"]
    both = triage(rules, make_case({"pain_score": 5, "duration_days": 0},
                                   meds=[("trastuzumab", at(REPORT_DAY, "08:00")), ("pegfilgrastim", at("2026-11-18"))]))
    assert both.rule_ids == ["R2"] and both.leading_causes == ["gcsf_bone_pain"]
    assert {e["cause"] for e in both.drug_effects} == {"gcsf_bone_pain", "anti_her2_infusion"}


@pytest.mark.parametrize("drug", ["Herceptin SC", "pertuzumab-trastuzumab", "Phesgo"])
def test_subcutaneous_anti_her2_has_no_window(rules, drug):
    out = triage(rules, make_case({"pain_score": 5, "duration_days": 0}, meds=[(drug, at(REPORT_DAY, "08:00"))]))
    assert out.drug_effects == [] and out.unrecognised_drugs == []


def test_a_window_is_counted_from_each_dose(rules):
    weekly = [("paclitaxel", at(day, "09:00")) for day in ("2026-10-30", "2026-11-06", "2026-11-13", "2026-11-18")]
    out = triage(rules, make_case({"pain_score": 4, "duration_days": 0}, meds=weekly))
    assert out.rule_ids == ["R2"] and out.drug_effects[0]["given_at"].isoformat() == "2026-11-18T09:00:00"


def test_an_explained_effect_does_not_lower_anything_set_higher(rules):
    out = triage(rules, make_case({"pain_score": 5, "duration_days": 1, "worse_at_night": True},
                                  meds=[("pegfilgrastim", at("2026-11-18"))]))
    assert (out.tier, out.rule_ids, out.leading_causes) == ("urgent", ["U1"], ["spinal_metastasis"])
    assert out.causes == ["spinal_metastasis", "gcsf_bone_pain"]


# --------------------------------------------------------------------------- S2, S3, R1


@pytest.mark.parametrize("meds, fires", [([("oxaliplatin", at("2025-01-10"))], True),
                                         ([("thalidomide", at("2024-01-10"), at("2024-06-10"))], True),
                                         ([("cyclophosphamide", at("2026-11-01"))], False), ([], False)])
def test_s2_neuropathy_pattern_with_a_neurotoxic_drug_ever_given(rules, meds, fires):
    out = triage(rules, make_case({"hand_foot_tingling": True}, meds=meds))
    assert ("S2" in out.rule_ids) is fires


@pytest.mark.parametrize("meds, fires", [
    ([("letrozole", at("2026-11-06"))], True),                        # 14 days
    ([("letrozole", at("2026-11-07"))], False),                       # 13 days
    ([("exemestane", at("2025-01-01"), at(REPORT_DAY, "20:00"))], True),  # stops later the same day
    ([("exemestane", at("2025-01-01"), at("2026-11-19"))], False),    # stopped the day before
])
def test_s3_aromatase_inhibitor_course_of_14_days_not_stopped(rules, meds, fires):
    out = triage(rules, make_case({"pain_score": 1}, meds=meds))
    assert ("S3" in out.rule_ids) is fires


@pytest.mark.parametrize("pain, expected", [(0, ["R1"]), (3, ["R1"]), (4, ["S1"]), (6, ["S1"]), (7, ["U2"])])
def test_pain_bands_without_red_flags(rules, pain, expected):
    assert fired(rules, {"pain_score": pain}) == expected


def test_r1_only_when_no_rule_above_routine(rules):
    assert fired(rules, {"pain_score": 2, "location": "thoracic"}) == ["U1"]


# --------------------------------------------------------------------------- the output


def test_rule_ids_highest_tier_first_in_the_briefs_order(rules):
    out = triage(rules, make_case({"pain_score": 8, "leg_weakness": True, "location": "thoracic",
                                   "hand_foot_tingling": True, "temperature_c": 38.5},
                                  meds=[("docetaxel", at("2026-11-01"))], patient={"bone_metastases": True}))
    assert out.rule_ids == ["E1", "E2", "E3", "U1", "U2", "U3", "S2"]
    assert out.leading_causes == ["mscc", "neutropenic_sepsis", "spinal_infection"]
    assert out.causes == ["mscc", "neutropenic_sepsis", "spinal_infection", "spinal_metastasis",
                          "pathological_fracture", "cipn"]


def test_contract_output_keys_in_order(rules):
    [line] = triage_records(rules, [make_case({"pain_score": 5, "duration_days": 1},
                                              meds=[("pegfilgrastim", at("2026-11-18"))])])
    assert list(line) == ["report_id", "tier", "rule_ids", "leading_causes", "suspected_causes", "drug_effects",
                          "recent_sact", "respond_within_minutes", "imaging", "referral", "advice",
                          "unrecognised_drugs", "rules_version"]
    assert line["respond_within_minutes"] == 4320 and line["rules_version"] == rules.version
