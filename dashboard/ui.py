"""Streamlit glue shared by every page: the guard, the signed-in user, cached reads, small widgets.

Every page calls :func:`guard` first. A page can be run directly from its URL on a fresh server
without the entry point, so the guard does everything itself: it loads the rules (failing
closed), checks the database, identifies the user (identity provider, or demo mode with a role
switcher on synthetic data only) and stops the page unless the user's role may see it.
"""

from __future__ import annotations

import atexit
import gc
import html
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import metrics, queue, timeline
from dashboard.access import PAGES, Action, Page, Role, User
from dashboard.config import Settings, get_settings, local_now
from dashboard.db import Database, DatabaseError, default_database, open_store
from dashboard.postgres_store import StoreUnavailable
from dashboard.db import data_version as db_data_version
from dashboard.labels import FLAG_ANSWERS, FLAG_GROUPS, FLAG_QUESTIONS, TIER_COLOURS, TIER_SYMBOLS
from dashboard.rules import RuleSet, RulesError, load_rules, rules_digest

PAGE_TITLE = "Backline"


@dataclass(frozen=True)
class Context:
    user: User
    rules: RuleSet
    db: Database
    settings: Settings
    now: datetime
    version: tuple  # the data version when the page started (cached reads are keyed on it)


# --------------------------------------------------------------------------- resources


@st.cache_resource(show_spinner=False, max_entries=4)
def _rules(directory: str, version: str) -> RuleSet:
    """The rules of a folder at one version (the digest of its files): a change of any file is a new
    entry, so every process puts the same rules in force as soon as the files change."""
    return load_rules(directory)


def rules_in_force() -> RuleSet:
    """The validated rules on disk, checked for a change on every run (a digest of the files, read
    afresh: an edit, a deployment or another process's reload is noticed at the next rerun); on any
    problem the page stops with the file and field named."""
    directory = str(get_settings().rules_dir)
    try:
        return _rules(directory, rules_digest(directory))
    except RulesError as exc:
        st.error(
            f"**Backline cannot start: the rules do not validate.**\n\n`{exc}`\n\n"
            "Nothing runs on part of a rule set. Correct the file and reload the page."
        )
        st.stop()
        raise  # pragma: no cover - st.stop raises


def rules_on_disk() -> RuleSet:
    """Validate the rules from disk again (admin), without putting them in force. Raises RulesError."""
    return load_rules(get_settings().rules_dir)


def install_rules() -> None:
    """After the stored reports were re-triaged with the rules on disk: every page now loads them."""
    _rules.clear()


@st.cache_resource(show_spinner=False)
def _database(location: str):
    return open_store(location)


def database():
    return _database(default_database().location)


# --------------------------------------------------------------------------- identity


def auth_configured() -> bool:
    """True: people sign in through the identity provider of ``[auth]``; False: demo mode.

    Raises ``identity.ConfigError`` (the guard shows it and stops) for a secrets file that does
    not parse, an incomplete ``[auth]``, both ``[auth]`` and BACKLINE_DEMO=1, or neither.
    """
    from dashboard.identity import signs_in

    secrets, error = None, None
    try:
        secrets = st.secrets.to_dict()
    except Exception as exc:  # no secrets file, or one that cannot be read
        files = st.get_option("secrets.files") or []
        if any(Path(f).exists() for f in files):
            error = " ".join(str(exc).split())
    return signs_in(get_settings().demo, secrets, error)


def _claims() -> dict[str, Any]:
    try:
        info = dict(st.user)
    except Exception:
        return {}
    return info if info.get("is_logged_in") else {}


def role_and_source(claims: dict[str, Any], settings: Settings) -> tuple[Role | None, str | None]:
    """The role from the token claim (a string or a list), else from the role map for a verified
    e-mail; and where it came from (``identity.UNVERIFIED``: the map names an unverified e-mail)."""
    from dashboard.identity import role_from_claims

    return role_from_claims(claims, settings.role_claim, settings.role_map)


@st.cache_data(ttl=300, show_spinner=False)
def cached_staff(path: str) -> pd.DataFrame:
    return open_store(path).query("SELECT staff_id, name, email, role, panel_id FROM staff ORDER BY role, panel_id, name")


