"""Properties of the rules, checked on generated cases (hypothesis).

The safety properties: adding a red flag, raising the pain score or raising the temperature never
lowers the tier. And the engine's own: every case gets exactly one tier from the rules that fired,
and a batch is triaged exactly as its cases one by one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.models import REPORT_FLAGS, validate_case
from dashboard.triage import triage_cases
from tests.conftest import make_case

REPORTED = datetime(2026, 11, 20, 9, 30)
DRUGS = ["pegfilgrastim", "Neulasta", "filgrastim", "docetaxel", "paclitaxel", "trastuzumab", "letrozole",
         "anastrozole", "oxaliplatin", "carboplatin", "tamoxifen", "zoledronic acid", "dexamethasone",
         "pembrolizumab", "mystery-drug"]
RED_FLAG_CHANGES = [{f: True} for f in REPORT_FLAGS] + [
    {"trend": "worsening"}, {"location": "thoracic"}, {"location": "cervical"}, {"onset": "sudden"},
]
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def cases(draw):
    report = {
        "pain_score": draw(st.integers(0, 10)),
        "onset": draw(st.sampled_from([None, "sudden", "gradual"])),
        "trend": draw(st.sampled_from([None, "improving", "stable", "worsening"])),
        "location": draw(st.sampled_from([None, "cervical", "thoracic", "lumbar", "sacral"])),
        "duration_days": draw(st.one_of(st.none(), st.integers(0, 30))),
        "temperature_c": draw(st.one_of(st.none(), st.floats(34.0, 41.0).map(lambda t: round(t, 1)))),
    }
    for flag in REPORT_FLAGS:
        report[flag] = draw(st.booleans().map(lambda b: b and draw(st.integers(0, 5)) == 0))
    patient = {
        "cancer_type": draw(st.sampled_from(["breast", "lung", "myeloma", "prostate", "colorectal", "lymphoma"])),
        "bone_metastases": draw(st.booleans()),
        "osteoporosis": draw(st.booleans()),
        "long_term_steroids": draw(st.booleans()),
    }
    meds = []
    for _ in range(draw(st.integers(0, 4))):
        drug = draw(st.sampled_from(DRUGS))
        offset = draw(st.one_of(st.none(), st.integers(-3 * 24, 60 * 24)))  # hours before the report
        given = None if offset is None else (REPORTED - timedelta(hours=offset)).isoformat()
        meds.append((drug, given))
    return make_case(report, meds=meds, patient=patient)


def tiers(rules, raw_cases):
    outs = triage_cases(rules, [validate_case(c) for c in raw_cases])
    return outs, [rules.tier_rank[o.tier] for o in outs]


def with_report(case, **changes):
    out = {**case, "report": {**case["report"], **changes}}
    return out


@SETTINGS
@given(st.lists(st.tuples(cases(), st.sampled_from(RED_FLAG_CHANGES)), min_size=1, max_size=15))
def test_adding_a_red_flag_never_lowers_the_tier(rules, pairs):
    before = [c for c, _ in pairs]
    after = [with_report(c, **change) for c, change in pairs]
    _, a = tiers(rules, before)
    _, b = tiers(rules, after)
    assert all(y >= x for x, y in zip(a, b))


@SETTINGS
@given(st.lists(st.tuples(cases(), st.integers(1, 10)), min_size=1, max_size=15))
def test_raising_the_pain_score_never_lowers_the_tier(rules, pairs):
    before = [c for c, _ in pairs]
    after = [with_report(c, pain_score=min(10, c["report"]["pain_score"] + up)) for c, up in pairs]
    _, a = tiers(rules, before)
    _, b = tiers(rules, after)
    assert all(y >= x for x, y in zip(a, b))


@SETTINGS
@given(st.lists(st.tuples(cases(), st.floats(36.1, 41.0), st.floats(0.0, 4.0)), min_size=1, max_size=15))
def test_raising_the_temperature_never_lowers_the_tier(rules, triples):
    """Above the low-temperature threshold (36.0 °C, itself a sepsis sign) a higher reading never lowers."""
    before = [with_report(c, temperature_c=round(t, 1)) for c, t, _ in triples]
    after = [with_report(c, temperature_c=round(min(45.0, t + up), 1)) for c, t, up in triples]
    _, a = tiers(rules, before)
    _, b = tiers(rules, after)
    assert all(y >= x for x, y in zip(a, b))


@SETTINGS
@given(st.lists(st.tuples(cases(), st.floats(30.0, 37.4), st.floats(0.0, 4.0)), min_size=1, max_size=15))
def test_lowering_a_normal_temperature_never_lowers_the_tier(rules, triples):
    before = [with_report(c, temperature_c=round(t, 1)) for c, t, _ in triples]
    after = [with_report(c, temperature_c=round(max(30.0, t - down), 1)) for c, t, down in triples]
    _, a = tiers(rules, before)
    _, b = tiers(rules, after)
    assert all(y >= x for x, y in zip(a, b))


@SETTINGS
@given(st.lists(cases(), min_size=1, max_size=20))
def test_one_tier_from_the_rules_that_fired(rules, raw):
    outs, _ = tiers(rules, raw)
    order = [r.id for r in rules.rules]
    for out in outs:
        assert out.tier in rules.tier_ids
        assert out.rule_ids, "every report is caught by at least one rule"
        assert out.rule_ids == sorted(out.rule_ids, key=order.index)
        assert out.tier == max((rules.rule_by_id[r].tier for r in out.rule_ids), key=rules.tier_rank.get)
        assert out.causes == sorted(out.causes, key=rules.cause_codes.index)
        assert not ({"R1", "R2"} & set(out.rule_ids)) or out.tier == "routine"
        assert out.respond_within_minutes == rules.respond_within_minutes(out.tier)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(cases(), min_size=2, max_size=8))
def test_a_batch_is_triaged_as_its_cases_one_by_one(rules, raw):
    batch = [(o.tier, o.rule_ids, o.causes, o.unrecognised_drugs) for o in tiers(rules, raw)[0]]
    alone = [(o.tier, o.rule_ids, o.causes, o.unrecognised_drugs) for o in (tiers(rules, [c])[0][0] for c in raw)]
    assert batch == alone
