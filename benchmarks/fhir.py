"""FHIR export and import at scale: ``python benchmarks/fhir.py [--patients N] [--reports N]``.

Seeds a database, exports it as a Bulk Data folder (NDJSON, every patient), and imports the folder
into an empty database that has only the panels, each step in a child process of its own (the
command line, as a service runs it), so that its time and its peak memory are its own. Prints a
table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BACKLINE_TIMEZONE", "Europe/London")

from dashboard.config import local_now  # noqa: E402
from dashboard.db import Database  # noqa: E402
from dashboard.rules import load_rules  # noqa: E402
from dashboard.seed import generate_sample, seed_generated  # noqa: E402


def child(*args: str) -> tuple[float, int, str]:
    """Run ``backline ARGS`` in a child process: seconds, its own peak RSS in bytes (wait4), its output."""
    began = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "dashboard", *args], cwd=ROOT, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - began
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"backline {' '.join(args)} failed:\n{err.read()[-2000:]}")
        return seconds, usage.ru_maxrss * 1024, out.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2_000)
    parser.add_argument("--reports", type=int, default=20_000)
    args = parser.parse_args()
    rules = load_rules(ROOT / "rules")
    figures: dict = {"patients": args.patients, "reports": args.reports}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = Database(folder / "source.duckdb")
        now = local_now().replace(microsecond=0)
        seed_generated(source, rules, generate_sample(patients=args.patients, reports=args.reports, seed=7, now=now),
                       now=now, seed=7)
        export = folder / "export"
        export.mkdir()
        seconds, peak, _ = child("export", "--db", str(source.path), "--since", "2000-01-01", "--all-patients",
                                 "--ndjson", "--out", str(export / "all.ndjson"))
        lines = sum(1 for _ in (export / "all.ndjson").open())
        figures.update(export_s=round(seconds, 1), export_resources=lines,
                       export_mb=round((export / "all.ndjson").stat().st_size / 1e6, 1),
                       export_peak_mb=round(peak / 1e6))
        empty = Database(folder / "empty.duckdb")
        empty.migrate()
        with empty.connect() as con:
            con.execute("ATTACH ? AS source (READ_ONLY)", [str(source.path)])
            con.execute("INSERT INTO panels SELECT * FROM source.panels")
        seconds, peak, _ = child("import", str(export), "--db", str(empty.path))
        figures.update(import_s=round(seconds, 1), import_resources_per_s=round(lines / seconds),
                       import_peak_mb=round(peak / 1e6),
                       imported_reports=empty.scalar("SELECT count(*) FROM reports"),
                       same_tiers=source.rows("SELECT tier, count(*) FROM triage_results GROUP BY 1 ORDER BY 1")
                       == empty.rows("SELECT tier, count(*) FROM triage_results GROUP BY 1 ORDER BY 1"))
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value:,}" if isinstance(value, (int, float)) and not isinstance(value, bool)
              else f"{key:<{width}}  {value}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
