"""The Plotly figures, asserted on their traces and shapes (AppTest cannot look inside a chart)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from dashboard import charts
from dashboard.timeline import patient_timeline

NOW = datetime(2026, 11, 20, 12, 0)


def local(day: str) -> pd.Timestamp:
    """Local midnight of a day, as an instant in the service's zone (where every band starts and ends)."""
    return pd.Timestamp(day).tz_localize("Europe/London")


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


def _bands(fig) -> set[tuple[str, pd.Timestamp, pd.Timestamp, str]]:
    """Each band as (drug row, x0, x1, fill), the row found from the band's vertical extent."""
    rows = list(fig.layout.yaxis2.categoryarray)
    out = set()
    for s in fig.layout.shapes:
        if s.type == "rect":
            (row,) = [d for i, d in enumerate(rows) if s.y0 < i < s.y1]
            assert (s.xref, s.yref) == ("x2", "y2")
            out.add((row, pd.Timestamp(s.x0), pd.Timestamp(s.x1), s.fillcolor))
    return out


def _midnight(value) -> pd.Timestamp:
    """Local midnight of a time's day, in the service's zone."""
    t = pd.Timestamp(value)
    t = t.tz_convert("Europe/London") if t.tz is not None else t
    return pd.Timestamp(t.date()).tz_localize("Europe/London")


def _days(midnight: pd.Timestamp, n: int) -> pd.Timestamp:
    """Local midnight n calendar days later (a day across a change of the clocks is 23 or 25 hours)."""
    return pd.Timestamp(midnight.date() + pd.Timedelta(days=n)).tz_localize("Europe/London")


def _expected_bands(rules, doses: pd.DataFrame, now: datetime) -> set[tuple[str, pd.Timestamp, pd.Timestamp, str]]:
    """The bands drugs.yaml asks for, worked out here: an onset window start_day..end_day counts calendar
    days after the dose's date (day 0), so its band runs from midnight starting day start_day to midnight
    ending day end_day; an open-ended window runs from the first dose to the end of today."""
    out = set()
    for d in doses.itertuples():
        day = _midnight(d.given_at)
        for e in rules.effects_for(d.generic):
            w = e.onset_window
            fill = charts.WINDOW_FILL if e.back_pain else charts.LONG_WINDOW_FILL
            if w.end_day is None:
                first = _midnight(doses.loc[doses["generic"] == d.generic, "given_at"].min())
                out.add((d.generic, _days(first, w.start_day), _days(_midnight(now), 1), fill))
            else:
                out.add((d.generic, _days(day, w.start_day), _days(day, w.end_day + 1), fill))
    return out


def test_timeline_bands_start_and_end_at_the_rules_window_days(tl, rules):
    assert not tl.doses["is_course"].any()  # doses only: each dose's window is its own band
    fig = charts.timeline_figure(tl, now=NOW)
    bands = _bands(fig)
    assert bands == _expected_bands(rules, tl.doses, NOW)
    # Two worked by hand. Pegfilgrastim, days 0-4: given Fri 29 May 11:37, a band from the start of
    # 29 May to the end of 2 Jun.
    assert ("pegfilgrastim", local("2026-05-29"), local("2026-06-03"), charts.WINDOW_FILL) in bands
    # Docetaxel, days 1-3: given 28 May 11:48, a band from the start of 29 May to the end of 31 May.
    assert ("docetaxel", local("2026-05-29"), local("2026-06-01"), charts.WINDOW_FILL) in bands
    # Its neuropathy window (day 0 on, not a back-pain window) from the first dose to the end of today.
    assert ("docetaxel", local("2026-05-28"), local("2026-11-21"), charts.LONG_WINDOW_FILL) in bands


def test_timeline_band_edges_at_the_turn_of_the_day(rules):
    """A dose a minute before midnight: its days are counted from that date, not from 24 hours later."""
    from dashboard.timeline import Timeline, effect_windows, mark_courses

    doses = mark_courses(rules, pd.DataFrame({
        "administration_id": [1, 2], "drug": ["pegfilgrastim", "docetaxel"],
        "given_at": pd.to_datetime(["2026-11-02 23:59", "2026-11-03 00:00"]),
        "stopped_at": pd.to_datetime([None, None]),
        "cycle": [1, 1], "cycle_day": [2, 1], "regimen": ["x", "x"]}))
    doses["generic"] = doses["drug"]
    reports = pd.DataFrame({"report_id": ["R-1"], "reported_at": [pd.Timestamp("2026-11-05 09:00")],
                            "pain_score": [5], "tier": ["soon"], "position": ["-"], "cause_labels": [""]})
    tl = Timeline(patient={}, regimens=pd.DataFrame(columns=["start_date", "cycle_days"]), doses=doses,
                  windows=effect_windows(rules, doses, NOW), reports=reports,
                  events=pd.DataFrame(columns=["report_id", "acted_at", "action", "actor", "note"]))
    bands = _bands(charts.timeline_figure(tl, now=NOW))
    assert ("pegfilgrastim", local("2026-11-02"), local("2026-11-07"), charts.WINDOW_FILL) in bands
    assert ("docetaxel", local("2026-11-04"), local("2026-11-07"), charts.WINDOW_FILL) in bands
    assert bands == _expected_bands(rules, doses, NOW)


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


