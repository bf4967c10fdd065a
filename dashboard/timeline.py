"""A patient's regimen-linked timeline: doses, the expected effect windows, reports, actions.

The windows come from ``rules/drugs.yaml``; where a report lies against them comes from the
engine itself (its links), so the words here and the triage never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from dashboard.db import Database
from dashboard.models import InputError, _clean_text
from dashboard.retriage import explanations
from dashboard.rules import RuleSet

MAX_SEARCH = 100


@dataclass(frozen=True)
class Timeline:
    patient: dict[str, Any]
    regimens: pd.DataFrame  # regimen_id, name, intent, cycle_days, start_date, end_date
    doses: pd.DataFrame  # drug (as given), generic, class_label, given_at, regimen, cycle, cycle_day
    windows: pd.DataFrame  # drug (generic), cause, label, start, end, explains_back_pain
    reports: pd.DataFrame  # report_id, reported_at, pain_score, tier, causes, position, ...
    events: pd.DataFrame  # report_id, acted_at, action, actor

    @property
    def last_cycle_days(self) -> int:
        if self.regimens.empty:
            return 21
        return int(self.regimens.sort_values("start_date").iloc[-1]["cycle_days"] or 21)


def find_patients(db: Database, text: str, panels: list[str] | None = None, limit: int = 20) -> pd.DataFrame:
    """Patients whose name, MRN or id contains the text (case-insensitive; no wildcards)."""
    try:
        needle = _clean_text(text)[:MAX_SEARCH].lower()
    except ValueError as exc:
        raise InputError([("search", str(exc))]) from None
    params: list[Any] = [needle, needle, needle]
    where = ""
    if panels:
        where = " AND panel_id IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(panels))
    return db.query(
        "SELECT patient_id, mrn, name, cancer_type, panel_id, date_of_birth FROM patients"
        " WHERE (contains(lower(name), ?) OR contains(lower(mrn), ?) OR contains(lower(patient_id), ?))"
        f"{where} ORDER BY name, patient_id LIMIT {int(limit)}",
        params,
    )


def window_position(rules: RuleSet, links: list[dict[str, Any]] | None) -> str:
    """Where a report's onset lies against the back-pain windows, in words."""
    if not links:
        return "outside every expected window"
    parts = []
    for link in links:
        end = "onwards" if link.get("end_day") is None else str(link["end_day"])
        label = rules.cause_label(link["cause"]).lower()
        parts.append(f"inside the {link['drug']} window for {label} (day {link['day']} of {link['start_day']}-{end})")
    return "; ".join(parts)


def _windows(rules: RuleSet, doses: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Effect windows per dose; open-ended windows (AI, neuropathy) as one band per drug."""
    rows = []
    for generic, group in doses.groupby("generic", sort=False):
        if generic is None or pd.isna(generic):
            continue
        for effect in rules.effects_for(generic):
            label = rules.cause_label(effect.cause)
            start_day, end_day = effect.window.start_day, effect.window.end_day
            if end_day is None:
                first = group["given_at"].min()
                rows.append((generic, effect.cause, label, first.normalize() + timedelta(days=start_day),
                             pd.Timestamp(now), effect.explains_back_pain))
                continue
            for given in group["given_at"]:
                rows.append((generic, effect.cause, label, given.normalize() + timedelta(days=start_day),
                             given.normalize() + timedelta(days=end_day + 1), effect.explains_back_pain))
    return pd.DataFrame(rows, columns=["drug", "cause", "label", "start", "end", "explains_back_pain"])


def patient_timeline(db: Database, rules: RuleSet, patient_id: str, now: datetime) -> Timeline | None:
    with db.connect() as con:
        patient = con.execute(
            "SELECT p.*, pn.name AS panel_name FROM patients p JOIN panels pn USING (panel_id) WHERE patient_id = ?",
            [patient_id]).df()
        if patient.empty:
            return None
        regimens = con.execute(
            "SELECT regimen_id, name, intent, cycle_days, planned_cycles, start_date, end_date FROM regimens"
            " WHERE patient_id = ? ORDER BY start_date", [patient_id]).df()
        doses = con.execute(
            "SELECT a.administration_id, a.drug, a.given_at, a.cycle, a.cycle_day, g.name AS regimen"
            " FROM administrations a LEFT JOIN regimens g USING (regimen_id)"
            " WHERE a.patient_id = ? ORDER BY a.given_at", [patient_id]).df()
        reports = con.execute(
            """
            SELECT r.report_id, r.reported_at, r.pain_score, r.source, r.location, r.trend, r.duration_days,
                   coalesce((SELECT arg_max(tier_after, event_id) FROM events e
                             WHERE e.report_id = r.report_id AND e.action = 'override'), t.tier) AS tier,
                   t.rule_ids, t.causes,
                   EXISTS (SELECT 1 FROM open_reports o WHERE o.report_id = r.report_id) AS is_open
            FROM reports r JOIN triage_results t USING (report_id)
            WHERE r.patient_id = ? ORDER BY r.reported_at
            """, [patient_id]).df()
        links = explanations(con, rules, reports["report_id"].tolist())
        events = con.execute(
            "SELECT e.report_id, e.acted_at, e.action, coalesce(e.actor_name, e.actor) AS actor, e.note"
            " FROM events e JOIN reports r USING (report_id) WHERE r.patient_id = ? ORDER BY e.event_id",
            [patient_id]).df()
    info = [rules.resolve_drug(d) for d in doses["drug"]]
    doses["generic"] = [i.generic if i else None for i in info]
    doses["class_label"] = [i.class_label if i else "unrecognised" for i in info]
    reports["links"] = [links.get(r, {}).get("links", []) for r in reports["report_id"]]
    reports["position"] = [window_position(rules, ls) for ls in reports["links"]]
    reports["cause_labels"] = [", ".join(rules.cause_label(c) for c in cs) for cs in reports["causes"]]
    return Timeline(
        patient=patient.iloc[0].to_dict(),
        regimens=regimens,
        doses=doses,
        windows=_windows(rules, doses, now),
        reports=reports,
        events=events,
    )
