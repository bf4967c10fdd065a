"""Every rule of the brief, at and around its thresholds, through the one triage engine."""

from __future__ import annotations

import pytest

from tests.conftest import make_case, triage

SACT = ("docetaxel", "2026-11-10T10:00:00")  # 10 days before the report


def tier_of(rules, report=None, **kw):
    return triage(rules, make_case(report, **kw)).tier


# --------------------------------------------------------------------------- E1


@pytest.mark.parametrize(
    "flag", ["leg_weakness", "difficulty_walking", "leg_numbness", "bladder_or_bowel_change", "radiating_pain"]
)
def test_e1_each_neurological_flag_is_an_emergency(rules, flag):
    out = triage(rules, make_case({flag: True, "pain_score": 0}))
    assert out.tier == "emergency"
    assert "E1" in out.rule_ids
    assert out.causes[0] == "mscc"
    assert any("MRI" in item and "24 hours" in item for item in out.guidance.imaging)
    assert "MSCC coordinator now" in out.guidance.referral


def test_e1_not_from_hand_foot_tingling(rules):
    out = triage(rules, make_case({"hand_foot_tingling": True}))
    assert "E1" not in out.rule_ids


# --------------------------------------------------------------------------- E2 and U5


@pytest.mark.parametrize(
    "temperature, fires", [(37.4, False), (37.5, True), (37.6, True), (36.1, False), (36.0, True), (35.9, True)]
)
def test_e2_temperature_thresholds_within_sact_window(rules, temperature, fires):
    out = triage(rules, make_case({"temperature_c": temperature}, meds=[SACT]))
    assert ("E2" in out.rule_ids) is fires
    assert (out.tier == "emergency") is fires
    if fires:
        assert "neutropenic_sepsis" in out.causes


@pytest.mark.parametrize("flag", ["rigors", "feels_unwell"])
def test_e2_rigors_or_feeling_unwell_within_sact_window(rules, flag):
    assert "E2" in triage(rules, make_case({flag: True}, meds=[SACT])).rule_ids


@pytest.mark.parametrize(
    "given_at, recent",
    [
        ("2026-10-09T10:00:00", True),  # 42 calendar days before 20 Nov
        ("2026-10-09T23:59:00", True),
        ("2026-10-08T10:00:00", False),  # 43 days
        ("2026-11-20T09:30:00", True),  # the same minute as the report
        ("2026-11-20T09:31:00", False),  # after the report: ignored
    ],
)
def test_e2_forty_two_day_sact_window(rules, given_at, recent):
    out = triage(rules, make_case({"temperature_c": 38.2}, meds=[("carboplatin", given_at)]))
    assert ("E2" in out.rule_ids) is recent
    # Outside the window the same fever is a possible spinal infection instead (U5).
    assert ("U5" in out.rule_ids) is (not recent)
    assert out.tier == ("emergency" if recent else "urgent")


@pytest.mark.parametrize(
    "drug", ["letrozole", "tamoxifen", "pegfilgrastim", "zoledronic acid", "denosumab", "dexamethasone"]
)
def test_e2_non_sact_drugs_do_not_count(rules, drug):
    out = triage(rules, make_case({"temperature_c": 37.8}, meds=[(drug, "2026-11-15T10:00:00")]))
    assert "E2" not in out.rule_ids


@pytest.mark.parametrize("drug", ["trastuzumab", "pembrolizumab", "palbociclib", "Herceptin", "KEYTRUDA"])
def test_e2_targeted_anti_her2_and_immunotherapy_count_as_sact(rules, drug):
    out = triage(rules, make_case({"temperature_c": 37.8}, meds=[(drug, "2026-11-15T10:00:00")]))
    assert "E2" in out.rule_ids


def test_e2_sact_dose_of_unknown_date_counts(rules):
    """Missing data never lowers a tier: a SACT dose with no date may be recent."""
    out = triage(rules, make_case({"temperature_c": 37.6}, meds=[("paclitaxel", None)]))
    assert out.tier == "emergency" and "E2" in out.rule_ids


@pytest.mark.parametrize("temperature, fires", [(37.9, False), (38.0, True), (38.5, True)])
def test_u5_fever_without_recent_sact(rules, temperature, fires):
    out = triage(rules, make_case({"temperature_c": temperature}))
    assert ("U5" in out.rule_ids) is fires
    if fires:
        assert out.tier == "urgent" and "spinal_infection" in out.causes


