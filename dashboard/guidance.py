"""Imaging, referral and advice for a triaged report, straight from ``rules/guidance.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from dashboard.rules import RuleSet


@dataclass(frozen=True)
class Guidance:
    imaging: list[str]
    referral: list[str]
    advice: list[str]


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


@lru_cache(maxsize=4096)
def guidance_for(
    rules: RuleSet, tier: str, causes: tuple[str, ...], unrecognised: tuple[str, ...] = ()
) -> Guidance:
    """What to image, whom to refer to and what to advise, for a tier and its suspected causes.

    The tier's action comes first; then each cause's items in order of seriousness; with no
    cause, the default guidance. Every report ends with the same safety net.
    """
    g = rules.guidance
    entries = [g.causes[c] for c in causes] or [g.default]
    imaging = _unique([item for e in entries for item in e.imaging])
    referral = _unique([rules.tier_by_id[tier].action, *[item for e in entries for item in e.referral]])
    advice = [item for e in entries for item in e.advice]
    if unrecognised:
        names = ", ".join(unrecognised)
        advice.append(
            f"Unrecognised drug(s): {names}. Not used by the rules: confirm what they are; if any is "
            "systemic anticancer therapy, triage again with it named (possible neutropenic sepsis)."
        )
    advice += [g.safety_net.now, g.safety_net.within_24_hours]
    return Guidance(imaging=imaging, referral=referral, advice=_unique(advice))


def guidance_cards(rules: RuleSet) -> list[dict]:
    """Imaging, referral and advice per suspected cause, with what suggests it and the sources."""
    suggested_by: dict[str, list[str]] = {}
    for r in rules.rules:
        if r.cause:
            suggested_by.setdefault(r.cause, []).append(f"{r.id} ({r.tier})")
    for e in rules.effects:
        if e.explains_back_pain:
            suggested_by.setdefault(e.cause, []).append("its drug window")
    cards = []
    for code, g in [*rules.guidance.causes.items(), ("", rules.guidance.default)]:
        cards.append({
            "cause": code,
            "label": g.label,
            "suggested_by": ", ".join(dict.fromkeys(suggested_by.get(code, []))) or "no rule (the default)",
            "imaging": list(g.imaging),
            "referral": list(g.referral),
            "advice": list(g.advice),
            "sources": "; ".join(rules.source_titles(g.source)),
        })
    return cards


def red_flag_checklist(rules: RuleSet) -> dict[str, list[str]]:
    """The questions to ask, grouped by the emergency and urgent rules that act on them."""
    from dashboard.labels import FLAG_LABELS

    fever = rules.parameter("neutropenic_fever_c")
    low = rules.parameter("neutropenic_low_temperature_c")
    days = rules.parameter("sact_lookback_days")
    return {
        f"Cord or cauda equina compression ({rules.rule_by_id['E1'].tier})": [
            FLAG_LABELS[f].capitalize() for f in
            ("leg_weakness", "difficulty_walking", "leg_numbness", "bladder_or_bowel_change", "radiating_pain")],
        f"Neutropenic sepsis within {days} days of SACT ({rules.rule_by_id['E2'].tier})": [
            f"Temperature {fever} °C or above", f"Temperature {low} °C or below", "Rigors (shivering fits)",
            "Feeling generally unwell"],
        f"Spinal metastases ({rules.rule_by_id['U1'].tier})": [
            "Thoracic or cervical pain", "Worsening pain", "Pain at night that disturbs sleep",
            "Worse on coughing, sneezing or straining", "Worse on movement (mechanical)", "Localised tenderness"],
        f"Fracture ({rules.rule_by_id['U4'].tier})": [
            "Sudden onset after a minor strain or fall", "Sudden onset with osteoporosis, long-term steroids or an "
            "aromatase inhibitor", "Any back pain with bone metastases or myeloma (U3)"],
        f"Severe pain ({rules.rule_by_id['U2'].tier})": [
            f"Pain score {rules.parameter('severe_pain_score')} or more", "Not controlled by regular analgesia"],
    }
