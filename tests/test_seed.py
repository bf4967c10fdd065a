"""Sample data: deterministic, clinically shaped, loadable; stored triage agrees with the contract."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pandas as pd
import pytest

from dashboard import clock
from dashboard.db import Database
from dashboard.models import TriageCase, ReportIn
from dashboard.sample import CONTINUOUS_DRUGS, DRUG_NAMES, NEUROTOXIC_DRUGS, TRIAL_DRUGS, generate
from dashboard.triage import triage_cases
from tests.conftest import SEED_NOW, both_stores, run_cli


def test_the_generator_is_deterministic_for_a_seed():
    a = generate(patients=80, reports=900, seed=11, as_of=SEED_NOW)
    b = generate(patients=80, reports=900, seed=11, as_of=SEED_NOW)
    c = generate(patients=80, reports=900, seed=12, as_of=SEED_NOW)
    for table in ("panels", "staff", "patients", "regimens", "administrations", "reports"):
        pd.testing.assert_frame_equal(getattr(a, table), getattr(b, table))
    assert not getattr(a, "reports").equals(getattr(c, "reports"))


def test_seeding_twice_gives_the_same_database(tmp_path, rules):
    from dashboard.seed import generate_sample, seed_generated

    dumps = []
    for name in ("one", "two"):
        db = Database(tmp_path / f"{name}.duckdb")
        seed_generated(db, rules, generate_sample(patients=50, reports=400, seed=5, now=SEED_NOW), now=SEED_NOW, seed=5)
        dumps.append([db.rows(f"SELECT * FROM {t} ORDER BY ALL") for t in ("reports", "events", "triage_results")])
    assert dumps[0] == dumps[1]


# Drug names as a pharmacy system writes them: letters, digits, spaces, hyphens and parentheses.
CLEAN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ()-]*")


@pytest.fixture(scope="module")
def generated():
    return generate(patients=600, reports=5000, seed=21, as_of=SEED_NOW)


def test_the_generators_drug_tables_agree_with_the_rules(rules):
    """Every drug the generator names is one the rules know (the trial drugs excepted, on purpose), and
    it gives as courses exactly the drugs drugs.yaml calls continuous."""
    for name in DRUG_NAMES:
        assert CLEAN_NAME.fullmatch(name), name
        info = rules.resolve_drug(name)
        if name in TRIAL_DRUGS:
            assert info is None, f"{name} is meant to be unrecognised"
            continue
        assert info is not None, f"{name} is not in rules/drugs.yaml"
        assert info.continuous == (name in CONTINUOUS_DRUGS), name
        assert info.neurotoxic == (name in NEUROTOXIC_DRUGS), name


def test_continuous_drugs_are_one_row_per_course_and_doses_have_no_stop_date(generated, rules):
    adm = generated.administrations
    info = {d: rules.resolve_drug(d) for d in adm["drug"].unique()}
    continuous = adm["drug"].map(lambda d: bool(info[d] and info[d].continuous)).to_numpy()
    trial = adm["drug"].isin(list(TRIAL_DRUGS)).to_numpy()
    assert continuous.any() and (~continuous).any() and trial.any()
    # A dose never has a stop date; a stop date is never before its start, nor after as_of.
    assert adm.loc[~continuous & ~trial, "stopped_at"].isna().all()
    stopped = adm.dropna(subset=["stopped_at"])
    assert (stopped["stopped_at"] >= stopped["given_at"]).all()
    assert (stopped["stopped_at"] <= SEED_NOW).all() and (adm["given_at"] <= SEED_NOW).all()
    # Courses both ended (the regimen's end, a stop for toxicity) and running (no stop date yet).
    courses = adm[continuous]
    assert 0.2 < courses["stopped_at"].notna().mean() < 0.9
    # One row per course: a continuous drug appears once in its regimen, not once per cycle.
    in_regimen = courses.dropna(subset=["regimen_id"])
    assert len(in_regimen) > 100 and not in_regimen.duplicated(["regimen_id", "drug"]).any()
    assert (in_regimen["cycle"] == 1).all()
    # A course spans its regimen's cycles: capecitabine (days 1-14 of 21) lasts longer than a cycle
    # when the regimen has run for more than one.
    cape = courses[courses["drug"] == "capecitabine"].dropna(subset=["stopped_at"])
    assert ((cape["stopped_at"] - cape["given_at"]) > timedelta(days=21)).any()
    # Doses of an infused regimen are one row per dose, on several cycles.
    doses = adm[~continuous & adm["regimen_id"].notna()]
    assert doses.groupby(["regimen_id", "drug"]).size().max() > 3
    # Anticoagulants are courses beside the regimens: some stopped, some running.
    anticoagulants = adm[adm["drug"].map(lambda d: bool(info[d]) and info[d].drug_class == "anticoagulant")]
    assert anticoagulants["regimen_id"].isna().all()
    assert anticoagulants["stopped_at"].notna().any() and anticoagulants["stopped_at"].isna().any()


def test_the_sample_has_patients_for_every_new_rule(generated):
    patients, adm, reports = generated.patients, generated.administrations, generated.reports
    # Low platelets, mostly in myeloma and lymphoma.
    low = patients[patients["low_platelets"]]
    assert len(low) and low["cancer_type"].isin(["myeloma", "lymphoma"]).mean() > 0.5
    # Men with prostate cancer starting an LHRH agonist in the last 28 days, reporting since.
    lhrh = adm[adm["drug"].isin(["goserelin", "leuprorelin"])].groupby("patient_id")["given_at"].min()
    men = patients.set_index("patient_id").loc[lhrh.index, "cancer_type"] == "prostate"
    recent = lhrh[men & (lhrh >= SEED_NOW - timedelta(days=28))]
    assert len(recent)
    since = reports.merge(recent.rename("first").reset_index(), on="patient_id")
    assert (since["reported_at"] >= since["first"]).any()
    # Denosumab given and then stopped or delayed for more than 210 days before some reports.
    deno = adm[adm["drug"] == "denosumab"].groupby("patient_id")["given_at"].max().rename("last").reset_index()
    after = reports.merge(deno, on="patient_id")
    assert ((after["reported_at"].dt.normalize() - after["last"].dt.normalize()) > timedelta(days=210)).sum() >= 3
    # Aromatase-inhibitor courses running for more than a year.
    ai = adm[adm["drug"].isin(["letrozole", "anastrozole", "exemestane"])]
    assert (ai["stopped_at"].isna() & (ai["given_at"] < SEED_NOW - timedelta(days=365))).any()
    # Is this the usual pain? Mostly answered, all three answers, some unanswered; in bone disease
    # the usual pain is common.
    assert set(reports["pain_pattern"].dropna()) == {"new", "changed", "usual"}
    assert 0.03 < reports["pain_pattern"].isna().mean() < 0.2
    bone = set(patients.loc[patients["bone_metastases"] | (patients["cancer_type"] == "myeloma"), "patient_id"])
    in_bone = reports[reports["patient_id"].isin(bone)]
    assert 0.25 < (in_bone["pain_pattern"] == "usual").mean() < 0.6
    # The version 2 red flags: a small share each.
    for flag, most in (("saddle_numbness", 0.02), ("confusion_or_drowsiness", 0.02), ("thirst_or_polyuria", 0.02)):
        assert 0 < reports[flag].mean() < most, flag


def test_overrides_are_made_by_physicians_and_the_rest_by_nurses(sample_db, fresh_db):
    for db in (sample_db, fresh_db):
        rows = db.rows(
            "SELECT e.action = 'override' AS override, e.role, s.role, count(*) FROM events e"
            " JOIN staff s ON s.staff_id = e.actor WHERE e.role <> 'system' GROUP BY ALL")
        assert rows
        for override, role, staff_role, _ in rows:
            assert role == staff_role == ("physician" if override else "nurse")
        assert any(override for override, *_ in rows)


def test_every_rule_fires_in_the_sample(sample_db, rules):
    """The default sample exercises the whole rule set: each rule fires on some stored report."""
    fired = dict(sample_db.rows(
        "SELECT r, count(*) FROM (SELECT unnest(rule_ids) AS r FROM triage_results) GROUP BY r"))
    missing = [r.id for r in rules.rules if r.id not in fired]
    assert not missing, f"rules that fire on no report of sample_data/: {missing} (fired: {fired})"


def test_the_default_sample_loads_and_ends_now(sample_db):
    meta = sample_db.meta()
    assert meta["created_by"] == "backline seed" and meta["synthetic"] == "true"
    last = sample_db.scalar("SELECT max(reported_at) FROM reports")
    now = clock.aware(SEED_NOW)  # stored times are instants
    assert last <= now and (now - last).total_seconds() < 24 * 3600
    counts = dict(sample_db.rows(
        "SELECT 'patients', count(*) FROM patients UNION ALL SELECT 'reports', count(*) FROM reports "
        "UNION ALL SELECT 'results', count(*) FROM triage_results UNION ALL SELECT 'panels', count(*) FROM panels"))
    assert 300 <= counts["patients"] <= 600 and counts["reports"] >= 3000
    assert counts["results"] == counts["reports"] and counts["panels"] >= 5
    span = sample_db.rows("SELECT max(reported_at) - min(reported_at) FROM reports")[0][0]
    assert span.days >= 300


def test_sample_loaded_later_is_moved_to_that_day(tmp_path, rules):
    from dashboard.seed import seed_from_files
    from tests.conftest import ROOT

    later = datetime(2027, 3, 1, 15, 0)
    db = Database(tmp_path / "later.duckdb")
    stats = seed_from_files(db, rules, ROOT / "sample_data", now=later)
    last = db.scalar("SELECT max(reported_at) FROM reports")
    assert last <= clock.aware(later) and (clock.aware(later) - last).days < 2
    assert db.scalar("SELECT count(*) FROM events WHERE acted_at > ?", [later]) == 0
    assert stats.open_reports > 0


def test_reports_cluster_in_the_drug_windows(sample_db, rules):
    """Pain after pegfilgrastim concentrates on days 1-4 after the dose, as the literature says, and
    the engine explains it (R2 or a listed effect)."""
    days = pd.Series([r[0] for r in sample_db.rows(
        """
        WITH onset AS (SELECT report_id, patient_id, reported_at,
                              reported_at::DATE - duration_days AS day FROM reports WHERE duration_days IS NOT NULL),
             peg AS (SELECT patient_id, given_at FROM administrations WHERE drug = 'pegfilgrastim')
        SELECT o.day - p.given_at::DATE FROM onset o ASOF JOIN peg p
          ON p.patient_id = o.patient_id AND o.day::TIMESTAMP + INTERVAL 1 DAY > p.given_at
        WHERE o.day - p.given_at::DATE BETWEEN 0 AND 6 AND p.given_at <= o.reported_at
        """)])
    assert len(days) > 300
    assert days.between(1, 4).mean() > 0.7
    explained = sample_db.scalar(
        "SELECT count(*) FROM triage_results WHERE list_contains(causes, 'gcsf_bone_pain')")
    assert explained > 300


def test_a_realistic_minority_of_red_flags(sample_db):
    share = dict(sample_db.rows(
        "SELECT tier, count(*) / sum(count(*)) OVER () FROM triage_results GROUP BY tier"))
    assert 0.02 < share["emergency"] < 0.07
    assert share["routine"] > 0.3
    mscc = sample_db.scalar("SELECT avg(list_contains(causes, 'mscc')::INT) FROM triage_results")
    assert 0.01 < mscc < 0.08


def test_response_times_are_faster_for_higher_tiers_and_slower_out_of_hours(sample_db):
    df = sample_db.query(
        """
        SELECT t.tier, r.reported_at, date_diff('minute', r.reported_at, min(e.acted_at)) AS minutes
        FROM reports r JOIN triage_results t USING (report_id) JOIN events e USING (report_id)
        WHERE e.action = 'acknowledge'
        GROUP BY t.tier, r.reported_at, r.report_id
        """
    )
    med = df.groupby("tier")["minutes"].median()
    assert med["emergency"] < med["urgent"] < med["soon"] < med["routine"]
    hour = df["reported_at"].dt.hour
    ooh = (df["reported_at"].dt.day_of_week >= 5) | (hour < 8) | (hour >= 18)
    urgent = df["tier"] == "urgent"
    assert df[urgent & ooh]["minutes"].median() > df[urgent & ~ooh]["minutes"].median()
    # A few breaches of the emergency target, not none and not most.
    breach = (df[df["tier"] == "emergency"]["minutes"] > 15).mean()
    assert 0.02 < breach < 0.5


def test_stored_triage_agrees_with_the_contract(sample_db, rules):
    """The database path and the contract path are one engine: rebuild contract cases from the store
    (courses with their stop dates, the version 2 answers), for a spread of reports and every report
    that a version 2 rule or a fever rule fired on."""
    chosen = ("SELECT report_id FROM triage_results WHERE hash(report_id) % 15 = 0"
              " OR list_has_any(rule_ids, ['E2', 'E3', 'E4', 'U4', 'U5', 'U6', 'U7'])")
    reports = sample_db.query(
        "SELECT r.*, p.cancer_type, p.bone_metastases, p.osteoporosis, p.long_term_steroids, p.low_platelets "
        f"FROM reports r JOIN patients p USING (patient_id) WHERE report_id IN ({chosen}) ORDER BY report_id")
    assert len(reports) > 300
    doses = sample_db.query(
        "SELECT patient_id, drug, given_at, stopped_at FROM administrations ORDER BY administration_id")
    by_patient = {k: g for k, g in doses.groupby("patient_id")}
    cases = []
    for row in reports.to_dict("records"):
        meds = []
        if row["patient_id"] in by_patient:
            meds = [{"drug": d, "given_at": g.to_pydatetime(),
                     "stopped_at": None if pd.isna(s) else s.to_pydatetime()}
                    for d, g, s in by_patient[row["patient_id"]][["drug", "given_at", "stopped_at"]]
                    .itertuples(index=False)]
        report = {k: (None if pd.isna(row[k]) else row[k]) for k in ReportIn.model_fields}
        report["reported_at"] = row["reported_at"].to_pydatetime()
        cases.append(TriageCase.model_validate({
            "report_id": row["report_id"],
            "patient": {k: row[k] for k in ("patient_id", "cancer_type", "bone_metastases", "osteoporosis",
                                             "long_term_steroids", "low_platelets")},
            "medications": meds, "report": report}))
    contract = {o.report_id: (o.tier, o.rule_ids, o.leading_causes, o.causes) for o in triage_cases(rules, cases)}
    stored = {r[0]: (r[1], list(r[2]), list(r[3]), list(r[4])) for r in sample_db.rows(
        f"SELECT report_id, tier, rule_ids, leading_causes, causes FROM triage_results WHERE report_id IN ({chosen})")}
    assert contract == stored


def test_seed_refuses_to_overwrite_and_retriage_reports(tmp_path, rules):
    path = tmp_path / "cli.duckdb"
    first = run_cli("seed", "--db", str(path), "--patients", "40", "--reports", "300", "--seed", "2")
    assert first.returncode == 0, first.stderr
    assert b"40 patients" in first.stdout
    again = run_cli("seed", "--db", str(path), "--patients", "40")
    assert again.returncode == 4 and b"--force" in again.stderr
    re = run_cli("retriage", "--db", str(path))
    assert re.returncode == 0, re.stderr
    assert b"re-triaged" in re.stdout and b"reports/s" in re.stdout
    db = Database(path)
    assert db.scalar("SELECT count(DISTINCT rules_version) FROM triage_results") == 1
    assert db.scalar("SELECT count(*) FROM triage_results") == db.scalar("SELECT count(*) FROM reports")
    # The swapped-in table keeps its key, and every result's guidance is stored.
    import duckdb

    with pytest.raises(duckdb.ConstraintException):
        db.rows("INSERT INTO triage_results SELECT * FROM triage_results LIMIT 1")
    assert db.scalar("SELECT count(*) FROM triage_results WHERE guidance_key NOT IN "
                     "(SELECT guidance_key FROM guidance_sets)") == 0


# fresh_db's reports under rules where pain 5 is severe: the engine's counts, on either store.
EXPECTED_STRICTER_TIERS = {"emergency": 25, "urgent": 311, "soon": 96, "routine": 165}


@both_stores
def test_retriage_records_tier_changes_of_open_reports(tmp_path, fresh_db, rules):
    """New rules that move an open report's tier leave a 'retriaged' event saying so; every report
    gets the engine's result under the new rules, the same on both stores."""
    import shutil

    from dashboard.retriage import retriage
    from dashboard.rules import load_rules
    from tests.conftest import ROOT

    folder = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", folder)
    text = (folder / "triage_rules.yaml").read_text()
    (folder / "triage_rules.yaml").write_text(text.replace(
        "  severe_pain_score:\n    value: 7", "  severe_pain_score:\n    value: 5"))
    stricter = load_rules(folder)
    moved = fresh_db.scalar(
        "SELECT count(*) FROM open_reports o JOIN reports r USING (report_id) JOIN triage_results t USING (report_id)"
        " WHERE r.pain_score IN (5, 6) AND t.tier IN ('soon', 'routine')")
    stats = fresh_db.transaction(lambda con: retriage(con, stricter, now=SEED_NOW))
    assert stats.changed_open == moved > 0
    events = fresh_db.query("SELECT * FROM events WHERE action = 'retriaged'")
    assert len(events) == moved
    assert set(events["tier_after"]) <= {"urgent", "emergency"}
    assert (events["rules_version"] == stricter.version).all() and (events["role"] == "system").all()
    assert fresh_db.rows("SELECT count(*), count(DISTINCT rules_version), min(rules_version) FROM triage_results") == [
        (fresh_db.scalar("SELECT count(*) FROM reports"), 1, stricter.version)]
    tiers = dict(fresh_db.rows("SELECT tier, count(*) FROM triage_results GROUP BY 1"))
    assert tiers == EXPECTED_STRICTER_TIERS  # the same on the DuckDB file and on PostgreSQL
    assert fresh_db.scalar("SELECT count(*) FROM triage_results WHERE guidance_key NOT IN "
                           "(SELECT guidance_key FROM guidance_sets)") == 0


