"""FHIR R4 out: the reports of a period, their triage and the care team's work on them, as a Bundle
(or NDJSON) that an electronic record can take.

For each report: its ``QuestionnaireResponse`` (to Backline's questionnaire; a red flag that was not
asked is left unanswered, which reads back as not asked), a ``RiskAssessment`` (the tier as the
prediction, the rules that fired with their rationale, the rules version, ``basis`` the response),
a ``Task`` for the work item (priority from the tier, status and business status from the care
team's actions, owner whoever has taken it), a ``Communication`` for each call-back and an
``AuditEvent`` for each action. With them, what the references need and what reads the report back
(:mod:`dashboard.fhir_import`): the patients, their panels (``Organization``), their cancer and bone
``Condition`` and their doses and courses. References are ``Type/id`` within the bundle, and every
resource is validated with ``fhir.resources`` before it is written.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Iterator

import pandas as pd
from fhir.resources.R4B import get_fhir_model_class

from dashboard import clock
from dashboard.db import Database
from dashboard.fhir_questionnaire import (ANSWERS_SYSTEM, CANCER_SYSTEM, CHOICES, QUESTIONNAIRE_URL, RECORD_FLAG_SYSTEM,
                                         SOURCE_EXTENSION, STAFF_SYSTEM)
from dashboard.models import REPORT_FLAGS
from dashboard.rules import RuleSet
from dashboard.workflow import RESPONSE_ACTIONS

BASE = "https://backline.example/fhir"
TIER_SYSTEM = f"{BASE}/CodeSystem/tier"
ACTION_SYSTEM = f"{BASE}/CodeSystem/action"
MRN_TYPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}
PRIORITY = {"emergency": "stat", "urgent": "asap", "soon": "urgent", "routine": "routine"}
PARTICIPATION_MODE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
RISK = {"emergency": "high", "urgent": "high", "soon": "moderate", "routine": "low"}


def _iso(value: Any) -> str | None:
    if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)):
        return None
    return clock.aware(pd.Timestamp(value).to_pydatetime()).isoformat()


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None and v != [] and v != {}}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _valid(resource: dict[str, Any]) -> dict[str, Any]:
    resource = _clean(resource)
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


def _safe_id(value: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in str(value))[:64]


def _reports(db: Database, since: datetime, until: datetime | None, all_patients: bool) -> dict[str, pd.DataFrame]:
    params = {"since": since, "until": until or datetime(9999, 1, 1)}
    chosen = "SELECT report_id FROM reports WHERE reported_at >= $since AND reported_at < $until"
    with db.connect() as con:
        out = {
            "reports": con.execute(f"""
                SELECT r.*, t.tier AS triage_tier, c.tier, t.rule_ids, t.causes, t.rules_version, t.triaged_at,
                       (SELECT list(u.field) FROM report_unasked u WHERE u.report_id = r.report_id) AS unasked,
                       EXISTS (SELECT 1 FROM open_reports o WHERE o.report_id = r.report_id) AS is_open
                FROM reports r JOIN triage_results t USING (report_id) JOIN current_tiers c USING (report_id)
                WHERE r.report_id IN ({chosen}) ORDER BY r.reported_at, r.report_id""", params).df(),
            "events": con.execute(f"SELECT * FROM events WHERE report_id IN ({chosen}) ORDER BY event_id",
                                  params).df(),
        }
        # Every patient, or those of the period's reports ($all: the same statement either way).
        patients = f"SELECT patient_id FROM patients WHERE $all OR patient_id IN (SELECT patient_id FROM reports " \
                   f"WHERE report_id IN ({chosen}))"
        params["all"] = all_patients
        out["patients"] = con.execute(f"SELECT p.*, pn.name AS panel_name FROM patients p JOIN panels pn "
                                      f"USING (panel_id) WHERE patient_id IN ({patients}) ORDER BY patient_id",
                                      params).df()
        out["doses"] = con.execute(f"SELECT * FROM administrations WHERE patient_id IN ({patients}) "
                                   "ORDER BY administration_id", params).df()
    return out


def _cancer_coding(rules: RuleSet, cancer: str) -> list[dict[str, Any]]:
    codings = [{"system": CANCER_SYSTEM, "code": cancer, "display": rules.cancer_types[cancer].label}
               if cancer in rules.cancer_types else {"system": CANCER_SYSTEM, "code": cancer}]
    icd = next((c for c in rules.fhir_codes.conditions if c.system == "icd10" and c.sets.cancer_type == cancer), None)
    if icd is not None:
        codings.append({"system": rules.fhir_codes.systems["icd10"][0], "code": icd.prefix or icd.code,
                        "display": icd.display})
    return codings


def _flag_coding(rules: RuleSet, key: str) -> list[dict[str, Any]]:
    codings = [{"system": RECORD_FLAG_SYSTEM, "code": key, "display": key.replace("_", " ")}]
    entry = next((c for c in rules.fhir_codes.conditions if getattr(c.sets, key, None)), None)
    if entry is not None:
        codings.append({"system": rules.fhir_codes.systems[entry.system][0], "code": entry.code or entry.prefix,
                        "display": entry.display})
    return codings


def resources(db: Database, rules: RuleSet, *, since: datetime, until: datetime | None = None,
              all_patients: bool = False) -> Iterator[dict]:
    """Every resource of the export, validated, in an order where each one's references come first: the
    patients of the period's reports (or every patient, their record and doses), then the reports."""
    data = _reports(db, clock.aware(since), clock.aware(until) if until else None, all_patients)
    for panel_id, name in dict(zip(data["patients"]["panel_id"], data["patients"]["panel_name"])).items():
        yield _valid({"resourceType": "Organization", "id": _safe_id(panel_id), "name": name,
                      "identifier": [{"system": f"{BASE}/panel", "value": panel_id}]})
    for p in data["patients"].to_dict("records"):
        for resource in record_resources(rules, p):
            yield _valid(resource)
    for d in data["doses"].to_dict("records"):
        yield _valid(dose_resource(rules, d))
    events = data["events"].groupby("report_id") if not data["events"].empty else {}
    event_map = {k: g for k, g in events} if len(data["events"]) else {}
    for r in data["reports"].to_dict("records"):
        yield from _report(rules, r, event_map.get(r["report_id"], pd.DataFrame()))


