"""Response times (team leads): answer and resolution against each tier's targets, and the reports
behind each figure."""

from datetime import timedelta

import streamlit as st

from dashboard import charts, metrics, queue, ui
from dashboard.access import Action, Page

ctx = ui.guard(Page.METRICS)
rules, path = ctx.rules, str(ctx.db.path)
st.title("Response times")

c1, c2 = st.columns([3, 2])
with c1:
    panels = ui.panel_picker(ctx, key="metrics_panels")
today = ctx.now.date()
period = c2.date_input("Reports made between", value=(today - timedelta(days=90), today), max_value=today,
                       key="metrics_period")
if not panels or not isinstance(period, tuple) or len(period) != 2:
    st.info("Choose panels and a start and end date.")
    st.stop()
start, end = period
hours = (ctx.settings.in_hours_start, ctx.settings.in_hours_end)
version = ctx.version
now = ctx.now.replace(second=0, microsecond=0)
rt = ui.cached_response_times(path, rules, rules.version, tuple(panels), start, end, hours, version, now)
targets = {t: rules.respond_within_minutes(t) for t in rules.tier_ids}
tier_words = {t: ui.tier_text(rules, t) for t in rules.tier_ids}

st.caption(
    f"{rt.reports:,} reports; {rt.repeats:,} came in while the same patient had one open (repeats). "
    f"As of {now:%d %b %Y %H:%M}: {rt.past_target:,} unanswered past their target, counted as late; "
    f"{rt.within_target:,} unanswered and still within target, not counted yet. "
    f"In hours: weekdays {hours[0]:02d}:00-{hours[1]:02d}:00. Each report is measured against the tier in force "
    "when it was first answered, or its current tier while it waits. Median: the middle time; 90th percentile: "
    "the time within which at least 90% were answered (nearest rank); an unanswered report past its target "
    "counts with the time it has waited so far.")

TIMES = ["median_ack", "p90_ack", "median_resolve", "p90_resolve"]
by_tier = metrics.words_columns(rt.by_tier, TIMES).assign(
    tier=[tier_words[t] for t in rt.by_tier["tier"]],
    target_minutes=[metrics.tick_words(m) for m in rt.by_tier["target_minutes"]],
    resolve_target_minutes=[metrics.tick_words(m) for m in rt.by_tier["resolve_target_minutes"]])
share = {"min_value": 0, "max_value": 1, "format": "percent"}
st.dataframe(by_tier, hide_index=True, width="stretch", key="by_tier", column_config={
    "tier": "Tier", "target_minutes": "Answer within", "reports": "Reports", "answered": "Answered",
    "answered_in_time": "Answered in time", "answered_late": "Answered late",
    "unanswered_past_target": "Unanswered, past target", "unanswered_within_target": "Unanswered, within target",
    "within_target": st.column_config.ProgressColumn("Within target", **share),
    "median_ack": "Median to answer", "p90_ack": "90th percentile to answer",
    "resolve_target_minutes": "Resolve within", "resolved": "Resolved", "resolved_late": "Resolved late",
    "open_past_resolution_target": "Open past resolution target",
    "resolved_within_target": st.column_config.ProgressColumn("Resolved within target", **share),
    "median_resolve": "Median to resolve", "p90_resolve": "90th percentile to resolve", "repeats": "Repeats",
})

st.markdown("#### The reports behind a figure")
counts = {f"{tier}: {which}": n for tier, which, n in metrics.behind_choices(rt.timings, rules)}
if st.session_state.get("metrics_behind") not in (None, *counts):
    st.session_state["metrics_behind"] = None  # a bar clicked that lists nothing in this period
choice = st.selectbox(
    "Show the reports behind", list(counts), index=None, key="metrics_behind",
    format_func=lambda c: f"{rules.tier_by_id[c.split(': ', 1)[0]].label}: {c.split(': ', 1)[1]} ({counts[c]:,})",
    placeholder="Choose a figure, e.g. Emergency: answered late")
if choice is not None:
    tier, which = choice.split(": ", 1)
    behind = metrics.reports_behind(rt.timings, tier, which)
    st.dataframe(behind.assign(tier=[tier_words[t] for t in behind["tier"]]), hide_index=True, width="stretch",
                 key="behind_table", column_config={
                     "report_id": "Report", "patient_name": "Patient", "mrn": "MRN", "panel_id": "Panel",
                     "tier": "Tier",
                     "reported_at": st.column_config.DatetimeColumn("Reported", format="ddd D MMM YYYY, HH:mm"),
                     "in_hours": "When", "response": "Answer",
                     "answered_at": st.column_config.DatetimeColumn("Answered", format="ddd D MMM YYYY, HH:mm"),
                     "answered_by": "Answered by", "first_action": "First action", "time_to_answer": "Took",
                     "late_by": "Late by", "escalated_to": "Escalated to", "outcome": "What happened",
                     "resolved_at": st.column_config.DatetimeColumn("Resolved", format="ddd D MMM YYYY, HH:mm"),
                     "resolved_by": "Resolved by", "resolution": "Resolution",
                     "repeat": st.column_config.CheckboxColumn("Repeat")})

