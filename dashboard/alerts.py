"""The alerts worker: an emergency, or a report past its tier's target, reaches a person.

Each cycle reads the open reports that nobody has answered (acknowledged, called back, escalated,
resolved or overridden) and works out which alerts are due now:

- **chain**: the steps of the escalation chain for the report's panel and tier (``alerts.yaml``),
  each ``after_minutes`` from the moment Backline received the report, each to the contacts on call
  at that moment (rotas by time of day and day of week);
- **overdue**: the leads, when the tier's response target (``rules/tiers.yaml``, the clock on the
  queue) runs out;
- **undelivered**: the leads, when an alert is given up after its retries; the chain's next step
  then goes at once instead of at its time.

The chain stops as soon as anyone answers the report: every alert is checked again, in the same
transaction that claims it, just before it goes.

Every alert is one row per try in ``alert_log`` (append-only): "sending" when claimed, then "sent"
or "failed" (with the time of the next try, after a backoff), and "gave_up" after the last try.
That log is the worker's progress: a restarted worker sends nothing that is logged as sent, and a
claim is unique, so two workers never send the same alert twice. A claim left without a result
(the worker stopped during the send) is taken as failed after a while and tried again with the
same alert id, which the e-mail's Message-ID and the webhook's header carry so that a receiver can
drop the second copy. The network is used outside any database transaction.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Callable

import duckdb
import pandas as pd

from dashboard import clock
from dashboard.alert_channels import Alert, DeliveryError, report_link, send
from dashboard.alert_config import AlertConfigError, Chain, LoadedConfig, Step
from dashboard.config import local_now
from dashboard.db import CONSTRAINT_ERRORS, ENGINE_ERRORS, Database, DatabaseError, run
from dashboard.rules import RuleSet
from dashboard.workflow import RESPONSES_SQL

log = logging.getLogger("backline.alerts")
WORKER = f"{socket.gethostname()}:{os.getpid()}"
HEARTBEAT_KEY = "alerts_worker"

UNANSWERED_SQL = f"""
SELECT o.report_id, o.panel_id, r.reported_at, r.received_at, t.tier, p.name AS patient_name, p.mrn
FROM open_reports o
JOIN reports r ON r.report_id = o.report_id
JOIN triage_results t ON t.report_id = o.report_id  -- unanswered: never overridden, so the triage's tier
JOIN patients p ON p.patient_id = o.patient_id
WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.report_id = o.report_id AND e.action IN {RESPONSES_SQL})
"""

# The unanswered reports that can have an alert due now: a chain step or the tier's target within the
# look-back, or an alert logged within it (a retry, a claim to recover, a give-up to tell the leads
# of). The others cannot, so a cycle on a million reports reads only the few that matter.
CANDIDATES_SQL = UNANSWERED_SQL + """
  AND (r.received_at >= $horizon - to_minutes($longest_chain::BIGINT)
       OR o.reported_at >= $horizon - to_minutes({target}::BIGINT)
       OR EXISTS (SELECT 1 FROM alert_log a WHERE a.report_id = o.report_id AND a.logged_at >= $horizon))
"""

STILL_UNANSWERED_SQL = f"""
SELECT count(*) FROM open_reports o WHERE o.report_id = ?
  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.report_id = o.report_id AND e.action IN {RESPONSES_SQL})
