"""The queue as a nurse uses it, in headless Chromium: a half-typed note does not follow her to
another patient, the emergency banner's Open always opens its report, and text from the database
is shown as text (a hostile name or note runs nothing and fetches nothing)."""

from __future__ import annotations

import shutil

import pytest

from dashboard.access import Role, User
from dashboard.config import local_now
from dashboard.db import Database
from dashboard.workflow import act, submit_report
from tests.browser import act_as, click_grid_row, screenshot, scroll_to, settle, streamlit_server

pytestmark = pytest.mark.browser
HOSTILE = "<img src=x onerror=\"window.__hacked=1\">"
MARKDOWN = "![t](http://127.0.0.1:9/track.png) **loud** :red[alarm]"


@pytest.fixture(scope="module")
def served(tmp_path_factory, sample_db, rules):
    """A copy of the sample with a new emergency for a patient whose name is hostile HTML, a note
    that is hostile Markdown, and a second open report in the nurse's panel; served for real."""
    path = tmp_path_factory.mktemp("browser_queue") / "app.duckdb"
    shutil.copy(sample_db.path, path)
    db = Database(path)
    nurse = db.query("SELECT staff_id, name, panel_id FROM staff WHERE staff_id = 'N0001'").iloc[0]
    panel = nurse["panel_id"]
    user = User(actor="N0001", name=nurse["name"], role=Role.NURSE, panels=(panel,))
    quiet = " AND NOT EXISTS (SELECT 1 FROM open_reports o WHERE o.patient_id = p.patient_id)"
    patients = [r[0] for r in db.rows(f"SELECT patient_id FROM patients p WHERE panel_id = ?{quiet} "
                                      "ORDER BY patient_id LIMIT 2", [panel])]
    db.rows("UPDATE patients SET name = ? WHERE patient_id = ?", [f"Ann {HOSTILE} Lee", patients[0]])
    now = local_now().replace(second=0)
    emergency = submit_report(db, rules, user, now, patient_id=patients[0], note=f"Rang at night.\n{HOSTILE}",
                              report={"reported_at": now, "pain_score": 7, "leg_weakness": True,
                                      "location": "thoracic"})
    act(db, user, now, action="note", report_ids=[emergency.report_id], note=f"{MARKDOWN}\n{HOSTILE}")
    # An urgent report (spinal metastases suspected): it sits just under the emergency in the queue.
    routine = submit_report(db, rules, user, now, patient_id=patients[1],
                            report={"reported_at": now, "pain_score": 5, "onset": "gradual", "pain_pattern": "new",
                                    "trend": "worsening", "location": "thoracic", "worse_at_night": True})
    assert routine.tier == "urgent", routine
    with streamlit_server(path, env={"BACKLINE_DEMO": "1"}) as base:
        yield {"base": base, "db": db, "emergency": emergency.report_id, "routine": routine.report_id,
               "nurse": nurse}


def start(page, served) -> None:
    page.set_viewport_size({"width": 1440, "height": 1600})
    page.goto(served["base"])
    settle(page)
    act_as(page, served["nurse"]["name"])


def header(page) -> str:
    return page.locator("[data-testid=stHeading] h3").first.inner_text()


def open_by_banner(page, rid: str) -> None:
    page.locator(f".st-key-open_{rid} button").click()
    settle(page)
    page.get_by_text(f"report {rid}", exact=False).first.wait_for(timeout=15_000)


def grid_row_of(served, rid: str) -> int:
    """The position of a report in the queue table, as the page orders it (the grid is a canvas)."""
    from dashboard import queue
    from dashboard.rules import load_rules
    from tests.conftest import ROOT

    q = queue.build_queue(queue.open_reports(served["db"], [served["nurse"]["panel_id"]]), load_rules(ROOT / "rules"),
                          local_now())
    return list(q.rows["report_id"]).index(rid)


def test_hostile_text_from_the_database_is_shown_as_text(served, page):
    fetched = []
    page.on("request", lambda r: fetched.append(r.url) if "track.png" in r.url or r.url.endswith("/x") else None)
    start(page, served)
    open_by_banner(page, served["emergency"])
    assert page.evaluate("window.__hacked") is None
    assert page.locator("img[src=x]").count() == 0
    assert HOSTILE in header(page)  # the name, as typed
    banner = page.locator("[data-testid=stMarkdownContainer]").filter(has_text="reported").filter(
        has_text="Lee").first
    assert HOSTILE in banner.inner_text()
    note = page.locator("[data-testid=stText]").filter(has_text="Rang at night.").first
    assert note.inner_text().splitlines() == ["Rang at night.", HOSTILE]
    scroll_to(page.locator("[data-testid=stDataFrame]").last)  # the history
    assert page.locator("strong", has_text="loud").count() == 0
    assert fetched == []
    screenshot(page, "queue-hostile-text-as-text")


def test_a_half_typed_note_does_not_follow_the_nurse_to_another_patient(served, page):
    start(page, served)
    open_by_banner(page, served["emergency"])
    page.get_by_role("tab", name="Call back").click()
    form = page.locator("[data-testid=stForm]").filter(has_text="What was said")
    form.get_by_text("Not reached").click()
    form.locator("textarea").fill("Meant for the first patient only")
    # The nurse turns to another patient in the queue.
    click_grid_row(page, grid_row_of(served, served["routine"]))
    page.get_by_text(f"report {served['routine']}", exact=False).first.wait_for(timeout=15_000)
    page.get_by_role("tab", name="Call back").click()
    form = page.locator("[data-testid=stForm]").filter(has_text="What was said")
    assert form.locator("textarea").input_value() == ""
    assert form.locator("input[type=radio]:checked").count() == 0
    screenshot(page, "queue-form-cleared-for-another-patient")
    # Back on the first patient, what was typed for her is gone too (cleared when she was left).
    open_by_banner(page, served["emergency"])
    page.get_by_role("tab", name="Call back").click()
    form = page.locator("[data-testid=stForm]").filter(has_text="What was said")
    assert form.locator("textarea").input_value() == ""


def test_the_banner_opens_its_emergency_after_a_row_was_selected(served, page):
    start(page, served)
    click_grid_row(page, grid_row_of(served, served["routine"]))
    page.get_by_text(f"report {served['routine']}", exact=False).first.wait_for(timeout=15_000)
    for _ in range(2):  # every time, not only the first
        open_by_banner(page, served["emergency"])
        assert served["emergency"] in page.locator("[data-testid=stMarkdownContainer]").filter(
            has_text="respond within").first.inner_text()
        click_grid_row(page, grid_row_of(served, served["routine"]))
        page.get_by_text(f"report {served['routine']}", exact=False).first.wait_for(timeout=15_000)
    screenshot(page, "queue-banner-opens-after-row-selection")
