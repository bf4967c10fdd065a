"""Pages are layout: no SQL, no thresholds, no connection of their own (a static reading of pages/)."""

from __future__ import annotations

import re

from tests.conftest import ROOT

SQL = re.compile(r"\b(SELECT\s+.+\s+FROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE)\b", re.I)
FORBIDDEN = {
    "SQL": SQL,
    "a connection of its own": re.compile(r"\.connect\(|duckdb\.|\.execute\(|\.query\(|\.rows\(|\.scalar\("),
    "a threshold of the rules": re.compile(r"\.parameter\(|respond_within_minutes\(.*[<>]"),
}


def test_pages_build_no_sql_and_read_no_threshold():
    found = []
    for path in sorted((ROOT / "pages").glob("*.py")) + [ROOT / "streamlit_app.py"]:
        for i, line in enumerate(path.read_text().splitlines(), 1):
            for what, pattern in FORBIDDEN.items():
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{i}: {what}: {line.strip()}")
    assert found == []