def identify(db: Database, settings: Settings) -> User | None:
    """The signed-in user, or None (the caller shows the sign-in or demo controls).

    Raises ``identity.ConfigError`` when the sign-in settings or the role map cannot be used.
    """
    from dashboard.identity import verified_email

    if auth_configured():
        claims = _claims()
        if not claims:
            return None
        actor = str(claims.get("email") or claims.get("sub") or "").lower()
        name = str(claims.get("name") or actor)
        role, source = role_and_source(claims, settings)
        if role is None:
            return User(actor=actor or "unknown", name=name, role=None, role_source=source)
        # A person's panels come from the staff list, by an e-mail the provider has verified.
        email = verified_email(claims)
        staff = cached_staff(db.location)
        mine = staff[staff["email"].str.lower() == email] if email else staff.iloc[0:0]
        panels = tuple(mine["panel_id"].dropna()) if not mine.empty else ()
        return User(actor=actor, name=name, role=role, panels=panels, role_source=source)
    # Demo mode: a switcher over the sample's staff. The person chosen is kept in the address
    # (``?as=STAFF_ID``), so a reload of the page keeps them.
    staff = cached_staff(db.location)
    ids = set(staff["staff_id"])
    actor = st.session_state.get("demo_actor")
    if actor not in ids:
        actor = st.query_params.get("as")
    if actor not in ids:
        actor = staff[staff["role"] == "nurse"]["staff_id"].iloc[0] if (staff["role"] == "nurse").any() else staff["staff_id"].iloc[0]
    st.session_state["demo_actor"] = actor
    if st.query_params.get("as") != actor:
        st.query_params["as"] = actor
    row = staff[staff["staff_id"] == actor].iloc[0]
    panels = (row["panel_id"],) if isinstance(row["panel_id"], str) else ()
    return User(actor=row["staff_id"], name=row["name"], role=Role(row["role"]), panels=panels, demo=True,
                role_source="demo")


def _demo_switcher(db: Database) -> None:
    staff = cached_staff(db.location)
    labels = {
        r.staff_id: f"{r.name} · {r.role}" + (f" · {r.panel_id}" if isinstance(r.panel_id, str) else "")
        for r in staff.itertuples()
    }
    ids = list(labels)
    current = st.session_state.get("demo_actor")

    def chosen() -> None:
        # Kept under a plain key (widget state does not survive a change of page) and in the
        # address (a reload starts a new session); the guard moves a person whose role may not
        # see the current page to one it may.
        st.session_state["demo_actor"] = st.session_state["demo_actor_choice"]
        st.query_params["as"] = st.session_state["demo_actor"]
        st.session_state["demo_switched"] = True

    st.sidebar.selectbox("Act as (demo)", ids, index=ids.index(current) if current in ids else 0,
                         format_func=labels.get, key="demo_actor_choice", on_change=chosen,
                         help="Demo mode only: pick whose shoes to stand in. With an identity provider configured, "
                              "people sign in and their role comes from their token.")


def navigation_role() -> Role | None:
    """The current user's role for building the navigation (no widgets; None when not signed in)."""
    try:
        user = identify(database(), get_settings())
    except Exception:  # the page's guard says what is wrong
        return None
    return user.role if user is not None else None


def roles_for(page: Page) -> frozenset[Role]:
    return PAGES[page]


def store_unavailable(exc: Exception) -> None:
    """The shared store cannot be reached: say so plainly (no traceback, no stale queue shown as current)."""
    st.error(f"**The store is unavailable.** {exc}. Nothing is shown rather than a queue that may be out of date. "
             "Every action that was confirmed is saved; an action that was not confirmed was not recorded: enter it "
             "again when the store is back. This page retries by itself.", icon=":material/cloud_off:")
    st.caption(f"Retrying every {get_settings().queue_refresh_seconds} s.")

    @st.fragment(run_every=get_settings().queue_refresh_seconds)
    def _retry() -> None:
        try:
            database().check_schema()
        except DatabaseError:
            return
        st.rerun()

    _retry()


