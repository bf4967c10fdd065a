"""Triage queue (nurses): open reports by tier and response clock; the detail and the actions."""

from datetime import datetime, timedelta

import streamlit as st

from dashboard import charts, queue, ui, workflow
from dashboard.access import Action, Page
from dashboard.labels import (DURATION_QUESTION, ESCALATION_LABELS, LOCATION_QUESTION, ONSET_LABELS, ONSET_QUESTION,
                              OUTCOME_LABELS, PAIN_PATTERN_LABELS, PAIN_PATTERN_QUESTION, PAIN_SCORE_QUESTION,
                              TEMPERATURE_QUESTION, TREND_QUESTION, duration, report_answers)
from dashboard.models import InputError
from dashboard.timeline import record_lines

ctx = ui.guard(Page.QUEUE)
rules, path, user = ctx.rules, str(ctx.db.path), ctx.user
st.title("Triage queue")
ui.show_flash("page")
alerts_status = ui.alerts_worker_status(ctx)
if alerts_status.running:
    st.caption(alerts_status.words, help="Emergencies, and reports past their target, are sent to the people on call "
                                         "and up their escalation chain until someone answers them here.")
else:
    st.warning(alerts_status.words, icon=":material/notifications_off:")

panels = ui.panel_picker(ctx, key="queue_panels")
visible = ui.visible_panels(ctx)  # the panels this person may see (the banner covers all of them)
acting = f"Acting as **{ui.plain(user.name)}** ({user.role.value})"


def select(report_id: str, *, from_table: bool = False) -> None:
    """Open a report. A form's state belongs to the report it was opened for: leaving a report
    clears what was typed for it. Opening from anywhere but the table redraws the table on it."""
    before = st.session_state.get("selected_report")
    if before and before != report_id:
        ui.forget_forms(before)
    st.session_state["selected_report"] = report_id
    if not from_table:
        st.session_state["queue_selection"] = st.session_state.get("queue_selection", 0) + 1


# A link in an alert (/?report=ID) opens its report once (within the panels this person may see).
linked = st.query_params.get("report")
if linked and ui.report_panel(ctx, linked) not in visible:
    st.warning("The report in the link is not in the panels you may see, or does not exist.")
elif linked and st.session_state.get("linked_report") != linked:
    st.session_state["linked_report"] = linked
    select(linked)

# --------------------------------------------------------------------------- new phone report

if user.may(Action.NEW_REPORT) and panels:
    with st.expander("Enter a phone report", icon=":material/call:"):
        ui.show_flash("new_report")
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
                        + "\n".join(f"- {ui.plain(line)}" for line in record_lines(record, ctx.now)),
                        icon=":material/folder_shared:")
            k = f"nr_{patient_id}"  # the form belongs to this patient
            with st.form(f"new_report_{patient_id}"):
                c1, c2, c3 = st.columns(3)
                day = c1.date_input("Reported on", value=ctx.now.date(), max_value=ctx.now.date(), key=f"{k}_day")
                at = c2.time_input("at", value=ctx.now.time().replace(second=0), step=timedelta(minutes=5),
                                   key=f"{k}_at")
                pain = c3.segmented_control(PAIN_SCORE_QUESTION, list(range(11)), default=None, key=f"{k}_pain")
                c1, c2 = st.columns(2)
                pattern = c1.radio(f"**{PAIN_PATTERN_QUESTION}** (ask)", list(PAIN_PATTERN_LABELS), index=None,
                                   format_func=PAIN_PATTERN_LABELS.get, key=f"{k}_pain_pattern", horizontal=True)
                onset = c2.radio(f"**{ONSET_QUESTION}** (ask)", list(ONSET_LABELS), index=None,
                                 format_func=ONSET_LABELS.get, key=f"{k}_onset", horizontal=True)
                c1, c2, c3 = st.columns(3)
                trend = c1.selectbox(TREND_QUESTION, [None, "improving", "stable", "worsening"],
                                     format_func=lambda v: v or "not asked", key=f"{k}_trend")
                location = c2.selectbox(LOCATION_QUESTION, [None, "cervical", "thoracic", "lumbar", "sacral"],
                                        format_func=lambda v: v or "not asked", key=f"{k}_location")
                duration_days = c3.number_input(DURATION_QUESTION, min_value=0, max_value=36500, value=None, step=1,
                                                key=f"{k}_duration_days")
                st.markdown("**Red flags: ask every one** (\"Could not ask\" counts as yes and is recorded as not asked)")
                answers = ui.red_flag_answers(k)
                c1, c2 = st.columns([1, 3])
                temperature = c1.number_input(TEMPERATURE_QUESTION, min_value=30.0, max_value=45.0, value=None,
                                              step=0.1, format="%.1f", key=f"{k}_temperature")
                note = c2.text_area("Note", max_chars=2000, height=68, key=f"{k}_note")
                st.caption(acting)
                if st.form_submit_button("Triage and add to the queue", type="primary", key=f"{k}_submit"):
                    try:
                        done = workflow.submit_phone_report(
                            ctx.db, rules, user, ui.local_now(), patient_id=patient_id, note=note,
                            reported_at=datetime.combine(day, at), pain_score=pain, pain_pattern=pattern,
                            onset=onset, flags=answers, trend=trend, location=location,
                            duration_days=duration_days, temperature_c=temperature)
                    except InputError as exc:
                        ui.show_input_error(exc, ui.REPORT_FIELD_LABELS)
                    else:
                        ui.clear_caches()
                        ui.forget_forms(k)
                        select(done.report_id)
                        ui.flash(f"Report {done.report_id} added: {ui.tier_text(rules, done.tier)} "
                                 f"({', '.join(done.rule_ids)}). It is open below.", "success", where="new_report")
                        st.rerun()


