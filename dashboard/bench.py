"""``backline bench``: build a database of a given size and measure what the issue's targets are about.

One run seeds a database (default 50,000 patients and a million reports) in a temporary folder,
then measures, each in a fresh child process so that its time and its peak memory are its own:

* the seed (generate the sample, load it, triage it, generate the care-team events, commit);
* a plain DuckDB scan of the columns the triage reads: the reports joined to their patients with
  every report and patient column of the triage contract, plus the doses (patient, drug, time,
  order), materialised as temporary tables (what the triage reads, and a table written, without
  the rules);
* ``backline retriage``'s code path (``db.transaction(retriage)``, the commit included);
* four pages through Streamlit's AppTest, cold and warm: the triage queue of the busiest panel
  (most open reports), the timeline of the patient with the most history (reports and doses),
  a year of response times for the busiest panel, and the rules page. Cold is the first run in a
  fresh process whose code is already imported and whose Streamlit caches are empty (cleared
  too, to be sure); warm is the median of five reruns after it.

Peak memory is each child's maximum resident set size, from the kernel (``wait4``), and the
bench's own. The results are printed as a table and as one JSON line (the last line of output),
each figure with its target and PASS or MISS.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "streamlit_app.py"
DEFAULT_PATIENTS = 50_000
DEFAULT_REPORTS = 1_000_000
DEFAULT_SEED = 7
WARM_RUNS = 5
GB = 1_000_000_000
CHILD_TIMEOUT = 3600.0
# What the pages import: loaded before a cold run is timed (a server has them loaded already).
PAGE_MODULES = ("plotly.graph_objects", "dashboard.charts", "dashboard.metrics", "dashboard.queue", "dashboard.referral",
                "dashboard.retriage", "dashboard.rules_view", "dashboard.timeline", "dashboard.ui", "dashboard.workflow")

# (page key, file, title, the role acting)
PAGES = (
    ("queue", "pages/triage_queue.py", "Triage queue", "nurse"),
    ("timeline", "pages/patient_timeline.py", "Patient timeline", "physician"),
    ("response_times", "pages/response_times.py", "Response times", "lead"),
    ("rules", "pages/rules.py", "Rules", "admin"),
)


@dataclass(frozen=True)
class Target:
    key: str  # the figure it judges
    label: str
    op: str  # "<", "<=" or ">="
    limit: float
    unit: str


def targets(postgres: bool = False) -> list[Target]:
    out = [
        Target("seed_seconds", "seed (generate + load + triage + events + commit)", "<", 60, "s"),
        Target("seed_peak_bytes", "seed peak memory", "<", 2 * GB, "B"),
        Target("retriage_reports_per_second", "retriage rate", ">=", 250_000, "/s"),
        Target("retriage_scan_ratio", "retriage / plain scan", "<=", 10, "x"),
        Target("retriage_peak_bytes", "retriage peak memory", "<", 2 * GB, "B"),
        Target("scan_peak_bytes", "scan peak memory", "<", 2 * GB, "B"),
    ]
    for key, _, title, _ in PAGES:
        out += [
            Target(f"page_{key}_cold_ms", f"{title}: cold", "<", 2000, "ms"),
            Target(f"page_{key}_warm_ms", f"{title}: warm (median of {WARM_RUNS})", "<", 300, "ms"),
            Target(f"page_{key}_peak_bytes", f"{title}: peak memory", "<", 2 * GB, "B"),
        ]
    out.append(Target("bench_peak_bytes", "bench process peak memory", "<", 2 * GB, "B"))
    if postgres:  # the same sample on a PostgreSQL store, with the shared store's own targets
        out.append(Target("pg_retriage_reports_per_second", "PostgreSQL: retriage rate (read, triage, write back)",
                          ">=", 100_000, "/s"))
        for key, _, title, _ in PAGES:
            out += [Target(f"pg_page_{key}_cold_ms", f"PostgreSQL: {title}: cold", "<", 3000, "ms"),
                    Target(f"pg_page_{key}_warm_ms", f"PostgreSQL: {title}: warm (median of {WARM_RUNS})", "<", 500,
                           "ms")]
    return out


def _passes(t: Target, value: float | None) -> bool | None:
    if value is None:
        return None
    return {"<": value < t.limit, "<=": value <= t.limit, ">=": value >= t.limit}[t.op]


# --------------------------------------------------------------------------- the machine


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count()
    from dashboard.config import get_settings

    settings = get_settings()
    return {
        "cpus": cpus,
        "cpu_model": cpu,
        "memory_bytes": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "duckdb": version("duckdb"),
        "streamlit": version("streamlit"),
        "duckdb_threads": settings.duckdb_threads,
        "duckdb_memory_limit": settings.duckdb_memory_limit,
    }


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


# --------------------------------------------------------------------------- child processes


class ChildFailed(RuntimeError):
    pass


def _child(phase: str, spec: dict[str, Any], folder: Path, *, name: str | None = None,
           timeout: float = CHILD_TIMEOUT) -> dict[str, Any]:
    """Run one measurement in a fresh Python process; its result, with its wall time and peak memory."""
    name = name or phase
    out = folder / f"{name}.json"
    log = folder / f"{name}.log"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "dashboard.bench", "--child", phase, "--spec", json.dumps(spec), "--out", str(out)]
    started = time.perf_counter()
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=err, stderr=subprocess.STDOUT)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            if hasattr(os, "wait4"):
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                peak = usage.ru_maxrss * 1024  # KiB on Linux
            else:  # pragma: no cover - not POSIX
                proc.wait()
                peak = None
        finally:
            timer.cancel()
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not out.exists():
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        raise ChildFailed(f"{name} failed (exit {proc.returncode}; log {log}):\n" + "\n".join(tail))
    result = json.loads(out.read_text())
    result["process_seconds"] = wall
    result["peak_bytes"] = max(peak or 0, result.get("self_peak_bytes") or 0) or None
    return result


def _self_peak() -> int | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _child_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m dashboard.bench")
    p.add_argument("--child", required=True, choices=["seed", "scan", "retriage", "page"])
    p.add_argument("--spec", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    spec = json.loads(args.spec)
    result = {"seed": _measure_seed, "scan": _measure_scan, "retriage": _measure_retriage,
              "page": _measure_page}[args.child](spec)
    result["self_peak_bytes"] = _self_peak()
    Path(args.out).write_text(json.dumps(result, default=str))
    return 0


def _rules(spec: dict[str, Any]):
    from dashboard.rules import load_rules

    return load_rules(spec.get("rules"))


def _measure_seed(spec: dict[str, Any]) -> dict[str, Any]:
    """What ``backline seed --patients N --reports N --seed S`` does, timed in its parts."""
    from dashboard.db import open_store
    from dashboard.seed import generate_sample, seed_generated

    rules = _rules(spec)
    now = datetime.fromisoformat(spec["now"])
    db = open_store(spec["db"])
    started = time.perf_counter()
    data = generate_sample(patients=spec["patients"], reports=spec["reports"], seed=spec["seed"], now=now)
    generated = time.perf_counter()
    stats = seed_generated(db, rules, data, now=now, seed=spec["seed"])
    done = time.perf_counter()
    return {
        "seconds": done - started,
        "generate_seconds": generated - started,
        "load_seconds": done - generated,
        "triage_seconds": stats.triage_seconds,
        "patients": stats.patients,
        "reports": stats.reports,
        "administrations": stats.administrations,
        "events": stats.events,
        "open_reports": stats.open_reports,
    }


def scan_sql() -> tuple[str, str]:
    """The triage's inputs, as plain queries: every report and patient column it reads, and the doses."""
    from dashboard.models import PATIENT_FLAGS, ReportIn

    report_cols = ", ".join(f"r.{c}" for c in ReportIn.model_fields)
    patient_cols = ", ".join(f"p.{c}" for c in ("cancer_type", *PATIENT_FLAGS))
    cases = (f"SELECT r.report_id AS case_id, r.patient_id AS dose_key, r.report_id, {patient_cols}, {report_cols}"
             " FROM reports r JOIN patients p ON p.patient_id = r.patient_id")
    doses = "SELECT patient_id AS dose_key, drug, given_at, administration_id AS seq FROM administrations"
    return cases, doses


