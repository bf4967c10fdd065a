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
