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
from dashboard.models import PATIENT_FLAGS, REPORT_FLAGS, InputError, ReportIn, TriageCase, validate_case
from dashboard.rules import (
    AllCond,
    AnyCond,
    DoseSelector,
    DrugEffectCond,
    EffectSelector,
    Fact,
    FieldCond,
    NoRuleAboveCond,
    NotCond,
    RulesFiredCond,
    UnknownCond,
    RuleSet,
    biosimilar_base_sql,
    drug_name_sql,
    resolve_value,
    rule_dependencies,
    rule_order,
)
from dashboard.windows import day_sql, window_offsets

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
        ("stopped_at", pa.timestamp("us")),
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


def _names(values: Iterable[str]) -> str:
    return ", ".join(_lit(v) for v in values)


@dataclass(frozen=True)
class _FactSQL:
    """One fact compiled: its CTEs and joins, the boolean that answers it, and (with details) the
    exposures it rests on."""

    ctes: list[str]
    joins: list[str]
    holds: str
    evidence: str | None


class _Compiler:
    """Compiles a rule set into one DuckDB query, in named parts: drug names, dose facts, drug
    effects, conditions and rules, causes."""

    def __init__(self, rules: RuleSet, details: bool):
        self.rules = rules
        self.details = details
        self.effects = list(rules.back_pain_effects)
        # The facts' tests over courses, answered together by one join of reports to courses.
        self.course_aggs: list[str] = []

    # ---- doses: which a selector takes, and why
    @staticmethod
    def selector(sel: DoseSelector, alias: str = "d") -> str:
        if sel.unrecognised:
            return f"({alias}.d_generic IS NULL)"
        parts = []
        if sel.sact is not None:
            parts.append(f"{alias}.d_sact = {_lit(sel.sact)}")
        if sel.neurotoxic is not None:
            parts.append(f"{alias}.d_neurotoxic = {_lit(sel.neurotoxic)}")
        if sel.drug_class is not None:
            parts.append(f"{alias}.d_class = {_lit(sel.drug_class)}")
        if sel.drugs:
            parts.append(f"{alias}.d_generic IN ({_names(sel.drugs)})")
        return "(" + " AND ".join(parts) + ")"

    def matches(self, fact: Fact, alias: str = "d") -> str:
        return "(" + " OR ".join(self.selector(s, alias) for s in fact.of) + ")"

    def counted_as(self, name: str, fact: Fact) -> str:
        whens = " ".join(
            f"WHEN {self.selector(s)} THEN {_lit(s.counted_as or name)}" for s in fact.of)
        return f"CASE {whens} END"

    # ---- dose facts
    def fact(self, i: int, name: str, fact: Fact) -> _FactSQL:
        """A fact over the patient's doses and courses (see rules/triage_rules.yaml for the four
        exposures). Days are calendar dates: ``report_day - given_at::DATE``. Doses are answered by
        an as-of join (the latest qualifying dose, then one date test: exact, and one row per report
        instead of one per prior dose); courses, a few per patient, by a join."""
        rs = self.rules
        bounds = fact.days_before_report
        lo = int(resolve_value(rs, bounds.min)) + (1 if bounds.min_exclusive else 0)
        hi = None if bounds.max is None else int(resolve_value(rs, bounds.max))
        match = self.matches(fact)
        started = "d.given_at <= n.reported_at"
        given_days = "(n.report_day - d.given_at::DATE)"
        within = (lambda days: f"{days} >= {lo}" + ("" if hi is None else f" AND {days} <= {hi}"))
        ctes: list[str] = []
        joins: list[str] = []
        x = f"fx{i}"
        if fact.exposure == "any":
            # A dose dated lo..hi days before; or a course started by report - lo and not stopped
            # before report - hi.
            bound = "reported_at" if lo == 0 else f"(report_day - {lo - 1})::TIMESTAMP - INTERVAL 1 MICROSECOND"
            ctes.append(f"{x}_doses AS (SELECT d.kid, d.given_at FROM d WHERE NOT d.is_course AND {match} "
                        f"GROUP BY d.kid, d.given_at)")
            ctes.append(f"{x}_bound AS (SELECT rid, kid, {bound} AS b FROM narrow)")
            ctes.append(f"{x}_dose AS (SELECT n.rid, x.given_at FROM {x}_bound n "
                        f"ASOF LEFT JOIN {x}_doses x ON x.kid = n.kid AND n.b >= x.given_at)")
            course_cond = (f"d.is_course AND {match} AND {started} AND d.given_at::DATE <= n.report_day - {lo}"
                           + ("" if hi is None else
                              f" AND (d.stopped_at IS NULL OR d.stopped_at::DATE >= n.report_day - {hi})"))
            self.course_aggs.append(f"bool_or({course_cond}) AS {x}_hit")
            joins.append(f"LEFT JOIN {x}_dose ON {x}_dose.rid = c.rid")
            dose_days = f"(c.report_day - {x}_dose.given_at::DATE)"
            holds = (f"(({x}_dose.given_at IS NOT NULL" + ("" if hi is None else f" AND {dose_days} <= {hi}")
                     + f") OR coalesce(courses.{x}_hit, FALSE))")
            qualifies = (f"((NOT d.is_course AND {started} AND {within(given_days)}) OR ({course_cond}))")
        elif fact.exposure == "first":
            ctes.append(f"{x}_first AS (SELECT d.kid, min(d.given_at) AS given_at FROM d WHERE {match} GROUP BY d.kid)")
            joins.append(f"LEFT JOIN {x}_first ON {x}_first.kid = c.kid")
            days = f"(c.report_day - {x}_first.given_at::DATE)"
            holds = f"({x}_first.given_at <= c.reported_at AND {within(days)})"
            qualifies = f"(d.given_at = (SELECT min(f.given_at) FROM {x}_first f WHERE f.kid = n.kid))"
        elif fact.exposure == "last":
            # The latest exposure: a dose's date, a stopped course's stop date, or the report's own
            # date for a course still running at it.
            ctes.append(f"{x}_doses AS (SELECT d.kid, d.given_at FROM d WHERE NOT d.is_course AND {match} "
                        f"GROUP BY d.kid, d.given_at)")
            ctes.append(f"{x}_dose AS (SELECT n.rid, x.given_at FROM narrow n "
                        f"ASOF LEFT JOIN {x}_doses x ON x.kid = n.kid AND n.reported_at >= x.given_at)")
            self.course_aggs.append(f"max(CASE WHEN {match} THEN least(coalesce(d.stopped_at::DATE, n.report_day), "
                                    f"n.report_day) END) AS {x}_last")
            joins.append(f"LEFT JOIN {x}_dose ON {x}_dose.rid = c.rid")
            last = f"greatest({x}_dose.given_at::DATE, courses.{x}_last)"
            holds = f"({last} IS NOT NULL AND {within(f'(c.report_day - {last})')})"
            exposure_day = ("CASE WHEN d.is_course THEN least(coalesce(d.stopped_at::DATE, n.report_day), n.report_day)"
                            " ELSE d.given_at::DATE END")
            qualifies = (f"({started} AND {exposure_day} = (SELECT max(CASE WHEN d2.is_course THEN "
                         f"least(coalesce(d2.stopped_at::DATE, n.report_day), n.report_day) ELSE d2.given_at::DATE END) "
                         f"FROM d d2 WHERE d2.kid = n.kid AND d2.given_at <= n.reported_at AND "
                         f"{self.matches(fact, 'd2')}))")
        else:  # running
            course_cond = (f"d.is_course AND {match} AND {started} AND (d.stopped_at IS NULL OR "
                           f"d.stopped_at::DATE >= n.report_day) AND {within(given_days)}")
            self.course_aggs.append(f"bool_or({course_cond}) AS {x}_hit")
            holds = f"coalesce(courses.{x}_hit, FALSE)"
            qualifies = f"({course_cond})"
        evidence = None
        if self.details:
            ctes.append(
                f"{x}_ev AS (SELECT n.rid, list(struct_pack(fact := {_lit(name)}, drug := d.drug, "
                f"given_at := d.given_at, stopped_at := d.stopped_at, counted_as := {self.counted_as(name, fact)}, "
                f"days_before := {given_days}::INTEGER) ORDER BY d.given_at, d.seq) AS items "
                f"FROM narrow n JOIN d ON d.kid = n.kid WHERE {match} AND {started} AND {qualifies} GROUP BY n.rid)")
            joins.append(f"LEFT JOIN {x}_ev ON {x}_ev.rid = c.rid")
            evidence = f"CASE WHEN {holds} THEN {x}_ev.items END"
        return _FactSQL(ctes, joins, holds, evidence)

    # ---- drug effects
    def effects_sql(self) -> tuple[list[str], list[str]]:
        """Each dose of a drug with a back-pain effect, spread over the calendar days of its onset
        window, joined to the reports on (patient, day): the onset day when the duration is known
        (explained, if the pain has lasted no longer than the effect's usual duration), the report's
        own day when it is not (possible)."""
        if not self.effects:
            return [], []
        which = "CASE " + " ".join(
            f"WHEN d.d_generic IN ({_names(e.drugs)}) THEN {j}" for j, e in enumerate(self.effects)) + " END"
        # The windows' days as dashboard.windows defines them (the timeline draws the same days).
        offsets = [window_offsets(e) for e in self.effects]
        starts = "[" + ", ".join(str(start) for start, _ in offsets) + "]"
        ends = "[" + ", ".join(str(end) for _, end in offsets) + "]"
        spread = f"""eff_doses AS (
  SELECT kid, drug, given_at, seq, effect, {day_sql("given_at")} + unnest(range({starts}[effect + 1], {ends}[effect + 1] + 1))::INTEGER AS day
  FROM (SELECT d.kid, d.drug, d.given_at, d.seq, {which} AS effect FROM d) WHERE effect IS NOT NULL)"""
        cols = []
        for j, e in enumerate(self.effects):
            fits = f"w.effect = {j}"
            cols.append(f"bool_or({fits} AND n.duration_days IS NOT NULL AND n.duration_days <= {e.lasts_at_most_days}) AS ex{j}")
            cols.append(f"bool_or({fits} AND n.duration_days IS NULL) AS po{j}")
            if self.details:
                cols.append(f"arg_max(struct_pack(drug := w.drug, given_at := w.given_at), struct_pack(t := w.given_at, "
                            f"s := -w.seq)) FILTER (WHERE {fits}) AS dose{j}")
        hits = f"""eff AS (
  SELECT n.rid, {', '.join(cols)}
  FROM narrow n JOIN eff_doses w ON w.kid = n.kid AND w.given_at <= n.reported_at
   AND w.day = CASE WHEN n.duration_days IS NULL THEN n.report_day ELSE n.onset_day END
  GROUP BY n.rid)"""
        return [spread, hits], ["LEFT JOIN eff ON eff.rid = c.rid"]

    def effect_status(self, j: int, status: str) -> str:
        return {"explained": f"x_ex{j}", "possible": f"x_po{j}", "any": f"(x_ex{j} OR x_po{j})"}[status]

    def effects_matching(self, sel: EffectSelector) -> list[int]:
        return [j for j, e in enumerate(self.effects)
                if sel.lowers_moderate_pain is None or e.lowers_moderate_pain == sel.lowers_moderate_pain]

    # ---- conditions -> SQL boolean expressions (never NULL)
    def cond(self, c: Any) -> str:
        rs = self.rules
        if isinstance(c, str):
            return f"f_{c}" if c in rs.facts else f"coalesce({c}, FALSE)"
        if isinstance(c, AnyCond):
            return "(" + " OR ".join(self.cond(x) for x in c.any) + ")"
        if isinstance(c, AllCond):
            return "(" + " AND ".join(self.cond(x) for x in c.all) + ")"
        if isinstance(c, NotCond):
            return f"(NOT {self.cond(c.not_)})"
        if isinstance(c, UnknownCond):
            return f"({c.unknown} IS NULL)"
        if isinstance(c, DrugEffectCond):
            parts = [self.effect_status(j, c.drug_effect.status) for j in self.effects_matching(c.drug_effect)]
            return "(" + " OR ".join(parts) + ")" if parts else "FALSE"
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
            return f"({col} IN ({_names(value)}))"
        op = "=" if c.op == "==" else c.op
        return f"({col} {op} {_lit(value)})"

    # ---- causes
    def cause_items(self) -> list[tuple[str, str, int]]:
        """(condition, cause, tier rank) of everything that names a cause, in the order of the
        rules (highest tier first), then the drug effects (rank 0: they set no tier of their own)."""
        rs = self.rules
        items: list[tuple[str, str, int]] = []
        for r in rs.rules:
            rank = rs.tier_rank[r.tier]
            if r.cause:
                items.append((f"r_{r.id}", r.cause, rank))
            elif r.causes_from_drug_effects is not None:
                sel = r.causes_from_drug_effects
                for j in self.effects_matching(sel):
                    items.append((f"(r_{r.id} AND {self.effect_status(j, sel.status)})", self.effects[j].cause, rank))
        for j, e in enumerate(self.effects):
            items.append((self.effect_status(j, "any"), e.cause, 0))
        return items

    def cause_lists(self) -> tuple[str, str]:
        """SQL for (leading causes, suspected causes): the leading ones are the causes of the rules
        that reached the tier; the suspected list puts them first, then the rest by tier."""
        items = self.cause_items()
        leading, suspected = [], []
        for code in dict.fromkeys(cause for _, cause, _ in items):
            mine = [(k, cond, rank) for k, (cond, cause, rank) in enumerate(items) if cause == code]
            lead_pos = "least(" + ", ".join(
                f"CASE WHEN {cond} AND {rank} = tier_rank THEN {k} END" for k, cond, rank in mine) + ")"
            any_pos = "least(" + ", ".join(f"CASE WHEN {cond} THEN {k} END" for k, cond, _ in mine) + ")"
            leading.append(f"CASE WHEN {lead_pos} IS NOT NULL THEN struct_pack(p := {lead_pos}, c := {_lit(code)}) END")
            suspected.append(f"CASE WHEN {any_pos} IS NOT NULL THEN struct_pack(p := coalesce({lead_pos}, "
                             f"{len(items)} + {any_pos}), c := {_lit(code)}) END")

        def ordered(entries: list[str]) -> str:
            if not entries:
                return "[]::VARCHAR[]"
            return (f"list_transform(list_sort(list_filter([{', '.join(entries)}], lambda x: x IS NOT NULL)), "
                    f"lambda x: x.c)")

        return ordered(leading), ordered(suspected)

    # ---- the whole query
    # ---- the query, in named parts
    def lookups_sql(self) -> str:
        """The rules' drug names and cancer-type codes, as tables of the query."""
        rs = self.rules
        drug_rows = ",\n    ".join(
            f"({_lit(key)}, {_lit(i.generic)}, {_lit(i.drug_class)}, {_lit(i.sact)}, {_lit(i.neurotoxic)}, "
            f"{_lit(i.continuous)})"
            for key, i in sorted(rs.drug_lookup.items())
        )
        cancer_rows = ",\n    ".join(f"({_lit(k)}, {_lit(v)})" for k, v in sorted(rs.cancer_lookup.items()))
        return f"""drug_names(name_key, d_generic, d_class, d_sact, d_neurotoxic, d_continuous) AS (VALUES
    {drug_rows}),
-- Cancer types as codes (a stored "Multiple myeloma" is myeloma), matched like drug names.
cancer_names(name_key, code) AS (VALUES
    {cancer_rows})"""

    @staticmethod
    def inputs_sql(cases: str, doses: str) -> str:
        """The cases and their doses, keyed, each drug name resolved once, and courses told from doses."""
        # Names are matched by the rules' one definition (dashboard.rules.normalise_drug_name).
        drug_key = drug_name_sql("d.drug")
        biosimilar = biosimilar_base_sql("d.drug")
        return f"""src AS (
  SELECT * REPLACE (coalesce(cn.code, src_cases.cancer_type) AS cancer_type), {day_sql("reported_at")} AS report_day
  FROM {cases} AS src_cases
  LEFT JOIN cancer_names cn ON cn.name_key = {drug_name_sql("src_cases.cancer_type")}
),
-- Integer keys make the joins' sorts and hashes cheap.
keys AS (SELECT dose_key, row_number() OVER () AS kid FROM (SELECT DISTINCT dose_key FROM src)),
dose_rows AS (SELECT * FROM {doses} AS d WHERE d.drug IS NOT NULL AND d.given_at IS NOT NULL),
-- Each distinct name is resolved once (a few hundred), not each of a million doses.
names AS (
  SELECT d.drug, coalesce(n.d_generic, b.d_generic) AS d_generic, coalesce(n.d_class, b.d_class) AS d_class,
         coalesce(n.d_sact, b.d_sact) AS d_sact, coalesce(n.d_neurotoxic, b.d_neurotoxic) AS d_neurotoxic,
         coalesce(n.d_continuous, b.d_continuous) AS d_continuous
  FROM (SELECT drug, {drug_key} AS name_key FROM (SELECT DISTINCT drug FROM dose_rows) AS d) AS d
  LEFT JOIN drug_names n ON n.name_key = d.name_key
  LEFT JOIN drug_names b ON {biosimilar[0]} AND b.name_key = {drug_name_sql(biosimilar[1])}
),
-- A course: a drug taken continuously, or an unrecognised drug with a stop date; else a dose.
d AS (
  SELECT d.dose_key, keys.kid, d.drug, d.given_at, d.stopped_at, d.seq, n.d_generic, n.d_class, n.d_sact,
         n.d_neurotoxic, (coalesce(n.d_continuous, FALSE) OR (n.d_generic IS NULL AND d.stopped_at IS NOT NULL)) AS is_course
  FROM dose_rows AS d
  JOIN keys ON keys.dose_key = d.dose_key
  JOIN names n ON n.drug = d.drug
),
unknown AS (
  SELECT dose_key AS k, list(drug ORDER BY first_seq) AS unrecognised_drugs
  FROM (SELECT dose_key, drug, min(seq) AS first_seq FROM d WHERE d_generic IS NULL GROUP BY dose_key, drug)
  GROUP BY dose_key
),
c AS (SELECT src.*, keys.kid, row_number() OVER () AS rid FROM src JOIN keys ON keys.dose_key = src.dose_key),
-- The fact and effect joins read only these narrow rows, then join back on the row id.
narrow AS (SELECT rid, kid, reported_at, report_day, duration_days,
                  report_day - coalesce(duration_days, 0) AS onset_day FROM c)"""

    def facts_and_effects(self) -> tuple[list[str], list[str], list[str], list[str]]:
        """Every treatment fact and drug effect: their CTEs, their joins to the cases, the columns
        they give each case (f_<fact>, x_ex<j>, x_po<j>) and the exposures behind each fact."""
        ctes: list[str] = []
        joins: list[str] = []
        cols: list[str] = []
        evidence: list[str] = []
        for i, (name, fact) in enumerate(self.rules.facts.items()):
            part = self.fact(i, name, fact)
            ctes += part.ctes
            joins += part.joins
            cols.append(f"{part.holds} AS f_{name}")
            if part.evidence:
                evidence.append(part.evidence)
        if self.course_aggs:
            ctes.append(f"courses AS (SELECT n.rid, {', '.join(self.course_aggs)} FROM narrow n JOIN d "
                        f"ON d.kid = n.kid AND d.is_course AND d.given_at <= n.reported_at GROUP BY n.rid)")
            joins.append("LEFT JOIN courses ON courses.rid = c.rid")
        eff_ctes, eff_joins = self.effects_sql()
        ctes += eff_ctes
        joins += eff_joins
        for j in range(len(self.effects)):
            cols += [f"coalesce(eff.ex{j}, FALSE) AS x_ex{j}", f"coalesce(eff.po{j}, FALSE) AS x_po{j}"]
        return ctes, joins, cols, evidence

    def rule_layers(self) -> list[str]:
        """The rules in layers: each layer reads the columns of the one before (the facts, effects and
        the rules its rules depend on) as plain columns, so no rule's expression is copied into
        another's (a rule reading all the rules above it would otherwise repeat them all)."""
        rs = self.rules
        level: dict[str, int] = {}
        for r in rule_order(rs):
            level[r.id] = 1 + max((level[d] for d in rule_dependencies(rs, r)), default=-1)
        layers = []
        for k in range(max(level.values()) + 1):
            cols = ",\n    ".join(f"coalesce({self.cond(r.when)}, FALSE) AS r_{r.id}"
                                  for r in rs.rules if level[r.id] == k)
            source = "base" if k == 0 else f"rules{k - 1}"
            layers.append(f"rules{k} AS NOT MATERIALIZED (SELECT *,\n    {cols}\n  FROM {source})")
        return layers

    def detail_columns(self, evidence: list[str]) -> tuple[str, str]:
        """With ``details``: the drug effects and the exposures behind each fact, as columns of the
        evaluated cases and of the output (empty strings without)."""
        if not self.details:
            return "", ""
        effects = []
        for j, e in enumerate(self.effects):
            status = (f"CASE WHEN {self.effect_status(j, 'explained')} THEN 'explained' "
                      f"WHEN {self.effect_status(j, 'possible')} THEN 'possible' END")
            effects.append(f"CASE WHEN {self.effect_status(j, 'any')} THEN struct_pack(cause := {_lit(e.cause)}, "
                           f"drug := eff.dose{j}.drug, given_at := eff.dose{j}.given_at, status := {status}, "
                           f"lowers := {_lit(e.lowers_moderate_pain)}) END")
        effects_sql = f"list_filter([{', '.join(effects)}], lambda x: x IS NOT NULL)" if effects else "[]"
        evidence_sql = (f"flatten(list_filter([{', '.join(evidence)}], lambda x: x IS NOT NULL))"
                        if evidence else "[]")
        return f"{effects_sql} AS drug_effects,\n    {evidence_sql} AS evidence,\n    ", "e.drug_effects, e.evidence, "

    def outcome_sql(self, last_layer: str, detail_out: str) -> str:
        """Tier, rules fired and causes, computed once per distinct combination of rules fired and
        effects that fit (a few hundred), then joined back to every case."""
        rs = self.rules
        rank = "greatest(" + ", ".join(
            f"CASE WHEN r_{r.id} THEN {rs.tier_rank[r.tier]} ELSE 0 END" for r in rs.rules) + ")"
        tier_case = "CASE tier_rank " + " ".join(f"WHEN {rs.tier_rank[t]} THEN {_lit(t)}" for t in rs.tier_ids) + " END"
        rule_ids = "[" + ", ".join(f"CASE WHEN r_{r.id} THEN {_lit(r.id)} END" for r in rs.rules) + "]"
        leading, suspected = self.cause_lists()
        bits = [f"r_{r.id}" for r in rs.rules] + [f"x_{k}{j}" for j in range(len(self.effects)) for k in ("ex", "po")]
        mask = " + ".join(f"({b}::BIGINT << {k})" for k, b in enumerate(bits))
        return f"""evaluated AS NOT MATERIALIZED (SELECT *, {rank} AS tier_rank FROM {last_layer}),
-- What a report's tier, rules and causes are depends only on which rules fired and which drug
-- effects fit: computed once per distinct combination (a few hundred), then joined back.
outcome_keys AS (SELECT case_id, report_id, reported_at, {detail_out.replace("e.", "")}unrecognised_drugs,
  {", ".join(bits)}, tier_rank, {mask} AS outcome_key FROM evaluated),
outcomes AS (
  SELECT outcome_key,
    {tier_case} AS tier,
    list_filter({rule_ids}, lambda x: x IS NOT NULL) AS rule_ids,
    {leading} AS leading_causes,
    {suspected} AS causes
  FROM (SELECT DISTINCT ON (outcome_key) * FROM outcome_keys)
)"""

    def sql(self, cases: str, doses: str) -> str:
        """The triage query: one row per case with tier, rules fired, leading and suspected causes
        and unrecognised drugs; with ``details``, also the drug effects and the exposures behind
        each fact (batch re-triage leaves them out). Assembled from the parts above, in order."""
        ctes, joins, fact_cols, evidence = self.facts_and_effects()
        layers = self.rule_layers()
        detail_cols, detail_out = self.detail_columns(evidence)
        sep = ",\n"
        return f"""
WITH
{self.lookups_sql()},
{self.inputs_sql(cases, doses)},
{sep.join(ctes) + "," if ctes else ""}
base AS NOT MATERIALIZED (
  SELECT c.*,
    {(","+chr(10)+"    ").join(fact_cols) + "," if fact_cols else ""}
    {detail_cols}coalesce(u.unrecognised_drugs, []::VARCHAR[]) AS unrecognised_drugs
  FROM c
  {(chr(10)+"  ").join(joins)}
  LEFT JOIN unknown u ON u.k = c.dose_key
),
{sep.join(layers)},
{self.outcome_sql(f"rules{len(layers) - 1}", detail_out)}
SELECT e.case_id, e.report_id, e.reported_at, o.tier, o.rule_ids, o.leading_causes, o.causes,
  {detail_out}e.unrecognised_drugs
FROM outcome_keys e JOIN outcomes o ON o.outcome_key = e.outcome_key
"""


