"""How people are identified: sign-in through an identity provider, or demo mode, and nothing else.

Pure functions over the secrets, the settings and the token's claims; ``dashboard.ui`` shows what
they decide. Every problem is a :class:`ConfigError` whose message names the file and what is
wrong, and the page stops on it: no setting that cannot be read falls back to demo mode or to
"no role map".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from dashboard.access import Role, parse_role

SECRETS_FILE = ".streamlit/secrets.toml"
# What st.login() needs from [auth] for its default provider: two shared settings, then the
# provider's three, either in [auth] itself or in an [auth.default] table.
SHARED_KEYS = ("redirect_uri", "cookie_secret")
PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")
# The source of "no role" when the role map names an e-mail the provider has not verified.
UNVERIFIED = "unverified e-mail"
# The mark ``backline seed`` writes in ``meta`` when the sample generator made the database (and
# only then): the last event and report it made are recorded, so that later ones are known as real.
MARK_KEYS = ("synthetic", "created_by", "generated_events", "generated_reports")
CREATED_BY = "backline seed"


class ConfigError(Exception):
    """A sign-in setting that cannot be used (the message names the file and the problem)."""


def auth_problems(section: object) -> list[str]:
    """What is wrong with an ``[auth]`` section for ``st.login()`` (empty: it is complete)."""
    if not isinstance(section, Mapping):
        return ["`auth` is not a table"]
    problems = []

    def missing(table: Mapping, keys: tuple[str, ...], where: str) -> None:
        for key in keys:
            value = table.get(key)
            if not isinstance(value, str) or not value.strip():
                problems.append(f"`{key}` is missing{where}" if value is None else f"`{key}` is empty{where}")

    missing(section, SHARED_KEYS, "")
    redirect = section.get("redirect_uri")
    if isinstance(redirect, str) and redirect.strip() and not redirect.rstrip().endswith("/oauth2callback"):
        problems.append("`redirect_uri` must end with /oauth2callback")
    provider = section.get("default")
    if provider is None:
        missing(section, PROVIDER_KEYS, "")
    elif isinstance(provider, Mapping):
        missing(provider, PROVIDER_KEYS, " in [auth.default]")
    else:
        problems.append("`auth.default` is not a table")
    return problems


def signs_in(demo: bool, secrets: Mapping[str, Any] | None, secrets_error: str | None = None) -> bool:
    """True: people sign in through the provider of ``[auth]``; False: demo mode.

    ``secrets`` is the parsed secrets (None: there is no secrets file), ``secrets_error`` why a
    secrets file that exists cannot be read. Raises ConfigError for a secrets file that does not
    parse, an incomplete ``[auth]``, both ``[auth]`` and demo mode (which one was meant cannot be
    known), and neither.
    """
    if secrets_error:
        raise ConfigError(f"The secrets file cannot be read: {secrets_error}")
    auth = (secrets or {}).get("auth")
    if auth is not None:
        problems = auth_problems(auth)
        if problems:
            raise ConfigError(f"The `[auth]` section of {SECRETS_FILE} is incomplete: " + "; ".join(problems) + ".")
        if demo:
            raise ConfigError(
                f"BACKLINE_DEMO=1 is set and {SECRETS_FILE} configures sign-in (`[auth]`): choose one. "
                "Unset BACKLINE_DEMO to have people sign in, or remove `[auth]` to run the demo on the synthetic sample.")
        return True
    if demo:
        return False
    raise ConfigError(
        f"No sign-in is configured. Configure an identity provider in the `[auth]` section of {SECRETS_FILE}, "
        "or set BACKLINE_DEMO=1 to run the demo on the synthetic sample (as `make run` does).")


def load_role_map(path: Path | str) -> dict[str, Role]:
    """The role-map file: e-mail address -> role. Raises ConfigError naming the file and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"The role map {path} (BACKLINE_ROLE_MAP) does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The role map {path} cannot be read: {exc}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"The role map {path} is not valid YAML: {' '.join(str(exc).split())}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"The role map {path} is not a mapping of e-mail addresses to roles.")
    out: dict[str, Role] = {}
    for email, value in data.items():
        role = parse_role(value) if isinstance(value, str) else None
        if role is None:
            raise ConfigError(f"The role map {path}: {email}: unknown role {value!r} "
                              f"(one of {', '.join(r.value for r in Role)}).")
        out[str(email).strip().lower()] = role
    return out


def email_verified(claims: Mapping[str, Any]) -> bool:
    """The provider says it verified the e-mail address (``email_verified`` true)."""
    value = claims.get("email_verified")
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def verified_email(claims: Mapping[str, Any]) -> str | None:
    email = str(claims.get("email") or "").strip().lower()
    return email if email and email_verified(claims) else None


def role_from_claims(claims: Mapping[str, Any], role_claim: str,
                     role_map: Path | str | None) -> tuple[Role | None, str | None]:
    """The role and where it came from: the token claim, else the role map for a verified e-mail.

    A role-map entry for an e-mail the provider has not verified gives no role (source
    :data:`UNVERIFIED`, so the page can say why). The role map is read each time (edits apply at
    once); a file that cannot be used raises ConfigError.
    """
    role = parse_role(claims.get(role_claim))
    if role is not None:
        return role, f"token claim `{role_claim}`"
    if role_map is None:
        return None, None
    mapping = load_role_map(role_map)
    email = str(claims.get("email") or "").strip().lower()
    if not email or email not in mapping:
        return None, None
    if not email_verified(claims):
        return None, UNVERIFIED
    return mapping[email], "role map"


def is_generated(meta: Mapping[str, str]) -> bool:
    """The database carries the sample generator's mark (demo mode runs on nothing else)."""
    return (meta.get("synthetic") == "true" and meta.get("created_by") == CREATED_BY
            and str(meta.get("generated_events", "")).isdigit() and str(meta.get("generated_reports", "")).isdigit())
