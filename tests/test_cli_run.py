"""`backline run` never creates a database at a path it was given: a mistyped or unmounted path is an
error that says so, and nothing is written there."""

from __future__ import annotations

from tests.conftest import run_cli


def test_run_refuses_a_named_database_that_does_not_exist(tmp_path):
    target = tmp_path / "not-mounted" / "backline.duckdb"
    for args, env in ((["run", "--db", str(target)], None), (["run"], {"BACKLINE_DB": str(target)})):
        done = run_cli(*args, env=env, timeout=60)
        assert done.returncode == 4
        assert b"does not exist" in done.stderr and str(target).encode() in done.stderr
        assert not target.parent.exists()


def test_only_the_default_sample_is_built_on_first_use_and_then_served(tmp_path, monkeypatch):
    """With no database named, `backline run` builds the default sample where the settings put it
    (marked synthetic, for demo mode), then serves it; a second run finds it and builds nothing."""
    from dashboard import cli
    from dashboard.config import get_settings
    from dashboard.db import Database
    from dashboard.identity import is_generated

    default = tmp_path / "data" / "backline.duckdb"
    monkeypatch.delenv("BACKLINE_DB", raising=False)
    get_settings.cache_clear()
    monkeypatch.setattr(get_settings(), "db", default)
    served = []
    monkeypatch.setattr(cli, "_supervise",
                        lambda cmd, worker, env: served.append((cmd, env["BACKLINE_DB"], worker)) or 0)
    try:
        assert cli.main(["run", "--port", "8599"]) == 0
        assert default.exists() and is_generated(Database(default).meta())
        assert served and served[0][1] == str(default) and "streamlit_app.py" in " ".join(served[0][0])
        # Demo mode starts the alerts worker beside the app, on the same database, with the demo's alerts file.
        worker = served[0][2]
        assert worker[worker.index("alerts"):] == ["alerts", "--db", str(default), "--config",
                                                   str(get_settings().sample_dir / "alerts.yaml")]
        built = default.stat().st_mtime_ns
        assert cli.main(["run", "--port", "8599"]) == 0
        assert len(served) == 2 and Database(default).scalar("SELECT count(*) FROM reports") > 3000
        assert default.stat().st_mtime_ns >= built
    finally:
        get_settings.cache_clear()
