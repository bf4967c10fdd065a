"""Triage queue (nurses): open reports by tier and response clock; the detail and the actions."""

from datetime import datetime, timedelta

import streamlit as st

from dashboard import charts, queue, ui, workflow
from dashboard.access import Action, Page
from dashboard.labels import (ESCALATION_LABELS, ONSET_LABELS, ONSET_QUESTION,
                              OUTCOME_LABELS, PAIN_PATTERN_LABELS, PAIN_PATTERN_QUESTION, answer, duration,
                              red_flags, report_answers)
from dashboard.models import InputError
from dashboard.timeline import record_lines

ctx = ui.guard(Page.QUEUE)
rules, path = ctx.rules, str(ctx.db.path)
st.title("Triage queue")
ui.show_flash()

panels = ui.panel_picker(ctx, key="queue_panels")
if not panels:
    st.info("Choose at least one panel to see its open reports.")
    st.stop()


def select(report_id: str) -> None:
    st.session_state["selected_report"] = report_id


# --------------------------------------------------------------------------- new phone report

if ctx.user.may(Action.NEW_REPORT):
    with st.expander("Enter a phone report", icon=":material/call:"):
        search = st.text_input("Find the patient (name, MRN or id)", key="new_report_search", max_chars=100)
        found = ui.find_patients_safe(ctx, search, panels) if search.strip() else None
        if found is not None and found.empty:
            st.warning("No patient in the chosen panels matches.")
        if found is not None and not found.empty:
            options = dict(zip(found["patient_id"], found["name"] + " · " + found["mrn"] + " · " + found["cancer_type"]))
            patient_id = st.selectbox("Patient", list(options), format_func=options.get, key="nr_patient")
            record = ui.cached_patient_record(path, rules, rules.version, patient_id, ctx.now.replace(second=0),
                                              ctx.version)
            if record is not None:
                st.info("**From the record** (used by the triage; not asked on the phone):\n"
                        + "\n".join(f"- {line}" for line in record_lines(record, ctx.now)), icon=":material/folder_shared:")
            with st.form("new_report", clear_on_submit=False):
                c1, c2, c3 = st.columns(3)
                day = c1.date_input("Reported on", value=ctx.now.date(), max_value=ctx.now.date())
                at = c2.time_input("at", value=ctx.now.time().replace(second=0), step=timedelta(minutes=5))
                pain = c3.slider("Pain score (0-10)", 0, 10, 3, key="nr_pain")
                c1, c2 = st.columns(2)
                pattern = c1.radio(f"**{PAIN_PATTERN_QUESTION}** (ask)", list(PAIN_PATTERN_LABELS), index=None,
                                   format_func=PAIN_PATTERN_LABELS.get, key="nr_pain_pattern", horizontal=True)
                onset = c2.radio(f"**{ONSET_QUESTION}** (ask)", list(ONSET_LABELS), index=None,
                                 format_func=ONSET_LABELS.get, key="nr_onset", horizontal=True)
                c1, c2, c3 = st.columns(3)
                trend = c1.selectbox("Getting better, the same, or worse?", [None, "improving", "stable", "worsening"],
                                     format_func=lambda v: v or "not asked", key="nr_trend")
                location = c2.selectbox("Where in the back?", [None, "cervical", "thoracic", "lumbar", "sacral"],
                                        format_func=lambda v: v or "not asked", key="nr_location")
                duration_days = c3.number_input("For how many days?", min_value=0, max_value=36500, value=None, step=1,
                                                key="nr_duration_days")
                st.markdown("**Red flags: ask every one**")
                flags = ui.red_flag_questions("nr_")
                c1, c2 = st.columns([1, 3])
                temperature = c1.number_input("Temperature °C (if taken)", min_value=30.0, max_value=45.0, value=None,
                                              step=0.1, format="%.1f", key="nr_temperature")
                note = c2.text_area("Note", max_chars=2000, height=68, key="nr_note")
                if st.form_submit_button("Triage and add to the queue", type="primary", key="submit_new_report"):
                    unasked = [(f, q) for f, q, v in (("report.pain_pattern", PAIN_PATTERN_QUESTION, pattern),
                                                     ("report.onset", ONSET_QUESTION, onset)) if v is None]
                    try:
                        if unasked:
                            raise InputError([(f, f"ask \"{q}\" and choose an answer (\"Not sure\" if the "
                                                  "patient cannot say)") for f, q in unasked])
                        done = workflow.submit_report(
                            ctx.db, rules, ctx.user, ui.local_now(), patient_id=patient_id, note=note or None,
                            report={"reported_at": datetime.combine(day, at), "pain_score": pain,
                                    "pain_pattern": answer(pattern), "onset": answer(onset), "trend": trend,
                                    "location": location, "duration_days": duration_days,
                                    "temperature_c": temperature, **flags},
                        )
                    except InputError as exc:
                        ui.show_input_error(exc)
                    else:
                        ui.clear_caches()
                        select(done.report_id)
                        ui.flash(f"Report {done.report_id} added: {ui.tier_text(rules, done.tier)} "
                                 f"({', '.join(done.rule_ids)}).", "success")
                        st.rerun()


