"""The response-times page as a lead uses it: figures as of now, unanswered reports counted, times in
words, and the reports behind a chosen figure."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dashboard import metrics
from tests.conftest import SEED_NOW
from tests.test_pages import LEAD, app_db, open_app, texts  # noqa: F401  (app_db is a fixture)

NOW = SEED_NOW + timedelta(hours=6)


@pytest.fixture
def lead_page(app_db, monkeypatch):  # noqa: F811
    """The page opened by a lead at a fixed time, on every panel, over the sample's last 90 days."""
    monkeypatch.setattr("dashboard.ui.local_now", lambda: NOW)
    panels = [p for (p,) in app_db.rows("SELECT panel_id FROM panels ORDER BY panel_id")]
    period = (NOW.date() - timedelta(days=90), NOW.date())
    at = open_app(LEAD, "response_times")
    at.multiselect(key="metrics_panels").set_value(panels).run()
    assert not at.exception, [e.message for e in at.exception]
    expected = metrics.response_times(app_db, load_rules(), panels, *period, NOW)
    return at, expected


def load_rules():
    from dashboard.rules import load_rules
    from tests.conftest import ROOT

    return load_rules(ROOT / "rules")


def table(at, column: str):
    (found,) = [d.value for d in at.dataframe if column in d.value.columns]
    return found


def test_the_page_counts_unanswered_reports_as_of_now(lead_page):
    at, rt = lead_page
    assert rt.past_target > 0 and rt.within_target >= 0
    words = texts(at)
    assert f"{rt.reports:,} reports;" in words
    assert f"{rt.past_target:,} unanswered past their target, counted as late" in words
    assert f"{rt.within_target:,} unanswered and still within target" in words
    assert "tier in force when it was first answered, or its current tier while it waits" in words
    shown = table(at, "resolve_target_minutes")  # the by-tier table
    assert list(shown["unanswered_past_target"]) == list(rt.by_tier["unanswered_past_target"])
    assert list(shown["within_target"]) == pytest.approx(list(rt.by_tier["within_target"]))
    # Times in words, as the metrics give them.
    assert list(shown["p90_ack"]) == [metrics.in_words(m) for m in rt.by_tier["p90_ack"]]
    assert shown["p90_ack"].str.fullmatch(r"\d+ min|\d+ h \d\d min|\d+ d \d+ h").all()
    assert list(shown["target_minutes"]) == ["15 min", "2 h", "1 d", "3 d"]
    assert list(shown["resolve_target_minutes"]) == ["4 h", "1 d", "7 d", "28 d"]


@pytest.mark.parametrize("tier, which", [("emergency", "answered late"), ("routine", "unanswered, past target")])
def test_a_lead_opens_the_reports_behind_a_figure(lead_page, tier, which):
    at, rt = lead_page
    box = at.selectbox(key="metrics_behind")
    assert box.value is None and not [d for d in at.dataframe if "answered_by" in d.value.columns]
    expected = metrics.reports_behind(rt.timings, tier, which)
    assert f"{tier.capitalize()}: {which} ({len(expected):,})" in box.options  # the count on the choice
    box.set_value(f"{tier}: {which}").run()
    assert not at.exception, [e.message for e in at.exception]
    assert len(expected) > 0
    shown = table(at, "answered_by")
    assert list(shown["report_id"]) == list(expected["report_id"])
    assert list(shown["answered_by"]) == list(expected["answered_by"])
    assert list(shown["outcome"]) == list(expected["outcome"])
    assert set(shown["tier"].str.split().str[-1]) == {tier.upper()}
    assert {"reported_at", "answered_at", "time_to_answer", "late_by", "resolved_at"} <= set(shown.columns)
    if which == "answered late":
        assert (shown["answered_by"] != "").all() and (shown["late_by"] != "").all()
    else:
        assert (shown["answered_by"] == "").all() and shown["time_to_answer"].str.startswith("waited ").all()


def test_a_click_on_a_bar_opens_the_reports_it_counts(lead_page):
    """Every bar of the outcome chart, clicked, names the figure whose reports it counts: as many
    reports as the bar is long, of its tier and its answer."""
    from dashboard import charts

    _, rt = lead_page
    fig = charts.response_outcomes(rt.by_tier)
    clicked = 0
    for trace_no, trace in enumerate(fig.data):
        for tier, length in zip(trace.customdata, trace.x):
            choice = metrics.choice_from_click([{"curve_number": trace_no, "customdata": tier, "x": length}])
            assert choice == f"{tier}: {trace.name}"
            listed = metrics.reports_behind(rt.timings, *choice.split(": ", 1))
            assert len(listed) == length and set(listed["tier"]) <= {tier}
            clicked += bool(length)
    assert clicked >= 4
    assert metrics.choice_from_click([]) is None
    assert metrics.choice_from_click([{"curve_number": 9, "customdata": "emergency"}]) is None
