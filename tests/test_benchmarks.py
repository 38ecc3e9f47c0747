"""The committed benchmark table is generated: benchmarks/README.md is what report.py makes of results.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_benchmark_readme_is_rendered_from_the_committed_full_run():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import report
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    results = json.loads((REPO / "benchmarks" / "results.json").read_text())
    assert not results["quick"]  # a smoke run's numbers mean nothing: never the committed table
    readme = (REPO / "benchmarks" / "README.md").read_text()
    assert readme == report.render(results, "benchmarks/results.json")
