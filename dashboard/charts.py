"""Plotly figures, built by pure functions: frames in, figure out (tested on their traces)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard import metrics
from dashboard.labels import ACTION_LABELS, TIER_COLOURS
from dashboard.timeline import Timeline

TIER_ORDER = ["emergency", "urgent", "soon", "routine"]
TIER_COLOUR = {t: TIER_COLOURS[t][0] for t in TIER_ORDER}
TIER_SYMBOL = {"emergency": "diamond", "urgent": "triangle-up", "soon": "circle", "routine": "circle-open"}
WINDOW_FILL = "rgba(31, 78, 140, 0.16)"
LONG_WINDOW_FILL = "rgba(120, 120, 120, 0.10)"
COURSE_COLOUR = "rgba(27, 27, 27, 0.55)"
FONT = dict(family="DejaVu Sans, Arial, sans-serif", size=13, color="#1b1b1b")


def timeline_figure(tl: Timeline, *, since: datetime | None = None, until: datetime | None = None,
                    now: datetime | None = None, height: int = 560, compact: bool = False,
                    highlight: datetime | None = None) -> go.Figure:
    """Pain scores, actions and doses on one shared time axis, with the expected effect windows.

    Row 1: pain scores, marker colour and shape by tier (the tier's name is in the hover and the
    legend, so colour is never the only cue), care-team actions as ticks along the bottom.
    Row 2: a row per drug, a tick per dose, a bar per continuous course (from its start to its stop,
    or to today), shaded bands where its effects are expected (calendar days after each dose).
    """
    drugs = list(dict.fromkeys(tl.doses["generic"].fillna(tl.doses["drug"]).tolist()))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.13 if compact else 0.09,
                        row_heights=[0.45, 0.55], subplot_titles=("Back-pain reports", "Doses and expected effect windows"))
    reports = tl.reports
    for tier in TIER_ORDER:
        sub = reports[reports["tier"] == tier]
        if sub.empty:
            continue
        fig.add_trace(go.Scatter(
            x=sub["reported_at"], y=sub["pain_score"], mode="markers", name=f"{tier} report",
            legendgroup="tiers",
            marker=dict(color=TIER_COLOUR[tier], symbol=TIER_SYMBOL[tier], size=11,
                        line=dict(width=1, color="#1b1b1b")),
            customdata=sub[["report_id", "position", "cause_labels"]].to_numpy(),
            hovertemplate=("%{x|%d %b %Y %H:%M}<br>pain %{y}/10 · " + tier +
                           "<br>%{customdata[0]}<br>%{customdata[1]}<br>%{customdata[2]}<extra></extra>"),
        ), row=1, col=1)
    if not reports.empty:
        fig.add_trace(go.Scatter(
            x=reports["reported_at"], y=reports["pain_score"], mode="lines", name="pain trend",
            line=dict(color="rgba(60,60,60,0.35)", width=1), hoverinfo="skip", showlegend=False,
        ), row=1, col=1)
    if not tl.events.empty:
        ev = tl.events
        fig.add_trace(go.Scatter(
            x=ev["acted_at"], y=[-0.6] * len(ev), mode="markers", name="care-team action",
            marker=dict(symbol="line-ns-open", size=12, color="#444", line=dict(width=2)),
            customdata=ev[["action", "actor", "report_id"]].assign(
                action=ev["action"].map(lambda a: ACTION_LABELS.get(a, a))).to_numpy(),
            hovertemplate="%{x|%d %b %H:%M}<br>%{customdata[0]} by %{customdata[1]}<br>%{customdata[2]}<extra></extra>",
        ), row=1, col=1)
    # Windows as bands on each drug's row (categorical axis positions are 0..n-1).
    position = {d: i for i, d in enumerate(drugs)}
    bands = [
        dict(type="rect", x0=w.start, x1=w.end, y0=position[w.drug] - 0.38, y1=position[w.drug] + 0.38, xref="x2",
             yref="y2", fillcolor=WINDOW_FILL if w.back_pain else LONG_WINDOW_FILL, line=dict(width=0),
             layer="below")
        for w in tl.windows.itertuples(index=False) if w.drug in position
    ]
    fig.update_layout(shapes=bands)  # one call: adding shapes one by one costs 3 ms each
    # Invisible hover points for the windows (shapes have no hover).
    if not tl.windows.empty:
        wins = tl.windows[tl.windows["drug"].isin(position)]
        fig.add_trace(go.Scatter(
            x=wins["start"], y=wins["drug"], mode="markers", name="expected effect window",
            marker=dict(symbol="square", size=10, color=WINDOW_FILL, line=dict(width=1, color="#1f4e8c")),
            customdata=wins[["label", "window"]].assign(last=wins["end"] - timedelta(days=1)).to_numpy(),
            hovertemplate=("%{customdata[0]} expected (%{customdata[1]} after a dose)<br>"
                           "from %{x|%d %b} to %{customdata[2]|%d %b}<extra></extra>"),
        ), row=2, col=1)
    rows = tl.doses.assign(row=tl.doses["generic"].fillna(tl.doses["drug"]))
    is_course = rows["is_course"] if "is_course" in rows else pd.Series(False, index=rows.index)
    courses, doses = rows[is_course.astype(bool)], rows[~is_course.astype(bool)]
    if not courses.empty:
        today = pd.Timestamp(now or until or end_of(tl))
        xs, ys, texts = [], [], []
        for c in courses.itertuples():
            stopped = c.stopped_at if not pd.isna(c.stopped_at) else None
            last = stopped if stopped is not None else today
            words = (f"{c.drug} ({c.class_label}) from {c.given_at:%d %b %Y}, "
                     + (f"stopped {stopped:%d %b %Y}" if stopped is not None else "running"))
            xs += [c.given_at, last, None]
            ys += [c.row, c.row, None]
            texts += [words, words, None]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", name="course", line=dict(color=COURSE_COLOUR, width=9),
            text=texts, hovertemplate="%{text}<extra></extra>",
        ), row=2, col=1)
    fig.add_trace(go.Scatter(
        x=doses["given_at"], y=doses["row"], mode="markers", name="dose",
        marker=dict(symbol="line-ns-open", size=16, color="#1b1b1b", line=dict(width=3)),
        customdata=doses[["drug", "regimen", "cycle", "cycle_day", "class_label"]].to_numpy(),
        hovertemplate=("%{customdata[0]} (%{customdata[4]})<br>%{x|%d %b %Y %H:%M}<br>%{customdata[1]}, "
                       "cycle %{customdata[2]} day %{customdata[3]}<extra></extra>"),
    ), row=2, col=1)
    fig.update_yaxes(title_text="pain (0-10)", range=[-1.2, 10.5], dtick=2, row=1, col=1)
    fig.update_yaxes(categoryorder="array", categoryarray=drugs, autorange="reversed",
                     row=2, col=1)
    end = until or now or end_of(tl)
    if since is not None:
        fig.update_xaxes(range=[since, end + timedelta(days=1)], row=2, col=1)
    if highlight is not None:
        for row in (1, 2):
            fig.add_vline(x=highlight, line_dash="dash", line_color="#b3261e", line_width=1.5, row=row, col=1)
        fig.add_annotation(x=highlight, y=10.4, text="this report", showarrow=False, xanchor="right",
                           font=dict(size=11, color="#b3261e"), row=1, col=1)
    if not compact:
        fig.update_xaxes(
            rangeselector=dict(buttons=[
                dict(count=tl.last_cycle_days, label="last cycle", step="day", stepmode="backward"),
                dict(count=3, label="3 months", step="month", stepmode="backward"),
                dict(step="all", label="all"),
            ], font=dict(size=12), y=1.12),
            row=1, col=1,
        )
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=70 if not compact else 30, b=10), font=FONT,
                      showlegend=not compact,
                      legend=dict(orientation="h", yanchor="top", y=-0.08, x=0),
                      hovermode="closest", plot_bgcolor="white")
    fig.update_xaxes(showgrid=True, gridcolor="#eeeeee")
    fig.update_yaxes(showgrid=True, gridcolor="#eeeeee")
    return fig


def end_of(tl: Timeline) -> datetime:
    """The latest thing on a timeline: a report or a dose."""
    return max(tl.reports["reported_at"].max() if not tl.reports.empty else datetime.min,
               tl.doses["given_at"].max() if not tl.doses.empty else datetime.min)


# Axis ticks for durations on a log scale: every one a round figure in words.
DURATION_TICKS = [1, 5, 15, 30, 60, 120, 240, 480, 1440, 2880, 4320, 10080, 20160, 40320, 86400]
RESPONSE_COLOURS = {
    metrics.IN_TIME: "#2e6b34", metrics.LATE: "#c77800", metrics.PAST_TARGET: "#b3261e",
    metrics.WITHIN_TARGET: "#9e9e9e",
}
RESPONSE_PATTERNS = {metrics.IN_TIME: "", metrics.LATE: "/", metrics.PAST_TARGET: "x", metrics.WITHIN_TARGET: "."}


def _duration_axis(fig: go.Figure, low: float, high: float) -> None:
    """A log axis of minutes, ticked in words (15 min, 2 h, 3 d) over the range shown."""
    ticks = [t for t in DURATION_TICKS if low / 2 <= t <= high * 2] or DURATION_TICKS
    fig.update_xaxes(type="log", tickvals=ticks, ticktext=[metrics.tick_words(t) for t in ticks])


def response_ecdf(frame: pd.DataFrame, targets: dict[str, int]) -> go.Figure:
    """Share of reports answered within each time, by tier (a step per report), with each tier's target.

    ``minutes_to_ack`` is the time to the first answer, or for a report unanswered past its target
    the time it has waited so far (so the curve never reaches 100% while one waits). Times under a
    minute are drawn at half a minute (the axis is logarithmic).
    """
    data = frame.dropna(subset=["minutes_to_ack"])
    fig = go.Figure()
    for tier in TIER_ORDER:
        minutes = np.sort(data.loc[data["tier"] == tier, "minutes_to_ack"].to_numpy(dtype="float64"))
        if not len(minutes):
            continue
        share = np.arange(1, len(minutes) + 1) / len(minutes)
        fig.add_trace(go.Scatter(
            x=np.maximum(minutes, 0.5), y=share, mode="lines", line_shape="hv", name=tier,
            line=dict(color=TIER_COLOUR[tier], width=2),
            customdata=[metrics.in_words(m) for m in minutes],
            hovertemplate=f"{tier}: %{{y:.0%}} within %{{customdata}}<extra></extra>",
        ))
    shown = [t for t in targets if t in set(data["tier"])]
    for i, tier in enumerate(shown):
        minutes = targets[tier]
        # A trace, not a shape: its position is in data units on the log axis, and it hovers.
        fig.add_trace(go.Scatter(
            x=[minutes, minutes], y=[0, 1.04 + 0.05 * (i % 2)], mode="lines+text", name=f"{tier} target",
            line=dict(color=TIER_COLOUR[tier], dash="dot", width=1.5), text=["", f"{tier} target"],
            textposition="middle center", textfont=dict(size=11, color=TIER_COLOUR[tier]), showlegend=False,
            hovertemplate=f"{tier} target: {metrics.in_words(minutes)}<extra></extra>",
        ))
    values = [*data["minutes_to_ack"].clip(lower=0.5), *(targets[t] for t in shown)]
    _duration_axis(fig, min(values, default=1), max(values, default=1))
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=50, b=10), font=FONT, yaxis_title="share of reports",
                      xaxis_title="time from report to first answer (log scale)", yaxis_tickformat=".0%",
                      legend_title_text="tier")
    return fig


def response_outcomes(by_tier: pd.DataFrame, labels: dict[str, str] | None = None) -> go.Figure:
    """Each tier's reports as one bar, stacked by what became of them: answered in time, answered late,
    unanswered past target, unanswered within target (the four add up to the tier's reports)."""
    names = [(labels or {}).get(t, t) for t in by_tier["tier"]]
    columns = {metrics.IN_TIME: "answered_in_time", metrics.LATE: "answered_late",
               metrics.PAST_TARGET: "unanswered_past_target", metrics.WITHIN_TARGET: "unanswered_within_target"}
    fig = go.Figure()
    for response in metrics.OUTCOME_BARS:  # trace order: a click is read back by metrics.choice_from_click
        column = columns[response]
        fig.add_trace(go.Bar(
            y=names, x=by_tier[column].tolist(), orientation="h", name=response,
            marker=dict(color=RESPONSE_COLOURS[response], pattern=dict(shape=RESPONSE_PATTERNS[response])),
            customdata=list(by_tier["tier"]), hovertemplate=f"%{{y}}: %{{x}} {response}<extra></extra>",
        ))
    fig.update_layout(barmode="stack", height=80 + 45 * max(len(names), 1), margin=dict(l=10, r=10, t=30, b=10),
                      font=FONT, xaxis_title="reports", legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    fig.update_yaxes(autorange="reversed")  # highest tier on top
    return fig


def weekly_trend(weekly: pd.DataFrame) -> go.Figure:
    """Share of reports answered within target, per week and tier (unanswered past target count as late)."""
    fig = px.line(weekly, x="week", y="within_target", color="tier", markers=True,
                  category_orders={"tier": TIER_ORDER}, color_discrete_map=TIER_COLOUR,
                  symbol="tier", labels={"within_target": "answered within target", "week": "week"})
    fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10), font=FONT)
    return fig


def weekly_volumes(volumes: pd.DataFrame) -> go.Figure:
    """Reports per week, stacked by tier (the stack's height is the week's reports)."""
    fig = px.bar(volumes, x="week", y="reports", color="tier", category_orders={"tier": TIER_ORDER},
                 color_discrete_map=TIER_COLOUR, pattern_shape="tier",
                 pattern_shape_map={"emergency": "x", "urgent": "/", "soon": ".", "routine": ""},
                 labels={"reports": "reports", "week": "week"})
    fig.update_layout(barmode="stack", height=340, margin=dict(l=10, r=10, t=30, b=10), font=FONT, bargap=0.1)
    return fig
