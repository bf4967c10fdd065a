"""Backline's back-pain questionnaire as a FHIR R4 ``Questionnaire``, and a ``QuestionnaireResponse``
to it read back as a report.

Each item is a field of the triage contract's report (its ``linkId`` is the field's name) with the
wording the phone form uses, so a patient-reported-outcome system can send reports that Backline
triages on arrival. The red-flag items are required, as on the phone form: a response that leaves
one out is read as "could not ask", which counts as yes for the triage and is recorded as not asked
(hazard H11), never as no.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.questionnaire import Questionnaire

from dashboard.labels import (DURATION_QUESTION, FLAG_GROUPS, FLAG_QUESTIONS, LOCATION_LABELS, LOCATION_QUESTION,
                              ONSET_LABELS, ONSET_QUESTION, PAIN_PATTERN_LABELS, PAIN_PATTERN_QUESTION,
                              PAIN_SCORE_QUESTION, TEMPERATURE_QUESTION, TREND_LABELS, TREND_QUESTION, UNSURE)
from dashboard.models import REPORT_FLAGS

QUESTIONNAIRE_URL = "https://backline.example/fhir/Questionnaire/back-pain"
QUESTIONNAIRE_VERSION = "2"  # the triage contract's version (rules brief, version 2)
ANSWERS_SYSTEM = "https://backline.example/fhir/CodeSystem/back-pain-answers"
# A patient's cancer type as Backline names it (rules/cancer_types.yaml), beside any ICD-10 or SNOMED CT code.
CANCER_SYSTEM = "https://backline.example/fhir/CodeSystem/cancer-type"
# A yes/no of the patient's record as Backline names it (bone_metastases, long_term_steroids, ...).
RECORD_FLAG_SYSTEM = "https://backline.example/fhir/CodeSystem/record-flag"
STAFF_SYSTEM = "https://backline.example/fhir/staff"
# How a report reached Backline (epro or phone), on a QuestionnaireResponse; epro when absent.
SOURCE_EXTENSION = "https://backline.example/fhir/StructureDefinition/report-source"

CHOICES: dict[str, tuple[str, dict[str, str]]] = {
    "pain_pattern": (PAIN_PATTERN_QUESTION, PAIN_PATTERN_LABELS),
    "onset": (ONSET_QUESTION, ONSET_LABELS),
    "trend": (TREND_QUESTION, TREND_LABELS),
    "location": (LOCATION_QUESTION, LOCATION_LABELS),
}


def _choice(link: str, text: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"linkId": link, "text": text, "type": "choice", "required": False,
            "answerOption": [{"valueCoding": {"system": ANSWERS_SYSTEM, "code": code, "display": label}}
                             for code, label in labels.items()]}


def questionnaire() -> dict[str, Any]:
    """The questionnaire as FHIR JSON (validated by fhir.resources' R4B model)."""
    items: list[dict[str, Any]] = [
        {"linkId": "pain_score", "text": PAIN_SCORE_QUESTION, "type": "integer", "required": True,
         "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueInteger": 0},
                       {"url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueInteger": 10}]},
        _choice("pain_pattern", *CHOICES["pain_pattern"]),
        _choice("onset", *CHOICES["onset"]),
        _choice("trend", *CHOICES["trend"]),
        _choice("location", *CHOICES["location"]),
        {"linkId": "duration_days", "text": DURATION_QUESTION, "type": "integer", "required": False},
    ]
    for group, flags in FLAG_GROUPS.items():
        items.append({"linkId": f"group-{flags[0]}", "text": f"Red flags: {group}", "type": "group", "required": True,
                      "item": [{"linkId": f, "text": FLAG_QUESTIONS[f], "type": "boolean", "required": True}
                               for f in flags]})
    items.append({"linkId": "temperature_c", "text": TEMPERATURE_QUESTION, "type": "decimal", "required": False})
    body = {
        "resourceType": "Questionnaire", "id": "backline-back-pain", "url": QUESTIONNAIRE_URL,
        "version": QUESTIONNAIRE_VERSION, "name": "BacklineBackPain", "title": "Back pain on cancer treatment",
        "status": "active", "subjectType": ["Patient"],
        "description": "Back pain reported by a patient on cancer treatment, triaged by Backline on arrival. "
                       "Every red-flag question must be answered: one left out is read as yes.",
        "item": items,
    }
    return Questionnaire.model_validate(body).model_dump(mode="json", exclude_none=True)


def _answers(items: list[dict[str, Any]] | None) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for item in items or []:
        if item.get("answer"):
            out[item["linkId"]] = item["answer"]
        out.update(_answers(item.get("item")))
    return out


def report_from_response(items: list[dict[str, Any]] | None) -> tuple[dict[str, Any], list[str], list[tuple[str, str]]]:
    """A response's answers as report fields, the red flags it left out (read as yes, recorded as not
    asked), and its problems (linkId, what is wrong)."""
    answers = _answers(items)
    fields: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    known = {"pain_score", "duration_days", "temperature_c", *CHOICES, *REPORT_FLAGS}
    for link in answers:
        if link not in known:
            problems.append((link, "not an item of Backline's questionnaire"))

    def one(link: str) -> dict[str, Any] | None:
        given = answers.get(link)
        if not given:
            return None
        if len(given) > 1:
            problems.append((link, "more than one answer"))
        return given[0]

    for link, kind in (("pain_score", "valueInteger"), ("duration_days", "valueInteger"),
                       ("temperature_c", "valueDecimal")):
        a = one(link)
        if a is None:
            continue
        value = a.get(kind, a.get("valueInteger") if kind == "valueDecimal" else None)
        if value is None:
            problems.append((link, f"the answer must be {kind}"))
        else:
            fields[link] = value
    for link, (_, labels) in CHOICES.items():
        a = one(link)
        if a is None:
            continue
        code = (a.get("valueCoding") or {}).get("code", a.get("valueString"))
        if code not in labels:
            problems.append((link, f"{code!r} is not one of {', '.join(labels)}"))
        elif code != UNSURE:
            fields[link] = code
    unasked = []
    for flag in REPORT_FLAGS:
        a = one(flag)
        if a is None:
            unasked.append(flag)
            fields[flag] = True  # not answered: counted as yes (H11)
        elif not isinstance(a.get("valueBoolean"), bool):
            problems.append((flag, "the answer must be valueBoolean"))
        else:
            fields[flag] = a["valueBoolean"]
    return fields, unasked, problems