# --------------------------------------------------------------------------- the live queue


@st.fragment(run_every=ctx.settings.queue_refresh_seconds)
def live_queue() -> None:
    now = ui.local_now()
    version = ui.data_version(ctx.db)  # fresh at every refresh
    if version != ctx.version:
        st.rerun(scope="app")  # something changed: the detail and the forms refresh with the queue
    # New emergencies stay in a banner until someone acknowledges them: every panel this person may see.
    everywhere = queue.build_queue(ui.cached_open_reports(path, tuple(visible), version), rules, now)
    for row in everywhere.unacknowledged_emergencies.itertuples():
        with st.container(border=True):
            c1, c2 = st.columns([5, 1], vertical_alignment="center")
            c1.markdown(
                f"{ui.tier_badge(rules, 'emergency')} &nbsp; **{ui.plain(row.patient_name)}** ({ui.plain(row.mrn)}) · "
                f"{ui.plain(row.panel_id)} · reported {row.reported_at:%d %b %H:%M} · **{ui.plain(row.clock)}** · "
                f"{ui.plain(row.red_flags or 'see report')}",
                unsafe_allow_html=True,
            )
            if c2.button("Open", key=f"open_{row.report_id}", type="primary"):
                select(row.report_id)
                st.rerun(scope="app")
    if not panels:
        st.info("Choose at least one panel to see its open reports.")
        return
    q = queue.build_queue(ui.cached_open_reports(path, tuple(panels), version), rules, now)
    counts = q.rows["tier"].value_counts() if not q.rows.empty else {}
    cols = st.columns(5)
    for col, tier in zip(cols, rules.tier_ids):
        col.metric(ui.tier_text(rules, tier), int(counts.get(tier, 0)) if len(counts) else 0)
    cols[4].metric("Overdue", q.overdue, help="Reports whose clock has run out: not answered within the tier's "
                                              "target, or a re-call after \"not reached\" that is due")
    if q.open_too_long:
        st.caption(f"{q.open_too_long} answered report(s) still open past their tier's resolution target are flagged "
                   "in the clock column.")
    which = st.session_state.get("queue_filter") or "all"
    table = queue.queue_table(q, rules, q.filtered(which, user.actor))
    shown = q.filtered(which, user.actor)
    ids = table["Report"].tolist()
    selected = st.session_state.get("selected_report")
    heads = dict(zip(q.reports["report_id"], q.reports["group_head"])) if not q.reports.empty else {}
    row_of = ids.index(heads.get(selected, selected)) if heads.get(selected, selected) in ids else None
    event = st.dataframe(
        ui.style_tiers(table, tiers=shown["tier"] if not shown.empty else None),
        key=f"queue_table_{st.session_state.get('queue_selection', 0)}_{hash(version)}_{which}_{'-'.join(panels)}",
        on_select="rerun",
        selection_mode="single-row",
        selection_default={"selection": {"rows": [row_of]}} if row_of is not None else None,
        hide_index=True,
        width="stretch",
        height=min(38 * (len(table) + 1) + 4, 560),
        column_config={
            "Tier": st.column_config.TextColumn("Tier", width=104),
            "Clock": st.column_config.TextColumn("Clock", width=170,
                                                 help="Time left to answer (or to call again after \"not reached\"), "
                                                      "how long overdue, or how fast it was answered"),
            "Alerts": st.column_config.TextColumn("Alerts", width=120,
                                                  help="Alerts sent to people about it, and whether anyone has "
                                                       "answered it since (seen)"),
            "Patient": st.column_config.TextColumn("Patient", width=185),
            "Pain": st.column_config.NumberColumn("Pain", format="%d/10", width=56),
            "Red flags": st.column_config.TextColumn("Red flags", width=190),
            "Suspected": st.column_config.TextColumn("Suspected", width=160),
            "Status": st.column_config.TextColumn("Status", width=130),
            "Taken by": st.column_config.TextColumn("Taken by", width=110),
            "Repeats": st.column_config.TextColumn("+", width=40, help="Further open reports from the same patient"),
            "Waiting": st.column_config.TextColumn("Waiting", width=90),
            "Panel": None if len(panels) == 1 else st.column_config.TextColumn("Panel", width=70),
            "Report": st.column_config.TextColumn("Report", width=90),
        },
    )
    rows = event.selection.rows if event is not None else []
    if rows and ids[rows[0]] != heads.get(selected, selected):
        select(ids[rows[0]], from_table=True)
        st.rerun(scope="app")
    if table.empty:
        st.success("No open reports in these panels." if which == "all" else "No open report matches this filter.")