@lru_cache(maxsize=16)
def _compiled(rules: RuleSet, cases: str, doses: str, details: bool) -> str:
    return _Compiler(rules, details).sql(cases, doses)


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
    leading_causes: list[str]
    causes: list[str]  # every suspected cause: the leading ones first, then by tier
    respond_within_minutes: int
    guidance: Guidance
    unrecognised_drugs: list[str]
    rules_version: str
    drug_effects: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)

    @property
    def recent_sact(self) -> dict[str, Any]:
        """Whether SACT was recent, and the doses or courses that made it so."""
        because = [{"drug": e["drug"], "given_at": _iso(e["given_at"]), "counted_as": e["counted_as"]}
                   for e in self.evidence if e["fact"] == RECENT_SACT]
        return {"recent": bool(because), "because": because}

    def contract(self) -> dict[str, Any]:
        """The output line of the triage contract, keys in the contract's order."""
        return {
            "report_id": self.report_id,
            "tier": self.tier,
            "rule_ids": self.rule_ids,
            "leading_causes": self.leading_causes,
            "suspected_causes": self.causes,
            "drug_effects": [{"cause": e["cause"], "drug": e["drug"], "given_at": _iso(e["given_at"]),
                              "status": e["status"]} for e in self.drug_effects],
            "recent_sact": self.recent_sact,
            "respond_within_minutes": self.respond_within_minutes,
            "imaging": self.guidance.imaging_text,
            "referral": self.guidance.referral_text,
            "advice": self.guidance.advice,
            "unrecognised_drugs": self.unrecognised_drugs,
            "rules_version": self.rules_version,
        }


