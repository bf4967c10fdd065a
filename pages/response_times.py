"""Response times (team leads): acknowledgement and resolution against each tier's target."""

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
rt = ui.cached_response_times(path, rules, rules.version, tuple(panels), start, end, hours, version)
targets = {t: rules.respond_within_minutes(t) for t in rules.tier_ids}

st.caption(f"{rt.reports:,} reports; {rt.repeats:,} came in while the same patient had one open (grouped as repeats). "
           f"In hours: weekdays {hours[0]:02d}:00-{hours[1]:02d}:00. Each report is measured against the tier in force "
           "when it was first answered.")
by_tier = rt.by_tier.assign(tier=[ui.tier_text(rules, t) for t in rt.by_tier["tier"]])
st.dataframe(by_tier, hide_index=True, width="stretch", column_config={
    "tier": "Tier",
    "target_minutes": st.column_config.NumberColumn("Target (min)"),
    "reports": "Reports", "acknowledged": "Acknowledged",
    "within_target": st.column_config.ProgressColumn("Within target", format="percent", min_value=0, max_value=1),
    "median_ack": st.column_config.NumberColumn("Median to ack (min)", format="%.0f"),
    "p90_ack": st.column_config.NumberColumn("90th pct to ack (min)", format="%.0f"),
    "resolved": "Resolved",
    "median_resolve": st.column_config.NumberColumn("Median to resolve (min)", format="%.0f"),
    "p90_resolve": st.column_config.NumberColumn("90th pct to resolve (min)", format="%.0f"),
})

left, right = st.columns(2)
with left:
    st.markdown("#### Time to acknowledgement")
    st.plotly_chart(charts.response_ecdf(rt.distribution, targets), key="ecdf", config={"displaylogo": False})
with right:
    st.markdown("#### Within target, week by week")
    st.plotly_chart(charts.weekly_trend(rt.weekly), key="trend", config={"displaylogo": False})

left, right = st.columns(2)
with left:
    st.markdown("#### In hours and out of hours")
    st.dataframe(rt.hours.assign(tier=[ui.tier_text(rules, t) for t in rt.hours["tier"]]), hide_index=True,
                 width="stretch", column_config={
                     "tier": "Tier", "period": "When reported", "reports": "Reports",
                     "within_target": st.column_config.ProgressColumn("Within target", format="percent", min_value=0, max_value=1),
                     "median_ack": st.column_config.NumberColumn("Median (min)", format="%.0f"),
                     "p90_ack": st.column_config.NumberColumn("90th pct (min)", format="%.0f")})
with right:
    st.markdown("#### Reports per week")
    st.plotly_chart(charts.weekly_volumes(rt.volumes), key="volumes", config={"displaylogo": False})

st.markdown("#### By nurse (first responder)")
st.dataframe(rt.nurses, hide_index=True, width="stretch", column_config={
    "nurse": "Nurse", "reports": "Reports answered first",
    "within_target": st.column_config.ProgressColumn("Within target", format="percent", min_value=0, max_value=1),
    "median_ack": st.column_config.NumberColumn("Median (min)", format="%.0f"),
    "emergencies": "Emergencies",
    "median_ack_emergency": st.column_config.NumberColumn("Median, emergencies (min)", format="%.0f")})

st.markdown("#### Open and overdue now, oldest first")
late = metrics.overdue(queue.build_queue(ui.cached_open_reports(path, tuple(panels), version), rules, ui.local_now()))
if late.empty:
    st.success("Nothing open is past its target.")
else:
    st.dataframe(late.assign(tier=[ui.tier_text(rules, t) for t in late["tier"]]), hide_index=True, width="stretch",
                 column_config={"report_id": "Report", "panel_id": "Panel", "patient_name": "Patient", "mrn": "MRN",
                                "tier": "Tier", "clock": "Clock", "status": "Status",
                                "reported_at": st.column_config.DatetimeColumn("Reported", format="ddd D MMM, HH:mm")})

if ctx.user.may(Action.EXPORT_AUDIT):
    st.markdown("#### Audit trail")
    # The file is built only when asked for.
    st.download_button("Export the audit trail of the period (CSV)",
                       lambda: metrics.audit_csv(metrics.audit_trail(ctx.db, panels, start, end)),
                       file_name=f"backline-audit-{start}-{end}.csv", mime="text/csv", key="audit_export")
