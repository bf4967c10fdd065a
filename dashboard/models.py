"""The triage contract as pydantic models, shared by every input path.

The command line, the report form, the what-if form and batch imports all validate through these
models. Unknown keys are errors (a misspelt red flag must never be silently dropped), values out of
range are errors that name the field, and hostile strings (control characters, bidirectional
overrides, absurd lengths) are refused.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from dashboard.config import get_settings

# Control characters and bidirectional overrides ("Trojan Source") are never legitimate here.
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff]")
_MIN_YEAR, _MAX_YEAR = 1900, 2200


def _clean_text(value: str) -> str:
    if _FORBIDDEN_CHARS.search(value):
        raise ValueError("contains control or bidirectional-override characters")
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _to_local_naive(value: datetime) -> datetime:
    """Naive times are local wall-clock times of the service; aware ones are converted to it.

    A local time that does not exist (the hour skipped when the clocks go forward) is an error; one
    that occurs twice (when they go back) is the first of the two.
    """
    if not (_MIN_YEAR <= value.year <= _MAX_YEAR):
        raise ValueError(f"year {value.year} is not plausible")
    tz = get_settings().tz
    if value.tzinfo is not None:
        return value.astimezone(tz).replace(tzinfo=None)
    value = value.replace(fold=0)
    if value.replace(tzinfo=tz).astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) != value:
        raise ValueError(f"{value.isoformat()} does not exist in {tz.key} (the clocks went forward)")
    return value


def _date_time_only(value: Any) -> Any:
    if isinstance(value, str) and re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", value):
        raise ValueError("must be a date and time (e.g. 2026-11-20T09:30:00), not a date alone")
    if isinstance(value, date) and not isinstance(value, datetime):
        raise ValueError("must be a date and time, not a date alone")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError("must be an ISO 8601 date-time text, not a number")
    return value


# In a note, line breaks and tabs are text; every other control character is still refused.
_FORBIDDEN_IN_NOTES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff]")


def _clean_note(value: str) -> str:
    if _FORBIDDEN_IN_NOTES.search(value):
        raise ValueError("contains control or bidirectional-override characters")
    value = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _text(max_length: int) -> Any:
    return Annotated[str, Strict(), Field(max_length=max_length), AfterValidator(_clean_text)]


Identifier = _text(64)
ShortText = _text(100)
NoteText = Annotated[str, Strict(), Field(max_length=2000), AfterValidator(_clean_note)]
Flag = Annotated[bool, Strict()]
Timestamp = Annotated[datetime, BeforeValidator(_date_time_only), AfterValidator(_to_local_naive)]


def _whole_number(value: Any) -> Any:
    """A whole number is a JSON integer: 5.0, "5" and true are not (the contract is exact)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number (a JSON integer such as 5)")
    return value


