"""A patient's regimen-linked timeline: doses and courses, the expected effect windows, reports, actions.

The windows come from ``rules/drugs.yaml`` (calendar days: day 0 is the dose's own date); which drug
effects fit a report comes from the engine itself (its drug_effects), so the words here and the
triage never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from dashboard import windows
from dashboard.db import Database
from dashboard.models import InputError, _clean_text
from dashboard.queue import day_text, drug_effect_text
from dashboard.retriage import explanations
from dashboard.rules import RuleSet

MAX_SEARCH = 100


@dataclass(frozen=True)
class Timeline:
    patient: dict[str, Any]
    regimens: pd.DataFrame  # regimen_id, name, intent, cycle_days, start_date, end_date
    doses: pd.DataFrame  # drug (as given), generic, class_label, given_at, stopped_at, is_course, regimen, ...
    windows: pd.DataFrame  # drug (generic), cause, label, start, end, back_pain, window (days in words), given_at
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


def effects_position(rules: RuleSet, drug_effects: list[dict[str, Any]] | None, reported_at: Any,
                     duration_days: Any) -> str:
    """Which back-pain drug effects fit a report's timing, in words (the engine's drug_effects)."""
    if not drug_effects:
        return "no drug effect fits its timing"
    days = None if duration_days is None or pd.isna(duration_days) else int(duration_days)
    return "; ".join(drug_effect_text(rules, e, reported_at, days) for e in drug_effects)


def mark_courses(rules: RuleSet, doses: pd.DataFrame) -> pd.DataFrame:
    """Add generic, class_label and is_course: a drug taken continuously, or an unrecognised drug with a stop date."""
    info = [rules.resolve_drug(d) for d in doses["drug"]]
    stopped = doses["stopped_at"] if "stopped_at" in doses else pd.Series([None] * len(doses), index=doses.index)
    return doses.assign(
        generic=[i.generic if i else None for i in info],
        class_label=[i.class_label if i else "unrecognised" for i in info],
        is_course=[bool(i.continuous) if i else not pd.isna(s) for i, s in zip(info, stopped)],
    )


def effect_windows(rules: RuleSet, doses: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Effect windows as bands, by the engine's own definition (:mod:`dashboard.windows`): calendar
    days after each dose, from local midnight of the first day to local midnight after the last.

    Bounded windows: one band per dose (or course start). Open-ended windows (aromatase inhibitor,
    neuropathy): one band per course, to its stop (or today), or from the first dose to today.
    """
    rows = []
    today = windows.day_of(now)
    for generic, group in doses.groupby("generic", sort=False):
        if generic is None or pd.isna(generic):
            continue
        for effect in rules.effects_for(generic):
            label = rules.cause_label(effect.cause)
            start_day, end_day = windows.window_offsets(effect)
            words = f"days {start_day}-{end_day}" if end_day is not None else f"from day {start_day}"
            if end_day is None:
                courses = group[group["is_course"]]
                spans = [(c.given_at, c.stopped_at) for c in courses.itertuples()] if not courses.empty else \
                        [(group["given_at"].min(), None)]
                for given, stop in spans:
                    first, _ = windows.window_days(effect, given)
                    last = today if stop is None or pd.isna(stop) else min(windows.day_of(stop), today)
                    if first <= last:
                        start, end = windows.band(first, last)
                        rows.append((generic, effect.cause, label, start, end, effect.back_pain, words, given))
                continue
            for given in group["given_at"]:
                start, end = windows.band(*windows.window_days(effect, given))
                rows.append((generic, effect.cause, label, start, end, effect.back_pain, words, given))
    return pd.DataFrame(rows, columns=["drug", "cause", "label", "start", "end", "back_pain", "window", "given_at"])


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
            "SELECT a.administration_id, a.drug, a.given_at, a.stopped_at, a.cycle, a.cycle_day, g.name AS regimen"
            " FROM administrations a LEFT JOIN regimens g USING (regimen_id)"
            " WHERE a.patient_id = ? ORDER BY a.given_at", [patient_id]).df()
        reports = con.execute(
            """
            SELECT r.report_id, r.reported_at, r.pain_score, r.source, r.location, r.trend, r.duration_days,
                   r.pain_pattern,
                   c.tier, t.rule_ids, t.leading_causes, t.causes,
                   EXISTS (SELECT 1 FROM open_reports o WHERE o.report_id = r.report_id) AS is_open
            FROM reports r JOIN triage_results t USING (report_id)
            JOIN current_tiers c USING (report_id)  -- the override-aware tier, as everywhere
            WHERE r.patient_id = ? ORDER BY r.reported_at
            """, [patient_id]).df()
        found = explanations(con, rules, reports["report_id"].tolist())
        events = con.execute(
            "SELECT e.report_id, e.acted_at, e.action, coalesce(e.actor_name, e.actor) AS actor, e.note"
            " FROM events e JOIN reports r USING (report_id) WHERE r.patient_id = ? ORDER BY e.event_id",
            [patient_id]).df()
    doses = mark_courses(rules, doses)
    reports["drug_effects"] = [found.get(r, {}).get("drug_effects", []) for r in reports["report_id"]]
    reports["position"] = [effects_position(rules, e, at, d) for e, at, d in
                           zip(reports["drug_effects"], reports["reported_at"], reports["duration_days"])]
    known = rules.guidance.causes
    reports["cause_labels"] = [", ".join(rules.cause_label(c) if c in known else c for c in cs)
                               for cs in reports["causes"]]
    return Timeline(
        patient=patient.iloc[0].to_dict(),
        regimens=regimens,
        doses=doses,
        windows=effect_windows(rules, doses, now),
        reports=reports,
        events=events,
    )


