"""Production sign-in, end to end: the real app, Streamlit's own st.login() and a real OIDC provider.

A test identity provider (tests/oidc_provider.py) runs on loopback; a Streamlit server is started
with an ``[auth]`` section in a temporary secrets.toml (given by ``STREAMLIT_SECRETS_FILES``, the
environment form of ``--secrets.files``, so no real secrets file is read or written) and headless
Chromium signs in through the provider's login page.
"""

from __future__ import annotations

import re
import secrets
import shutil
from pathlib import Path

import pytest
import yaml

from tests.browser import free_port, screenshot, settle, streamlit_server
from tests.oidc_provider import OIDCProvider, TestUser

pytestmark = pytest.mark.browser

ROLE_CLAIM = "backline_role"
NURSE = TestUser("idp-n0001", "n0001@backline.example", "Emily Baker", {ROLE_CLAIM: "nurse"})
# A role claim that is a list (as group/role claims often are); unknown entries are ignored.
PHYSICIAN = TestUser("idp-p001", "physician1@backline.example", "Dr Amara Okoye",
                     {ROLE_CLAIM: ["staff", "physician"]})
NO_ROLE = TestUser("idp-locum", "locum99@backline.example", "Lou Locum", {})
# No role claim: the role comes from the role-map file (BACKLINE_ROLE_MAP).
MAPPED_LEAD = TestUser("idp-l004", "lead4@backline.example", "Sister Dana Moss", {})
USERS = [NURSE, PHYSICIAN, NO_ROLE, MAPPED_LEAD]

PAGE_PATHS = ["", "triage_queue", "patient_timeline", "guidance", "response_times", "rules"]


def write_secrets(folder: Path, provider: OIDCProvider, port: int) -> Path:
    """A temporary .streamlit/secrets.toml with the [auth] section for the test provider."""
    path = folder / ".streamlit" / "secrets.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        f'client_id = "{provider.client_id}"\n'
        f'client_secret = "{provider.client_secret}"\n'
        f'server_metadata_url = "{provider.metadata_url}"\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def provider():
    with OIDCProvider(USERS, client_id="backline-test") as idp:
        yield idp


def _serve(tmp_path_factory, sample_db, provider: OIDCProvider, name: str):
    """A Streamlit server on a copy of the sample, configured for the provider (a context manager)."""
    folder = tmp_path_factory.mktemp(name)
    db_path = folder / "app.duckdb"
    shutil.copy(sample_db.path, db_path)
    role_map = folder / "roles.yaml"
    role_map.write_text(yaml.safe_dump({MAPPED_LEAD.email: "lead"}), encoding="utf-8")
    port = free_port()
    provider.register_redirect_uri(f"http://127.0.0.1:{port}/oauth2callback")
    secrets_file = write_secrets(folder, provider, port)
    env = {"STREAMLIT_SECRETS_FILES": str(secrets_file), "BACKLINE_ROLE_MAP": str(role_map),
           "BACKLINE_ROLE_CLAIM": ROLE_CLAIM, "BACKLINE_DEMO": "0"}
    # The server's cwd stays the project (its .streamlit/config.toml applies); only the secrets are redirected.
    return streamlit_server(db_path, env=env, port=port)


@pytest.fixture(scope="module")
def signin_app(tmp_path_factory, sample_db, provider):
    with _serve(tmp_path_factory, sample_db, provider, "signin") as base:
        yield {"base": base}


@pytest.fixture(scope="module")
def fresh_app(tmp_path_factory, sample_db, provider):
    """A server nobody has signed in to, for the signed-out checks."""
    with _serve(tmp_path_factory, sample_db, provider, "fresh") as base:
        yield {"base": base}


@pytest.fixture(scope="module")
def patient_names(sample_db) -> list[str]:
    return [r[0] for r in sample_db.rows("SELECT name FROM patients")]


def sign_in(page, base: str, provider: OIDCProvider, user: TestUser) -> None:
    """Sign in from the app's own "Sign in" button, choosing the user on the provider's page."""
    page.set_viewport_size({"width": 1440, "height": 1000})
    page.goto(base)
    settle(page)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{provider.issuer}/authorize*", timeout=30_000)
    page.locator(f"button[data-email='{user.email}']").click()
    page.wait_for_url(re.compile(re.escape(base) + r"/?(\?.*)?$"), timeout=30_000)
    settle(page)


def sidebar_text(page) -> str:
    return page.locator("[data-testid=stSidebar]").inner_text()


def assert_no_patient_data(page, names: list[str]) -> None:
    assert page.locator("[data-testid=stDataFrame]").count() == 0
    assert page.locator("[data-testid=stTable]").count() == 0
    text = page.locator("[data-testid=stApp]").text_content() or ""  # hidden text too (grids keep theirs hidden)
    shown = [n for n in names if n in text]
    assert not shown, f"patient names on the page: {shown[:5]}"


# --------------------------------------------------------------------------- signed in


