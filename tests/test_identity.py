"""Nothing fails open: demo mode only when chosen, sign-in settings that cannot be used stop the app
with the problem named, a role from a list claim by the documented order, the role map only for a
verified e-mail, and a role map that cannot be read is an error on screen."""

from __future__ import annotations

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from dashboard.access import Role, parse_role
from dashboard.config import get_settings
from dashboard.identity import (UNVERIFIED, ConfigError, auth_problems, load_role_map, role_from_claims,
                                signs_in)
from tests.test_pages import APP, app_db, texts  # noqa: F401

AUTH = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "a-long-random-string-for-the-cookie-signature",
    "client_id": "backline",
    "client_secret": "s3cret",
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
}
LEAD_EMAIL = "lead4@backline.example"


@pytest.fixture
def settings_env(monkeypatch):
    """Set BACKLINE_* variables for one test (the settings are read again, and again after it)."""
    def use(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(f"BACKLINE_{key.upper()}", value)
        get_settings.cache_clear()

    yield use
    monkeypatch.undo()
    get_settings.cache_clear()


def run_app(*, secrets: dict | None = None, user: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if secrets is not None:
        at.secrets.update(secrets)
    if user is not None:
        at.user = user
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def errors(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in at.error)


# --------------------------------------------------------------------------- the settings, as functions


def test_an_incomplete_auth_section_names_what_st_login_needs():
    assert auth_problems(AUTH) == []
    assert auth_problems({**{k: v for k, v in AUTH.items() if k not in ("client_id", "client_secret", "server_metadata_url")},
                          "default": {k: AUTH[k] for k in ("client_id", "client_secret", "server_metadata_url")}}) == []
    problems = auth_problems({"redirect_uri": "https://backline.example.org/callback", "client_id": "x",
                              "cookie_secret": " "})
    assert problems == ["`cookie_secret` is empty", "`redirect_uri` must end with /oauth2callback",
                        "`client_secret` is missing", "`server_metadata_url` is missing"]
    assert auth_problems({**AUTH, "default": {"client_id": "x"}}) == [
        "`client_secret` is missing in [auth.default]", "`server_metadata_url` is missing in [auth.default]"]
    assert auth_problems("yes") == ["`auth` is not a table"]


def test_demo_mode_is_only_ever_chosen():
    assert signs_in(False, {"auth": AUTH}) is True
    assert signs_in(True, None) is False
    assert signs_in(True, {"other": 1}) is False
    with pytest.raises(ConfigError, match=r"No sign-in is configured.*\[auth\].*BACKLINE_DEMO=1"):
        signs_in(False, None)
    with pytest.raises(ConfigError, match="No sign-in is configured"):
        signs_in(False, {"other": 1})
    with pytest.raises(ConfigError, match="choose one"):
        signs_in(True, {"auth": AUTH})
    with pytest.raises(ConfigError, match="incomplete: `client_secret` is missing"):
        signs_in(False, {"auth": {k: v for k, v in AUTH.items() if k != "client_secret"}})
    # A secrets file that does not parse is never "no secrets", demo mode or not.
    for demo in (False, True):
        with pytest.raises(ConfigError, match="cannot be read: bad line"):
            signs_in(demo, None, "bad line")


def test_a_list_claim_gives_the_documented_order():
    """Physician, nurse, lead, admin: the role that may act clinically wins."""
    assert parse_role(["lead", "nurse"]) is Role.NURSE
    assert parse_role(["admin", "nurse", "physician"]) is Role.PHYSICIAN
    assert parse_role(["admin", "lead"]) is Role.LEAD
    assert parse_role(["staff", " Admin "]) is Role.ADMIN
    assert parse_role(["staff"]) is None and parse_role(None) is None
    assert "physician, nurse, lead, admin" in parse_role.__doc__


def test_the_role_map_needs_a_verified_email(tmp_path):
    path = tmp_path / "roles.yaml"
    path.write_text(yaml.safe_dump({LEAD_EMAIL.upper(): "lead"}))
    verified = {"email": LEAD_EMAIL, "email_verified": True}
    assert role_from_claims(verified, "backline_role", path) == (Role.LEAD, "role map")
    assert role_from_claims({**verified, "email_verified": "true"}, "backline_role", path) == (Role.LEAD, "role map")
    for unverified in ({"email": LEAD_EMAIL}, {"email": LEAD_EMAIL, "email_verified": False},
                       {"email": LEAD_EMAIL, "email_verified": "false"}):
        assert role_from_claims(unverified, "backline_role", path) == (None, UNVERIFIED)
    # Not in the map: no role; the token's claim needs no map.
    assert role_from_claims({"email": "x@y.z", "email_verified": True}, "backline_role", path) == (None, None)
    assert role_from_claims({"email": LEAD_EMAIL, "backline_role": "nurse"}, "backline_role", path) == (
        Role.NURSE, "token claim `backline_role`")
    # The subject is not an e-mail: it matches nothing.
    assert role_from_claims({"sub": LEAD_EMAIL, "email_verified": True}, "backline_role", path) == (None, None)


@pytest.mark.parametrize("content, problem", [
    (None, "does not exist"),
    ("a: [unclosed\n", "is not valid YAML"),
    ("- nurse@x.org\n- lead\n", "is not a mapping"),
    ("nurse@x.org: matron\n", "nurse@x.org: unknown role 'matron'"),
    ("nurse@x.org: [nurse]\n", "unknown role ['nurse']"),
])
def test_an_unreadable_role_map_names_the_file_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "roles.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_role_map(path)
    assert str(path) in str(caught.value) and problem in str(caught.value)


# --------------------------------------------------------------------------- on screen


def test_without_demo_mode_or_sign_in_the_app_stops(app_db, settings_env):
    settings_env(demo="0")
    at = run_app()
    assert "No sign-in is configured" in errors(at)
    assert "`[auth]` section of .streamlit/secrets.toml" in errors(at) and "BACKLINE_DEMO=1" in errors(at)
    assert not at.dataframe and "DEMO MODE" not in texts(at)


def test_an_incomplete_auth_section_stops_the_app(app_db, settings_env):
    settings_env(demo="0")
    at = run_app(secrets={"auth": {k: v for k, v in AUTH.items() if k != "cookie_secret"}})
    assert "incomplete: `cookie_secret` is missing" in errors(at)
    assert not at.dataframe and not at.button


def test_demo_mode_and_sign_in_together_are_refused(app_db, settings_env):
    settings_env(demo="1")
    at = run_app(secrets={"auth": AUTH})
    assert "choose one" in errors(at)
    assert not at.dataframe and "DEMO MODE" not in texts(at)


def test_a_secrets_file_that_does_not_parse_stops_the_app(app_db, settings_env, tmp_path):
    from streamlit import config
    from streamlit.runtime.secrets import secrets_singleton

    bad = tmp_path / "secrets.toml"
    bad.write_text('[auth]\nredirect_uri = "http://127.0.0.1:8501/oauth2callback\n')  # unterminated string
    before = config.get_option("secrets.files")
    config.set_option("secrets.files", [str(bad)])
    secrets_singleton._reset()
    try:
        for demo in ("1", "0"):  # demo mode is no way round it
            settings_env(demo=demo)
            at = run_app()
            assert "The secrets file cannot be read" in errors(at) and str(bad) in errors(at)
            assert not at.dataframe and "DEMO MODE" not in texts(at)
    finally:
        config.set_option("secrets.files", before)
        secrets_singleton._reset()


def signed_in(email: str, **claims) -> dict:
    return {"is_logged_in": True, "email": email, "name": "Sister Dana Moss", "sub": "idp-l004", **claims}


def test_an_unverified_email_gets_no_role_from_the_map_and_is_told_so(app_db, settings_env, tmp_path):
    roles = tmp_path / "roles.yaml"
    roles.write_text(yaml.safe_dump({LEAD_EMAIL: "lead"}))
    settings_env(demo="0", role_map=str(roles))
    at = run_app(secrets={"auth": AUTH}, user=signed_in(LEAD_EMAIL, email_verified=False))
    assert f"has not verified the e-mail address {LEAD_EMAIL}" in errors(at).replace("\\", "")
    assert not at.dataframe
    at = run_app(secrets={"auth": AUTH}, user=signed_in(LEAD_EMAIL, email_verified=True))
    assert not at.error
    assert "Signed in as **Sister Dana Moss** (lead) · role from the role map" in texts(at)
    assert [t.value for t in at.title] == ["Triage queue"]


@pytest.mark.parametrize("content, problem", [
    (None, "does not exist"), ("{unclosed\n", "is not valid YAML"), ("lead\n", "is not a mapping"),
    (f"{LEAD_EMAIL}: boss\n", "unknown role 'boss'"),
])
def test_an_unreadable_role_map_is_an_error_on_screen(app_db, settings_env, tmp_path, content, problem):
    roles = tmp_path / "roles.yaml"
    if content is not None:
        roles.write_text(content)
    settings_env(demo="0", role_map=str(roles))
    at = run_app(secrets={"auth": AUTH}, user=signed_in(LEAD_EMAIL, email_verified=True))
    shown = errors(at).replace("\\", "")
    assert "Sign-in cannot be checked" in shown and str(roles) in shown and problem in shown
    assert not at.dataframe
