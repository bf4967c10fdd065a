"""The real app in headless Chromium: every page renders, and a nurse works a report from queue to resolved."""

from __future__ import annotations

import re
import shutil

import pytest

from dashboard.access import Role, User
from dashboard.config import local_now
from dashboard.db import Database
from dashboard.workflow import submit_report
from tests.browser import act_as, click_grid_row, go_to, screenshot, scroll_to, settle, streamlit_server

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
    ("Dana", "Imports", "Imports"),
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
    opened = page.get_by_text(f"report {rid}", exact=False).first
    for _ in range(3):  # the live queue refreshes itself: a click during a refresh can be lost
        click_grid_row(page, 0)
        try:
            opened.wait_for(timeout=10_000)
            break
        except Exception:  # noqa: BLE001 - click again
            continue
    assert opened.is_visible()
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
    assert page.get_by_text(f"Resolved: 1 report ({rid})", exact=False).count() >= 1  # beside the queue and as a toast
    grid_text = page.locator("[data-testid=stDataFrame]").first.inner_text()
    assert rid not in grid_text
    screenshot(page, "flow-3-resolved")


# --------------------------------------------------------------------------- v2: the detail's guidance


@pytest.fixture(scope="module")
def served_v2(tmp_path_factory, sample_db, rules):
    """A copy of the sample with two new open reports in the nurse's panel, served by a real server:
    E1 with U1 (leg weakness, thoracic pain), and possible neutropenic sepsis (E2: a SACT dose in the
    last 42 days and a temperature of 37.8 °C)."""
    path = tmp_path_factory.mktemp("browser_v2") / "app.duckdb"
    shutil.copy(sample_db.path, path)
    db = Database(path)
    nurse = db.query("SELECT staff_id, name, panel_id FROM staff WHERE staff_id = 'N0001'").iloc[0]
    panel = nurse["panel_id"]
    now = local_now().replace(second=0)
    user = User(actor="N0001", name=nurse["name"], role=Role.NURSE, panels=(panel,))
    quiet = " AND NOT EXISTS (SELECT 1 FROM open_reports o WHERE o.patient_id = p.patient_id)"
    first = db.scalar(f"SELECT min(patient_id) FROM patients p WHERE panel_id = ?{quiet}", [panel])
    mscc = submit_report(db, rules, user, now, patient_id=first, report={
        "reported_at": now, "pain_score": 6, "leg_weakness": True, "location": "thoracic", "onset": "gradual",
        "trend": "stable", "pain_pattern": "new", "duration_days": 3})
    assert mscc.tier == "emergency" and {"E1", "U1"} <= set(mscc.rule_ids)
    sact = db.scalar(
        f"SELECT min(p.patient_id) FROM patients p WHERE panel_id = ? AND patient_id <> ?{quiet} AND EXISTS"
        " (SELECT 1 FROM administrations a WHERE a.patient_id = p.patient_id AND a.drug IN ('docetaxel',"
        " 'paclitaxel', 'cyclophosphamide', 'oxaliplatin', 'carboplatin', 'pemetrexed', 'bortezomib')"
        " AND a.given_at BETWEEN ? - INTERVAL 30 DAY AND ?)", [panel, first, now, now])
    sepsis = submit_report(db, rules, user, now, patient_id=sact, report={
        "reported_at": now, "pain_score": 3, "location": "lumbar", "onset": "gradual", "trend": "stable",
        "pain_pattern": "usual", "temperature_c": 37.8, "duration_days": 1})
    assert sepsis.tier == "emergency" and sepsis.rule_ids[0] == "E2" and "E3" not in sepsis.rule_ids
    with streamlit_server(path) as base:
        yield {"base": base, "db": db, "mscc": mscc.report_id, "sepsis": sepsis.report_id, "nurse": nurse}


def _open_detail(page, base: str, nurse: str, report_id: str) -> None:
    page.set_viewport_size({"width": 1440, "height": 1600})
    page.goto(base)
    settle(page)
    act_as(page, nurse)
    opened = page.get_by_text(f"report {report_id}", exact=False).first
    for _ in range(3):  # the live queue refreshes itself: a click during a refresh can be lost
        page.locator(f".st-key-open_{report_id} button").click()  # the emergency banner's Open button
        settle(page)
        try:
            opened.wait_for(timeout=10_000)
            break
        except Exception:  # noqa: BLE001 - try the click again
            continue
    assert opened.is_visible()


