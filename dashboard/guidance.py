"""Imaging, referral and advice for a triaged report, composed from ``rules/guidance.yaml``.

One composition serves the contract's output, the queue's detail and the referral summary: the
guidance of the leading causes (or the tier's own when no leading rule names a cause), one line per
topic at its most urgent time, most urgent first, no analgesic advice beside an emergency, and the
other causes listed as "also considered" by name. What is read to the patient (``advice``: one line
per topic, safety net last) and what is for the team (``staff_notes``) are separate lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from dashboard.rules import AdviceLine, GuidanceLine, RuleSet, TierGuidance


@dataclass(frozen=True)
class Line:
    topic: str
    within_hours: int
    text: str
    cause: str | None  # None: the tier's own guidance or a note about the medications


@dataclass(frozen=True)
class Note:
    text: str
    cause: str | None  # None: the tier's own guidance
    source: tuple[str, ...]  # source keys: the note's own, else its cause's (or tier's)


@dataclass(frozen=True)
class Guidance:
    imaging: list[Line]
    referral: list[Line]
    advice: list[str]  # read to the patient: one line per topic, safety net last
    also_considered: list[str]  # cause codes
    staff_notes: list[Note] = field(default_factory=list)  # for the team, never read to the patient

    @property
    def staff_notes_text(self) -> list[str]:
        return [note.text for note in self.staff_notes]

    @property
    def imaging_text(self) -> list[str]:
        return [line.text for line in self.imaging]

    @property
    def referral_text(self) -> list[str]:
        return [line.text for line in self.referral]


def _compose(sources: list[tuple[str | None, TierGuidance]], kind: str, leading_rules: set[str]) -> list[Line]:
    """One line per topic, at its most urgent time (the first named wins a tie), most urgent first."""
    best: dict[str, tuple[GuidanceLine, str | None, int]] = {}
    order = 0
    for cause, g in sources:
        for line in getattr(g, kind):
            if line.only_for_rules and not leading_rules.intersection(line.only_for_rules):
                continue
            held = best.get(line.topic)
            if held is None or line.within_hours < held[0].within_hours:
                best[line.topic] = (line, cause, order)
            order += 1
    ranked = sorted(best.values(), key=lambda t: (not t[0].first, t[0].within_hours, t[2]))
    return [Line(line.topic, line.within_hours, line.text, cause) for line, cause, _ in ranked]


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _one_per_topic(lines: list[AdviceLine]) -> list[str]:
    """The first line of each topic, in order (a repeated topic is said once)."""
    said: dict[str, str] = {}
    for line in lines:
        said.setdefault(line.topic, line.text)
    return list(said.values())


@lru_cache(maxsize=4096)
def guidance_for(
    rules: RuleSet,
    tier: str,
    rule_ids: tuple[str, ...],
    leading: tuple[str, ...],
    causes: tuple[str, ...],
    unrecognised: tuple[str, ...] = (),
) -> Guidance:
    """What to image, whom to refer to and what to advise for a triaged report."""
    g = rules.guidance
    leading_rules = {r for r in rule_ids if rules.rule_by_id[r].tier == tier}
    sources: list[tuple[str | None, TierGuidance]] = [(c, g.causes[c]) for c in leading]
    if not sources:
        sources = [(None, g.tier_defaults[tier])]
    imaging = _compose(sources, "imaging", leading_rules)
    referral = _compose(sources, "referral", leading_rules)
    if unrecognised:
        referral.append(Line(
            "medication_review", 24,
            f"Unrecognised drug(s): {', '.join(unrecognised)}. Counted as possible anticancer treatment for "
            "recent SACT; confirm what they are and triage again with them named.", None))
    emergency = rules.tier_rank[tier] == max(rules.tier_rank.values())
    # Each cause's own advice first, then analgesic advice (never beside an emergency): a topic the
    # first already covers ("do not take paracetamol") is not contradicted by a later line.
    lines = [a for _, s in sources for a in s.advice]
    if not emergency:
        lines += [a for _, s in sources for a in s.analgesic_advice]
    advice = _unique([*_one_per_topic(lines), g.safety_net.now, g.safety_net.within_24_hours])
    notes: dict[str, Note] = {}
    for cause, s in sources:
        for n in s.staff_notes:
            notes.setdefault(n.text, Note(n.text, cause, tuple(n.source or s.source)))
    also = [c for c in causes if c not in leading]
    return Guidance(imaging=imaging, referral=referral, advice=advice, also_considered=also,
                    staff_notes=list(notes.values()))


def guidance_cards(rules: RuleSet) -> list[dict]:
    """Imaging, referral and advice per suspected cause, with what suggests it and the sources."""
    suggested_by: dict[str, list[str]] = {}
    for r in rules.rules:
        if r.cause:
            suggested_by.setdefault(r.cause, []).append(f"{r.id} ({r.tier})")
        elif r.causes_from_drug_effects is not None:
            for e in rules.back_pain_effects:
                suggested_by.setdefault(e.cause, []).append(f"{r.id} ({r.tier})")
    for e in rules.back_pain_effects:
        suggested_by.setdefault(e.cause, []).append("its drug window")
    cards = []
    entries = [(code, g.label, g) for code, g in rules.guidance.causes.items()]
    entries += [("", f"No cause named: {rules.tier_by_id[t].label.lower()}", g)
                for t, g in rules.guidance.tier_defaults.items()]
    for code, label, g in entries:
        cards.append({
            "cause": code,
            "label": label,
            "suggested_by": ", ".join(dict.fromkeys(suggested_by.get(code, []))) or "a rule without a cause of its own",
            "imaging": [_timed(x) for x in g.imaging],
            # Staff notes sit with the referral and action lines (for the team), apart from the advice.
            "referral": [_timed(x) for x in g.referral] + [f"For staff: {n.text}" for n in g.staff_notes],
            "advice": [a.text for a in g.advice] + [f"{a.text} (not beside an emergency)" for a in g.analgesic_advice],
            "staff_notes": [n.text for n in g.staff_notes],
            "sources": "; ".join(rules.source_titles(g.source)),
        })
    return cards


def within_words(hours: int) -> str:
    """A guidance line's time in words: now, within N hours (up to a day), within N days or weeks."""
    if hours == 0:
        return "now"
    if hours <= 24:
        return f"within {hours} hour{'s' if hours != 1 else ''}"
    if hours % 168 == 0:
        weeks = hours // 168
        return f"within {weeks} week{'s' if weeks != 1 else ''}"
    if hours % 24 == 0:
        return f"within {hours // 24} days"
    return f"within {hours} hours"


def _timed(line: GuidanceLine) -> str:
    return f"{line.text} [{within_words(line.within_hours)}]"


def red_flag_checklist(rules: RuleSet) -> dict[str, list[str]]:
    """The questions behind each emergency and urgent rule, in the rules' own words."""
    top = sorted(rules.tier_rank.values())[-2:]
    return {f"{r.id} {r.title} ({r.tier})": [r.condition] for r in rules.rules if rules.tier_rank[r.tier] in top}
