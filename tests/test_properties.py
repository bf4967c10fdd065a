"""Properties of the rules on generated cases (hypothesis).

The brief's properties: an added red flag, a higher pain score or a temperature further from normal
never lowers the tier; a null duration or pain pattern never lowers it, nor does an unknown drug; a
report's tier never depends on the other lines of the input. And the engine against a small,
independent interpreter of the brief written here in plain Python: per rule, fired or not, on
generated cases with doses and courses around every boundary of days.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.models import REPORT_FLAGS, validate_case
from dashboard.rules import load_rules
from dashboard.triage import triage_cases
from tests.conftest import ROOT, make_case

RULES = load_rules(ROOT / "rules")
REPORT_DAY = date(2026, 11, 20)
DRUGS = ["pegfilgrastim", "Neulasta", "filgrastim", "docetaxel", "paclitaxel", "trastuzumab", "Herceptin SC",
         "letrozole", "anastrozole", "oxaliplatin", "capecitabine", "palbociclib", "apixaban", "enoxaparin",
         "goserelin", "leuprorelin", "degarelix", "denosumab", "tamoxifen", "dexamethasone", "paracetamol",
         "pembrolizumab", "AZD-9833 (trial)"]
# Days before the report at which doses and courses start or stop: every boundary of the brief.
DAYS = [-1, 0, 1, 2, 3, 4, 5, 7, 8, 13, 14, 27, 28, 29, 41, 42, 43, 210, 211, 364, 365, 400]
RED_FLAG_CHANGES = [{f: True} for f in REPORT_FLAGS] + [
    {"trend": "worsening"}, {"location": "thoracic"}, {"location": "cervical"}, {"onset": "sudden"},
]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def cases(draw):
    hour, minute = draw(st.integers(0, 23)), draw(st.sampled_from([0, 30, 59]))
    reported = datetime.combine(REPORT_DAY, datetime.min.time()).replace(hour=hour, minute=minute)
    report = {
        "reported_at": reported.isoformat(),
        "pain_score": draw(st.integers(0, 10)),
        "pain_pattern": draw(st.sampled_from([None, "new", "changed", "usual"])),
        "onset": draw(st.sampled_from([None, "sudden", "gradual"])),
        "trend": draw(st.sampled_from([None, "improving", "stable", "worsening"])),
        "location": draw(st.sampled_from([None, "cervical", "thoracic", "lumbar", "sacral"])),
        "duration_days": draw(st.one_of(st.none(), st.integers(0, 9))),
        "temperature_c": draw(st.one_of(st.none(), st.sampled_from([35.9, 36.0, 36.1, 36.8, 37.4, 37.5, 37.9, 38.0,
                                                                     38.5]))),
    }
    for flag in REPORT_FLAGS:
        report[flag] = draw(st.integers(0, 7)) == 0
    patient = {
        "cancer_type": draw(st.sampled_from(["breast", "prostate", "myeloma", "lung", "Multiple Myeloma"])),
        **{f: draw(st.integers(0, 3)) == 0 for f in ("bone_metastases", "osteoporosis", "long_term_steroids",
                                                     "low_platelets")},
    }
    meds = []
    for _ in range(draw(st.integers(0, 4))):
        drug = draw(st.sampled_from(DRUGS))
        start = draw(st.sampled_from(DAYS))
        at = datetime.combine(REPORT_DAY - timedelta(days=start), datetime.min.time()).replace(
            hour=draw(st.sampled_from([0, 9, 23])))
        info = RULES.resolve_drug(drug)
        continuous = info.continuous if info else False
        stop = draw(st.one_of(st.none(), st.sampled_from([d for d in DAYS if d <= start]))) if continuous else None
        if stop is not None:
            meds.append((drug, at.isoformat(), (datetime.combine(REPORT_DAY - timedelta(days=stop),
                                                                 datetime.min.time()) + timedelta(hours=23, minutes=59)).isoformat()))
        else:
            meds.append((drug, at.isoformat()))
    return make_case(report, meds=meds, patient=patient)


def outcomes(raw_cases):
    return triage_cases(RULES, [validate_case(c) for c in raw_cases])


def rank(outcome) -> int:
    return RULES.tier_rank[outcome.tier]


def with_report(case, **changes):
    return {**case, "report": {**case["report"], **changes}}


# --------------------------------------------------------------------------- an independent reading of the brief

TIER_OF = {**dict.fromkeys(["E1", "E2", "E3", "E4"], 4), **dict.fromkeys(["U1", "U2", "U3", "U4", "U5", "U6", "U7"], 3),
           **dict.fromkeys(["S1", "S2", "S3"], 2), **dict.fromkeys(["R1", "R2"], 1)}
# (drugs, onset window, lasts at most, may lower)
WINDOWS = [({"pegfilgrastim", "lipegfilgrastim"}, (0, 4), 7, True), ({"filgrastim", "tbo-filgrastim"}, (0, 2), 7, True),
           ({"paclitaxel", "nab-paclitaxel", "docetaxel", "cabazitaxel"}, (1, 3), 7, True),
           ({"trastuzumab", "pertuzumab"}, (0, 1), 2, False)]


def interpret(case) -> set[str]:
    """Which rules fire, read from the brief's words alone."""
    c = validate_case(case)
    r, p = c.report, c.patient
    day = r.reported_at.date()
    meds = []
    for m in c.medications:
        if m.given_at > r.reported_at:
            continue  # given after the report: ignored
        info = RULES.resolve_drug(m.drug)
        course = info.continuous if info else m.stopped_at is not None
        meds.append((info, m.given_at.date(), m.stopped_at.date() if m.stopped_at else None, course))

    def days(d: date) -> int:
        return (day - d).days

    def exposed(pick, lo, hi):
        for info, start, stop, course in meds:
            if not pick(info):
                continue
            if course:
                if days(start) >= lo and (hi is None or stop is None or days(stop) <= hi):
                    return True
            elif lo <= days(start) and (hi is None or days(start) <= hi):
                return True
        return False

    recent = exposed(lambda i: i is None or i.sact or i.drug_class == "gcsf", 0, 42)
    anticoagulated = exposed(lambda i: i is not None and i.drug_class == "anticoagulant", 0, 7)
    neurotoxic = exposed(lambda i: i is not None and i.neurotoxic, 0, None)
    lhrh = [start for info, start, _, _ in meds if info and info.drug_class == "lhrh_agonist"]
    flare = bool(lhrh) and days(min(lhrh)) <= 28
    denosumab = [start for info, start, _, _ in meds if info and info.generic == "denosumab"]
    denosumab_stopped = bool(denosumab) and days(max(denosumab)) > 210

    def ai_running(at_least):
        return any(course and info and info.drug_class == "aromatase_inhibitor" and days(start) >= at_least
                   and (stop is None or stop >= day) for info, start, stop, course in meds)

    explained_lowering = False
    for info, start, _, course in meds:
        for drugs, (lo, hi), lasts, lowers in WINDOWS:
            if info is None or info.generic not in drugs or r.duration_days is None:
                continue
            onset_day = (day - timedelta(days=r.duration_days) - start).days
            if lo <= onset_day <= hi and r.duration_days <= lasts and lowers:
                explained_lowering = True

    t = r.temperature_c
    cancer = RULES.resolve_cancer_type(p.cancer_type)  # "Multiple Myeloma" is myeloma
    bone = p.bone_metastases or cancer == "myeloma"
    fired = {
        "E1": any([r.leg_weakness, r.difficulty_walking, r.leg_numbness, r.saddle_numbness, r.bladder_or_bowel_change,
                   r.radiating_pain]),
        "E2": recent and ((t is not None and (t >= 37.5 or t <= 36.0)) or r.rigors or r.feels_unwell),
        "E4": (anticoagulated or p.low_platelets) and r.onset == "sudden" and r.pain_score >= 7,
        "U1": r.location in ("thoracic", "cervical") or r.trend == "worsening" or r.worse_at_night
        or r.worse_on_straining or r.worse_on_movement or r.localised_tenderness,
        "U2": r.pain_score >= 7 or r.uncontrolled_by_analgesia,
        "U3": r.pain_score >= 1 and bone and r.pain_pattern in ("new", "changed", None),
        "U4": r.onset == "sudden" and (r.after_minor_strain or p.osteoporosis or p.long_term_steroids
                                       or ai_running(365) or denosumab_stopped),
        "U5": not recent and ((t is not None and (t >= 38.0 or t <= 36.0)) or r.rigors),
        "U6": cancer == "prostate" and flare and r.pain_score >= 1,
        "U7": bone and (r.confusion_or_drowsiness or r.thirst_or_polyuria),
        "S1": 4 <= r.pain_score <= 6 and not explained_lowering,
        "S2": r.hand_foot_tingling and neurotoxic,
        "S3": r.pain_score >= 1 and ai_running(14),
    }
    fired["E3"] = ((t is not None and t >= 38.0) or r.rigors) and any(fired[u] for u in ("U1", "U2", "U3", "U4"))
    above_routine = any(fired.values())
    fired["R1"] = r.pain_score <= 3 and not above_routine
    fired["R2"] = 4 <= r.pain_score <= 6 and explained_lowering and not above_routine
    return {rule for rule, yes in fired.items() if yes}