if panels:
    st.segmented_control("Show", list(queue.FILTERS), format_func=queue.FILTERS.get, default="all",
                         key="queue_filter")
live_queue()

# --------------------------------------------------------------------------- the selected report

report_id = st.session_state.get("selected_report")
if not report_id:
    st.caption("Select a report in the queue to see why it was triaged so, what to do, and its history.")
    st.stop()
detail = ui.cached_report_detail(path, rules, rules.version, report_id, ctx.version)
if detail is None or detail["panel_id"] not in visible:
    st.caption("Select a report in the queue.")
    st.stop()

st.subheader(f"{ui.plain(detail['patient_name'])} · {ui.plain(detail['mrn'])} · {ui.plain(detail['cancer_type'])}")
tier = detail["tier"]
st.markdown(
    f"{ui.tier_badge(rules, tier)} &nbsp; report **{ui.plain(detail['report_id'])}** · {detail['source']} · "
    f"{detail['reported_at']:%a %d %b %Y %H:%M} · pain **{detail['pain_score']}/10** · respond within "
    f"{duration(rules.respond_within_minutes(tier))}" + ("" if detail["is_open"] else " · **resolved**")
    + (f" · tier overridden from {detail['triage_tier']}" if detail["override_tier"] else ""),
    unsafe_allow_html=True,
)
st.markdown(f"**Phone:** {ui.plain(detail['phone'] or 'not recorded')} · **Age:** "
            f"{detail['age'] if detail['age'] is not None else 'unknown'} · **Panel:** {ui.plain(detail['panel_name'])}"
            + (f" · **Taken by:** {ui.plain(detail['taken_by'][1])}" if detail["taken_by"] else ""))
now = ui.local_now()
open_frame = ui.cached_open_reports(path, (detail["panel_id"],), ctx.version)
group = queue.group_members(open_frame, report_id) if detail["is_open"] else [report_id]

