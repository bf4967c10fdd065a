"""Several nurses on one database file: every action kept, in order, and the second always sees the first."""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import datetime

from dashboard.access import Role, User
from dashboard.workflow import act

NOW = datetime(2026, 11, 20, 12, 0)


def nurses(n: int) -> list[User]:
    return [User(actor=f"T{i:03d}", name=f"Test Nurse {i}", role=Role.NURSE) for i in range(n)]


def unanswered(db, k: int) -> list[str]:
    """k new reports nobody has acted on, entered the way the phone form enters them."""
    from dashboard.rules import load_rules
    from dashboard.workflow import submit_report

    rules = load_rules()
    entering = User(actor="T999", name="Entering Nurse", role=Role.NURSE)
    patients = [r[0] for r in db.rows("SELECT patient_id FROM patients ORDER BY patient_id LIMIT ?", [k])]
    return [submit_report(db, rules, entering, NOW, patient_id=p,
                          report={"reported_at": NOW, "pain_score": 5}).report_id for p in patients]


def test_two_nurses_acknowledge_the_same_report_at_once(fresh_db):
    (rid,) = unanswered(fresh_db, 1)
    a, b = nurses(2)
    barrier = threading.Barrier(2)
    results, errors = {}, []

    def work(user):
        try:
            barrier.wait()
            results[user.actor] = act(fresh_db, user, NOW, action="acknowledge", report_ids=[rid])
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(u,)) for u in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    events = fresh_db.rows("SELECT event_id, actor, action FROM events WHERE report_id = ? ORDER BY event_id", [rid])
    assert [e[2] for e in events] == ["acknowledge", "acknowledge"]
    first, second = events[0][1], events[1][1]
    assert results[first].already == []
    prior = results[second].already
    assert len(prior) == 1 and prior[0].actor_name == f"Test Nurse {int(first[1:])}"
    acted_at = fresh_db.scalar("SELECT acted_at FROM events WHERE event_id = ?", [events[0][0]])
    assert prior[0].acted_at == acted_at


def test_twenty_nurses_fifty_actions_each(fresh_db):
    reports = unanswered(fresh_db, 5)
    assert len(reports) == 5
    team = nurses(20)
    before = fresh_db.scalar("SELECT count(*) FROM events")
    plan = ["acknowledge", "call_back", "note", "escalate"]
    done: dict[str, list[tuple[int, str, str, list]]] = defaultdict(list)
    errors = []
    barrier = threading.Barrier(len(team))

    def work(i: int, user: User) -> None:
        try:
            barrier.wait()
            for k in range(50):
                rid = reports[(i + k) % len(reports)]
                action = plan[(i * 7 + k) % len(plan)]
                extra = {"call_back": {"reached": k % 2 == 0}, "note": {"note": f"note {i}-{k}"},
                         "escalate": {"escalated_to": "physician"}}.get(action, {})
                result = act(fresh_db, user, NOW, action=action, report_ids=[rid], **extra)
                done[user.actor].append((result.event_ids[0], rid, action, result.already))
        except Exception as exc:  # pragma: no cover
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(i, u)) for i, u in enumerate(team)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    print(f"write conflicts retried: {fresh_db.conflicts}")
    # Every action is kept, exactly once.
    assert fresh_db.scalar("SELECT count(*) FROM events") == before + 20 * 50
    ids = [e[0] for acts in done.values() for e in acts]
    assert len(ids) == len(set(ids)) == 1000
    # Each nurse's actions are in the order she made them.
    for acts in done.values():
        assert [e[0] for e in acts] == sorted(e[0] for e in acts)
    # The stored events are exactly the actions, attributed to the right people.
    stored = {r[0]: (r[1], r[2], r[3]) for r in fresh_db.rows(
        "SELECT event_id, actor, report_id, action FROM events WHERE actor LIKE 'T%'")}
    for actor, acts in done.items():
        for event_id, rid, action, _ in acts:
            assert stored[event_id] == (actor, rid, action)
    # Serialised per report: exactly one action on each report saw no earlier response (the first
    # responder), and it is the first response stored.
    for rid in reports:
        saw_nothing = [(eid, a) for acts in done.values() for eid, r, a, prior in acts
                       if r == rid and a != "note" and not [p for p in prior if p.report_id == rid]]
        first = fresh_db.scalar(
            "SELECT min(event_id) FROM events WHERE report_id = ? AND action IN ('acknowledge', 'call_back', 'escalate')",
            [rid])
        assert [eid for eid, _ in saw_nothing] == [first]
    # Derived state: the open index counted every action.
    counts = dict(fresh_db.rows("SELECT report_id, actions FROM open_reports WHERE report_id IN (SELECT unnest(?))",
                                [reports]))
    for rid in reports:
        assert counts[rid] == sum(1 for acts in done.values() for _, r, _, _ in acts if r == rid)


def test_what_if_triage_from_many_sessions_at_once(rules):
    """The in-memory engine (what-if form, triage command) is safe to call from many threads."""
    from dashboard.models import validate_case
    from dashboard.triage import triage_cases
    from tests.conftest import make_case

    case = validate_case(make_case({"pain_score": 5}, meds=[("pegfilgrastim", "2026-11-18T10:00:00")]))
    expected = triage_cases(rules, [case])[0].contract()
    results, errors = [], []

    def work():
        try:
            for _ in range(10):
                results.append(triage_cases(rules, [case])[0].contract())
        except Exception as exc:  # pragma: no cover
            errors.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 80 and all(r == expected for r in results)