# --------------------------------------------------------------------------- the synthetic mark


def test_only_the_generator_marks_a_database_as_synthetic(tmp_path, rules, sample_db):
    """The mark is written by the generator's path, with the last event and report it made; files
    are loaded unmarked, whatever their meta.csv says."""
    from dashboard.identity import is_generated
    from dashboard.seed import seed_from_files
    from tests.conftest import ROOT

    meta = sample_db.meta()
    assert is_generated(meta)
    assert int(meta["generated_events"]) == sample_db.scalar("SELECT max(event_id) FROM events")
    assert meta["generated_reports"] == str(int(sample_db.scalar("SELECT max(report_id) FROM reports")[2:]))
    assert "synthetic,true" in (ROOT / "sample_data" / "meta.csv").read_text()
    loaded = Database(tmp_path / "files.duckdb")
    seed_from_files(loaded, rules, ROOT / "sample_data", now=SEED_NOW)
    assert not is_generated(loaded.meta())
    assert not {"synthetic", "created_by", "generated_events", "generated_reports"} & set(loaded.meta())


def test_demo_mode_refuses_a_database_loaded_from_files(tmp_path, rules, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from dashboard.seed import seed_from_files
    from tests.conftest import ROOT

    path = tmp_path / "files.duckdb"
    seed_from_files(Database(path), rules, ROOT / "sample_data", now=SEED_NOW)
    monkeypatch.setenv("BACKLINE_DB", str(path))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60).run()
    assert any("Demo mode refused" in e.value for e in at.error)
    assert not at.dataframe


