"""The referral / imaging request summary for a report, as a document to copy or download.

It says what the queue's detail says, from the same composition (:func:`dashboard.queue.explain`,
itself :func:`dashboard.guidance.guidance_for`): the leading causes and their imaging and referral
lines with their times, the causes also considered, the drug effects and what made SACT recent.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pandas as pd

from dashboard.labels import red_flags, report_answers
from dashboard.models import REPORT_FLAGS
from dashboard.queue import guidance_line_text
from dashboard.rules import RuleSet


def _when(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "unknown"
    if isinstance(value, (datetime, pd.Timestamp)):
        return value.strftime("%d %b %Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d %b %Y")
    return str(value)


def _last_doses(rules: RuleSet, doses: pd.DataFrame) -> str:
    if doses.empty:
        return "none recorded"
    last = doses.sort_values("given_at").groupby("drug").tail(1).sort_values("given_at", ascending=False).head(6)
    parts = []
    for r in last.itertuples():
        course = bool(getattr(r, "is_course", False))
        stopped = getattr(r, "stopped_at", None)
        if course:
            parts.append(f"{r.drug} from {_when(r.given_at)}, " + ("running" if stopped is None or pd.isna(stopped)
                                                                   else f"stopped {_when(stopped)}"))
        else:
            parts.append(f"{r.drug} {_when(r.given_at)}")
    return "; ".join(parts)


def referral_summary(rules: RuleSet, detail: dict[str, Any], doses: pd.DataFrame, regimens: pd.DataFrame,
                     *, now: datetime) -> str:
    """A plain-text (Markdown) request: patient, cancer, regimen and last doses, red flags, tier,
    what is asked and by when. ``detail`` is :func:`dashboard.queue.report_detail`."""
    tier = detail["tier"]
    t = rules.tier_by_id[tier]
    x = detail["explained"]
    report = {k: detail.get(k) for k in (*REPORT_FLAGS, "temperature_c", "trend", "location", "onset")}
    flags = red_flags(report, fever_c=rules.parameter("neutropenic_fever_c"),
                      low_c=rules.parameter("neutropenic_low_temperature_c")) or ["none reported"]
    respond_by = detail["reported_at"] + pd.Timedelta(minutes=t.respond_within_minutes)
    current = regimens.sort_values("start_date").iloc[-1] if not regimens.empty else None
    record = [w for k, w in (("bone_metastases", "known bone metastases"), ("osteoporosis", "osteoporosis"),
                             ("long_term_steroids", "long-term steroids"), ("low_platelets", "low platelets"))
              if detail.get(k)]
    lines = [
        f"# Back-pain referral / imaging request: {detail['patient_name']}",
        "",
        f"- Patient: {detail['patient_name']}, MRN {detail['mrn']}, born {_when(detail.get('date_of_birth'))}, "
        f"{detail.get('sex') or 'sex not recorded'}",
        f"- Cancer: {detail['cancer_type']}" + "".join(f"; {w}" for w in record),
        f"- Regimen: {current['name']} (from {_when(current['start_date'])})" if current is not None else "- Regimen: none recorded",
        "- Last doses and courses: " + _last_doses(rules, doses),
        "",
        f"## Report {detail['report_id']} ({_when(detail['reported_at'])}, {detail['source']})",
        f"- Pain {detail['pain_score']}/10; " + "; ".join(report_answers(detail)),
        f"- Red flags: {', '.join(flags)}",
        f"- Tier: **{t.label.upper()}** ({', '.join(detail['rule_ids'])}); respond by {_when(respond_by)}"
        + (f" (overridden from {detail['triage_tier']})" if detail.get("override_tier") else ""),
        "- Leading causes: " + (", ".join(x["leading"]) or x["leading_note"]),
        "- Also considered: " + (", ".join(x["also_considered"]) or "none"),
        "- Drug effects: " + ("; ".join(x["drug_effects"]) or "none fits the report's timing"),
        f"- {x['recent_sact']}",
        *[f"- {f}" for f in x["facts"]],
        "",
        "## Requested",
        *([f"- Imaging, {guidance_line_text(line)}" for line in x["imaging"]] or ["- Imaging: none"]),
        *[f"- Referral / action, {guidance_line_text(line)}" for line in x["referral"]],
        "",
        "## Advice given to the patient",
        *[f"- {a}" for a in x["advice"]],
        "",
        f"Rules version {detail['rules_version']}; generated {_when(now)}.",
    ]
    return "\n".join(lines) + "\n"