"""

LOG_COLUMNS = ("alert_key", "report_id", "kind", "tier", "chain", "step", "steps", "contact", "contact_name",
               "channel", "channel_type", "address", "attempt", "result", "detail", "due_at", "logged_at",
               "retry_at", "worker")


@dataclass(frozen=True)
class Due:
    """One try of one alert that should go now."""

    key: str
    kind: str
    report: dict
    tier: str
    contact: str
    due_at: datetime
    attempt: int
    chain: str | None = None
    step: int | None = None
    steps: int | None = None
    failed_to: str | None = None
    recover: bool = False  # the previous try has no result (the worker stopped during it): log it failed first


@dataclass
class CycleStats:
    sent: int = 0
    failed: int = 0
    gave_up: int = 0
    skipped: int = 0  # claimed by another worker, or answered meanwhile
    lines: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- what is due


def _fallback_chain(loaded: LoadedConfig) -> Chain:
    """An emergency on a panel that no chain covers goes to the leads at once."""
    return Chain(name="leads (no chain for this panel)", panels=["*"], tiers=["emergency"],
                 steps=[Step(after_minutes=0, notify=list(loaded.config.leads))])


def _local(moment: datetime) -> datetime:
    return clock.wall(moment)


def plan(reports: pd.DataFrame, log_rows: pd.DataFrame, loaded: LoadedConfig, rules: RuleSet,
         now: datetime) -> list[Due]:
    """The tries due at ``now``, most urgent first. Pure: the unanswered reports and their log in."""
    config = loaded.config
    now = clock.aware(now)
    horizon = now - timedelta(hours=config.look_back_hours)
    stale = timedelta(seconds=stale_after_seconds(loaded))
    last: dict[str, dict] = {}
    gave_up: dict[str, list[dict]] = {}
    for row in log_rows.sort_values("log_id").to_dict("records"):
        last[row["alert_key"]] = row
    for row in last.values():
        if row["result"] == "gave_up" and row["kind"] != "undelivered":
            gave_up.setdefault(row["report_id"], []).append(row)
    out: list[Due] = []
    for report in reports.to_dict("records"):
        rid, tier = report["report_id"], report["tier"]
        wanted: list[Due] = []
        chain = config.chain_for(report["panel_id"], tier)
        if chain is None and tier == "emergency":
            chain = _fallback_chain(loaded)
        if chain is not None:
            given_up_at: datetime | None = None
            for i, step in enumerate(chain.steps, start=1):
                due = clock.aware(report["received_at"]) + timedelta(minutes=step.after_minutes)
                if given_up_at is not None:
                    due = min(due, given_up_at)
                keys = []
                for contact in config.contacts_for(step.notify, _local(due)):
                    key = f"{rid}|{tier}|{chain.name}|{i}|{contact}"
                    keys.append(key)
                    wanted.append(Due(key, "chain", report, tier, contact, due, 1, chain.name, i, len(chain.steps)))
                failed = [last[k] for k in keys if k in last and last[k]["result"] == "gave_up"]
                given_up_at = min((clock.aware(r["logged_at"]) for r in failed), default=None)
        if tier in config.overdue_tiers:
            due = clock.aware(report["reported_at"]) + timedelta(minutes=rules.respond_within_minutes(tier))
            for contact in config.contacts_for(config.leads, _local(due)):
                wanted.append(Due(f"{rid}|{tier}|overdue|{contact}", "overdue", report, tier, contact, due, 1))
        for failed in gave_up.get(rid, []):
            due = clock.aware(failed["logged_at"])
            for contact in config.contacts_for(config.leads, _local(due)):
                wanted.append(Due(f"{failed['alert_key']}|undelivered|{contact}", "undelivered", report, tier,
                                  contact, due, 1, failed_to=failed["contact_name"]))
        for want in wanted:
            row = last.get(want.key)
            if row is None:
                if horizon <= want.due_at <= now:
                    out.append(want)
            elif row["result"] == "sending":
                if clock.aware(row["logged_at"]) <= now - stale:
                    out.append(replace(want, attempt=int(row["attempt"]) + 1, recover=True))
            elif row["result"] == "failed":
                retry_at = row["retry_at"]
                if retry_at is not None and not pd.isna(retry_at) and clock.aware(retry_at) <= now:
                    out.append(replace(want, attempt=int(row["attempt"]) + 1))
    rank = rules.tier_rank
    return sorted(out, key=lambda d: (-rank[d.tier], d.due_at, d.key))


def stale_after_seconds(loaded: LoadedConfig) -> float:
    """How long a claim may stand without a result before it is taken as failed (well past any timeout)."""
    timeouts = [getattr(c, "timeout_seconds", 5.0) for c in loaded.config.channels.values()]
    return max(timeouts) * 4 + 60


# --------------------------------------------------------------------------- one cycle


def _row(due: Due, loaded: LoadedConfig, *, result: str, attempt: int, now: datetime, detail: str | None = None,
         retry_at: datetime | None = None) -> list:
    config = loaded.config
    contact = config.contacts[due.contact]
    channel = config.channels[contact.channel]
    return [due.key, due.report["report_id"], due.kind, due.tier, due.chain, due.step, due.steps, due.contact,
            contact.name, contact.channel, channel.type, contact.address, attempt, result,
            detail[:2000] if detail else None, due.due_at, now, retry_at, WORKER]


def _insert(con: duckdb.DuckDBPyConnection, row: list) -> None:
    run(con, f"INSERT INTO alert_log ({', '.join(LOG_COLUMNS)}) VALUES ({', '.join('?' for _ in LOG_COLUMNS)})", row)


def claim(db: Database, due: Due, loaded: LoadedConfig, now: datetime) -> bool:
    """Take this try for this worker, if the report is still unanswered and nobody else has."""
    def work(con: duckdb.DuckDBPyConnection) -> bool:
        if not run(con, STILL_UNANSWERED_SQL, [due.report["report_id"]])[0][0]:
            return False
        if due.recover:
            _insert(con, _row(due, loaded, result="failed", attempt=due.attempt - 1, now=now,
                              detail="no result was recorded (the worker stopped during the send); tried again"))
        _insert(con, _row(due, loaded, result="sending", attempt=due.attempt, now=now))
        return True

    try:
        return db.transaction(work)
    except CONSTRAINT_ERRORS:
        return False  # another worker has claimed it


def deliver(db: Database, due: Due, loaded: LoadedConfig, rules: RuleSet, now: Callable[[], datetime],
            stats: CycleStats, lock: threading.Lock) -> None:
    """Claim, send and record one try."""
    if not claim(db, due, loaded, now()):
        with lock:
            stats.skipped += 1
        return
    config = loaded.config
    contact = config.contacts[due.contact]
    channel = config.channels[contact.channel]
    report = due.report
    alert = Alert(
        alert_id=due.key, kind=due.kind, report_id=report["report_id"], tier=due.tier,
        tier_label=rules.tier_by_id[due.tier].label, panel_id=report["panel_id"],
        reported_at=clock.aware(report["reported_at"]), due_at=due.due_at, to_name=contact.name,
        link=report_link(config.app_url, report["report_id"]), step=due.step, steps=due.steps, chain=due.chain,
        target_minutes=rules.respond_within_minutes(due.tier), failed_to=due.failed_to,
        patient_name=report["patient_name"] if channel.patient_identifiers else None,
        mrn=report["mrn"] if channel.patient_identifiers else None)
    try:
        detail, ok = send(loaded, due.contact, alert), True
    except DeliveryError as exc:
        detail, ok = str(exc), False
    except Exception as exc:  # a channel must never stop the worker
        detail, ok = f"{type(exc).__name__}: {exc}", False
    at = now()
    rows = []
    if ok:
        rows.append(_row(due, loaded, result="sent", attempt=due.attempt, now=at, detail=detail))
    elif due.attempt < config.retry.attempts:
        retry_at = at + config.retry.wait_after(due.attempt)
        rows.append(_row(due, loaded, result="failed", attempt=due.attempt, now=at, detail=detail, retry_at=retry_at))
    else:
        rows.append(_row(due, loaded, result="failed", attempt=due.attempt, now=at, detail=detail))
        rows.append(_row(due, loaded, result="gave_up", attempt=due.attempt, now=at,
                         detail=f"no delivery after {due.attempt} tries; the leads are told and the chain goes on"))

    def work(con: duckdb.DuckDBPyConnection) -> None:
        for row in rows:
            _insert(con, row)

    db.transaction(work)
    what = f"{due.kind}{f' step {due.step}/{due.steps}' if due.step else ''} {due.tier} {report['report_id']} " \
           f"-> {contact.name} ({contact.channel}, try {due.attempt})"
    with lock:
        if ok:
            stats.sent += 1
            stats.lines.append(f"sent {what}")
        else:
            stats.failed += 1
            stats.lines.append(f"FAILED {what}: {detail}")
            if len(rows) > 1:
                stats.gave_up += 1
                stats.lines.append(f"GAVE UP {what}")


def _target_minutes_sql(rules: RuleSet) -> str:
    """Each tier's response target in the rules in force, as SQL (whole numbers from validated rules)."""
    return "CASE t.tier " + " ".join(f"WHEN '{t}' THEN {int(rules.respond_within_minutes(t))}"
                                     for t in rules.tier_ids) + " END"


