"""The shared rules: load the files in ``rules/``, validate them, fail closed.

Every file is parsed strictly (duplicate keys and unknown keys are errors) and validated by the
pydantic models below, then checked across files (every cause has guidance, every source is
known, every field a condition names exists with the right type, rule references resolve without
cycles). Any problem raises :class:`RulesError` naming the file and the field; nothing ever runs on
part of a rule set.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from dashboard.models import ENUM_FIELDS, PATIENT_FLAGS, REPORT_FLAGS
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
    model_validator,
)

RULE_FILES = ("sources.yaml", "tiers.yaml", "triage_rules.yaml", "drugs.yaml", "guidance.yaml")

# The report and patient fields a condition may test, with their kinds. Enumerations list every
# allowed value so that a misspelt value in a rule ("thorasic") fails on load.
FLAG_FIELDS = REPORT_FLAGS
NUMBER_FIELDS: dict[str, str] = {"pain_score": "int", "duration_days": "int", "temperature_c": "float"}
TEXT_FIELDS = ("cancer_type",)
BUILTIN_FACTS = ("explained_by_drug_window",)

NUMERIC_OPS = (">=", "<=", ">", "<", "==", "between")
ENUM_OPS = ("==", "in")
TEXT_OPS = ("contains_any",)


class RulesError(Exception):
    """A rules file is missing, malformed or inconsistent. Names the file and the field."""

    def __init__(self, file: str, field: str, message: str):
        self.file = file
        self.field = field
        self.message = message
        where = f"{file}: {field}" if field else file
        super().__init__(f"{where}: {message}")


# --------------------------------------------------------------------------- YAML, strictly


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys (a second `E1:` must not silently win)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(path.name, "", "file is missing") from None
    except UnicodeDecodeError as exc:
        raise RulesError(path.name, "", f"not UTF-8 text ({exc.reason})") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RulesError(path.name, where, f"not valid YAML: {problem}") from None


# --------------------------------------------------------------------------- models


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


SourceKeys = Annotated[list[StrictStr], Field(min_length=1)]
Number = Union[StrictInt, StrictFloat]


class Source(_Strict):
    title: StrictStr = Field(min_length=1)
    year: StrictInt = Field(ge=1900, le=2100)
    url: StrictStr | None = None


class SourcesFile(_Strict):
    sources: dict[StrictStr, Source] = Field(min_length=1)


class Tier(_Strict):
    id: StrictStr
    label: StrictStr
    meaning: StrictStr
    respond_within_minutes: StrictInt = Field(gt=0, le=60 * 24 * 30)
    action: StrictStr
    source: SourceKeys


class TiersFile(_Strict):
    tiers: list[Tier] = Field(min_length=2)


class Alternative(_Strict):
    value: Any
    note: StrictStr
    source: SourceKeys


class Parameter(_Strict):
    value: Union[Number, list[Number]]
    unit: StrictStr
    description: StrictStr
    source: SourceKeys
    alternatives: list[Alternative] = []


class DoseSelector(_Strict):
    """Which doses a fact looks at: by SACT status, neurotoxicity, class or generic name."""

    sact: StrictBool | None = None
    neurotoxic: StrictBool | None = None
    drug_class: StrictStr | None = None
    drugs: list[StrictStr] | None = None

    @model_validator(mode="after")
    def _something(self) -> DoseSelector:
        if all(v is None for v in (self.sact, self.neurotoxic, self.drug_class, self.drugs)):
            raise ValueError("select doses by at least one of sact, neurotoxic, drug_class, drugs")
        return self


class DayRange(_Strict):
    min: StrictInt | StrictStr | None = None
    max: StrictInt | StrictStr | None = None


class Fact(_Strict):
    description: StrictStr
    doses: DoseSelector
    days_before_report: DayRange = DayRange()
    unknown_date: Literal["counts", "ignored"] = "counts"


# Conditions: a small, closed language, compiled to SQL by dashboard.triage.


class AnyCond(_Strict):
    any: list[Condition] = Field(min_length=1)


class AllCond(_Strict):
    all: list[Condition] = Field(min_length=1)


class NotCond(_Strict):
    not_: Condition = Field(alias="not")


class FieldCond(_Strict):
    field: StrictStr
    op: Literal[">=", "<=", ">", "<", "==", "in", "between", "contains_any"]
    value: Any


class RulesFiredCond(_Strict):
    rules_fired: list[StrictStr] = Field(min_length=1)
    at_least: StrictInt = Field(ge=1)


class NoRuleAboveCond(_Strict):
    no_rule_fired_above: StrictStr


_KINDS = {
    "any": "any",
    "all": "all",
    "not": "not",
    "field": "field",
    "rules_fired": "rules_fired",
    "no_rule_fired_above": "no_rule_fired_above",
}


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "name"
    if isinstance(value, dict):
        for key, kind in _KINDS.items():
            if key in value:
                return kind
    if isinstance(value, BaseModel):
        return {
            AnyCond: "any",
            AllCond: "all",
            NotCond: "not",
            FieldCond: "field",
            RulesFiredCond: "rules_fired",
            NoRuleAboveCond: "no_rule_fired_above",
        }.get(type(value))
    return None


Condition = Annotated[
    Union[
        Annotated[StrictStr, Tag("name")],
        Annotated[AnyCond, Tag("any")],
        Annotated[AllCond, Tag("all")],
        Annotated[NotCond, Tag("not")],
        Annotated[FieldCond, Tag("field")],
        Annotated[RulesFiredCond, Tag("rules_fired")],
        Annotated[NoRuleAboveCond, Tag("no_rule_fired_above")],
    ],
    Discriminator(
        _condition_kind,
        custom_error_type="condition",
        custom_error_message=(
            "a condition is a field or fact name, or a mapping with one of: "
            "any, all, not, field, rules_fired, no_rule_fired_above"
        ),
    ),
]
for _model in (AnyCond, AllCond, NotCond):
    _model.model_rebuild()


class Rule(_Strict):
    id: StrictStr = Field(pattern=r"^[A-Z][A-Z0-9_]{0,15}$")
    tier: StrictStr
    title: StrictStr = Field(min_length=1)
    condition: StrictStr = Field(min_length=1)
    when: Condition
    cause: StrictStr | None = None
    rationale: StrictStr = Field(min_length=1)
    source: SourceKeys


class TriageRulesFile(_Strict):
    parameters: dict[StrictStr, Parameter]
    facts: dict[StrictStr, Fact]
    rules: list[Rule] = Field(min_length=1)


class DrugClass(_Strict):
    label: StrictStr
    sact: StrictBool


class Drug(_Strict):
    name: StrictStr = Field(min_length=1)
    # "class" is a Python keyword; the file says `class:`.
    drug_class: StrictStr = Field(alias="class")
    neurotoxic: StrictBool = False
    route: Literal["infusion", "injection", "oral_daily"]
    synonyms: list[StrictStr] = []


class Window(_Strict):
    start_day: StrictInt = Field(ge=0)
    end_day: StrictInt | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end_day is not None and self.end_day < self.start_day:
            raise ValueError("end_day is before start_day")
        return self


class Effect(_Strict):
    cause: StrictStr
    drugs: list[StrictStr] = Field(min_length=1)
    window: Window
    explains_back_pain: StrictBool
    note: StrictStr
    source: SourceKeys


class DrugsFile(_Strict):
    classes: dict[StrictStr, DrugClass]
    drugs: list[Drug] = Field(min_length=1)
    effects: list[Effect]


class CauseGuidance(_Strict):
    label: StrictStr
    short: StrictStr = Field(min_length=1, max_length=24)  # for tables
    imaging: list[StrictStr]
    referral: list[StrictStr]
    advice: list[StrictStr]
    source: SourceKeys


class SafetyNet(_Strict):
    now: StrictStr
    within_24_hours: StrictStr
    source: SourceKeys


class GuidanceFile(_Strict):
    causes: dict[StrictStr, CauseGuidance] = Field(min_length=1)
    default: CauseGuidance
    safety_net: SafetyNet


# --------------------------------------------------------------------------- loading


def _loc(loc: tuple[Any, ...]) -> str:
    """Format a pydantic location as `rules[3].when.any[0].op`, dropping union tags."""
    parts: list[Any] = []
    for part in loc:
        prev = parts[-1] if parts else None
        holds_condition = prev in ("when", "not") or (
            isinstance(prev, int) and len(parts) >= 2 and parts[-2] in ("any", "all")
        )
        if holds_condition and isinstance(part, str):
            parts.append(_TAG)  # the discriminator's tag: the value's kind, not a field
            continue
        parts.append(part)
    out = ""
    for part in parts:
        if part is _TAG:
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_TAG = object()


def _validate(model: type[BaseModel], data: Any, file: str) -> Any:
    if not isinstance(data, dict):
        raise RulesError(file, "", "the file must hold a mapping at its top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field (not part of the rules format)"
        elif err["type"] == "missing":
            message = "required field is missing"
        raise RulesError(file, _loc(err["loc"]), message) from None


def normalise_drug_name(name: str) -> str:
    """Case, spaces, hyphens and underscores do not matter in drug names."""
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


DRUG_NAME_SQL = r"regexp_replace(lower(trim({col})), '[\s_\-]+', ' ', 'g')"
# A US biosimilar's name is the generic with a four-letter suffix (pegfilgrastim-jmdb,
# trastuzumab-dkst): a name not found as written is looked up without it.
BIOSIMILAR_SUFFIX = r" [a-z]{4}$"


@dataclass(frozen=True)
class DrugInfo:
    generic: str
    drug_class: str
    class_label: str
    sact: bool
    neurotoxic: bool
    route: str


class RuleSet:
    """A validated, internally consistent rule set with its version."""

    def __init__(
        self,
        directory: Path,
        version: str,
        sources: SourcesFile,
        tiers: TiersFile,
        triage: TriageRulesFile,
        drugs: DrugsFile,
        guidance: GuidanceFile,
    ):
        self.directory = directory
        self.version = version
        self.sources = sources.sources
        self.tiers = tiers.tiers
        self.parameters = triage.parameters
        self.facts = triage.facts
        self.rules = triage.rules
        self.drug_classes = drugs.classes
        self.drugs = drugs.drugs
        self.effects = drugs.effects
        self.guidance = guidance

    # ---- tiers
    @cached_property
    def tier_rank(self) -> dict[str, int]:
        """Lowest tier is 1; the first tier in the file is the highest."""
        n = len(self.tiers)
        return {t.id: n - i for i, t in enumerate(self.tiers)}

    @cached_property
    def tier_by_id(self) -> dict[str, Tier]:
        return {t.id: t for t in self.tiers}

    @property
    def tier_ids(self) -> list[str]:
        """Highest first."""
        return [t.id for t in self.tiers]

    def respond_within_minutes(self, tier: str) -> int:
        return self.tier_by_id[tier].respond_within_minutes

    # ---- rules
    @cached_property
    def rule_by_id(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}

    def parameter(self, name: str) -> Any:
        return self.parameters[name].value

    # ---- causes
    @property
    def cause_codes(self) -> list[str]:
        """In the order of guidance.yaml, which runs from the most to the least serious."""
        return list(self.guidance.causes)

    def cause_label(self, cause: str) -> str:
        return self.guidance.causes[cause].label

    def cause_short(self, cause: str) -> str:
        return self.guidance.causes[cause].short

    # ---- drugs
    @cached_property
    def drug_lookup(self) -> dict[str, DrugInfo]:
        """Normalised name or synonym -> drug."""
        out: dict[str, DrugInfo] = {}
        for d in self.drugs:
            cls = self.drug_classes[d.drug_class]
            info = DrugInfo(d.name, d.drug_class, cls.label, cls.sact, d.neurotoxic, d.route)
            for name in (d.name, *d.synonyms):
                out[normalise_drug_name(name)] = info
        return out

    def resolve_drug(self, name: str) -> DrugInfo | None:
        key = normalise_drug_name(name)
        return self.drug_lookup.get(key) or self.drug_lookup.get(re.sub(BIOSIMILAR_SUFFIX, "", key))

    def effects_for(self, generic: str) -> list[Effect]:
        return [e for e in self.effects if generic in e.drugs]

    def source_titles(self, keys: list[str]) -> list[str]:
        return [self.sources[k].title for k in keys]


def _file_digest(directory: Path) -> str:
    h = hashlib.sha256()
    for name in RULE_FILES:
        h.update(name.encode())
        h.update(b"\0")
        h.update((directory / name).read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:12]


def load_rules(directory: Path | str | None = None) -> RuleSet:
    """Load and validate every rules file; raise RulesError on the first problem found."""
    if directory is None:
        from dashboard.config import get_settings

        directory = get_settings().rules_dir
    directory = Path(directory)
    if not directory.is_dir():
        raise RulesError(str(directory), "", "the rules folder does not exist")
    stray = sorted(
        p.name for p in directory.glob("*.y*ml") if p.name not in RULE_FILES
    )
    if stray:
        raise RulesError(stray[0], "", f"unexpected rules file (expected only {', '.join(RULE_FILES)})")
    raw = {name: _read_yaml(directory / name) for name in RULE_FILES}
    sources = _validate(SourcesFile, raw["sources.yaml"], "sources.yaml")
    tiers = _validate(TiersFile, raw["tiers.yaml"], "tiers.yaml")
    triage = _validate(TriageRulesFile, raw["triage_rules.yaml"], "triage_rules.yaml")
    drugs = _validate(DrugsFile, raw["drugs.yaml"], "drugs.yaml")
    guidance = _validate(GuidanceFile, raw["guidance.yaml"], "guidance.yaml")
    ruleset = RuleSet(directory, _file_digest(directory), sources, tiers, triage, drugs, guidance)
    _check(ruleset)
    return ruleset


# --------------------------------------------------------------------------- cross-checks


def _check_sources(rs: RuleSet, file: str, field: str, keys: list[str]) -> None:
    for i, key in enumerate(keys):
        if key not in rs.sources:
            raise RulesError(file, f"{field}[{i}]", f"unknown source {key!r} (not in sources.yaml)")


def _check(rs: RuleSet) -> None:
    # tiers
    seen: set[str] = set()
    for i, t in enumerate(rs.tiers):
        if t.id in seen:
            raise RulesError("tiers.yaml", f"tiers[{i}].id", f"duplicate tier {t.id!r}")
        seen.add(t.id)
        _check_sources(rs, "tiers.yaml", f"tiers[{i}].source", t.source)
    targets = [t.respond_within_minutes for t in rs.tiers]
    if targets != sorted(targets):
        raise RulesError(
            "tiers.yaml", "tiers", "a higher tier must not have a longer response target than a lower one"
        )

    # drugs
    for name in rs.drug_classes:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise RulesError("drugs.yaml", f"classes.{name}", "class ids are lower_snake_case")
    names: dict[str, str] = {}
    for i, d in enumerate(rs.drugs):
        if d.drug_class not in rs.drug_classes:
            raise RulesError("drugs.yaml", f"drugs[{i}].class", f"unknown class {d.drug_class!r}")
        for j, name in enumerate((d.name, *d.synonyms)):
            key = normalise_drug_name(name)
            field = f"drugs[{i}].name" if j == 0 else f"drugs[{i}].synonyms[{j - 1}]"
            if not key:
                raise RulesError("drugs.yaml", field, "empty drug name")
            if key in names and names[key] != d.name:
                raise RulesError("drugs.yaml", field, f"{name!r} already names {names[key]!r}")
            if key in names and names[key] == d.name and j > 0:
                raise RulesError("drugs.yaml", field, f"{name!r} is listed twice for {d.name!r}")
            names[key] = d.name
    generics = {d.name for d in rs.drugs}
    for i, e in enumerate(rs.effects):
        if e.cause not in rs.guidance.causes:
            raise RulesError("drugs.yaml", f"effects[{i}].cause", f"unknown cause {e.cause!r} (no guidance)")
        for j, dn in enumerate(e.drugs):
            if dn not in generics:
                raise RulesError("drugs.yaml", f"effects[{i}].drugs[{j}]", f"unknown drug {dn!r}")
        _check_sources(rs, "drugs.yaml", f"effects[{i}].source", e.source)
    # The neuropathy window and the drugs flagged neurotoxic must agree.
    cipn = {dn for e in rs.effects if e.cause == "cipn" for dn in e.drugs}
    flagged = {d.name for d in rs.drugs if d.neurotoxic}
    if cipn and cipn != flagged:
        diff = sorted(cipn ^ flagged)
        raise RulesError(
            "drugs.yaml", "effects (cipn).drugs", f"must list exactly the neurotoxic drugs; differs on {diff}"
        )

    # guidance
    for cause, g in rs.guidance.causes.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", cause):
            raise RulesError("guidance.yaml", f"causes.{cause}", "cause codes are lower_snake_case")
        _check_sources(rs, "guidance.yaml", f"causes.{cause}.source", g.source)
    _check_sources(rs, "guidance.yaml", "default.source", rs.guidance.default.source)
    _check_sources(rs, "guidance.yaml", "safety_net.source", rs.guidance.safety_net.source)

    # parameters and facts
    file = "triage_rules.yaml"
    for name, p in rs.parameters.items():
        _check_sources(rs, file, f"parameters.{name}.source", p.source)
        for k, alt in enumerate(p.alternatives):
            _check_sources(rs, file, f"parameters.{name}.alternatives[{k}].source", alt.source)
    for name, fact in rs.facts.items():
        if name in FLAG_FIELDS or name in PATIENT_FLAGS or name in BUILTIN_FACTS:
            raise RulesError(file, f"facts.{name}", "a fact may not reuse a field name")
        sel = fact.doses
        if sel.drug_class is not None and sel.drug_class not in rs.drug_classes:
            raise RulesError(file, f"facts.{name}.doses.drug_class", f"unknown class {sel.drug_class!r}")
        for j, dn in enumerate(sel.drugs or []):
            if dn not in generics:
                raise RulesError(file, f"facts.{name}.doses.drugs[{j}]", f"unknown drug {dn!r}")
        for bound in ("min", "max"):
            v = getattr(fact.days_before_report, bound)
            if v is not None:
                _resolve_value(rs, v, file, f"facts.{name}.days_before_report.{bound}", kind="int")

    # rules
    ids: set[str] = set()
    for i, r in enumerate(rs.rules):
        where = f"rules[{i}]"
        if r.id in ids:
            raise RulesError(file, f"{where}.id", f"duplicate rule id {r.id!r}")
        ids.add(r.id)
        if r.tier not in rs.tier_rank:
            raise RulesError(file, f"{where}.tier", f"unknown tier {r.tier!r}")
        if r.cause is not None and r.cause not in rs.guidance.causes:
            raise RulesError(file, f"{where}.cause", f"unknown cause {r.cause!r} (no guidance)")
        _check_sources(rs, file, f"{where}.source", r.source)
    for i, r in enumerate(rs.rules):
        _check_condition(rs, r.when, file, f"rules[{i}].when", ids)
    rule_order(rs)  # raises on a cycle


def _resolve_value(rs: RuleSet, value: Any, file: str, field: str, kind: str) -> Any:
    """Resolve a "$parameter" reference and check the value's kind."""
    if isinstance(value, str) and value.startswith("$"):
        name = value[1:]
        if name not in rs.parameters:
            raise RulesError(file, field, f"unknown parameter {value!r}")
        value = rs.parameters[name].value
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "pair": isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and value[0] <= value[1],
    }[kind]
    if not ok:
        expected = {"int": "a whole number", "number": "a number", "pair": "[low, high] numbers"}[kind]
        raise RulesError(file, field, f"expected {expected}, got {value!r}")
    return value