st.markdown(f"**Red flags:** {ui.plain(', '.join(detail['red_flag_words']) or 'none reported')}  \n**Answers:** "
            + ui.plain(" · ".join(report_answers(detail))))
if detail["unasked"]:
    st.warning("**Could not ask** (counted as yes for the triage): " + ui.plain(", ".join(
        queue.flag_words(detail["unasked"]))))
if detail["note"]:
    st.markdown("**Note entered with the report:**")
    st.text(detail["note"])
if detail["rules_version"] != rules.version:
    st.warning(f"Triaged under rules {detail['rules_version']}; the rules in force are {rules.version}.")
if detail["override_tier"]:
    st.caption(f"The guidance below is that of the triage ({detail['triage_tier']}); the tier was overridden to "
               f"{detail['override_tier']}.")
if len(group) > 1:
    st.markdown(f"#### This patient's other open reports ({len(group) - 1})")
    members = queue.group_table(open_frame, rules, group[1:], now)
    st.dataframe(members, hide_index=True, width="stretch")
    other = st.selectbox("Open one of them", [None, *group[1:]], format_func=lambda r: r or "choose a report",
                         key=f"open_member_{report_id}")
    if other:
        select(other)
        st.rerun()

left, right = st.columns([1, 1], gap="large")
with left:
    ui.show_what_to_do(detail["explained"])
with right:
    ui.show_why(detail["explained"])
tl = ui.cached_timeline(path, rules, rules.version, detail["patient_id"], ctx.version, now.date())
if tl is not None:
    st.markdown("#### The six weeks before this report")
    reported = detail["reported_at"]
    st.plotly_chart(charts.timeline_figure(tl, since=reported - timedelta(days=42),
                                           until=min(now, reported + timedelta(days=7)), height=420, compact=True,
                                           highlight=reported),
                    key="detail_timeline", config={"displaylogo": False})
st.markdown("#### History")
st.dataframe(queue.history(detail), hide_index=True, width="stretch", column_config={
    "When": st.column_config.DatetimeColumn("When", format="D MMM YYYY HH:mm", width=140),
    "Who": st.column_config.TextColumn("Who", width=200),
    "What": st.column_config.TextColumn("What", width=260),
    "Note": st.column_config.TextColumn("Note", width="large"),
})

if not detail["alerts"].empty:
    st.markdown("#### Alerts")
    st.dataframe(detail["alerts"], hide_index=True, width="stretch", column_config={
        "When": st.column_config.DatetimeColumn("When", format="D MMM HH:mm", width=110),
        "To": st.column_config.TextColumn("To", width=220),
        "Channel": st.column_config.TextColumn("Channel", width=150),
        "What": st.column_config.TextColumn("What", width=220),
        "Result": st.column_config.TextColumn("Result", width="medium"),
        "Seen": st.column_config.TextColumn("Seen", width=200, help="Answered in Backline after the alert went out"),
    })

# --------------------------------------------------------------------------- actions

st.markdown("#### Act on this report")
ui.show_flash("actions")
if not user.may(Action.ACKNOWLEDGE):
    st.caption(f"Read-only: the {user.role.value} role does not act on reports.")
    st.stop()
if not detail["is_open"]:
    st.info("This report is resolved: there is nothing more to do on it. Its history is above.")
    st.stop()
st.caption(acting)
k = report_id  # every form below belongs to this report
scope = [report_id]
if len(group) > 1:
    if st.checkbox(f"Apply the next action to all {len(group)} open reports of this patient ({', '.join(group)})",
                   key=f"group_{k}", help="Otherwise it applies to this report only. An override always applies "
                                          "to the one report reviewed."):
        scope = group

LABELS = {"reached": "Outcome of the call", "note": "Note", "escalated_to": "Escalate to", "outcome": "Outcome",
          "tier_after": "New tier", "report_ids": "Report"}


