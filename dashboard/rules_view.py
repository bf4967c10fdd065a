"""The rules in force as tables people read: rules, windows, drugs, cancer types, thresholds; and the
impact of changed rules on the open reports, before they are applied."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import yaml

from dashboard.db import Database
from dashboard.retriage import RetriageStats, preview_changes
from dashboard.rules import RuleSet


def rule_table(rules: RuleSet) -> pd.DataFrame:
    return pd.DataFrame([{
        "Rule": r.id,
        "Tier": r.tier,
        "Title": r.title,
        "Condition": r.condition,
        "Suggests": rules.cause_label(r.cause) if r.cause else "-",
        "Rationale": r.rationale,
        "Sources": "; ".join(rules.source_titles(r.source)),
        "Machine condition": yaml.safe_dump(r.model_dump(mode="json", by_alias=True)["when"], sort_keys=False,
                                            default_flow_style=None, width=100).strip(),
    } for r in rules.rules])


def window_table(rules: RuleSet) -> pd.DataFrame:
    """Each drug effect: its onset window in calendar days after a dose (day 0 is the dose's date)."""
    rows = []
    for e in rules.effects:
        w = e.onset_window
        rows.append({
            "Effect": rules.cause_label(e.cause),
            "Drugs": ", ".join(e.drugs),
            "Onset (days after a dose)": f"{w.start_day}-{w.end_day}" if w.end_day is not None else f"{w.start_day} onwards",
            "Lasts at most": f"{e.lasts_at_most_days} days" if e.lasts_at_most_days is not None else "-",
            "Back-pain effect": "yes" if e.back_pain else "no (a soon rule acts on it)",
            "Lowers moderate pain": "yes, when its timing explains the pain (R2)" if e.lowers_moderate_pain else "no",
            "Note": e.note,
            "Sources": "; ".join(rules.source_titles(e.source)),
        })
    return pd.DataFrame(rows)


def drug_table(rules: RuleSet) -> pd.DataFrame:
    return pd.DataFrame([{
        "Drug": d.name,
        "Class": rules.drug_classes[d.drug_class].label,
        "SACT": "yes" if rules.drug_classes[d.drug_class].sact else "no",
        "Neurotoxic": "yes" if d.neurotoxic else "no",
        "Taken": "continuously (a course, start to stop)" if d.continuous else "as doses",
        "Also known as": ", ".join(d.synonyms),
    } for d in rules.drugs])


def cancer_table(rules: RuleSet) -> pd.DataFrame:
    return pd.DataFrame([{"Code": code, "Cancer type": ct.label, "Also accepted": ", ".join(ct.synonyms)}
                         for code, ct in rules.cancer_types.items()])


def parameter_table(rules: RuleSet) -> pd.DataFrame:
    return pd.DataFrame([{
        "Threshold": name,
        "Value": str(p.value),
        "Unit": p.unit,
        "Meaning": p.description,
        "Alternatives kept": "; ".join(f"{a.value} ({a.note})" for a in p.alternatives) or "-",
        "Sources": "; ".join(rules.source_titles(p.source)),
    } for name, p in rules.parameters.items()])


# --------------------------------------------------------------------------- impact of changed rules


@dataclass(frozen=True)
class Impact:
    """What applying ``rules_version`` would change for the open reports (nothing is written)."""

    rules_version: str
    open_reports: int
    moves: pd.DataFrame  # the open reports whose tier would move, with words
    transitions: pd.DataFrame  # from, to, reports

    @property
    def count(self) -> int:
        return len(self.moves)


def rules_impact(db: Database, rules: RuleSet) -> Impact:
    """The impact of ``rules`` on the stored open reports, computed by the engine without writing."""
    with db.connect() as con:
        moves = preview_changes(con, rules)
        total = con.execute("SELECT count(*) FROM open_reports").fetchall()[0][0]
        names = con.execute(
            "SELECT o.report_id, p.name, p.mrn, o.panel_id FROM open_reports o JOIN patients p USING (patient_id)"
            " WHERE o.report_id IN (SELECT unnest($ids::VARCHAR[]))", {"ids": moves["report_id"].tolist()}).df()
    moves = moves.merge(names, on="report_id", how="left")
    rank = rules.tier_rank
    moves["direction"] = ["up" if rank.get(a, 0) > rank.get(b, 0) else "down"
                          for b, a in zip(moves["tier_before"], moves["tier_after"])]
    transitions = (moves.groupby(["tier_before", "tier_after"], sort=False).size().reset_index(name="reports")
                   if not moves.empty else pd.DataFrame(columns=["tier_before", "tier_after", "reports"]))
    if not transitions.empty:
        transitions = transitions.assign(
            _b=transitions["tier_before"].map(rank), _a=transitions["tier_after"].map(rank)
        ).sort_values(["_b", "_a"], ascending=False).drop(columns=["_b", "_a"]).reset_index(drop=True)
    return Impact(rules.version, int(total), moves.reset_index(drop=True), transitions)


def impact_table(impact: Impact) -> pd.DataFrame:
    """The reports that would move, as a table of words."""
    m = impact.moves
    return pd.DataFrame({
        "Report": m["report_id"],
        "Patient": (m["name"].fillna("") + " · " + m["mrn"].fillna("")) if not m.empty else pd.Series(dtype=str),
        "Panel": m["panel_id"] if not m.empty else pd.Series(dtype=str),
        "Reported": m["reported_at"],
        "Tier now": m["tier_before"],
        "Tier after": m["tier_after"],
        "Rules now": [", ".join(r) for r in m["rules_before"]],
        "Rules after": [", ".join(r) for r in m["rule_ids"]],
    })


def transition_lines(impact: Impact) -> list[str]:
    return [f"{r.tier_before} → {r.tier_after}: {r.reports} report{'s' if r.reports != 1 else ''}"
            for r in impact.transitions.itertuples()]


class RulesChanged(Exception):
    """The rules on disk are not the ones whose impact was previewed."""


def apply_rules(db: Database, directory, expected_version: str, now) -> tuple[RuleSet, RetriageStats]:
    """Apply exactly the previewed rules: load them again, refuse if they are not the previewed version,
    and re-triage every stored report with them in one transaction (open reports whose tier moves get a
    'retriaged' history entry)."""
    from dashboard.retriage import retriage
    from dashboard.rules import load_rules

    fresh = load_rules(directory)
    if fresh.version != expected_version:
        raise RulesChanged(f"the rules on disk are now version {fresh.version}, not the previewed {expected_version}")
    stats = db.transaction(lambda con: retriage(con, fresh, now=now))
    return fresh, stats