def candidates(db: Database, loaded: LoadedConfig, rules: RuleSet, at: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The unanswered reports that can have an alert due at ``at``, and their alert log."""
    params = {"horizon": at - timedelta(hours=loaded.config.look_back_hours),
              "longest_chain": max((c.steps[-1].after_minutes for c in loaded.config.chains), default=0)}
    with db.connect() as con:
        reports = con.execute(CANDIDATES_SQL.replace("{target}", _target_minutes_sql(rules)), params).df()
        log_rows = con.execute("SELECT * FROM alert_log WHERE report_id IN (SELECT unnest(?::VARCHAR[]))",
                               [reports["report_id"].tolist()]).df()
    return reports, log_rows


def run_cycle(db: Database, loaded: LoadedConfig, rules: RuleSet, now: Callable[[], datetime] = local_now, *,
              parallel: int = 4) -> CycleStats:
    """Send every alert due now. A try given up lets the next step and the leads go in the same cycle."""
    stats = CycleStats()
    lock = threading.Lock()
    for _ in range(4):
        at = clock.aware(now())
        reports, log_rows = candidates(db, loaded, rules, at)
        due = plan(reports, log_rows, loaded, rules, at)
        if not due:
            break
        before = stats.gave_up
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            for future in [pool.submit(deliver, db, d, loaded, rules, now, stats, lock) for d in due]:
                future.result()
        if stats.gave_up == before:
            break
    return stats


# --------------------------------------------------------------------------- the worker


def heartbeat(db: Database, loaded: LoadedConfig, now: datetime) -> None:
    """Say in the database that the worker is running (the app warns when it has stopped)."""
    value = json.dumps({"at": clock.aware(now).isoformat(), "every_seconds": loaded.config.poll_seconds,
                        "worker": WORKER, "config": str(loaded.path)})

    def work(con: duckdb.DuckDBPyConnection) -> None:
        run(con, "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [HEARTBEAT_KEY, value])

    db.transaction(work)


@dataclass(frozen=True)
class WorkerStatus:
    running: bool
    last_seen: datetime | None
    words: str


def worker_status(meta: dict[str, str], now: datetime) -> WorkerStatus:
    """Is the alerts worker running (it wrote its heartbeat within three of its cycles)?"""
    raw = meta.get(HEARTBEAT_KEY)
    if not raw:
        return WorkerStatus(False, None, "No alerts worker has run on this database: emergencies reach people only "
                                         "through this screen. Start one with `backline alerts`.")
    try:
        beat = json.loads(raw)
        at = datetime.fromisoformat(beat["at"])
        every = float(beat["every_seconds"])
    except (ValueError, KeyError, TypeError):
        return WorkerStatus(False, None, "The alerts worker's heartbeat cannot be read.")
    ago = (clock.aware(now) - at).total_seconds()
    if ago <= max(3 * every, 30):
        return WorkerStatus(True, at, f"Alerts are on: the worker last checked {max(ago, 0):.0f} s ago.")
    return WorkerStatus(False, at, f"The alerts worker has not run since {clock.wall(at):%d %b %H:%M}: emergencies "
                                   "reach people only through this screen until it is restarted (`backline alerts`).")


def check_coverage(db: Database, loaded: LoadedConfig) -> None:
    """Refuse to start when a panel has no chain for emergencies (they would go only to the leads)."""
    panels = [r[0] for r in db.rows("SELECT panel_id FROM panels ORDER BY panel_id")]
    missing = loaded.config.uncovered(panels)
    if missing:
        raise AlertConfigError(loaded.path.name, "chains",
                               f"no chain alerts anyone to an emergency on panel{'s' if len(missing) > 1 else ''} "
                               f"{', '.join(missing)}: add a chain for {'them' if len(missing) > 1 else 'it'} "
                               'or one for every panel ("*")')


def run_worker(db: Database, loaded: LoadedConfig, rules_source: Callable[[], RuleSet], *,
               now: Callable[[], datetime] = local_now, stop: threading.Event | None = None, once: bool = False,
               say: Callable[[str], None] = print) -> int:
    """Run cycles until stopped (SIGTERM or SIGINT); survive a channel or the database being down."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    db.verify_schema()
    check_coverage(db, loaded)
    rules = rules_source()
    say(f"alerts: watching {db.path} every {loaded.config.poll_seconds:g} s with {loaded.path.name} "
        f"({len(loaded.config.chains)} chains, {len(loaded.config.contacts)} contacts)")
    while not stop.is_set():
        try:
            rules = rules_source()
        except Exception as exc:  # keep the last rules that validated: alerts must not stop for a bad edit
            say(f"alerts: the rules do not validate, the last valid ones are kept: {exc}")
        try:
            stats = run_cycle(db, loaded, rules, now)
            heartbeat(db, loaded, now())
            for line in stats.lines:
                say(f"alerts: {line}")
        except (DatabaseError, *ENGINE_ERRORS) as exc:
            say(f"alerts: the database cannot be used now, trying again: {' '.join(str(exc).split())[:300]}")
        if once:
            break
        stop.wait(loaded.config.poll_seconds)
    return 0
