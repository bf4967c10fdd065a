"""The timeline's shaded windows and the engine's drug effects come from one definition of a window and
of a day (dashboard/windows.py): a report the engine explains lies inside a band of the dose it names,
and a report it does not lies outside every band of a dose that could explain it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from dashboard import timeline, windows
from dashboard.models import validate_case
from dashboard.retriage import explanations
from dashboard.triage import triage_cases
from tests.conftest import SEED_NOW, make_case


def _effect_of(rules, cause: str, drug: str):
    info = rules.resolve_drug(drug)
    return next(e for e in rules.back_pain_effects if e.cause == cause and info is not None and info.generic in e.drugs)


def test_every_report_lies_inside_the_bands_the_engine_names_and_outside_the_others(sample_db, rules):
    with sample_db.connect() as con:
        reports = con.execute("SELECT report_id, patient_id, reported_at, duration_days FROM reports").df()
        doses = con.execute("SELECT patient_id, drug, given_at, stopped_at FROM administrations ORDER BY given_at").df()
        found = explanations(con, rules, reports["report_id"].tolist())
    doses = timeline.mark_courses(rules, doses)
    # Each patient's back-pain bands, by effect: (start, end, dose given at, drug).
    bands: dict[tuple[str, int], list[tuple]] = {}
    for patient, group in doses.groupby("patient_id"):
        drawn = timeline.effect_windows(rules, group, SEED_NOW)
        for j, effect in enumerate(rules.back_pain_effects):
            if drawn.empty:
                continue
            mine = drawn[(drawn["cause"] == effect.cause) & drawn["drug"].isin(effect.drugs)]
            bands[patient, j] = list(mine[["start", "end", "given_at", "drug"]].itertuples(index=False, name=None))
    explained = unexplained = outside_later_dose = outside_too_long = 0
    for r in reports.itertuples():
        duration = None if pd.isna(r.duration_days) else int(r.duration_days)
        # The onset as an instant: local midnight of the report's day less the days the pain has lasted.
        onset = pd.Timestamp(windows.onset_day(r.reported_at, duration)).tz_localize("Europe/London")
        listed = found[r.report_id]["drug_effects"]
        for j, effect in enumerate(rules.back_pain_effects):
            named = [e for e in listed if _effect_of(rules, e["cause"], e["drug"]) is effect]
            inside = [b for b in bands.get((r.patient_id, j), []) if b[0] <= onset < b[1]]
            if named:
                # Explained (or possible): inside the band of the very dose the engine names.
                (e,) = named
                explained += 1
                assert e["status"] == ("possible" if duration is None else "explained"), (r.report_id, e)
                dose = (pd.Timestamp(e["given_at"]), rules.resolve_drug(e["drug"]).generic)
                assert dose in [(b[2], b[3]) for b in inside], (r.report_id, e, onset)
                continue
            unexplained += 1
            # Not explained: outside every band of a dose given by the report; a band that holds the
            # onset is that of a dose given later (on the report's own day), or the pain has lasted
            # longer than the effect does (it is then not the effect).
            given_before = [b for b in inside if b[2] <= r.reported_at]
            if inside and not given_before:
                outside_later_dose += 1
            if given_before:
                assert duration is not None and duration > effect.lasts_at_most_days, (r.report_id, effect.cause,
                                                                                        given_before)
                outside_too_long += 1
    assert explained > 1000 and unexplained > 1000
    # Both exceptions occur in the sample, so the test exercises them.
    assert outside_later_dose > 0 and outside_too_long > 0


def test_the_timeline_draws_the_bands_of_effect_windows(sample_db, rules):
    patient = sample_db.scalar("SELECT min(patient_id) FROM administrations WHERE drug = 'pegfilgrastim'")
    tl = timeline.patient_timeline(sample_db, rules, patient, SEED_NOW)
    doses = timeline.mark_courses(rules, sample_db.query(
        "SELECT drug, given_at, stopped_at FROM administrations WHERE patient_id = ? ORDER BY given_at", [patient]))
    pd.testing.assert_frame_equal(tl.windows, timeline.effect_windows(rules, doses, SEED_NOW))
    peg = tl.windows[tl.windows["drug"] == "pegfilgrastim"].iloc[0]
    given = pd.Timestamp(peg["given_at"])
    # Days 0-4: from local midnight of the dose's day to midnight after day 4 (instants in the zone).
    day = given.date()
    assert (peg["start"], peg["end"]) == (pd.Timestamp(day).tz_localize("Europe/London"),
                                          pd.Timestamp(day + timedelta(days=5)).tz_localize("Europe/London"))


def test_a_day_is_the_calendar_date_of_the_stored_time(rules):
    taxane = _effect_of(rules, "taxane_acute_pain", "docetaxel")
    given = datetime(2026, 10, 24, 23, 30)  # the night before the clocks go back
    assert windows.window_days(taxane, given) == (datetime(2026, 10, 25).date(), datetime(2026, 10, 27).date())
    # From local midnight of the first day to local midnight after the last: 25 October is 25 hours long.
    start, end = windows.band(*windows.window_days(taxane, given))
    assert (start, end) == (pd.Timestamp("2026-10-25").tz_localize("Europe/London"),
                            pd.Timestamp("2026-10-28").tz_localize("Europe/London"))
    assert (end - start) == pd.Timedelta(hours=3 * 24 + 1)
    # 00:30 the next day is day 1, an hour after the dose.
    assert windows.effect_fit(taxane, given, datetime(2026, 10, 25, 0, 30), 0) == "explained"
    assert windows.effect_fit(taxane, given, datetime(2026, 10, 24, 23, 45), 0) is None  # day 0
    assert windows.effect_fit(taxane, given, datetime(2026, 10, 27, 8, 0), None) == "possible"
    assert windows.effect_fit(taxane, given, datetime(2026, 10, 29, 8, 0), 2) == "explained"  # onset day 3
    assert windows.effect_fit(taxane, given, datetime(2026, 10, 30, 8, 0), 8) is None  # onset before day 1
    assert windows.effect_fit(taxane, given, datetime(2026, 10, 28, 8, 0), None) is None  # day 4
    assert windows.effect_fit(taxane, given, datetime(2026, 11, 3, 8, 0), 8) is None  # lasted too long


def test_the_engine_decides_as_the_shared_window_definition(rules):
    """Every dose time against report times around it, hour by hour and with every duration: the engine's
    drug effects are exactly what dashboard.windows says."""
    drugs = {"pegfilgrastim": _effect_of(rules, "gcsf_bone_pain", "pegfilgrastim"),
             "docetaxel": _effect_of(rules, "taxane_acute_pain", "docetaxel"),
             "trastuzumab": _effect_of(rules, "anti_her2_infusion", "trastuzumab")}
    reported = datetime(2026, 11, 20, 9, 30)
    cases, expected = [], []
    for drug, effect in drugs.items():
        for hours in range(-3, 24 * 9, 5):
            given = reported - timedelta(hours=hours)
            for duration in (None, 0, 1, 2, 3, 5, 8):
                report = {"pain_score": 2, "duration_days": duration}
                cases.append(validate_case(make_case(report, meds=[(drug, given.isoformat())],
                                                     report_id=f"R-{len(cases)}")))
                expected.append(windows.effect_fit(effect, given, reported, duration))
    outcomes = triage_cases(rules, cases)
    got = [next((e["status"] for e in o.drug_effects), None) for o in outcomes]
    assert got == expected
    assert {"explained", "possible", None} <= set(got)