# The fact the contract's `recent_sact` reports (rules.py requires the rules to define it).
RECENT_SACT = "recent_sact"


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


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
            doses["stopped_at"].append(med.stopped_at)
            doses["seq"].append(j)
    return pa.Table.from_pydict(rows, schema=CASE_SCHEMA), pa.Table.from_pydict(doses, schema=DOSE_SCHEMA)


def check_case(rules: RuleSet, case: TriageCase) -> TriageCase:
    """What the contract asks of a case that only the rules can answer: the cancer type is a code of
    rules/ (or its synonym), and a known drug that is not taken continuously has no stop date.
    Returns the case with its cancer type as the code; raises InputError naming the field."""
    problems: list[tuple[str, str]] = []
    code = rules.resolve_cancer_type(case.patient.cancer_type)
    if code is None:
        problems.append(("patient.cancer_type", f"unknown cancer type {case.patient.cancer_type!r} "
                         f"(one of {', '.join(rules.cancer_types)})"))
    for i, med in enumerate(case.medications):
        info = rules.resolve_drug(med.drug)
        if med.stopped_at is not None and info is not None and not info.continuous:
            problems.append((f"medications[{i}].stopped_at", f"{med.drug!r} is given as doses, not taken "
                             "continuously: a dose has no stopped_at"))
    if problems:
        raise InputError(problems)
    if code == case.patient.cancer_type:
        return case
    return case.model_copy(update={"patient": case.patient.model_copy(update={"cancer_type": code})})


