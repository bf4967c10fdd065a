"""Imports (leads and admins): the FHIR imports, what each read and what was refused and why; the
FHIR export of a period for leads."""

from datetime import timedelta

import streamlit as st

from dashboard import ui
from dashboard.access import Action, Page

ctx = ui.guard(Page.IMPORTS)
st.title("Imports")
st.caption("FHIR bundles and Bulk Data exports imported with `backline import`: all of a file, or nothing of it.")

log = ui.cached_import_log(str(ctx.db.path), ctx.version)
if log.empty:
    st.info("Nothing has been imported into this database yet.")
else:
    st.dataframe(log[["import_id", "imported_at", "source", "actor", "result", "resources", "changes",
                      "problem_count"]], hide_index=True, width="stretch", key="imports_table", column_config={
        "import_id": st.column_config.NumberColumn("Import", format="%d", width=70),
        "imported_at": st.column_config.DatetimeColumn("When", format="D MMM YYYY HH:mm", width=140),
        "source": st.column_config.TextColumn("File", width="medium"),
        "actor": st.column_config.TextColumn("By", width=100),
        "result": st.column_config.TextColumn("Result", width=90),
        "resources": st.column_config.TextColumn("Resources read", width="large"),
        "changes": st.column_config.TextColumn("What changed", width="medium"),
        "problem_count": st.column_config.NumberColumn("Problems", width=80),
    })
    refused = log[log["result"] == "refused"]
    if not refused.empty:
        choice = st.selectbox("Why was an import refused?", refused["import_id"].tolist(), index=None,
                              format_func=lambda i: f"Import {i}: {refused.set_index('import_id').loc[i, 'source']}",
                              key="import_refused", placeholder="Choose a refused import")
        if choice is not None:
            st.dataframe(ui.import_problems(log, choice), hide_index=True, width="stretch", column_config={
                "resource": "Resource", "path": "Field", "problem": "Problem"})

if ctx.user.may(Action.EXPORT_FHIR):
    st.markdown("#### FHIR export of a period")
    today = ctx.now.date()
    period = st.date_input("Reports made between", value=(today - timedelta(days=7), today), max_value=today,
                           key="fhir_export_period")
    if isinstance(period, tuple) and len(period) == 2:
        start, end = period
        st.download_button("Download the FHIR bundle (JSON)",
                           lambda: ui.fhir_export_bytes(ctx, start, end + timedelta(days=1)),
                           file_name=f"backline-fhir-{start}-{end}.json", mime="application/fhir+json",
                           key="fhir_export")
        st.caption("For each report: its questionnaire response, a RiskAssessment (tier, rules fired, rules "
                   "version), a Task, call-backs as Communications and an AuditEvent per action, with the "
                   "patients, conditions and doses they refer to.")
