"""Guidance composed from the leading causes: one line per topic at its most urgent time, most urgent
first, never analgesic advice beside an emergency, the other causes "also considered"."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.guidance import guidance_for
from dashboard.rules import load_rules
from tests.conftest import ROOT, make_case, triage

RULES = load_rules(ROOT / "rules")
CAUSES = list(RULES.guidance.causes)
RULE_IDS = [r.id for r in RULES.rules]


def _analgesic_lines(rules) -> set[str]:
    every = [*rules.guidance.causes.values(), *rules.guidance.tier_defaults.values()]
    return {a for g in every for a in g.analgesic_advice}


@settings(max_examples=150, deadline=None)
@given(tier=st.sampled_from(RULES.tier_ids), leading=st.lists(st.sampled_from(CAUSES), unique=True, max_size=4),
       others=st.lists(st.sampled_from(CAUSES), unique=True, max_size=4),
       fired=st.lists(st.sampled_from(RULE_IDS), unique=True, max_size=6))
def test_one_line_per_topic_most_urgent_first_no_analgesia_in_an_emergency(tier, leading, others, fired):
    causes = tuple(leading) + tuple(c for c in others if c not in leading)
    g = guidance_for(RULES, tier, tuple(fired), tuple(leading), causes)
    leading_rules = {r for r in fired if RULES.rule_by_id[r].tier == tier}  # the rules that set the tier
    for lines in (g.imaging, g.referral):
        topics = [line.topic for line in lines]
        assert len(topics) == len(set(topics)), topics
        # Most urgent first ("first" lines, then by time).
        keys = [(not _first(line), line.within_hours) for line in lines]
        assert keys == sorted(keys)
        # Each topic at the most urgent time any leading cause gives it.
        for line in lines:
            times = [x.within_hours for c in leading for x in getattr(RULES.guidance.causes[c],
                     "imaging" if lines is g.imaging else "referral")
                     if x.topic == line.topic and (not x.only_for_rules or set(x.only_for_rules) & leading_rules)]
            if times:
                assert line.within_hours == min(times)
    if tier == "emergency":
        assert not set(g.advice) & _analgesic_lines(RULES)
    assert g.also_considered == [c for c in causes if c not in leading]
    assert g.advice[-2:] == [RULES.guidance.safety_net.now, RULES.guidance.safety_net.within_24_hours]


def _first(line) -> bool:
    return any(x.first for g in RULES.guidance.causes.values() for x in (*g.imaging, *g.referral)
               if x.topic == line.topic and x.text == line.text)


def test_cord_compression_with_metastatic_features_asks_for_one_mri_within_24_hours(rules):
    out = triage(rules, make_case({"leg_weakness": True, "location": "thoracic", "worse_at_night": True}))
    assert out.rule_ids[:2] == ["E1", "U1"] and out.leading_causes == ["mscc"]
    mri = [line for line in out.guidance.imaging if line.text.startswith(("Whole-spine MRI", "MRI"))]
    assert [(line.topic, line.within_hours) for line in mri] == [("spine_mri", 24)]
    assert "1 week" not in " ".join(out.guidance.imaging_text + out.guidance.referral_text)
    assert out.guidance.also_considered == ["spinal_metastasis"]
    assert out.guidance.referral_text[0] == "MSCC coordinator now"


def test_possible_sepsis_beside_cord_compression_puts_antibiotics_first(rules):
    case = make_case({"leg_weakness": True, "temperature_c": 38.4}, meds=[("docetaxel", "2026-11-10T10:00:00")])
    out = triage(rules, case)
    assert set(out.leading_causes) >= {"mscc", "neutropenic_sepsis"}
    assert out.guidance.referral[0].topic == "antibiotics"
    assert "imaging must not delay" in out.guidance.referral_text[0]
    assert out.guidance.imaging[0].topic == "imaging_after_antibiotics"
    advice = " ".join(out.guidance.advice).lower()
    assert "do not take paracetamol or ibuprofen" in advice
    assert not any("can ease" in a for a in out.guidance.advice)


def test_expected_drug_effect_gives_its_own_advice_and_the_safety_net(rules):
    out = triage(rules, make_case({"pain_score": 5, "duration_days": 1}, meds=[("pegfilgrastim", "2026-11-18T10:00:00")]))
    assert (out.tier, out.rule_ids, out.leading_causes) == ("routine", ["R2"], ["gcsf_bone_pain"])
    assert "Paracetamol can ease this bone pain." in out.guidance.advice
    assert any("left shoulder" in a for a in out.guidance.advice)


def test_no_leading_cause_gives_the_tiers_own_guidance(rules):
    out = triage(rules, make_case({"pain_score": 8}))
    assert (out.tier, out.leading_causes) == ("urgent", [])
    assert out.guidance.referral_text[0] == "Clinician review today"


def test_unrecognised_drug_is_named_for_the_nurse(rules):
    out = triage(rules, make_case({"pain_score": 2}, meds=[("AZD-9833", "2026-11-01T10:00:00")]))
    assert out.unrecognised_drugs == ["AZD-9833"]
    assert any(line.topic == "medication_review" and "AZD-9833" in line.text for line in out.guidance.referral)
