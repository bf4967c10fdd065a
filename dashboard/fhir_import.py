"""FHIR R4 in: a Bundle (JSON, ``transaction`` or ``collection``) or a Bulk Data export (a folder of
NDJSON files) into patients, doses and courses, and reports triaged on arrival.

What is read (``rules/fhir_codes.yaml`` holds every code):

- ``Patient``: the MRN (the identifier typed ``MR``, else the first), the name, the birth date, the
  sex, and the panel from the panel map (a ``generalPractitioner`` or ``managingOrganization``
  reference, or the patient's id, to a panel; ``*`` for every other patient);
- ``Condition``: the primary cancer (to ``cancer_type``), bone metastases and osteoporosis, by
  SNOMED CT or ICD-10 code; when several primary cancers are coded, the most recently recorded;
- ``MedicationAdministration`` (a dose), ``MedicationStatement`` and ``MedicationRequest`` (a
  course: from its start until its end, or until the report while it has none), the drug by code,
  else by the coding's display or the concept's text through the rules' drug list; a drug found by
  neither is kept under its text and counted as unrecognised, as in the triage contract;
- ``QuestionnaireResponse`` to Backline's questionnaire (:mod:`dashboard.fhir_questionnaire`): a
  report, triaged at once; its pain score and temperature, when not answered in it, from the
  patient's ``Observation`` (pain severity, body temperature) nearest its time within two hours.

All or nothing: every resource is validated (``fhir.resources``, R4B models, which read R4) and
mapped, and written in one transaction; one problem (bad JSON, a structure the models refuse, a code
that must map and does not, a reference to a patient that is neither in the file nor in the database)
rolls it back and nothing of the file is imported; every problem is reported with the resource, its
id and the field. The doses and the responses, the bulk of an export, are read in a second pass and
written a chunk at a time inside that transaction, so that a large export is never held in memory.

Idempotent: each resource is keyed by its type and id, and its version by ``meta.versionId`` or,
without one, by the digest of its content. A resource already imported at that version changes
nothing; a new version updates the row it became, and ``fhir_resources`` keeps every version.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import duckdb
import pandas as pd
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from dashboard import clock
from dashboard.db import CONSTRAINT_ERRORS, Database, run
from dashboard.postgres_store import is_postgres
from dashboard.fhir_questionnaire import (CANCER_SYSTEM, QUESTIONNAIRE_URL, RECORD_FLAG_SYSTEM, SOURCE_EXTENSION,
                                         STAFF_SYSTEM, report_from_response)
from dashboard.models import ReportIn, errors_of
from dashboard.retriage import retriage
from dashboard.rules import RuleSet

PATIENT_FIELDS = ("mrn", "name", "date_of_birth", "sex", "cancer_type", "bone_metastases", "osteoporosis",
                  "long_term_steroids", "low_platelets", "panel_id")
RECORD_FLAGS = ("bone_metastases", "osteoporosis", "long_term_steroids", "low_platelets")
OBSERVATION_WINDOW = timedelta(hours=2)
MR_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"


@dataclass(frozen=True)
class Problem:
    resource: str  # "Patient/123", or where in the file when there is no resource to name
    path: str  # the field, e.g. "identifier" or "item[pain_score].answer"
    problem: str

    def __str__(self) -> str:
        return f"{self.resource}{' ' + self.path if self.path else ''}: {self.problem}"


class ImportRefused(Exception):
    """The file is not imported: nothing of it was written. Holds every problem found."""

    def __init__(self, problems: list[Problem], counts: dict[str, Counter]):
        super().__init__(f"{len(problems)} problem(s); nothing was imported")
        self.problems = problems
        self.counts = counts


@dataclass
class ImportResult:
    import_id: int
    counts: dict[str, Counter]
    reports: list[tuple[str, str]] = field(default_factory=list)  # (report id, tier) triaged now, the first 1,000
    unrecognised_drugs: list[str] = field(default_factory=list)
    tiers: Counter = field(default_factory=Counter)  # every report triaged now, by tier


# --------------------------------------------------------------------------- reading


def read_resources(source: Path) -> Iterator[tuple[str, Any]]:
    """(where, resource or a Problem) for each resource of a Bundle file or a folder of NDJSON files."""
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix == ".ndjson")
        if not files:
            yield str(source), Problem(source.name, "", "no .ndjson file in the folder")
        for path in files:
            with path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    where = f"{path.name} line {number}"
                    try:
                        resource = json.loads(line)
                    except json.JSONDecodeError as exc:
                        yield where, Problem(where, "", f"not JSON ({exc.msg})")
                        continue
                    if not isinstance(resource, dict) or "resourceType" not in resource:
                        yield where, Problem(where, "resourceType", "each line must hold one resource")
                        continue
                    yield where, (None, resource)
        return
    try:
        bundle = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        yield source.name, Problem(source.name, "", f"cannot be read ({exc})")
        return
    except json.JSONDecodeError as exc:
        yield source.name, Problem(source.name, "", f"not JSON (line {exc.lineno}: {exc.msg})")
        return
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        yield source.name, Problem(source.name, "resourceType", "a file must hold a Bundle")
        return
    if bundle.get("type") not in ("transaction", "collection", "batch", "searchset"):
        yield source.name, Problem(source.name, "type", f"a {bundle.get('type')!r} bundle is not read "
                                                        "(transaction or collection)")
        return
    for i, entry in enumerate(bundle.get("entry") or []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            yield f"entry[{i}]", Problem(f"entry[{i}]", "resource", "no resource")
            continue
        if not resource.get("id") and str(entry.get("fullUrl", "")).startswith("urn:uuid:"):
            resource = {**resource, "id": entry["fullUrl"].removeprefix("urn:uuid:")}
        yield f"entry[{i}]", (entry.get("fullUrl"), resource)


def _version(resource: dict[str, Any]) -> str:
    version = (resource.get("meta") or {}).get("versionId")
    if version:
        return str(version)[:64]
    canonical = json.dumps({k: v for k, v in resource.items() if k != "meta"}, sort_keys=True, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --------------------------------------------------------------------------- mapping


@dataclass
class _Batch:
    rules: RuleSet
    panel_map: dict[str, str]
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    urls: dict[str, tuple[str, str]] = field(default_factory=dict)  # fullUrl -> (type, id)

    def problem(self, resource: dict[str, Any] | str, path: str, text: str) -> None:
        name = resource if isinstance(resource, str) else f"{resource.get('resourceType')}/{resource.get('id')}"
        self.problems.append(Problem(name, path, text))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [r for (t, _), r in self.resources.items() if t == kind]

    def ref(self, reference: dict[str, Any] | None) -> tuple[str, str] | None:
        """A reference as (type, id), through the bundle's fullUrls for urn:uuid references."""
        text = (reference or {}).get("reference")
        if not text:
            return None
        if text in self.urls:
            return self.urls[text]
        parts = text.rstrip("/").split("/")
        return (parts[-2], parts[-1]) if len(parts) >= 2 else None


