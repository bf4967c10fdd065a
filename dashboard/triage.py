"""The triage engine: the one implementation of the rules' semantics.

The rule set (``rules/``) is compiled into a single DuckDB query that evaluates every rule over
columns, batch first: a single report is a batch of one. The same query serves the command line
(``backline triage``), the report form and the what-if form in the app, and batch re-triage of a
whole database.

The query reads two relations:

* cases: ``case_id`` (unique per case), ``dose_key`` (joins the doses), ``report_id``,
  ``reported_at`` and the report and patient fields of the contract;
* doses: ``dose_key``, ``drug`` (any name or synonym), ``given_at`` (may be null), ``seq`` (order).

and yields one row per case: tier, rule ids, suspected causes, the doses that explain the pain
(``links``), the doses behind each dose fact (``evidence``) and unrecognised drug names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable

import duckdb
import pyarrow as pa

from dashboard.guidance import Guidance, guidance_for
from dashboard.models import PATIENT_FLAGS, REPORT_FLAGS, ReportIn, TriageCase
from dashboard.rules import (
    BIOSIMILAR_SUFFIX,
    DRUG_NAME_SQL,
    AllCond,
    AnyCond,
    FieldCond,
    NoRuleAboveCond,
    NotCond,
    RulesFiredCond,
    RuleSet,
    resolve_value,
    rule_order,
)

_ARROW_TYPES = {"pain_score": pa.int32(), "duration_days": pa.int32(), "temperature_c": pa.float64(),
                "reported_at": pa.timestamp("us")}
REPORT_COLUMNS = tuple(ReportIn.model_fields)
CASE_SCHEMA = pa.schema(
    [
        ("case_id", pa.string()),
        ("dose_key", pa.string()),
        ("report_id", pa.string()),
        ("cancer_type", pa.string()),
        *[(f, pa.bool_()) for f in PATIENT_FLAGS],
        *[(f, pa.bool_() if f in REPORT_FLAGS else _ARROW_TYPES.get(f, pa.string())) for f in REPORT_COLUMNS],
    ]
)
DOSE_SCHEMA = pa.schema(
    [
        ("dose_key", pa.string()),
        ("drug", pa.string()),
        ("given_at", pa.timestamp("us")),
        ("seq", pa.int64()),
    ]
)


def _lit(value: Any) -> str:
    """A SQL literal for a value from the validated rules (numbers and plain words only)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def _link(found: str, effect: Any, drug: str, given_at: str, day: str) -> str:
    """SQL for one link (the dose that explains the pain, by which window) when ``found`` holds."""
    end = "NULL" if effect.window.end_day is None else str(effect.window.end_day)
    return (f"CASE WHEN {found} THEN struct_pack(cause := {_lit(effect.cause)}, drug := {drug}, "
            f"given_at := {given_at}, day := {day}, start_day := {effect.window.start_day}::INTEGER, "
            f"end_day := {end}::INTEGER) END")