def resolve_value(rs: RuleSet, value: Any) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        return rs.parameters[value[1:]].value
    return value


def _check_condition(rs: RuleSet, cond: Any, file: str, field: str, rule_ids: set[str]) -> None:
    if isinstance(cond, str):
        known = set(FLAG_FIELDS) | set(PATIENT_FLAGS) | set(rs.facts) | set(BUILTIN_FACTS)
        if cond not in known:
            raise RulesError(file, field, f"unknown field or fact {cond!r}")
        return
    if isinstance(cond, (AnyCond, AllCond)):
        items = cond.any if isinstance(cond, AnyCond) else cond.all
        key = "any" if isinstance(cond, AnyCond) else "all"
        for j, c in enumerate(items):
            _check_condition(rs, c, file, f"{field}.{key}[{j}]", rule_ids)
        return
    if isinstance(cond, NotCond):
        _check_condition(rs, cond.not_, file, f"{field}.not", rule_ids)
        return
    if isinstance(cond, FieldCond):
        f, op = cond.field, cond.op
        if f in NUMBER_FIELDS:
            if op not in NUMERIC_OPS:
                raise RulesError(file, f"{field}.op", f"{op!r} does not apply to the number {f!r}")
            kind = "pair" if op == "between" else "number"
            _resolve_value(rs, cond.value, file, f"{field}.value", kind)
        elif f in ENUM_FIELDS:
            if op not in ENUM_OPS:
                raise RulesError(file, f"{field}.op", f"{op!r} does not apply to {f!r} (use == or in)")
            values = cond.value if op == "in" else [cond.value]
            if not isinstance(values, list) or not values:
                raise RulesError(file, f"{field}.value", "expected a list of values")
            for v in values:
                if v not in ENUM_FIELDS[f]:
                    raise RulesError(
                        file, f"{field}.value", f"{v!r} is not a value of {f!r} ({', '.join(ENUM_FIELDS[f])})"
                    )
        elif f in TEXT_FIELDS:
            if op not in TEXT_OPS:
                raise RulesError(file, f"{field}.op", f"{op!r} does not apply to {f!r} (use contains_any)")
            ok = isinstance(cond.value, list) and cond.value and all(
                isinstance(v, str) and re.fullmatch(r"[a-z][a-z ]*", v) for v in cond.value
            )
            if not ok:
                raise RulesError(file, f"{field}.value", "expected a list of lower-case words")
        else:
            raise RulesError(file, f"{field}.field", f"unknown field {f!r}")
        return
    if isinstance(cond, RulesFiredCond):
        for j, rid in enumerate(cond.rules_fired):
            if rid not in rule_ids:
                raise RulesError(file, f"{field}.rules_fired[{j}]", f"unknown rule {rid!r}")
        if len(set(cond.rules_fired)) != len(cond.rules_fired):
            raise RulesError(file, f"{field}.rules_fired", "a rule is listed twice")
        if cond.at_least > len(cond.rules_fired):
            raise RulesError(file, f"{field}.at_least", "more than the number of rules listed")
        return
    if isinstance(cond, NoRuleAboveCond):
        if cond.no_rule_fired_above not in rs.tier_rank:
            raise RulesError(file, f"{field}.no_rule_fired_above", f"unknown tier {cond.no_rule_fired_above!r}")
        return
    raise RulesError(file, field, "not a condition")  # pragma: no cover - the models exclude it