@SETTINGS
@given(st.lists(cases(), min_size=1, max_size=10))
def test_the_engine_agrees_with_an_independent_reading_of_the_brief(raw):
    for case, out in zip(raw, outcomes(raw)):
        expected = interpret(case)
        assert set(out.rule_ids) == expected, (case, out.rule_ids)
        assert rank(out) == max(TIER_OF[rule] for rule in expected)


# --------------------------------------------------------------------------- the brief's properties
# Each example is a batch of pairs (a case, and the case changed), triaged in one call.

PAIRS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def never_lower(pairs) -> None:
    outs = outcomes([c for pair in pairs for c in pair])
    for k in range(0, len(outs), 2):
        assert rank(outs[k + 1]) >= rank(outs[k]), (pairs[k // 2], outs[k].rule_ids, outs[k + 1].rule_ids)


@PAIRS
@given(st.lists(st.tuples(cases(), st.sampled_from(RED_FLAG_CHANGES)), min_size=1, max_size=8))
def test_adding_a_red_flag_never_lowers_the_tier(examples):
    never_lower([(case, with_report(case, **change)) for case, change in examples])


@PAIRS
@given(st.lists(st.tuples(cases(), st.integers(1, 10)), min_size=1, max_size=8))
def test_a_higher_pain_score_never_lowers_the_tier(examples):
    never_lower([(case, with_report(case, pain_score=min(10, case["report"]["pain_score"] + more)))
                 for case, more in examples])


TEMPERATURES = st.sampled_from([36.9, 37.0, 37.4, 37.5, 37.9, 38.0, 39.0, 36.1, 36.0, 35.0])


@PAIRS
@given(st.lists(st.tuples(cases(), TEMPERATURES, st.floats(0.1, 3.0)), min_size=1, max_size=8))
def test_a_temperature_further_from_normal_never_lowers_the_tier(examples):
    pairs = []
    for case, start, step in examples:
        further = round(start + step, 1) if start >= 37.0 else round(start - step, 1)
        pairs.append((with_report(case, temperature_c=start), with_report(case, temperature_c=further)))
    never_lower(pairs)


@PAIRS
@given(st.lists(st.tuples(cases(), st.sampled_from(["duration_days", "pain_pattern"])), min_size=1, max_size=8))
def test_an_unknown_duration_or_pain_pattern_never_lowers_the_tier(examples):
    never_lower([(case, with_report(case, **{field: None})) for case, field in examples])


UNKNOWN = st.tuples(st.sampled_from(["AZD-9833 (trial)", "pegfilgrastm", "Study drug X"]), st.sampled_from(DAYS),
                    st.booleans())


@PAIRS
@given(st.lists(st.tuples(cases(), UNKNOWN), min_size=1, max_size=8))
def test_adding_an_unknown_drug_never_lowers_the_tier(examples):
    pairs = []
    for case, (drug, days_before, as_course) in examples:
        at = (datetime.combine(REPORT_DAY, datetime.min.time()) - timedelta(days=days_before)).isoformat()
        med = {"drug": drug, "given_at": at, **({"stopped_at": at} if as_course else {})}
        pairs.append((case, {**case, "medications": [*case["medications"], med]}))
    never_lower(pairs)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(cases(), min_size=2, max_size=5))
def test_a_reports_tier_never_depends_on_the_other_lines(raw):
    raw = [{**c, "report_id": f"R-{i}", "patient": {**c["patient"], "patient_id": "P-same"}} for i, c in enumerate(raw)]
    together = outcomes(raw)
    alone = [outcomes([c])[0] for c in raw]
    assert [(o.tier, o.rule_ids, o.leading_causes, o.causes) for o in together] == \
        [(o.tier, o.rule_ids, o.leading_causes, o.causes) for o in alone]