def guard(page: Page) -> Context:
    """Run first on every page: rules, sign-in settings, database, user and role, or stop."""
    from dashboard.identity import UNVERIFIED, ConfigError, is_generated

    st.set_page_config(page_title=PAGE_TITLE, page_icon=":material/healing:", layout="wide")
    settings = get_settings()
    rules = rules_in_force()
    try:
        demo = not auth_configured()
    except ConfigError as exc:
        st.error(f"**Backline cannot start.** {exc}")
        st.stop()
    db = database()
    try:
        version = db.check_schema()
    except StoreUnavailable as exc:
        store_unavailable(exc)
        st.stop()
    except DatabaseError as exc:
        st.error(f"**The database cannot be used.** {exc}")
        st.stop()
    if demo and not is_generated(cached_meta(db.location)):
        st.error(
            "**Demo mode refused.** This database was not made by the sample generator (`backline seed`), so it "
            "may hold real patient data. Demo mode runs only on a generated sample: build one with "
            "`backline seed --db NEW_FILE`, or configure sign-in (`[auth]` in `.streamlit/secrets.toml`) and "
            "unset BACKLINE_DEMO to use this database."
        )
        st.stop()
    try:
        user = identify(db, settings)
    except ConfigError as exc:
        st.error(f"**Sign-in cannot be checked.** {exc}")
        st.stop()
    if demo:
        st.sidebar.warning("**DEMO MODE** · synthetic data only · no sign-in", icon=":material/science:")
        _demo_switcher(db)
        panel = f" · panel {user.panels[0]}" if user.panels else ""
        st.sidebar.info(f"Acting as **{plain(user.name)}** ({user.role.value}{panel})", icon=":material/badge:")
    if user is None:
        st.title("Backline")
        st.info("Please sign in with your hospital account to see patient data.")
        if st.button("Sign in", type="primary"):
            st.login()
        st.stop()
    if user.role is None:
        if user.role_source == UNVERIFIED:
            st.error(f"Signed in as {plain(user.name)}, but your identity provider has not verified the e-mail "
                     f"address {plain(user.actor)}, so the role map gives it no role. Ask an administrator.")
        else:
            st.error(f"Signed in as {plain(user.name)}, but no Backline role is assigned to this account. "
                     "Ask an administrator.")
        if st.button("Sign out"):
            st.logout()
        st.stop()
    switched = st.session_state.pop("demo_switched", False)
    if not user.may_see(page):
        if demo and switched and user.first_page() is not None:
            # The person just chosen may not see this page: go to the first one they may see.
            from dashboard.access import PAGE_FILES

            st.switch_page(PAGE_FILES[user.first_page()])
        st.error(f"This page is not available to the {user.role.value} role.")
        st.stop()
    if not demo:
        st.sidebar.caption(f"Signed in as **{plain(user.name)}** ({user.role.value}) · role from the {user.role_source}")
        if st.sidebar.button("Sign out"):
            st.logout()
    st.sidebar.caption(f"Rules {rules.version}")
    if user.sees_patient_data or user.may(Action.RELOAD_RULES):
        stale = cached_stale_open_reports(db.location, rules, rules.version, version)
        if stale:
            st.warning(
                f"**{stale:,} open report{'s' if stale != 1 else ''} carr{'y' if stale != 1 else 'ies'} a tier from "
                f"other rules than those in force ({rules.version}).** The rules have changed since "
                f"{'they were' if stale != 1 else 'it was'} triaged; an admin re-triages the stored reports on the "
                "Rules page (or `backline retriage`). Until then each such report says so in its detail.",
                icon=":material/sync_problem:")
    _freeze_startup_objects()
    return Context(user=user, rules=rules, db=db, settings=settings, now=local_now(), version=version)


_FROZEN = False


def _freeze_startup_objects() -> None:
    """Move what is loaded by now (libraries, rules) out of the garbage collector's sight, once.

    Without it a full collection walks every long-lived object and adds ~75 ms to a third of runs.
    """
    global _FROZEN
    if not _FROZEN:
        gc.collect()
        gc.freeze()
        atexit.register(gc.unfreeze)  # let them go normally at exit
        _FROZEN = True


@st.cache_data(ttl=60, show_spinner=False)
def cached_meta(path: str) -> dict[str, str]:
    try:
        return open_store(path).meta()
    except Exception:
        return {}


# --------------------------------------------------------------------------- cached reads


def data_version(db: Database) -> tuple:
    """A cheap fingerprint of the data: changes whenever a report, event, triage or alert is written."""
    with db.connect() as con:
        return db_data_version(con)


@st.cache_data(ttl=60, show_spinner=False, max_entries=4)
def cached_import_log(path: str, version: tuple) -> pd.DataFrame:
    from dashboard.fhir_import import import_log

    return import_log(open_store(path))


def import_problems(log: pd.DataFrame, import_id: int) -> pd.DataFrame:
    from dashboard.fhir_import import import_problems as problems

    return problems(log, import_id)


