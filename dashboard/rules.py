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

RULE_FILES = ("sources.yaml", "tiers.yaml", "cancer_types.yaml", "triage_rules.yaml", "drugs.yaml", "guidance.yaml",
              "fhir_codes.yaml")

# The report and patient fields a condition may test, with their kinds. Enumerations list every
# allowed value so that a misspelt value in a rule ("thorasic") fails on load.
FLAG_FIELDS = REPORT_FLAGS
NUMBER_FIELDS: dict[str, str] = {"pain_score": "int", "duration_days": "int", "temperature_c": "float"}
NUMERIC_OPS = (">=", "<=", ">", "<", "==", "between")
ENUM_OPS = ("==", "in")
REQUIRED_FACTS = ("recent_sact",)
# The tiers the code and the store know, most urgent first (the store's CHECK constraints, the
# forms, the charts' colours and the banner name them): tiers.yaml must define exactly these.
KNOWN_TIERS = ("emergency", "urgent", "soon", "routine")
# The parameters the code reads by name (the red-flag words, the recent-SACT sentence), with their kind.
REQUIRED_PARAMETERS = {"neutropenic_fever_c": "number", "neutropenic_low_temperature_c": "number",
                       "sact_lookback_days": "int"}
# Fields that may be missing (null): the ones an {unknown: F} condition may test.
NULLABLE_FIELDS = ("duration_days", "temperature_c", *ENUM_FIELDS)


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
    citation: StrictStr = Field(min_length=1)
    status: StrictStr = Field(min_length=1)
    fact: StrictStr = Field(min_length=1)
    year: StrictInt | None = Field(default=None, ge=1900, le=2100)
    url: StrictStr | None = None

    @property
    def title(self) -> str:
        return self.citation


class SourcesFile(_Strict):
    sources: dict[StrictStr, Source] = Field(min_length=1)


class Tier(_Strict):
    id: StrictStr
    label: StrictStr
    meaning: StrictStr
    respond_within_minutes: StrictInt = Field(gt=0, le=60 * 24 * 30)
    # After a call-back that did not reach the patient, the report comes back up after this long.
    recall_after_minutes: StrictInt = Field(gt=0, le=60 * 24 * 7)
    # An answered report still open this long after it was made is flagged on the queue.
    resolve_within_minutes: StrictInt = Field(gt=0, le=60 * 24 * 90)
    source: list[StrictStr]
    note: StrictStr | None = None

    @model_validator(mode="after")
    def _sourced(self) -> Tier:
        if not self.source and not self.note:
            raise ValueError("a tier without a source needs a note saying whose default its target is")
        return self


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
    """Which doses and courses a fact looks at: by SACT status, neurotoxicity, class, generic name,
    or the drugs the rules do not know (``unrecognised: true``); ``counted_as`` says why they count."""

    sact: StrictBool | None = None
    neurotoxic: StrictBool | None = None
    drug_class: StrictStr | None = None
    drugs: list[StrictStr] | None = None
    unrecognised: Literal[True] | None = None
    counted_as: StrictStr | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")

    @model_validator(mode="after")
    def _something(self) -> DoseSelector:
        known = (self.sact, self.neurotoxic, self.drug_class, self.drugs)
        if self.unrecognised and any(v is not None for v in known):
            raise ValueError("unrecognised: true selects drugs the rules do not know; it takes no other criterion")
        if not self.unrecognised and all(v is None for v in known):
            raise ValueError("select by at least one of sact, neurotoxic, drug_class, drugs, unrecognised")
        return self


class DayRange(_Strict):
    min: StrictInt | StrictStr = 0
    max: StrictInt | StrictStr | None = None
    min_exclusive: StrictBool = False


class Fact(_Strict):
    description: StrictStr
    exposure: Literal["any", "first", "last", "running"]
    of: list[DoseSelector] = Field(min_length=1)
    days_before_report: DayRange = DayRange()


# Conditions: a small, closed language, compiled to SQL by dashboard.triage.


class AnyCond(_Strict):
    any: list[Condition] = Field(min_length=1)


class AllCond(_Strict):
    all: list[Condition] = Field(min_length=1)


class NotCond(_Strict):
    not_: Condition = Field(alias="not")


