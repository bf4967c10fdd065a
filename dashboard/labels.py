"""Words for codes: report fields, actions, outcomes, escalation targets, tiers.

Tier and cause names come from the rules (``rules/tiers.yaml``, ``rules/guidance.yaml``); these are
the product's own words for everything else.
"""

from __future__ import annotations

from typing import Any

FLAG_LABELS: dict[str, str] = {
    "leg_weakness": "leg weakness",
    "difficulty_walking": "difficulty walking",
    "leg_numbness": "new numbness or tingling in the legs or buttocks",
    "saddle_numbness": "numbness in the bottom or genitals (saddle)",
    "bladder_or_bowel_change": "bladder or bowel change",
    "radiating_pain": "radiating pain",
    "worse_at_night": "worse at night",
    "worse_on_straining": "worse on straining",
    "worse_on_movement": "worse on movement",
    "localised_tenderness": "localised tenderness",
    "after_minor_strain": "after a minor strain",
    "uncontrolled_by_analgesia": "not controlled by analgesia",
    "hand_foot_tingling": "hand / foot tingling",
    "confusion_or_drowsiness": "new confusion or drowsiness",
    "thirst_or_polyuria": "very thirsty or passing much more urine",
    "rigors": "rigors",
    "feels_unwell": "feels unwell",
}
# The same questions as a nurse asks them on the phone (the forms' checkboxes).
FLAG_QUESTIONS: dict[str, str] = {
    "leg_weakness": "Any new weakness in your legs?",
    "difficulty_walking": "Any trouble walking, or walking differently?",
    "leg_numbness": "Any new numbness or tingling in your legs or buttocks?",
    "saddle_numbness": "Any numbness in your bottom or genitals?",
    "bladder_or_bowel_change": "Any new trouble passing urine, or loss of bladder or bowel control?",
    "radiating_pain": "Does the pain shoot down a leg or round your body like a band?",
    "worse_at_night": "Is it worse at night, or does it wake you?",
    "worse_on_straining": "Is it worse when you cough, sneeze or strain?",
    "worse_on_movement": "Is it worse when you move?",
    "localised_tenderness": "Is one spot on your spine tender to touch?",
    "after_minor_strain": "Did it start after a minor strain, lift or fall?",
    "uncontrolled_by_analgesia": "Is it not controlled by your regular painkillers?",
    "hand_foot_tingling": "Any tingling or numbness in your hands and feet?",
    "confusion_or_drowsiness": "Any new confusion, or are you unusually drowsy?",
    "thirst_or_polyuria": "Are you very thirsty, or passing much more urine than usual?",
    "rigors": "Any shivering or shaking attacks?",
    "feels_unwell": "Do you feel generally unwell?",
}
# The answers to a red-flag question on the phone: "could not ask" counts as yes for the triage and
# is recorded as not asked.
FLAG_ANSWERS: dict[str, str] = {"yes": "Yes", "no": "No", "unasked": "Could not ask"}


def flag_answers(answers: dict[str, str | None]) -> tuple[dict[str, bool], list[str], list[str]]:
    """The phone form's answers as the report's flags (could not ask = yes), the fields not asked,
    and the questions not answered yet (in words)."""
    flags = {f: a in ("yes", "unasked") for f, a in answers.items()}
    unasked = [f for f, a in answers.items() if a == "unasked"]
    missing = [FLAG_QUESTIONS[f] for f, a in answers.items() if a is None]
    return flags, unasked, missing


