"""The hazard log names real tests, every hazard has evidence, and every risk follows the matrix."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import ROOT

LOG = ROOT / "docs" / "clinical-safety" / "hazard-log.md"
SEVERITY = ["Minor", "Significant", "Considerable", "Major", "Catastrophic"]
MATRIX = {  # likelihood -> risk for each severity, as the log's table
    "Very high": [3, 4, 4, 5, 5], "High": [2, 3, 3, 4, 5], "Medium": [2, 2, 3, 3, 4],
    "Low": [1, 2, 2, 3, 4], "Very low": [1, 1, 2, 2, 3],
}
RISK = re.compile(r"^- (Before|After): severity (\w+), likelihood ([\w ]+?), risk (\d)$", re.M)


def hazards() -> dict[str, str]:
    parts = re.split(r"^### (H\d{2}) ", LOG.read_text(encoding="utf-8"), flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        names |= {n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return {n for n in names if n.startswith("test_")}


def test_every_test_the_hazard_log_names_exists_and_every_hazard_has_evidence():
    missing, without = [], []
    for hid, text in hazards().items():
        evidence = re.search(r"^- Evidence: (.+)$", text, re.M)
        ids = re.findall(r"(tests/[\w/]+\.py)::(test_\w+)", evidence.group(1)) if evidence else []
        if not ids:
            without.append(hid)
        for file, name in ids:
            path = ROOT / file
            if not path.exists() or name not in _test_functions(path):
                missing.append(f"{hid}: {file}::{name}")
    assert not without, f"hazards without evidence: {without}"
    assert not missing, "the hazard log names tests that do not exist:\n" + "\n".join(missing)


def test_hazards_are_unique_and_rated_before_and_after_by_the_matrix():
    found = hazards()
    assert len(found) >= 15
    ids = re.findall(r"^### (H\d{2}) ", LOG.read_text(encoding="utf-8"), re.M)
    assert len(ids) == len(set(ids))
    for hid, text in found.items():
        ratings = RISK.findall(text)
        assert [r[0] for r in ratings] == ["Before", "After"], hid
        for _, severity, likelihood, risk in ratings:
            assert int(risk) == MATRIX[likelihood][SEVERITY.index(severity)], (hid, severity, likelihood, risk)
        (_, s0, _, r0), (_, s1, _, r1) = ratings
        assert int(r1) <= int(r0), f"{hid}: the controls do not lower the risk"
        for field in ("Cause", "Effect", "Controls"):
            assert re.search(rf"^- {field}: \S", text, re.M), (hid, field)