def _section(page, title: str) -> list[str]:
    """The items of a titled list in the detail ("Imaging:", "Advice and safety net ...")."""
    block = page.locator("[data-testid=stMarkdownContainer]").filter(
        has=page.locator("strong", has_text=title)).last
    return [t.strip() for t in block.locator("li").all_inner_texts()]


def _shoot(page, name: str) -> None:
    """The whole page: the app scrolls inside its own container, so the viewport is made tall first."""
    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": 1440, "height": min(int(height) + 200, 6000)})
    settle(page, rerun=False)  # a resize runs nothing on the server
    screenshot(page, name)
    page.screenshot(path=f"/tmp/{name}.png", full_page=True)


def _line(page, title: str) -> str:
    """The line of the detail that starts with a bold title ("Leading:", "Recent SACT:")."""
    text = page.locator("[data-testid=stMarkdownContainer] p").filter(
        has=page.locator("strong", has_text=title)).first.inner_text()
    return next(line for line in text.splitlines() if line.startswith(title))


def test_an_e1_with_u1_report_asks_for_one_mri_within_24_hours(served_v2, page):
    _open_detail(page, served_v2["base"], served_v2["nurse"]["name"], served_v2["mscc"])
    imaging = _section(page, "Imaging:")
    mri = [line for line in imaging if "MRI" in line and "if MRI is contraindicated" not in line]
    assert len(mri) == 1, imaging
    assert "within 24 hours" in mri[0] and "1 week" not in " ".join(imaging)
    leading = _line(page, "Leading:")
    also = _line(page, "Also considered:")
    assert "Suspected spinal cord or cauda equina compression" in leading
    assert "spinal metastases" not in leading
    assert "Pain suggestive of spinal metastases" in also
    assert page.locator("[data-testid=stException]").count() == 0
    _shoot(page, "v2-detail-e1-u1")


def test_possible_neutropenic_sepsis_advises_no_paracetamol_and_no_self_care(served_v2, page):
    _open_detail(page, served_v2["base"], served_v2["nurse"]["name"], served_v2["sepsis"])
    advice = _section(page, "Advice and safety net")
    assert any("Do not take paracetamol or ibuprofen" in a for a in advice), advice
    self_care = [a for a in advice if "Do not take" not in a and any(
        w in a.lower() for w in ("paracetamol", "ibuprofen", "nsaid", "naproxen", "pain relief", "anti-inflammatory"))]
    assert self_care == [], self_care
    assert "Possible neutropenic sepsis" in _line(page, "Leading:")
    assert _line(page, "Recent SACT:").startswith("Recent SACT: yes, because")
    referral = _section(page, "Referral and action:")
    assert referral[0].startswith("within 1 hour · IV antibiotics immediately")  # antibiotics first
    _shoot(page, "v2-detail-sepsis")


@pytest.fixture(scope="module")
def served_today(tmp_path_factory, rules):
    """The sample generated as of today (the response-times page shows the last 90 days from today)."""
    from dashboard.seed import seed_sample

    path = tmp_path_factory.mktemp("today") / "app.duckdb"
    seed_sample(Database(path), rules, now=local_now())
    with streamlit_server(path) as base:
        yield {"base": base}


def test_a_lead_clicks_a_bar_and_sees_the_reports_it_counts(served_today, page):
    page.set_viewport_size({"width": 1440, "height": 1400})
    page.goto(served_today["base"])
    settle(page)
    act_as(page, "Dana")
    go_to(page, "Response times")
    chart = page.locator("[data-testid=stPlotlyChart]").first
    scroll_to(chart)
    bars = chart.locator(".barlayer .point path")
    bars.first.wait_for(state="visible")
    # The widest bar: the first answer of the first tier that has any reports.
    widths = [bars.nth(i).bounding_box()["width"] for i in range(bars.count())]
    box = bars.nth(max(range(len(widths)), key=widths.__getitem__)).bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # as a person clicks
    settle(page)
    screenshot(page, "response-times-bar-clicked")
    # The choice names the clicked bar (a tier and an answer) with its count.
    chosen = page.get_by_role("combobox", name="Show the reports behind").input_value()
    answers = "answered in time|answered late|unanswered, past target|unanswered, within target"
    assert re.fullmatch(rf"(Emergency|Urgent|Soon|Routine): ({answers}) \(\d+\)", chosen), chosen
    assert page.locator("[data-testid=stDataFrame]").count() >= 2  # the list of reports under the choice