class _Compiler:
    def __init__(self, rules: RuleSet):
        self.rules = rules

    # ---- conditions -> SQL boolean expressions (never NULL)
    def cond(self, c: Any) -> str:
        rs = self.rules
        if isinstance(c, str):
            if c in rs.facts or c == "explained_by_drug_window":
                return f"f_{c}"
            return f"coalesce({c}, FALSE)"
        if isinstance(c, AnyCond):
            return "(" + " OR ".join(self.cond(x) for x in c.any) + ")"
        if isinstance(c, AllCond):
            return "(" + " AND ".join(self.cond(x) for x in c.all) + ")"
        if isinstance(c, NotCond):
            return f"(NOT {self.cond(c.not_)})"
        if isinstance(c, FieldCond):
            return f"coalesce({self.field(c)}, FALSE)"
        if isinstance(c, RulesFiredCond):
            count = " + ".join(f"r_{rid}::INTEGER" for rid in c.rules_fired)
            return f"(({count}) >= {c.at_least})"
        if isinstance(c, NoRuleAboveCond):
            floor = rs.tier_rank[c.no_rule_fired_above]
            above = [f"r_{r.id}" for r in rs.rules if rs.tier_rank[r.tier] > floor]
            return "(NOT (" + " OR ".join(above) + "))" if above else "TRUE"
        raise TypeError(f"not a condition: {c!r}")  # pragma: no cover

    def field(self, c: FieldCond) -> str:
        value = resolve_value(self.rules, c.value)
        col = c.field
        if c.op == "between":
            return f"({col} BETWEEN {_lit(value[0])} AND {_lit(value[1])})"
        if c.op == "in":
            return f"({col} IN ({', '.join(_lit(v) for v in value)}))"
        if c.op == "contains_any":
            norm = f"replace(lower({col}), '_', ' ')"
            return "(" + " OR ".join(f"contains({norm}, {_lit(v)})" for v in value) + ")"
        op = "=" if c.op == "==" else c.op
        return f"({col} {op} {_lit(value)})"

    # ---- dose facts and effect windows
    def selector(self, name: str) -> str:
        """Which doses a fact looks at (over the resolved dose columns)."""
        sel = self.rules.facts[name].doses
        parts = []
        if sel.sact is not None:
            parts.append(f"d_sact = {_lit(sel.sact)}")
        if sel.neurotoxic is not None:
            parts.append(f"d_neurotoxic = {_lit(sel.neurotoxic)}")
        if sel.drug_class is not None:
            parts.append(f"d_class = {_lit(sel.drug_class)}")
        if sel.drugs:
            parts.append(f"d_generic IN ({', '.join(_lit(d) for d in sel.drugs)})")
        return " AND ".join(parts)

    def sql(self, cases: str, doses: str, details: bool) -> str:
        """The whole triage query.

        Dose facts with an upper bound ("SACT in the last 42 days") are answered by an ASOF join:
        the latest qualifying dose at or before a bound computed from the report, then one date
        test on it. That is exact (if the latest dose that could qualify does not, no earlier one
        does) and touches each report once per fact instead of once per prior dose. Facts with only
        a lower bound ("ever given, at least 14 days ago") need the patient's first such dose.
        The back-pain windows, a few days long, are answered by spreading each dose over the days
        its window covers and joining reports to doses on (patient, onset day).

        With ``details``, the result also says which dose explains the pain (``links``) and which
        dose each fact rests on (``evidence``); batch re-triage leaves them out.
        """
        rs = self.rules
        drug_rows = ",\n    ".join(
            f"({_lit(key)}, {_lit(info.generic)}, {_lit(info.drug_class)}, {_lit(info.sact)}, {_lit(info.neurotoxic)})"
            for key, info in sorted(rs.drug_lookup.items())
        )
        ctes, bounds, joins, fact_cols, evidence = [], [], [], [], []
        asof_cols, asof_joins = [], []

        def as_of(bound: str, where: str) -> tuple[str, str]:
            """Register an as-of lookup; return SQL for the found dose's (drug, given_at)."""
            k = len(asof_joins)
            bounds.append(f"{bound} AS b{k}")
            # One row per patient and minute (the first drug by order given), so ties are decided
            # the same way every run.
            ctes.append(f"x{k} AS (SELECT kid, given_at, first(drug ORDER BY seq) AS drug FROM d "
                        f"WHERE given_at IS NOT NULL AND {where} GROUP BY kid, given_at)")
            asof_joins.append(f"ASOF LEFT JOIN x{k} ON x{k}.kid = n.kid AND n.b{k} >= x{k}.given_at")
            asof_cols.append(f"x{k}.drug AS x{k}_drug, x{k}.given_at AS x{k}_at")
            return f"a.x{k}_drug", f"a.x{k}_at"

        for i, (name, fact) in enumerate(rs.facts.items()):
            lo = fact.days_before_report.min
            hi = fact.days_before_report.max
            lo = int(resolve_value(rs, lo)) if lo is not None else 0
            if hi is None:
                # "Ever given, at least `lo` days before": the patient's first qualifying dose says it.
                ctes.append(
                    f"fd{i} AS (SELECT kid, min(given_at) AS given_at, first(drug ORDER BY given_at, seq) AS drug "
                    f"FROM d WHERE given_at IS NOT NULL AND {self.selector(name)} GROUP BY kid)"
                )
                joins.append(f"LEFT JOIN fd{i} ON fd{i}.kid = c.kid")
                drug, at = f"fd{i}.drug", f"fd{i}.given_at"
                days = f"date_diff('day', {at}::DATE, c.reported_at::DATE)"
                dated = f"({at} IS NOT NULL AND {at} <= c.reported_at AND {days} >= {lo})"
            else:
                # "Given between `lo` and `hi` days before": the latest dose on or before the
                # report's day minus `lo` says it.
                bound = "reported_at" if lo == 0 else f"(reported_at::DATE - {lo - 1})::TIMESTAMP - INTERVAL 1 MICROSECOND"
                drug, at = as_of(bound, self.selector(name))
                days = f"date_diff('day', {at}::DATE, c.reported_at::DATE)"
                dated = f"({at} IS NOT NULL AND {days} <= {int(resolve_value(rs, hi))})"
            if fact.unknown_date == "counts":
                ctes.append(
                    f"fu{i} AS (SELECT DISTINCT kid FROM d WHERE given_at IS NULL AND {self.selector(name)})"
                )
                joins.append(f"LEFT JOIN fu{i} ON fu{i}.kid = c.kid")
                fact_cols.append(f"({dated} OR fu{i}.kid IS NOT NULL) AS f_{name}")
            else:
                fact_cols.append(f"{dated} AS f_{name}")
            evidence.append(
                f"CASE WHEN {dated} THEN struct_pack(fact := {_lit(name)}, drug := {drug}, "
                f"given_at := {at}, days_before := {days}) END"
            )

        # Back-pain windows. A dose explains the pain when the onset lies from start_day to
        # end_day days after it, in real time (a window "0-7" closes 7 x 24 hours after the dose:
        # explaining pain away lowers a tier, so the window is read strictly). Bounded windows: each
        # dose spread over the calendar days its window touches, joined to the reports on (patient,
        # onset day), then the exact test; the latest dose (then the first given) explains.
        # Open-ended windows: as-of.
        windows = [e for e in rs.effects if e.explains_back_pain]
        bounded = [(j, e) for j, e in enumerate(windows) if e.window.end_day is not None]
        explained: dict[str, list[str]] = {}  # cause -> SQL booleans "a window of this cause explains it"
        links: list[str] = []
        if bounded:
            # (A CASE rather than a join to a VALUES list: grouping on columns that come from a
            # joined VALUES list trips an internal error in DuckDB 2.0.0.)
            effect_of = "CASE " + " ".join(
                f"WHEN d_generic IN ({', '.join(_lit(g) for g in e.drugs)}) THEN struct_pack(effect := {j}, "
                f"cause := {_lit(e.cause)}, start_day := {e.window.start_day}, end_day := {e.window.end_day})"
                for j, e in bounded
            ) + " END"
            ctes.append(f"""wx AS (
  SELECT kid, drug, given_at, seq, w.effect, w.cause, w.start_day, w.end_day,
         unnest(range(w.start_day, w.end_day + 2)) AS day
  FROM (SELECT kid, drug, given_at, seq, {effect_of} AS w FROM d WHERE given_at IS NOT NULL)
  WHERE w IS NOT NULL)""")
            hits = ",\n         ".join(
                f"bool_or(w.effect = {j}) AS w{j}" + (
                    f", arg_max(struct_pack(drug := w.drug, given_at := w.given_at, day := w.day::INTEGER), "
                    f"struct_pack(t := w.given_at, s := -w.seq)) FILTER (WHERE w.effect = {j}) AS h{j}"
                    if details else "")
                for j, _ in bounded
            )
            # One row per report with a hit: for each window, whether a dose covers the onset day and
            # (with details) the latest such dose, the first given at that minute.
            ctes.append(f"""wm AS (
  SELECT n.rid,
         {hits}
  FROM narrow n JOIN wx w ON w.kid = n.kid AND w.given_at::DATE + w.day::INTEGER = n.onset_day
                          AND w.given_at <= n.reported_at
                          AND n.onset_at >= w.given_at + to_days(w.start_day)
                          AND n.onset_at <= w.given_at + to_days(w.end_day)
  GROUP BY n.rid)""")
            joins.append("LEFT JOIN wm ON wm.rid = c.rid")
            for j, e in bounded:
                explained.setdefault(e.cause, []).append(f"coalesce(wm.w{j}, FALSE)")
                if details:
                    links.append(_link(f"wm.w{j}", e, f"wm.h{j}.drug", f"wm.h{j}.given_at", f"wm.h{j}.day"))
        for j, e in enumerate(windows):
            if e.window.end_day is not None:
                continue
            drug, at = as_of(
                f"least(reported_at, onset_at - to_days({e.window.start_day}))",
                f"d_generic IN ({', '.join(_lit(g) for g in e.drugs)})",
            )
            day = f"date_diff('day', {at}::DATE, c.onset_at::DATE)"
            explained.setdefault(e.cause, []).append(f"({at} IS NOT NULL)")
            if details:
                links.append(_link(f"{at} IS NOT NULL", e, drug, at, f"{day}::INTEGER"))
        if asof_joins:
            ctes.append(f"asof_found AS (SELECT n.rid, {', '.join(asof_cols)} FROM narrow n {' '.join(asof_joins)})")
            joins.insert(0, "LEFT JOIN asof_found a ON a.rid = c.rid")
        explained_cols = "".join(f"({' OR '.join(conds)}) AS x_{cause},\n    " for cause, conds in explained.items())
        any_explained = " OR ".join(f"x_{cause}" for cause in explained) or "FALSE"
        detail_cols = ""
        if details:
            links_sql = f"list_filter([{', '.join(links)}], lambda x: x IS NOT NULL)" if links else "[]"
            detail_cols = (f"{links_sql} AS links,\n    "
                           f"list_filter([{', '.join(evidence)}], lambda x: x IS NOT NULL) AS evidence,\n    ")
        # Aliases (f_*, r_*) differ from every column of the joined relations, so that a later
        # expression in the same SELECT reads the alias, never a column of an outer join.
        rule_cols = ",\n    ".join(f"coalesce({self.cond(r.when)}, FALSE) AS r_{r.id}" for r in rule_order(rs))
        rank = "greatest(" + ", ".join(
            f"CASE WHEN r_{r.id} THEN {rs.tier_rank[r.tier]} ELSE 0 END" for r in rs.rules
        ) + ")"
        tier_case = "CASE tier_rank " + " ".join(f"WHEN {rs.tier_rank[t]} THEN {_lit(t)}" for t in rs.tier_ids) + " END"
        rule_ids = "[" + ", ".join(f"CASE WHEN r_{r.id} THEN {_lit(r.id)} END" for r in rs.rules) + "]"
        cause_items = []
        for code in rs.cause_codes:
            conds = [f"r_{r.id}" for r in rs.rules if r.cause == code] + ([f"x_{code}"] if code in explained else [])
            if conds:  # a cause nothing can suggest is never listed
                cause_items.append(f"CASE WHEN {' OR '.join(conds)} THEN {_lit(code)} END")
        causes = "[" + ", ".join(cause_items) + "]"
        drug_key = DRUG_NAME_SQL.format(col="d.drug")
        narrow_cols = "".join(", " + b.split(" AS ")[-1] for b in bounds)
        sep = ",\n"
        return f"""
WITH
drug_names(name_key, d_generic, d_class, d_sact, d_neurotoxic) AS (VALUES
    {drug_rows}),
src AS (
  SELECT *, reported_at - to_days(coalesce(duration_days, 0)) AS onset_at FROM {cases} AS src_cases
),
-- Integer keys make the joins' sorts and hashes cheap.
keys AS (SELECT dose_key, row_number() OVER () AS kid FROM (SELECT DISTINCT dose_key FROM src)),
dose_rows AS (SELECT * FROM {doses} AS d WHERE d.drug IS NOT NULL),
-- Each distinct name is resolved once (a few hundred), not each of a million doses.
names AS (
  SELECT d.drug, coalesce(n.d_generic, b.d_generic) AS d_generic, coalesce(n.d_class, b.d_class) AS d_class,
         coalesce(n.d_sact, b.d_sact) AS d_sact, coalesce(n.d_neurotoxic, b.d_neurotoxic) AS d_neurotoxic
  FROM (SELECT drug, {drug_key} AS name_key FROM (SELECT DISTINCT drug FROM dose_rows) AS d) AS d
  LEFT JOIN drug_names n ON n.name_key = d.name_key
  LEFT JOIN drug_names b ON b.name_key = regexp_replace(d.name_key, '{BIOSIMILAR_SUFFIX}', '')
),
d AS (
  SELECT d.dose_key, keys.kid, d.drug, d.given_at, d.seq, n.d_generic, n.d_class, n.d_sact, n.d_neurotoxic
  FROM dose_rows AS d
  JOIN keys ON keys.dose_key = d.dose_key
  JOIN names n ON n.drug = d.drug
),
unknown AS (
  SELECT dose_key AS k, list(drug ORDER BY first_seq) AS unrecognised_drugs
  FROM (SELECT dose_key, drug, min(seq) AS first_seq FROM d WHERE d_generic IS NULL GROUP BY dose_key, drug)
  GROUP BY dose_key
),
c AS (
  SELECT src.*, keys.kid, row_number() OVER () AS rid{"".join(", " + b for b in bounds)}
  FROM src JOIN keys ON keys.dose_key = src.dose_key
),
-- The as-of and window joins read only these narrow rows, then join back on the row id.
narrow AS (SELECT rid, kid, reported_at, onset_at, onset_at::DATE AS onset_day{narrow_cols} FROM c),
{sep.join(ctes)},
evaluated AS (
  SELECT c.case_id, c.report_id, c.reported_at,
    {(","+chr(10)+"    ").join(fact_cols)},
    {explained_cols}({any_explained}) AS f_explained_by_drug_window,
    {detail_cols}coalesce(u.unrecognised_drugs, []::VARCHAR[]) AS unrecognised_drugs,
    {rule_cols},
    {rank} AS tier_rank
  FROM c
  {(chr(10)+"  ").join(joins)}
  LEFT JOIN unknown u ON u.k = c.dose_key
)
SELECT case_id, report_id, reported_at,
  {tier_case} AS tier,
  list_filter({rule_ids}, lambda x: x IS NOT NULL) AS rule_ids,
  list_filter({causes}, lambda x: x IS NOT NULL) AS causes,
  {"links, evidence, " if details else ""}unrecognised_drugs
FROM evaluated
"""