def record_resources(rules: RuleSet, p: dict[str, Any]) -> list[dict[str, Any]]:
    """A patient (a row of ``patients``) as a Patient, its cancer Condition and one Condition for each
    yes of its record (not validated: :func:`resources` validates)."""
    pid = _safe_id(p["patient_id"])
    out = [{"resourceType": "Patient", "id": pid,
            "identifier": [{"type": MRN_TYPE, "system": f"{BASE}/mrn", "value": p["mrn"]}],
            "name": [{"use": "official", "text": p["name"]}],
            "gender": p["sex"] if isinstance(p["sex"], str) else "unknown",
            "birthDate": str(p["date_of_birth"])[:10] if not pd.isna(p["date_of_birth"]) else None,
            "managingOrganization": {"reference": f"Organization/{_safe_id(p['panel_id'])}"}},
           {"resourceType": "Condition", "id": f"{pid}-cancer",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]},
            "code": {"coding": _cancer_coding(rules, p["cancer_type"])}, "subject": {"reference": f"Patient/{pid}"}}]
    for key in ("bone_metastases", "osteoporosis", "long_term_steroids", "low_platelets"):
        if p[key]:
            out.append({"resourceType": "Condition", "id": f"{pid}-{key.replace('_', '-')}",
                        "code": {"coding": _flag_coding(rules, key)}, "subject": {"reference": f"Patient/{pid}"}})
    return [_clean(r) for r in out]