# --------------------------------------------------------------------------- the live queue


@st.fragment(run_every=ctx.settings.queue_refresh_seconds)
def live_queue() -> None:
    now = ui.local_now()
    version = ui.data_version(ctx.db)  # fresh at every refresh
    q = queue.build_queue(ui.cached_open_reports(path, tuple(panels), version), rules, now)
    # New emergencies stay in a banner until someone acknowledges them.
    for row in q.unacknowledged_emergencies.itertuples():
        with st.container(border=True):
            c1, c2 = st.columns([5, 1], vertical_alignment="center")
            c1.markdown(
                f"{ui.tier_badge(rules, 'emergency')} &nbsp; **{row.patient_name}** ({row.mrn}) · reported "
                f"{row.reported_at:%H:%M} · **{row.clock}** · {row.red_flags or 'see report'}",
                unsafe_allow_html=True,
            )
            if c2.button("Open", key=f"open_{row.report_id}", type="primary"):
                select(row.report_id)
                st.rerun(scope="app")
    counts = q.rows["tier"].value_counts() if not q.rows.empty else {}
    cols = st.columns(5)
    for col, tier in zip(cols, rules.tier_ids):
        col.metric(ui.tier_text(rules, tier), int(counts.get(tier, 0)) if len(counts) else 0)
    cols[4].metric("Overdue, unanswered", int((q.reports["overdue"]).sum()) if not q.reports.empty else 0)
    table = queue.queue_table(q, rules)
    ids = table["Report"].tolist()
    st.session_state["queue_ids"] = ids
    selected = st.session_state.get("selected_report")
    heads = dict(zip(q.reports["report_id"], q.reports["group_head"])) if not q.reports.empty else {}
    row_of = ids.index(heads.get(selected, selected)) if heads.get(selected, selected) in ids else None
    event = st.dataframe(
        ui.style_tiers(table, tiers=q.rows["tier"]),
        key=f"queue_table_{hash(version)}_{'-'.join(panels)}",
        on_select="rerun",
        selection_mode="single-row",
        selection_default={"selection": {"rows": [row_of]}} if row_of is not None else None,
        hide_index=True,
        width="stretch",
        height=min(38 * (len(table) + 1) + 4, 560),
        column_config={
            "Tier": st.column_config.TextColumn("Tier", width=104),
            "Clock": st.column_config.TextColumn("Response clock", width=150,
                                                 help="Time left to acknowledge, or how long overdue"),
            "Patient": st.column_config.TextColumn("Patient", width=185),
            "Pain": st.column_config.NumberColumn("Pain", format="%d/10", width=56),
            "Red flags": st.column_config.TextColumn("Red flags", width=190),
            "Suspected": st.column_config.TextColumn("Suspected", width=170),
            "Status": st.column_config.TextColumn("Status", width=130),
            "Repeats": st.column_config.TextColumn("+", width=40, help="Further open reports from the same patient"),
            "Waiting": st.column_config.TextColumn("Waiting", width=90),
            "Panel": None if len(panels) == 1 else st.column_config.TextColumn("Panel", width=70),
            "Report": st.column_config.TextColumn("Report", width=90),
        },
    )
    rows = event.selection.rows if event is not None else []
    if rows and ids[rows[0]] != heads.get(selected, selected):
        select(ids[rows[0]])
        st.rerun(scope="app")
    if table.empty:
        st.success("No open reports in these panels.")


live_queue()

# --------------------------------------------------------------------------- the selected report

report_id = st.session_state.get("selected_report")
if not report_id:
    st.caption("Select a report in the queue to see why it was triaged so, what to do, and its history.")
    st.stop()
detail = ui.cached_report_detail(path, rules, rules.version, report_id, ctx.version)
if detail is None or detail["panel_id"] not in panels:
    st.caption("Select a report in the queue.")
    st.stop()

st.subheader(f"{detail['patient_name']} · {detail['mrn']} · {detail['cancer_type']}")
tier = detail["tier"]
target = rules.respond_within_minutes(tier)
st.markdown(
    f"{ui.tier_badge(rules, tier)} &nbsp; report **{detail['report_id']}** · {detail['source']} · "
    f"{detail['reported_at']:%a %d %b %H:%M} · pain **{detail['pain_score']}/10** · respond within "
    f"{duration(target)}" + ("" if detail["is_open"] else " · **resolved**")
    + (f" · tier overridden from {detail['triage_tier']}" if detail["override_tier"] else ""),
    unsafe_allow_html=True,
)
now = ui.local_now()
group = queue.group_members(ui.cached_open_reports(path, tuple(panels), ctx.version), report_id)
if len(group) > 1:
    st.info(f"Grouped with {len(group) - 1} more open report(s) from this patient: {', '.join(group[1:])}. "
            "Actions apply to the whole group.")