@lru_cache(maxsize=16)
def _compiled(rules: RuleSet, cases: str, doses: str, details: bool) -> str:
    return _Compiler(rules).sql(cases, doses, details)


def triage_sql(rules: RuleSet, cases: str, doses: str, *, details: bool = True) -> str:
    """The triage query over the named relations (tables, views or subqueries)."""
    return _compiled(rules, cases, doses, details)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Outcome:
    """The triage of one report."""

    report_id: str
    tier: str
    rule_ids: list[str]
    causes: list[str]
    respond_within_minutes: int
    guidance: Guidance
    unrecognised_drugs: list[str]
    rules_version: str
    links: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def contract(self) -> dict[str, Any]:
        """The output line of the triage contract, keys in the contract's order."""
        return {
            "report_id": self.report_id,
            "tier": self.tier,
            "rule_ids": self.rule_ids,
            "suspected_causes": self.causes,
            "respond_within_minutes": self.respond_within_minutes,
            "imaging": self.guidance.imaging,
            "referral": self.guidance.referral,
            "advice": self.guidance.advice,
            "unrecognised_drugs": self.unrecognised_drugs,
            "rules_version": self.rules_version,
        }


def cases_table(cases: Iterable[TriageCase]) -> tuple[pa.Table, pa.Table]:
    """Arrow tables (cases, doses) for a batch of validated contract cases."""
    rows: dict[str, list[Any]] = {name: [] for name in CASE_SCHEMA.names}
    doses: dict[str, list[Any]] = {name: [] for name in DOSE_SCHEMA.names}
    for i, case in enumerate(cases):
        key = str(i)
        rows["case_id"].append(key)
        rows["dose_key"].append(key)
        rows["report_id"].append(case.report_id)
        rows["cancer_type"].append(case.patient.cancer_type)
        for f in PATIENT_FLAGS:
            rows[f].append(getattr(case.patient, f))
        for name in REPORT_COLUMNS:
            rows[name].append(getattr(case.report, name))
        for j, med in enumerate(case.medications):
            doses["dose_key"].append(key)
            doses["drug"].append(med.drug)
            doses["given_at"].append(med.given_at)
            doses["seq"].append(j)
    return pa.Table.from_pydict(rows, schema=CASE_SCHEMA), pa.Table.from_pydict(doses, schema=DOSE_SCHEMA)


