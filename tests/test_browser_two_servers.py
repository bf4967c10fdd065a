"""Two app servers (two Streamlit processes on two ports) on one PostgreSQL store, in headless
Chromium: a nurse acknowledges an emergency on one, and a colleague's queue on the other loses its
banner within the refresh interval, with no reload."""

from __future__ import annotations

import pytest

from dashboard.access import Role, User
from dashboard.config import local_now
from dashboard.workflow import submit_report
from tests.browser import act_as, screenshot, settle, streamlit_server
from tests.conftest import drop_store, postgres_store

pytestmark = pytest.mark.browser
REFRESH_SECONDS = 2


@pytest.fixture(scope="module")
def two_servers(postgres_server, _sample_template, rules):
    store = postgres_store(postgres_server, _sample_template)
    nurse = store.query("SELECT staff_id, name, panel_id FROM staff WHERE staff_id = 'N0001'").iloc[0]
    patient = store.scalar("SELECT min(patient_id) FROM patients p WHERE panel_id = ? AND NOT EXISTS "
                           "(SELECT 1 FROM open_reports o WHERE o.patient_id = p.patient_id)", [nurse["panel_id"]])
    now = local_now().replace(second=0)
    user = User(actor="N0001", name=nurse["name"], role=Role.NURSE, panels=(nurse["panel_id"],))
    made = submit_report(store, rules, user, now, patient_id=patient,
                         report={"reported_at": now, "pain_score": 8, "leg_weakness": True, "location": "lumbar"})
    env = {"BACKLINE_DATABASE_URL": store.url, "BACKLINE_DEMO": "1",
           "BACKLINE_QUEUE_REFRESH_SECONDS": str(REFRESH_SECONDS)}
    with streamlit_server(None, env=env) as first, streamlit_server(None, env=env) as second:
        yield {"first": first, "second": second, "store": store, "report_id": made.report_id, "nurse": nurse}
    drop_store(store)


def banner(page, rid: str):
    return page.locator(f".st-key-open_{rid} button")


def test_an_acknowledgement_on_one_server_clears_the_banner_on_the_other(two_servers, context):
    rid, store = two_servers["report_id"], two_servers["store"]
    pages = []
    for base in (two_servers["first"], two_servers["second"]):
        page = context.new_page()
        page.set_viewport_size({"width": 1440, "height": 1200})
        page.goto(base)
        settle(page)
        act_as(page, two_servers["nurse"]["name"])
        banner(page, rid).wait_for(timeout=15_000)  # both show the new emergency
        pages.append(page)
    first, second = pages
    screenshot(second, "two-servers-1-emergency-on-the-second")
    banner(first, rid).click()
    settle(first)
    first.get_by_text(f"report {rid}", exact=False).first.wait_for(timeout=15_000)
    first.get_by_role("button", name="Acknowledge", exact=True).click()
    settle(first)
    assert store.rows("SELECT actor, action FROM events WHERE report_id = ? ORDER BY event_id", [rid]) == [
        ("N0001", "acknowledge")]
    # The other server hears of it (LISTEN/NOTIFY) and its live queue refreshes by itself.
    banner(second, rid).wait_for(state="detached", timeout=(REFRESH_SECONDS * 3 + 10) * 1000)
    assert second.locator("[data-testid=stException]").count() == 0
    screenshot(second, "two-servers-2-banner-gone-on-the-second")
