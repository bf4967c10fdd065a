"""Synthetic, clinically shaped sample data: panels, patients, regimens, doses, reports, actions.

Deterministic for a seed and an ``as_of`` time, vectorised (numpy and pandas, no per-row Python
loops over reports), so that 50,000 patients and a million reports take seconds, not hours.

What makes it clinically shaped rather than noise:

* real regimens on their real schedules (TCHP with pegfilgrastim on day 2, AC then weekly
  paclitaxel, letrozole with palbociclib, tamoxifen, carboplatin-pemetrexed, FOLFOX, docetaxel for
  prostate cancer, VRd with zoledronic acid for myeloma, R-CHOP with filgrastim);
* cancer types, bone metastases and myeloma in plausible proportions;
* back-pain reports clustered in the drug windows (days 1-4 after pegfilgrastim, 1-5 after a
  taxane, the day of a trastuzumab infusion) and a realistic minority with red flags;
* care-team actions with realistic response times: faster for higher tiers, slower out of hours,
  a tail of breaches, recent reports still open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# --------------------------------------------------------------------------- clinical tables

# cancer type -> (share of patients, chance of known bone metastases, chance female)
CANCERS: dict[str, tuple[float, float, float]] = {
    "breast": (0.34, 0.16, 0.99),
    "lung": (0.17, 0.22, 0.48),
    "colorectal": (0.15, 0.05, 0.45),
    "prostate": (0.12, 0.35, 0.0),
    "myeloma": (0.08, 0.0, 0.42),
    "lymphoma": (0.14, 0.03, 0.46),
}
SERVICE = {
    "breast": "Breast oncology",
    "lung": "Thoracic oncology",
    "colorectal": "GI oncology",
    "prostate": "Uro-oncology",
    "myeloma": "Haematology",
    "lymphoma": "Haematology",
}
# Age ranges at the start of treatment.
AGES = {
    "breast": (32, 82),
    "lung": (45, 85),
    "colorectal": (40, 84),
    "prostate": (55, 88),
    "myeloma": (48, 86),
    "lymphoma": (25, 85),
}


@dataclass(frozen=True)
class Regimen:
    code: str
    name: str
    intent: str
    cycle_days: int
    cycles: int
    # (drug, days of the cycle on which it is given); for oral daily drugs, the start day
    doses: tuple[tuple[str, tuple[int, ...]], ...]
    then: str | None = None  # a regimen that follows this one


REGIMENS: dict[str, Regimen] = {
    r.code: r
    for r in [
        Regimen("TCHP", "TCHP (docetaxel, carboplatin, trastuzumab, pertuzumab)", "neoadjuvant", 21, 6,
                (("docetaxel", (1,)), ("carboplatin", (1,)), ("trastuzumab", (1,)), ("pertuzumab", (1,)),
                 ("pegfilgrastim", (2,)))),
        Regimen("AC", "AC (doxorubicin, cyclophosphamide), dose-dense", "adjuvant", 14, 4,
                (("doxorubicin", (1,)), ("cyclophosphamide", (1,)), ("pegfilgrastim", (2,))), then="T12"),
        Regimen("T12", "Weekly paclitaxel", "adjuvant", 7, 12, (("paclitaxel", (1,)),)),
        Regimen("LETPAL", "Letrozole with palbociclib", "palliative", 28, 13,
                (("palbociclib", (1,)), ("letrozole", (1,)))),
        Regimen("TAM", "Tamoxifen", "adjuvant", 365, 1, (("tamoxifen", (1,)),)),
        Regimen("LET", "Letrozole", "adjuvant", 365, 1, (("letrozole", (1,)),)),
        Regimen("CARBOPEM", "Carboplatin and pemetrexed", "palliative", 21, 4,
                (("carboplatin", (1,)), ("pemetrexed", (1,))), then="PEMMAINT"),
        Regimen("CARBOPEMPEMBRO", "Carboplatin, pemetrexed and pembrolizumab", "palliative", 21, 4,
                (("carboplatin", (1,)), ("pemetrexed", (1,)), ("pembrolizumab", (1,))), then="PEMPEMBRO"),
        Regimen("PEMMAINT", "Pemetrexed maintenance", "maintenance", 21, 8, (("pemetrexed", (1,)),)),
        Regimen("PEMPEMBRO", "Pemetrexed and pembrolizumab maintenance", "maintenance", 21, 8,
                (("pemetrexed", (1,)), ("pembrolizumab", (1,)))),
        Regimen("FOLFOX", "FOLFOX (oxaliplatin, folinic acid, fluorouracil)", "adjuvant", 14, 12,
                (("oxaliplatin", (1,)), ("folinic acid", (1,)), ("fluorouracil", (1,)))),
        Regimen("DOCPRED", "Docetaxel with prednisolone", "palliative", 21, 6,
                (("docetaxel", (1,)), ("prednisolone", (1,)))),
        Regimen("VRD", "VRd (bortezomib, lenalidomide, dexamethasone) with zoledronic acid", "curative", 21, 8,
                (("bortezomib", (1, 4, 8, 11)), ("lenalidomide", (1,)), ("dexamethasone", (1,)),
                 ("zoledronic acid", (1,)))),
        Regimen("RCHOP", "R-CHOP with filgrastim", "curative", 21, 6,
                (("rituximab", (1,)), ("cyclophosphamide", (1,)), ("doxorubicin", (1,)), ("vincristine", (1,)),
                 ("prednisolone", (1,)), ("filgrastim", (4, 5, 6, 7, 8, 9, 10)))),
    ]
}
# cancer -> [(first regimen, share)]
REGIMEN_MIX: dict[str, list[tuple[str, float]]] = {
    "breast": [("TCHP", 0.30), ("AC", 0.30), ("LETPAL", 0.18), ("TAM", 0.11), ("LET", 0.11)],
    "lung": [("CARBOPEM", 0.4), ("CARBOPEMPEMBRO", 0.6)],
    "colorectal": [("FOLFOX", 1.0)],
    "prostate": [("DOCPRED", 1.0)],
    "myeloma": [("VRD", 1.0)],
    "lymphoma": [("RCHOP", 1.0)],
}
# Drugs whose windows shape the timing of drug-related reports, with the onset-day distribution
# (days after the dose, probabilities) seen in the literature.
# How often a dose of each is followed by a report, relative to pegfilgrastim (filgrastim is given
# daily, so each dose counts for less).
WINDOW_WEIGHT = {"pegfilgrastim": 1.0, "filgrastim": 0.12, "docetaxel": 0.5, "paclitaxel": 0.35, "trastuzumab": 0.2}
WINDOW_DRUGS: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "pegfilgrastim": ((0, 1, 2, 3, 4, 5, 6), (0.04, 0.28, 0.30, 0.20, 0.10, 0.05, 0.03)),
    "filgrastim": ((0, 1, 2, 3), (0.25, 0.40, 0.25, 0.10)),
    "docetaxel": ((1, 2, 3, 4, 5, 6), (0.20, 0.28, 0.22, 0.15, 0.10, 0.05)),
    "paclitaxel": ((1, 2, 3, 4, 5), (0.25, 0.30, 0.22, 0.15, 0.08)),
    "trastuzumab": ((0, 1), (0.7, 0.3)),
}
FIRST_NAMES_F = ["Amelia", "Olivia", "Isla", "Ava", "Mia", "Grace", "Sophie", "Emily", "Ella", "Lily",
                 "Ruth", "Margaret", "Janet", "Susan", "Helen", "Priya", "Aisha", "Fatima", "Mei", "Zofia",
                 "Joan", "Carol", "Linda", "Sarah", "Anne", "Niamh", "Siobhan", "Bronwen", "Ines", "Lucia"]
FIRST_NAMES_M = ["Oliver", "George", "Harry", "Jack", "Noah", "Leo", "Arthur", "Thomas", "James", "William",
                 "David", "John", "Peter", "Michael", "Robert", "Rajesh", "Mohammed", "Wei", "Tomasz", "Kwame",
                 "Brian", "Keith", "Alan", "Colin", "Graham", "Liam", "Sean", "Gareth", "Mateo", "Pavel"]
LAST_NAMES = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Robinson",
              "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson",
              "Clarke", "Khan", "Ahmed", "Hughes", "Edwards", "Lewis", "Murphy", "Kelly", "Chen", "Nowak",
              "Okafor", "Singh", "Ali", "Campbell", "Stewart", "Morgan", "Price", "Bell", "Shaw", "Begum"]
NURSE_SURNAMES = ["Adeyemi", "Baker", "Costa", "Doyle", "Ellis", "Fraser", "Gupta", "Hart", "Iqbal", "Jensen",
                  "Kaur", "Lowe", "Mensah", "Nolan", "Owen", "Pryce", "Quinn", "Reid", "Sato", "Tran", "Usman",
                  "Vance", "Walsh", "Young"]
OUTCOMES_BY_CAUSE = {
    "mscc": "referred_to_mscc",
    "neutropenic_sepsis": "referred_to_ed",
    "spinal_infection": "admitted",
    "spinal_metastasis": "imaging_requested",
    "pathological_fracture": "imaging_requested",
    "fragility_fracture": "imaging_requested",
    "cipn": "clinic_review_booked",
    "ai_arthralgia": "clinic_review_booked",
    "gcsf_bone_pain": "self_care_advice",
    "taxane_acute_pain": "self_care_advice",
    "anti_her2_infusion": "self_care_advice",
}
ESCALATE_TO = {
    "mscc": "mscc_coordinator",
    "neutropenic_sepsis": "acute_oncology",
    "spinal_infection": "acute_oncology",
    "spinal_metastasis": "mscc_coordinator",
    "pathological_fracture": "physician",
    "fragility_fracture": "physician",
}
# Median minutes to the first response, by tier (lognormal around it); out of hours is slower.
RESPONSE_MEDIAN_MIN = {"emergency": 7.0, "urgent": 55.0, "soon": 330.0, "routine": 1300.0}
RESOLVE_MEDIAN_MIN = {"emergency": 150.0, "urgent": 600.0, "soon": 2400.0, "routine": 3600.0}
OUT_OF_HOURS_FACTOR = 2.2
TIER_NAMES = np.array(["routine", "soon", "urgent", "emergency"])


@dataclass
class SampleData:
    """The frames of a generated sample, in load order."""

    meta: dict[str, str]
    panels: pd.DataFrame
    staff: pd.DataFrame
    patients: pd.DataFrame
    regimens: pd.DataFrame
    administrations: pd.DataFrame
    reports: pd.DataFrame
    events: pd.DataFrame | None = None  # filled in by dashboard.seed once reports are triaged

    TABLES = ("panels", "staff", "patients", "regimens", "administrations", "reports", "events")


def _choice(rng: np.random.Generator, options: list[str], probs: list[float], n: int) -> np.ndarray:
    p = np.asarray(probs, dtype=float)
    return np.asarray(options, dtype=object)[rng.choice(len(options), size=n, p=p / p.sum())]


def _minutes(values: np.ndarray) -> np.ndarray:
    return (np.asarray(values, dtype=float) * 60_000_000_000).astype("timedelta64[ns]")  # minutes -> ns


def generate(
    *,
    patients: int = 400,
    reports: int = 6000,
    seed: int = 7,
    as_of: datetime,
    history_days: int = 365,
) -> SampleData:
    """Generate a sample ending at ``as_of`` (a naive local time). Deterministic for the arguments."""
    if patients < 1 or reports < 0:
        raise ValueError("patients must be at least 1 and reports at least 0")
    rng = np.random.default_rng(seed)
    as_of = pd.Timestamp(as_of).floor("min")
    n = patients

    # ---- panels and staff, sized to the patient count
    cancer_types = list(CANCERS)
    shares = np.array([CANCERS[c][0] for c in cancer_types])
    cancer_idx = rng.choice(len(cancer_types), size=n, p=shares / shares.sum())
    panel_size = int(np.clip(n / 30, 60, 2000))
    panel_rows, staff_rows = [], []
    patient_panel = np.empty(n, dtype=object)
    nurse_no = 0
    for ci, cancer in enumerate(cancer_types):
        members = np.flatnonzero(cancer_idx == ci)
        if len(members) == 0:
            continue
        k = max(1, round(len(members) / panel_size))
        for j in range(k):
            pid = f"{cancer[:3].upper()}-{chr(ord('A') + j) if k <= 26 else j + 1}"
            name = f"{cancer.capitalize()} {chr(ord('A') + j) if k <= 26 else j + 1}"
            panel_rows.append((pid, name, SERVICE[cancer]))
            patient_panel[members[j::k]] = pid
            for _ in range(max(2, int(np.ceil(len(members) / k / 150))) + 1):
                nurse_no += 1
                given = (FIRST_NAMES_F + FIRST_NAMES_M)[(nurse_no * 7) % (len(FIRST_NAMES_F) + len(FIRST_NAMES_M))]
                nm = f"{given} {NURSE_SURNAMES[nurse_no % len(NURSE_SURNAMES)]}"
                staff_rows.append((f"N{nurse_no:04d}", nm, f"n{nurse_no:04d}@backline.example", "nurse", pid))
    panels = pd.DataFrame(panel_rows, columns=["panel_id", "name", "service"])
    for i, (role, nm) in enumerate(
        [("physician", "Dr Amara Okoye"), ("physician", "Dr Ben Hughes"), ("physician", "Dr Chitra Rao"),
         ("lead", "Sister Dana Moss"), ("lead", "Charge Nurse Eli Grant"), ("admin", "Fay Lin (informatics)")]
    ):
        staff_rows.append((f"{role[0].upper()}{i + 1:03d}", nm, f"{role}{i + 1}@backline.example", role, None))
    staff = pd.DataFrame(staff_rows, columns=["staff_id", "name", "email", "role", "panel_id"])

    # ---- patients
    cancer = np.asarray(cancer_types, dtype=object)[cancer_idx]
    bone_p = np.array([CANCERS[c][1] for c in cancer_types])[cancer_idx]
    female_p = np.array([CANCERS[c][2] for c in cancer_types])[cancer_idx]
    female = rng.random(n) < female_p
    lo = np.array([AGES[c][0] for c in cancer_types])[cancer_idx]
    hi = np.array([AGES[c][1] for c in cancer_types])[cancer_idx]
    age = lo + (hi - lo) * rng.beta(2.2, 1.8, n)
    dob = (as_of - pd.to_timedelta(np.round(age * 365.25), unit="D")).normalize()
    first = np.where(
        female,
        np.asarray(FIRST_NAMES_F, dtype=object)[rng.integers(0, len(FIRST_NAMES_F), n)],
        np.asarray(FIRST_NAMES_M, dtype=object)[rng.integers(0, len(FIRST_NAMES_M), n)],
    )
    last = np.asarray(LAST_NAMES, dtype=object)[rng.integers(0, len(LAST_NAMES), n)]
    idx = np.arange(n)
    patients_df = pd.DataFrame(
        {
            "patient_id": [f"P-{i + 1:06d}" for i in idx],
            "mrn": [f"MRN{(i * 7_368_787 + 1_000_003) % 9_000_000 + 1_000_000:07d}" for i in idx],
            "name": first + " " + last,
            "date_of_birth": dob.date,
            "sex": np.where(female, "female", "male"),
            "cancer_type": cancer,
            "bone_metastases": rng.random(n) < bone_p,
            "osteoporosis": rng.random(n) < np.where(female & (age > 60), 0.16, 0.04),
            "long_term_steroids": rng.random(n) < np.where(cancer == "myeloma", 0.35, 0.04),
            "panel_id": patient_panel,
        }
    )

    # ---- regimens: a first regimen per patient, and its follow-on where the protocol has one
    first_code = np.empty(n, dtype=object)
    for c, mix in REGIMEN_MIX.items():
        members = np.flatnonzero(cancer == c)
        first_code[members] = _choice(rng, [m[0] for m in mix], [m[1] for m in mix], len(members))
    # Palliative letrozole-palbociclib goes with metastatic disease: more bone metastases there.
    letpal = first_code == "LETPAL"
    patients_df.loc[letpal, "bone_metastases"] = rng.random(int(letpal.sum())) < 0.55
    start_offset = rng.integers(5, history_days + 150, n)  # days before as_of
    start = (as_of.normalize() - pd.to_timedelta(start_offset, unit="D"))
    stop_early = np.where(rng.random(n) < 0.12, rng.integers(1, 4, n), 0)  # cycles dropped (toxicity)
    reg = pd.DataFrame({"pidx": idx, "code": first_code, "start": start, "drop": stop_early})
    follow = reg[reg["code"].map(lambda c: REGIMENS[c].then is not None)].copy()
    follow["start"] = follow["start"] + pd.to_timedelta(
        follow["code"].map(lambda c: REGIMENS[c].cycle_days * REGIMENS[c].cycles + 14), unit="D"
    )
    follow["code"] = follow["code"].map(lambda c: REGIMENS[c].then)
    follow["drop"] = 0
    reg = pd.concat([reg.assign(seq=0), follow.assign(seq=1)], ignore_index=True)
    reg = reg[reg["start"] <= as_of].sort_values(["pidx", "seq"], kind="stable").reset_index(drop=True)
    meta_cols = reg["code"].map(lambda c: (REGIMENS[c].name, REGIMENS[c].intent, REGIMENS[c].cycle_days,
                                           REGIMENS[c].cycles))
    reg["name"] = meta_cols.map(lambda t: t[0])
    reg["intent"] = meta_cols.map(lambda t: t[1])
    reg["cycle_days"] = meta_cols.map(lambda t: t[2]).astype("int64")
    reg["planned_cycles"] = meta_cols.map(lambda t: t[3]).astype("int64")
    reg["regimen_id"] = [f"RG-{i + 1:07d}" for i in range(len(reg))]

    # ---- administrations: expand regimens x cycles x protocol doses
    tmpl = pd.DataFrame(
        [(code, drug, day) for code, r in REGIMENS.items() for drug, days in r.doses for day in days],
        columns=["code", "drug", "cycle_day"],
    )
    cycles_given = (reg["planned_cycles"] - reg["drop"]).clip(lower=1).to_numpy()
    rep = np.repeat(np.arange(len(reg)), cycles_given)
    cyc = np.concatenate([np.arange(1, k + 1) for k in cycles_given]) if len(rep) else np.array([], int)
    cycles = pd.DataFrame({"r": rep, "cycle": cyc})
    cycles = cycles.join(reg[["code", "start", "cycle_days", "pidx", "regimen_id"]], on="r")
    adm = cycles.merge(tmpl, on="code", how="inner", sort=False)
    oral = adm["drug"].isin(["letrozole", "tamoxifen", "palbociclib", "lenalidomide", "dexamethasone",
                             "prednisolone"])
    hour = np.where(oral, 8, 9) * 60 + rng.integers(0, np.where(oral, 90, 420), len(adm))
    adm["given_at"] = (
        adm["start"]
        + pd.to_timedelta((adm["cycle"] - 1) * adm["cycle_days"] + adm["cycle_day"] - 1, unit="D")
        + pd.to_timedelta(hour, unit="m")
    )
    # Oral hormone therapy is one start, not a dose per cycle.
    single_start = adm["drug"].isin(["letrozole"]) & (adm["code"] == "LETPAL") & (adm["cycle"] > 1)
    adm = adm[~single_start & (adm["given_at"] <= as_of)]
    adm = adm.sort_values(["given_at", "pidx", "drug"], kind="stable").reset_index(drop=True)
    adm["administration_id"] = np.arange(1, len(adm) + 1, dtype=np.int64)
    last_dose = adm.groupby("regimen_id")["given_at"].max()
    reg["end_date"] = reg["regimen_id"].map(last_dose).dt.normalize()
    finished = (reg["end_date"] + pd.to_timedelta(reg["cycle_days"], unit="D")) < as_of
    reg.loc[~finished, "end_date"] = pd.NaT
    reg["patient_id"] = patients_df["patient_id"].to_numpy()[reg["pidx"]]
    regimens = reg[["regimen_id", "patient_id", "name", "intent", "cycle_days", "planned_cycles", "start"]].rename(
        columns={"start": "start_date"}
    )
    regimens["start_date"] = regimens["start_date"].dt.date
    regimens["end_date"] = reg["end_date"].dt.date
    regimens = regimens[regimens["regimen_id"].isin(adm["regimen_id"].unique())].reset_index(drop=True)
    adm["patient_id"] = patients_df["patient_id"].to_numpy()[adm["pidx"]]
    administrations = adm[["administration_id", "patient_id", "regimen_id", "drug", "given_at", "cycle",
                           "cycle_day"]].copy()

    reports_df = _reports(rng, patients_df, adm, reports, as_of, history_days)
    meta = {
        "created_by": "backline seed",
        "synthetic": "true",
        "seed": str(seed),
        "as_of": as_of.isoformat(),
        "patients": str(n),
        "reports": str(len(reports_df)),
    }
    return SampleData(meta, panels, staff, patients_df, regimens, administrations, reports_df)


def _reports(
    rng: np.random.Generator,
    patients: pd.DataFrame,
    adm: pd.DataFrame,
    count: int,
    as_of: pd.Timestamp,
    history_days: int,
) -> pd.DataFrame:
    n_pat = len(patients)
    period_start = as_of - pd.Timedelta(days=history_days)
    # Drug-window reports: a dose of a window drug, and an onset on the literature's days after it.
    pool = adm[adm["drug"].isin(list(WINDOW_DRUGS)) & (adm["given_at"] >= period_start)]
    n_window = int(round(count * 0.42)) if len(pool) else 0
    n_background = count - n_window
    parts = []
    if n_window:
        w = pool["drug"].map(WINDOW_WEIGHT).to_numpy(dtype=float)
        pick = pool.iloc[rng.choice(len(pool), size=n_window, p=w / w.sum())]
        onset_day = np.zeros(n_window, dtype=np.int64)
        for drug, (days, probs) in WINDOW_DRUGS.items():
            m = (pick["drug"] == drug).to_numpy()
            onset_day[m] = rng.choice(days, size=int(m.sum()), p=probs)
        duration = rng.choice([0, 1, 2, 3], size=n_window, p=[0.35, 0.35, 0.2, 0.1])
        day_start = (pick["given_at"].dt.normalize() + pd.to_timedelta(onset_day + duration, unit="D")).to_numpy()
        parts.append(pd.DataFrame({"pidx": pick["pidx"].to_numpy(), "day": day_start, "kind": 1,
                                   "duration_days": duration}))
    if n_background:
        weight = rng.gamma(1.3, 1.0, n_pat)
        pidx = rng.choice(n_pat, size=n_background, p=weight / weight.sum())
        first_dose = adm.groupby("pidx")["given_at"].min().reindex(range(n_pat))
        lo = np.maximum(first_dose.fillna(period_start).to_numpy(dtype="datetime64[ns]"),
                        np.datetime64(period_start.to_datetime64()))[pidx]
        span = (np.datetime64(as_of.to_datetime64()) - lo).astype("timedelta64[m]").astype(np.int64)
        offset = (rng.random(n_background) * np.maximum(span, 1)).astype(np.int64)
        day = (lo + offset.astype("timedelta64[m]")).astype("datetime64[D]").astype("datetime64[ns]")
        duration = rng.choice([0, 1, 2, 3, 5, 7, 14, 21, 30], size=n_background,
                              p=[0.12, 0.16, 0.14, 0.12, 0.12, 0.12, 0.1, 0.06, 0.06])
        parts.append(pd.DataFrame({"pidx": pidx, "day": day, "kind": 0, "duration_days": duration}))
    r = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        {"pidx": [], "day": [], "kind": [], "duration_days": []}
    )
    m = len(r)
    # Time of day: ePRO through the day and evening, a few at night; phone calls in clinic hours.
    phone = rng.random(m) < 0.25
    minute = np.where(
        phone,
        rng.normal(13 * 60, 150, m),
        rng.choice([rng_time for rng_time in range(0, 24 * 60, 30)], size=m, p=_day_profile()),
    )
    minute = np.clip(minute + rng.integers(0, 30, m), 0, 24 * 60 - 1).astype(np.int64)
    r["reported_at"] = pd.to_datetime(r["day"]) + pd.to_timedelta(minute, unit="m")
    keep = (r["reported_at"] <= as_of).to_numpy() & (r["reported_at"] >= period_start).to_numpy()
    r = r[keep].reset_index(drop=True)
    phone = phone[keep]
    m = len(r)
    pat = patients.iloc[r["pidx"].to_numpy()]
    bone = (pat["bone_metastases"].to_numpy() | (pat["cancer_type"].to_numpy() == "myeloma"))
    window = r["kind"].to_numpy() == 1
    u = lambda: rng.random(m)  # noqa: E731 - a fresh uniform column each call

    # Red flags: a realistic minority, commoner with bone disease.
    neuro = u() < np.where(bone, 0.06, 0.012)
    flags = {
        "leg_weakness": neuro & (u() < 0.55),
        "difficulty_walking": neuro & (u() < 0.45),
        "leg_numbness": neuro & (u() < 0.4),
        "bladder_or_bowel_change": neuro & (u() < 0.2),
        "radiating_pain": (neuro & (u() < 0.5)) | (u() < 0.01),
    }
    none_neuro = neuro & ~np.logical_or.reduce(list(flags.values()))
    flags["leg_weakness"] = flags["leg_weakness"] | none_neuro
    spinal = u() < np.where(bone, 0.12, np.where(window, 0.015, 0.04))
    flags["worse_at_night"] = spinal & (u() < 0.5)
    flags["worse_on_straining"] = spinal & (u() < 0.3)
    flags["worse_on_movement"] = (spinal & (u() < 0.4)) | (u() < 0.01)
    flags["localised_tenderness"] = spinal & (u() < 0.3)
    trend = _choice(rng, ["improving", "stable", "worsening"], [0.32, 0.65, 0.03], m).astype(object)
    trend[spinal & (u() < 0.5)] = "worsening"
    trend[u() < 0.08] = None
    location = _choice(rng, ["lumbar", "sacral", "thoracic", "cervical"], [0.78, 0.17, 0.035, 0.015], m).astype(object)
    location[spinal & (u() < 0.3)] = "thoracic"
    location[u() < 0.06] = None
    onset = _choice(rng, ["gradual", "sudden"], [0.92, 0.08], m).astype(object)
    onset[u() < 0.1] = None
    flags["after_minor_strain"] = (onset == "sudden") & (u() < 0.25)
    flags["uncontrolled_by_analgesia"] = u() < np.where(bone, 0.06, 0.02)
    # Neuropathy in patients who have had a neurotoxic drug.
    neurotoxic_pat = np.zeros(len(patients), dtype=bool)
    neurotoxic_pat[adm.loc[adm["drug"].isin(
        ["docetaxel", "paclitaxel", "carboplatin", "oxaliplatin", "vincristine", "bortezomib"]), "pidx"].unique()] = True
    flags["hand_foot_tingling"] = neurotoxic_pat[r["pidx"].to_numpy()] & (u() < 0.09)
    # Temperature: asked in about half of reports; fever a small minority.
    has_temp = u() < 0.5
    fever = u() < 0.018
    temp = np.round(rng.normal(36.8, 0.3, m), 1)
    temp = np.where(fever, np.round(rng.uniform(37.5, 39.4, m), 1), temp)
    temp = np.where(u() < 0.004, np.round(rng.uniform(35.2, 36.0, m), 1), temp)
    temp = np.where(has_temp | fever, np.clip(temp, 34.0, 41.5), np.nan)
    flags["rigors"] = fever & (u() < 0.35)
    flags["feels_unwell"] = (fever & (u() < 0.6)) | (u() < 0.005)
    # Pain: moderate in drug windows, broader otherwise, higher with red flags and bone disease.
    pain = np.where(window, rng.normal(4.4, 1.2, m), rng.normal(3.3, 1.5, m))
    pain = pain + np.where(neuro | fever, 2.0, 0) + np.where(bone, 0.5, 0) + np.where(spinal, 0.6, 0)
    pain = np.clip(np.round(pain), 1, 10).astype(np.int64)
    duration = r["duration_days"].to_numpy().astype("float")
    duration[u() < 0.07] = np.nan

    out = pd.DataFrame(
        {
            "patient_id": pat["patient_id"].to_numpy(),
            "reported_at": r["reported_at"].to_numpy(),
            "source": np.where(phone, "phone", "epro"),
            "pain_score": pain,
            "onset": onset,
            "trend": trend,
            "location": location,
            "duration_days": pd.array(duration, dtype="Int64"),
            **{k: flags[k] for k in [
                "worse_at_night", "worse_on_straining", "worse_on_movement", "localised_tenderness",
                "after_minor_strain", "uncontrolled_by_analgesia", "leg_weakness", "difficulty_walking",
                "leg_numbness", "bladder_or_bowel_change", "radiating_pain", "hand_foot_tingling"]},
            "temperature_c": temp,
            "rigors": flags["rigors"],
            "feels_unwell": flags["feels_unwell"],
        }
    )
    out = out.sort_values(["reported_at", "patient_id"], kind="stable").reset_index(drop=True)
    # Phone reports are entered a few minutes after the call; ePRO arrives at once.
    delay = np.where(out["source"].to_numpy() == "phone", rng.integers(2, 20, len(out)), 0)
    out.insert(0, "report_id", [f"R-{i + 1:07d}" for i in range(len(out))])
    out.insert(3, "received_at", out["reported_at"] + pd.to_timedelta(delay, unit="m"))
    out.insert(5, "entered_by", None)
    out["note"] = None
    return out


def _day_profile() -> np.ndarray:
    """Share of ePRO submissions in each half hour of the day (busier in the morning and evening)."""
    hours = np.arange(0, 24, 0.5)
    p = 0.15 + np.exp(-((hours - 9.5) ** 2) / 6) + 0.8 * np.exp(-((hours - 19) ** 2) / 5)
    p[hours < 6] *= 0.35
    return p / p.sum()


# --------------------------------------------------------------------------- care-team actions

EVENT_COLUMNS = ["event_id", "report_id", "acted_at", "actor", "actor_name", "role", "action", "tier_before",
                 "tier_after", "rules_version", "note", "reached", "escalated_to", "outcome"]
# The actions in the order they are generated (which breaks ties of time and report), and the notes.
_ACTIONS = ("acknowledge", "call_back", "escalate", "override", "resolve")
_NOTES = ("Spoke to patient; plan agreed.", "No answer; voicemail left.", "Reached on second attempt.",
          "Handed over by phone.", "Clinical concern on call: patient sounds more unwell than reported.",
          "Known, stable, imaged last week; plan in place.", "Closed after call-back.")
_ESCALATIONS = ("acute_oncology", "mscc_coordinator", "physician")
_OUTCOMES = tuple(dict.fromkeys([*OUTCOMES_BY_CAUSE.values(), "self_care_advice", "referred_to_ed", "admitted"]))
_NS_PER_SECOND = 1_000_000_000
_NS_PER_HOUR = 3_600_000_000_000
_NS_PER_DAY = 86_400_000_000_000


def generate_events(
    *,
    reports: pd.DataFrame,
    triage: pd.DataFrame,
    patients: pd.DataFrame,
    staff: pd.DataFrame,
    rules_version: str,
    as_of: datetime,
    seed: int,
    in_hours: tuple[int, int] = (8, 18),
) -> pd.DataFrame:
    """Acknowledgements, call-backs, escalations, overrides and resolutions for triaged reports.

    ``triage`` has report_id, tier and causes (as produced by the engine). Vectorised. A frame of
    :func:`event_table` (which the seed uses directly: it is several times smaller).
    """
    df = reports[["report_id", "patient_id", "reported_at"]].merge(triage[["report_id", "tier", "causes"]],
                                                                   on="report_id", how="inner")
    if len(df) == 0:
        return _empty_events()
    table = event_table(
        report_id=df["report_id"], patient_id=df["patient_id"], reported_at=df["reported_at"], tier=df["tier"],
        first_cause=df["causes"].map(lambda c: c[0] if len(c) else None), patients=patients, staff=staff,
        rules_version=rules_version, as_of=as_of, seed=seed, in_hours=in_hours,
    )
    return pa.table([c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns],
                    names=table.column_names).to_pandas()


def _codes(values, labels) -> np.ndarray:
    """Positions of the values in ``labels`` (-1 where absent or missing), for text of any kind."""
    labels = _arrow_strings(labels if isinstance(labels, (pa.Array, pa.ChunkedArray)) else list(labels))
    return pc.index_in(_arrow_strings(values), value_set=labels).fill_null(-1).to_numpy().astype(np.int32)


def _per_value(codes: np.ndarray, uniques, fn, none_value, dtype=np.int32) -> np.ndarray:
    """``fn(value)`` for each coded value; ``none_value`` where the code is -1 (a missing value)."""
    return np.array([fn(u) for u in uniques] + [none_value], dtype=dtype)[codes]


def event_table(
    *,
    report_id,
    patient_id,
    reported_at,
    tier,
    first_cause,
    patients: pd.DataFrame,
    staff: pd.DataFrame,
    rules_version: str,
    as_of: datetime,
    seed: int,
    in_hours: tuple[int, int] = (8, 18),
) -> pa.Table:
    """The care-team events of triaged reports, as an Arrow table (low-cardinality text dictionary-encoded).

    One row of input per triaged report, in report order: ``report_id``, ``patient_id``,
    ``reported_at``, ``tier`` and ``first_cause`` (the first suspected cause, or None). The random
    draws are made per report over whole columns, in a fixed order, so the result is deterministic
    for a seed; rows are numbered in (time, report) order.
    """
    rng = np.random.default_rng(seed + 1)
    as_of_ns = pd.Timestamp(as_of).as_unit("ns").value
    report_id = _arrow_strings(report_id)
    m = len(report_id)
    if m == 0:
        return pa.Table.from_pandas(_empty_events(), preserve_index=False)
    # The panel of each report's patient, as codes into the panels that have patients.
    panel_codes, panel_ids = pd.factorize(patients["panel_id"])
    where = _codes(patient_id, patients["patient_id"])
    panel = np.where(where >= 0, panel_codes[where], -1)
    del where
    staff_ids = staff["staff_id"].tolist()
    nurses = staff[staff["role"] == "nurse"]
    by_panel = nurses.groupby("panel_id")["staff_id"].apply(list).to_dict()
    names = staff.set_index("staff_id")["name"].to_dict()
    # A nurse of the patient's panel acts; pick one per report, vectorised by panel.
    actor = np.full(m, -1, dtype=np.int32)
    panel_index = {p: i for i, p in enumerate(panel_ids)}
    for pid, members in by_panel.items():
        sel = np.flatnonzero(panel == panel_index.get(pid, -2))
        actor[sel] = np.asarray(_codes(members, staff_ids))[rng.integers(0, len(members), len(sel))]
    del panel
    tier = _codes(tier, TIER_NAMES)  # 0 routine .. 3 emergency
    if (tier < 0).any():
        raise ValueError("a tier outside routine, soon, urgent and emergency")
    first_cause = _arrow_strings(first_cause).dictionary_encode()
    cause_codes = first_cause.indices.fill_null(-1).to_numpy().astype(np.int32)  # -1: no cause
    causes = first_cause.dictionary.to_pylist()
    del first_cause
    emergency, urgent = tier == 3, tier == 2
    t0 = np.asarray(pd.to_datetime(np.asarray(reported_at)).as_unit("ns").asi8, dtype=np.int64)
    hour = (t0 // _NS_PER_HOUR) % 24
    weekend = (t0 // _NS_PER_DAY + 3) % 7 >= 5  # 1970-01-01 was a Thursday (Monday = 0)
    ooh = weekend | (hour < in_hours[0]) | (hour >= in_hours[1])
    del hour, weekend

    def minutes(values: np.ndarray) -> np.ndarray:
        return _minutes(values).view(np.int64)

    med = np.array([RESPONSE_MEDIAN_MIN[t] for t in TIER_NAMES])[tier]
    resp = med * np.exp(rng.normal(0, 0.75, m)) * np.where(ooh, OUT_OF_HOURS_FACTOR, 1.0)
    # Routine reports out of hours wait for the next morning.
    resp = np.where(ooh & (tier == 0), resp + 360, resp)
    resp = np.maximum(resp, 1.0)
    del med, ooh
    t_ack = t0 + minutes(resp)
    del resp, t0
    t_call = t_ack + minutes(rng.uniform(2, 25, m))
    reached = rng.random(m) < 0.84
    t_call2 = t_call + minutes(rng.uniform(30, 180, m))
    escalate = (emergency & (rng.random(m) < 0.92)) | (urgent & (rng.random(m) < 0.35))
    esc_to = _per_value(cause_codes, causes, lambda c: _ESCALATIONS.index(ESCALATE_TO.get(c, "physician")),
                        _ESCALATIONS.index("physician"))
    esc_to = np.where(emergency & (cause_codes < 0), np.int32(_ESCALATIONS.index("acute_oncology")), esc_to)
    t_esc = t_call + minutes(rng.uniform(1, 20, m))
    override = rng.random(m) < 0.015
    raise_it = rng.random(m) < 0.6
    up, down = np.array([1, 2, 3, 3], dtype=np.int32), np.array([0, 0, 1, 2], dtype=np.int32)
    override_to = np.where(raise_it, up[tier], down[tier])
    override &= override_to != tier
    t_override = t_call + minutes(rng.uniform(3, 30, m))
    resolve_med = np.array([RESOLVE_MEDIAN_MIN[t] for t in TIER_NAMES])[tier]
    t_res = t_ack + minutes(resolve_med * np.exp(rng.normal(0, 0.6, m)) + 30)
    del resolve_med
    forgotten = rng.random(m) < 0.003  # never resolved: the overdue tail team leads must see
    outcome = _per_value(cause_codes, causes, lambda c: _OUTCOMES.index(OUTCOMES_BY_CAUSE.get(c, "self_care_advice")),
                         _OUTCOMES.index("self_care_advice"))
    sepsis = _per_value(cause_codes, causes, lambda c: c == "neutropenic_sepsis", False, bool)
    mscc = _per_value(cause_codes, causes, lambda c: c == "mscc", False, bool)
    outcome = np.where(emergency, np.where(sepsis, _OUTCOMES.index("referred_to_ed"),
                                           np.where(mscc, _OUTCOMES.index("referred_to_mscc"), _OUTCOMES.index("admitted"))),
                       outcome)
    del sepsis, mscc, cause_codes

    # Each action: the reports it applies to (in report order) and its columns; ties of time and
    # report keep this order.
    parts: list[dict[str, np.ndarray]] = []
    no = np.full(m, -1, dtype=np.int32)

    def add(mask, at, action, tier_after=tier, note=no, reached_=None, escalated=no, outcome_=no):
        rows = np.flatnonzero(np.asarray(mask) & (at <= as_of_ns))
        if len(rows):
            parts.append({
                "row": rows.astype(np.int32), "at": at[rows], "action": np.full(len(rows), action, np.int8),
                "tier_after": tier_after[rows].astype(np.int8), "note": note[rows].astype(np.int8),
                "reached": (np.full(len(rows), -1, np.int8) if reached_ is None else reached_[rows].astype(np.int8)),
                "escalated_to": escalated[rows].astype(np.int8), "outcome": outcome_[rows].astype(np.int8),
            })

    every = np.ones(m, dtype=bool)
    add(every, t_ack, 0)
    add(every, t_call, 1, note=np.where(reached, 0, 1).astype(np.int32), reached_=reached)
    add(~reached, t_call2, 1, note=np.full(m, 2, np.int32), reached_=every)
    add(escalate, t_esc, 2, note=np.full(m, 3, np.int32), escalated=esc_to)
    add(override, t_override, 3, tier_after=override_to, note=np.where(raise_it, 4, 5).astype(np.int32))
    add(~forgotten, t_res, 4, note=np.full(m, 6, np.int32), outcome_=outcome)
    del t_ack, t_call, t_call2, t_esc, t_override, t_res, every, no, esc_to, override_to, outcome
    if not parts:
        return pa.Table.from_pandas(_empty_events(), preserve_index=False)
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    parts.clear()
    cols["at"] -= cols["at"] % _NS_PER_SECOND  # whole seconds
    # Number the events in (time, report id) order; the sort is stable, so ties keep the order above.
    rank = np.empty(m, dtype=np.int64)
    rank[pc.sort_indices(report_id).to_numpy()] = np.arange(m)
    order = np.lexsort((rank[cols["row"]], cols["at"]))
    del rank
    cols = {k: v[order] for k, v in cols.items()}
    del order
    rows = cols.pop("row")
    n = len(rows)

    def coded(codes: np.ndarray, labels, kind: pa.DataType | None = None) -> pa.DictionaryArray:
        codes = np.asarray(codes)
        return pa.DictionaryArray.from_arrays(pa.array(codes, type=kind or pa.int8(), mask=codes < 0),
                                              pa.array(list(labels), pa.string()))

    actors = actor[rows]
    reached_code = cols.pop("reached")
    return pa.table({
        "event_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "report_id": pa.DictionaryArray.from_arrays(pa.array(rows, pa.int32()), report_id),
        "acted_at": pa.array(cols.pop("at") // 1000, pa.timestamp("us")),
        "actor": coded(actors, staff_ids, pa.int32()),
        "actor_name": coded(actors, [names[s] for s in staff_ids], pa.int32()),
        "role": coded(np.zeros(n, np.int8), ["nurse"]),
        "action": coded(cols.pop("action"), _ACTIONS),
        "tier_before": coded(tier[rows], TIER_NAMES),
        "tier_after": coded(cols.pop("tier_after"), TIER_NAMES),
        "rules_version": coded(np.zeros(n, np.int8), [rules_version]),
        "note": coded(cols.pop("note"), _NOTES),
        "reached": pa.array(reached_code == 1, pa.bool_(), mask=reached_code < 0),
        "escalated_to": coded(cols.pop("escalated_to"), _ESCALATIONS),
        "outcome": coded(cols.pop("outcome"), _OUTCOMES),
    })


def _arrow_strings(values) -> pa.Array:
    """A column of text as one Arrow string array (zero-copy from Arrow-backed pandas columns)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    elif not isinstance(values, pa.Array):
        values = pa.array(values, from_pandas=True)
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
    return values.cast(pa.string()) if values.type != pa.string() else values


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS})
