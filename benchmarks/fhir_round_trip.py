"""FHIR export and import at scale: ``python benchmarks/fhir_round_trip.py [--patients N] [--reports N]``.

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


def write_bulk(db: Database, rules, folder: Path, batch: int = 50_000) -> int:
    """The database as a Bulk Data folder, streamed from the store a batch at a time with the export's
    own builders (not validated here: the import validates every resource it reads). Returns the lines."""
    from dashboard import fhir_export

    lines = 0
    queries = {
        "Patient": "SELECT * FROM patients ORDER BY patient_id",
        "MedicationAdministration": "SELECT * FROM administrations ORDER BY administration_id",
        "QuestionnaireResponse": "SELECT r.*, (SELECT list(u.field) FROM report_unasked u "
                                 "WHERE u.report_id = r.report_id) AS unasked FROM reports r ORDER BY report_id",
    }
    with db.connect() as con:
        for kind, sql in queries.items():
            with (folder / f"{kind}.ndjson").open("w", encoding="utf-8") as out:
                cursor = con.execute(sql)
                names = [d[0] for d in cursor.description]
                while rows := cursor.fetchmany(batch):
                    for row in rows:
                        record = dict(zip(names, row))
                        made = (fhir_export.record_resources(rules, record) if kind == "Patient" else
                                [fhir_export.dose_resource(rules, record)] if kind == "MedicationAdministration"
                                else [fhir_export.response_resource(record)])
                        for resource in made:
                            out.write(json.dumps(resource, ensure_ascii=False) + "\n")
                            lines += 1
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2_000)
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--direct", action="store_true",
                        help="write the folder straight from the store (patients, doses, responses) instead of "
                             "`backline export`, whose frames do not fit a million reports")
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
        if args.direct:
            began = time.perf_counter()
            lines = write_bulk(source, rules, export)
            figures.update(written_s=round(time.perf_counter() - began, 1), written_resources=lines)
        else:
            seconds, peak, _ = child("export", "--db", str(source.path), "--since", "2000-01-01", "--all-patients",
                                     "--ndjson", "--out", str(export / "all.ndjson"))
            lines = sum(1 for _ in (export / "all.ndjson").open())
            figures.update(export_s=round(seconds, 1), export_resources=lines, export_peak_mb=round(peak / 1e6))
        figures["folder_mb"] = round(sum(p.stat().st_size for p in export.iterdir()) / 1e6, 1)
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
