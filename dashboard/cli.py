"""The ``backline`` command (also ``python -m dashboard``)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Sequence

from dashboard.config import get_settings, local_now

EXIT_BAD_INPUT = 2
EXIT_RULES = 3
EXIT_DATABASE = 4


def _load_rules(path: str | None):
    from dashboard.rules import RulesError, load_rules

    try:
        return load_rules(path)
    except RulesError as exc:
        print(f"backline: the rules do not validate, nothing was run: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_RULES) from None


def _database(args: argparse.Namespace | str | None):
    """The store a command works on: --database-url (or $BACKLINE_DATABASE_URL) names PostgreSQL;
    --db (or $BACKLINE_DB) a DuckDB file."""
    from dashboard.db import default_database

    if not isinstance(args, argparse.Namespace):
        return default_database(args)
    path, url = getattr(args, "db", None), getattr(args, "database_url", None)
    if path and url:
        print("backline: give --db (a DuckDB file) or --database-url (PostgreSQL), not both", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)
    return default_database(path, url)


def _store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="database file (default: $BACKLINE_DB or data/backline.duckdb)")
    parser.add_argument("--database-url", help="a PostgreSQL store instead of the file: postgresql://user@host/db "
                                               "(default: $BACKLINE_DATABASE_URL)")


# --------------------------------------------------------------------------- triage


def cmd_triage(args: argparse.Namespace) -> int:
    from dashboard.models import InputError, parse_case
    from dashboard.triage import check_case, triage_cases

    rules = _load_rules(args.rules)
    if args.file == "-":
        raw = sys.stdin.buffer.read()
    else:
        try:
            raw = Path(args.file).read_bytes()
        except OSError as exc:
            print(f"backline triage: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return EXIT_BAD_INPUT
    cases, errors = [], []
    seen: dict[str, int] = {}
    for number, line_bytes in enumerate(raw.splitlines(), start=1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError:
            errors.append(f"line {number}: not UTF-8 text")
            continue
        if not line.strip():
            continue
        try:
            case = check_case(rules, parse_case(line))
        except InputError as exc:
            # One message per bad line, naming each field that is wrong.
            errors.append(f"line {number}: " + "; ".join(f"{f or '(line)'}: {m}" for f, m in exc.problems))
            continue
        if case.report_id in seen:
            errors.append(f"line {number}: report_id: {case.report_id!r} is already used on line {seen[case.report_id]}")
            continue
        seen[case.report_id] = number
        cases.append(case)
    if errors:
        for e in errors:
            print(e, file=sys.stderr)
        return EXIT_BAD_INPUT
    out = sys.stdout
    for outcome in triage_cases(rules, cases):
        out.write(json.dumps(outcome.contract(), ensure_ascii=False) + "\n")
    out.flush()
    return 0


# --------------------------------------------------------------------------- database


def cmd_seed(args: argparse.Namespace) -> int:
    """Build a database: the generator's sample (the default one unless sized), marked as synthetic,
    or the files of a folder (--sample), never marked. --force replaces only a database that holds
    nothing but what the generator made: a real audit trail is never deleted by a command."""
    from dashboard.seed import DEFAULT_SAMPLE, replace_refusal, seed_from_files, seed_sample, write_sample_files

    rules = _load_rules(args.rules)
    db = _database(args)
    if db.engine == "postgresql" and args.force:
        print(f"backline seed: {db.path} is a PostgreSQL store; --force never empties one (its administrator drops "
              "and creates the database to start again)", file=sys.stderr)
        return EXIT_DATABASE
    if db.engine == "duckdb" and db.path.exists():
        if not args.force:
            print(f"backline seed: {db.path} exists; pass --force to replace it", file=sys.stderr)
            return EXIT_DATABASE
        refusal = replace_refusal(db)
        if refusal:
            where = shlex.quote(str(db.path))
            print(f"backline seed: {db.path} {refusal}; it is not replaced (a command never deletes an audit "
                  f"trail). To start again, move it aside: mv {where} {shlex.quote(str(db.path) + '.bak')}",
                  file=sys.stderr)
            return EXIT_DATABASE
        for suffix in ("", ".wal"):
            Path(str(db.path) + suffix).unlink(missing_ok=True)
    now = datetime.fromisoformat(args.as_of) if args.as_of else local_now()
    if args.sample:
        stats = seed_from_files(db, rules, Path(args.sample), now=now)
    else:
        stats = seed_sample(
            db, rules, now=now, patients=args.patients or DEFAULT_SAMPLE["patients"],
            reports=args.reports if args.reports is not None else DEFAULT_SAMPLE["reports"],
            seed=args.seed if args.seed is not None else DEFAULT_SAMPLE["seed"],
            progress=(lambda step: print(f"seed: {step}", file=sys.stderr, flush=True)) if args.progress else None,
        )
    print(
        f"seeded {db.path}: {stats.patients:,} patients, {stats.reports:,} reports, "
        f"{stats.administrations:,} doses, {stats.events:,} events, {stats.open_reports:,} open; "
        f"{stats.seconds:.1f} s (triage {stats.triage_seconds:.1f} s)"
    )
    if args.write_sample:
        paths = write_sample_files(db, Path(args.write_sample))
        print(f"wrote {len(paths)} files to {args.write_sample}")
    return 0


def _rules_and_store(args: argparse.Namespace):
    """The rules in force and the database, its schema checked: what every command on the store starts with."""
    rules = _load_rules(args.rules)
    db = _database(args)
    db.verify_schema()
    return rules, db


def cmd_retriage(args: argparse.Namespace) -> int:
    from dashboard.retriage import retriage

    rules, db = _rules_and_store(args)
    now = local_now()
    stats = db.transaction(lambda con: retriage(con, rules, now=now))
    print(
        f"re-triaged {stats.reports:,} reports in {stats.seconds:.2f} s "
        f"({stats.per_second:,.0f} reports/s) with rules {stats.rules_version}; "
        f"{stats.changed_open:,} open reports changed tier"
        + (" (" + ", ".join(f"{k} {v:.2f} s" for k, v in stats.phases.items()) + ")" if stats.phases else "")
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Import a FHIR Bundle or a Bulk Data export (a folder of NDJSON files): all of it, or nothing."""
    import yaml

    from dashboard.fhir_import import ImportRefused, import_fhir

    rules, db = _rules_and_store(args)
    source = Path(args.source)
    if not source.exists():
        print(f"backline import: {source} does not exist", file=sys.stderr)
        return EXIT_BAD_INPUT
    panel_map: dict[str, str] = {}
    if args.panel_map:
        try:
            loaded = yaml.safe_load(Path(args.panel_map).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            print(f"backline import: the panel map {args.panel_map} cannot be read: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if not isinstance(loaded, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in loaded.items()):
            print(f"backline import: the panel map {args.panel_map} must map references to panel ids",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        panel_map.update(loaded)
    if args.panel:
        panel_map["*"] = args.panel
    try:
        result = import_fhir(db, rules, source, now=local_now(), panel_map=panel_map, actor=args.actor,
                             progress=lambda line: print(f"backline import: {line}", file=sys.stderr, flush=True))
    except ImportRefused as refused:
        for problem in refused.problems:
            print(f"{source.name}: {problem}", file=sys.stderr)
        print(f"backline import: {source} was not imported ({len(refused.problems)} problem"
              f"{'s' if len(refused.problems) != 1 else ''}); nothing of it was written", file=sys.stderr)
        return EXIT_BAD_INPUT
    for kind, c in sorted(result.counts.items()):
        print(f"{kind}: " + ", ".join(f"{n:,} {what}" for what, n in c.items() if n))
    for report_id, tier in result.reports[:20]:
        print(f"triaged {report_id}: {tier}")
    if sum(result.tiers.values()) > 20:
        print(f"triaged {sum(result.tiers.values()):,} reports: "
              + ", ".join(f"{n:,} {tier}" for tier, n in result.tiers.most_common()))
    for drug in dict.fromkeys(result.unrecognised_drugs):
        print(f"unrecognised drug (kept, counted as possible anticancer treatment): {drug}")
    print(f"imported {source} (import {result.import_id})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the reports of a period, their triage and the care team's work as FHIR (a Bundle or NDJSON)."""
    from dashboard import fhir_export

    rules, db = _rules_and_store(args)
    try:
        since = datetime.fromisoformat(args.since)
        until = datetime.fromisoformat(args.until) if args.until else None
    except ValueError as exc:
        print(f"backline export: --since and --until take a date (YYYY-MM-DD): {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    try:
        if args.ndjson:
            for line in fhir_export.ndjson(db, rules, since=since, until=until, all_patients=args.all_patients):
                out.write(line)
        else:
            json.dump(fhir_export.bundle(db, rules, since=since, until=until, all_patients=args.all_patients), out,
                      ensure_ascii=False)
            out.write("\n")
    finally:
        if args.out:
            out.close()
    return 0


def cmd_fhir(args: argparse.Namespace) -> int:
    """Print Backline's FHIR resources: the questionnaire a patient-reported-outcome system sends."""
    from dashboard.fhir_questionnaire import questionnaire

    print(json.dumps(questionnaire(), indent=2, ensure_ascii=False))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Seed a database of the given size in a temporary folder and measure seed, retriage and pages."""
    from dashboard import bench

    _load_rules(args.rules)  # fail early, as the other commands do
    return bench.run_from_args(args)


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply pending migrations; then re-triage under the current rules whatever was triaged under others."""
    from dashboard.retriage import upgrade

    rules = _load_rules(args.rules)
    db = _database(args)
    if not db.exists():
        print(f"backline migrate: the database file {db.path} does not exist", file=sys.stderr)
        return EXIT_DATABASE
    if args.app_role and db.engine != "postgresql":
        print("backline migrate: --app-role is for a PostgreSQL store", file=sys.stderr)
        return EXIT_BAD_INPUT
    if db.engine == "postgresql":
        db.migrate(app_role=args.app_role)  # as the owner; the app's role is granted what it needs
    applied, stats = upgrade(db, rules, now=local_now())
    print(f"{db.path}: applied migrations {applied}" if applied else f"{db.path}: schema up to date")
    if stats is not None:
        print(f"re-triaged {stats.reports:,} reports with rules {stats.rules_version}; "
              f"{stats.changed_open:,} open reports changed tier (each has a history entry)")
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    rules = _load_rules(args.rules)
    print(f"rules {rules.version}: {len(rules.rules)} rules, {len(rules.drugs)} drugs, "
          f"{len(rules.effects)} effect windows, {len(rules.guidance.causes)} causes - valid")
    return 0


def _alerts_config(path: str | None):
    """The alerts file to use: --config, BACKLINE_ALERTS, or in demo mode the sample's; None if none."""
    settings = get_settings()
    if path:
        return Path(path)
    if settings.alerts:
        return settings.alerts
    if settings.demo:
        return settings.sample_dir / "alerts.yaml"
    return None


def _load_alerts(path: Path):
    from dashboard.alert_config import AlertConfigError, load_alert_config

    try:
        return load_alert_config(path)
    except AlertConfigError as exc:
        print(f"backline: the alerts configuration does not validate, no alert is sent: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_RULES) from None


def cmd_alerts(args: argparse.Namespace) -> int:
    """The alerts worker: sends emergencies and overdue reports to people, up their chains, until stopped."""
    import logging

    from dashboard.alert_config import AlertConfigError
    from dashboard.alerts import run_worker

    path = _alerts_config(args.config)
    if path is None:
        print("backline alerts: no alerts configuration; pass --config FILE or set BACKLINE_ALERTS",
              file=sys.stderr)
        return EXIT_RULES
    loaded = _load_alerts(path)
    _load_rules(args.rules)
    db = _database(args)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        return run_worker(db, loaded, lambda: _rules_in_force(args.rules), once=args.once,
                          say=lambda line: print(line, flush=True))
    except AlertConfigError as exc:
        print(f"backline alerts: the alerts configuration does not fit this database, no alert is sent: {exc}",
              file=sys.stderr)
        return EXIT_RULES


def _rules_in_force(path: str | None):
    """The rules on disk now (reloaded only when their files change)."""
    from dashboard.rules import load_rules, rules_digest

    directory = str(path or get_settings().rules_dir)
    digest = rules_digest(directory)
    cached = _RULES_CACHE.get(directory)
    if cached is None or cached[0] != digest:
        cached = (digest, load_rules(directory))
        _RULES_CACHE[directory] = cached
    return cached[1]


_RULES_CACHE: dict[str, tuple] = {}


def _supervise(app_cmd: list[str], worker_cmd: list[str] | None, env: dict[str, str]) -> int:
    """Run the app, and the alerts worker beside it (started again if it stops); stop both together."""
    import signal
    import subprocess
    import time

    def stop(signum, frame):  # SIGTERM (a service manager, `kill`): stop both children too
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    app = subprocess.Popen(app_cmd, env=env)
    worker = subprocess.Popen(worker_cmd, env=env) if worker_cmd else None
    try:
        while app.poll() is None:
            if worker is not None and worker.poll() is not None:
                print(f"backline run: the alerts worker stopped (exit {worker.returncode}); starting it again",
                      file=sys.stderr, flush=True)
                time.sleep(5)
                worker = subprocess.Popen(worker_cmd, env=env)
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in (app, worker):
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in (app, worker):
            if proc is not None:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return app.returncode or 0


def cmd_run(args: argparse.Namespace) -> int:
    """Start the app. Only the default sample database is built (or brought up to date) on first use:
    a database named with --db or BACKLINE_DB must already exist, so that a mistyped or unmounted path
    is an error rather than a new, empty database."""
    from dashboard.retriage import upgrade

    settings = get_settings()
    store = _database(args)
    if store.engine == "postgresql":
        store.verify_schema()  # the owner migrates (`backline migrate --database-url ...`); the app never does
        # The URL (and any password in it) reaches the children in their environment, not on a command line.
        return _serve(args, dict(os.environ, BACKLINE_DATABASE_URL=store.url), [])
    named = args.db or os.environ.get("BACKLINE_DB")
    db_path = Path(named or settings.db)
    if named and not db_path.exists():
        print(f"backline run: the database {db_path} does not exist (is the path right, the volume mounted?); "
              "create one with `backline seed --db PATH`", file=sys.stderr)
        return EXIT_DATABASE
    if not db_path.exists():
        seed_args = argparse.Namespace(
            rules=args.rules, db=str(db_path), force=False, patients=None, reports=None, seed=None,
            sample=None, write_sample=None, as_of=None, progress=False,
        )
        code = cmd_seed(seed_args)
        if code:
            return code
    elif not named:
        applied, stats = upgrade(_database(str(db_path)), _load_rules(args.rules), now=local_now())
        if applied or stats:
            print(f"brought the sample database up to date: migrations {applied or 'none'}, "
                  f"{stats.reports if stats else 0:,} reports re-triaged under the current rules")
    return _serve(args, dict(os.environ, BACKLINE_DB=str(db_path)), ["--db", str(db_path)])


def _serve(args: argparse.Namespace, env: dict[str, str], store_args: list[str]) -> int:
    """The app (Streamlit) and, with an alerts configuration, the alerts worker beside it."""
    app = Path(__file__).resolve().parent.parent / "streamlit_app.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(args.port),
           "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    alerts = _alerts_config(args.alerts)
    worker = None
    if alerts is None:
        print("backline run: no alerts configuration (BACKLINE_ALERTS), so no alert is sent: emergencies reach "
              "people only through the queue page. Run `backline alerts --config FILE` beside the app.",
              file=sys.stderr)
    elif not args.no_alerts:
        _load_alerts(alerts)  # fail closed before anything starts
        worker = [sys.executable, "-m", "dashboard", *(["--rules", args.rules] if args.rules else []), "alerts",
                  *store_args, "--config", str(alerts)]
        print(f"backline run: the alerts worker runs beside the app with {alerts}", flush=True)
    return _supervise(cmd, worker, env)


# --------------------------------------------------------------------------- entry


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="backline", description="Back-pain triage for oncology teams.")
    p.add_argument("--rules", help="rules folder (default: the project's rules/)")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("triage", help="triage JSON Lines cases (the triage contract)")
    t.add_argument("file", help="a JSON Lines file, or - for standard input")
    t.set_defaults(func=cmd_triage)

    s = sub.add_parser("seed", help="build a database from the sample generator (or a folder of files)")
    _store_arguments(s)
    s.add_argument("--patients", type=int, help="generate this many patients (default 400)")
    s.add_argument("--reports", type=int, help="generate this many reports (default 6000)")
    s.add_argument("--seed", type=int, help="random seed of the generator (default 7)")
    s.add_argument("--sample", help="load this folder of files instead (not marked as synthetic: no demo mode)")
    s.add_argument("--force", action="store_true",
                   help="replace an existing database that holds only what the generator made")
    s.add_argument("--as-of", help="the sample's 'now' (ISO date-time, local); default: the current time")
    s.add_argument("--progress", action="store_true", help="print each step to standard error as it starts")
    s.add_argument("--write-sample", metavar="DIR", help="also export the seeded tables as sample files")
    s.set_defaults(func=cmd_seed)

    r = sub.add_parser("retriage", help="re-triage every report with the current rules")
    _store_arguments(r)
    r.set_defaults(func=cmd_retriage)

    i = sub.add_parser("import", help="import a FHIR Bundle or a Bulk Data export (all of it, or nothing)")
    i.add_argument("source", help="a Bundle (JSON) file, or a folder of NDJSON files")
    _store_arguments(i)
    i.add_argument("--panel-map", help="YAML mapping references (Organization/x, Practitioner/y, Patient/z) "
                                       "to panel ids")
    i.add_argument("--panel", help="the panel of every patient the map does not place")
    i.add_argument("--actor", help="who imports (kept in the import log)")
    i.set_defaults(func=cmd_import)

    x = sub.add_parser("export", help="the reports of a period as FHIR: triage, work items, call-backs, audit")
    x.add_argument("--since", required=True, help="reports made on or after this date (YYYY-MM-DD)")
    x.add_argument("--until", help="reports made before this date")
    _store_arguments(x)
    x.add_argument("--ndjson", action="store_true", help="one resource per line instead of a Bundle")
    x.add_argument("--all-patients", action="store_true",
                   help="every patient with their record and doses, not only those of the period's reports")
    x.add_argument("--out", help="file to write (default: standard output)")
    x.set_defaults(func=cmd_export)

    f = sub.add_parser("fhir", help="Backline's own FHIR resources")
    f.add_argument("what", choices=["questionnaire"], help="questionnaire: the back-pain Questionnaire (JSON)")
    f.set_defaults(func=cmd_fhir)

    b = sub.add_parser("bench", help="seed a database of a given size and measure seed, retriage and pages")
    from dashboard.bench import add_arguments

    add_arguments(b)
    b.set_defaults(func=cmd_bench)

    m = sub.add_parser("migrate", help="apply pending schema migrations")
    _store_arguments(m)
    m.add_argument("--app-role", help="PostgreSQL: the role the app servers connect as; it is granted reads and "
                                      "writes, and no UPDATE or DELETE of the append-only tables")
    m.set_defaults(func=cmd_migrate)

    k = sub.add_parser("rules", help="validate the rules and print their version")
    k.set_defaults(func=cmd_rules)

    a = sub.add_parser("run", help="start the app (builds the sample database if missing)")
    _store_arguments(a)
    a.add_argument("--port", type=int, default=8501)
    a.add_argument("--alerts", metavar="FILE", help="alerts configuration for the worker started beside the app "
                                                    "(default: $BACKLINE_ALERTS; in demo mode the sample's)")
    a.add_argument("--no-alerts", action="store_true", help="do not start the alerts worker (one runs elsewhere)")
    a.set_defaults(func=cmd_run)

    w = sub.add_parser("alerts", help="the alerts worker: emergencies and overdue reports to people, up their chains")
    _store_arguments(w)
    w.add_argument("--config", help="alerts configuration (default: $BACKLINE_ALERTS; in demo mode the sample's)")
    w.add_argument("--once", action="store_true", help="run one cycle and stop")
    w.set_defaults(func=cmd_alerts)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from dashboard.db import DatabaseError

    try:
        return args.func(args)
    except DatabaseError as exc:
        print(f"backline {args.command}: {exc}", file=sys.stderr)
        return EXIT_DATABASE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
