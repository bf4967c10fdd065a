"""The Plotly figures, asserted on their traces and shapes (AppTest cannot look inside a chart)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from dashboard import charts
from dashboard.timeline import patient_timeline

NOW = datetime(2026, 11, 20, 12, 0)


@pytest.fixture(scope="module")
def tl(sample_db, rules):
    """The timeline of a patient on TCHP (pegfilgrastim, docetaxel, trastuzumab) with reports."""
    pid = sample_db.scalar(
        "SELECT a.patient_id FROM administrations a JOIN reports r USING (patient_id)"
        " WHERE a.drug = 'pegfilgrastim' GROUP BY 1 ORDER BY count(DISTINCT r.report_id) DESC, 1 LIMIT 1")
    return patient_timeline(sample_db, rules, pid, NOW)


def traces(fig, name):
    return [t for t in fig.data if t.name == name]


def test_timeline_has_a_row_per_drug_and_a_marker_per_dose(tl):
    fig = charts.timeline_figure(tl, now=NOW)
    (doses,) = traces(fig, "dose")
    given = tl.doses[~tl.doses["is_course"]]
    assert len(doses.x) == len(given)
    assert set(doses.y) == set(given["generic"])
    assert doses.xaxis == "x2"  # the drug rows share the time axis of the pain scores
    assert list(fig.layout.yaxis2.categoryarray) == list(dict.fromkeys(tl.doses["generic"]))


def test_timeline_pain_markers_by_tier_with_words_in_the_hover(tl):
    fig = charts.timeline_figure(tl, now=NOW)
    shown = 0
    for tier in ("emergency", "urgent", "soon", "routine"):
        for t in traces(fig, f"{tier} report"):
            expected = tl.reports[tl.reports["tier"] == tier]
            assert list(t.y) == list(expected["pain_score"])
            assert t.marker.color == charts.TIER_COLOUR[tier]
            assert t.marker.symbol == charts.TIER_SYMBOL[tier]  # shape as well as colour
            assert tier in t.hovertemplate
            shown += len(t.y)
    assert shown == len(tl.reports)


def test_timeline_windows_are_bands_on_their_drug_rows(tl):
    fig = charts.timeline_figure(tl, now=NOW)
    rows = list(fig.layout.yaxis2.categoryarray)
    bands = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(bands) == len(tl.windows[tl.windows["drug"].isin(rows)])
    peg = tl.windows[tl.windows["drug"] == "pegfilgrastim"].iloc[0]
    row = rows.index("pegfilgrastim")
    band = next(s for s in bands if pd.Timestamp(s.x0) == peg["start"] and s.y0 < row < s.y1)
    # Calendar days 0-4 after the dose: from the dose's own date to the end of day 4.
    assert pd.Timestamp(band.x0) == pd.Timestamp(peg["start"]).normalize()
    assert pd.Timestamp(band.x1) - pd.Timestamp(band.x0) == timedelta(days=5)
    assert band.y0 < rows.index("pegfilgrastim") < band.y1
    assert band.fillcolor == charts.WINDOW_FILL  # an explaining window, darker


def test_timeline_actions_as_ticks_and_range_selector(tl):
    fig = charts.timeline_figure(tl, now=NOW)
    (actions,) = traces(fig, "care-team action")
    assert len(actions.x) == len(tl.events)
    labels = [b.label for b in fig.layout.xaxis.rangeselector.buttons]
    assert labels == ["last cycle", "3 months", "all"]
    assert fig.layout.xaxis.rangeselector.buttons[0].count == tl.last_cycle_days


def test_compact_timeline_for_the_queue_detail(tl):
    reported = tl.reports["reported_at"].iloc[-1]
    fig = charts.timeline_figure(tl, since=reported - timedelta(days=42), until=reported, compact=True,
                                 highlight=reported)
    assert fig.layout.showlegend is False
    assert pd.Timestamp(fig.layout.xaxis2.range[0]) == reported - timedelta(days=42)
    assert any(a.text == "this report" for a in fig.layout.annotations)


def test_response_ecdf_marks_each_tier_target_on_the_log_axis():
    frame = pd.DataFrame({"tier": ["emergency"] * 3 + ["routine"] * 2, "minutes_to_ack": [5, 10, 30, 600, 5000]})
    fig = charts.response_ecdf(frame, {"emergency": 15, "urgent": 120, "routine": 4320})
    assert {t.name for t in fig.data} == {"emergency", "routine", "emergency target", "routine target"}
    targets = {t.name: list(t.x) for t in fig.data if t.name.endswith("target")}
    assert targets == {"emergency target": [15, 15], "routine target": [4320, 4320]}  # data units on the log axis
    assert fig.layout.xaxis.type == "log"


def test_weekly_charts():
    weekly = pd.DataFrame({"week": [date(2026, 11, 2), date(2026, 11, 9)] * 2, "tier": ["urgent"] * 2 + ["soon"] * 2,
                           "within_target": [0.5, 0.75, 1.0, 0.9], "reports": [4, 8, 10, 12]})
    trend = charts.weekly_trend(weekly)
    assert {t.name for t in trend.data} == {"urgent", "soon"}
    assert list(next(t for t in trend.data if t.name == "urgent").y) == [0.5, 0.75]
    volumes = charts.weekly_volumes(weekly)
    assert volumes.layout.barmode == "relative" or volumes.layout.barmode is None
    assert sum(sum(t.y) for t in volumes.data) == 34
    # Patterns as well as colours tell the tiers apart.
    assert {t.marker.pattern.shape for t in volumes.data} == {"/", "."}


def _course_timeline(rules):
    """A timeline with a letrozole course (stopped), a running apixaban course and docetaxel doses."""
    from dashboard.timeline import Timeline, _windows, mark_courses

    doses = pd.DataFrame({
        "administration_id": [1, 2, 3, 4],
        "drug": ["letrozole", "apixaban", "docetaxel", "docetaxel"],
        "given_at": pd.to_datetime(["2025-06-01 09:00", "2026-10-01 08:00", "2026-10-20 10:00", "2026-11-10 10:00"]),
        "stopped_at": pd.to_datetime(["2026-09-30 09:00", None, None, None]),
        "cycle": [None, None, 1, 2], "cycle_day": [None, None, 1, 1], "regimen": [None, None, "docetaxel", "docetaxel"],
    })
    doses = mark_courses(rules, doses)
    reports = pd.DataFrame({"report_id": ["R-1"], "reported_at": [pd.Timestamp("2026-11-12 09:00")], "pain_score": [5],
                            "tier": ["soon"], "position": ["-"], "cause_labels": [""]})
    events = pd.DataFrame(columns=["report_id", "acted_at", "action", "actor", "note"])
    return Timeline(patient={}, regimens=pd.DataFrame(columns=["start_date", "cycle_days"]), doses=doses,
                    windows=_windows(rules, doses, NOW), reports=reports, events=events)


def test_courses_are_bars_from_start_to_stop_or_today(rules):
    tl = _course_timeline(rules)
    assert list(tl.doses["is_course"]) == [True, True, False, False]
    fig = charts.timeline_figure(tl, now=NOW)
    (courses,) = traces(fig, "course")
    segments = [(courses.x[i], courses.x[i + 1], courses.y[i]) for i in range(0, len(courses.x), 3)]
    assert segments == [(pd.Timestamp("2025-06-01 09:00"), pd.Timestamp("2026-09-30 09:00"), "letrozole"),
                        (pd.Timestamp("2026-10-01 08:00"), pd.Timestamp(NOW), "apixaban")]
    assert "stopped 30 Sep 2026" in courses.text[0] and "running" in courses.text[3]
    (doses,) = traces(fig, "dose")
    assert list(doses.y) == ["docetaxel", "docetaxel"]


def test_windows_count_calendar_days_from_each_dose_and_run_with_a_course(rules):
    tl = _course_timeline(rules)
    w = tl.windows
    taxane = w[w["cause"] == "taxane_acute_pain"].sort_values("start")
    # Days 1-3 after each docetaxel dose: from the day after the dose to the end of day 3.
    assert list(taxane["start"]) == [pd.Timestamp("2026-10-21"), pd.Timestamp("2026-11-11")]
    assert list(taxane["end"]) == [pd.Timestamp("2026-10-24"), pd.Timestamp("2026-11-14")]
    assert taxane["back_pain"].all()
    # Aromatase-inhibitor symptoms from day 14 of the course until it stopped; not a back-pain window.
    (ai,) = w[w["cause"] == "ai_arthralgia"].itertuples()
    assert (ai.start, ai.end, ai.back_pain) == (pd.Timestamp("2025-06-15"), pd.Timestamp("2026-10-01"), False)
    fig = charts.timeline_figure(tl, now=NOW)
    fills = {(pd.Timestamp(s.x0), s.fillcolor) for s in fig.layout.shapes if s.type == "rect"}
    assert (pd.Timestamp("2026-10-21"), charts.WINDOW_FILL) in fills
    assert (pd.Timestamp("2025-06-15"), charts.LONG_WINDOW_FILL) in fills