def _snapshot(path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir()) if p.name.startswith(path.name)}


def _small_sample(path) -> None:
    done = run_cli("seed", "--db", str(path), "--patients", "40", "--reports", "300", "--seed", "2",
                   "--as-of", SEED_NOW.isoformat())
    assert done.returncode == 0, done.stderr


def test_seed_force_never_deletes_an_action_of_the_care_team(tmp_path, rules):
    from dashboard.access import Role, User
    from dashboard.workflow import act

    path = tmp_path / "kept" / "backline.duckdb"
    _small_sample(path)
    db = Database(path)
    report, panel = db.rows("SELECT report_id, panel_id FROM open_reports ORDER BY report_id LIMIT 1")[0]
    nurse = User(actor="N0001", name="Test Nurse", role=Role.NURSE, panels=(panel,))
    assert act(db, nurse, SEED_NOW, action="note", report_ids=[report], note="Called the GP").recorded == [report]
    before = _snapshot(path)
    again = run_cli("seed", "--db", str(path), "--force")
    assert again.returncode == 4
    message = again.stderr.decode()
    assert "1 event and 0 reports recorded since the sample was generated" in message
    assert f"mv {path} {path}.bak" in message
    assert _snapshot(path) == before  # the file, and its write-ahead log, as they were
    assert db.scalar("SELECT count(*) FROM events WHERE note = 'Called the GP'") == 1


