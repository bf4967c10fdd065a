"""Rules (read-only): the rules in force, the drug windows, and a what-if triage."""

from datetime import datetime

import streamlit as st

from dashboard import ui
from dashboard.access import Action, Page
from dashboard.labels import FLAG_LABELS
from dashboard.models import REPORT_FLAGS, InputError, medications_from_lines, validate_case
from dashboard.retriage import retriage
from dashboard.rules import RulesError
from dashboard.rules_view import drug_table, parameter_table, rule_table, window_table
from dashboard.triage import triage_one

ctx = ui.guard(Page.RULES)
rules = ctx.rules
st.title("Rules")
st.caption(f"Version **{rules.version}** (a hash of the files in `rules/`); every result is stamped with it.")

tab_rules, tab_windows, tab_params, tab_whatif = st.tabs(["Rules", "Drug windows", "Thresholds", "What if…"])
with tab_rules:
    st.caption("The highest tier any rule reaches wins. Drug attribution never lowers a tier set by an emergency or "
               "urgent rule, and missing data never lowers a tier.")
    for r in rule_table(rules).to_dict("records"):
        with st.expander(f"**{r['Rule']}** · {r['Title']} · {r['Tier']}"):
            st.markdown(f"**When:** {r['Condition']}\n\n**Suggests:** {r['Suggests']}\n\n"
                        f"**Why:** {r['Rationale']}\n\n**Sources:** {r['Sources']}")
            st.code(r["Machine condition"], language="yaml")
with tab_windows:
    st.dataframe(window_table(rules), hide_index=True, width="stretch")
    with st.expander("Every drug name Backline recognises"):
        st.dataframe(drug_table(rules), hide_index=True, width="stretch")
with tab_params:
    st.dataframe(parameter_table(rules), hide_index=True, width="stretch")

with tab_whatif:
    st.caption("Triage a hypothetical report with the same engine. Nothing is stored.")
    with st.form("what_if"):
        c1, c2, c3, c4 = st.columns(4)
        cancer = c1.text_input("Cancer type", value="breast", max_chars=100, key="wi_cancer")
        bone = c2.checkbox("Known bone metastases")
        osteo = c3.checkbox("Osteoporosis")
        steroids = c4.checkbox("Long-term steroids")
        c1, c2, c3, c4 = st.columns(4)
        pain = c1.slider("Pain score", 0, 10, 5, key="wi_pain")
        onset = c2.selectbox("Onset", [None, "sudden", "gradual"], format_func=lambda v: v or "unknown")
        trend = c3.selectbox("Trend", [None, "improving", "stable", "worsening"], format_func=lambda v: v or "unknown")
        location = c4.selectbox("Where", [None, "cervical", "thoracic", "lumbar", "sacral"], format_func=lambda v: v or "unknown")
        c1, c2 = st.columns(2)
        duration_days = c1.number_input("Duration (days)", min_value=0, max_value=36500, value=None)
        temperature = c2.number_input("Temperature °C", min_value=30.0, max_value=45.0, value=None, step=0.1, format="%.1f")
        cols = st.columns(4)
        flags = {f: cols[i % 4].checkbox(FLAG_LABELS[f], key=f"wi_{f}") for i, f in enumerate(REPORT_FLAGS)}
        st.markdown("**Medications** (one per line: `drug, days before the report`; leave days empty if unknown)")
        meds_text = st.text_area("Medications", value="pegfilgrastim, 2", height=90, label_visibility="collapsed",
                                 max_chars=4000, key="wi_meds")
        submitted = st.form_submit_button("Triage", type="primary", key="submit_what_if")
    if submitted:
        reported = datetime(2026, 1, 15, 12, 0)
        try:
            meds = medications_from_lines(meds_text, reported)
            case = validate_case({
                "report_id": "WHAT-IF",
                "patient": {"patient_id": "WHAT-IF", "cancer_type": cancer, "bone_metastases": bone,
                            "osteoporosis": osteo, "long_term_steroids": steroids},
                "medications": meds,
                "report": {"reported_at": reported.isoformat(), "pain_score": pain, "onset": onset, "trend": trend,
                           "location": location, "duration_days": duration_days, "temperature_c": temperature, **flags},
            })
        except InputError as exc:
            ui.show_input_error(exc)
        else:
            out = triage_one(rules, case)
            st.markdown(f"{ui.tier_badge(rules, out.tier)} &nbsp; rules fired: **{', '.join(out.rule_ids)}** · "
                        f"respond within {out.respond_within_minutes} min", unsafe_allow_html=True)
            st.markdown("**Suspected causes:** " + (", ".join(rules.cause_label(c) for c in out.causes) or "none"))
            if out.unrecognised_drugs:
                st.warning("Unrecognised drugs: " + ", ".join(out.unrecognised_drugs))
            st.json(out.contract(), expanded=False)

if ctx.user.may(Action.RELOAD_RULES):
    st.divider()
    st.markdown("#### Reload the rules and re-triage (admin)")
    st.caption("Validates the files in `rules/` again. If they validate, every stored report is re-triaged with "
               "them; open reports whose tier changes get a 're-triaged' entry in their history. If they do not "
               "validate, nothing changes and the current rules stay in force.")
    if st.button("Reload and re-triage", type="primary", key="reload_rules"):
        try:
            fresh = ui.reload_rules()
        except RulesError as exc:
            st.error(f"The rules on disk do not validate; the rules in force are unchanged.\n\n`{exc}`")
        else:
            stats = ctx.db.transaction(lambda con: retriage(con, fresh, now=ui.local_now()))
            ui.clear_caches()
            ui.flash(f"Rules {fresh.version} in force: {stats.reports:,} reports re-triaged in {stats.seconds:.1f} s; "
                     f"{stats.changed_open} open reports changed tier.")
            st.rerun()
