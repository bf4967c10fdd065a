"""Synthetic, clinically shaped sample data: panels, patients, regimens, doses, courses, reports, actions.

Deterministic for a seed and an ``as_of`` time, vectorised (numpy and pandas, no per-row Python
loops over reports or doses), so that 50,000 patients and a million reports take seconds, not hours.

What makes it clinically shaped rather than noise:

* real regimens on their real schedules: TCHP with pegfilgrastim on day 2, dose-dense AC then weekly
  paclitaxel then adjuvant endocrine therapy, CDK4/6 inhibitors with letrozole or fulvestrant,
  capecitabine, carboplatin-pemetrexed (with or without pembrolizumab), osimertinib, FOLFOX and
  CAPOX, androgen deprivation with LHRH-agonist depots (with enzalutamide, abiraterone or
  docetaxel), VRd and its successors for myeloma (stem-cell mobilisation with filgrastim,
  lenalidomide maintenance), R-CHOP with filgrastim, bendamustine-rituximab, and a few clinical
  trial drugs the rules cannot know;
* a drug taken continuously (oral SACT, hormone tablets, steroids, anticoagulants) is one row per
  course, from its start (``given_at``) to its end (``stopped_at``: the regimen's end, a stop for
  toxicity or progression) or open (null) while it runs; infusions, injections and depots are one
  row per dose;
* supportive treatment beside the regimens: denosumab (every 4 weeks for bone metastases, or
  6-monthly for bone protection, some stopped or delayed) and zoledronic acid; anticoagulants
  for cancer-associated thrombosis (3 or 6 months, or ongoing), atrial fibrillation, and
  thromboprophylaxis with lenalidomide, pomalidomide or thalidomide;
* cancer types, bone metastases, myeloma and low platelets in plausible proportions;
* back-pain reports clustered in the drug windows (days 1-4 after pegfilgrastim, 1-3 after a
  taxane, the day of a trastuzumab infusion) and in the first month of an LHRH agonist, with a
  realistic minority of red flags, and sudden pain commoner where bone is fragile (denosumab
  stopped);
* care-team actions with realistic response times: faster for higher tiers, slower out of hours,
  a tail of breaches, recent reports still open; nurses acknowledge, call back, escalate and
  resolve, physicians override.
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
    "breast": (0.34, 0.12, 0.99),
    "lung": (0.17, 0.22, 0.48),
    "colorectal": (0.15, 0.05, 0.45),
    "prostate": (0.12, 0.35, 0.0),
    "myeloma": (0.08, 0.0, 0.42),
    "lymphoma": (0.14, 0.03, 0.46),
}
# Chance of known low platelets (marrow disease, or treatment): myeloma and lymphoma mostly.
LOW_PLATELETS = {"myeloma": 0.2, "lymphoma": 0.1}
LOW_PLATELETS_OTHER = 0.006
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

# Drugs taken continuously: each is one row per course (given_at to stopped_at), as rules/drugs.yaml
# says (`continuous: true`). Every other drug is one row per dose.
CONTINUOUS_DRUGS = frozenset({
    "capecitabine", "palbociclib", "ribociclib", "abemaciclib", "osimertinib", "olaparib", "lenalidomide",
    "pomalidomide", "thalidomide", "letrozole", "anastrozole", "exemestane", "tamoxifen", "enzalutamide",
    "abiraterone", "dexamethasone", "prednisolone", "apixaban", "rivaroxaban", "edoxaban", "dabigatran",
    "warfarin", "enoxaparin", "dalteparin", "tinzaparin",
})
# Investigational drugs, named as a trial pharmacy labels them: the rules cannot know them (they are
# reported back as unrecognised and count as possible SACT). An oral one is recorded as a course.
TRIAL_DRUGS = frozenset({"AZD-9833 (trial)", "MK-2870 (trial)", "ABBV-383 (trial)"})
NEUROTOXIC_DRUGS = frozenset({"docetaxel", "paclitaxel", "cabazitaxel", "carboplatin", "oxaliplatin",
                              "vincristine", "bortezomib", "thalidomide"})
LHRH_AGONISTS = frozenset({"goserelin", "leuprorelin"})
AROMATASE_INHIBITORS = frozenset({"letrozole", "anastrozole", "exemestane"})
IMIDS = frozenset({"lenalidomide", "pomalidomide", "thalidomide"})


@dataclass(frozen=True)
class Regimen:
    code: str
    name: str
    intent: str
    cycle_days: int
    cycles: int
    # Doses: (drug, days of each cycle on which it is given).
    doses: tuple[tuple[str, tuple[int, ...]], ...] = ()
    # Continuous drugs: (drug, first day, last day taken in each cycle); one course for the regimen.
    courses: tuple[tuple[str, int, int], ...] = ()
    # Extra doses in the first cycle only (loading doses).
    loading: tuple[tuple[str, tuple[int, ...]], ...] = ()
    stop_p: float = 0.12  # chance of stopping early (toxicity, progression, choice)
    then: tuple[tuple[str, float], ...] = ()  # what may follow (its share), after the end or a stop
    switch: tuple[tuple[str, float], ...] = ()  # what follows an early stop instead (a switch for toxicity)
    gap: tuple[int, int] = (14, 28)  # days from this one's end to the next one's start
    started: tuple[int, int] = (5, 515)  # days before as_of a first regimen of this kind started
    supportive: bool = False  # bone agents and anticoagulants: doses and courses without a regimen row
    # An early stop comes this many days (lo, hi) before as_of rather than anywhere in the plan: a
    # treatment stopped or delayed a while ago (denosumab, whose lapse matters for months after).
    lapse: tuple[int, int] | None = None


_AI_SWITCH = (("EXE", 0.45), ("TAM", 0.4))
_LONG = (14, 1500)  # adjuvant endocrine therapy: started up to about 4 years ago
REGIMEN_LIST = [
    # ---- breast
    Regimen("TCHP", "TCHP (docetaxel, carboplatin, trastuzumab, pertuzumab)", "neoadjuvant", 21, 6,
            (("docetaxel", (1,)), ("carboplatin", (1,)), ("trastuzumab", (1,)), ("pertuzumab", (1,)),
             ("pegfilgrastim", (2,))), then=(("HP", 0.85),), gap=(28, 42)),
    Regimen("HP", "Trastuzumab and pertuzumab (to complete a year)", "adjuvant", 21, 12,
            (("trastuzumab", (1,)), ("pertuzumab", (1,))), stop_p=0.05),
    Regimen("AC", "AC (doxorubicin, cyclophosphamide), dose-dense", "adjuvant", 14, 4,
            (("doxorubicin", (1,)), ("cyclophosphamide", (1,)), ("pegfilgrastim", (2,))), then=(("T12", 1.0),)),
    Regimen("T12", "Weekly paclitaxel", "adjuvant", 7, 12, (("paclitaxel", (1,)),),
            then=(("LET", 0.3), ("ANA", 0.15), ("TAM", 0.25)), gap=(21, 42)),
    Regimen("LETPAL", "Letrozole with palbociclib", "palliative", 28, 26, courses=(("letrozole", 1, 28),
            ("palbociclib", 1, 21)), stop_p=0.3, then=(("CAPE", 0.5), ("FULVABEMA", 0.2)), started=(5, 700)),
    Regimen("LETRIBO", "Letrozole with ribociclib", "palliative", 28, 26, courses=(("letrozole", 1, 28),
            ("ribociclib", 1, 21)), stop_p=0.3, then=(("CAPE", 0.6),), started=(5, 700)),
    Regimen("FULVABEMA", "Fulvestrant with abemaciclib", "palliative", 28, 26, (("fulvestrant", (1,)),),
            courses=(("abemaciclib", 1, 28),), loading=(("fulvestrant", (15,)),), stop_p=0.3,
            then=(("CAPE", 0.5),), started=(5, 700)),
    Regimen("CAPE", "Capecitabine", "palliative", 21, 8, courses=(("capecitabine", 1, 14),), stop_p=0.25),
    Regimen("TAM", "Tamoxifen", "adjuvant", 365, 5, courses=(("tamoxifen", 1, 365),), stop_p=0.08, started=_LONG),
    Regimen("LET", "Letrozole", "adjuvant", 365, 5, courses=(("letrozole", 1, 365),), stop_p=0.2,
            switch=_AI_SWITCH, started=_LONG),
    Regimen("ANA", "Anastrozole", "adjuvant", 365, 5, courses=(("anastrozole", 1, 365),), stop_p=0.2,
            switch=_AI_SWITCH, started=_LONG),
    Regimen("EXE", "Exemestane", "adjuvant", 365, 5, courses=(("exemestane", 1, 365),), stop_p=0.1,
            switch=(("TAM", 0.8),), started=_LONG),
    Regimen("GOSEXE", "Goserelin with exemestane (ovarian suppression)", "adjuvant", 28, 60,
            (("goserelin", (1,)),), courses=(("exemestane", 1, 28),), stop_p=0.08, started=(14, 1200)),
    Regimen("OLAP", "Olaparib (adjuvant, one year)", "adjuvant", 28, 13, courses=(("olaparib", 1, 28),),
            stop_p=0.15),
    Regimen("TDXD", "Trastuzumab deruxtecan", "palliative", 21, 17, (("trastuzumab deruxtecan", (1,)),),
            stop_p=0.3, started=(5, 400)),
    Regimen("SG", "Sacituzumab govitecan", "palliative", 21, 8, (("sacituzumab govitecan", (1, 8)),),
            stop_p=0.3, started=(5, 300)),
    Regimen("AZD", "Clinical trial: AZD-9833, oral daily", "palliative", 28, 13, courses=(("AZD-9833 (trial)", 1, 28),),
            stop_p=0.4, started=(5, 400)),
    # ---- lung
    Regimen("CARBOPEM", "Carboplatin and pemetrexed", "palliative", 21, 4,
            (("carboplatin", (1,)), ("pemetrexed", (1,))), then=(("PEMMAINT", 0.85),)),
    Regimen("CARBOPEMPEMBRO", "Carboplatin, pemetrexed and pembrolizumab", "palliative", 21, 4,
            (("carboplatin", (1,)), ("pemetrexed", (1,)), ("pembrolizumab", (1,))), then=(("PEMPEMBRO", 0.85),)),
    Regimen("PEMMAINT", "Pemetrexed maintenance", "maintenance", 21, 12, (("pemetrexed", (1,)),), stop_p=0.3),
    Regimen("PEMPEMBRO", "Pemetrexed and pembrolizumab maintenance", "maintenance", 21, 16,
            (("pemetrexed", (1,)), ("pembrolizumab", (1,))), stop_p=0.3),
    Regimen("OSI", "Osimertinib", "palliative", 28, 36, courses=(("osimertinib", 1, 28),), stop_p=0.2,
            then=(("CARBOPEM", 0.6),), started=(5, 800)),
    Regimen("MK2870", "Clinical trial: MK-2870, every 2 weeks", "palliative", 14, 16, (("MK-2870 (trial)", (1,)),),
            stop_p=0.35, started=(5, 400)),
    # ---- colorectal
    Regimen("FOLFOX", "FOLFOX (oxaliplatin, folinic acid, fluorouracil)", "adjuvant", 14, 12,
            (("oxaliplatin", (1,)), ("folinic acid", (1,)), ("fluorouracil", (1,)))),
    Regimen("CAPOX", "CAPOX (capecitabine, oxaliplatin)", "adjuvant", 21, 8, (("oxaliplatin", (1,)),),
            courses=(("capecitabine", 1, 14),), stop_p=0.2),
    # ---- prostate: androgen deprivation (LHRH-agonist or antagonist depots), and what is added to it
    Regimen("GOS84", "Goserelin 10.8 mg every 12 weeks", "palliative", 84, 20, (("goserelin", (1,)),),
            stop_p=0.03, started=(0, 1400)),
    Regimen("GOS28", "Goserelin 3.6 mg every 4 weeks", "palliative", 28, 60, (("goserelin", (1,)),),
            stop_p=0.03, started=(0, 1400)),
    Regimen("LEU84", "Leuprorelin 11.25 mg every 12 weeks", "palliative", 84, 20, (("leuprorelin", (1,)),),
            stop_p=0.03, started=(0, 1400)),
    Regimen("LEU28", "Leuprorelin 3.75 mg every 4 weeks", "palliative", 28, 60, (("leuprorelin", (1,)),),
            stop_p=0.03, started=(0, 1400)),
    Regimen("DEG", "Degarelix every 4 weeks", "palliative", 28, 60, (("degarelix", (1,)),), stop_p=0.05,
            started=(0, 1400)),
    Regimen("ENZA", "Enzalutamide (with androgen deprivation)", "palliative", 28, 40,
            courses=(("enzalutamide", 1, 28),), stop_p=0.15),
    Regimen("ABIPRED", "Abiraterone with prednisolone (with androgen deprivation)", "palliative", 28, 40,
            courses=(("abiraterone", 1, 28), ("prednisolone", 1, 28)), stop_p=0.15),
    Regimen("DOCPRED", "Docetaxel with prednisolone", "palliative", 21, 6, (("docetaxel", (1,)),),
            courses=(("prednisolone", 1, 21),), then=(("CABA", 0.15),), gap=(120, 400)),
    Regimen("CABA", "Cabazitaxel with prednisolone and pegfilgrastim", "palliative", 21, 6,
            (("cabazitaxel", (1,)), ("pegfilgrastim", (2,))), courses=(("prednisolone", 1, 21),), stop_p=0.3),
    Regimen("OLAPPR", "Olaparib (BRCA-mutated prostate cancer)", "palliative", 28, 24,
            courses=(("olaparib", 1, 28),), stop_p=0.25),
    # ---- myeloma
    Regimen("VRD", "VRd (bortezomib, lenalidomide, dexamethasone)", "curative", 21, 8,
            (("bortezomib", (1, 4, 8, 11)),), courses=(("lenalidomide", 1, 14), ("dexamethasone", 1, 12)),
            then=(("MOBIL", 0.45), ("LENMAINT", 0.4)), gap=(21, 42)),
    Regimen("VTD", "VTd (bortezomib, thalidomide, dexamethasone)", "curative", 28, 4,
            (("bortezomib", (1, 8, 15, 22)),), courses=(("thalidomide", 1, 28), ("dexamethasone", 1, 23)),
            then=(("MOBIL", 0.6),), gap=(21, 42)),
    Regimen("MOBIL", "Stem-cell mobilisation with filgrastim", "curative", 5, 1,
            (("filgrastim", (1, 2, 3, 4, 5)),), stop_p=0.0, then=(("LENMAINT", 0.85),), gap=(70, 110)),
    Regimen("LENMAINT", "Lenalidomide maintenance", "maintenance", 28, 24, courses=(("lenalidomide", 1, 21),),
            stop_p=0.15),
    Regimen("DRD", "DRd (daratumumab, lenalidomide, dexamethasone)", "palliative", 28, 18,
            (("daratumumab", (1, 15)),), courses=(("lenalidomide", 1, 21), ("dexamethasone", 1, 22)),
            loading=(("daratumumab", (8, 22)),), stop_p=0.15, then=(("POMDEX", 0.5),), started=(5, 700)),
    Regimen("POMDEX", "Pomalidomide with dexamethasone", "palliative", 28, 12,
            courses=(("pomalidomide", 1, 21), ("dexamethasone", 1, 22)), stop_p=0.3, then=(("TEC", 0.3),)),
    Regimen("TEC", "Teclistamab", "palliative", 28, 12, (("teclistamab", (1, 8, 15, 22)),), stop_p=0.3,
            started=(5, 300)),
    Regimen("ABBV383", "Clinical trial: ABBV-383, every 4 weeks", "palliative", 28, 12, (("ABBV-383 (trial)", (1,)),),
            stop_p=0.3, started=(5, 400)),
    # ---- lymphoma
    Regimen("RCHOP", "R-CHOP with filgrastim", "curative", 21, 6,
            (("rituximab", (1,)), ("cyclophosphamide", (1,)), ("doxorubicin", (1,)), ("vincristine", (1,)),
             ("filgrastim", (4, 5, 6, 7, 8, 9, 10))), courses=(("prednisolone", 1, 5),)),
    Regimen("BR", "Bendamustine with rituximab", "palliative", 28, 6,
            (("bendamustine", (1, 2)), ("rituximab", (1,)))),
    # ---- supportive: bone agents (no regimen row; their doses stand alone)
    Regimen("XGEVA", "Denosumab 120 mg every 4 weeks", "palliative", 28, 26, (("denosumab", (1,)),), stop_p=0.3,
            lapse=(220, 540), supportive=True),
    Regimen("PROLIA", "Denosumab 60 mg every 6 months", "adjuvant", 182, 8, (("denosumab", (1,)),), stop_p=0.4,
            lapse=(60, 360), supportive=True),
    Regimen("ZOL", "Zoledronic acid every 4 weeks", "palliative", 28, 24, (("zoledronic acid", (1,)),), stop_p=0.2,
            supportive=True),
]
REGIMENS: dict[str, Regimen] = {r.code: r for r in REGIMEN_LIST}
# cancer -> [(first regimen, share)]
REGIMEN_MIX: dict[str, list[tuple[str, float]]] = {
    "breast": [("TCHP", 0.17), ("AC", 0.22), ("LETPAL", 0.10), ("LETRIBO", 0.04), ("FULVABEMA", 0.04),
               ("CAPE", 0.05), ("TAM", 0.08), ("LET", 0.10), ("ANA", 0.07), ("GOSEXE", 0.03), ("OLAP", 0.02),
               ("TDXD", 0.03), ("SG", 0.02), ("AZD", 0.03)],
    "lung": [("CARBOPEM", 0.3), ("CARBOPEMPEMBRO", 0.44), ("OSI", 0.17), ("MK2870", 0.09)],
    "colorectal": [("FOLFOX", 0.55), ("CAPOX", 0.3), ("CAPE", 0.15)],
    "prostate": [("GOS84", 0.35), ("GOS28", 0.15), ("LEU84", 0.2), ("LEU28", 0.1), ("DEG", 0.2)],
    "myeloma": [("VRD", 0.45), ("VTD", 0.1), ("DRD", 0.2), ("POMDEX", 0.12), ("TEC", 0.06), ("ABBV383", 0.07)],
    "lymphoma": [("RCHOP", 0.75), ("BR", 0.25)],
}
# Added to androgen deprivation in prostate cancer (the rest: androgen deprivation alone).
PROSTATE_ADDON = [("ENZA", 0.25), ("ABIPRED", 0.2), ("DOCPRED", 0.15), ("OLAPPR", 0.03)]
# Prostate cancer: when androgen deprivation started (days before as_of, share); the first group are
# men in their first month of an LHRH agonist at as_of.
ADT_STARTS = [((0, 27), 0.05), ((28, 365), 0.22), ((366, 1400), 0.73)]
# Regimens given with metastatic disease: bone metastases commoner there.
METASTATIC_BONE = {"LETPAL": 0.55, "LETRIBO": 0.55, "FULVABEMA": 0.55, "CAPE": 0.3, "TDXD": 0.4, "SG": 0.3,
                   "AZD": 0.45, "OSI": 0.35}
# Anticoagulants: cancer-associated thrombosis (by cancer), atrial fibrillation (by age), and
# thromboprophylaxis with an immunomodulatory drug (lenalidomide, pomalidomide, thalidomide).
VTE_P = {"breast": 0.04, "lung": 0.09, "colorectal": 0.08, "prostate": 0.04, "myeloma": 0.03, "lymphoma": 0.06}
VTE_MIX = [("apixaban", 0.3), ("rivaroxaban", 0.18), ("edoxaban", 0.1), ("dalteparin", 0.16), ("enoxaparin", 0.12),
           ("tinzaparin", 0.06), ("warfarin", 0.05), ("dabigatran", 0.03)]
VTE_DAYS = [(91, 0.35), (182, 0.35), (None, 0.3)]  # 3 months, 6 months, or ongoing while the cancer is active
AF_MIX = [("apixaban", 0.42), ("rivaroxaban", 0.2), ("edoxaban", 0.1), ("warfarin", 0.18), ("dabigatran", 0.1)]
PROPHYLAXIS_MIX = [("apixaban", 0.5), ("enoxaparin", 0.35), ("rivaroxaban", 0.15)]
PROPHYLAXIS_P = 0.55
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
# Shares of the reports: in a drug window, and in the first month of an LHRH agonist (flare).
WINDOW_SHARE = 0.42
FLARE_SHARE = 0.003
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
    "spinal_haematoma": "referred_to_ed",
    "spinal_metastasis": "imaging_requested",
    "pathological_fracture": "imaging_requested",
    "fragility_fracture": "imaging_requested",
    "tumour_flare": "imaging_requested",
    "hypercalcaemia": "clinic_review_booked",
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
    "spinal_haematoma": "acute_oncology",
    "spinal_metastasis": "mscc_coordinator",
    "pathological_fracture": "physician",
    "fragility_fracture": "physician",
    "tumour_flare": "physician",
    "hypercalcaemia": "acute_oncology",
}
# Median minutes to the first response, by tier (lognormal around it); out of hours is slower.
RESPONSE_MEDIAN_MIN = {"emergency": 7.0, "urgent": 55.0, "soon": 330.0, "routine": 1300.0}
RESOLVE_MEDIAN_MIN = {"emergency": 150.0, "urgent": 600.0, "soon": 2400.0, "routine": 3600.0}
OUT_OF_HOURS_FACTOR = 2.2
TIER_NAMES = np.array(["routine", "soon", "urgent", "emergency"])
# The labels of the report's coded answers.
ONSETS = ("gradual", "sudden")
TRENDS = ("improving", "stable", "worsening")
LOCATIONS = ("lumbar", "sacral", "thoracic", "cervical")
PATTERNS = ("new", "changed", "usual")


def _check_tables() -> None:
    """The regimen tables are consistent: a continuous drug is a course, every other drug a dose."""
    for r in REGIMEN_LIST:
        for drug, _ in (*r.doses, *r.loading):
            assert drug not in CONTINUOUS_DRUGS, f"{r.code}: {drug} is taken continuously, not as doses"
        for drug, first, last in r.courses:
            assert drug in CONTINUOUS_DRUGS or drug in TRIAL_DRUGS, f"{r.code}: {drug} is given as doses"
            assert 1 <= first <= last <= r.cycle_days, r.code
        for code, _ in (*r.then, *r.switch):
            assert code in REGIMENS, f"{r.code}: unknown follow-on {code}"


_check_tables()

# Every drug the generator names, in alphabetical order (the code of a drug is its position).
DRUG_NAMES: list[str] = sorted(
    {d for r in REGIMEN_LIST for d, _ in (*r.doses, *r.loading)} | {d for r in REGIMEN_LIST for d, _, _ in r.courses}
    | {d for d, _ in (*VTE_MIX, *AF_MIX, *PROPHYLAXIS_MIX)}
)
DRUG_CODE = {d: i for i, d in enumerate(DRUG_NAMES)}


def _drug_mask(names) -> np.ndarray:
    """A boolean per drug code: is the drug one of ``names``."""
    return np.isin(np.asarray(DRUG_NAMES, dtype=object), list(names))


_IS_COURSE_DRUG = _drug_mask(CONTINUOUS_DRUGS | TRIAL_DRUGS)
_ORAL = _drug_mask(CONTINUOUS_DRUGS | {"AZD-9833 (trial)"})
_ANTICOAGULANT = _drug_mask({d for d, _ in (*VTE_MIX, *AF_MIX, *PROPHYLAXIS_MIX)})
_HOME_INJECTION = _drug_mask({"pegfilgrastim", "filgrastim"})


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


def _pick(u: np.ndarray, probs) -> np.ndarray:
    """For uniforms ``u``, the index of the option each falls in (len(probs) when past their sum)."""
    return np.searchsorted(np.cumsum(np.asarray(probs, dtype=float)), u, side="right")


def _minutes(values: np.ndarray) -> np.ndarray:
    return (np.asarray(values, dtype=float) * 60_000_000_000).astype("timedelta64[ns]")  # minutes -> ns


def _text(labels, codes: np.ndarray) -> pd.Series:
    """Text column ``labels[codes]`` (null where a code is -1), built in Arrow: fast at a million rows."""
    codes = np.asarray(codes, dtype=np.int64)
    labels = pa.array(labels if not isinstance(labels, pd.Series) else labels.to_numpy(), pa.string())
    return labels.take(pa.array(codes, mask=codes < 0)).to_pandas()


def _numbered(prefix: str, count: int, width: int, start: int = 1) -> pd.Series:
    """``prefix`` and a zero-padded running number (R-0000001, ...), built in Arrow."""
    numbers = pc.cast(pa.array(np.arange(start, start + count, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, width, "0"), "").to_pandas()


def _spread(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row repeated ``counts`` times: (the row, the position 0..count-1 within it)."""
    counts = np.asarray(counts, dtype=np.int64)
    parent = np.repeat(np.arange(len(counts)), counts)
    pos = np.arange(len(parent)) - np.repeat(np.cumsum(counts) - counts, counts)
    return parent, pos