left, right = st.columns(2)
with left:
    st.markdown("#### What became of each tier's reports")

    def clicked() -> None:
        choice = metrics.choice_from_click(st.session_state["outcomes"].selection.points)
        if choice is not None:
            st.session_state["metrics_behind"] = choice

    st.plotly_chart(charts.response_outcomes(rt.by_tier, tier_words), key="outcomes", config={"displaylogo": False},
                    on_select=clicked, selection_mode="points")
    st.caption("Click a bar to list the reports it counts, above.")
with right:
    st.markdown("#### Time to first answer")
    st.plotly_chart(charts.response_ecdf(rt.distribution, targets), key="ecdf", config={"displaylogo": False})
    st.caption("A report still unanswered past its target is drawn at the time it has waited so far.")

left, right = st.columns(2)
with left:
    st.markdown("#### Within target, week by week")
    st.plotly_chart(charts.weekly_trend(rt.weekly), key="trend", config={"displaylogo": False})
with right:
    st.markdown("#### Reports per week")
    st.plotly_chart(charts.weekly_volumes(rt.volumes), key="volumes", config={"displaylogo": False})

st.markdown("#### In hours and out of hours")
hours_table = metrics.words_columns(rt.hours, ["median_ack", "p90_ack"])
st.dataframe(hours_table.assign(tier=[tier_words[t] for t in rt.hours["tier"]])[
                 ["tier", "period", "reports", "answered_in_time", "answered_late", "unanswered_past_target",
                  "unanswered_within_target", "within_target", "median_ack", "p90_ack"]],
             hide_index=True, width="stretch", key="hours_table", column_config={
                 "tier": "Tier", "period": "When reported", "reports": "Reports",
                 "answered_in_time": "Answered in time", "answered_late": "Answered late",
                 "unanswered_past_target": "Unanswered, past target",
                 "unanswered_within_target": "Unanswered, within target",
                 "within_target": st.column_config.ProgressColumn("Within target", **share),
                 "median_ack": "Median to answer", "p90_ack": "90th percentile to answer"})

st.markdown("#### By nurse (first responder)")
st.dataframe(metrics.words_columns(rt.nurses, ["median_ack", "median_ack_emergency"]), hide_index=True,
             width="stretch", key="nurses_table", column_config={
                 "nurse": "Nurse", "reports": "Reports answered first",
                 "within_target": st.column_config.ProgressColumn("Within target", **share),
                 "median_ack": "Median to answer", "emergencies": "Emergencies",
                 "median_ack_emergency": "Median to answer, emergencies"})

st.markdown("#### From alert to answer")
alerted = ui.cached_alert_response(path, rules, rules.version, tuple(panels), start, end, version, now)
if alerted.empty:
    st.caption("No alert went out for the reports of this period.")
else:
    st.dataframe(metrics.words_columns(alerted, ["median_minutes", "p90_minutes"]).assign(
                     tier=[tier_words[t] for t in alerted["tier"]]), hide_index=True, width="stretch",
                 key="alerts_table", column_config={
                     "tier": "Tier", "alerted": "Reports alerted", "answered": "Answered since",
                     "unanswered": "Not answered yet", "beyond_first_step": "Escalated past the first step",
                     "median_minutes": "Median, alert to answer", "p90_minutes": "90th percentile, alert to answer"})
    st.caption("From the first alert sent about a report to its first answer in Backline; a report not answered "
               "yet counts with the time since its first alert.")

st.markdown("#### Open and overdue now, oldest first")
late = metrics.overdue(queue.build_queue(ui.cached_open_reports(path, tuple(panels), version), rules, ctx.now))
if late.empty:
    st.success("Nothing open is past its target.")
else:
    st.dataframe(late.assign(tier=[tier_words[t] for t in late["tier"]]), hide_index=True, width="stretch",
                 column_config={"report_id": "Report", "panel_id": "Panel", "patient_name": "Patient", "mrn": "MRN",
                                "tier": "Tier", "clock": "Clock", "status": "Status",
                                "reported_at": st.column_config.DatetimeColumn("Reported", format="ddd D MMM, HH:mm")})

if ctx.user.may(Action.EXPORT_AUDIT):
    st.markdown("#### Audit trail")
    # The file is built only when asked for.
    st.download_button("Export the audit trail of the period (CSV)",
                       lambda: metrics.audit_csv(metrics.audit_trail(ctx.db, panels, start, end)),
                       file_name=f"backline-audit-{start}-{end}.csv", mime="text/csv", key="audit_export")
