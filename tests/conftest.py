"""Shared fixtures: the rules, contract cases, and real DuckDB files in temporary folders."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("BACKLINE_TIMEZONE", "Europe/London")
# The app under test runs in demo mode on generated samples; the sign-in tests turn it off.
os.environ.setdefault("BACKLINE_DEMO", "1")

from dashboard.models import validate_case  # noqa: E402
from dashboard.rules import load_rules  # noqa: E402
from dashboard.triage import triage_cases  # noqa: E402

REPORTED = "2026-11-20T09:30:00"
# A fixed "now" for seeded databases, so every test sees the same data.
SEED_NOW = datetime(2026, 11, 20, 12, 0)


@pytest.fixture(scope="session")
def rules():
    return load_rules(ROOT / "rules")


def make_case(report: dict[str, Any] | None = None, *, meds: list[tuple] | None = None,
              patient: dict[str, Any] | None = None, report_id: str = "R-1") -> dict[str, Any]:
    """A contract case as a dict: a lumbar, stable, gradual pain 2 by default, no medications.

    ``meds`` holds (drug, given_at) doses or (drug, given_at, stopped_at) courses."""
    base = {
        "report_id": report_id,
        "patient": {"patient_id": "P-1", "cancer_type": "breast"},
        "medications": [],
        "report": {"reported_at": REPORTED, "pain_score": 2, "onset": "gradual", "trend": "stable",
                   "location": "lumbar"},
    }
    out = copy.deepcopy(base)
    out["report"].update(report or {})
    out["patient"].update(patient or {})
    out["medications"] = [{"drug": m[0], "given_at": m[1], **({"stopped_at": m[2]} if len(m) > 2 else {})}
                          for m in (meds or [])]
    return out


def triage(rules, case: dict[str, Any]):
    return triage_cases(rules, [validate_case(case)])[0]


def run_cli(*args: str, stdin: str | bytes | None = None, env: dict[str, str] | None = None,
            timeout: float = 120, unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """The command line as a person runs it: this environment, plus ``env``, less ``unset``."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    environment = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "-m", "dashboard", *args], input=data, capture_output=True, cwd=ROOT,
        env=environment, timeout=timeout,
    )


def altered(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``data`` with the field at a dotted path (list items by index) set, or removed
    when ``value`` is KeyError: one wrong field in an otherwise valid document."""
    out = copy.deepcopy(data)
    keys = path.split(".")
    target = out
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is KeyError:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return out


def store_args(db) -> list[str]:
    """The command-line arguments that name this store: --db FILE, or --database-url URL."""
    return ["--database-url", db.url] if db.engine == "postgresql" else ["--db", str(db.path)]


def write(db, sql: str, params=None) -> list[tuple]:
    """A test's own change to a store, in a transaction of the store's (on PostgreSQL a write never
    goes to the read replica)."""
    return db.transaction(lambda con: con.execute(sql, params or []).fetchall())


def jsonl(*cases: dict[str, Any]) -> str:
    return "".join(json.dumps(c) + "\n" for c in cases)


def panels_of(db) -> tuple[str, ...]:
    """Every panel of a database (a nurse is given them all where the test is not about panels)."""
    return tuple(r[0] for r in db.rows("SELECT panel_id FROM panels ORDER BY panel_id"))


def give_every_panel(request, monkeypatch, namespace: dict, names: tuple[str, ...]) -> None:
    """Give the nurses named in a test module every panel of the test's ``fresh_db``."""
    from dataclasses import replace

    if "fresh_db" in request.fixturenames:
        panels = panels_of(request.getfixturevalue("fresh_db"))
        for name in names:
            monkeypatch.setitem(namespace, name, replace(namespace[name], panels=panels))


@pytest.fixture(scope="session")
def sample_db(tmp_path_factory, rules):
    """The default sample, generated into a real DuckDB file as `make run` builds it (marked synthetic)."""
    from dashboard.db import Database
    from dashboard.seed import seed_sample

    path = tmp_path_factory.mktemp("sample") / "backline.duckdb"
    db = Database(path)
    seed_sample(db, rules, now=SEED_NOW)
    return db


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the whole run (tests/postgres.py). One that cannot start fails
    every test that needs it, with the reason: nothing is skipped."""
    from tests.postgres import PostgresServer

    server = PostgresServer().start()
    yield server
    from dashboard.db import close_stores

    close_stores()
    server.cleanup()


@pytest.fixture(scope="session")
def _fresh_template(postgres_server, rules):
    """The small generated database of ``fresh_db``, seeded once into a PostgreSQL template."""
    from dashboard.postgres_store import PostgresDatabase
    from dashboard.seed import generate_sample, seed_generated

    url = postgres_server.create_database("template")
    store = PostgresDatabase(url)
    seed_generated(store, rules, generate_sample(patients=60, reports=600, seed=3, now=SEED_NOW), now=SEED_NOW,
                   seed=3)
    store.close()
    return url.rsplit("/", 1)[1]


def postgres_store(server, template: str | None = None):
    """A new PostgreSQL database of its own (a copy of ``template`` when given), as a store."""
    import psycopg

    from dashboard.db import open_store

    url = server.create_database()
    if template:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(server.url("postgres"), autocommit=True) as con:
            con.execute(f'DROP DATABASE "{name}"')
            con.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return open_store(url)


STORES = ("duckdb", "postgresql")
both_stores = pytest.mark.both_stores
"""A module's (or a test's) ``fresh_db`` tests run on the DuckDB file and on PostgreSQL, from one suite."""


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("both_stores"):
        for name in ("fresh_db", "app_db"):
            if name in metafunc.fixturenames:
                metafunc.parametrize(name, STORES, indirect=True)


@pytest.fixture(scope="session")
def _sample_template(postgres_server, sample_db):
    """The default sample (``sample_db``), copied once into a PostgreSQL template."""
    from dashboard.postgres_store import PostgresDatabase
    from dashboard.transfer import copy_to_postgres

    url = postgres_server.create_database("sample")
    store = PostgresDatabase(url)
    copy_to_postgres(sample_db, store)
    store.close()
    return url.rsplit("/", 1)[1]


def drop_store(store) -> None:
    """Close a test's PostgreSQL store (its pool and its replica) and forget it."""
    from dashboard.db import _STORES, _STORES_LOCK

    with _STORES_LOCK:
        _STORES.pop(store.url, None)
    store.close()


@pytest.fixture
def fresh_db(request, tmp_path, rules):
    """A small generated database of its own, for tests that write: a DuckDB file, or (parametrised
    with ``both_stores``) a PostgreSQL database with the same rows."""
    from dashboard.db import Database
    from dashboard.seed import generate_sample, seed_generated

    if getattr(request, "param", "duckdb") == "postgresql":
        store = postgres_store(request.getfixturevalue("postgres_server"),
                               request.getfixturevalue("_fresh_template"))
        yield store
        drop_store(store)
        return
    db = Database(tmp_path / "fresh.duckdb")
    data = generate_sample(patients=60, reports=600, seed=3, now=SEED_NOW)
    seed_generated(db, rules, data, now=SEED_NOW, seed=3)
    yield db


@pytest.fixture
def context(context):
    """Every browser page counts the app's script runs from its first moment (tests/browser.py)."""
    from tests.browser import count_runs

    context.on("page", count_runs)
    return context


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Playwright drives the system Chromium (installed by `make test`), never a downloaded one."""
    from tests.browser import CHROMIUM, LAUNCH_ARGS

    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": LAUNCH_ARGS}
