"""One app server's share of the cross-server stress test: ``python -m tests.stress_worker URL FIRST
THREADS ACTIONS REPORTS...`` runs THREADS nurses (T<FIRST>, T<FIRST+1>, ...) each making ACTIONS
actions on the reports, through the workflow as the app's pages do, and prints one JSON line per
action: nurse, report, action, event id (or null), the earlier responders it was told of, and why it
was not recorded."""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime, timedelta

from dashboard.access import Role, User
from dashboard.db import open_store
from dashboard.workflow import act

NOW = datetime(2026, 11, 20, 12, 0)
PLAN = ["acknowledge", "call_back", "note", "escalate"]


def main(url: str, first: int, threads: int, actions: int, reports: list[str]) -> int:
    store = open_store(url)
    panels = tuple(r for r, in store.rows("SELECT panel_id FROM panels"))
    out, errors, lock = [], [], threading.Lock()
    barrier = threading.Barrier(threads)

    def work(i: int) -> None:
        user = User(actor=f"T{i:03d}", name=f"Test Nurse {i}", role=Role.NURSE, panels=panels)
        try:
            barrier.wait()
            for k in range(actions):
                rid = reports[(i + k) % len(reports)]
                action = PLAN[(i * 7 + k) % len(PLAN)]
                extra = {"call_back": {"reached": k % 2 == 0}, "note": {"note": f"note {i}-{k}"},
                         "escalate": {"escalated_to": "physician"}}.get(action, {})
                result = act(store, user, NOW + timedelta(minutes=2 * k), action=action, report_ids=[rid], **extra)
                with lock:
                    out.append({"nurse": user.actor, "k": k, "report": rid, "action": action,
                                "event": result.event_ids[0] if result.event_ids else None,
                                "told": [p.actor for p in result.already if p.report_id == rid],
                                "reason": result.unchanged[0][1] if result.unchanged else None})
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(repr(exc))

    pool = [threading.Thread(target=work, args=(first + i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    for line in out:
        print(json.dumps(line))
    for e in errors:
        print(json.dumps({"error": e}))
    store.close()
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]))
