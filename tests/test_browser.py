"""The real app in headless Chromium: every page renders, and a nurse works a report from queue to resolved."""

from __future__ import annotations

import shutil

import pytest

from dashboard.access import Role, User
from dashboard.config import local_now
from dashboard.db import Database
from dashboard.workflow import submit_report
from tests.browser import act_as, click_grid_row, go_to, screenshot, settle, streamlit_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served(tmp_path_factory, sample_db, rules):
    """A copy of the sample database with one fresh emergency, served by a real Streamlit server."""
    path = tmp_path_factory.mktemp("browser") / "app.duckdb"
    shutil.copy(sample_db.path, path)
    db = Database(path)
    nurse = db.query("SELECT staff_id, name, panel_id FROM staff WHERE staff_id = 'N0001'").iloc[0]
    patient = db.scalar("SELECT min(patient_id) FROM patients WHERE panel_id = ?", [nurse["panel_id"]])
    # A new emergency: it heads the queue (its patient's group takes its tier).
    now = local_now()
    user = User(actor="N0001", name=nurse["name"], role=Role.NURSE, panels=(nurse["panel_id"],))
    done = submit_report(db, rules, user, now, patient_id=patient,
                         report={"reported_at": now.replace(second=0), "pain_score": 7, "leg_weakness": True,
                                 "difficulty_walking": True, "location": "thoracic"})
    with streamlit_server(path) as base:
        yield {"base": base, "db": db, "report_id": done.report_id, "nurse": nurse}


PAGES = [
    ("Carol", "Triage queue", "Triage queue"),
    ("Amara", "Patient timeline", "Patient timeline"),
    ("Carol", "Guidance", "Guidance"),
    ("Dana", "Response times", "Response times"),
    ("Fay", "Rules", "Rules"),
]


@pytest.mark.parametrize("who, link, title", PAGES, ids=[p[1] for p in PAGES])
def test_every_page_renders_in_a_real_browser(served, page, who, link, title):
    page.set_viewport_size({"width": 1440, "height": 1000})
    page.goto(served["base"])
    settle(page)
    act_as(page, served["nurse"]["name"] if who == "Carol" else who)
    if link != "Triage queue":
        go_to(page, link)
    assert page.locator("h1", has_text=title).count() == 1
    assert page.locator("[data-testid=stException]").count() == 0
    assert page.locator("[data-testid=stAlertContentError]").count() == 0
    screenshot(page, f"page-{link.lower().replace(' ', '-')}")


def test_a_nurse_works_a_report_from_queue_to_resolved(served, page):
    db, rid = served["db"], served["report_id"]
    page.set_viewport_size({"width": 1440, "height": 1400})
    page.goto(served["base"])
    settle(page)
    act_as(page, served["nurse"]["name"])
    # The new emergency is in a banner and heads the queue.
    banner = page.get_by_text("reported", exact=False).filter(has_text="leg weakness").first
    assert banner.is_visible()
    screenshot(page, "flow-1-queue-with-emergency")
    click_grid_row(page, 0)
    assert page.get_by_text(f"report {rid}", exact=False).count() >= 1
    assert page.get_by_text("E1 · Suspected spinal cord or cauda equina compression").count() == 1
    screenshot(page, "flow-2-detail")
    page.get_by_role("button", name="Acknowledge", exact=True).click()
    settle(page)
    assert db.rows("SELECT action, actor FROM events WHERE report_id = ? ORDER BY event_id", [rid])[-1] == (
        "acknowledge", "N0001")
    assert page.get_by_text("leg weakness", exact=False).filter(has_text="reported").count() == 0  # banner gone
    page.get_by_role("tab", name="Resolve").click()
    form = page.locator("[data-testid=stForm]").filter(has_text="Outcome")
    outcome = form.locator("[data-testid=stSelectbox] input")
    outcome.wait_for(state="visible")
    outcome.click()
    page.locator("[role=option]", has_text="Referred to the MSCC pathway").click()
    form.get_by_role("button", name="Resolve").click()
    settle(page)
    assert db.scalar("SELECT count(*) FROM open_reports WHERE report_id = ?", [rid]) == 0
    assert db.scalar("SELECT outcome FROM events WHERE report_id = ? AND action = 'resolve'", [rid]) == "referred_to_mscc"
    assert page.get_by_text("Resolve recorded", exact=False).count() == 1
    grid_text = page.locator("[data-testid=stDataFrame]").first.inner_text()
    assert rid not in grid_text
    screenshot(page, "flow-3-resolved")
