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
