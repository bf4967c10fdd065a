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
mapped before anything is written; one problem (bad JSON, a structure the models refuse, a code that
must map and does not, a reference to a patient that is neither in the file nor in the database) and
nothing of the file is imported; every problem is reported with the resource, its id and the field.

Idempotent: each resource is keyed by its type and id, and its version by ``meta.versionId`` or,
without one, by the digest of its content. A resource already imported at that version changes
nothing; a new version updates the row it became, and ``fhir_resources`` keeps every version.
"""

from __future__ import annotations

import contextlib
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
from dashboard.db import Database, run
from dashboard.fhir_questionnaire import (CANCER_SYSTEM, QUESTIONNAIRE_URL, RECORD_FLAG_SYSTEM, SOURCE_EXTENSION,
                                         STAFF_SYSTEM, report_from_response)
from dashboard.models import ReportIn, errors_of
from dashboard.retriage import retriage
from dashboard.rules import RuleSet

READ = ("Patient", "Condition", "MedicationAdministration", "MedicationStatement", "MedicationRequest",
        "Observation", "QuestionnaireResponse", "Medication")
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
    reports: list[tuple[str, str]] = field(default_factory=list)  # (report id, tier) triaged now
    unrecognised_drugs: list[str] = field(default_factory=list)


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


def import_fhir(db: Database, rules: RuleSet, source: Path | str, *, now: datetime,
                panel_map: dict[str, str] | None = None, actor: str | None = None,
                progress: Callable[[str], None] | None = None) -> ImportResult:
    """Validate and map every resource of ``source``, then write them in one transaction (or nothing).
    ``progress`` hears of every 10,000 resources read, and of the write."""
    source = Path(source)
    now = clock.aware(now)
    batch = _Batch(rules, dict(panel_map or {}))
    for number, (where, item) in enumerate(read_resources(source), start=1):
        if progress is not None and number % 10_000 == 0:
            progress(f"read {number:,} resources ({len(batch.problems):,} problems so far)")
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
        try:
            get_fhir_model_class(kind).model_validate(resource)
        except ValidationError as exc:
            for err in exc.errors()[:20]:
                batch.problem(name, _path(err["loc"]), err["msg"].removeprefix("Value error, "))
            continue
        if (kind, resource["id"]) in batch.resources:
            batch.problem(name, "id", "appears twice in the file")
            continue
        batch.resources[(kind, resource["id"])] = resource
        if full_url:
            batch.urls[full_url] = (kind, resource["id"])
    with db.connect() as con:
        known_patients = {r[0]: r[1:] for r in con.execute(
            f"SELECT patient_id, {', '.join(PATIENT_FIELDS)} FROM patients").fetchall()}
        panels = {r[0] for r in con.execute("SELECT panel_id FROM panels").fetchall()}
    plan = _map(batch, known_patients, panels, now)
    if batch.problems:
        _record(db, source, now, actor, "refused", batch.counts, batch.problems)
        raise ImportRefused(batch.problems, batch.counts)
    if progress is not None:
        progress(f"all {sum(c['read'] for c in batch.counts.values()):,} resources valid; writing them in one "
                 "transaction")
    try:
        return _write(db, rules, source, now, actor, batch, plan)
    except duckdb.ConstraintException as exc:  # a row the store's own checks refuse: nothing was written
        problems = [Problem(source.name, "", "the database refused a row: " + " ".join(str(exc).split())[:300])]
        _record(db, source, now, actor, "refused", batch.counts, problems)
        raise ImportRefused(problems, batch.counts) from None


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


def _map(batch: _Batch, known: dict[str, tuple], panels: set[str], now: datetime) -> dict[str, list]:
    rules = batch.rules
    in_file = {r["id"] for r in batch.of("Patient")}

    def subject(resource: dict[str, Any], path: str = "subject") -> str | None:
        target = batch.ref(resource.get(path))
        name = f"{resource['resourceType']}/{resource['id']}"
        if target is None or target[0] != "Patient":
            batch.problem(name, path, "must reference a Patient")
            return None
        if target[1] not in in_file and target[1] not in known:
            batch.problem(name, path, f"Patient/{target[1]} is neither in the file nor in Backline")
            return None
        return target[1]

    records: dict[str, dict[str, Any]] = defaultdict(dict)
    latest_cancer: dict[str, str] = {}
    conditions_used = []
    for c in batch.of("Condition"):
        who = subject(c)
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
        conditions_used.append(c)
    patients = [(p, _patient_row(batch, p, known.get(p["id"]), panels, records)) for p in batch.of("Patient")]
    # An MRN names one patient: not another one of Backline's, nor another one of the file.
    owner = {row[PATIENT_FIELDS.index("mrn")]: pid for pid, row in known.items()}
    for p, row in patients:
        mrn = row["mrn"]
        if mrn and owner.get(mrn, p["id"]) != p["id"]:
            batch.problem(p, "identifier", f"the MRN {mrn} is already Patient/{owner[mrn]}'s")
        elif mrn:
            owner[mrn] = p["id"]
    # A Condition for a patient known only to Backline updates that patient's record.
    for who in set(records) - in_file:
        row = dict(zip(PATIENT_FIELDS, known[who]))
        row.update(records[who])
        patients.append(({"resourceType": "Patient", "id": who, "_backline_only": True}, row))

    medications = {r["id"]: r for r in batch.of("Medication")}

    def concept(resource: dict[str, Any]) -> dict[str, Any] | None:
        if resource.get("medicationCodeableConcept"):
            return resource["medicationCodeableConcept"]
        target = batch.ref(resource.get("medicationReference"))
        contained = {f"#{r.get('id')}": r for r in resource.get("contained") or []}
        ref = (resource.get("medicationReference") or {}).get("reference")
        medication = contained.get(ref) or (medications.get(target[1]) if target else None)
        if medication is None:
            batch.problem(resource, "medicationReference", "the Medication it names is not in the file")
            return None
        return medication.get("code")

    doses = []
    for kind in ("MedicationAdministration", "MedicationStatement", "MedicationRequest"):
        for m in batch.of(kind):
            if m.get("status") in ("not-done", "entered-in-error", "cancelled", "not-taken", "draft"):
                batch.counts[kind]["not_used"] += 1
                continue
            who = subject(m)
            drug = concept(m)
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
                continue
            if stop and _time(stop) < _time(start):
                batch.problem(m, "effectivePeriod.end", f"ends ({stop}) before it starts ({start})")
                continue
            if who is None or drug is None:
                continue
            name, recognised = drug_of(rules, drug)
            doses.append((m, who, name, recognised, _time(start), _time(stop) if stop else None))

    observations: dict[str, list[tuple[datetime, str, Any, dict]]] = defaultdict(list)
    for o in batch.of("Observation"):
        target = observation_field(rules, o.get("code"))
        who = batch.ref(o.get("subject"))
        at = o.get("effectiveDateTime") or (o.get("effectivePeriod") or {}).get("start")
        quantity = (o.get("valueQuantity") or {}).get("value", o.get("valueInteger"))
        if target is None or who is None or at is None or quantity is None or o.get("status") == "entered-in-error":
            continue
        observations[who[1]].append((_time(at), target, quantity, o))

    reports = []
    used_observations = set()
    for q in batch.of("QuestionnaireResponse"):
        name = f"QuestionnaireResponse/{q['id']}"
        if str(q.get("questionnaire", "")).split("|")[0] != QUESTIONNAIRE_URL:
            batch.problem(name, "questionnaire", f"a response to {q.get('questionnaire')!r}, not to Backline's "
                                                 f"questionnaire ({QUESTIONNAIRE_URL})")
            continue
        if q.get("status") not in ("completed", "amended"):
            batch.counts["QuestionnaireResponse"]["not_used"] += 1
            continue
        who = subject(q)
        if not q.get("authored"):
            batch.problem(name, "authored", "no time: when the patient reported is needed")
            continue
        fields, unasked, problems = report_from_response(q.get("item"))
        for link, text in problems:
            batch.problem(name, f"item[{link}]", text)
        reported = _time(q["authored"])
        for want in ("pain_score", "temperature_c"):
            if want in fields or who is None:
                continue
            near = [(abs(at - reported), value, o) for at, f, value, o in observations.get(who, []) if f == want
                    and abs(at - reported) <= OBSERVATION_WINDOW]
            if near:
                _, value, o = min(near, key=lambda x: x[0])
                fields[want] = value
                used_observations.add(o["id"])
        try:
            report = ReportIn.model_validate({"reported_at": reported, **fields})
        except ValidationError as exc:
            for path, text in errors_of(exc):
                batch.problem(name, f"item[{path}]", text)
            continue
        if reported > now:
            batch.problem(name, "authored", "is in the future")
            continue
        author = (q.get("author") or {}).get("identifier") or {}
        entered_by = author.get("value") if author.get("system") == STAFF_SYSTEM else None
        source = next((x.get("valueCode") for x in q.get("extension") or [] if x.get("url") == SOURCE_EXTENSION),
                      "epro")
        if source not in ("epro", "phone"):
            batch.problem(name, "extension", f"report source {source!r} is not epro or phone")
        elif who is not None:
            reports.append((q, who, report, unasked, (source, entered_by)))
    for o in batch.of("Observation"):
        if o["id"] not in used_observations:
            batch.counts["Observation"]["not_used"] += 1
    return {"patients": patients, "conditions": conditions_used, "doses": doses, "reports": reports,
            "observations": [o for o in batch.of("Observation") if o["id"] in used_observations]}


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
    """Append rows in one statement (a frame registered for it), not one statement a row."""
    if not rows:
        return
    frame = pd.DataFrame(rows, columns=columns, dtype=object)
    con.register("fhir_rows", frame)
    try:
        run(con, f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM fhir_rows")
    finally:
        with contextlib.suppress(duckdb.Error):  # after a refused row the transaction is aborted: keep that error
            con.unregister("fhir_rows")


def _write(db: Database, rules: RuleSet, source: Path, now: datetime, actor: str | None, batch: _Batch,
           plan: dict[str, list]) -> ImportResult:
    counts = batch.counts
    cols = list(ReportIn.model_fields)

    def work(con: duckdb.DuckDBPyConnection) -> ImportResult:
        import_id = con.execute("SELECT nextval('fhir_imports_seq')").fetchall()[0][0]
        result = ImportResult(import_id, counts)
        history: dict[tuple[str, str], list[tuple[str, str | None]]] = defaultdict(list)
        for kind, rid, version, key in con.execute(
                "SELECT resource_type, fhir_id, version, backline_key FROM fhir_resources WHERE resource_type || '/' "
                "|| fhir_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY import_id",
                [[f"{k}/{i}" for k, i in batch.resources]]).fetchall():
            history[(kind, rid)].append((version, key))
        kept: list[tuple] = []

        def seen(resource: dict[str, Any]) -> tuple[str, str | None]:
            """new, updated or unchanged; and the Backline key of an earlier version."""
            rows = history.get((resource["resourceType"], resource["id"]), [])
            if any(v == _version(resource) for v, _ in rows):
                return "unchanged", rows[0][1]
            return ("updated" if rows else "new"), (rows[0][1] if rows else None)

        def keep(resource: dict[str, Any], change: str, table: str | None, key: str | None) -> None:
            counts[resource["resourceType"]][change] += 1
            kept.append((resource["resourceType"], resource["id"], _version(resource), import_id, change, table, key))

        existing = {r[0] for r in con.execute("SELECT patient_id FROM patients").fetchall()}
        new_patients = []
        panel_of: dict[str, str] = {}
        for resource, row in plan["patients"]:
            pid = resource["id"]
            panel_of[pid] = row["panel_id"]
            backline_only = resource.get("_backline_only", False)
            change = "updated" if backline_only else seen(resource)[0]
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
                keep(resource, change, "patients", pid)
        _insert(con, "patients", ["patient_id", *PATIENT_FIELDS], new_patients)
        for c in plan["conditions"]:
            change, _ = seen(c)
            if change == "unchanged":
                counts["Condition"]["unchanged"] += 1
            else:
                keep(c, change, "patients", batch.ref(c.get("subject"))[1])
        next_id = con.execute("SELECT coalesce(max(administration_id), 0) + 1 FROM administrations").fetchall()[0][0]
        new_doses = []
        for m, who, drug, recognised, start, stop in plan["doses"]:
            change, key = seen(m)
            if change == "unchanged":
                counts[m["resourceType"]]["unchanged"] += 1
                continue
            if not recognised:
                result.unrecognised_drugs.append(drug)
            if change == "updated" and key is not None:
                run(con, "UPDATE administrations SET patient_id = ?, drug = ?, given_at = ?, stopped_at = ? "
                         "WHERE administration_id = ?", [who, drug, start, stop, int(key)])
            else:
                key = str(next_id)
                new_doses.append((next_id, who, drug, start, stop))
                next_id += 1
            keep(m, change, "administrations", key)
        _insert(con, "administrations", ["administration_id", "patient_id", "drug", "given_at", "stopped_at"],
                new_doses)
        fresh = [q for q, *_ in plan["reports"] if seen(q)[0] == "new"]
        ids = iter(r[0] for r in con.execute("SELECT 'R-' || lpad(nextval('reports_seq')::VARCHAR, 7, '0') "
                                             "FROM range(?)", [len(fresh)]).fetchall())
        missing = {who for _, who, *_ in plan["reports"]} - set(panel_of)
        panel_of.update(dict(con.execute("SELECT patient_id, panel_id FROM patients WHERE patient_id IN "
                                         "(SELECT unnest(?::VARCHAR[]))", [sorted(missing)]).fetchall()))
        new_reports, new_open, unasked_rows, triage_ids = [], [], [], []
        for q, who, report, unasked, origin in plan["reports"]:  # origin: (source, staff id)
            change, key = seen(q)
            if change == "unchanged":
                counts["QuestionnaireResponse"]["unchanged"] += 1
                continue
            values = [clock.aware(v) if isinstance(v, datetime) else v for v in (getattr(report, c) for c in cols)]
            if change == "updated" and key is not None:
                run(con, f"UPDATE reports SET {', '.join(f'{c} = ?' for c in cols)} WHERE report_id = ?",
                    [*values, key])
                run(con, "DELETE FROM report_unasked WHERE report_id = ?", [key])
            else:
                key = next(ids)
                new_reports.append((key, who, now, *origin, *values))
                new_open.append((key, who, panel_of[who], clock.aware(report.reported_at)))
            unasked_rows += [(key, flag) for flag in unasked]
            keep(q, change, "reports", key)
            triage_ids.append(key)
        _insert(con, "reports", ["report_id", "patient_id", "received_at", "source", "entered_by", *cols], new_reports)
        _insert(con, "open_reports", ["report_id", "patient_id", "panel_id", "reported_at"], new_open)
        _insert(con, "report_unasked", ["report_id", "field"], unasked_rows)
        for o in plan["observations"]:
            change, _ = seen(o)
            if change == "unchanged":
                counts["Observation"]["unchanged"] += 1
            else:
                keep(o, change, None, None)
        _insert(con, "fhir_resources", ["resource_type", "fhir_id", "version", "import_id", "change", "backline_table",
                                        "backline_key"], kept)
        if triage_ids:
            retriage(con, rules, now=now, report_ids=triage_ids, record_changes=True)
            result.reports = [tuple(r) for r in con.execute(
                "SELECT report_id, tier FROM triage_results WHERE report_id IN (SELECT unnest(?::VARCHAR[])) "
                "ORDER BY report_id", [triage_ids]).fetchall()]
        _record_in(con, source, now, actor, "imported", counts, [], import_id=import_id)  # the counts as written
        return result

    return db.transaction(work)


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
