"""Backline: the entry point. Routes to the pages the signed-in role may see."""

import streamlit as st

from dashboard import ui
from dashboard.access import PAGE_FILES as PATHS
from dashboard.access import Page

st.set_page_config(page_title=ui.PAGE_TITLE, page_icon=":material/healing:", layout="wide")
ui.rules_in_force()  # fail closed before anything else

PAGE_FILES = {
    Page.QUEUE: (PATHS[Page.QUEUE], "Triage queue", ":material/emergency:"),
    Page.TIMELINE: (PATHS[Page.TIMELINE], "Patient timeline", ":material/timeline:"),
    Page.GUIDANCE: (PATHS[Page.GUIDANCE], "Guidance", ":material/menu_book:"),
    Page.METRICS: (PATHS[Page.METRICS], "Response times", ":material/timer:"),
    Page.RULES: (PATHS[Page.RULES], "Rules", ":material/rule:"),
    Page.IMPORTS: (PATHS[Page.IMPORTS], "Imports", ":material/move_to_inbox:"),
}
# Every page is routable, so a direct visit reaches the page's own guard (which says why it is
# refused); the menu shows only the pages this role may open, its first one being the default.
role = ui.navigation_role()
allowed = [p for p in PAGE_FILES if role is not None and role in ui.roles_for(p)] or [Page.GUIDANCE]
# The link in an alert (/?report=ID) opens the triage queue, for every role that may see it.
first = Page.QUEUE if st.query_params.get("report") and Page.QUEUE in allowed else allowed[0]
pages = [
    st.Page(path, title=title, icon=icon, default=(page == first),
            visibility="visible" if page in allowed else "hidden")
    for page, (path, title, icon) in PAGE_FILES.items()
]
try:
    st.navigation(pages).run()
except ui.StoreUnavailable as exc:  # the shared store went away mid-page: say so, and keep the session
    ui.store_unavailable(exc)