def test_response_ecdf_steps_by_report_with_targets_and_ticks_in_words():
    frame = pd.DataFrame({"tier": ["emergency"] * 3 + ["routine"] * 2, "minutes_to_ack": [30, 5, 0, 600, 5000]})
    fig = charts.response_ecdf(frame, {"emergency": 15, "urgent": 120, "routine": 4320})
    assert {t.name for t in fig.data} == {"emergency", "routine", "emergency target", "routine target"}
    (e,) = traces(fig, "emergency")
    assert list(e.x) == [0.5, 5, 30]  # sorted; under a minute drawn at half a minute on the log axis
    assert list(e.y) == pytest.approx([1 / 3, 2 / 3, 1])
    assert e.line.shape == "hv"
    assert list(e.customdata) == ["0 min", "5 min", "30 min"]
    (r,) = traces(fig, "routine")
    assert list(r.customdata) == ["10 h 00 min", "3 d 11 h"]
    targets = {t.name: list(t.x) for t in fig.data if t.name.endswith("target")}
    assert targets == {"emergency target": [15, 15], "routine target": [4320, 4320]}  # data units on the log axis
    assert "3 d 0 h" in traces(fig, "routine target")[0].hovertemplate
    assert fig.layout.xaxis.type == "log"
    ticks = dict(zip(fig.layout.xaxis.tickvals, fig.layout.xaxis.ticktext))
    assert (ticks[1], ticks[15], ticks[120], ticks[1440], ticks[4320]) == ("1 min", "15 min", "2 h", "1 d", "3 d")


def test_response_outcomes_stack_to_each_tier_reports():
    by_tier = pd.DataFrame({"tier": ["emergency", "urgent"], "reports": [9, 5], "answered_in_time": [5, 3],
                            "answered_late": [2, 1], "unanswered_past_target": [1, 0],
                            "unanswered_within_target": [1, 1]})
    fig = charts.response_outcomes(by_tier, {"emergency": "EMERGENCY", "urgent": "URGENT"})
    assert fig.layout.barmode == "stack"
    assert [t.name for t in fig.data] == ["answered in time", "answered late", "unanswered, past target",
                                          "unanswered, within target"]
    for i, tier in enumerate(["EMERGENCY", "URGENT"]):
        assert all(t.y[i] == tier and t.orientation == "h" for t in fig.data)
        assert sum(t.x[i] for t in fig.data) == by_tier["reports"][i]
    assert list(traces(fig, "unanswered, past target")[0].x) == [1, 0]
    # Patterns as well as colours tell them apart.
    assert len({t.marker.pattern.shape for t in fig.data}) == 4


def test_response_outcomes_from_the_figures_of_a_real_database(sample_db, rules):
    from dashboard import metrics
    from tests.conftest import SEED_NOW

    panels = [p for (p,) in sample_db.rows("SELECT panel_id FROM panels")]
    rt = metrics.response_times(sample_db, rules, panels, SEED_NOW.date() - timedelta(days=90), SEED_NOW.date(),
                                SEED_NOW)
    fig = charts.response_outcomes(rt.by_tier)
    totals = [sum(t.x[i] for t in fig.data) for i in range(len(rt.by_tier))]
    assert totals == list(rt.by_tier["reports"]) and sum(totals) == rt.reports
    assert sum(traces(fig, "unanswered, past target")[0].x) == rt.past_target
    volumes = charts.weekly_volumes(rt.volumes)
    assert sum(sum(t.y) for t in volumes.data) == rt.reports


def test_weekly_charts():
    weekly = pd.DataFrame({"week": [date(2026, 11, 2), date(2026, 11, 9)] * 2, "tier": ["urgent"] * 2 + ["soon"] * 2,
                           "within_target": [0.5, 0.75, 1.0, 0.9], "reports": [4, 8, 10, 12]})
    trend = charts.weekly_trend(weekly)
    assert {t.name for t in trend.data} == {"urgent", "soon"}
    assert list(next(t for t in trend.data if t.name == "urgent").y) == [0.5, 0.75]
    assert list(trend.layout.yaxis.range) == [0, 1.05]
    volumes = charts.weekly_volumes(weekly)
    assert volumes.layout.barmode == "stack"
    # Each week's stack adds up to its reports: 4 + 10 and 8 + 12.
    stacked: dict = {}
    for t in volumes.data:
        assert t.type == "bar"
        for week, n in zip(t.x, t.y):
            stacked[pd.Timestamp(week).date()] = stacked.get(pd.Timestamp(week).date(), 0) + n
    assert stacked == {date(2026, 11, 2): 14, date(2026, 11, 9): 20}
    assert [t.name for t in volumes.data] == ["urgent", "soon"]  # highest tier at the bottom of the stack
    # Patterns as well as colours tell the tiers apart.
    assert {t.marker.pattern.shape for t in volumes.data} == {"/", "."}


def _course_timeline(rules):
    """A timeline with a letrozole course (stopped), a running apixaban course and docetaxel doses."""
    from dashboard.timeline import Timeline, effect_windows, mark_courses

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
                    windows=effect_windows(rules, doses, NOW), reports=reports, events=events)


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
    assert list(taxane["start"]) == [local("2026-10-21"), local("2026-11-11")]
    assert list(taxane["end"]) == [local("2026-10-24"), local("2026-11-14")]
    assert taxane["back_pain"].all()
    # Aromatase-inhibitor symptoms from day 14 of the course until it stopped; not a back-pain window.
    (ai,) = w[w["cause"] == "ai_arthralgia"].itertuples()
    assert (ai.start, ai.end, ai.back_pain) == (local("2025-06-15"), local("2026-10-01"), False)
    fig = charts.timeline_figure(tl, now=NOW)
    fills = {(pd.Timestamp(s.x0), s.fillcolor) for s in fig.layout.shapes if s.type == "rect"}
    assert (local("2026-10-21"), charts.WINDOW_FILL) in fills
    assert (local("2025-06-15"), charts.LONG_WINDOW_FILL) in fills