def fhir_export_bytes(ctx: Context, start: date, end: date) -> bytes:
    """The FHIR bundle of the reports made from ``start`` to before ``end`` (built only when asked for)."""
    import json

    from dashboard import fhir_export

    since, until = datetime.combine(start, time(0)), datetime.combine(end, time(0))
    return json.dumps(fhir_export.bundle(ctx.db, ctx.rules, since=since, until=until), ensure_ascii=False).encode()


def alerts_worker_status(ctx: Context):
    """Is the alerts worker running on this database (its heartbeat, read afresh)?"""
    from dashboard.alerts import worker_status

    try:
        meta = ctx.db.meta()
    except DatabaseError:
        meta = {}
    return worker_status(meta, local_now())


def report_panel(ctx: Context, report_id: str) -> str | None:
    """The panel of a report (None when there is no such report): a link is opened only within one's panels."""
    return queue.panel_of(ctx.db, report_id)


@st.cache_data(ttl=600, show_spinner=False, max_entries=16)
def cached_alert_response(path: str, _rules: RuleSet, rules_version: str, panels: tuple[str, ...], start, end,
                          version: tuple, now: datetime) -> pd.DataFrame:
    return metrics.alert_response(open_store(path), _rules, list(panels), start, end, now)


@st.cache_data(ttl=600, show_spinner=False, max_entries=16)
def cached_stale_open_reports(path: str, _rules: RuleSet, rules_version: str, version: tuple) -> int:
    from dashboard.retriage import stale_open_reports

    with open_store(path).connect() as con:
        return stale_open_reports(con, _rules)


@st.cache_data(ttl=600, show_spinner=False, max_entries=64)
def cached_open_reports(path: str, panels: tuple[str, ...], version: tuple) -> pd.DataFrame:
    return queue.open_reports(open_store(path), list(panels))


@st.cache_data(ttl=600, show_spinner=False, max_entries=64)
def cached_report_detail(path: str, _rules: RuleSet, rules_version: str, report_id: str,
                         version: tuple) -> dict[str, Any] | None:
    return queue.report_detail(open_store(path), _rules, report_id)


@st.cache_data(ttl=600, show_spinner=False, max_entries=32)
def cached_timeline(path: str, _rules: RuleSet, rules_version: str, patient_id: str, version: tuple,
                    today: date) -> timeline.Timeline | None:
    """A patient's timeline; open-ended windows run to the end of ``today`` (a day, so the cache holds)."""
    return timeline.patient_timeline(open_store(path), _rules, patient_id, datetime.combine(today, time.max))


@st.cache_data(ttl=600, show_spinner=False, max_entries=16)
def cached_response_times(path: str, _rules: RuleSet, rules_version: str, panels: tuple[str, ...], start, end,
                          in_hours: tuple[int, int], version: tuple, now: datetime) -> metrics.ResponseTimes:
    """The figures as of ``now`` (pass it to the minute, so the cache holds for a minute)."""
    return metrics.response_times(open_store(path), _rules, list(panels), start, end, now, in_hours=in_hours)


@st.cache_data(ttl=300, show_spinner=False)
def cached_panels(path: str) -> pd.DataFrame:
    return open_store(path).query("SELECT panel_id, name, service FROM panels ORDER BY service, name")


@st.cache_data(ttl=600, show_spinner=False, max_entries=64)
def cached_patient_record(path: str, _rules: RuleSet, rules_version: str, patient_id: str, at: datetime,
                          version: tuple) -> dict[str, Any] | None:
    return timeline.patient_record(open_store(path), _rules, patient_id, at)


def clear_caches() -> None:
    """After a write: every cached read is stale."""
    for fn in (cached_open_reports, cached_report_detail, cached_timeline, cached_response_times,
               cached_patient_record):
        fn.clear()


# --------------------------------------------------------------------------- widgets


def panel_picker(ctx: Context, key: str) -> list[str]:
    """The panels to show, chosen among those this person may see (a nurse: their own panels)."""
    from dashboard.access import visible_panels as panels_for

    panels = cached_panels(str(ctx.db.path))
    names = dict(zip(panels["panel_id"], panels["name"]))
    allowed = panels_for(ctx.user, list(names))
    if not allowed:
        st.info("No panel is assigned to you, so there are no reports to show. Ask an administrator to add you "
                "to your panels.")
        return []
    default = [p for p in ctx.user.panels if p in allowed] or allowed[:1]
    chosen = st.multiselect("Panels", allowed, default=default, format_func=names.get, key=key,
                            placeholder="Choose one or more panels")
    return [p for p in chosen if p in allowed]