# Regimen tables as arrays, indexed by regimen number (its position in REGIMEN_LIST).
_R_CODE = {r.code: i for i, r in enumerate(REGIMEN_LIST)}
_R_CYCLE = np.array([r.cycle_days for r in REGIMEN_LIST], dtype=np.int64)
_R_CYCLES = np.array([r.cycles for r in REGIMEN_LIST], dtype=np.int64)
_R_STOP_P = np.array([r.stop_p for r in REGIMEN_LIST])
_R_GAP = np.array([r.gap for r in REGIMEN_LIST], dtype=np.int64)
_R_SUPPORTIVE = np.array([r.supportive for r in REGIMEN_LIST])
_R_LAPSE = np.array([r.lapse or (0, 0) for r in REGIMEN_LIST], dtype=np.int64)


def _template(kind: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The doses (kind 'doses') or courses ('courses') of every regimen as flat arrays: the first
    row and the count of each regimen's rows, and the columns."""
    rows = []
    for i, r in enumerate(REGIMEN_LIST):
        if kind == "doses":
            rows += [(i, DRUG_CODE[d], day, day, False) for d, days in r.doses for day in days]
            rows += [(i, DRUG_CODE[d], day, day, True) for d, days in r.loading for day in days]
        else:
            rows += [(i, DRUG_CODE[d], first, last, False) for d, first, last in r.courses]
    arr = np.array(rows, dtype=np.int64).reshape(-1, 5)
    count = np.bincount(arr[:, 0], minlength=len(REGIMEN_LIST))
    first = np.cumsum(count) - count
    return first, count, {"drug": arr[:, 1], "day": arr[:, 2], "last": arr[:, 3], "loading": arr[:, 4].astype(bool)}


_DOSES = _template("doses")
_COURSES = _template("courses")


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
    low_platelets_p = np.array([LOW_PLATELETS.get(c, LOW_PLATELETS_OTHER) for c in cancer_types])[cancer_idx]
    bone_metastases = rng.random(n) < bone_p
    patients_df = pd.DataFrame(
        {
            "patient_id": [f"P-{i + 1:06d}" for i in idx],
            "mrn": [f"MRN{(i * 7_368_787 + 1_000_003) % 9_000_000 + 1_000_000:07d}" for i in idx],
            "name": first + " " + last,
            "date_of_birth": dob.date,
            "sex": np.where(female, "female", "male"),
            "cancer_type": cancer,
            "bone_metastases": bone_metastases,
            "osteoporosis": rng.random(n) < np.where(female & (age > 60), 0.16, 0.04),
            "long_term_steroids": rng.random(n) < np.where(cancer == "myeloma", 0.35, 0.04),
            "panel_id": patient_panel,
            "low_platelets": rng.random(n) < low_platelets_p,
        }
    )

    # ---- regimens: a first regimen per patient and what follows it; androgen deprivation and what
    # is added to it in prostate cancer; bone agents beside them
    first_code = np.empty(n, dtype=object)
    for c, mix in REGIMEN_MIX.items():
        members = np.flatnonzero(cancer == c)
        first_code[members] = _choice(rng, [m[0] for m in mix], [m[1] for m in mix], len(members))
    first_reg = np.array([_R_CODE[c] for c in first_code], dtype=np.int64)
    started = np.array([REGIMENS[c].started for c in first_code], dtype=np.int64).reshape(n, 2)
    first_start = -(started[:, 0] + (rng.random(n) * (started[:, 1] - started[:, 0] + 1)).astype(np.int64))
    prostate = np.flatnonzero(cancer == "prostate")
    which = _pick(rng.random(len(prostate)), [p for _, p in ADT_STARTS]).clip(max=len(ADT_STARTS) - 1)
    bounds = np.array([b for b, _ in ADT_STARTS], dtype=np.int64)[which]
    first_start[prostate] = -(bounds[:, 0] + (rng.random(len(prostate)) * (bounds[:, 1] - bounds[:, 0] + 1))
                              .astype(np.int64))
    # Metastatic regimens go with bone metastases more often (in breast and lung cancer, where bone is
    # a common site; colorectal cancer seldom spreads to bone).
    meta_p = np.array([METASTATIC_BONE.get(c, -1.0) for c in first_code])
    has_meta_p = (meta_p >= 0) & np.isin(cancer, ["breast", "lung"])
    bone_metastases[has_meta_p] = rng.random(int(has_meta_p.sum())) < meta_p[has_meta_p]
    addon_pick = _pick(rng.random(len(prostate)), [p for _, p in PROSTATE_ADDON])
    with_addon = addon_pick < len(PROSTATE_ADDON)
    addon_code = np.array([_R_CODE[c] for c, _ in PROSTATE_ADDON] + [-1], dtype=np.int64)[addon_pick]
    # Men given more than androgen deprivation mostly have metastatic disease.
    bone_metastases[prostate] = rng.random(len(prostate)) < np.where(with_addon, 0.55, 0.15)
    addon_start = first_start[prostate] + rng.integers(0, 121, len(prostate))
    keep = with_addon & (addon_start <= 0)
    tracks = [
        _chain(rng, idx, first_reg, first_start, track=0),
        _chain(rng, prostate[keep], addon_code[keep], addon_start[keep], track=1),
    ]
    main = pd.concat(tracks, ignore_index=True)
    # Bone agents: denosumab every 4 weeks or zoledronic acid in bone metastases and myeloma;
    # 6-monthly denosumab for bone protection on an aromatase inhibitor or androgen deprivation.
    myeloma = cancer == "myeloma"
    u = rng.random(n)
    bone_agent = np.where(myeloma, np.where(u < 0.2, _R_CODE["XGEVA"], np.where(u < 0.9, _R_CODE["ZOL"], -1)),
                          np.where(u < 0.4, _R_CODE["XGEVA"], np.where(u < 0.7, _R_CODE["ZOL"], -1)))
    bone_agent = np.where(bone_metastases | myeloma, bone_agent, -1)
    protect_from = main[main["code"].isin([_R_CODE[c] for c in ("LET", "ANA", "EXE", "GOSEXE", "GOS84", "GOS28",
                                                                   "LEU84", "LEU28", "DEG")])]
    protect_from = protect_from.groupby("pidx")["start"].min()
    protect = np.full(n, np.iinfo(np.int64).min)
    protect[protect_from.index.to_numpy()] = protect_from.to_numpy()
    wants = (protect > np.iinfo(np.int64).min) & (bone_agent < 0) & (rng.random(n) < 0.4)
    bone_agent = np.where(wants, _R_CODE["PROLIA"], bone_agent)
    bone_start = np.where(wants, protect, first_start) + rng.integers(0, 121, n) // np.where(wants, 1, 2)
    go = (bone_agent >= 0) & (bone_start <= 0)
    supportive = _chain(rng, idx[go], bone_agent[go], bone_start[go], track=2)
    plan = pd.concat([main, supportive], ignore_index=True)
    plan = plan.sort_values(["pidx", "start", "track", "gen"], kind="stable").reset_index(drop=True)
    patients_df["bone_metastases"] = bone_metastases

    # ---- doses and courses
    as_of_min = int((as_of - as_of.normalize()) / pd.Timedelta(minutes=1))
    rows = _expand(rng, plan)
    rows = _with_anticoagulants(rng, rows, cancer, age, first_start)
    day, minute = rows["day"], rows["minute"]
    given = (day < 0) | ((day == 0) & (minute <= as_of_min))
    rows = {k: v[given] for k, v in rows.items()}
    # Courses that end today or later are still running: no stop date yet.
    rows["stop_day"] = np.where(rows["stop_day"] >= 0, _NO_STOP, rows["stop_day"])
    today = np.datetime64(as_of.normalize().to_datetime64(), "ns")
    given_ns = (today + rows["day"].astype("timedelta64[D]") + rows["minute"].astype("timedelta64[m]")).view(np.int64)
    # In (time, patient, drug name) order: drug codes are in alphabetical order.
    order = np.lexsort((rows["drug"], rows["pidx"], given_ns))
    rows = {k: v[order] for k, v in rows.items()}
    given_ns = given_ns[order]
    stopped = rows["stop_day"] != _NO_STOP
    stop_ns = np.where(stopped, today + np.where(stopped, rows["stop_day"], 0).astype("timedelta64[D]")
                       + rows["stop_minute"].astype("timedelta64[m]"), np.datetime64("NaT", "ns"))
    m = len(given_ns)
    plan_row = rows["plan"]
    in_regimen = (plan_row >= 0) & ~_R_SUPPORTIVE[plan["code"].to_numpy(dtype=np.int64)[np.maximum(plan_row, 0)]]

    # Regimen rows: those with a dose or course given; finished when their span has ended.
    used = np.unique(plan_row[in_regimen])
    regimen_of = np.full(len(plan), None, dtype=object)
    regimen_of[used] = [f"RG-{i + 1:07d}" for i in range(len(used))]
    last_day = np.full(len(plan), np.iinfo(np.int64).min)
    activity = np.where(stopped, rows["stop_day"], np.where(rows["is_course"], 0, rows["day"]))
    np.maximum.at(last_day, plan_row[in_regimen], activity[in_regimen])
    reg = plan.iloc[used]
    reg_last = last_day[used]
    finished = (reg["start"].to_numpy() + reg["length"].to_numpy() <= 0) & (reg_last < 0)
    today_d = today.astype("datetime64[D]")
    codes = reg["code"].to_numpy(dtype=np.int64)
    end_date = pd.Series(today_d + np.where(finished, reg_last, 0).astype("timedelta64[D]")).dt.date
    regimens = pd.DataFrame({
        "regimen_id": regimen_of[used],
        "patient_id": patients_df["patient_id"].to_numpy()[reg["pidx"].to_numpy(dtype=np.int64)],
        "name": np.array([r.name for r in REGIMEN_LIST], dtype=object)[codes],
        "intent": np.array([r.intent for r in REGIMEN_LIST], dtype=object)[codes],
        "cycle_days": _R_CYCLE[codes],
        "planned_cycles": _R_CYCLES[codes],
        "start_date": pd.Series(today_d + reg["start"].to_numpy(dtype=np.int64).astype("timedelta64[D]")).dt.date,
        "end_date": end_date.where(finished, None),
    })
    administrations = pd.DataFrame({
        "administration_id": np.arange(1, m + 1, dtype=np.int64),
        "patient_id": _text(patients_df["patient_id"], rows["pidx"]),
        "regimen_id": _text(regimen_of[used], np.where(in_regimen, np.searchsorted(used, plan_row), -1)),
        "drug": _text(DRUG_NAMES, rows["drug"]),
        "given_at": given_ns.view("datetime64[ns]"),
        "cycle": pd.arrays.IntegerArray(rows["cycle"].astype(np.int64), ~in_regimen),
        "cycle_day": pd.arrays.IntegerArray(rows["cycle_day"].astype(np.int64), ~in_regimen),
        "stopped_at": stop_ns,
    })
    dosing = {"pidx": rows["pidx"], "drug": rows["drug"], "given_ns": given_ns, "day": rows["day"]}

    reports_df = _reports(rng, patients_df, dosing, reports, as_of, history_days)
    meta = {
        "created_by": "backline seed",
        "synthetic": "true",
        "seed": str(seed),
        "as_of": as_of.isoformat(),
        "patients": str(n),
        "reports": str(len(reports_df)),
    }
    return SampleData(meta, panels, staff, patients_df, regimens, administrations, reports_df)


_NO_STOP = np.iinfo(np.int64).max  # a course with no stop date (still running)


def _chain(rng: np.random.Generator, pidx: np.ndarray, code: np.ndarray, start: np.ndarray, *,
           track: int) -> pd.DataFrame:
    """Regimens starting on ``start`` (days relative to as_of's date), each with its length (early
    stops included) and whatever follows it, until a follow-on would start after as_of."""
    parts = []
    gen = 0
    while len(pidx):
        planned = _R_CYCLE[code] * _R_CYCLES[code]
        stop = (rng.random(len(code)) < _R_STOP_P[code]) & (planned > _R_CYCLE[code])
        length = np.where(stop, _R_CYCLE[code] + (rng.random(len(code)) * (planned - _R_CYCLE[code])).astype(np.int64),
                          planned)
        lapse = _R_LAPSE[code]
        lapsed = stop & (lapse[:, 1] > 0)
        length = np.where(lapsed, np.maximum(_R_CYCLE[code], -start - lapse[:, 0]
                                             - (rng.random(len(code)) * (lapse[:, 1] - lapse[:, 0])).astype(np.int64)),
                          length)
        stop &= length < planned
        parts.append(pd.DataFrame({"pidx": pidx, "code": code, "start": start, "length": length, "stopped": stop,
                                   "track": track, "gen": gen}))
        u = rng.random(len(code))
        nxt = np.full(len(code), -1, dtype=np.int64)
        for c in np.unique(code):
            r = REGIMEN_LIST[c]
            for options, sel in ((r.switch, (code == c) & stop), (r.then, (code == c) & ~(stop & bool(r.switch)))):
                if options and sel.any():
                    k = _pick(u[sel], [p for _, p in options])
                    nxt[sel] = np.array([_R_CODE[o] for o, _ in options] + [-1], dtype=np.int64)[k]
        gap = _R_GAP[code]
        nstart = start + length + gap[:, 0] + (rng.random(len(code)) * (gap[:, 1] - gap[:, 0] + 1)).astype(np.int64)
        go = (nxt >= 0) & (nstart <= 0)
        pidx, code, start = pidx[go], nxt[go], nstart[go]
        gen += 1
    if not parts:
        return pd.DataFrame({"pidx": [], "code": [], "start": [], "length": [], "stopped": [], "track": [], "gen": []},
                            dtype=np.int64)
    return pd.concat(parts, ignore_index=True)


def _clock(rng: np.random.Generator, drug: np.ndarray) -> np.ndarray:
    """Minute of the day a dose is given or a course started: oral drugs in the morning, G-CSF at home
    through the day, anticoagulants started in clinic or on the ward, infusions and depots in clinic."""
    u = rng.random(len(drug))
    lo = np.where(_ORAL[drug], 480, np.where(_HOME_INJECTION[drug], 540, 540))
    span = np.where(_ORAL[drug], 90, np.where(_HOME_INJECTION[drug], 600, 420))
    lo = np.where(_ANTICOAGULANT[drug], 600, lo)
    span = np.where(_ANTICOAGULANT[drug], 480, span)
    return lo + (u * span).astype(np.int64)


def _expand(rng: np.random.Generator, plan: pd.DataFrame) -> dict[str, np.ndarray]:
    """The doses and courses of planned regimens, as arrays: plan row, patient, drug code, day and
    minute given (days relative to as_of's date), cycle, cycle day, stop day and minute."""
    code = plan["code"].to_numpy(dtype=np.int64)
    start = plan["start"].to_numpy(dtype=np.int64)
    length = plan["length"].to_numpy(dtype=np.int64)
    pidx = plan["pidx"].to_numpy(dtype=np.int64)
    cyc_days = _R_CYCLE[code]
    # Doses: regimen x cycle x the cycle's doses, those within the regimen's (possibly shortened) span.
    n_cycles = -(-length // cyc_days)
    r, cyc = _spread(n_cycles)
    tfirst, tcount, t = _DOSES
    r2, k = _spread(tcount[code[r]])
    r, cyc = r[r2], cyc[r2]
    ti = tfirst[code[r]] + k
    offset = cyc * cyc_days[r] + t["day"][ti] - 1
    keep = (~t["loading"][ti] | (cyc == 0)) & (offset < length[r])
    r, cyc, ti, offset = r[keep], cyc[keep], ti[keep], offset[keep]
    doses = {"plan": r, "pidx": pidx[r], "drug": t["drug"][ti], "day": start[r] + offset, "cycle": cyc + 1,
             "cycle_day": t["day"][ti], "stop_day": np.full(len(r), _NO_STOP), "is_course": np.zeros(len(r), bool)}
    # Courses: one per continuous drug of the regimen, to the last day taken within its span.
    cfirst, ccount, c = _COURSES
    r, k = _spread(ccount[code])
    ti = cfirst[code[r]] + k
    span_end = length[r] - 1
    cycle_start = (span_end // cyc_days[r]) * cyc_days[r]
    end = cycle_start + np.minimum(span_end - cycle_start, c["last"][ti] - 1)
    end = np.maximum(end, c["day"][ti] - 1)
    courses = {"plan": r, "pidx": pidx[r], "drug": c["drug"][ti], "day": start[r] + c["day"][ti] - 1,
               "cycle": np.ones(len(r), np.int64), "cycle_day": c["day"][ti], "stop_day": start[r] + end,
               "is_course": np.ones(len(r), bool)}
    out = {key: np.concatenate([doses[key], courses[key]]) for key in doses}
    out["minute"] = _clock(rng, out["drug"])
    out["stop_minute"] = 480 + rng.integers(0, 90, len(out["drug"]))
    return out


def _with_anticoagulants(rng: np.random.Generator, rows: dict[str, np.ndarray], cancer: np.ndarray, age: np.ndarray,
                         first_start: np.ndarray) -> dict[str, np.ndarray]:
    """Anticoagulant courses (no regimen): cancer-associated thrombosis (3 or 6 months, or ongoing),
    atrial fibrillation (started years ago, a few stopped), and thromboprophylaxis with an
    immunomodulatory drug for as long as it runs."""
    n = len(cancer)
    parts = []
    # Thrombosis: at a random time since treatment began.
    vte = np.flatnonzero(rng.random(n) < np.array([VTE_P[c] for c in cancer]))
    start = first_start[vte] + (rng.random(len(vte)) * (1 - first_start[vte])).astype(np.int64)
    days = np.array([d or 0 for d, _ in VTE_DAYS], dtype=np.int64)[_pick(rng.random(len(vte)), [p for _, p in VTE_DAYS])
                                                                    .clip(max=len(VTE_DAYS) - 1)]
    drug = _pick(rng.random(len(vte)), [p for _, p in VTE_MIX]).clip(max=len(VTE_MIX) - 1)
    parts.append((vte, np.array([DRUG_CODE[d] for d, _ in VTE_MIX])[drug], start,
                  np.where(days > 0, start + days - 1, _NO_STOP)))
    # Atrial fibrillation: long-standing; one in ten stopped within the last year.
    af = np.flatnonzero(rng.random(n) < np.where(age >= 70, 0.09, 0.02))
    start = -rng.integers(400, 3000, len(af))
    stop = np.where(rng.random(len(af)) < 0.1, -rng.integers(0, 365, len(af)), _NO_STOP)
    drug = _pick(rng.random(len(af)), [p for _, p in AF_MIX]).clip(max=len(AF_MIX) - 1)
    parts.append((af, np.array([DRUG_CODE[d] for d, _ in AF_MIX])[drug], start, stop))
    # Thromboprophylaxis beside a course of lenalidomide, pomalidomide or thalidomide.
    imid = np.flatnonzero(rows["is_course"] & _drug_mask(IMIDS)[rows["drug"]])
    imid = imid[rng.random(len(imid)) < PROPHYLAXIS_P]
    drug = _pick(rng.random(len(imid)), [p for _, p in PROPHYLAXIS_MIX]).clip(max=len(PROPHYLAXIS_MIX) - 1)
    parts.append((rows["pidx"][imid], np.array([DRUG_CODE[d] for d, _ in PROPHYLAXIS_MIX])[drug], rows["day"][imid],
                  rows["stop_day"][imid]))
    pidx = np.concatenate([p[0] for p in parts])
    drug = np.concatenate([p[1] for p in parts])
    day = np.concatenate([p[2] for p in parts])
    stop_day = np.concatenate([p[3] for p in parts])
    k = len(pidx)
    extra = {"plan": np.full(k, -1, np.int64), "pidx": pidx, "drug": drug, "day": day, "cycle": np.zeros(k, np.int64),
             "cycle_day": np.zeros(k, np.int64), "stop_day": stop_day, "is_course": np.ones(k, bool),
             "minute": _clock(rng, drug), "stop_minute": 480 + rng.integers(0, 90, k)}
    # A course stopped on its start date stops after it started.
    same = extra["stop_day"] == extra["day"]
    extra["stop_minute"] = np.where(same, np.maximum(extra["stop_minute"], extra["minute"]), extra["stop_minute"])
    same = rows["stop_day"] == rows["day"]
    rows["stop_minute"] = np.where(same, np.maximum(rows["stop_minute"], rows["minute"]), rows["stop_minute"])
    return {key: np.concatenate([rows[key], extra[key]]) for key in rows}


def _last_at_or_before(key_pidx: np.ndarray, key_day: np.ndarray, pidx: np.ndarray, day: np.ndarray) -> np.ndarray:
    """For each (patient, day), the latest ``key_day`` of the same patient on or before it (or
    -2**40 when there is none). Vectorised with one sort and a binary search."""
    span, shift = np.int64(1 << 32), np.int64(1 << 31)
    keys = np.sort(key_pidx.astype(np.int64) * span + (key_day.astype(np.int64) + shift))
    q = pidx.astype(np.int64) * span + (day.astype(np.int64) + shift)
    pos = np.searchsorted(keys, q, side="right") - 1
    found = keys[np.maximum(pos, 0)] if len(keys) else np.zeros(len(q), np.int64)
    same = (pos >= 0) & (found // span == pidx)
    return np.where(same, found % span - shift, -(1 << 40))


def _reports(
    rng: np.random.Generator,
    patients: pd.DataFrame,
    dosing: dict[str, np.ndarray],
    count: int,
    as_of: pd.Timestamp,
    history_days: int,
) -> pd.DataFrame:
    n_pat = len(patients)
    period_start = as_of - pd.Timedelta(days=history_days)
    period_ns = period_start.as_unit("ns").value
    today = np.datetime64(as_of.normalize().to_datetime64(), "ns")
    d_pidx, d_drug, d_ns = dosing["pidx"], dosing["drug"], dosing["given_ns"]
    parts = []
    # Drug-window reports: a dose of a window drug, and an onset on the literature's days after it.
    window_code = np.array([DRUG_CODE[d] for d in WINDOW_DRUGS])
    pool = np.flatnonzero(np.isin(d_drug, window_code) & (d_ns >= period_ns))
    n_window = int(round(count * WINDOW_SHARE)) if len(pool) else 0
    # First month of an LHRH agonist in prostate cancer: testosterone flare.
    lhrh = np.flatnonzero(_drug_mask(LHRH_AGONISTS)[d_drug]
                          & (patients["cancer_type"].to_numpy()[d_pidx] == "prostate"))
    first_lhrh = pd.Series(d_ns[lhrh]).groupby(d_pidx[lhrh]).min()
    flare_pool = first_lhrh[first_lhrh >= period_ns - 28 * 86_400_000_000_000]
    n_flare = int(round(count * FLARE_SHARE)) if len(flare_pool) else 0
    n_background = count - n_window - n_flare
    if n_window:
        weight_of = np.zeros(len(DRUG_NAMES))
        weight_of[window_code] = [WINDOW_WEIGHT[d] for d in WINDOW_DRUGS]
        w = weight_of[d_drug[pool]]
        pick = pool[rng.choice(len(pool), size=n_window, p=w / w.sum())]
        onset_day = np.zeros(n_window, dtype=np.int64)
        for drug, (days, probs) in WINDOW_DRUGS.items():
            sel = d_drug[pick] == DRUG_CODE[drug]
            onset_day[sel] = rng.choice(days, size=int(sel.sum()), p=probs)
        duration = rng.choice([0, 1, 2, 3], size=n_window, p=[0.35, 0.35, 0.2, 0.1])
        day = dosing["day"][pick] + onset_day + duration
        parts.append((d_pidx[pick], day, np.ones(n_window, np.int8), duration))
    if n_flare:
        which = rng.integers(0, len(flare_pool), n_flare)
        first_day = ((flare_pool.to_numpy()[which] - today.view(np.int64)) // 86_400_000_000_000).astype(np.int64)
        onset = first_day + rng.integers(1, 21, n_flare)
        duration = rng.choice([0, 1, 2, 3, 5, 7], size=n_flare, p=[0.15, 0.2, 0.2, 0.15, 0.15, 0.15])
        duration = np.minimum(duration, np.maximum(-onset, 0))
        parts.append((flare_pool.index.to_numpy()[which], onset + duration, np.full(n_flare, 2, np.int8), duration))
    if n_background:
        weight = rng.gamma(1.3, 1.0, n_pat)
        pidx = rng.choice(n_pat, size=n_background, p=weight / weight.sum())
        first_dose = np.full(n_pat, np.iinfo(np.int64).max)
        np.minimum.at(first_dose, d_pidx, d_ns)
        lo = np.maximum(np.where(first_dose == np.iinfo(np.int64).max, period_ns, first_dose), period_ns)[pidx]
        span = (as_of.as_unit("ns").value - lo) // 60_000_000_000
        offset = (rng.random(n_background) * np.maximum(span, 1)).astype(np.int64) * 60_000_000_000
        day = (lo + offset - today.view(np.int64)) // 86_400_000_000_000
        duration = rng.choice([0, 1, 2, 3, 5, 7, 14, 21, 30], size=n_background,
                              p=[0.12, 0.16, 0.14, 0.12, 0.12, 0.12, 0.1, 0.06, 0.06])
        parts.append((pidx, day, np.zeros(n_background, np.int8), duration))
    if parts:
        r_pidx, r_day, kind, r_duration = (np.concatenate([p[i] for p in parts]) for i in range(4))
    else:
        r_pidx = r_day = r_duration = np.zeros(0, np.int64)
        kind = np.zeros(0, np.int8)
    m = len(r_pidx)
    # Time of day: ePRO through the day and evening, a few at night; phone calls in clinic hours.
    phone = rng.random(m) < 0.25
    minute = np.where(
        phone,
        rng.normal(13 * 60, 150, m),
        rng.choice(np.arange(0, 24 * 60, 30), size=m, p=_day_profile()),
    )
    minute = np.clip(minute + rng.integers(0, 30, m), 0, 24 * 60 - 1).astype(np.int64)
    at_ns = (today + r_day.astype("timedelta64[D]") + minute.astype("timedelta64[m]")).view(np.int64)
    keep = (at_ns <= as_of.as_unit("ns").value) & (at_ns >= period_ns)
    r_pidx, r_day, kind, r_duration, phone, at_ns = (a[keep] for a in (r_pidx, r_day, kind, r_duration, phone, at_ns))
    m = len(r_pidx)
    cancer = patients["cancer_type"].to_numpy()[r_pidx]
    bone = patients["bone_metastases"].to_numpy()[r_pidx] | (cancer == "myeloma")
    window = kind == 1
    flare = kind == 2
    u = lambda: rng.random(m)  # noqa: E731 - a fresh uniform column each call

    # Facts of each report's patient at the report that shape its answers.
    anticoagulated = np.zeros(n_pat, dtype=bool)
    anticoagulated[d_pidx[_ANTICOAGULANT[d_drug]]] = True
    bleeding_risk = (anticoagulated | patients["low_platelets"].to_numpy())[r_pidx]
    deno = d_drug == DRUG_CODE["denosumab"]
    last_deno = _last_at_or_before(d_pidx[deno], dosing["day"][deno], r_pidx, r_day)
    # Denosumab stopped or delayed: rebound vertebral fractures (sudden pain) for months after.
    deno_lapsed = (last_deno > -(1 << 39)) & (r_day - last_deno > 210)
    neurotoxic_pat = np.zeros(n_pat, dtype=bool)
    neurotoxic_pat[d_pidx[_drug_mask(NEUROTOXIC_DRUGS)[d_drug]]] = True

    # Temperature: asked in about half of reports; fever a small minority.
    has_temp = u() < 0.5
    fever = u() < 0.011
    temp = np.round(rng.normal(36.7, 0.25, m), 1)
    temp = np.where(fever, np.round(rng.uniform(37.5, 39.4, m), 1), temp)
    temp = np.where(u() < 0.003, np.round(rng.uniform(35.2, 36.0, m), 1), temp)
    temp = np.where(has_temp | fever, np.clip(temp, 34.0, 41.5), np.nan)
    rigors = fever & (u() < 0.35)
    feels_unwell = (fever & (u() < 0.6)) | (u() < 0.004)
    # Red flags: a realistic minority, commoner with bone disease.
    neuro = u() < np.where(bone, 0.04, 0.008) + np.where(flare, 0.03, 0)
    flags = {
        "leg_weakness": neuro & (u() < 0.55),
        "difficulty_walking": neuro & (u() < 0.45),
        "leg_numbness": neuro & (u() < 0.4),
        "saddle_numbness": neuro & (u() < 0.18),
        "bladder_or_bowel_change": neuro & (u() < 0.2),
        "radiating_pain": (neuro & (u() < 0.5)) | (u() < 0.006),
    }
    none_neuro = neuro & ~np.logical_or.reduce(list(flags.values()))
    flags["leg_weakness"] = flags["leg_weakness"] | none_neuro
    # Spinal features: commoner in bone disease, in a flare, and with fever (infection).
    spinal = u() < np.where(bone, 0.12, np.where(window, 0.015, 0.04)) + np.where(flare, 0.15, 0) \
        + np.where(fever, 0.2, 0)
    flags["worse_at_night"] = spinal & (u() < 0.5)
    flags["worse_on_straining"] = spinal & (u() < 0.3)
    flags["worse_on_movement"] = (spinal & (u() < 0.4)) | (u() < 0.01)
    flags["localised_tenderness"] = spinal & (u() < 0.3)
    # Answers with a few values are codes into their labels (-1: not answered).
    trend = rng.choice(len(TRENDS), size=m, p=[0.32, 0.65, 0.03])
    trend[spinal & (u() < 0.5)] = TRENDS.index("worsening")
    trend[u() < 0.08] = -1
    location = rng.choice(len(LOCATIONS), size=m, p=[0.78, 0.17, 0.035, 0.015])
    location[spinal & (u() < 0.3)] = LOCATIONS.index("thoracic")
    location[u() < 0.06] = -1
    # Onset: mostly gradual; sudden pain commoner after denosumab lapses (rebound fractures) and
    # where bleeding is a risk.
    # A few sudden, severe pains on anticoagulants or with low platelets (a possible bleed).
    bleed = bleeding_risk & (u() < 0.015)
    sudden_p = np.where(deno_lapsed, 0.35, np.where(bleeding_risk, 0.1, 0.075))
    onset = np.where(bleed | (u() < sudden_p), ONSETS.index("sudden"), ONSETS.index("gradual"))
    onset[~bleed & (u() < 0.1)] = -1
    sudden = onset == ONSETS.index("sudden")
    flags["after_minor_strain"] = sudden & (u() < 0.25)
    flags["uncontrolled_by_analgesia"] = u() < np.where(bone, 0.06, 0.02)
    # Neuropathy in patients who have had a neurotoxic drug.
    flags["hand_foot_tingling"] = neurotoxic_pat[r_pidx] & (u() < 0.09)
    # Hypercalcaemia: new confusion or drowsiness, thirst or passing much more urine; a small share in
    # bone disease, rarer elsewhere (drowsiness from opioids).
    calcium = u() < np.where(bone, 0.015, 0.003)
    flags["confusion_or_drowsiness"] = calcium & (u() < 0.55)
    flags["thirst_or_polyuria"] = (calcium & ~flags["confusion_or_drowsiness"]) | (calcium & (u() < 0.3))
    # Is this the usual pain? In bone disease often the known pain; red flags and spinal features
    # make it new or changed; one in ten unanswered.
    pattern = np.where(bone, 0, 1)
    pattern = np.where(neuro | spinal | sudden | flare, 2, pattern)
    probs = np.array([[0.22, 0.22, 0.46, 0.10],   # bone disease: new, changed, usual, unanswered
                      [0.50, 0.12, 0.28, 0.10],   # others
                      [0.55, 0.30, 0.08, 0.07]])  # with red flags, spinal features or sudden onset
    cum = np.cumsum(probs, axis=1)[pattern]
    pain_pattern = (u()[:, None] > cum[:, :3]).sum(axis=1)
    pain_pattern[pain_pattern == len(PATTERNS)] = -1
    # Pain: moderate in drug windows, broader otherwise, higher with red flags, bone disease and
    # sudden onset.
    pain = np.where(window, rng.normal(4.4, 1.2, m), rng.normal(3.3, 1.5, m))
    pain = (pain + np.where(neuro | fever, 2.0, 0) + np.where(bone, 0.5, 0) + np.where(spinal, 0.6, 0)
            + np.where(sudden, 1.2, 0) + np.where(flare, 1.0, 0) + np.where(bleed, 3.0, 0))
    pain = np.clip(np.round(pain), 1, 10).astype(np.int64)
    duration = r_duration.astype("float")
    duration[u() < 0.07] = np.nan

    order = np.lexsort((r_pidx, at_ns))
    at = at_ns[order].view("datetime64[ns]")
    phone = phone[order]
    # Phone reports are entered a few minutes after the call; ePRO arrives at once.
    delay = np.where(phone, rng.integers(2, 20, m), 0)
    out = pd.DataFrame(
        {
            "report_id": _numbered("R-", m, 7),
            "patient_id": _text(patients["patient_id"], r_pidx[order]),
            "reported_at": at,
            "received_at": at + delay.astype("timedelta64[m]"),
            "source": _text(["epro", "phone"], phone.astype(np.int64)),
            "entered_by": None,
            "pain_score": pain[order],
            "onset": _text(ONSETS, onset[order]),
            "trend": _text(TRENDS, trend[order]),
            "location": _text(LOCATIONS, location[order]),
            "duration_days": pd.array(duration[order], dtype="Int64"),
            **{k: flags[k][order] for k in [
                "worse_at_night", "worse_on_straining", "worse_on_movement", "localised_tenderness",
                "after_minor_strain", "uncontrolled_by_analgesia", "leg_weakness", "difficulty_walking",
                "leg_numbness", "bladder_or_bowel_change", "radiating_pain", "hand_foot_tingling"]},
            "temperature_c": temp[order],
            "rigors": rigors[order],
            "feels_unwell": feels_unwell[order],
            "note": None,
            "pain_pattern": _text(PATTERNS, pain_pattern[order]),
            **{k: flags[k][order] for k in ["saddle_numbness", "confusion_or_drowsiness", "thirst_or_polyuria"]},
        }
    )
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
    # Overrides are a physician's decision (after the nurse's call): one of the physicians on duty.
    physicians = np.asarray(_codes(staff.loc[staff["role"] == "physician", "staff_id"].tolist(), staff_ids))
    if len(physicians) == 0:
        override[:] = False
        physicians = np.zeros(1, dtype=np.int32)
    override_by = physicians[rng.integers(0, len(physicians), m)].astype(np.int32)
    resolve_med = np.array([RESOLVE_MEDIAN_MIN[t] for t in TIER_NAMES])[tier]
    t_res = t_ack + minutes(resolve_med * np.exp(rng.normal(0, 0.6, m)) + 30)
    del resolve_med
    forgotten = rng.random(m) < 0.003  # never resolved: the overdue tail team leads must see
    outcome = _per_value(cause_codes, causes, lambda c: _OUTCOMES.index(OUTCOMES_BY_CAUSE.get(c, "self_care_advice")),
                         _OUTCOMES.index("self_care_advice"))
    # An emergency goes to the emergency department (sepsis, a bleed), to the MSCC pathway, or is admitted.
    sepsis = _per_value(cause_codes, causes, lambda c: c in ("neutropenic_sepsis", "spinal_haematoma"), False, bool)
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

    # The nurse of the report acts, except for overrides (action 3), which a physician makes.
    by_physician = cols["action"] == 3
    actors = np.where(by_physician, override_by[rows], actor[rows])
    reached_code = cols.pop("reached")
    return pa.table({
        "event_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "report_id": pa.DictionaryArray.from_arrays(pa.array(rows, pa.int32()), report_id),
        "acted_at": pa.array(cols.pop("at") // 1000, pa.timestamp("us")),
        "actor": coded(actors, staff_ids, pa.int32()),
        "actor_name": coded(actors, [names[s] for s in staff_ids], pa.int32()),
        "role": coded(by_physician.astype(np.int8), ["nurse", "physician"]),
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