def rule_dependencies(rs: RuleSet, rule: Rule) -> set[str]:
    """The rules whose outcome this rule's condition reads."""
    deps: set[str] = set()

    def walk(c: Any) -> None:
        if isinstance(c, AnyCond):
            for x in c.any:
                walk(x)
        elif isinstance(c, AllCond):
            for x in c.all:
                walk(x)
        elif isinstance(c, NotCond):
            walk(c.not_)
        elif isinstance(c, RulesFiredCond):
            deps.update(c.rules_fired)
        elif isinstance(c, NoRuleAboveCond):
            floor = rs.tier_rank[c.no_rule_fired_above]
            deps.update(r.id for r in rs.rules if rs.tier_rank[r.tier] > floor)

    walk(rule.when)
    return deps


def rule_order(rs: RuleSet) -> list[Rule]:
    """Rules in an order where each comes after the rules it reads; a cycle is an error."""
    done: list[Rule] = []
    state: dict[str, int] = {}

    def visit(rule: Rule, trail: list[str]) -> None:
        if state.get(rule.id) == 2:
            return
        if state.get(rule.id) == 1:
            cycle = " -> ".join([*trail[trail.index(rule.id):], rule.id])
            i = rs.rules.index(rule)
            raise RulesError("triage_rules.yaml", f"rules[{i}].when", f"rules depend on each other: {cycle}")
        state[rule.id] = 1
        for dep in sorted(rule_dependencies(rs, rule)):
            if dep == rule.id:
                i = rs.rules.index(rule)
                raise RulesError("triage_rules.yaml", f"rules[{i}].when", f"rule {rule.id} reads itself")
            visit(rs.rule_by_id[dep], [*trail, rule.id])
        state[rule.id] = 2
        done.append(rule)

    for r in rs.rules:
        visit(r, [])
    return done