# --------------------------------------------------------------------------- the patient's record


def patient_record(db: Database, rules: RuleSet, patient_id: str, at: datetime) -> dict[str, Any] | None:
    """What the record says that the triage uses beyond the report: the patient's flags, anticoagulants
    and continuous courses (running at ``at``, or stopped in the 42 days before it)."""
    with db.connect() as con:
        patient = con.execute(
            "SELECT patient_id, name, mrn, cancer_type, bone_metastases, osteoporosis, long_term_steroids,"
            " low_platelets FROM patients WHERE patient_id = ?", [patient_id]).df()
        if patient.empty:
            return None
        doses = con.execute(
            "SELECT drug, given_at, stopped_at FROM administrations WHERE patient_id = ? AND given_at <= ?"
            " ORDER BY given_at", [patient_id, at]).df()
    doses = mark_courses(rules, doses)
    lookback = timedelta(days=int(rules.parameter("sact_lookback_days")))
    classes = [rules.resolve_drug(d).drug_class if rules.resolve_drug(d) else None for d in doses["drug"]]
    doses["drug_class"] = classes
    courses = doses[doses["is_course"]]
    current = courses[courses["stopped_at"].isna() | (courses["stopped_at"] >= at - lookback)]
    anticoagulants = doses[doses["drug_class"] == "anticoagulant"]
    anticoagulants = anticoagulants[anticoagulants["stopped_at"].isna()
                                    | (anticoagulants["stopped_at"] >= at - lookback)]
    return {**patient.iloc[0].to_dict(), "courses": current.to_dict("records"),
            "anticoagulants": anticoagulants.to_dict("records")}


def _course_words(item: dict[str, Any], at: datetime) -> str:
    stopped = item.get("stopped_at")
    running = stopped is None or pd.isna(stopped)
    return (f"{item['drug']} from {day_text(item['given_at'], at)}, "
            + ("running" if running else f"stopped {day_text(stopped, at)}"))


def record_lines(record: dict[str, Any], at: datetime) -> list[str]:
    """The record in words, for the forms: anticoagulant, low platelets, bone disease, continuous courses."""
    anti = record["anticoagulants"]
    lines = [
        "Anticoagulant: " + ("; ".join(_course_words(a, at) if a.get("is_course") else
                                       f"{a['drug']} {day_text(a['given_at'], at)}" for a in anti)
                             if anti else "none recorded"),
        "Low platelets: " + ("yes" if record.get("low_platelets") else "not recorded"),
        "Bone: " + (", ".join(w for k, w in (("bone_metastases", "known bone metastases"),
                                             ("osteoporosis", "osteoporosis"),
                                             ("long_term_steroids", "long-term steroids")) if record.get(k))
                    or "no bone metastases, osteoporosis or long-term steroids recorded"),
        "Continuous courses: " + ("; ".join(_course_words(c, at) for c in record["courses"])
                                  if record["courses"] else "none running or recently stopped"),
    ]
    return lines