def validate_records(rules: RuleSet, records: list[Any]) -> list[TriageCase]:
    """Validate contract records (dicts) against the contract and the rules; raise InputError with
    every problem, each field prefixed by the record's line number (1-based)."""
    problems: list[tuple[str, str]] = []
    cases: list[TriageCase] = []
    seen: dict[str, int] = {}
    for n, record in enumerate(records, start=1):
        try:
            case = check_case(rules, validate_case(record))
        except InputError as exc:
            problems += [(f"line {n}: {f}" if f else f"line {n}", m) for f, m in exc.problems]
            continue
        if case.report_id in seen:
            problems.append((f"line {n}: report_id", f"{case.report_id!r} already used on line {seen[case.report_id]}"))
            continue
        seen[case.report_id] = n
        cases.append(case)
    if problems:
        raise InputError(problems)
    return cases


def triage_records(rules: RuleSet, records: list[Any]) -> list[dict[str, Any]]:
    """The triage contract as a function: records in, output lines out (in input order)."""
    return [o.contract() for o in triage_cases(rules, validate_records(rules, records))]


def triage_cases(rules: RuleSet, cases: list[TriageCase]) -> list[Outcome]:
    """Triage a batch of validated contract cases, in input order."""
    if not cases:
        return []
    cases = [check_case(rules, c) for c in cases]
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
    rule_ids = list(row["rule_ids"])
    leading = list(row["leading_causes"])
    causes = list(row["causes"])
    unrecognised = list(row["unrecognised_drugs"] or [])
    return Outcome(
        report_id=row["report_id"],
        tier=tier,
        rule_ids=rule_ids,
        leading_causes=leading,
        causes=causes,
        respond_within_minutes=rules.respond_within_minutes(tier),
        guidance=guidance_for(rules, tier, tuple(rule_ids), tuple(leading), tuple(causes), tuple(unrecognised)),
        unrecognised_drugs=unrecognised,
        rules_version=rules.version,
        drug_effects=[dict(x) for x in row.get("drug_effects") or []],
        evidence=[dict(x) for x in row.get("evidence") or []],
    )


def triage_one(rules: RuleSet, case: TriageCase) -> Outcome:
    return triage_cases(rules, [case])[0]