def dose_resource(rules: RuleSet, d: dict[str, Any]) -> dict[str, Any]:
    """A dose (a row of ``administrations``) as a MedicationAdministration, or a course as a MedicationStatement."""
    common = {"id": f"dose-{int(d['administration_id'])}",
              "subject": {"reference": f"Patient/{_safe_id(d['patient_id'])}"},
              "medicationCodeableConcept": {"text": d["drug"]}}
    known = rules.resolve_drug(d["drug"])
    if _iso(d["stopped_at"]) is not None or (known is not None and known.continuous):  # a course
        return _clean({"resourceType": "MedicationStatement", **common,
                       "status": "completed" if _iso(d["stopped_at"]) else "active",
                       "effectivePeriod": {"start": _iso(d["given_at"]), "end": _iso(d["stopped_at"])}})
    return _clean({"resourceType": "MedicationAdministration", **common, "status": "completed",
                   "effectiveDateTime": _iso(d["given_at"])})


def response_resource(r: dict[str, Any]) -> dict[str, Any]:
    """A report (a row of ``reports`` with its ``unasked`` fields) as a QuestionnaireResponse to Backline's
    questionnaire: a red flag not asked is left unanswered, which reads back as not asked."""
    unasked = set(r["unasked"] if isinstance(r["unasked"], (list, tuple)) else list(r["unasked"] or []))
    items = [_answer("pain_score", r["pain_score"])]
    for link in CHOICES:
        if isinstance(r.get(link), str):
            items.append(_answer(link, r[link]))
    if not pd.isna(r["duration_days"]):
        items.append(_answer("duration_days", r["duration_days"]))
    items += [_answer(f, bool(r[f])) for f in REPORT_FLAGS if f not in unasked]
    if not pd.isna(r["temperature_c"]):
        items.append(_answer("temperature_c", r["temperature_c"]))
    return _clean({"resourceType": "QuestionnaireResponse", "id": _safe_id(r["report_id"]),
                   "questionnaire": QUESTIONNAIRE_URL, "status": "completed",
                   "subject": {"reference": f"Patient/{_safe_id(r['patient_id'])}"}, "authored": _iso(r["reported_at"]),
                   "item": items, "extension": [{"url": SOURCE_EXTENSION, "valueCode": r["source"]}],
                   "author": {"identifier": {"system": STAFF_SYSTEM, "value": r["entered_by"]}}
                   if isinstance(r["entered_by"], str) else None})


def _answer(link: str, value: Any) -> dict[str, Any]:
    if link in CHOICES:
        return {"linkId": link, "answer": [{"valueCoding": {"system": ANSWERS_SYSTEM, "code": value,
                                                            "display": CHOICES[link][1][value]}}]}
    if isinstance(value, bool):
        return {"linkId": link, "answer": [{"valueBoolean": value}]}
    if link == "temperature_c":
        return {"linkId": link, "answer": [{"valueDecimal": float(value)}]}
    return {"linkId": link, "answer": [{"valueInteger": int(value)}]}