def triage_cases(rules: RuleSet, cases: list[TriageCase]) -> list[Outcome]:
    """Triage a batch of contract cases, in input order."""
    if not cases:
        return []
    case_tbl, dose_tbl = cases_table(cases)
    con = duckdb.connect(":memory:", config={"threads": 2})
    try:
        con.register("bl_cases", case_tbl)
        con.register("bl_doses", dose_tbl)
        rows = con.execute(
            f"SELECT * FROM ({triage_sql(rules, 'bl_cases', 'bl_doses')}) ORDER BY case_id::INTEGER"
        ).fetchall()
        cols = [d[0] for d in con.description]
    finally:
        con.close()
    return [outcome_from_row(rules, dict(zip(cols, row))) for row in rows]


def outcome_from_row(rules: RuleSet, row: dict[str, Any]) -> Outcome:
    tier = row["tier"]
    causes = list(row["causes"])
    unrecognised = list(row["unrecognised_drugs"] or [])
    return Outcome(
        report_id=row["report_id"],
        tier=tier,
        rule_ids=list(row["rule_ids"]),
        causes=causes,
        respond_within_minutes=rules.respond_within_minutes(tier),
        guidance=guidance_for(rules, tier, tuple(causes), tuple(unrecognised)),
        unrecognised_drugs=unrecognised,
        rules_version=rules.version,
        links=[dict(x) for x in row.get("links") or []],
        evidence=[dict(x) for x in row.get("evidence") or []],
    )


def triage_one(rules: RuleSet, case: TriageCase) -> Outcome:
    return triage_cases(rules, [case])[0]
