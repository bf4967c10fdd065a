"""Guidance composed from the leading causes: one line per topic at its most urgent time, most urgent
first, never analgesic advice beside an emergency, the other causes "also considered"; advice read to
the patient says each topic once, and staff notes are a list of their own."""

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
    return {a.text for g in every for a in g.analgesic_advice}


def _topics(rules) -> dict[str, str]:
    """Each advice text and its topic."""
    every = [*rules.guidance.causes.values(), *rules.guidance.tier_defaults.values()]
    return {a.text: a.topic for g in every for a in (*g.advice, *g.analgesic_advice)}


def _staff_notes(rules) -> set[str]:
    every = [*rules.guidance.causes.values(), *rules.guidance.tier_defaults.values()]
    return {n.text for g in every for n in g.staff_notes}


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
    # Each topic said once to the patient; nothing for staff in what is read to the patient.
    topics = [_topics(RULES)[a] for a in g.advice[:-2]]
    assert len(topics) == len(set(topics)), g.advice
    assert not set(g.advice) & _staff_notes(RULES)
    assert [n.cause for n in g.staff_notes] == [c for c in (leading or [None]) for _ in (
        RULES.guidance.causes[c] if c else RULES.guidance.tier_defaults[tier]).staff_notes]


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


def test_pain_relief_is_advised_once_and_staff_notes_are_apart(rules):
    """G-CSF bone pain and taxane pain lead together: one line about pain relief (the first cause's),
    and the note about antihistamines is for staff, with its sources, not read to the patient."""
    meds = [("pegfilgrastim", "2026-11-18T10:00:00"), ("docetaxel", "2026-11-18T09:00:00")]
    out = triage(rules, make_case({"pain_score": 5, "duration_days": 1}, meds=meds))
    assert set(out.leading_causes) == {"gcsf_bone_pain", "taxane_acute_pain"}
    paracetamol = [a for a in out.guidance.advice if "aracetamol" in a]
    assert len(paracetamol) == 1, out.guidance.advice
    assert not any("used by some services" in a for a in out.guidance.advice)
    assert not any("used by some services" in line for line in out.guidance.referral_text)
    (note,) = out.guidance.staff_notes
    assert "loratadine" in note.text and note.cause == "gcsf_bone_pain"
    assert note.source == tuple(rules.guidance.causes["gcsf_bone_pain"].source)
    # The contract's advice is what is read to the patient.
    assert out.contract()["advice"] == out.guidance.advice


def test_do_not_take_paracetamol_is_never_followed_by_paracetamol_can_help(rules):
    """A cause's own advice comes before analgesic advice and takes its topic: below an emergency too."""
    g = guidance_for(rules, "urgent", (), ("neutropenic_sepsis", "gcsf_bone_pain"),
                     ("neutropenic_sepsis", "gcsf_bone_pain"))
    assert any("Do not take paracetamol" in a for a in g.advice)
    assert not any("can ease" in a or "can help" in a for a in g.advice), g.advice


def test_the_detail_shows_staff_notes_apart_from_the_advice(rules):
    from dashboard.queue import explain_outcome

    case = make_case({"pain_score": 5, "duration_days": 1}, meds=[("pegfilgrastim", "2026-11-18T10:00:00")])
    out = triage(rules, case)
    x = explain_outcome(rules, out, "2026-11-20T09:30:00", 1)
    assert x["staff_notes"] == [n.text for n in out.guidance.staff_notes] and x["staff_notes"]
    assert not set(x["staff_notes"]) & set(x["advice"])