def _measure_scan(spec: dict[str, Any]) -> dict[str, Any]:
    """Materialise the triage's inputs as temporary tables, in a transaction that is rolled back."""
    from dashboard.db import Database, run

    cases, doses = scan_sql()
    db = Database(spec["db"])
    started = time.perf_counter()
    with db.connect() as con:
        run(con, "BEGIN TRANSACTION")
        run(con, f"CREATE TEMP TABLE bl_scan_cases AS {cases}")
        run(con, f"CREATE TEMP TABLE bl_scan_doses AS {doses}")
        seconds = time.perf_counter() - started
        rows = run(con, "SELECT (SELECT count(*) FROM bl_scan_cases), (SELECT count(*) FROM bl_scan_doses)")[0]
        run(con, "ROLLBACK")
    return {"seconds": seconds, "cases": rows[0], "doses": rows[1]}


def _measure_retriage(spec: dict[str, Any]) -> dict[str, Any]:
    """``backline retriage``: every report re-triaged and the results swapped in, commit included."""
    from dashboard.db import open_store
    from dashboard.retriage import retriage

    rules = _rules(spec)
    db = open_store(spec["db"])
    db.verify_schema()
    now = _now()
    started = time.perf_counter()
    stats = db.transaction(lambda con: retriage(con, rules, now=now))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "inner_seconds": stats.seconds, "reports": stats.reports,
            "changed_open": stats.changed_open, "rules_version": stats.rules_version}


