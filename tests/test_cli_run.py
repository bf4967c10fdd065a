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


def test_run_serves_the_app_with_the_alerts_worker_beside_it_and_stops_both(tmp_path, sample_db):
    """`backline run` (what `make run` calls) starts the app and the alerts worker on the same database;
    SIGTERM stops both, leaving no process behind."""
    import json
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from dashboard.db import Database
    from tests.conftest import ROOT
    from tests.servers import free_port

    path = tmp_path / "served.duckdb"
    shutil.copy(sample_db.path, path)
    config = tmp_path / "alerts.yaml"
    config.write_text((ROOT / "sample_data" / "alerts.yaml").read_text().replace("../data/alerts.mbox",
                                                                              "alerts.mbox"))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dashboard", "run", "--db", str(path), "--port", str(port),
                             "--alerts", str(config)], cwd=ROOT, env={**os.environ, "BACKLINE_DEMO": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, served, beat = time.monotonic() + 90, False, None
        while time.monotonic() < deadline and not (served and beat):
            time.sleep(0.5)
            try:
                health = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                served = served or health.status == 200
            except OSError:
                pass
            beat = Database(path, lock_timeout=5).meta().get("alerts_worker")
        assert served, "the app never answered"
        assert beat and json.loads(beat)["config"] == str(config), "the alerts worker never ran"
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "the alerts worker runs beside the app" in out and "alerts: watching" in out
    left = subprocess.run(["pgrep", "-f", str(path)], capture_output=True, text=True).stdout.split()
    assert left == [], f"processes left behind: {left}"