def _codings(concept: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list((concept or {}).get("coding") or [])


def _system_key(rules: RuleSet, system: str | None) -> set[str]:
    return {key for key, urls in rules.fhir_codes.systems.items() if system in urls}


def condition_sets(rules: RuleSet, concept: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a Condition's code sets on the record: Backline's own cancer-type coding, else the first entry
    of fhir_codes.yaml that matches."""
    for coding in _codings(concept):
        if coding.get("system") == CANCER_SYSTEM and coding.get("code") in rules.cancer_types:
            return {"cancer_type": coding["code"]}
        if coding.get("system") == RECORD_FLAG_SYSTEM and coding.get("code") in RECORD_FLAGS:
            return {coding["code"]: True}
    for coding in _codings(concept):
        keys = _system_key(rules, coding.get("system"))
        code = str(coding.get("code") or "").replace(".", "").upper()
        for entry in rules.fhir_codes.conditions:
            if entry.system not in keys:
                continue
            if (entry.code is not None and str(coding.get("code")) == entry.code) or (
                    entry.prefix is not None and code.startswith(entry.prefix.replace(".", "").upper())):
                return entry.sets.model_dump(exclude_none=True)
    return None


def observation_field(rules: RuleSet, concept: dict[str, Any] | None) -> str | None:
    for coding in _codings(concept):
        keys = _system_key(rules, coding.get("system"))
        for entry in rules.fhir_codes.observations:
            if entry.system in keys and coding.get("code") == entry.code:
                return entry.field
    return None


def drug_of(rules: RuleSet, concept: dict[str, Any] | None) -> tuple[str, bool]:
    """The drug a medication concept names, and whether the rules' drug list knows it."""
    for coding in _codings(concept):
        keys = _system_key(rules, coding.get("system"))
        for entry in rules.fhir_codes.medications:
            if entry.system in keys and str(coding.get("code")) == entry.code:
                return rules.resolve_drug(entry.drug).generic, True
    names = [str(n).strip() for n in [c.get("display") for c in _codings(concept)] + [(concept or {}).get("text")]
             if n and str(n).strip()]
    for name in (n for n in names if n):
        known = rules.resolve_drug(name)
        if known is None:  # "Paclitaxel 6 mg/mL injection": the first word that names a drug
            known = next((rules.resolve_drug(w) for w in str(name).replace("/", " ").split()
                          if rules.resolve_drug(w) is not None), None)
        if known is not None:
            return known.generic, True
    text = next((str(n) for n in names if n), None) or next(
        (f"{c.get('system')}|{c.get('code')}" for c in _codings(concept)), "unknown drug")
    return text[:200], False


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return clock.aware(moment)


# --------------------------------------------------------------------------- the import


SMALL = ("Patient", "Condition", "Medication", "Observation")  # read whole before anything is written
LARGE = ("MedicationAdministration", "MedicationStatement", "MedicationRequest", "QuestionnaireResponse")
READ = SMALL + LARGE
CHUNK = 20_000  # doses and reports validated, mapped and written at a time
LISTED_REPORTS = 1_000  # reports named in the result (all are counted by tier)


class _Refused(Exception):
    """Problems found while writing: the transaction is rolled back."""


def _validate(batch: _Batch, resource: dict[str, Any]) -> bool:
    kind = resource["resourceType"]
    try:
        get_fhir_model_class(kind).model_validate(resource)
    except ValidationError as exc:
        for err in exc.errors()[:20]:
            batch.problem(f"{kind}/{resource['id']}", _path(err["loc"]), err["msg"].removeprefix("Value error, "))
        return False
    return True


def import_fhir(db: Database, rules: RuleSet, source: Path | str, *, now: datetime,
                panel_map: dict[str, str] | None = None, actor: str | None = None,
                progress: Callable[[str], None] | None = None) -> ImportResult:
    """Validate and map every resource of ``source`` and write them in one transaction, or nothing.

    Two passes over the source, so that a Bulk Data export is never held in memory: the first reads
    the patients, their conditions, medications and observations (few) and checks them; the second,
    inside the transaction, validates, maps and writes the doses and the responses a chunk at a time.
    A problem anywhere rolls the transaction back and the whole file is refused, every problem named.
    ``progress`` hears of every 10,000 resources read in each pass."""
    source = Path(source)
    now = clock.aware(now)
    batch = _Batch(rules, dict(panel_map or {}))
    large: set[str] = set()
    for number, (where, item) in enumerate(read_resources(source), start=1):
        if progress is not None and number % 10_000 == 0:
            progress(f"checked {number:,} resources ({len(batch.problems):,} problems so far)")
        if isinstance(item, Problem):
            batch.problems.append(item)
            continue
        full_url, resource = item
        kind = resource.get("resourceType")
        batch.counts[str(kind)]["read"] += 1
        if kind not in READ:
            batch.counts[str(kind)]["not_used"] += 1
            continue
        name = f"{kind}/{resource.get('id')}"
        if not resource.get("id"):
            batch.problem(where, "id", f"a {kind} without an id cannot be kept or updated")
            continue
        if kind in LARGE:  # validated, mapped and written in the second pass
            if name in large:
                batch.problem(name, "id", "appears twice in the file")
            large.add(name)
            continue
        if not _validate(batch, resource):
            continue
        if (kind, resource["id"]) in batch.resources:
            batch.problem(name, "id", "appears twice in the file")
            continue
        batch.resources[(kind, resource["id"])] = resource
        if full_url:
            batch.urls[full_url] = (kind, resource["id"])
    large.clear()
    with db.connect() as con:
        known_patients = {r[0]: r[1:] for r in con.execute(
            f"SELECT patient_id, {', '.join(PATIENT_FIELDS)} FROM patients").fetchall()}
        panels = {r[0] for r in con.execute("SELECT panel_id FROM panels").fetchall()}
    mapper = _Mapper(batch, known_patients, panels, now)
    problems, counts = list(batch.problems), {k: Counter(v) for k, v in batch.counts.items()}

    def work(con: duckdb.DuckDBPyConnection) -> ImportResult:
        batch.problems[:] = problems  # a write conflict runs this again: from where the first pass left off
        batch.counts.clear()
        batch.counts.update({k: Counter(v) for k, v in counts.items()})
        mapper.used_observations.clear()
        return _write(con, rules, source, now, actor, batch, mapper, progress)

    try:
        return db.transaction(work)
    except _Refused:
        _record(db, source, now, actor, "refused", batch.counts, batch.problems)
        raise ImportRefused(batch.problems, batch.counts) from None
    except CONSTRAINT_ERRORS as exc:  # a row the store's own checks refuse: nothing was written
        refused = [Problem(source.name, "", "the database refused a row: " + " ".join(str(exc).split())[:300])]
        _record(db, source, now, actor, "refused", batch.counts, refused)
        raise ImportRefused(refused, batch.counts) from None


def _patient_row(batch: _Batch, p: dict[str, Any], known: tuple | None, panels: set[str],
                 records: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    name_of = f"Patient/{p['id']}"
    ids = p.get("identifier") or []
    mrn = next((i.get("value") for i in ids if any(c.get("code") == "MR" for c in _codings(i.get("type")))), None)
    mrn = mrn or next((i.get("value") for i in ids if i.get("value")), None)
    if not mrn:
        batch.problem(name_of, "identifier", "no MRN: an identifier typed MR (or any identifier) is needed")
    names = p.get("name") or []
    human = next((n for n in names if n.get("use") in (None, "official", "usual")), names[0] if names else {})
    name = human.get("text") or " ".join([*(human.get("given") or []), human.get("family") or ""]).strip()
    if not name:
        batch.problem(name_of, "name", "no name")
    refs = [r.get("reference") for r in (p.get("generalPractitioner") or [])]
    refs += [(p.get("managingOrganization") or {}).get("reference"), name_of, "*"]
    panel = next((batch.panel_map[r] for r in refs if r and r in batch.panel_map), None)
    if panel is None:  # an Organization with a panel's id (as Backline's own export writes it)
        panel = next((r.split("/", 1)[1] for r in refs if r and r.startswith("Organization/")
                      and r.split("/", 1)[1] in panels), None)
    if panel is None and known is not None:
        panel = known[PATIENT_FIELDS.index("panel_id")]
    if panel is None:
        batch.problem(name_of, "generalPractitioner", "no panel: the panel map names none of its references "
                                                      f"({', '.join(r for r in refs[:-2] if r) or 'none'})")
    elif panel not in panels:
        batch.problem(name_of, "generalPractitioner", f"the panel map gives {panel!r}, which is not a panel")
    if known is not None:  # the store keys patients by these two: they cannot change in place
        was_mrn, was_panel = known[PATIENT_FIELDS.index("mrn")], known[PATIENT_FIELDS.index("panel_id")]
        if mrn and mrn != was_mrn:
            batch.problem(name_of, "identifier", f"the MRN changes from {was_mrn} to {mrn}: a patient's MRN "
                                                 "cannot be changed by import yet (merge or correct it at source)")
        if panel and panel != was_panel:
            batch.problem(name_of, "generalPractitioner", f"the panel changes from {was_panel} to {panel}: moving a "
                                                          "patient to another panel by import is not possible yet")
    record = records.get(p["id"], {})
    cancer = record.get("cancer_type") or (known[PATIENT_FIELDS.index("cancer_type")] if known else None)
    if not cancer:
        batch.problem(name_of, "", "no primary cancer: a Condition of this patient with a cancer code of "
                                   "rules/fhir_codes.yaml is needed")
    born = str(p.get("birthDate") or "")
    if born and not ("1900" <= born[:4] and born[:10] <= datetime.now().date().isoformat()):
        batch.problem(name_of, "birthDate", f"{born} is not a plausible date of birth (1900 to today)")
    gender = p.get("gender")
    flags = {f: bool(record.get(f)) or bool(known and known[PATIENT_FIELDS.index(f)]) for f in RECORD_FLAGS}
    return {"mrn": mrn, "name": name, "date_of_birth": p.get("birthDate"),
            "sex": gender if gender in ("female", "male", "other") else None, "cancer_type": cancer,
            **flags, "panel_id": panel}


class _Mapper:
    """What the resources become: the patients (with their conditions) at once, then each dose and each
    response on its own, as the second pass reaches it."""

    def __init__(self, batch: _Batch, known: dict[str, tuple], panels: set[str], now: datetime):
        self.batch, self.known, self.now = batch, known, now
        rules = batch.rules
        self.in_file = {r["id"] for r in batch.of("Patient")}
        records: dict[str, dict[str, Any]] = defaultdict(dict)
        latest_cancer: dict[str, str] = {}
        self.conditions = []
        for c in batch.of("Condition"):
            who = self.subject(c)
            status = [x.get("code") for x in _codings(c.get("verificationStatus"))]
            if who is None or any(s in ("refuted", "entered-in-error") for s in status):
                batch.counts["Condition"]["not_used"] += 1
                continue
            sets = condition_sets(rules, c.get("code"))
            if sets is None:
                batch.counts["Condition"]["not_used"] += 1
                continue
            when = str(c.get("recordedDate") or c.get("onsetDateTime") or "")
            if "cancer_type" in sets and (who not in latest_cancer or when >= latest_cancer[who]):
                latest_cancer[who] = when
                records[who]["cancer_type"] = sets["cancer_type"]
            for key in RECORD_FLAGS:
                if sets.get(key):
                    records[who][key] = True
            self.conditions.append(c)
        self.patients = [(p, _patient_row(batch, p, known.get(p["id"]), panels, records))
                         for p in batch.of("Patient")]
        # An MRN names one patient: not another one of Backline's, nor another one of the file.
        owner = {row[PATIENT_FIELDS.index("mrn")]: pid for pid, row in known.items()}
        for p, row in self.patients:
            mrn = row["mrn"]
            if mrn and owner.get(mrn, p["id"]) != p["id"]:
                batch.problem(p, "identifier", f"the MRN {mrn} is already Patient/{owner[mrn]}'s")
            elif mrn:
                owner[mrn] = p["id"]
        # A Condition for a patient known only to Backline updates that patient's record.
        for who in set(records) - self.in_file:
            row = dict(zip(PATIENT_FIELDS, known[who]))
            row.update(records[who])
            self.patients.append(({"resourceType": "Patient", "id": who, "_backline_only": True}, row))
        self.medications = {r["id"]: r for r in batch.of("Medication")}
        self.observations: dict[str, list[tuple[datetime, str, Any, dict]]] = defaultdict(list)
        for o in batch.of("Observation"):
            target = observation_field(rules, o.get("code"))
            who = batch.ref(o.get("subject"))
            at = o.get("effectiveDateTime") or (o.get("effectivePeriod") or {}).get("start")
            quantity = (o.get("valueQuantity") or {}).get("value", o.get("valueInteger"))
            if target is None or who is None or at is None or quantity is None or o.get("status") == "entered-in-error":
                continue
            self.observations[who[1]].append((_time(at), target, quantity, o))
        self.used_observations: set[str] = set()

    def subject(self, resource: dict[str, Any], path: str = "subject") -> str | None:
        target = self.batch.ref(resource.get(path))
        name = f"{resource['resourceType']}/{resource['id']}"
        if target is None or target[0] != "Patient":
            self.batch.problem(name, path, "must reference a Patient")
            return None
        if target[1] not in self.in_file and target[1] not in self.known:
            self.batch.problem(name, path, f"Patient/{target[1]} is neither in the file nor in Backline")
            return None
        return target[1]

    def concept(self, resource: dict[str, Any]) -> dict[str, Any] | None:
        if resource.get("medicationCodeableConcept"):
            return resource["medicationCodeableConcept"]
        target = self.batch.ref(resource.get("medicationReference"))
        contained = {f"#{r.get('id')}": r for r in resource.get("contained") or []}
        ref = (resource.get("medicationReference") or {}).get("reference")
        medication = contained.get(ref) or (self.medications.get(target[1]) if target else None)
        if medication is None:
            self.batch.problem(resource, "medicationReference", "the Medication it names is not in the file")
            return None
        return medication.get("code")

    def dose(self, m: dict[str, Any]) -> tuple | None:
        """A dose or course: (resource key, patient, drug, recognised, start, stop), or None."""
        batch, kind = self.batch, m["resourceType"]
        if m.get("status") in ("not-done", "entered-in-error", "cancelled", "not-taken", "draft"):
            batch.counts[kind]["not_used"] += 1
            return None
        who = self.subject(m)
        drug = self.concept(m)
        if kind == "MedicationAdministration":
            start = m.get("effectiveDateTime") or (m.get("effectivePeriod") or {}).get("start")
            stop = None
        elif kind == "MedicationStatement":
            period = m.get("effectivePeriod") or {}
            start, stop = m.get("effectiveDateTime") or period.get("start"), period.get("end")
        else:
            bounds = next((((d.get("timing") or {}).get("repeat") or {}).get("boundsPeriod")
                           for d in m.get("dosageInstruction") or []
                           if ((d.get("timing") or {}).get("repeat") or {}).get("boundsPeriod")), None) or {}
            start, stop = bounds.get("start") or m.get("authoredOn"), bounds.get("end")
        if not start:
            batch.problem(m, "effective[x]", "no time: when the drug was given or started is needed")
            return None
        if stop and _time(stop) < _time(start):
            batch.problem(m, "effectivePeriod.end", f"ends ({stop}) before it starts ({start})")
            return None
        if who is None or drug is None:
            return None
        name, recognised = drug_of(batch.rules, drug)
        return _key(m), who, name, recognised, _time(start), _time(stop) if stop else None

    def report(self, q: dict[str, Any]) -> tuple | None:
        """A report: (resource key, patient, report, unasked, (source, entered by)), or None."""
        batch, name = self.batch, f"QuestionnaireResponse/{q['id']}"
        if str(q.get("questionnaire", "")).split("|")[0] != QUESTIONNAIRE_URL:
            batch.problem(name, "questionnaire", f"a response to {q.get('questionnaire')!r}, not to Backline's "
                                                 f"questionnaire ({QUESTIONNAIRE_URL})")
            return None
        if q.get("status") not in ("completed", "amended"):
            batch.counts["QuestionnaireResponse"]["not_used"] += 1
            return None
        who = self.subject(q)
        if not q.get("authored"):
            batch.problem(name, "authored", "no time: when the patient reported is needed")
            return None
        fields, unasked, problems = report_from_response(q.get("item"))
        for link, text in problems:
            batch.problem(name, f"item[{link}]", text)
        reported = _time(q["authored"])
        for want in ("pain_score", "temperature_c"):
            if want in fields or who is None:
                continue
            near = [(abs(at - reported), value, o) for at, f, value, o in self.observations.get(who, [])
                    if f == want and abs(at - reported) <= OBSERVATION_WINDOW]
            if near:
                _, value, o = min(near, key=lambda x: x[0])
                fields[want] = value
                self.used_observations.add(o["id"])
        try:
            report = ReportIn.model_validate({"reported_at": reported, **fields})
        except ValidationError as exc:
            for path, text in errors_of(exc):
                batch.problem(name, f"item[{path}]", text)
            return None
        if reported > self.now:
            batch.problem(name, "authored", "is in the future")
            return None
        author = (q.get("author") or {}).get("identifier") or {}
        entered_by = author.get("value") if author.get("system") == STAFF_SYSTEM else None
        source = next((x.get("valueCode") for x in q.get("extension") or [] if x.get("url") == SOURCE_EXTENSION),
                      "epro")
        if source not in ("epro", "phone"):
            batch.problem(name, "extension", f"report source {source!r} is not epro or phone")
            return None
        if who is None:
            return None
        return _key(q), who, report, unasked, (source, entered_by)


def _key(resource: dict[str, Any]) -> tuple[str, str, str]:
    """A resource as the history keys it: type, id, version (the rest of it is not kept)."""
    return resource["resourceType"], resource["id"], _version(resource)


def _record(db: Database, source: Path, now: datetime, actor: str | None, result: str,
            counts: dict[str, Counter], problems: list[Problem]) -> int:
    def work(con: duckdb.DuckDBPyConnection) -> int:
        return _record_in(con, source, now, actor, result, counts, problems)

    return db.transaction(work)


def _record_in(con, source: Path, now: datetime, actor: str | None, result: str, counts: dict[str, Counter],
               problems: list[Problem], import_id: int | None = None) -> int:
    import_id = import_id or con.execute("SELECT nextval('fhir_imports_seq')").fetchall()[0][0]
    run(con, "INSERT INTO fhir_imports (import_id, imported_at, source, actor, result, counts, problems) "
             "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [import_id, now, str(source)[:1000], actor, result, json.dumps({k: dict(v) for k, v in counts.items()}),
         json.dumps([p.__dict__ for p in problems[:1000]])])
    return import_id


def _insert(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], rows: list[tuple]) -> None:
    """Append rows in one statement (read from a frame), not one statement a row.

    The frame is read through a relation, which lets it go when the statement is done. A frame
    registered on the connection would not: unregistering it inside a transaction only marks its view
    dropped, and the view, holding the frame, stays until the transaction ends, so every chunk of an
    import would be kept in memory until its commit."""
    if not rows:
        return
    if is_postgres(con):  # PostgreSQL's COPY, in the import's transaction
        with con.raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    frame = pd.DataFrame(rows, columns=columns, dtype=object)
    con.from_df(frame).query("fhir_rows", f"INSERT INTO {table} ({', '.join(columns)}) "
                                          f"SELECT {', '.join(columns)} FROM fhir_rows")


def _write(con: duckdb.DuckDBPyConnection, rules: RuleSet, source: Path, now: datetime, actor: str | None,
           batch: _Batch, mapper: _Mapper, progress: Callable[[str], None] | None) -> ImportResult:
    counts = batch.counts
    cols = list(ReportIn.model_fields)
    import_id = con.execute("SELECT nextval('fhir_imports_seq')").fetchall()[0][0]
    result = ImportResult(import_id, counts)
    kept: list[tuple] = []

    def history(keys: list[tuple[str, str, str]]) -> dict[tuple[str, str], list[tuple[str, str | None]]]:
        """The versions imported before of these resources, with the Backline row each became."""
        found: dict[tuple[str, str], list[tuple[str, str | None]]] = defaultdict(list)
        for kind, rid, version, key in con.execute(
                "SELECT resource_type, fhir_id, version, backline_key FROM fhir_resources WHERE resource_type || '/' "
                "|| fhir_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY import_id",
                [[f"{k}/{i}" for k, i, _ in keys]]).fetchall():
            found[(kind, rid)].append((version, key))
        return found

    def seen(before: dict, key: tuple[str, str, str]) -> tuple[str, str | None]:
        """new, updated or unchanged; and the Backline key of an earlier version."""
        rows = before.get(key[:2], [])
        if any(v == key[2] for v, _ in rows):
            return "unchanged", rows[0][1]
        return ("updated" if rows else "new"), (rows[0][1] if rows else None)

    def keep(key: tuple[str, str, str], change: str, table: str | None, row_key: str | None) -> None:
        counts[key[0]][change] += 1
        kept.append((*key, import_id, change, table, row_key))

    def flush_kept() -> None:
        _insert(con, "fhir_resources", ["resource_type", "fhir_id", "version", "import_id", "change",
                                        "backline_table", "backline_key"], kept)
        kept.clear()

    writing = not batch.problems
    if writing:
        before = history([_key(r) for r in batch.resources.values()])
        existing = {r[0] for r in con.execute("SELECT patient_id FROM patients").fetchall()}
        new_patients = []
        for resource, row in mapper.patients:
            pid = resource["id"]
            backline_only = resource.get("_backline_only", False)
            change = "updated" if backline_only else seen(before, _key(resource))[0]
            if change == "unchanged":
                counts["Patient"]["unchanged"] += 1
                continue
            if pid in existing:
                current = dict(zip(PATIENT_FIELDS, con.execute(
                    f"SELECT {', '.join(PATIENT_FIELDS)} FROM patients WHERE patient_id = ?", [pid]).fetchall()[0]))
                changed = {k: v for k, v in row.items() if str(current[k]) != str(v)}
                if changed:
                    run(con, f"UPDATE patients SET {', '.join(f'{k} = ?' for k in changed)} WHERE patient_id = ?",
                        [*changed.values(), pid])
            else:
                new_patients.append((pid, *row.values()))
                existing.add(pid)
            if not backline_only:
                keep(_key(resource), change, "patients", pid)
        _insert(con, "patients", ["patient_id", *PATIENT_FIELDS], new_patients)
        for c in mapper.conditions:
            change, _ = seen(before, _key(c))
            if change == "unchanged":
                counts["Condition"]["unchanged"] += 1
            else:
                keep(_key(c), change, "patients", batch.ref(c.get("subject"))[1])
        flush_kept()
    next_id = con.execute("SELECT coalesce(max(administration_id), 0) + 1 FROM administrations").fetchall()[0][0]
    tiers: Counter = Counter()

    def flush(doses: list[tuple], reports: list[tuple]) -> None:
        nonlocal next_id
        before = history([d[0] for d in doses] + [r[0] for r in reports])
        new_doses = []
        for key, who, drug, recognised, start, stop in doses:
            change, row_key = seen(before, key)
            if change == "unchanged":
                counts[key[0]]["unchanged"] += 1
                continue
            if not recognised and len(result.unrecognised_drugs) < LISTED_REPORTS:
                result.unrecognised_drugs.append(drug)
            if change == "updated" and row_key is not None:
                run(con, "UPDATE administrations SET patient_id = ?, drug = ?, given_at = ?, stopped_at = ? "
                         "WHERE administration_id = ?", [who, drug, start, stop, int(row_key)])
            else:
                row_key = str(next_id)
                new_doses.append((next_id, who, drug, start, stop))
                next_id += 1
            keep(key, change, "administrations", row_key)
        _insert(con, "administrations", ["administration_id", "patient_id", "drug", "given_at", "stopped_at"],
                new_doses)
        fresh = sum(1 for r in reports if seen(before, r[0])[0] == "new")
        ids = iter(r[0] for r in con.execute("SELECT 'R-' || lpad(nextval('reports_seq')::VARCHAR, 7, '0') "
                                             f"FROM {'generate_series(1, ?)' if is_postgres(con) else 'range(?)'}",
                                             [fresh]).fetchall())
        panel_of = dict(con.execute("SELECT patient_id, panel_id FROM patients WHERE patient_id IN "
                                    "(SELECT unnest(?::VARCHAR[]))", [sorted({r[1] for r in reports})]).fetchall())
        new_reports, new_open, unasked_rows, triage_ids = [], [], [], []
        for key, who, report, unasked, origin in reports:  # origin: (source, staff id)
            change, row_key = seen(before, key)
            if change == "unchanged":
                counts["QuestionnaireResponse"]["unchanged"] += 1
                continue
            values = [clock.aware(v) if isinstance(v, datetime) else v for v in (getattr(report, c) for c in cols)]
            if change == "updated" and row_key is not None:
                run(con, f"UPDATE reports SET {', '.join(f'{c} = ?' for c in cols)} WHERE report_id = ?",
                    [*values, row_key])
                run(con, "DELETE FROM report_unasked WHERE report_id = ?", [row_key])
            else:
                row_key = next(ids)
                new_reports.append((row_key, who, now, *origin, *values))
                new_open.append((row_key, who, panel_of[who], clock.aware(report.reported_at)))
            unasked_rows += [(row_key, flag) for flag in unasked]
            keep(key, change, "reports", row_key)
            triage_ids.append(row_key)
        _insert(con, "reports", ["report_id", "patient_id", "received_at", "source", "entered_by", *cols], new_reports)
        _insert(con, "open_reports", ["report_id", "patient_id", "panel_id", "reported_at"], new_open)
        _insert(con, "report_unasked", ["report_id", "field"], unasked_rows)
        flush_kept()
        if triage_ids:
            retriage(con, rules, now=now, report_ids=triage_ids, record_changes=True)
            for rid, tier in con.execute("SELECT report_id, tier FROM triage_results WHERE report_id IN "
                                         "(SELECT unnest(?::VARCHAR[])) ORDER BY report_id", [triage_ids]).fetchall():
                tiers[tier] += 1
                if len(result.reports) < LISTED_REPORTS:
                    result.reports.append((rid, tier))

    # The second pass: each dose and response validated, mapped, and written a chunk at a time.
    doses: list[tuple] = []
    reports: list[tuple] = []
    done = 0
    for where, item in read_resources(source):
        if isinstance(item, Problem):
            continue  # said in the first pass
        _, resource = item
        if resource.get("resourceType") not in LARGE or not resource.get("id"):
            continue
        done += 1
        if progress is not None and done % 10_000 == 0:
            progress(f"imported {done:,} doses and responses ({len(batch.problems):,} problems)")
        if not _validate(batch, resource):
            writing = False
            continue
        mapped = mapper.report(resource) if resource["resourceType"] == "QuestionnaireResponse" \
            else mapper.dose(resource)
        if batch.problems:
            writing = False
        if mapped is not None and writing:
            (reports if resource["resourceType"] == "QuestionnaireResponse" else doses).append(mapped)
            if len(doses) + len(reports) >= CHUNK:
                flush(doses, reports)
                doses, reports = [], []
    if batch.problems:
        raise _Refused()
    flush(doses, reports)
    for o in batch.of("Observation"):
        if o["id"] not in mapper.used_observations:
            counts["Observation"]["not_used"] += 1
            continue
        change, _ = seen(history([_key(o)]), _key(o))
        if change == "unchanged":
            counts["Observation"]["unchanged"] += 1
        else:
            keep(_key(o), change, None, None)
    flush_kept()
    result.tiers = tiers
    _record_in(con, source, now, actor, "imported", counts, [], import_id=import_id)  # the counts as written
    return result


# --------------------------------------------------------------------------- the import log


IMPORT_LOG_SQL = """
SELECT import_id, imported_at, source, actor, result, counts, problems FROM fhir_imports
ORDER BY import_id DESC LIMIT ?
"""


def import_log(db: Database, limit: int = 200) -> pd.DataFrame:
    """The latest imports, newest first: when, what file, by whom, imported or refused, the resources of
    each type (read, new, updated, unchanged, not used) and the problems of a refused one."""
    frame = db.query(IMPORT_LOG_SQL, [limit])
    frame["resources"] = [", ".join(f"{kind} {c.get('read', 0):,}" for kind, c in sorted(json.loads(v).items()))
                          for v in frame["counts"]]
    frame["changes"] = [", ".join(f"{n:,} {what}" for what, n in sorted(_totals(json.loads(v)).items()) if n)
                        for v in frame["counts"]]
    frame["problem_count"] = [len(json.loads(v)) for v in frame["problems"]]
    return frame


def _totals(counts: dict[str, dict[str, int]]) -> Counter:
    out: Counter = Counter()
    for c in counts.values():
        out.update({k: v for k, v in c.items() if k != "read"})
    return out


def import_problems(frame: pd.DataFrame, import_id: int) -> pd.DataFrame:
    """The problems of one import of the log, as a table."""
    row = frame[frame["import_id"] == import_id]
    items = json.loads(row.iloc[0]["problems"]) if not row.empty else []
    return pd.DataFrame(items, columns=["resource", "path", "problem"])