def _report(rules: RuleSet, r: dict[str, Any], events: pd.DataFrame) -> Iterator[dict[str, Any]]:
    rid, pid = _safe_id(r["report_id"]), _safe_id(r["patient_id"])
    patient = {"reference": f"Patient/{pid}"}
    yield _valid(response_resource(r))
    fired = [rules.rule_by_id[x] for x in list(r["rule_ids"]) if x in rules.rule_by_id]
    tier = r["tier"]
    yield _valid({"resourceType": "RiskAssessment", "id": f"{rid}-triage", "status": "final", "subject": patient,
                  "occurrenceDateTime": _iso(r["triaged_at"]), "basis": [{"reference": f"QuestionnaireResponse/{rid}"}],
                  "method": {"coding": [{"system": f"{BASE}/rules", "code": r["rules_version"],
                                         "display": f"Backline rules {r['rules_version']}"}]},
                  "prediction": [{"outcome": {"coding": [{"system": TIER_SYSTEM, "code": tier,
                                                          "display": rules.tier_by_id[tier].label}]},
                                  "qualitativeRisk": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                                            "risk-probability", "code": RISK[tier]}]},
                                  "rationale": "; ".join(f"{x.id}: {x.title}" for x in fired) or None}],
                  "note": [{"text": f"{x.id} ({x.tier}): {x.rationale}"} for x in fired]})
    actions = events.to_dict("records") if not events.empty else []
    answered = any(e["action"] in RESPONSE_ACTIONS for e in actions)
    taken = None
    for e in actions:
        if e["action"] == "take":
            taken = e
        elif e["action"] in ("release", "resolve"):
            taken = None
    last = next((e["action"] for e in reversed(actions) if e["action"] not in ("note", "retriaged")), None)
    status = "completed" if not r["is_open"] else ("in-progress" if answered or taken else "requested")
    yield _valid({"resourceType": "Task", "id": f"{rid}-task", "status": status, "intent": "order",
                  "priority": PRIORITY[tier], "for": patient, "focus": {"reference": f"QuestionnaireResponse/{rid}"},
                  "authoredOn": _iso(r["received_at"]),
                  "businessStatus": {"text": (last or "new").replace("_", " ")},
                  "description": f"Back-pain report {r['report_id']}: {rules.tier_by_id[tier].label}",
                  "owner": {"display": taken["actor_name"] or taken["actor"],
                            "identifier": {"system": STAFF_SYSTEM, "value": taken["actor"]}} if taken else None,
                  "reasonReference": {"reference": f"RiskAssessment/{rid}-triage"}})
    for e in actions:
        eid = int(e["event_id"])
        who = {"display": e["actor_name"] if isinstance(e["actor_name"], str) else e["actor"],
               "identifier": {"system": STAFF_SYSTEM, "value": e["actor"]}}
        if e["action"] == "call_back":
            yield _valid({"resourceType": "Communication", "id": f"{rid}-call-{eid}",
                          "status": "completed" if e["reached"] else "not-done",
                          "statusReason": None if e["reached"] else {"text": "not reached"},
                          "subject": patient, "about": [{"reference": f"Task/{rid}-task"}],
                          "sent": _iso(e["acted_at"]), "sender": who,
                          "medium": [{"coding": [{"system": PARTICIPATION_MODE, "code": "PHONE"}]}],
                          "payload": [{"contentString": e["note"]}] if isinstance(e["note"], str) else None})
        yield _valid({"resourceType": "AuditEvent", "id": f"{rid}-event-{eid}",
                      "type": {"system": ACTION_SYSTEM, "code": e["action"]},
                      "action": "U" if e["action"] != "note" else "C", "recorded": _iso(e["acted_at"]),
                      "agent": [{"who": who, "requestor": True,
                                 "role": [{"text": e["role"]}]}],
                      "source": {"observer": {"display": "Backline"}},
                      "entity": [{"what": {"reference": f"Task/{rid}-task"},
                                  "description": _event_words(e)}]})


def _event_words(e: dict[str, Any]) -> str:
    parts = [e["action"].replace("_", " ")]
    for key in ("tier_before", "tier_after", "escalated_to", "outcome"):
        if isinstance(e.get(key), str):
            parts.append(f"{key.replace('_', ' ')}: {e[key]}")
    if isinstance(e.get("note"), str):
        parts.append(f"note: {e['note']}")
    return "; ".join(parts)


def bundle(db: Database, rules: RuleSet, *, since: datetime, until: datetime | None = None,
           all_patients: bool = False) -> dict[str, Any]:
    entries = [{"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": r}
               for r in resources(db, rules, since=since, until=until, all_patients=all_patients)]
    return {"resourceType": "Bundle", "type": "collection", "timestamp": clock.aware(datetime.now()).isoformat(),
            "entry": entries}


def ndjson(db: Database, rules: RuleSet, *, since: datetime, until: datetime | None = None,
           all_patients: bool = False) -> Iterator[str]:
    for resource in resources(db, rules, since=since, until=until, all_patients=all_patients):
        yield json.dumps(resource, ensure_ascii=False) + "\n"