def _lower_choice(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


PainScore = Annotated[int, BeforeValidator(_whole_number), Field(ge=0, le=10)]
Temperature = Annotated[float, Field(ge=30, le=45, allow_inf_nan=False)]
Days = Annotated[int, BeforeValidator(_whole_number), Field(ge=0, le=36500)]


def _reject_bool_number(value: Any) -> Any:
    if isinstance(value, bool) or isinstance(value, str):
        raise ValueError("must be a number")
    return value


Onset = Literal["sudden", "gradual"]
Trend = Literal["improving", "stable", "worsening"]
Location = Literal["cervical", "thoracic", "lumbar", "sacral"]
PainPattern = Literal["new", "changed", "usual"]
ENUM_FIELDS: dict[str, tuple[str, ...]] = {
    "pain_pattern": get_args(PainPattern),
    "onset": get_args(Onset),
    "trend": get_args(Trend),
    "location": get_args(Location),
}


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PatientIn(_Contract):
    patient_id: Identifier
    cancer_type: ShortText
    bone_metastases: Flag = False
    osteoporosis: Flag = False
    long_term_steroids: Flag = False
    low_platelets: Flag = False


class MedicationIn(_Contract):
    """A dose (``given_at``) or, for a drug taken continuously, a course until ``stopped_at``."""

    drug: ShortText
    given_at: Timestamp
    stopped_at: Timestamp | None = None

    @model_validator(mode="after")
    def _ordered(self) -> MedicationIn:
        if self.stopped_at is not None and self.stopped_at < self.given_at:
            raise PydanticCustomError("stopped_before_given", "stopped_at is before given_at")
        return self


class ReportIn(_Contract):
    reported_at: Timestamp
    pain_score: PainScore
    pain_pattern: Annotated[PainPattern | None, BeforeValidator(_lower_choice)] = None
    onset: Annotated[Onset | None, BeforeValidator(_lower_choice)] = None
    trend: Annotated[Trend | None, BeforeValidator(_lower_choice)] = None
    location: Annotated[Location | None, BeforeValidator(_lower_choice)] = None
    duration_days: Days | None = None
    worse_at_night: Flag = False
    worse_on_straining: Flag = False
    worse_on_movement: Flag = False
    localised_tenderness: Flag = False
    after_minor_strain: Flag = False
    uncontrolled_by_analgesia: Flag = False
    leg_weakness: Flag = False
    difficulty_walking: Flag = False
    leg_numbness: Flag = False
    saddle_numbness: Flag = False
    bladder_or_bowel_change: Flag = False
    radiating_pain: Flag = False
    hand_foot_tingling: Flag = False
    confusion_or_drowsiness: Flag = False
    thirst_or_polyuria: Flag = False
    temperature_c: Annotated[Temperature | None, BeforeValidator(lambda v: v if v is None else _reject_bool_number(v))] = None
    rigors: Flag = False
    feels_unwell: Flag = False


class TriageCase(_Contract):
    """One line of the triage command's input: a report with its patient and medications."""

    report_id: Identifier
    patient: PatientIn
    medications: list[MedicationIn] = []
    report: ReportIn


# The yes/no fields of a report and of a patient, in contract order.
REPORT_FLAGS = tuple(n for n, f in ReportIn.model_fields.items() if f.default is False)
PATIENT_FLAGS = tuple(n for n, f in PatientIn.model_fields.items() if f.default is False)


# --------------------------------------------------------------------------- errors


class InputError(Exception):
    """Input that does not meet the contract. ``problems`` is a list of (field, message)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{f}: {m}" if f else m for f, m in problems))


def format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(err: dict[str, Any]) -> str:
    kind = err["type"]
    value = err.get("input")
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    if kind == "extra_forbidden":
        return "unknown field (not part of the contract)"
    if kind == "missing":
        return "required field is missing"
    msg = err["msg"]
    msg = msg.removeprefix("Value error, ")
    if kind in {"int_type", "int_from_float", "int_parsing"}:
        msg = "must be a whole number"
    elif kind == "bool_type":
        msg = "must be true or false"
    elif kind == "string_type":
        msg = "must be a text string"
    elif kind == "literal_error":
        msg = msg.replace("Input should be", "must be one of")
    elif kind in {"less_than_equal", "greater_than_equal", "less_than", "greater_than"}:
        msg = msg.replace("Input should be", "must be")
    elif kind == "string_too_long":
        msg = msg.replace("String should have", "must have")
    elif kind == "model_type":
        msg = "must be a JSON object"
    elif kind == "list_type":
        msg = "must be a list"
    elif kind.startswith("datetime") or kind.startswith("date"):
        msg = "must be an ISO 8601 date-time (e.g. 2026-11-20T09:30:00) that exists: " + msg.removeprefix(
            "Input should be a valid datetime or date, "
        ).removeprefix("Input should be a valid datetime, ")
    elif kind == "finite_number":
        msg = "must be a finite number"
    return f"{msg} (got {shown})"


def errors_of(exc: ValidationError) -> list[tuple[str, str]]:
    return [(format_loc(err["loc"]), _message(err)) for err in exc.errors()]


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InputError([(key, "appears twice in the same object")])
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise InputError([("", f"{name} is not a number JSON allows")])


def parse_case(line: str) -> TriageCase:
    """Parse and validate one JSON line; raise InputError naming the field."""
    try:
        data = json.loads(line, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise InputError([("", f"not valid JSON ({exc.msg} at column {exc.colno})")]) from None
    except RecursionError:
        raise InputError([("", "nested too deeply")]) from None
    return validate_case(data)


def validate_case(data: Any) -> TriageCase:
    if not isinstance(data, dict):
        raise InputError([("", "each line must be a JSON object")])
    try:
        return TriageCase.model_validate(data)
    except ValidationError as exc:
        raise InputError(errors_of(exc)) from None


def medications_from_lines(text: str, reported_at: datetime) -> list[dict[str, Any]]:
    """What-if medications, one per line, days counted back from the report:

    * ``drug, N``: a dose N days before the report (for a drug taken continuously, a course started
      N days before and still running);
    * ``drug, N, M``: a course started N days before the report and stopped M days before it.

    The days are required (a medication's ``given_at`` is); problems name the line.
    """
    meds, problems = [], []

    def days(value: str, what: str, i: int) -> float | None:
        try:
            offset = float(value)
            if not (0 <= offset <= 36500) or offset != offset:
                raise ValueError
        except ValueError:
            problems.append((f"medications line {i}", f"{what} must be a number of days from 0 to 36500 "
                                                       f"(got {value.strip()!r})"))
            return None
        return offset

    for i, line in enumerate((x for x in text.splitlines() if x.strip()), start=1):
        parts = [p.strip() for p in line.split(",")]
        name = parts[0]
        if not name:
            problems.append((f"medications line {i}", "the drug's name is missing"))
            continue
        if len(parts) < 2 or not parts[1]:
            problems.append((f"medications line {i}", f"{name!r}: how many days before the report was it given "
                                                      "(or started)? Write `drug, days` or `drug, started, stopped`"))
            continue
        if len(parts) > 3:
            problems.append((f"medications line {i}", "at most three parts: `drug, days started, days stopped`"))
            continue
        given = days(parts[1], "days before the report", i)
        stopped = days(parts[2], "days before the report it stopped", i) if len(parts) == 3 and parts[2] else None
        if given is None or (len(parts) == 3 and parts[2] and stopped is None):
            continue
        if stopped is not None and stopped > given:
            problems.append((f"medications line {i}", f"{name!r} stopped ({stopped:g} days before) before it started "
                                                      f"({given:g} days before)"))
            continue
        med: dict[str, Any] = {"drug": name, "given_at": (reported_at - timedelta(days=given)).isoformat()}
        if stopped is not None:
            med["stopped_at"] = (reported_at - timedelta(days=stopped)).isoformat()
        meds.append(med)
    if problems:
        raise InputError(problems)
    return meds
