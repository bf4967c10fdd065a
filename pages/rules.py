"""Rules: the rules in force, the drug windows and drug list, a what-if triage, and (admin) the impact of
changed rules on the open reports before they are applied."""

from datetime import datetime

import streamlit as st

from dashboard import ui
from dashboard.access import Action, Page
from dashboard.labels import (ONSET_LABELS, ONSET_QUESTION, PAIN_PATTERN_LABELS,
                              PAIN_PATTERN_QUESTION, answer, target_text)
from dashboard.models import InputError, medications_from_lines, validate_case
from dashboard.queue import explain_outcome
from dashboard.rules import RulesError
from dashboard.rules_view import (RulesChanged, apply_rules, cancer_table, drug_table, impact_table, parameter_table,
                                  rule_table, rules_impact, transition_lines, window_table)
from dashboard.triage import triage_one

ctx = ui.guard(Page.RULES)
rules = ctx.rules
st.title("Rules")
ui.show_flash()
st.caption(f"Version **{rules.version}** (a hash of the files in `rules/`); every result is stamped with it.")

admin = ctx.user.may(Action.RELOAD_RULES)
names = ["Rules", "Drugs and windows", "Thresholds", "What if…"] + (["Changed rules (admin)"] if admin else [])
tabs = st.tabs(names)
with tabs[0]:
    st.caption("The highest tier any rule reaches wins. A drug effect may lower moderate pain to routine only when "
               "its timing fits closely (R2), never a tier set by an emergency or urgent rule; missing data never "
               "lowers a tier.")
    for r in rule_table(rules).to_dict("records"):
        with st.expander(f"**{r['Rule']}** · {r['Title']} · {r['Tier']}"):
            st.markdown(f"**When:** {r['Condition']}\n\n**Suggests:** {r['Suggests']}\n\n"
                        f"**Why:** {r['Rationale']}\n\n**Sources:** {r['Sources']}")
            st.code(r["Machine condition"], language="yaml")
with tabs[1]:
    st.caption("Onset windows count calendar days after each dose: day 0 is the dose's own date.")
    st.dataframe(window_table(rules), hide_index=True, width="stretch")
    st.markdown(f"#### Every drug Backline recognises ({len(rules.drugs)})")
    st.caption("A drug taken continuously is recorded as a course from its start to its stop; any other drug as "
               "doses. A name not listed is unrecognised, reported back, and counted as possible anticancer "
               "treatment for recent SACT.")
    st.dataframe(drug_table(rules), hide_index=True, width="stretch", key="drug_list")
    with st.expander("Cancer types"):
        st.dataframe(cancer_table(rules), hide_index=True, width="stretch")
with tabs[2]:
    st.dataframe(parameter_table(rules), hide_index=True, width="stretch")

with tabs[3]:
    st.caption("Triage a hypothetical report with the same engine. Nothing is stored.")
    reported = datetime(2026, 1, 15, 12, 0)
    with st.form("what_if"):
        c1, c2, c3, c4, c5 = st.columns(5)
        cancer = c1.selectbox("Cancer type", list(rules.cancer_types), key="wi_cancer",
                              format_func=lambda c: rules.cancer_types[c].label)
        bone = c2.checkbox("Known bone metastases", key="wi_bone_metastases")
        osteo = c3.checkbox("Osteoporosis", key="wi_osteoporosis")
        steroids = c4.checkbox("Long-term steroids", key="wi_long_term_steroids")
        platelets = c5.checkbox("Low platelets", key="wi_low_platelets")
        c1, c2, c3 = st.columns(3)
        pain = c1.slider("Pain score", 0, 10, 5, key="wi_pain")
        pattern = c2.radio(PAIN_PATTERN_QUESTION, list(PAIN_PATTERN_LABELS), format_func=PAIN_PATTERN_LABELS.get,
                           index=3, key="wi_pain_pattern", horizontal=True)
        onset = c3.radio(ONSET_QUESTION, list(ONSET_LABELS), format_func=ONSET_LABELS.get, index=2, key="wi_onset",
                         horizontal=True)
        c1, c2, c3, c4 = st.columns(4)
        trend = c1.selectbox("Trend", [None, "improving", "stable", "worsening"], format_func=lambda v: v or "unknown",
                             key="wi_trend")
        location = c2.selectbox("Where", [None, "cervical", "thoracic", "lumbar", "sacral"],
                                format_func=lambda v: v or "unknown", key="wi_location")
        duration_days = c3.number_input("For how many days", min_value=0, max_value=36500, value=None,
                                        key="wi_duration_days")
        temperature = c4.number_input("Temperature °C", min_value=30.0, max_value=45.0, value=None, step=0.1,
                                      format="%.1f", key="wi_temperature")
        flags = ui.red_flag_questions("wi_")
        st.markdown("**Medications**, one per line, days counted back from the report: `drug, days` is a dose that "
                    "many days before (for a drug taken continuously, a course started then and still running); "
                    "`drug, started, stopped` is a course, e.g. `letrozole, 400, 30` started 400 days before and "
                    "stopped 30 days before.")
        meds_text = st.text_area("Medications", value="pegfilgrastim, 2", height=90, label_visibility="collapsed",
                                 max_chars=4000, key="wi_meds")
        submitted = st.form_submit_button("Triage", type="primary", key="submit_what_if")
    if submitted:
        try:
            case = validate_case({
                "report_id": "WHAT-IF",
                "patient": {"patient_id": "WHAT-IF", "cancer_type": cancer, "bone_metastases": bone,
                            "osteoporosis": osteo, "long_term_steroids": steroids, "low_platelets": platelets},
                "medications": medications_from_lines(meds_text, reported),
                "report": {"reported_at": reported.isoformat(), "pain_score": pain, "pain_pattern": answer(pattern),
                           "onset": answer(onset), "trend": trend, "location": location, "duration_days": duration_days,
                           "temperature_c": temperature, **flags},
            })
            out = triage_one(rules, case)
        except InputError as exc:
            ui.show_input_error(exc)
        else:
            st.markdown(f"{ui.tier_badge(rules, out.tier)} &nbsp; rules fired: **{', '.join(out.rule_ids)}** · "
                        f"respond within {target_text(out.respond_within_minutes)}", unsafe_allow_html=True)
            ui.show_explanation(rules, explain_outcome(rules, out, reported, duration_days))
            st.json(out.contract(), expanded=False)