def test_u5_rigors_without_recent_sact(rules):
    assert "U5" in triage(rules, make_case({"rigors": True})).rule_ids


def test_u5_does_not_count_towards_e3(rules):
    out = triage(rules, make_case({"temperature_c": 38.4, "pain_score": 8}))
    assert set(out.rule_ids) >= {"U5", "U2"}
    assert "E3" not in out.rule_ids and out.tier == "urgent"


# --------------------------------------------------------------------------- U1-U4 and E3


@pytest.mark.parametrize(
    "report",
    [
        {"location": "thoracic"},
        {"location": "cervical"},
        {"trend": "worsening"},
        {"worse_at_night": True},
        {"worse_on_straining": True},
        {"worse_on_movement": True},
        {"localised_tenderness": True},
    ],
)
def test_u1_each_feature_of_spinal_metastasis(rules, report):
    out = triage(rules, make_case(report))
    assert out.rule_ids == ["U1"] and out.tier == "urgent"
    assert out.causes == ["spinal_metastasis"]


@pytest.mark.parametrize("report", [{"location": "lumbar"}, {"location": "sacral"}, {"trend": "improving"},
                                    {"location": None, "trend": None}])
def test_u1_not_from_lumbar_sacral_or_improving(rules, report):
    assert "U1" not in triage(rules, make_case(report)).rule_ids


@pytest.mark.parametrize("pain, tier, rules_fired", [
    (3, "routine", ["R1"]),
    (4, "soon", ["S1"]),
    (6, "soon", ["S1"]),
    (7, "urgent", ["U2"]),
    (10, "urgent", ["U2"]),
])
def test_pain_bands(rules, pain, tier, rules_fired):
    out = triage(rules, make_case({"pain_score": pain}))
    assert out.tier == tier and out.rule_ids == rules_fired


def test_u2_uncontrolled_by_analgesia_at_any_score(rules):
    out = triage(rules, make_case({"pain_score": 3, "uncontrolled_by_analgesia": True}))
    assert out.rule_ids == ["U2"] and out.tier == "urgent" and out.causes == []


@pytest.mark.parametrize("patient", [{"bone_metastases": True}, {"cancer_type": "myeloma"},
                                     {"cancer_type": "Multiple Myeloma"}, {"cancer_type": "multiple_myeloma"}])
def test_u3_known_bone_disease(rules, patient):
    out = triage(rules, make_case({"pain_score": 1}, patient=patient))
    assert out.rule_ids == ["U3"] and out.causes == ["pathological_fracture"]


def test_u3_needs_some_pain(rules):
    out = triage(rules, make_case({"pain_score": 0}, patient={"bone_metastases": True}))
    assert "U3" not in out.rule_ids and out.tier == "routine"


@pytest.mark.parametrize(
    "report, patient, meds, fires",
    [
        ({"onset": "sudden", "after_minor_strain": True}, {}, [], True),
        ({"onset": "gradual", "after_minor_strain": True}, {}, [], False),
        ({"onset": None, "after_minor_strain": True}, {}, [], False),
        ({"onset": "sudden"}, {}, [], False),
        ({"onset": "sudden"}, {"osteoporosis": True}, [], True),
        ({"onset": "sudden"}, {"long_term_steroids": True}, [], True),
        ({"onset": "sudden"}, {}, [("letrozole", "2026-11-06T08:00:00")], True),  # 14 days
        ({"onset": "sudden"}, {}, [("Arimidex", "2026-11-07T08:00:00")], False),  # 13 days
    ],
)
def test_u4_possible_fracture(rules, report, patient, meds, fires):
    out = triage(rules, make_case(report, patient=patient, meds=meds))
    assert ("U4" in out.rule_ids) is fires
    assert ("fragility_fracture" in out.causes) is fires


@pytest.mark.parametrize(
    "report, patient",
    [
        ({"location": "thoracic", "pain_score": 7}, {}),  # U1 + U2
        ({"trend": "worsening"}, {"bone_metastases": True}),  # U1 + U3
        ({"pain_score": 8}, {"cancer_type": "myeloma"}),  # U2 + U3
        ({"onset": "sudden", "after_minor_strain": True, "uncontrolled_by_analgesia": True}, {}),  # U4 + U2
    ],
)
def test_e3_two_urgent_rules_make_an_emergency(rules, report, patient):
    out = triage(rules, make_case(report, patient=patient))
    assert out.tier == "emergency" and "E3" in out.rule_ids


