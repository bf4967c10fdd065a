"""Patient timeline (physicians): doses, expected effect windows, reports and actions on one axis."""

import streamlit as st

from dashboard import charts, ui
from dashboard.access import Page

ctx = ui.guard(Page.TIMELINE)
rules, path = ctx.rules, str(ctx.db.path)
st.title("Patient timeline")

c1, c2 = st.columns([2, 3])
text = c1.text_input("Find a patient by name, MRN or id", key="timeline_search", max_chars=100,
                     placeholder="e.g. Smith, MRN2000003 or P-000001")
panels = ui.visible_panels(ctx)  # only patients of these panels
found = ui.find_patients_safe(ctx, text, panels) if text.strip() and panels else None
if found is None:
    st.caption("Search to open a patient's timeline.")
    st.stop()
if found.empty:
    st.warning("No patient matches.")
    st.stop()
options = dict(zip(found["patient_id"], found["name"] + " · " + found["mrn"] + " · " + found["cancer_type"]))
patient_id = c2.selectbox("Patient", list(options), format_func=options.get, key="timeline_patient")

tl = ui.cached_timeline(path, rules, rules.version, patient_id, ctx.version, ctx.now.date())
p = tl.patient
st.subheader(f"{ui.plain(p['name'])} · {ui.plain(p['mrn'])}")  # stored text, shown as typed
st.caption(
    ui.plain(p["cancer_type"]) + (" · known bone metastases" if p["bone_metastases"] else "")
    + (" · osteoporosis" if p["osteoporosis"] else "") + (" · long-term steroids" if p["long_term_steroids"] else "")
    + (" · low platelets" if p.get("low_platelets") else "")
    + f" · panel {ui.plain(p['panel_name'])} · born {p['date_of_birth']:%d %b %Y}"
)
if tl.doses.empty and tl.reports.empty:
    st.info("No doses or reports recorded for this patient.")
    st.stop()
st.plotly_chart(charts.timeline_figure(tl, now=ctx.now), key="timeline_chart", config={"displaylogo": False})
st.caption("Ticks are doses; bars are continuous courses, from their start to their stop (or to today). Shaded "
           "bands: where each drug's effects are expected, in calendar days after each dose (day 0 is the dose's "
           "date). Darker: back-pain effects (G-CSF, taxane, anti-HER2 infusion); lighter: aromatase-inhibitor and "
           "neuropathy windows. Marker shape and colour give the tier; hover for details.")

st.markdown("#### Reports and the drug effects that fit them")
reports = tl.reports.sort_values("reported_at", ascending=False)
st.dataframe(
    reports.assign(
        tier=[ui.tier_text(rules, t) for t in reports["tier"]],
        rules=[", ".join(r) for r in reports["rule_ids"]],
        status=["open" if o else "resolved" for o in reports["is_open"]],
    )[["reported_at", "report_id", "tier", "pain_score", "rules", "cause_labels", "position", "status"]],
    hide_index=True,
    width="stretch",
    column_config={
        "reported_at": st.column_config.DatetimeColumn("Reported", format="ddd D MMM YYYY, HH:mm"),
        "report_id": "Report",
        "tier": "Tier",
        "pain_score": st.column_config.NumberColumn("Pain", format="%d/10"),
        "rules": "Rules fired",
        "cause_labels": "Suspected causes",
        "position": st.column_config.TextColumn("Drug effects (explained or possible)", width="large"),
        "status": "Status",
    },
)

st.markdown("#### Regimens")
st.dataframe(
    tl.regimens, hide_index=True, width="stretch",
    column_config={
        "regimen_id": None,
        "name": "Regimen",
        "intent": "Intent",
        "cycle_days": st.column_config.NumberColumn("Cycle (days)"),
        "planned_cycles": st.column_config.NumberColumn("Planned cycles"),
        "start_date": st.column_config.DateColumn("Started", format="D MMM YYYY"),
        "end_date": st.column_config.DateColumn("Ended", format="D MMM YYYY"),
    },
)