def test_a_nurse_signs_in_through_the_provider_and_sees_the_queue(signin_app, provider, page, patient_names):
    tokens_before = len(provider.events("/token"))
    sign_in(page, signin_app["base"], provider, NURSE)
    assert page.locator("h1", has_text="Triage queue").count() == 1
    grid = page.locator("[data-testid=stDataFrame]").first
    grid.wait_for(state="visible", timeout=30_000)  # the live queue may be mid-refresh
    assert any(n in (grid.text_content() or "") for n in patient_names)  # patient rows (the grid's accessible table)
    assert page.locator("[data-testid=stException]").count() == 0
    side = sidebar_text(page)
    assert "Signed in as Emily Baker (nurse)" in side
    assert f"role from the token claim {ROLE_CLAIM}" in side
    assert "DEMO MODE" not in side
    # The flow was the real one: PKCE and a nonce at /authorize, one code exchanged at /token.
    auth = provider.events("/authorize")[-1]["params"]
    assert auth["response_type"] == "code" and auth["code_challenge_method"] == "S256"
    assert auth["nonce"] and auth["state"] and auth["redirect_uri"] == f"{signin_app['base']}/oauth2callback"
    token_calls = provider.events("/token")
    assert len(token_calls) == tokens_before + 1
    assert token_calls[-1]["auth"] == "Basic "  # client_secret_basic
    screenshot(page, "signin-nurse-queue")


def test_the_nurse_is_refused_another_roles_page(signin_app, provider, page):
    sign_in(page, signin_app["base"], provider, NURSE)
    page.goto(f"{signin_app['base']}/response_times")
    settle(page)
    # The page is routable but hidden from the nurse's menu; its own guard refuses her.
    assert page.get_by_text("This page is not available to the nurse role.").count() == 1
    assert page.locator("h1", has_text="Response times").count() == 0
    assert page.locator("[data-testid=stDataFrame]").count() == 0
    assert page.locator("[data-testid=stSidebarNav] a", has_text="Response times").count() == 0
    assert page.get_by_text("Median to ack", exact=False).count() == 0
    screenshot(page, "signin-nurse-refused-response-times")


def test_a_physician_with_a_list_role_claim_sees_the_timeline(signin_app, provider, page):
    sign_in(page, signin_app["base"], provider, PHYSICIAN)
    assert "Signed in as Dr Amara Okoye (physician)" in sidebar_text(page)
    page.goto(f"{signin_app['base']}/patient_timeline")
    settle(page)
    assert page.locator("h1", has_text="Patient timeline").count() == 1
    assert page.locator("[data-testid=stAlertContentError]").count() == 0
    assert page.locator("[data-testid=stException]").count() == 0
    screenshot(page, "signin-physician-timeline")


def test_a_user_without_a_role_sees_no_data(signin_app, provider, page, patient_names):
    sign_in(page, signin_app["base"], provider, NO_ROLE)
    assert page.get_by_text("no Backline role is assigned", exact=False).count() == 1
    assert_no_patient_data(page, patient_names)
    for path in PAGE_PATHS[1:]:
        page.goto(f"{signin_app['base']}/{path}")
        settle(page)
        assert page.get_by_text("no Backline role is assigned", exact=False).count() == 1, path
        assert_no_patient_data(page, patient_names)
    screenshot(page, "signin-no-role")


def test_a_role_from_the_role_map_file_works(signin_app, provider, page):
    sign_in(page, signin_app["base"], provider, MAPPED_LEAD)
    side = sidebar_text(page)
    assert "Signed in as Sister Dana Moss (lead)" in side
    assert "role from the role map" in side
    page.goto(f"{signin_app['base']}/response_times")
    settle(page)
    assert page.locator("h1", has_text="Response times").count() == 1
    assert page.locator("[data-testid=stDataFrame]").count() >= 1
    screenshot(page, "signin-role-map-lead")


def test_sign_out_ends_the_session(signin_app, provider, page, patient_names):
    sign_in(page, signin_app["base"], provider, NURSE)
    logouts_before = len(provider.events("/logout"))
    page.locator("[data-testid=stSidebar]").get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(re.escape(signin_app["base"]) + r"/?(\?.*)?$"), timeout=30_000)
    settle(page)
    assert len(provider.events("/logout")) == logouts_before + 1  # the provider's end_session_endpoint
    assert page.get_by_role("button", name="Sign in", exact=True).count() == 1
    assert_no_patient_data(page, patient_names)


# --------------------------------------------------------------------------- signed out


@pytest.mark.parametrize("path", PAGE_PATHS, ids=[p or "root" for p in PAGE_PATHS])
def test_signed_out_every_page_asks_to_sign_in(fresh_app, page, path, patient_names):
    page.set_viewport_size({"width": 1440, "height": 1000})
    page.goto(f"{fresh_app['base']}/{path}")
    settle(page)
    assert page.get_by_text("Please sign in", exact=False).count() == 1
    assert page.get_by_role("button", name="Sign in", exact=True).count() == 1
    assert page.locator("[data-testid=stSidebarNav] a", has_text="Triage queue").count() == 0
    assert_no_patient_data(page, patient_names)
    assert "DEMO MODE" not in page.locator("body").inner_text()
    screenshot(page, f"signin-signed-out-{path or 'root'}")
