"""Several nurses on one database file: every action kept, in order, and the second always sees the first."""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import datetime, timedelta

from dashboard.access import Role, User
from dashboard.workflow import act
from tests.conftest import both_stores, panels_of

NOW = datetime(2026, 11, 20, 12, 0)


def races(db) -> int:
    """Transactions that really met another: a write conflict retried (DuckDB), or a transaction
    that ran while another was open and so waited for its row lock (PostgreSQL)."""
    return db.conflicts + getattr(db, "overlapped", 0)


def nurses(n: int, db) -> list[User]:
    return [User(actor=f"T{i:03d}", name=f"Test Nurse {i}", role=Role.NURSE, panels=panels_of(db)) for i in range(n)]


def unanswered(db, k: int) -> list[str]:
    """k new reports nobody has acted on, entered the way the phone form enters them."""
    from dashboard.rules import load_rules
    from dashboard.workflow import submit_report

    rules = load_rules()
    entering = User(actor="T999", name="Entering Nurse", role=Role.NURSE, panels=panels_of(db))
    patients = [r[0] for r in db.rows("SELECT patient_id FROM patients ORDER BY patient_id LIMIT ?", [k])]
    return [submit_report(db, rules, entering, NOW, patient_id=p,
                          report={"reported_at": NOW, "pain_score": 5}).report_id for p in patients]


def _ack_at_once(db, rid: str, a: User, b: User) -> dict:
    barrier = threading.Barrier(2)
    results, errors = {}, []

    def work(user):
        try:
            barrier.wait()
            results[user.actor] = act(db, user, NOW, action="acknowledge", report_ids=[rid])
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(u,)) for u in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return results


@both_stores
def test_two_nurses_acknowledge_the_same_report_at_once(fresh_db):
    """Both acknowledgements are kept, and the second is told who was first and when. The race is
    run on fresh reports until it really happened (a write conflict was retried): a run in which
    the two never overlapped would show nothing, so it fails instead of passing."""
    a, b = nurses(2, fresh_db)
    for rid in unanswered(fresh_db, 20):
        before = races(fresh_db)
        results = _ack_at_once(fresh_db, rid, a, b)
        events = fresh_db.rows("SELECT event_id, actor, action, acted_at FROM events WHERE report_id = ? "
                               "ORDER BY event_id", [rid])
        assert [e[2] for e in events] == ["acknowledge", "acknowledge"]
        first, second = events[0][1], events[1][1]
        assert results[first].already == []
        prior = results[second].already
        assert len(prior) == 1 and prior[0].actor == first and prior[0].acted_at == events[0][3]
        assert prior[0].actor_name == f"Test Nurse {int(first[1:])}"
        if races(fresh_db) > before:
            return
    raise AssertionError("in 20 tries the two acknowledgements never overlapped: the race was not tested")


@both_stores
def test_twenty_nurses_fifty_actions_each(fresh_db):
    reports = unanswered(fresh_db, 5)
    assert len(reports) == 5
    team = nurses(20, fresh_db)
    before = fresh_db.scalar("SELECT count(*) FROM events")
    plan = ["acknowledge", "call_back", "note", "escalate"]
    # (event id or None, report, action, earlier actions by others, why it was not recorded)
    done: dict[str, list[tuple[int | None, str, str, list, str | None]]] = defaultdict(list)
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
                # Each nurse's actions two minutes apart: none is a repeated click of the one before.
                when = NOW + timedelta(minutes=2 * k)
                result = act(fresh_db, user, when, action=action, report_ids=[rid], **extra)
                assert len(result.recorded) + len(result.unchanged) == 1
                event_id = result.event_ids[0] if result.event_ids else None
                reason = result.unchanged[0][1] if result.unchanged else None
                done[user.actor].append((event_id, rid, action, result.already, reason))
        except Exception as exc:  # pragma: no cover
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(i, u)) for i, u in enumerate(team)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    assert sum(len(v) for v in done.values()) == 1000
    # The race happened: transactions on one report overlapped and were retried, not run one by one.
    assert races(fresh_db) > 0
    # Only a nurse's second acknowledgement of the same report changes nothing, and says so.
    reasons = {r for acts in done.values() for *_, r in acts if r is not None}
    assert reasons == {"already acknowledged by you"}
    for acts in done.values():
        seen = set()
        for event_id, rid, action, _, reason in acts:
            if action == "acknowledge":
                assert (reason is None) == (rid not in seen)
                seen.add(rid)
            else:
                assert reason is None
    recorded = [e for acts in done.values() for e in acts if e[0] is not None]
    # Every real action is kept, exactly once.
    assert fresh_db.scalar("SELECT count(*) FROM events") == before + len(recorded)
    ids = [e[0] for e in recorded]
    assert len(ids) == len(set(ids))
    # Each nurse's actions are in the order she made them.
    for acts in done.values():
        mine = [e[0] for e in acts if e[0] is not None]
        assert mine == sorted(mine)
    # The stored events are exactly the actions, attributed to the right people.
    stored = {r[0]: (r[1], r[2], r[3]) for r in fresh_db.rows(
        "SELECT event_id, actor, report_id, action FROM events WHERE actor LIKE 'T%'")}
    for actor, acts in done.items():
        for event_id, rid, action, _, _ in acts:
            if event_id is not None:
                assert stored[event_id] == (actor, rid, action)
    # Serialised per report: the first response stored saw nobody's earlier response, and every
    # later response by someone else was told of it.
    for rid in reports:
        first_id, first_actor = fresh_db.rows(
            "SELECT event_id, actor FROM events WHERE report_id = ? AND action IN ('acknowledge', 'call_back', "
            "'escalate') ORDER BY event_id LIMIT 1", [rid])[0]
        for actor, acts in done.items():
            for event_id, r, action, prior, _ in acts:
                if r != rid or event_id is None or action == "note":
                    continue
                others = [p for p in prior if p.report_id == rid]
                if event_id == first_id:
                    assert others == []
                elif actor != first_actor and event_id > first_id:
                    assert any(p.actor == first_actor for p in others)
    # Derived state: the open index counted every action tried on it.
    counts = dict(fresh_db.rows("SELECT report_id, actions FROM open_reports WHERE report_id IN (SELECT unnest(?::VARCHAR[]))",
                                [reports]))
    for rid in reports:
        assert counts[rid] == sum(1 for acts in done.values() for e in acts if e[1] == rid)


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
