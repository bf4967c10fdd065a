"""The referral / imaging request summary for a report, as a document to copy or download."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pandas as pd

from dashboard.labels import red_flags
from dashboard.models import REPORT_FLAGS
from dashboard.rules import RuleSet
from dashboard.timeline import window_position


def _when(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "unknown"
    if isinstance(value, (datetime, pd.Timestamp)):
        return value.strftime("%d %b %Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d %b %Y")
    return str(value)


def referral_summary(rules: RuleSet, detail: dict[str, Any], doses: pd.DataFrame, regimens: pd.DataFrame,
                     *, now: datetime) -> str:
    """A plain-text (Markdown) request: patient, cancer, regimen and last doses, red flags, tier,
    what is asked and by when. ``detail`` is :func:`dashboard.queue.report_detail`."""
    tier = detail["tier"]
    t = rules.tier_by_id[tier]
    report = {k: detail.get(k) for k in (*REPORT_FLAGS, "temperature_c", "trend", "location", "onset")}
    flags = red_flags(report, fever_c=rules.parameter("neutropenic_fever_c"),
                      low_c=rules.parameter("neutropenic_low_temperature_c")) or ["none reported"]
    causes = [rules.cause_label(c) for c in detail["causes"]] or ["no specific cause suspected"]
    respond_by = detail["reported_at"] + pd.Timedelta(minutes=t.respond_within_minutes)
    current = regimens.sort_values("start_date").iloc[-1] if not regimens.empty else None
    last = doses.sort_values("given_at").groupby("drug").tail(1).sort_values("given_at", ascending=False).head(6)
    lines = [
        f"# Back-pain referral / imaging request: {detail['patient_name']}",
        "",
        f"- Patient: {detail['patient_name']}, MRN {detail['mrn']}, born {_when(detail.get('date_of_birth'))}, "
        f"{detail.get('sex') or 'sex not recorded'}",
        f"- Cancer: {detail['cancer_type']}"
        + ("; known bone metastases" if detail.get("bone_metastases") else "")
        + ("; osteoporosis" if detail.get("osteoporosis") else "")
        + ("; long-term steroids" if detail.get("long_term_steroids") else ""),
        f"- Regimen: {current['name']} (from {_when(current['start_date'])})" if current is not None else "- Regimen: none recorded",
        "- Last doses: " + ("; ".join(f"{r.drug} {_when(r.given_at)}" for r in last.itertuples()) or "none recorded"),
        "",
        f"## Report {detail['report_id']} ({_when(detail['reported_at'])}, {detail['source']})",
        f"- Pain {detail['pain_score']}/10, {detail.get('location') or 'site not given'}, "
        f"{detail.get('trend') or 'trend not given'}, onset {detail.get('onset') or 'not given'}",
        f"- Red flags: {', '.join(flags)}",
        f"- Tier: **{t.label.upper()}** ({', '.join(detail['rule_ids'])}); respond by {_when(respond_by)}",
        f"- Suspected: {', '.join(causes)}",
        f"- Against the drug windows: {window_position(rules, list(detail.get('links') or []))}",
        "",
        "## Requested",
        *[f"- Imaging: {x}" for x in detail["imaging"]],
        *[f"- Referral / action: {x}" for x in detail["referral"]],
        "",
        f"Rules version {detail['rules_version']}; generated {_when(now)}.",
    ]
    return "\n".join(lines) + "\n"