def visible_panels(ctx: Context) -> list[str]:
    """Every panel this person may see (:func:`dashboard.access.visible_panels`)."""
    from dashboard.access import visible_panels as panels_for

    return panels_for(ctx.user, list(cached_panels(str(ctx.db.path))["panel_id"]))


def forget_forms(owner: str) -> None:
    """Clear what was typed in the forms that belong to one report or patient (keys ``*_{owner}`` or
    ``{owner}_*``): after a successful submit, and when the person turns to another report."""
    for key in [k for k in st.session_state if isinstance(k, str) and (k.endswith(f"_{owner}") or k.startswith(f"{owner}_"))]:
        del st.session_state[key]


# The phone form's fields as it labels them (for error messages).
REPORT_FIELD_LABELS = {
    "patient_id": "Patient", "report": "Report", "note": "Note", "report.reported_at": "Reported on",
    "report.pain_score": "Pain score (0-10)", "report.duration_days": "For how many days?",
    "report.temperature_c": "Temperature °C", "report.trend": "Getting better, the same, or worse?",
    "report.location": "Where in the back?", "unasked": "Red flags",
}


def tier_badge(rules: RuleSet, tier: str) -> str:
    """HTML for a tier: symbol, word and colour together (never colour alone)."""
    strong, light = TIER_COLOURS[tier]
    label = html.escape(rules.tier_by_id[tier].label.upper())
    return (f"<span style='background:{light};color:{strong};border:2px solid {strong};border-radius:6px;"
            f"padding:2px 10px;font-weight:700;white-space:nowrap'>{TIER_SYMBOLS[tier]} {label}</span>")


def tier_text(rules: RuleSet, tier: str) -> str:
    return f"{TIER_SYMBOLS[tier]} {rules.tier_by_id[tier].label.upper()}"


def style_tiers(df: pd.DataFrame, column: str = "Tier", tiers: pd.Series | None = None):
    """A Styler colouring the tier cells (light fill, dark text) and overdue clocks."""
    keys = tiers if tiers is not None else df[column]

    def colour(col: pd.Series) -> list[str]:
        out = []
        for t in keys.loc[col.index]:
            strong, light = TIER_COLOURS.get(t, ("#1b1b1b", "#ffffff"))
            out.append(f"background-color: {light}; color: {strong}; font-weight: 700")
        return out

    styler = df.style.apply(colour, subset=[column])
    if "Clock" in df.columns:
        styler = styler.apply(
            lambda col: ["color: #b3261e; font-weight: 700" if str(v).startswith("OVERDUE") else "" for v in col],
            subset=["Clock"],
        )
    return styler


def flash(message: str, kind: str = "success", *, where: str = "page") -> None:
    """A message to show after the next rerun (actions rerun the page to refresh it), where the
    person acted (``where`` names the place; :func:`show_flash` shows it there, and as a toast)."""
    st.session_state["flash"] = (message, kind, where)


def show_flash(where: str = "page") -> None:
    message = st.session_state.get("flash")
    if message and message[2] == where:
        st.session_state.pop("flash")
        text, kind, _ = message
        st.toast(plain(text), icon=":material/check_circle:" if kind == "success" else ":material/info:")
        {"success": st.success, "warning": st.warning, "error": st.error}.get(kind, st.info)(plain(text))


_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:$])")  # < > & " ' are HTML-escaped


def plain(text: object) -> str:
    """Text from the database or a person, made safe to place in Markdown (and in HTML): every
    Markdown mark and HTML character is escaped, so it shows as typed and fetches nothing."""
    escaped = _MARKDOWN_SPECIALS.sub(r"\\\1", str(text))
    return html.escape(escaped, quote=True).replace("\n", "  \n")


def show_input_error(exc: Exception, labels: dict[str, str] | None = None) -> None:
    """A validation error, naming each field as the form labels it (``labels``: field -> label)."""
    problems = getattr(exc, "problems", None) or [("", str(exc))]
    labels = labels or {}

    def name(field: str) -> str:
        return labels.get(field) or labels.get(field.split(".")[-1]) or field or "input"

    st.error("Not saved:\n" + "\n".join(f"- **{plain(name(f))}**: {plain(m)}" for f, m in problems))