def test_e3_one_urgent_rule_repeated_features_do_not(rules):
    """Several features of one rule (U1) are still one rule."""
    out = triage(rules, make_case({"location": "thoracic", "trend": "worsening", "worse_at_night": True}))
    assert out.tier == "urgent" and "E3" not in out.rule_ids


# --------------------------------------------------------------------------- S rules


def test_s2_neuropathy_with_neurotoxic_drug(rules):
    out = triage(rules, make_case({"hand_foot_tingling": True}, meds=[("Eloxatin", "2025-01-01T10:00:00")]))
    assert out.rule_ids == ["S2"] and out.tier == "soon" and out.causes == ["cipn"]


def test_s2_needs_a_neurotoxic_drug_given_before(rules):
    assert triage(rules, make_case({"hand_foot_tingling": True})).rule_ids == ["R1"]
    later = [("oxaliplatin", "2026-11-21T10:00:00")]
    assert triage(rules, make_case({"hand_foot_tingling": True}, meds=later)).rule_ids == ["R1"]
    not_neurotoxic = [("cyclophosphamide", "2026-11-01T10:00:00")]
    assert triage(rules, make_case({"hand_foot_tingling": True}, meds=not_neurotoxic)).rule_ids == ["R1"]


@pytest.mark.parametrize("given, fires", [("2026-11-06T08:00:00", True), ("2026-11-07T08:00:00", False),
                                          ("2025-06-01T08:00:00", True)])
def test_s3_aromatase_inhibitor_from_day_14(rules, given, fires):
    out = triage(rules, make_case({"pain_score": 1}, meds=[("exemestane", given)]))
    assert ("S3" in out.rule_ids) is fires
    assert out.tier == ("soon" if fires else "routine")


# --------------------------------------------------------------------------- R rules and windows


PEG = "2026-11-18T10:00:00"  # day 2 before the report


def test_r2_the_contract_example(rules):
    out = triage(rules, make_case({"pain_score": 5}, meds=[("pegfilgrastim", PEG)]))
    assert out.contract()["rule_ids"] == ["R2"]
    assert out.causes == ["gcsf_bone_pain"] and out.tier == "routine"
    assert out.links[0]["day"] == 2 and out.links[0]["end_day"] == 7
    assert out.respond_within_minutes == 4320


@pytest.mark.parametrize(
    "drug, given, duration, explained",
    [
        ("pegfilgrastim", "2026-11-13T10:00:00", None, True),  # day 7
        ("pegfilgrastim", "2026-11-12T10:00:00", None, False),  # day 8
        ("Neulasta", "2026-11-12T10:00:00", 1, True),  # onset a day earlier: day 7
        ("lipegfilgrastim", "2026-11-20T09:00:00", 0, True),  # day 0
        ("filgrastim", "2026-11-16T10:00:00", None, True),  # day 4
        ("filgrastim", "2026-11-15T10:00:00", None, False),  # day 5
        ("paclitaxel", "2026-11-13T10:00:00", None, True),  # day 7
        ("Taxotere", "2026-11-12T10:00:00", None, False),  # day 8
        ("trastuzumab", "2026-11-19T10:00:00", None, True),  # day 1
        ("trastuzumab", "2026-11-18T10:00:00", None, False),  # day 2
        ("PHESGO", "2026-11-19T14:00:00", None, True),
        ("pegfilgrastim", "2026-11-18T10:00:00", 3, False),  # pain began before the dose
        ("pegfilgrastim", "2026-11-20T10:00:00", None, False),  # dose after the report
        ("pegfilgrastim", None, None, False),  # a dose of unknown date never explains
        ("pegfilgrastim", "2026-11-13T09:31:00", None, True),  # 6 d 23 h 59 min after the dose
        ("pegfilgrastim", "2026-11-13T09:29:00", None, False),  # 7 d 0 h 1 min: the window has closed
        ("trastuzumab", "2026-11-19T09:30:00", None, True),  # exactly 1 day (0-1)
        ("pegfilgrastim", "2026-11-19T10:30:00", 1, False),  # pain began an hour before the dose
    ],
)
def test_window_edges(rules, drug, given, duration, explained):
    out = triage(rules, make_case({"pain_score": 5, "duration_days": duration}, meds=[(drug, given)]))
    assert out.rule_ids == (["R2"] if explained else ["S1"])
    assert out.tier == ("routine" if explained else "soon")