# The questions grouped as the phone form asks them.
FLAG_GROUPS: dict[str, list[str]] = {
    "Neurology (cord compression)": ["leg_weakness", "difficulty_walking", "leg_numbness", "saddle_numbness",
                                     "bladder_or_bowel_change", "radiating_pain"],
    "Infection and calcium": ["rigors", "feels_unwell", "confusion_or_drowsiness", "thirst_or_polyuria"],
    "Spine and fracture": ["worse_at_night", "worse_on_straining", "worse_on_movement", "localised_tenderness",
                           "after_minor_strain"],
    "Other": ["uncontrolled_by_analgesia", "hand_foot_tingling"],
}
PAIN_PATTERN_QUESTION = "Is this your usual pain, or new or different?"
PAIN_PATTERN_LABELS: dict[str, str] = {
    "new": "New pain",
    "changed": "Different from my usual pain",
    "usual": "My usual pain, no different",
    "unsure": "Not sure (read as new pain)",
}
ONSET_QUESTION = "Did it come on suddenly, or gradually?"
ONSET_LABELS: dict[str, str] = {"sudden": "Suddenly", "gradual": "Gradually", "unsure": "Not sure"}
UNSURE = "unsure"
# The report's other questions, as the phone form and Backline's FHIR questionnaire ask them.
PAIN_SCORE_QUESTION = "Pain score (0-10)"
TREND_QUESTION = "Getting better, the same, or worse?"
TREND_LABELS: dict[str, str] = {"improving": "Getting better", "stable": "The same", "worsening": "Getting worse"}
LOCATION_QUESTION = "Where in the back?"
LOCATION_LABELS: dict[str, str] = {"cervical": "Neck (cervical)", "thoracic": "Upper or middle back (thoracic)",
                                   "lumbar": "Lower back (lumbar)", "sacral": "Bottom of the spine (sacral)"}
DURATION_QUESTION = "For how many days?"
TEMPERATURE_QUESTION = "Temperature °C (if taken)"


def answer(choice: str | None) -> str | None:
    """A form's choice as the contract's value: "not sure" is unknown (null)."""
    return None if choice in (None, UNSURE) else choice


# The order a nurse reads them in (the phone form's order): neurology first, then infection, then the rest.
RED_FLAG_ORDER = [flag for group in FLAG_GROUPS.values() for flag in group]
ACTION_LABELS = {
    "acknowledge": "Acknowledged",
    "call_back": "Call-back",
    "escalate": "Escalated",
    "resolve": "Resolved",
    "override": "Tier overridden",
    "note": "Note",
    "retriaged": "Re-triaged",
    "take": "Taken",
    "release": "Released",
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


def _yes(value: Any) -> bool:
    """True for a yes: Python's True or numpy's (a value read from a frame); never for null."""
    return value is True or (getattr(value, "dtype", None) == bool and bool(value))


def red_flags(report: dict[str, Any], *, fever_c: float = 37.5, low_c: float = 36.0) -> list[str]:
    """The red flags present in a report, in reading order, in words."""
    out = [FLAG_LABELS[f] for f in RED_FLAG_ORDER if _yes(report.get(f))]
    t = report.get("temperature_c")
    if t is not None and t == t and (t >= fever_c or t <= low_c):  # t == t: not NaN
        out.insert(0, f"temperature {t:.1f} °C")
    if report.get("trend") == "worsening":
        out.append("worsening")
    if report.get("location") in ("thoracic", "cervical"):
        out.append(f"{report['location']} pain")
    if report.get("onset") == "sudden" and not _yes(report.get("after_minor_strain")):
        out.append("sudden onset")
    return out


def report_answers(report: dict[str, Any]) -> list[str]:
    """The report's answers other than the yes/no flags, in words ("not given" when unanswered)."""
    pattern = report.get("pain_pattern")
    duration = report.get("duration_days")
    known = duration is not None and duration == duration  # not NaN
    t = report.get("temperature_c")
    temperature = [f"temperature {t:.1f} °C"] if t is not None and t == t else ["no temperature taken"]
    return [
        f"{report.get('location') or 'site not given'}",
        f"{report.get('trend') or 'trend not given'}",
        f"onset {report.get('onset') or 'not given'}",
        ("usual pain" if pattern == "usual" else f"{pattern} pain" if pattern else "usual pain? not given (read as new)"),
        (f"for {int(duration)} day{'s' if int(duration) != 1 else ''}" if known else "duration not given"),
        *temperature,
    ]


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