class FieldCond(_Strict):
    field: StrictStr
    op: Literal[">=", "<=", ">", "<", "==", "in", "between"]
    value: Any


class RulesFiredCond(_Strict):
    rules_fired: list[StrictStr] = Field(min_length=1)
    at_least: StrictInt = Field(ge=1)


class NoRuleAboveCond(_Strict):
    no_rule_fired_above: StrictStr


class UnknownCond(_Strict):
    unknown: StrictStr


class EffectSelector(_Strict):
    """Which drug effects: by how the report's timing fits them, and whether they may lower a tier."""

    status: Literal["explained", "possible", "any"] = "any"
    lowers_moderate_pain: StrictBool | None = None


class DrugEffectCond(_Strict):
    drug_effect: EffectSelector


_KINDS = {
    "any": "any",
    "all": "all",
    "not": "not",
    "field": "field",
    "rules_fired": "rules_fired",
    "no_rule_fired_above": "no_rule_fired_above",
    "unknown": "unknown",
    "drug_effect": "drug_effect",
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
            UnknownCond: "unknown",
            DrugEffectCond: "drug_effect",
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
        Annotated[UnknownCond, Tag("unknown")],
        Annotated[DrugEffectCond, Tag("drug_effect")],
    ],
    Discriminator(
        _condition_kind,
        custom_error_type="condition",
        custom_error_message=(
            "a condition is a field or fact name, or a mapping with one of: "
            "any, all, not, field, unknown, rules_fired, no_rule_fired_above, drug_effect"
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
    # The rule's causes are those of the drug effects that fit (R2: the effect that explains the pain).
    causes_from_drug_effects: EffectSelector | None = None
    rationale: StrictStr = Field(min_length=1)
    source: SourceKeys

    @model_validator(mode="after")
    def _one_cause_kind(self) -> Rule:
        if self.cause is not None and self.causes_from_drug_effects is not None:
            raise ValueError("a rule has a cause or causes_from_drug_effects, not both")
        return self


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
    # Taken continuously: each medication entry is a course (given_at to stopped_at), not a dose.
    continuous: StrictBool = False
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
    onset_window: Window
    lasts_at_most_days: StrictInt | None = Field(ge=0)
    back_pain: StrictBool
    lowers_moderate_pain: StrictBool
    note: StrictStr
    source: SourceKeys

    @model_validator(mode="after")
    def _bounded(self) -> Effect:
        if self.back_pain and (self.onset_window.end_day is None or self.lasts_at_most_days is None):
            raise ValueError("a back-pain effect needs a bounded onset_window and lasts_at_most_days")
        if self.lowers_moderate_pain and not self.back_pain:
            raise ValueError("only a back-pain effect may lower moderate pain")
        return self

    @property
    def window(self) -> Window:
        return self.onset_window


class DrugsFile(_Strict):
    classes: dict[StrictStr, DrugClass]
    drugs: list[Drug] = Field(min_length=1)
    effects: list[Effect]


class GuidanceLine(_Strict):
    topic: StrictStr = Field(pattern=r"^[a-z][a-z0-9_]*$")
    within_hours: StrictInt = Field(ge=0, le=24 * 365)
    text: StrictStr = Field(min_length=1)
    first: StrictBool = False
    only_for_rules: list[StrictStr] = []


class AdviceLine(_Strict):
    """A line read to the patient; a topic is said once however many leading causes name it."""

    topic: StrictStr = Field(pattern=r"^[a-z][a-z0-9_]*$")
    text: StrictStr = Field(min_length=1)


class StaffNote(_Strict):
    """A note for the team, never read to the patient; its own sources, or else its cause's."""

    text: StrictStr = Field(min_length=1)
    source: list[StrictStr] = []


class TierGuidance(_Strict):
    imaging: list[GuidanceLine]
    referral: list[GuidanceLine]
    advice: list[AdviceLine]  # read to the patient
    analgesic_advice: list[AdviceLine]  # read to the patient, never beside an emergency
    staff_notes: list[StaffNote] = []  # for the team only
    source: SourceKeys


class CauseGuidance(TierGuidance):
    label: StrictStr
    short: StrictStr = Field(min_length=1, max_length=24)  # for tables


class CancerType(_Strict):
    label: StrictStr
    synonyms: list[StrictStr] = []


class CancerTypesFile(_Strict):
    cancer_types: dict[StrictStr, CancerType] = Field(min_length=1)


class SafetyNet(_Strict):
    now: StrictStr
    within_24_hours: StrictStr
    source: SourceKeys


class GuidanceFile(_Strict):
    causes: dict[StrictStr, CauseGuidance] = Field(min_length=1)
    tier_defaults: dict[StrictStr, TierGuidance]
    safety_net: SafetyNet


class CodeSets(_Strict):
    """What a diagnosis code sets on the patient's record (at least one)."""

    cancer_type: StrictStr | None = None
    bone_metastases: Literal[True] | None = None
    osteoporosis: Literal[True] | None = None

    @model_validator(mode="after")
    def _something(self) -> "CodeSets":
        if self.cancer_type is None and self.bone_metastases is None and self.osteoporosis is None:
            raise ValueError("sets nothing: give cancer_type, bone_metastases or osteoporosis")
        return self


Checked = Literal["none", "hl7_example", "mcode_example"]


class ConditionCode(_Strict):
    system: Literal["snomed", "icd10"]
    code: StrictStr | None = None  # matched exactly
    prefix: StrictStr | None = None  # ICD-10: the category and everything under it
    display: StrictStr
    sets: CodeSets
    checked_against: Checked

    @model_validator(mode="after")
    def _one_match(self) -> "ConditionCode":
        if (self.code is None) == (self.prefix is None):
            raise ValueError("give exactly one of code and prefix")
        if self.prefix is not None and self.system != "icd10":
            raise ValueError("prefix matching is for ICD-10 categories only")
        return self


class ObservationCode(_Strict):
    system: Literal["loinc"]
    code: StrictStr
    display: StrictStr
    field: Literal["pain_score", "temperature_c"]
    checked_against: Checked


class MedicationCode(_Strict):
    system: Literal["rxnorm", "dmd"]
    code: StrictStr
    display: StrictStr
    drug: StrictStr  # a drug of drugs.yaml (checked on load)
    checked_against: Checked


class FhirCodesFile(_Strict):
    systems: dict[Literal["snomed", "icd10", "loinc", "rxnorm", "dmd"], Annotated[list[StrictStr], Field(min_length=1)]]
    conditions: list[ConditionCode]
    observations: list[ObservationCode]
    medications: list[MedicationCode] = []


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


# How drug (and cancer-type) names are matched, in one definition that Python and DuckDB (RE2) both
# run as written: case does not matter, and neither do ASCII white space, hyphens and underscores
# (all are ignored). Nothing else is removed from a name: a trailing word ("pegfilgrastim held")
# leaves it unrecognised.
NAME_IGNORED = r"[\t\n\v\f\r _-]+"
# A US biosimilar's name is the generic with a four-letter suffix joined by a hyphen
# (pegfilgrastim-jmdb, trastuzumab-dkst): a name not found as written is looked up without it.
BIOSIMILAR_SUFFIX = r"-[a-z]{4}[\t\n\v\f\r ]*$"  # on the lower-case name


def normalise_drug_name(name: str) -> str:
    """A drug (or cancer-type) name as it is matched: lower case, without white space, hyphens or
    underscores. The engine's SQL is :func:`drug_name_sql`, the same definition."""
    return re.sub(NAME_IGNORED, "", name.lower())


def biosimilar_base(name: str) -> str | None:
    """The name without a US biosimilar's suffix (still to normalise), or None when it has none."""
    lowered = name.lower()
    base = re.sub(BIOSIMILAR_SUFFIX, "", lowered, count=1)
    return base if base != lowered else None


def drug_name_sql(col: str) -> str:
    """:func:`normalise_drug_name` in DuckDB SQL, for a column or expression."""
    return f"regexp_replace(lower({col}), '{NAME_IGNORED}', '', 'g')"


def biosimilar_base_sql(col: str) -> tuple[str, str]:
    """:func:`biosimilar_base` in DuckDB SQL: (whether the name has the suffix, the name without it)."""
    return (f"regexp_matches(lower({col}), '{BIOSIMILAR_SUFFIX}')",
            f"regexp_replace(lower({col}), '{BIOSIMILAR_SUFFIX}', '')")


@dataclass(frozen=True)
class DrugInfo:
    generic: str
    drug_class: str
    class_label: str
    sact: bool
    neurotoxic: bool
    continuous: bool


class RuleSet:
    """A validated, internally consistent rule set with its version."""

    def __init__(
        self,
        directory: Path,
        version: str,
        sources: SourcesFile,
        tiers: TiersFile,
        cancer_types: CancerTypesFile,
        triage: TriageRulesFile,
        drugs: DrugsFile,
        guidance: GuidanceFile,
        fhir_codes: FhirCodesFile,
    ):
        self.directory = directory
        self.version = version
        self.sources = sources.sources
        self.tiers = tiers.tiers
        self.cancer_types = cancer_types.cancer_types
        self.parameters = triage.parameters
        self.facts = triage.facts
        self.rules = triage.rules
        self.drug_classes = drugs.classes
        self.drugs = drugs.drugs
        self.effects = drugs.effects
        self.guidance = guidance
        self.fhir_codes = fhir_codes

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

    def recall_after_minutes(self, tier: str) -> int:
        return self.tier_by_id[tier].recall_after_minutes

    def resolve_within_minutes(self, tier: str) -> int:
        return self.tier_by_id[tier].resolve_within_minutes

    # ---- rules
    @cached_property
    def rule_by_id(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}

    def parameter(self, name: str) -> Any:
        return self.parameters[name].value

    @cached_property
    def back_pain_effects(self) -> list[Effect]:
        """The effects listed in a report's drug_effects, in file order."""
        return [e for e in self.effects if e.back_pain]

    # ---- causes
    @property
    def cause_codes(self) -> list[str]:
        """In the order of guidance.yaml, which runs from the most to the least serious."""
        return list(self.guidance.causes)

    def cause_label(self, cause: str) -> str:
        return self.guidance.causes[cause].label

    def cause_short(self, cause: str) -> str:
        return self.guidance.causes[cause].short

    # ---- cancer types
    @cached_property
    def cancer_lookup(self) -> dict[str, str]:
        """Normalised code, label or synonym -> cancer type code."""
        out: dict[str, str] = {}
        for code, ct in self.cancer_types.items():
            for name in (code, *ct.synonyms):
                out[normalise_drug_name(name)] = code
        return out

    def resolve_cancer_type(self, name: str) -> str | None:
        return self.cancer_lookup.get(normalise_drug_name(name))

    # ---- drugs
    @cached_property
    def drug_lookup(self) -> dict[str, DrugInfo]:
        """Normalised name or synonym -> drug."""
        out: dict[str, DrugInfo] = {}
        for d in self.drugs:
            cls = self.drug_classes[d.drug_class]
            info = DrugInfo(d.name, d.drug_class, cls.label, cls.sact, d.neurotoxic, d.continuous)
            for name in (d.name, *d.synonyms):
                out[normalise_drug_name(name)] = info
        return out

    def resolve_drug(self, name: str) -> DrugInfo | None:
        """The drug a name means: as written, or without a US biosimilar's four-letter suffix."""
        key = normalise_drug_name(name)
        if key in self.drug_lookup:
            return self.drug_lookup[key]
        base = biosimilar_base(name)
        return self.drug_lookup.get(normalise_drug_name(base)) if base is not None else None

    def effects_for(self, generic: str) -> list[Effect]:
        return [e for e in self.effects if generic in e.drugs]

    def source_titles(self, keys: list[str]) -> list[str]:
        return [self.sources[k].citation for k in keys]


def _file_digest(directory: Path) -> str:
    h = hashlib.sha256()
    for name in RULE_FILES:
        h.update(name.encode())
        h.update(b"\0")
        h.update((directory / name).read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:12]


def rules_digest(directory: Path | str) -> str:
    """The version the rules in a folder would have, without validating them (to notice a change).
    Raises RulesError for a folder or file that cannot be read."""
    directory = Path(directory)
    if not directory.is_dir():
        raise RulesError(str(directory), "", "the rules folder does not exist")
    try:
        return _file_digest(directory)
    except FileNotFoundError as exc:
        raise RulesError(Path(exc.filename or "").name, "", "file is missing") from None
    except OSError as exc:
        raise RulesError(Path(exc.filename or "").name, "", f"cannot be read ({exc.strerror})") from None


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
    cancers = _validate(CancerTypesFile, raw["cancer_types.yaml"], "cancer_types.yaml")
    triage = _validate(TriageRulesFile, raw["triage_rules.yaml"], "triage_rules.yaml")
    drugs = _validate(DrugsFile, raw["drugs.yaml"], "drugs.yaml")
    guidance = _validate(GuidanceFile, raw["guidance.yaml"], "guidance.yaml")
    codes = _validate(FhirCodesFile, raw["fhir_codes.yaml"], "fhir_codes.yaml")
    ruleset = RuleSet(directory, _file_digest(directory), sources, tiers, cancers, triage, drugs, guidance, codes)
    _check(ruleset)
    return ruleset


# --------------------------------------------------------------------------- cross-checks


def _check_sources(rs: RuleSet, file: str, field: str, keys: list[str]) -> None:
    for i, key in enumerate(keys):
        if key not in rs.sources:
            raise RulesError(file, f"{field}[{i}]", f"unknown source {key!r} (not in sources.yaml)")


def _check_names(file: str, field: str, names: dict[str, str], code: str, spellings: list[str], what: str) -> None:
    """Each spelling normalises to a distinct, non-empty name."""
    for j, name in enumerate(spellings):
        key = normalise_drug_name(name)
        where = f"{field}.name" if j == 0 else f"{field}.synonyms[{j - 1}]"
        if not key:
            raise RulesError(file, where, f"empty {what} name")
        if key in names and names[key] != code:
            raise RulesError(file, where, f"{name!r} already names {names[key]!r}")
        if key in names and j > 0:
            raise RulesError(file, where, f"{name!r} is listed twice for {code!r}")
        names[key] = code


def _check_fhir_codes(rs: RuleSet) -> None:
    codes = rs.fhir_codes
    for i, c in enumerate(codes.conditions):
        if c.system not in codes.systems:
            raise RulesError("fhir_codes.yaml", f"conditions[{i}].system", f"{c.system!r} is not in systems")
        if c.sets.cancer_type is not None and c.sets.cancer_type not in rs.cancer_types:
            raise RulesError("fhir_codes.yaml", f"conditions[{i}].sets.cancer_type",
                             f"unknown cancer type {c.sets.cancer_type!r} (cancer_types.yaml)")
    for i, o in enumerate(codes.observations):
        if o.system not in codes.systems:
            raise RulesError("fhir_codes.yaml", f"observations[{i}].system", f"{o.system!r} is not in systems")
    for i, m in enumerate(codes.medications):
        if m.system not in codes.systems:
            raise RulesError("fhir_codes.yaml", f"medications[{i}].system", f"{m.system!r} is not in systems")
        if rs.resolve_drug(m.drug) is None:
            raise RulesError("fhir_codes.yaml", f"medications[{i}].drug", f"unknown drug {m.drug!r} (drugs.yaml)")


def _check(rs: RuleSet) -> None:
    # tiers
    seen: set[str] = set()
    for i, t in enumerate(rs.tiers):
        if t.id in seen:
            raise RulesError("tiers.yaml", f"tiers[{i}].id", f"duplicate tier {t.id!r}")
        seen.add(t.id)
        _check_sources(rs, "tiers.yaml", f"tiers[{i}].source", t.source)
    ids = [t.id for t in rs.tiers]
    for i, tid in enumerate(ids):
        if tid not in KNOWN_TIERS:
            raise RulesError("tiers.yaml", f"tiers[{i}].id",
                             f"unknown tier {tid!r} (the code knows {', '.join(KNOWN_TIERS)})")
    if ids != list(KNOWN_TIERS):
        missing = [t for t in KNOWN_TIERS if t not in ids]
        raise RulesError("tiers.yaml", "tiers", f"the tier {missing[0]!r} is missing" if missing else
                         f"the tiers must run {', '.join(KNOWN_TIERS)} (most urgent first)")
    targets = [t.respond_within_minutes for t in rs.tiers]
    if targets != sorted(targets):
        raise RulesError(
            "tiers.yaml", "tiers", "a higher tier must not have a longer response target than a lower one"
        )

    # cancer types
    cancer_names: dict[str, str] = {}
    for code, ct in rs.cancer_types.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", code):
            raise RulesError("cancer_types.yaml", f"cancer_types.{code}", "cancer type codes are lower_snake_case")
        _check_names("cancer_types.yaml", f"cancer_types.{code}", cancer_names, code, [code, *ct.synonyms],
                     "cancer type")

    # drugs
    for name in rs.drug_classes:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise RulesError("drugs.yaml", f"classes.{name}", "class ids are lower_snake_case")
    names: dict[str, str] = {}
    for i, d in enumerate(rs.drugs):
        if d.drug_class not in rs.drug_classes:
            raise RulesError("drugs.yaml", f"drugs[{i}].class", f"unknown class {d.drug_class!r}")
        _check_names("drugs.yaml", f"drugs[{i}]", names, d.name, [d.name, *d.synonyms], "drug")
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

    # rules (ids first: guidance lines may name them)
    file = "triage_rules.yaml"
    ids: set[str] = set()
    for i, r in enumerate(rs.rules):
        if r.id in ids:
            raise RulesError(file, f"rules[{i}].id", f"duplicate rule id {r.id!r}")
        ids.add(r.id)

    # guidance
    def check_lines(where: str, g: TierGuidance) -> None:
        for kind in ("imaging", "referral"):
            for j, line in enumerate(getattr(g, kind)):
                for k, rid in enumerate(line.only_for_rules):
                    if rid not in ids:
                        raise RulesError("guidance.yaml", f"{where}.{kind}[{j}].only_for_rules[{k}]",
                                         f"unknown rule {rid!r}")
        # A topic said twice by one cause would lose a line unseen: each is said once.
        topics: set[str] = set()
        for kind in ("advice", "analgesic_advice"):
            for j, line in enumerate(getattr(g, kind)):
                if line.topic in topics:
                    raise RulesError("guidance.yaml", f"{where}.{kind}[{j}].topic",
                                     f"the topic {line.topic!r} is already advised by this entry")
                topics.add(line.topic)
        for j, note in enumerate(g.staff_notes):
            _check_sources(rs, "guidance.yaml", f"{where}.staff_notes[{j}].source", note.source)
        _check_sources(rs, "guidance.yaml", f"{where}.source", g.source)

    for cause, g in rs.guidance.causes.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", cause):
            raise RulesError("guidance.yaml", f"causes.{cause}", "cause codes are lower_snake_case")
        check_lines(f"causes.{cause}", g)
    for tier, g in rs.guidance.tier_defaults.items():
        if tier not in rs.tier_rank:
            raise RulesError("guidance.yaml", f"tier_defaults.{tier}", f"unknown tier {tier!r}")
        check_lines(f"tier_defaults.{tier}", g)
    for tier in rs.tier_ids:
        if tier not in rs.guidance.tier_defaults:
            raise RulesError("guidance.yaml", "tier_defaults", f"no default guidance for the tier {tier!r}")
    _check_sources(rs, "guidance.yaml", "safety_net.source", rs.guidance.safety_net.source)
    _check_fhir_codes(rs)

    # parameters and facts
    for name, p in rs.parameters.items():
        _check_sources(rs, file, f"parameters.{name}.source", p.source)
        for k, alt in enumerate(p.alternatives):
            _check_sources(rs, file, f"parameters.{name}.alternatives[{k}].source", alt.source)
    for name, fact in rs.facts.items():
        if name in FLAG_FIELDS or name in PATIENT_FLAGS or name in NUMBER_FIELDS or name in ENUM_FIELDS:
            raise RulesError(file, f"facts.{name}", "a fact may not reuse a field name")
        for k, sel in enumerate(fact.of):
            where = f"facts.{name}.of[{k}]"
            if sel.drug_class is not None and sel.drug_class not in rs.drug_classes:
                raise RulesError(file, f"{where}.drug_class", f"unknown class {sel.drug_class!r}")
            for j, dn in enumerate(sel.drugs or []):
                if dn not in generics:
                    raise RulesError(file, f"{where}.drugs[{j}]", f"unknown drug {dn!r}")
        bounds = fact.days_before_report
        lo = _resolve_value(rs, bounds.min, file, f"facts.{name}.days_before_report.min", kind="int")
        if bounds.max is not None:
            hi = _resolve_value(rs, bounds.max, file, f"facts.{name}.days_before_report.max", kind="int")
            if hi < lo + bounds.min_exclusive:
                raise RulesError(file, f"facts.{name}.days_before_report", "max is below min: the range is empty")
        if lo < 0:
            raise RulesError(file, f"facts.{name}.days_before_report.min", "days before the report are 0 or more")

    for i, r in enumerate(rs.rules):
        where = f"rules[{i}]"
        if r.tier not in rs.tier_rank:
            raise RulesError(file, f"{where}.tier", f"unknown tier {r.tier!r}")
        if r.cause is not None and r.cause not in rs.guidance.causes:
            raise RulesError(file, f"{where}.cause", f"unknown cause {r.cause!r} (no guidance)")
        _check_sources(rs, file, f"{where}.source", r.source)
    for i, r in enumerate(rs.rules):
        _check_condition(rs, r.when, file, f"rules[{i}].when", ids)
    rule_order(rs)  # raises on a cycle
    if len(rs.rules) + 2 * len(rs.back_pain_effects) > 63:  # the engine keys each outcome on one 64-bit word
        raise RulesError(file, "rules", "at most 63 rules and back-pain effect states (two per effect) in all")
    # The names the code itself reads: the parameters named in its words, the recent_sact fact
    # the contract reports.
    for name, kind in REQUIRED_PARAMETERS.items():
        if name not in rs.parameters:
            raise RulesError(file, "parameters", f"the parameter {name!r} is required (the code reads it)")
        value = rs.parameters[name].value
        if not (isinstance(value, (int, float)) and not isinstance(value, bool)
                and (kind == "number" or isinstance(value, int))):
            raise RulesError(file, f"parameters.{name}.value", f"must be {'a whole number' if kind == 'int' else 'a number'}")
    for name in REQUIRED_FACTS:
        if name not in rs.facts:
            raise RulesError(file, "facts", f"the fact {name!r} is required (the triage contract reports it)")


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


def enum_values(rs: RuleSet, field: str) -> tuple[str, ...]:
    """The values a text field of the contract may take (cancer types come from the rules)."""
    return tuple(rs.cancer_types) if field == "cancer_type" else ENUM_FIELDS[field]


def _check_condition(rs: RuleSet, cond: Any, file: str, field: str, rule_ids: set[str]) -> None:
    if isinstance(cond, str):
        known = set(FLAG_FIELDS) | set(PATIENT_FLAGS) | set(rs.facts)
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
    if isinstance(cond, UnknownCond):
        if cond.unknown not in NULLABLE_FIELDS:
            raise RulesError(file, f"{field}.unknown", f"{cond.unknown!r} is not a field that may be missing "
                             f"({', '.join(NULLABLE_FIELDS)})")
        return
    if isinstance(cond, DrugEffectCond):
        if not rs.back_pain_effects:
            raise RulesError(file, f"{field}.drug_effect", "drugs.yaml has no back-pain effect to test")
        return
    if isinstance(cond, FieldCond):
        f, op = cond.field, cond.op
        if f in NUMBER_FIELDS:
            if op not in NUMERIC_OPS:
                raise RulesError(file, f"{field}.op", f"{op!r} does not apply to the number {f!r}")
            kind = "pair" if op == "between" else "number"
            _resolve_value(rs, cond.value, file, f"{field}.value", kind)
        elif f in ENUM_FIELDS or f == "cancer_type":
            if op not in ENUM_OPS:
                raise RulesError(file, f"{field}.op", f"{op!r} does not apply to {f!r} (use == or in)")
            values = cond.value if op == "in" else [cond.value]
            if not isinstance(values, list) or not values:
                raise RulesError(file, f"{field}.value", "expected a list of values")
            allowed = enum_values(rs, f)
            for v in values:
                if v not in allowed:
                    raise RulesError(file, f"{field}.value", f"{v!r} is not a value of {f!r} ({', '.join(allowed)})")
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