flags = red_flags(detail, fever_c=rules.parameter("neutropenic_fever_c"),
                  low_c=rules.parameter("neutropenic_low_temperature_c"))
st.markdown(f"**Red flags:** {', '.join(flags) or 'none reported'}  \n**Answers:** " + " · ".join(report_answers(detail)))
if detail["rules_version"] != rules.version:
    st.warning(f"Triaged under rules {detail['rules_version']}; the rules in force are {rules.version}.")
if detail["override_tier"]:
    st.caption(f"The guidance below is that of the triage ({detail['triage_tier']}); the tier was overridden to "
               f"{detail['override_tier']}.")

left, right = st.columns([1, 1], gap="large")
with left:
    ui.show_what_to_do(detail["explained"])
with right:
    ui.show_why(detail["explained"])
left, right = st.columns([3, 2], gap="large")
with left:
    tl = ui.cached_timeline(path, rules, rules.version, detail["patient_id"], ctx.version, now.date())
    if tl is not None:
        st.markdown("#### The six weeks before this report")
        reported = detail["reported_at"]
        st.plotly_chart(charts.timeline_figure(tl, since=reported - timedelta(days=42),
                                               until=min(now, reported + timedelta(days=7)), height=420, compact=True,
                                               highlight=reported),
                        key="detail_timeline", config={"displaylogo": False})
with right:
    st.markdown("#### History")
    events = detail["events"]
    if events.empty:
        st.caption("No action yet.")
    for e in events.to_dict("records"):
        st.markdown(f"- {e['acted_at']:%d %b %H:%M} · **{e['actor']}** ({e['role']}): {queue.describe_event(e)}")

# --------------------------------------------------------------------------- actions

st.markdown("#### Act on this report")
if not ctx.user.may(Action.ACKNOWLEDGE):
    st.caption(f"Read-only: the {ctx.user.role.value} role does not act on reports.")
    st.stop()


def perform(**fields) -> None:
    try:
        result = workflow.act(ctx.db, ctx.user, ui.local_now(), report_ids=group, **fields)
    except InputError as exc:
        ui.show_input_error(exc)
        return
    ui.clear_caches()
    others = [p for p in result.already if p.actor_name != ctx.user.name]
    msg = f"{fields['action'].replace('_', ' ').capitalize()} recorded for {len(group)} report(s)."
    if others:
        first = others[0]
        msg += f" Note: already {first.action.replace('_', ' ')}d by {first.actor_name} at {first.acted_at:%H:%M}."
    ui.flash(msg, "warning" if others else "success")
    if fields["action"] == "resolve":
        st.session_state.pop("selected_report", None)
    st.rerun()


tabs = ["Acknowledge", "Call back", "Escalate", "Resolve"] + (["Override tier"] if ctx.user.may(Action.OVERRIDE) else [])
tab = st.tabs(tabs)
with tab[0]:
    if st.button("Acknowledge", type="primary", key="ack"):
        perform(action="acknowledge")
with tab[1], st.form("call_back"):
    reached = st.radio("Outcome of the call", [True, False], format_func=lambda v: "Reached the patient" if v else "Not reached",
                       horizontal=True, key="cb_reached")
    note = st.text_area("What was said", max_chars=2000, height=68, key="cb_note")
    if st.form_submit_button("Record call-back", type="primary", key="submit_call_back"):
        perform(action="call_back", reached=reached, note=note or None)
with tab[2], st.form("escalate"):
    to = st.selectbox("Escalate to", list(ESCALATION_LABELS), format_func=ESCALATION_LABELS.get, key="esc_to")
    note = st.text_area("Handover note", max_chars=2000, height=68, key="esc_note")
    if st.form_submit_button("Escalate", type="primary", key="submit_escalate"):
        perform(action="escalate", escalated_to=to, note=note or None)
with tab[3], st.form("resolve"):
    outcome = st.selectbox("Outcome", list(OUTCOME_LABELS), format_func=OUTCOME_LABELS.get, key="res_outcome")
    note = st.text_area("Note", max_chars=2000, height=68, key="res_note")
    if st.form_submit_button("Resolve", type="primary", key="submit_resolve"):
        perform(action="resolve", outcome=outcome, note=note or None)
if ctx.user.may(Action.OVERRIDE):
    with tab[4], st.form("override"):
        new_tier = st.selectbox("New tier", rules.tier_ids, format_func=lambda t: ui.tier_text(rules, t), key="ov_tier")
        reason = st.text_area("Reason (required)", max_chars=2000, height=68, key="ov_note")
        if st.form_submit_button("Override tier", type="primary", key="submit_override"):
            perform(action="override", tier_after=new_tier, note=reason or None)