def show_explanation(rules: RuleSet, x: dict[str, Any]) -> None:
    """A triage in words (:func:`dashboard.queue.explain`): what to do, then why. The queue's detail
    shows the same two parts side by side; the what-if form one after the other."""
    show_what_to_do(x)
    show_why(x)


def show_what_to_do(x: dict[str, Any]) -> None:
    """The leading causes, then imaging, referral and advice (read to the patient), each line with its
    time in words; notes for the team apart from the advice."""
    st.markdown("#### What to do")
    st.markdown("**Leading:** " + (", ".join(x["leading"]) or x["leading_note"]) + "  \n"
                "**Also considered:** " + (", ".join(x["also_considered"]) or "none"))
    lines = lambda items: "\n".join(f"- **{line['when']}** · {line['text']}" for line in items)  # noqa: E731
    st.markdown("**Imaging:**\n" + (lines(x["imaging"]) if x["imaging"] else "- none"))
    st.markdown("**Referral and action:**\n" + (lines(x["referral"]) if x["referral"] else "- none"))
    st.markdown("**Advice and safety net (read to the patient):**\n" + "\n".join(f"- {a}" for a in x["advice"]))
    if x.get("staff_notes"):
        st.markdown("**For staff (not to read to the patient):**\n" + "\n".join(f"- {n}" for n in x["staff_notes"]))


def show_why(x: dict[str, Any]) -> None:
    """The rules that fired (with rationale and source), the drug effects, recent SACT and the treatment facts."""
    st.markdown("#### Why this tier")
    for r in x["rules_fired"]:
        with st.expander(f"{r['id']} · {r['title']} ({r['tier']})", expanded=r["tier"] in ("emergency", "urgent")):
            st.markdown(f"**When:** {r['condition']}\n\n**Why:** {r['rationale']}\n\n**Source:** {r['sources']}")
    effects = x["drug_effects"] or ["no back-pain drug effect fits this report's timing"]
    # These lines name the drugs as the record holds them (any text): shown as typed, never as Markdown.
    st.markdown("**Drug effects:**\n" + "\n".join(f"- {plain(e)}" for e in effects))
    head, _, rest = x["recent_sact"].partition(":")
    st.markdown(f"**{plain(head)}:**{plain(rest)}")
    if x["facts"]:
        st.markdown("**From the treatment record:**\n" + "\n".join(f"- {plain(f)}" for f in x["facts"]))
    if x["unrecognised"]:
        st.warning(f"Unrecognised drug names: {plain(', '.join(x['unrecognised']))}. Each counts as possible anticancer "
                   "treatment for recent SACT; confirm what they are.")


def find_patients_safe(ctx: Context, text: str, panels: list[str] | None = None) -> pd.DataFrame | None:
    """Patient search; a hostile or malformed search says why instead of failing."""
    from dashboard.models import InputError

    try:
        return timeline.find_patients(ctx.db, text, panels)
    except InputError as exc:
        show_input_error(exc)
        return None


def red_flag_questions(key_prefix: str) -> dict[str, bool]:
    """The red-flag questions of the what-if form (nothing is recorded there), as checkboxes, two
    groups a row so that each reads in full; the answers by field."""
    flags: dict[str, bool] = {}
    groups = list(FLAG_GROUPS.items())
    for pair in (groups[:2], groups[2:]):
        for col, (title, names) in zip(st.columns(2), pair):
            col.caption(title)
            for name in names:
                flags[name] = col.checkbox(FLAG_QUESTIONS[name], key=f"{key_prefix}{name}")
    return flags


def red_flag_answers(key: str) -> dict[str, str | None]:
    """The red-flag questions of the phone form: each answered yes, no or could not ask, none chosen
    at first (:data:`dashboard.labels.FLAG_ANSWERS`); the answers by field (None: not answered yet)."""
    answers: dict[str, str | None] = {}
    groups = list(FLAG_GROUPS.items())
    for pair in (groups[:2], groups[2:]):
        for col, (title, names) in zip(st.columns(2), pair):
            col.caption(title)
            for name in names:
                answers[name] = col.radio(FLAG_QUESTIONS[name], list(FLAG_ANSWERS), index=None,
                                          format_func=FLAG_ANSWERS.get, horizontal=True, key=f"{key}_{name}")
    return answers