def test_seed_force_refuses_a_phone_report_and_a_database_not_generated(tmp_path, rules):
    from dashboard.access import Role, User
    from dashboard.seed import seed_from_files
    from dashboard.workflow import submit_report
    from tests.conftest import ROOT

    path = tmp_path / "phone.duckdb"
    _small_sample(path)
    db = Database(path)
    patient, panel = db.rows("SELECT patient_id, panel_id FROM patients ORDER BY patient_id LIMIT 1")[0]
    nurse = User(actor="N0001", name="Test Nurse", role=Role.NURSE, panels=(panel,))
    submit_report(db, rules, nurse, SEED_NOW, patient_id=patient,
                  report={"reported_at": SEED_NOW, "pain_score": 3, "onset": "gradual"})
    refused = run_cli("seed", "--db", str(path), "--force")
    assert refused.returncode == 4 and b"0 events and 1 report recorded since" in refused.stderr
    files = tmp_path / "files.duckdb"
    seed_from_files(Database(files), rules, ROOT / "sample_data", now=SEED_NOW)
    before = _snapshot(files)
    refused = run_cli("seed", "--db", str(files), "--force")
    assert refused.returncode == 4 and b"was not made by the sample generator" in refused.stderr
    assert b"move it aside: mv" in refused.stderr and _snapshot(files) == before
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"not a database")
    refused = run_cli("seed", "--db", str(junk), "--force")
    assert refused.returncode == 4 and b"cannot be read" in refused.stderr and junk.read_bytes() == b"not a database"


def test_seed_force_replaces_a_sample_nobody_has_used(tmp_path):
    path = tmp_path / "untouched.duckdb"
    _small_sample(path)
    again = run_cli("seed", "--db", str(path), "--force", "--patients", "30", "--reports", "200", "--seed", "4")
    assert again.returncode == 0, again.stderr
    assert Database(path).scalar("SELECT count(*) FROM patients") == 30


def test_the_default_seed_is_the_generator_and_make_run_asks_for_demo_mode(tmp_path):
    from dashboard.identity import is_generated
    from tests.conftest import ROOT

    path = tmp_path / "default.duckdb"
    done = run_cli("seed", "--db", str(path), "--as-of", SEED_NOW.isoformat())
    assert done.returncode == 0, done.stderr
    assert b"400 patients" in done.stdout and is_generated(Database(path).meta())
    makefile = (ROOT / "Makefile").read_text()
    assert "\tBACKLINE_DEMO=1 $(PY) -m dashboard run\n" in makefile
