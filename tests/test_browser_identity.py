"""Demo mode in Chromium: a reload keeps the person chosen (the address carries them), the sidebar
says who is acting, and switching to a role that may not see the page moves to one it may."""

from __future__ import annotations

import shutil

import pytest

from tests.browser import act_as, screenshot, settle, streamlit_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo_app(tmp_path_factory, sample_db):
    path = tmp_path_factory.mktemp("identity") / "app.duckdb"
    shutil.copy(sample_db.path, path)
    with streamlit_server(path, env={"BACKLINE_DEMO": "1"}) as base:
        yield {"base": base, "physician": sample_db.scalar("SELECT name FROM staff WHERE staff_id = 'P001'")}


def sidebar(page) -> str:
    return page.locator("[data-testid=stSidebar]").inner_text()


def test_a_reload_keeps_the_person_and_a_switch_moves_to_a_page_they_may_see(demo_app, page):
    page.set_viewport_size({"width": 1440, "height": 1000})
    page.goto(demo_app["base"])
    settle(page)
    assert "Acting as" in sidebar(page) and "(nurse" in sidebar(page)
    act_as(page, demo_app["physician"])
    assert f"Acting as {demo_app['physician']} (physician)" in sidebar(page)
    assert "as=P001" in page.url
    page.locator("[data-testid=stSidebarNav] a", has_text="Patient timeline").first.click()
    settle(page)
    page.reload()
    settle(page)
    assert f"Acting as {demo_app['physician']} (physician)" in sidebar(page)
    assert page.locator("h1", has_text="Patient timeline").count() == 1
    screenshot(page, "demo-reload-keeps-physician")
    # A nurse may not see the timeline: choosing one moves to the queue, not to a refusal.
    act_as(page, "Emily Baker")
    assert "Acting as Emily Baker (nurse" in sidebar(page)
    assert page.locator("h1", has_text="Triage queue").count() == 1
    assert page.get_by_text("not available to the", exact=False).count() == 0
    assert "as=N0001" in page.url
    screenshot(page, "demo-switch-moves-to-queue")