def test_explained_cause_listed_at_every_tier(rules):
    out = triage(rules, make_case({"pain_score": 5, "location": "thoracic"}, meds=[("pegfilgrastim", PEG)]))
    assert out.tier == "urgent" and out.rule_ids == ["U1"]
    assert out.causes == ["spinal_metastasis", "gcsf_bone_pain"]
    mild = triage(rules, make_case({"pain_score": 2}, meds=[("pegfilgrastim", PEG)]))
    assert mild.rule_ids == ["R1"] and mild.causes == ["gcsf_bone_pain"]


def test_drug_attribution_never_lowers_an_emergency(rules):
    out = triage(rules, make_case({"pain_score": 5, "leg_weakness": True}, meds=[("pegfilgrastim", PEG)]))
    assert out.tier == "emergency" and "R2" not in out.rule_ids


def test_r1_only_when_nothing_above_routine(rules):
    assert triage(rules, make_case({"pain_score": 0})).rule_ids == ["R1"]
    assert triage(rules, make_case({"pain_score": 3, "worse_at_night": True})).rule_ids == ["U1"]


def test_ai_window_does_not_explain_back_pain_away(rules):
    """AI arthralgia is a soon rule (S3), not an expected-effect R2."""
    out = triage(rules, make_case({"pain_score": 5}, meds=[("letrozole", "2026-09-01T08:00:00")]))
    assert out.rule_ids == ["S1", "S3"] and out.tier == "soon"


# --------------------------------------------------------------------------- drugs


def test_unrecognised_drugs_are_reported_never_guessed(rules):
    out = triage(rules, make_case({"temperature_c": 37.8},
                                  meds=[("Zolgensma-X", "2026-11-15T10:00:00"), ("zolgensma-x", "2026-11-16T10:00:00"),
                                        ("Neulasta", PEG)]))
    assert out.unrecognised_drugs == ["Zolgensma-X", "zolgensma-x"]
    assert "E2" not in out.rule_ids  # not counted as SACT
    assert any("Unrecognised drug" in a and "Zolgensma-X" in a for a in out.guidance.advice)


@pytest.mark.parametrize("name", ["NEULASTA", " neulasta ", "Pegfilgrastim", "PEG-FILGRASTIM"])
def test_drug_names_match_without_regard_to_case(rules, name):
    out = triage(rules, make_case({"pain_score": 5}, meds=[(name, PEG)]))
    if name == "PEG-FILGRASTIM":  # "peg filgrastim" is not a listed name
        assert out.unrecognised_drugs == [name]
    else:
        assert out.rule_ids == ["R2"] and out.unrecognised_drugs == []


def test_every_report_gets_the_safety_net(rules):
    for case in (make_case(), make_case({"leg_weakness": True})):
        advice = triage(rules, case).guidance.advice
        assert any("Call us at once" in a for a in advice)
        assert any("within 24 hours" in a for a in advice)


@pytest.mark.parametrize("name, generic_case", [
    ("pegfilgrastim-jmdb", {"pain_score": 5}),
    ("Filgrastim-SNDZ", {"pain_score": 5}),
    ("trastuzumab-dkst", {"temperature_c": 37.8}),
])
def test_us_biosimilar_suffixes_are_recognised(rules, name, generic_case):
    given = "2026-11-19T12:00:00" if name.startswith("trast") else "2026-11-18T10:00:00"
    out = triage(rules, make_case(generic_case, meds=[(name, given)]))
    assert out.unrecognised_drugs == []
    assert out.tier == ("emergency" if name.startswith("trast") else "routine")
    assert rules.resolve_drug(name) is not None


def test_a_four_letter_word_is_not_stripped_into_another_drug(rules):
    out = triage(rules, make_case({"temperature_c": 37.8}, meds=[("zoledronic acid", "2026-11-19T12:00:00"),
                                                                   ("mystery abcd", "2026-11-19T12:00:00")]))
    assert out.unrecognised_drugs == ["mystery abcd"] and "E2" not in out.rule_ids
