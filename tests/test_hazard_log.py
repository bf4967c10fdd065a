"""The hazard log (docs/clinical-safety/hazard-log.md) names tests that exist, every hazard has
evidence, and every hazard is rated before and after its controls on the DCB0129 matrix.

The log is per-hazard sections, each headed ``### Hnn title`` with one ``- Field: value`` line per
field; the index table at the top repeats each hazard's risk before and after. A test is named as
``tests/test_file.py::test_name`` (a function at module level or in a class, without brackets).
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

from tests.conftest import ROOT

LOG = ROOT / "docs" / "clinical-safety" / "hazard-log.md"
SEVERITY = {1: "Minor", 2: "Significant", 3: "Considerable", 4: "Major", 5: "Catastrophic"}
LIKELIHOOD = {1: "Very low", 2: "Low", 3: "Medium", 4: "High", 5: "Very high"}
RISK = {1: "Very low", 2: "Low", 3: "Medium", 4: "High", 5: "Very high"}
# DCB0129's 5 x 5 matrix: MATRIX[likelihood][severity - 1] is the risk.
MATRIX = {
    5: [3, 4, 4, 5, 5],
    4: [2, 3, 3, 4, 5],
    3: [2, 2, 3, 3, 4],
    2: [1, 2, 2, 3, 4],
    1: [1, 1, 2, 2, 3],
}
FIELDS = ("Hazard", "Cause", "Effect", "Before", "Controls", "After", "Evidence")
HEADING = re.compile(r"^### (H\d{2}) (.+)$", re.M)
RATING = re.compile(
    r"^- (Before|After): severity ([1-5]) ([A-Za-z]+), likelihood ([1-5]) ([A-Za-z ]+?), risk ([1-5]) ([A-Za-z ]+)$",
    re.M,
)
NODE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def log_text() -> str:
    return LOG.read_text(encoding="utf-8")


def hazards() -> dict[str, str]:
    """Each hazard's section (its heading line included), by ID, in the order of the log."""
    text = log_text()
    heads = list(HEADING.finditer(text))
    return {m.group(1): text[m.start(): heads[i + 1].start() if i + 1 < len(heads) else len(text)]
            for i, m in enumerate(heads)}


def field(section: str, name: str) -> str | None:
    m = re.search(rf"^- {name}: (.+)$", section, re.M)
    return m.group(1).strip() if m else None


@lru_cache(maxsize=None)
def defined_tests(path: Path) -> frozenset[str]:
    """The test functions a file defines at module level or in a class (as pytest collects them)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defs = (ast.FunctionDef, ast.AsyncFunctionDef)
    names = {n.name for n in tree.body if isinstance(n, defs)}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        names |= {n.name for n in cls.body if isinstance(n, defs)}
    return frozenset(n for n in names if n.startswith("test_"))


def missing_tests(text: str) -> list[str]:
    missing = []
    for file, name in dict.fromkeys(NODE.findall(text)):
        path = ROOT / file
        if not path.is_file():
            missing.append(f"{file}::{name} (no such file)")
        elif name not in defined_tests(path):
            missing.append(f"{file}::{name} (no such test in the file)")
    return missing


def test_every_test_the_hazard_log_names_exists_and_every_hazard_has_evidence():
    text = log_text()
    missing = missing_tests(text)
    assert not missing, "the hazard log names tests that do not exist:\n  " + "\n  ".join(missing)
    bracketed = re.findall(r"tests/[\w/]+\.py::\w+\[", text)
    assert not bracketed, f"name test functions without parametrisation brackets: {bracketed}"
    without = [hid for hid, section in hazards().items() if not NODE.search(field(section, "Evidence") or "")]
    assert not without, f"hazards without evidence (an `- Evidence:` line naming tests): {without}"


def test_hazards_are_unique_and_rated_before_and_after_by_the_matrix():
    text = log_text()
    ids = HEADING.findall(text)
    assert len(ids) >= 20, "the log should hold at least the hazards of the brief"
    numbers = [int(hid[1:]) for hid, _ in ids]
    duplicates = sorted({f"H{n:02d}" for n in numbers if numbers.count(n) > 1})
    assert not duplicates, f"hazard IDs used twice: {duplicates}"
    assert numbers == list(range(1, len(numbers) + 1)), f"hazard IDs should run H01, H02, ... in order: {numbers}"
    problems = []
    risks = {}
    for hid, section in hazards().items():
        for name in FIELDS:
            if not field(section, name):
                problems.append(f"{hid}: no `- {name}:` line")
        ratings = RATING.findall(section)
        if [r[0] for r in ratings] != ["Before", "After"]:
            problems.append(f"{hid}: needs exactly one Before and one After rating "
                            "(`- Before: severity N Word, likelihood N Word, risk N Word`)")
            continue
        for when, s, s_word, lk, lk_word, r, r_word in ratings:
            s, lk, r = int(s), int(lk), int(r)
            if SEVERITY[s] != s_word:
                problems.append(f"{hid} {when}: severity {s} is {SEVERITY[s]}, not {s_word}")
            if LIKELIHOOD[lk] != lk_word:
                problems.append(f"{hid} {when}: likelihood {lk} is {LIKELIHOOD[lk]}, not {lk_word}")
            if MATRIX[lk][s - 1] != r:
                problems.append(f"{hid} {when}: severity {s} x likelihood {lk} is risk {MATRIX[lk][s - 1]}, not {r}")
            if RISK[r] != r_word:
                problems.append(f"{hid} {when}: risk {r} is {RISK[r]}, not {r_word}")
        before, after = int(ratings[0][5]), int(ratings[1][5])
        if after > before:
            problems.append(f"{hid}: the risk after the controls ({after}) is higher than before ({before})")
        risks[hid] = (before, after)
    assert not problems, "\n".join(problems)
    # The index at the top repeats each hazard's risk before and after.
    index = {m.group(1): (int(m.group(2)), int(m.group(3)))
             for m in re.finditer(r"^\| (H\d{2}) \|[^|\n]+\| (\d) [A-Za-z ]+\| (\d) [A-Za-z ]+\|", text, re.M)}
    assert index == risks, f"the index table disagrees with the sections: index {index}, sections {risks}"
