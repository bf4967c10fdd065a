"""The referral / imaging request summary for a report, as plain text to paste into a referral.

It says what the queue's detail says, from the same composition (:func:`dashboard.queue.explain`,
itself :func:`dashboard.guidance.guidance_for`): the leading causes and their imaging and referral
lines with their times, the causes also considered, the drug effects and what made SACT recent. The
treatment it lists is the treatment given by the time of the report; who asks, and the nursing notes,
close it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pandas as pd

from dashboard.labels import ESCALATION_LABELS, report_answers
from dashboard.queue import guidance_line_text
from dashboard.rules import RuleSet


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and pd.isna(value))


def _when(value: Any) -> str:
    if _missing(value):
        return "unknown"
    if isinstance(value, (datetime, pd.Timestamp)):
        return value.strftime("%d %b %Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d %b %Y")
    return str(value)


def _day(value: Any) -> str:
    """A date only (a date of birth, a regimen's start)."""
    if _missing(value):
        return "unknown"
    return pd.Timestamp(value).strftime("%d %b %Y")


def mrn_text(mrn: Any) -> str:
    """The MRN with its label once: a stored "MRN7296161" as it is, a bare "7296161" as "MRN 7296161"."""
    if _missing(mrn) or not str(mrn).strip():
        return "MRN not recorded"
    mrn = str(mrn).strip()
    return mrn if mrn.upper().startswith("MRN") else f"MRN {mrn}"


def born_text(date_of_birth: Any, age: Any) -> str:
    if _missing(date_of_birth):
        return "date of birth not recorded"
    return f"born {_day(date_of_birth)}" + ("" if _missing(age) else f" (aged {int(age)} at the report)")


def _last_doses(doses: pd.DataFrame, reported_at: Any) -> str:
    """The latest dose or course of each drug given by the time of the report (a course running then is
    "running at the report", whatever happened after)."""
    at = pd.Timestamp(reported_at)
    given = doses[pd.to_datetime(doses["given_at"]) <= at] if not doses.empty else doses
    if given.empty:
        return "none recorded before the report"
    last = given.sort_values("given_at").groupby("drug").tail(1).sort_values("given_at", ascending=False).head(6)
    parts = []
    for r in last.itertuples():
        course = bool(getattr(r, "is_course", False))
        stopped = getattr(r, "stopped_at", None)
        if course:
            running = _missing(stopped) or pd.Timestamp(stopped) > at
            parts.append(f"{r.drug} from {_when(r.given_at)}, " + ("running at the report" if running
                                                                   else f"stopped {_when(stopped)}"))
        else:
            parts.append(f"{r.drug} {_when(r.given_at)}")
    return "; ".join(parts)


def _regimen(regimens: pd.DataFrame, reported_at: Any) -> str:
    """The regimen started most recently by the report's day."""
    if regimens.empty:
        return "none recorded"
    started = regimens[pd.to_datetime(regimens["start_date"]).dt.date <= pd.Timestamp(reported_at).date()]
    if started.empty:
        return "none started by the report"
    current = started.sort_values("start_date").iloc[-1]
    return f"{current['name']} (from {_day(current['start_date'])})"


NOTE_ACTIONS = {"call_back": "call-back", "escalate": "escalation", "note": "note"}


def nursing_notes(detail: dict[str, Any]) -> list[str]:
    """The report's own note, then the latest note of each kind (call-back, escalation, note) from its
    history, with who wrote it and when."""
    out = []
    if not _missing(detail.get("note")) and str(detail["note"]).strip():
        out.append(f"Report note ({detail.get('entered_by_name') or detail['source']}): {detail['note']}")
    events = detail.get("events")
    if events is None or events.empty:
        return out
    for action, word in NOTE_ACTIONS.items():
        mine = events[(events["action"] == action) & events["note"].notna()]
        mine = mine[mine["note"].astype(str).str.strip() != ""]
        if mine.empty:
            continue
        e = mine.iloc[-1]
        what = word
        if action == "call_back":
            reached = e.get("reached")
            what += ", reached" if not _missing(reached) and bool(reached) else ", not reached"
        if action == "escalate" and not _missing(e.get("escalated_to")):
            what += f" to {ESCALATION_LABELS.get(e['escalated_to'], e['escalated_to'])}"
        out.append(f"Latest {what} ({e['actor']}, {_when(e['acted_at'])}): {e['note']}")
    return out


def _requester(requester: Any) -> str:
    if requester is None:
        return "not recorded"
    role = getattr(requester, "role", None)
    role = getattr(role, "value", role)
    return f"{requester.name}" + (f" ({role})" if role else "")


def referral_summary(rules: RuleSet, detail: dict[str, Any], doses: pd.DataFrame, regimens: pd.DataFrame,
                     *, now: datetime, requester: Any = None) -> str:
    """A plain-text request: patient, cancer, regimen and treatment by the report, red flags, tier,
    what is asked and by when, who asks and the nursing notes. ``detail`` is
    :func:`dashboard.queue.report_detail`; ``requester`` the signed-in user (name and role)."""
    tier = detail["tier"]
    t = rules.tier_by_id[tier]
    x = detail["explained"]
    flags = detail["red_flag_words"] or ["none reported"]  # composed with the detail (queue.report_detail)
    respond_by = detail["reported_at"] + pd.Timedelta(minutes=t.respond_within_minutes)
    record = [w for k, w in (("bone_metastases", "known bone metastases"), ("osteoporosis", "osteoporosis"),
                             ("long_term_steroids", "long-term steroids"), ("low_platelets", "low platelets"))
              if detail.get(k)]
    notes = nursing_notes(detail)
    lines = [
        f"BACK-PAIN REFERRAL / IMAGING REQUEST: {detail['patient_name']}",
        "",
        f"Patient: {detail['patient_name']}, {mrn_text(detail.get('mrn'))}, "
        f"{born_text(detail.get('date_of_birth'), detail.get('age'))}, {detail.get('sex') or 'sex not recorded'}",
        f"Cancer: {detail['cancer_type']}" + "".join(f"; {w}" for w in record),
        f"Regimen: {_regimen(regimens, detail['reported_at'])}",
        "Last doses and courses before the report: " + _last_doses(doses, detail["reported_at"]),
        "",
        f"REPORT {detail['report_id']} ({_when(detail['reported_at'])}, {detail['source']})",
        f"- Pain {detail['pain_score']}/10; " + "; ".join(report_answers(detail)),
        f"- Red flags: {', '.join(flags)}",
        f"- Tier: {t.label.upper()} ({', '.join(detail['rule_ids'])}); respond by {_when(respond_by)}"
        + (f" (overridden from {detail['triage_tier']})" if detail.get("override_tier") else ""),
        "- Leading causes: " + (", ".join(x["leading"]) or x["leading_note"]),
        "- Also considered: " + (", ".join(x["also_considered"]) or "none"),
        "- Drug effects: " + ("; ".join(x["drug_effects"]) or "none fits the report's timing"),
        f"- {x['recent_sact']}",
        *[f"- {f}" for f in x["facts"]],
        "",
        "REQUESTED",
        *([f"- Imaging, {guidance_line_text(line)}" for line in x["imaging"]] or ["- Imaging: none"]),
        *[f"- Referral / action, {guidance_line_text(line)}" for line in x["referral"]],
        *[f"- Note for the team: {n}" for n in x.get("staff_notes", [])],
        "",
        "NURSING NOTES",
        *([f"- {n}" for n in notes] or ["- none recorded"]),
        "",
        "ADVICE GIVEN TO THE PATIENT",
        *[f"- {a}" for a in x["advice"]],
        "",
        f"Requested by: {_requester(requester)}",
        f"Rules version {detail['rules_version']}; generated {_when(now)}.",
    ]
    return "\n".join(lines) + "\n"