def _page_state(key: str, picks: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The acting staff member and the session state that opens the page on its subject."""
    if key == "queue":
        return picks["nurse"], {"queue_panels": [picks["panel"]]}
    if key == "timeline":
        return picks["physician"], {"timeline_search": picks["mrn"], "timeline_patient": picks["patient_id"]}
    if key == "response_times":
        period = (date.fromisoformat(picks["period_start"]), date.fromisoformat(picks["period_end"]))
        return picks["lead"], {"metrics_panels": [picks["panel"]], "metrics_period": period}
    return picks["admin"], {}


def _page_evidence(key: str, at) -> dict[str, Any]:
    """What the page showed, to tell a real render from an early stop."""
    if key == "queue":
        return {"rows": len(at.dataframe[0].value) if len(at.dataframe) else 0}
    if key == "timeline":
        return {"patient": [s.value for s in at.subheader][:1],
                "reports": len(at.dataframe[0].value) if len(at.dataframe) else 0}
    if key == "response_times":
        caption = next((c.value for c in at.caption if " reports;" in str(c.value)), "")
        return {"reports": int(caption.split(" reports;")[0].replace(",", "")) if caption else 0}
    return {"expanders": len(at.expander)}


def _measure_page(spec: dict[str, Any]) -> dict[str, Any]:
    from dashboard.postgres_store import is_postgres_url

    # The pages are measured in demo mode, on the sample the benchmark generated (marked synthetic).
    os.environ["BACKLINE_DEMO"] = "1"
    if spec.get("rules"):
        os.environ["BACKLINE_RULES_DIR"] = spec["rules"]
    replica_seconds = None
    if is_postgres_url(spec["db"]):
        os.environ.pop("BACKLINE_DB", None)
        os.environ["BACKLINE_DATABASE_URL"] = spec["db"]
        # A server's replica is loaded when it first reads, before anyone's page: outside the timing too.
        from dashboard.db import open_store

        started = time.perf_counter()
        open_store(spec["db"]).check_schema()
        replica_seconds = time.perf_counter() - started
    else:
        os.environ.pop("BACKLINE_DATABASE_URL", None)
        os.environ["BACKLINE_DB"] = spec["db"]
    key, path, title = spec["key"], spec["path"], spec["title"]
    # The code a server has loaded before anyone asks for a page: imported outside the timing.
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    for module in PAGE_MODULES:
        importlib.import_module(module)
    AppTest.from_string("import streamlit as st\nst.title('warm-up')", default_timeout=60).run()  # the harness
    st.cache_data.clear()
    st.cache_resource.clear()
    actor, state = _page_state(key, spec["picks"])
    at = AppTest.from_file(str(APP), default_timeout=CHILD_TIMEOUT)
    at.session_state["demo_actor"] = actor
    for k, v in state.items():
        at.session_state[k] = v
    at.switch_page(path)

    def timed_run() -> float:
        started = time.perf_counter()
        at.run()
        elapsed = time.perf_counter() - started
        if at.exception:
            raise RuntimeError(f"{path} raised: {at.exception[0].message}")
        titles = [t.value for t in at.title]
        if titles != [title]:
            raise RuntimeError(f"{path} did not render (titles {titles}, errors {[e.value for e in at.error]})")
        return elapsed * 1000

    cold = timed_run()
    warm = [timed_run() for _ in range(WARM_RUNS)]
    return {"cold_ms": cold, "warm_ms": statistics.median(warm), "warm_runs_ms": warm, "actor": actor,
            "shown": _page_evidence(key, at), "replica_seconds": replica_seconds}


# --------------------------------------------------------------------------- the run


def _now() -> datetime:
    from dashboard.config import get_settings

    return datetime.now(get_settings().tz).replace(tzinfo=None, microsecond=0)


def _picks(db_path: Path, today: date) -> dict[str, Any]:
    """The busiest panel, the patient with the most history, and who acts on each page."""
    from dashboard.db import Database

    db = Database(db_path, read_only=True)
    with db.connect() as con:
        def one(sql: str, params: list | None = None):
            rows = con.execute(sql, params or []).fetchall()
            return rows[0] if rows else (None,)

        panel, open_count = one("SELECT panel_id, count(*) FROM open_reports GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1")
        if panel is None:  # nothing open: the panel with the most reports
            panel, open_count = one("SELECT p.panel_id, 0 FROM reports r JOIN patients p USING (patient_id)"
                                    " GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")
        patient_id, mrn, reports, doses = one(
            """
            SELECT p.patient_id, p.mrn, coalesce(r.n, 0), coalesce(a.n, 0) FROM patients p
            LEFT JOIN (SELECT patient_id, count(*) AS n FROM reports GROUP BY 1) r USING (patient_id)
            LEFT JOIN (SELECT patient_id, count(*) AS n FROM administrations GROUP BY 1) a USING (patient_id)
            ORDER BY coalesce(r.n, 0) + coalesce(a.n, 0) DESC, p.patient_id LIMIT 1
            """)

        def staff(role: str, panel_id: str | None = None) -> str | None:
            where = " AND panel_id = ?" if panel_id else ""
            return one(f"SELECT min(staff_id) FROM staff WHERE role = ?{where}", [role, *([panel_id] if panel_id else [])])[0]

        picks = {
            "panel": panel, "panel_open_reports": open_count,
            "patient_id": patient_id, "mrn": mrn, "patient_reports": reports, "patient_doses": doses,
            "nurse": staff("nurse", panel) or staff("nurse"), "physician": staff("physician"),
            "lead": staff("lead"), "admin": staff("admin") or staff("nurse"),
            "period_start": (today - timedelta(days=365)).isoformat(), "period_end": today.isoformat(),
        }
        picks["panel_reports_in_period"] = one(
            "SELECT count(*) FROM reports r JOIN patients p USING (patient_id) WHERE p.panel_id = ?"
            " AND r.reported_at >= ?", [panel, datetime.combine(today - timedelta(days=365), datetime.min.time())])[0]
    return picks


def run_bench(*, patients: int = DEFAULT_PATIENTS, reports: int = DEFAULT_REPORTS, seed: int = DEFAULT_SEED,
              keep: str | Path | None = None, rules: str | None = None, out: TextIO | None = None,
              progress: Callable[[str], None] | None = None, database_url: str | None = None) -> dict[str, Any]:
    """Seed, measure, print the table and the JSON line; return the result. With ``database_url``
    (an empty PostgreSQL database), the same sample is then seeded there and measured the same way."""
    out = out or sys.stdout
    say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="backline-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    db_path = (folder / "bench.duckdb").resolve()
    for suffix in ("", ".wal"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    now = _now()
    base = {"db": str(db_path), "rules": rules, "now": now.isoformat()}
    result: dict[str, Any] = {
        "bench": "backline", "version": 1, "started_at": now.isoformat(),
        "size": {"patients": patients, "reports": reports, "seed": seed},
        "machine": machine(), "load_average_start": _load(),
        "method": {
            "scan": "reports joined to patients with every column the triage reads, plus the doses, "
                    "materialised as temporary tables (one transaction, rolled back)",
            "cold": "first AppTest run in a fresh process: code imported, Streamlit caches empty",
            "warm": f"median of {WARM_RUNS} AppTest reruns after the cold run",
            "memory": "peak resident set size of each child process (wait4), and of the bench process",
        },
        "errors": {},
    }
    figures: dict[str, Any] = {}
    try:
        say(f"bench: seeding {patients:,} patients, {reports:,} reports (seed {seed}) in {folder} ...")
        s = _child("seed", {**base, "patients": patients, "reports": reports, "seed": seed}, folder)
        result["seeded"] = {k: s[k] for k in ("patients", "reports", "administrations", "events", "open_reports")}
        figures.update(seed_seconds=s["seconds"], seed_generate_seconds=s["generate_seconds"],
                       seed_load_seconds=s["load_seconds"], seed_triage_seconds=s["triage_seconds"],
                       seed_process_seconds=s["process_seconds"], seed_peak_bytes=s["peak_bytes"])
        picks = _picks(db_path, now.date())
        result["picks"] = picks
        say("bench: plain scan ...")
        c = _child("scan", base, folder)
        figures.update(scan_seconds=c["seconds"], scan_peak_bytes=c["peak_bytes"])
        say("bench: retriage ...")
        r = _child("retriage", base, folder)
        figures.update(retriage_seconds=r["seconds"], retriage_inner_seconds=r["inner_seconds"],
                       retriage_reports=r["reports"], retriage_reports_per_second=r["reports"] / r["seconds"],
                       retriage_scan_ratio=r["seconds"] / c["seconds"] if c["seconds"] else None,
                       retriage_changed_open=r["changed_open"], retriage_peak_bytes=r["peak_bytes"])
        for key, path, title, _ in PAGES:
            say(f"bench: page {title} ...")
            try:
                pg = _child("page", {**base, "key": key, "path": path, "title": title, "picks": picks}, folder,
                            name=f"page_{key}")
            except ChildFailed as exc:
                result["errors"][f"page_{key}"] = str(exc)
                continue
            figures.update({f"page_{key}_cold_ms": pg["cold_ms"], f"page_{key}_warm_ms": pg["warm_ms"],
                            f"page_{key}_warm_runs_ms": pg["warm_runs_ms"], f"page_{key}_peak_bytes": pg["peak_bytes"],
                            f"page_{key}_shown": pg["shown"], f"page_{key}_actor": pg["actor"]})
    except ChildFailed as exc:
        result["errors"][str(exc).split(" ", 1)[0]] = str(exc)
    if database_url and not result["errors"]:
        _bench_postgres(database_url, {**base, "db": database_url}, patients, reports, seed, folder, figures,
                        result, say)
    figures["bench_peak_bytes"] = _self_peak()
    result["load_average_end"] = _load()
    result["figures"] = figures
    checks = []
    for t in targets(postgres=bool(database_url)):
        value = figures.get(t.key)
        ok = _passes(t, value)
        checks.append({"figure": t.key, "label": t.label, "value": value, "target": f"{t.op} {t.limit:g}",
                       "unit": t.unit, "result": "PASS" if ok else ("MISS" if ok is False else "ERROR")})
    result["checks"] = checks
    result["all_pass"] = all(ch["result"] == "PASS" for ch in checks)
    result["database"] = str(db_path) if keep else None
    print(render_table(result), file=out)
    print(json.dumps(result, default=str, separators=(",", ":")), file=out, flush=True)
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def _bench_postgres(url: str, base: dict[str, Any], patients: int, reports: int, seed: int, folder: Path,
                    figures: dict[str, Any], result: dict[str, Any], say: Callable[[str], None]) -> None:
    """The same sample on PostgreSQL: seed (built in DuckDB and copied in), retriage, pages."""
    from dashboard.postgres_store import redact

    result["postgresql"] = redact(url)
    try:
        say(f"bench: PostgreSQL {redact(url)}: seeding the same sample ...")
        s = _child("seed", {**base, "patients": patients, "reports": reports, "seed": seed}, folder, name="pg_seed")
        figures.update(pg_seed_seconds=s["seconds"], pg_seed_peak_bytes=s["peak_bytes"])
        say("bench: PostgreSQL: retriage ...")
        r = _child("retriage", base, folder, name="pg_retriage")
        figures.update(pg_retriage_seconds=r["seconds"], pg_retriage_reports=r["reports"],
                       pg_retriage_reports_per_second=r["reports"] / r["seconds"],
                       pg_retriage_peak_bytes=r["peak_bytes"])
        for key, path, title, _ in PAGES:
            say(f"bench: PostgreSQL: page {title} ...")
            try:
                pg = _child("page", {**base, "key": key, "path": path, "title": title, "picks": result["picks"]},
                            folder, name=f"pg_page_{key}")
            except ChildFailed as exc:
                result["errors"][f"pg_page_{key}"] = str(exc)
                continue
            figures.update({f"pg_page_{key}_cold_ms": pg["cold_ms"], f"pg_page_{key}_warm_ms": pg["warm_ms"],
                            f"pg_page_{key}_warm_runs_ms": pg["warm_runs_ms"],
                            f"pg_page_{key}_peak_bytes": pg["peak_bytes"], f"pg_page_{key}_shown": pg["shown"],
                            "pg_replica_load_seconds": pg["replica_seconds"]})
    except ChildFailed as exc:
        result["errors"]["pg_" + str(exc).split(" ", 1)[0]] = str(exc)


# --------------------------------------------------------------------------- the table


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "B":
        return f"{value / GB:.2f} GB"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:,.0f} ms"
    if unit == "/s":
        return f"{value:,.0f} reports/s"
    if unit == "x":
        return f"{value:.1f}x"
    return f"{value:,}"


def _fmt_target(t: dict[str, Any]) -> str:
    op, limit = t["target"].split(" ", 1)
    return f"{op} {_fmt(float(limit), t['unit'])}".replace(".00 GB", " GB").replace(".00 s", " s")


def render_table(result: dict[str, Any]) -> str:
    f, m, size = result["figures"], result["machine"], result["size"]
    seeded = result.get("seeded", {})
    picks = result.get("picks", {})
    lines = [
        (f"Backline bench: {seeded.get('patients', size['patients']):,} patients, "
         f"{seeded.get('reports', size['reports']):,} reports, {seeded.get('administrations', 0):,} doses, "
         f"{seeded.get('events', 0):,} events (seed {size['seed']})"),
        (f"machine: {m['cpus']} CPUs ({m['cpu_model']}), {(m['memory_bytes'] or 0) / 2**30:.0f} GiB RAM; Python "
         f"{m['python']}, DuckDB {m['duckdb']}, Streamlit {m['streamlit']}; DuckDB threads {m['duckdb_threads']}, "
         f"memory limit {m['duckdb_memory_limit']}; load average {result.get('load_average_start')} at start, "
         f"{result.get('load_average_end')} at end"),
    ]
    if picks:
        lines.append(
            f"subjects: busiest panel {picks['panel']} ({picks['panel_open_reports']:,} open reports, "
            f"{picks['panel_reports_in_period']:,} reports in the year); patient {picks['patient_id']} "
            f"({picks['patient_reports']} reports, {picks['patient_doses']} doses)")
    rows = [("measure", "value", "target", "result")]
    by_key = {c["figure"]: c for c in result["checks"]}

    def add(label: str, key: str, unit: str) -> None:
        c = by_key.get(key)
        if c:
            rows.append((c["label"], _fmt(c["value"], c["unit"]), _fmt_target(c), c["result"]))
        else:
            rows.append((label, _fmt(f.get(key), unit), "", ""))

    add("", "seed_seconds", "s")
    add("  of which generating the sample", "seed_generate_seconds", "s")
    add("  of which the triage inside the seed", "seed_triage_seconds", "s")
    add("seed peak memory", "seed_peak_bytes", "B")
    add("retriage (backline retriage's code path, with commit)", "retriage_seconds", "s")
    add("retriage rate", "retriage_reports_per_second", "/s")
    add("plain scan (materialise the triage's inputs)", "scan_seconds", "s")
    add("retriage / plain scan", "retriage_scan_ratio", "x")
    add("retriage peak memory", "retriage_peak_bytes", "B")
    add("scan peak memory", "scan_peak_bytes", "B")
    for key, _, title, _ in PAGES:
        add(f"{title}: cold", f"page_{key}_cold_ms", "ms")
        add(f"{title}: warm (median of {WARM_RUNS})", f"page_{key}_warm_ms", "ms")
        add(f"{title}: peak memory", f"page_{key}_peak_bytes", "B")
    add("bench process peak memory", "bench_peak_bytes", "B")
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    text = [f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows]
    text.insert(1, "-" * len(text[0]))
    if result.get("postgresql"):
        text += ["", f"The same sample on PostgreSQL ({result['postgresql']}), beside the DuckDB file:"]
        side = [("measure", "DuckDB file", "PostgreSQL", "PostgreSQL target", "result")]
        for label, key, unit in [("seed", "seed_seconds", "s"), ("seed peak memory", "seed_peak_bytes", "B"),
                                 ("retriage", "retriage_seconds", "s"),
                                 ("retriage rate", "retriage_reports_per_second", "/s"),
                                 ("retriage peak memory", "retriage_peak_bytes", "B"),
                                 *[(f"{title}: {kind}", f"page_{k}_{kind}_ms", "ms") for k, _, title, _ in PAGES
                                   for kind in ("cold", "warm")],
                                 *[(f"{title}: peak memory", f"page_{k}_peak_bytes", "B") for k, _, title, _ in PAGES]]:
            c = by_key.get("pg_" + key)
            side.append((label, _fmt(f.get(key), unit), _fmt(f.get("pg_" + key), unit),
                         _fmt_target(c) if c else "", c["result"] if c else ""))
        side.append(("replica load when a server starts", "", _fmt(f.get("pg_replica_load_seconds"), "s"), "", ""))
        w = [max(len(r[i]) for r in side) for i in range(5)]
        block = [f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]:<{w[3]}}  {r[4]}" for r in side]
        block.insert(1, "-" * len(block[0]))
        text += block
    method = result.get("method", {})
    text += ["", f"scan: {method.get('scan')}", f"cold: {method.get('cold')}; warm: {method.get('warm')}",
             f"memory: {method.get('memory')}"]
    misses = [c["label"] for c in result["checks"] if c["result"] != "PASS"]
    summary = "all targets met" if not misses else f"{len(misses)} of {len(result['checks'])} targets not met"
    out = "\n".join(lines + [""] + text + ["", summary])
    for name, message in result.get("errors", {}).items():
        out += f"\nERROR {name}: {message}"
    return out


# --------------------------------------------------------------------------- entry points


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--patients", type=int, default=DEFAULT_PATIENTS, help=f"patients (default {DEFAULT_PATIENTS:,})")
    p.add_argument("--reports", type=int, default=DEFAULT_REPORTS, help=f"reports (default {DEFAULT_REPORTS:,})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed of the sample (default {DEFAULT_SEED})")
    p.add_argument("--keep", metavar="DIR", help="build the database in DIR and keep it (and the logs) afterwards")
    p.add_argument("--database-url", help="also measure the same sample on this PostgreSQL database (empty; the "
                                          "bench seeds it), side by side with the DuckDB file")
    return p


def run_from_args(args: argparse.Namespace) -> int:
    if args.patients < 1 or args.reports < 1:
        print("backline bench: --patients and --reports must be at least 1", file=sys.stderr)
        return 2
    result = run_bench(patients=args.patients, reports=args.reports, seed=args.seed, keep=args.keep,
                       rules=getattr(args, "rules", None), database_url=getattr(args, "database_url", None))
    return 1 if result["errors"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return _child_main(argv)
    p = argparse.ArgumentParser(prog="bench", description="Seed a database of a given size and measure Backline on it.")
    p.add_argument("--rules", help="rules folder (default: the project's rules/)")
    return run_from_args(add_arguments(p).parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
