"""Words for codes: report fields, actions, outcomes, escalation targets, tiers.

Tier and cause names come from the rules (``rules/tiers.yaml``, ``rules/guidance.yaml``); these are
the product's own words for everything else.
"""

from __future__ import annotations

from typing import Any

FLAG_LABELS: dict[str, str] = {
    "leg_weakness": "leg weakness",
    "difficulty_walking": "difficulty walking",
    "leg_numbness": "leg / saddle numbness",
    "bladder_or_bowel_change": "bladder or bowel change",
    "radiating_pain": "radiating pain",
    "worse_at_night": "worse at night",
    "worse_on_straining": "worse on straining",
    "worse_on_movement": "worse on movement",
    "localised_tenderness": "localised tenderness",
    "after_minor_strain": "after a minor strain",
    "uncontrolled_by_analgesia": "not controlled by analgesia",
    "hand_foot_tingling": "hand / foot tingling",
    "rigors": "rigors",
    "feels_unwell": "feels unwell",
}
# The order a nurse reads them in: neurology first, then infection, then the rest.
RED_FLAG_ORDER = [
    "leg_weakness", "difficulty_walking", "leg_numbness", "bladder_or_bowel_change", "radiating_pain",
    "rigors", "feels_unwell", "worse_at_night", "worse_on_straining", "worse_on_movement",
    "localised_tenderness", "after_minor_strain", "uncontrolled_by_analgesia", "hand_foot_tingling",
]
ACTION_LABELS = {
    "acknowledge": "Acknowledged",
    "call_back": "Call-back",
    "escalate": "Escalated",
    "resolve": "Resolved",
    "override": "Tier overridden",
    "note": "Note",
    "retriaged": "Re-triaged",
}
ESCALATION_LABELS = {
    "acute_oncology": "Acute oncology",
    "mscc_coordinator": "MSCC coordinator",
    "physician": "Physician",
    "emergency_services": "Emergency services (999)",
}
OUTCOME_LABELS = {
    "self_care_advice": "Self-care advice given",
    "analgesia_adjusted": "Analgesia adjusted",
    "clinic_review_booked": "Clinic review booked",
    "imaging_requested": "Imaging requested",
    "admitted": "Admitted",
    "referred_to_ed": "Sent to the emergency department",
    "referred_to_mscc": "Referred to the MSCC pathway",
    "no_further_action": "No further action",
    "other": "Other (see note)",
}
# Tier colours: light fills with dark text (WCAG AA contrast); the tier's word is always shown too.
TIER_COLOURS = {
    "emergency": ("#b3261e", "#fde7e5"),  # (strong, light)
    "urgent": ("#8a4b00", "#fff0d6"),
    "soon": ("#1f4e8c", "#e3edfa"),
    "routine": ("#2e6b34", "#e6f4e7"),
}
TIER_SYMBOLS = {"emergency": "▲▲", "urgent": "▲", "soon": "●", "routine": "○"}


def red_flags(report: dict[str, Any], *, fever_c: float = 37.5, low_c: float = 36.0) -> list[str]:
    """The red flags present in a report, in reading order, in words."""
    out = [FLAG_LABELS[f] for f in RED_FLAG_ORDER if report.get(f) is True]
    t = report.get("temperature_c")
    if t is not None and t == t and (t >= fever_c or t <= low_c):  # t == t: not NaN
        out.insert(0, f"temperature {t:.1f} °C")
    if report.get("trend") == "worsening":
        out.append("worsening")
    if report.get("location") in ("thoracic", "cervical"):
        out.append(f"{report['location']} pain")
    if report.get("onset") == "sudden" and not report.get("after_minor_strain"):
        out.append("sudden onset")
    return out


def target_text(minutes: int) -> str:
    """A response target in words: 15 min, 2 h, 72 h."""
    return f"{minutes // 60} h" if minutes >= 60 and minutes % 60 == 0 else f"{minutes} min"


def duration(minutes: float) -> str:
    """A short human duration: 45 min, 3 h 05 min, 2 d 4 h."""
    minutes = abs(int(round(minutes)))
    if minutes < 60:
        return f"{minutes} min"
    hours, mins = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {mins:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