if admin:
    with tabs[4]:
        st.markdown("#### Re-triage the stored reports with the rules on disk (admin)")
        ui.show_flash("rules")  # the result of the last apply, here where it was confirmed
        st.caption("The rules in force are the files of the rules folder: every app server notices a change at its "
                   "next refresh, and rules that do not validate stop the app. Reports already stored keep the tier "
                   "their rules gave them until they are re-triaged. First see what the rules on disk would change: "
                   "the same engine triages the stored open reports with them, and nothing is written. Then confirm: "
                   "every stored report is re-triaged with exactly those rules, and each open report whose tier "
                   "moves gets a 're-triaged' entry in its history.")
        if st.button("Check the rules on disk", key="preview_rules", icon=":material/difference:"):
            st.session_state.pop("rules_impact", None)
            try:
                fresh = ui.rules_on_disk()
            except RulesError as exc:
                st.error(f"The rules on disk do not validate; the rules in force are unchanged.\n\n`{exc}`")
            else:
                st.session_state["rules_impact"] = rules_impact(ctx.db, fresh)
        impact = st.session_state.get("rules_impact")
        if impact is not None:
            same = impact.rules_version == rules.version
            st.markdown(f"**Rules on disk: version {impact.rules_version}** "
                        + ("(the same as the rules in force)" if same else f"(in force: {rules.version})"))
            st.markdown(f"**{impact.count} of {impact.open_reports} open reports would move tier.**"
                        + ("" if not impact.count else "\n" + "\n".join(f"- {t}" for t in transition_lines(impact))))
            if impact.count:
                st.dataframe(impact_table(impact), hide_index=True, width="stretch", key="impact_table",
                             column_config={"Reported": st.column_config.DatetimeColumn(format="D MMM HH:mm")})
            st.caption("Nothing has been written. Closed reports are re-triaged too, without history entries.")
            c1, c2, _ = st.columns([3, 1, 3], vertical_alignment="center")
            if c1.button(f"Confirm: apply rules {impact.rules_version} and re-triage", type="primary",
                         key="confirm_reload"):
                try:
                    fresh, stats = apply_rules(ctx.db, ctx.settings.rules_dir, impact.rules_version, ui.local_now())
                except (RulesChanged, RulesError) as exc:
                    st.session_state.pop("rules_impact", None)
                    st.error(f"Not applied: {exc}. Check the rules on disk again.")
                else:
                    ui.install_rules()
                    ui.clear_caches()
                    st.session_state.pop("rules_impact", None)
                    differs = stats.changed_open != impact.count
                    ui.flash(
                        f"Rules {fresh.version} in force: {stats.reports:,} reports re-triaged in {stats.seconds:.1f} s; "
                        f"{stats.changed_open} open reports changed tier"
                        + (f" (the preview showed {impact.count}: reports arrived or closed in between)." if differs
                           else ", as previewed.") + " Each has a 're-triaged' entry in its history.", "success",
                        where="rules")
                    st.rerun()
            if c2.button("Cancel", key="cancel_reload"):
                st.session_state.pop("rules_impact", None)
                st.rerun()