def perform(form: str, **fields) -> None:
    ids = [report_id] if fields["action"] == "override" else scope
    try:
        result = workflow.act(ctx.db, user, ui.local_now(), report_ids=ids, **fields)
    except InputError as exc:
        ui.show_input_error(exc, {**LABELS, **({"note": "Reason (required)"} if form == "override" else {})})
        return
    ui.clear_caches()
    ui.forget_forms(k)
    text, kind = workflow.result_message(result, fields["action"])
    if not (fields["action"] == "resolve" and result.recorded):
        ui.flash(text, kind, where="actions")
    if fields["action"] == "resolve" and result.recorded:
        st.session_state.pop("selected_report", None)
        ui.flash(text, kind, where="page")  # the detail closes: the message shows above the queue
    st.rerun()


c1, c2, c3 = st.columns([1, 1, 4])
if c1.button("Acknowledge", type="primary", key=f"ack_{k}"):
    perform("acknowledge", action="acknowledge")
mine = detail["taken_by"] is not None and detail["taken_by"][0] == user.actor
if detail["taken_by"] is not None:
    if c2.button("Release", key=f"release_{k}", help="Give the report back to the team"):
        perform("release", action="release")
elif c2.button("Take (mine)", key=f"take_{k}", help="Show everyone that you are dealing with it"):
    perform("take", action="take")
if detail["taken_by"] is not None and not mine:
    c3.caption(f"Taken by {ui.plain(detail['taken_by'][1])}; releasing it gives it back to the team.")

tabs = ["Call back", "Escalate", "Resolve", "Note"] + (["Override tier"] if user.may(Action.OVERRIDE) else [])
tab = st.tabs(tabs)
with tab[0], st.form(f"call_back_{k}"):
    reached = st.radio("Outcome of the call", [True, False], index=None, horizontal=True, key=f"cb_reached_{k}",
                       format_func=lambda v: "Reached the patient" if v else "Not reached")
    note = st.text_area("What was said", max_chars=2000, height=68, key=f"cb_note_{k}")
    st.caption(acting)
    if st.form_submit_button("Record call-back", type="primary", key=f"submit_call_back_{k}"):
        perform("call_back", action="call_back", reached=reached, note=note or None)
with tab[1], st.form(f"escalate_{k}"):
    to = st.selectbox("Escalate to", list(ESCALATION_LABELS), index=None, format_func=ESCALATION_LABELS.get,
                      key=f"esc_to_{k}", placeholder="Choose whom")
    note = st.text_area("Handover note", max_chars=2000, height=68, key=f"esc_note_{k}")
    st.caption(acting)
    if st.form_submit_button("Escalate", type="primary", key=f"submit_escalate_{k}"):
        perform("escalate", action="escalate", escalated_to=to, note=note or None)
with tab[2], st.form(f"resolve_{k}"):
    outcome = st.selectbox("Outcome", list(OUTCOME_LABELS), index=None, format_func=OUTCOME_LABELS.get,
                           key=f"res_outcome_{k}", placeholder="Choose an outcome")
    note = st.text_area("Note", max_chars=2000, height=68, key=f"res_note_{k}")
    st.caption(acting)
    if st.form_submit_button("Resolve", type="primary", key=f"submit_resolve_{k}"):
        perform("resolve", action="resolve", outcome=outcome, note=note or None)
with tab[3], st.form(f"note_{k}"):
    note = st.text_area("Note", max_chars=2000, height=68, key=f"note_text_{k}")
    st.caption(acting)
    if st.form_submit_button("Add note", type="primary", key=f"submit_note_{k}"):
        perform("note", action="note", note=note or None)
if user.may(Action.OVERRIDE):
    with tab[4], st.form(f"override_{k}"):
        st.caption(f"An override applies to this report only ({report_id}), the one you reviewed.")
        new_tier = st.selectbox("New tier", [t for t in rules.tier_ids if t != tier], index=None,
                                format_func=lambda t: ui.tier_text(rules, t), key=f"ov_tier_{k}",
                                placeholder="Choose the new tier")
        reason = st.text_area("Reason (required)", max_chars=2000, height=68, key=f"ov_note_{k}")
        st.caption(acting)
        if st.form_submit_button("Override tier", type="primary", key=f"submit_override_{k}"):
            perform("override", action="override", tier_after=new_tier, note=reason or None)
