"""The rules in force as tables people read: rules, windows, drugs, thresholds."""

from __future__ import annotations

import pandas as pd
import yaml

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
    return pd.DataFrame([{
        "Effect": rules.cause_label(e.cause),
        "Drugs": ", ".join(e.drugs),
        "Window (days after a dose)": f"{e.window.start_day}-{e.window.end_day}" if e.window.end_day is not None
        else f"{e.window.start_day} onwards",
        "Explains pain as an expected effect": "yes" if e.explains_back_pain else "no (a soon rule acts on it)",
        "Note": e.note,
        "Sources": "; ".join(rules.source_titles(e.source)),
    } for e in rules.effects])


def drug_table(rules: RuleSet) -> pd.DataFrame:
    return pd.DataFrame([{
        "Drug": d.name,
        "Class": rules.drug_classes[d.drug_class].label,
        "SACT": "yes" if rules.drug_classes[d.drug_class].sact else "no",
        "Neurotoxic": "yes" if d.neurotoxic else "no",
        "Given": d.route.replace("_", " "),
        "Also known as": ", ".join(d.synonyms),
    } for d in rules.drugs])


def parameter_table(rules: RuleSet) -> pd.DataFrame:
    return pd.DataFrame([{
        "Threshold": name,
        "Value": str(p.value),
        "Unit": p.unit,
        "Meaning": p.description,
        "Alternatives kept": "; ".join(f"{a.value} ({a.note})" for a in p.alternatives) or "-",
        "Sources": "; ".join(rules.source_titles(p.source)),
    } for name, p in rules.parameters.items()])
