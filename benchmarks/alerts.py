"""The alerts worker's cycle at scale: ``python benchmarks/alerts.py [--patients N] [--reports N]``.

Seeds a database (50,000 patients and a million reports by default), then times, with the clock
injected: the first cycle (which sends the backlog of the last 24 hours' unanswered reports), an
idle cycle (nothing due: the cost every ``poll_seconds``), and a burst of new emergencies sent at
once to a real webhook receiver on loopback. Prints a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BACKLINE_TIMEZONE", "Europe/London")

import yaml  # noqa: E402

from dashboard.access import Role, User  # noqa: E402
from dashboard.alert_config import load_alert_config  # noqa: E402
from dashboard.alerts import run_cycle  # noqa: E402
from dashboard.config import local_now  # noqa: E402
from dashboard.db import Database  # noqa: E402
from dashboard.rules import load_rules  # noqa: E402
from dashboard.seed import generate_sample, seed_generated  # noqa: E402
from dashboard.workflow import submit_report  # noqa: E402
from tests.servers import Receiver  # noqa: E402


def config(folder: Path, url: str) -> Path:
    data = {
        "app_url": "https://backline.hospital.example", "leads": ["lead"],
        "channels": {"hook": {"type": "webhook", "url": url, "secret_env": "BENCH_HOOK_SECRET"}},
        "contacts": {"nurse": {"name": "On-call nurse", "channel": "hook", "address": "4410"},
                     "lead": {"name": "Lead", "channel": "hook", "address": "4400"}},
        "chains": [{"name": "emergencies", "panels": ["*"], "tiers": ["emergency"],
                    "steps": [{"after_minutes": 0, "notify": ["nurse"]}, {"after_minutes": 15, "notify": ["lead"]}]}],
    }
    path = folder / "alerts.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=50_000)
    parser.add_argument("--reports", type=int, default=1_000_000)
    parser.add_argument("--burst", type=int, default=200, help="new emergencies at once")
    args = parser.parse_args()
    os.environ["BENCH_HOOK_SECRET"] = "bench"
    rules = load_rules(ROOT / "rules")
    receiver = Receiver()
    figures: dict = {"patients": args.patients, "reports": args.reports, "burst": args.burst}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = Database(folder / "bench.duckdb")
        now = local_now().replace(microsecond=0)
        started = time.perf_counter()
        seed_generated(db, rules, generate_sample(patients=args.patients, reports=args.reports, seed=7, now=now),
                       now=now, seed=7)
        figures["seed_s"] = round(time.perf_counter() - started, 1)
        loaded = load_alert_config(config(folder, receiver.url))
        figures["open_reports"] = db.scalar("SELECT count(*) FROM open_reports")

        def timed(at) -> tuple[float, int]:
            began = time.perf_counter()
            stats = run_cycle(db, loaded, rules, lambda: at)
            return time.perf_counter() - began, stats.sent

        figures["first_cycle_s"], figures["first_cycle_sent"] = timed(now)
        idle = [timed(now + timedelta(seconds=10 * i))[0] for i in range(1, 6)]
        figures["idle_cycle_ms_median"] = round(sorted(idle)[2] * 1000, 1)
        at = now + timedelta(minutes=1)
        nurse = User(actor="N9999", name="Bench Nurse", role=Role.NURSE,
                     panels=tuple(r[0] for r in db.rows("SELECT panel_id FROM panels")))
        patients = [r[0] for r in db.rows("SELECT patient_id FROM patients ORDER BY patient_id LIMIT ?", [args.burst])]
        for pid in patients:
            submit_report(db, rules, nurse, at, patient_id=pid,
                          report={"reported_at": at, "pain_score": 8, "leg_weakness": True})
        seconds, sent = timed(at)
        figures["burst_s"], figures["burst_sent"] = round(seconds, 2), sent
        figures["burst_alerts_per_s"] = round(sent / seconds, 1)
        figures["receiver_requests"] = len(receiver.requests)
    receiver.stop()
    figures["first_cycle_s"] = round(figures["first_cycle_s"], 2)
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value:,}" if isinstance(value, (int, float)) else f"{key:<{width}}  {value}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
