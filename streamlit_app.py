"""Backline: the entry point. Routes to the pages the signed-in role may see."""

import streamlit as st

from dashboard import ui
from dashboard.access import Page

st.set_page_config(page_title=ui.PAGE_TITLE, page_icon=":material/healing:", layout="wide")
ui.rules_in_force()  # fail closed before anything else

PAGES = {
    Page.QUEUE: st.Page("pages/triage_queue.py", title="Triage queue", icon=":material/emergency:"),
    Page.TIMELINE: st.Page("pages/patient_timeline.py", title="Patient timeline", icon=":material/timeline:"),
    Page.GUIDANCE: st.Page("pages/guidance.py", title="Guidance", icon=":material/menu_book:"),
    Page.METRICS: st.Page("pages/response_times.py", title="Response times", icon=":material/timer:"),
    Page.RULES: st.Page("pages/rules.py", title="Rules", icon=":material/rule:"),
}
role = ui.navigation_role()
allowed = [PAGES[p] for p in PAGES if role is not None and role in ui.roles_for(p)] or [PAGES[Page.GUIDANCE]]
st.navigation(allowed).run()
