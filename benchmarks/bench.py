"""Backline's scale benchmark: ``python benchmarks/bench.py [--patients N] [--reports N] [--seed S] [--keep DIR]``.

The same as ``backline bench``; see dashboard/bench.py and BENCHMARKS.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
