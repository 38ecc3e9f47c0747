"""Section 4: DVC's own overhead, the seconds of `dvc status` and of a `dvc repro` with nothing to do."""

from __future__ import annotations

import json
import statistics
import subprocess
from collections.abc import Sequence

from common import REPO_ROOT, Budget, console_script, one_line, print_table, subprocess_env, timed


def run_dvc(arguments: Sequence[str]) -> tuple[float, subprocess.CompletedProcess]:
    command = [*console_script("dvc"), *arguments]
    return timed(lambda: subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=subprocess_env()))


def dvc_section(budget: Budget) -> dict:
    """Median seconds of `dvc status` and of a no-op `dvc repro`; each repro only right after a status that
    found the pipeline up to date, so a real repro never runs."""
    timings: dict[str, list[float]] = {"dvc status": [], "dvc repro (no-op)": []}
    problem = None
    for _ in range(budget.dvc_repeats):
        seconds, status = run_dvc(["status", "--json"])
        if status.returncode != 0:  # e.g. another dvc process holds the repo lock
            problem = f"dvc status exited {status.returncode}: {one_line(status.stderr)}"
            break
        timings["dvc status"].append(seconds)
        changed = json.loads(status.stdout or "{}")
        if changed:
            problem = f"pipeline not up to date (changed: {', '.join(sorted(changed))}); timing dvc status only"
            continue
        seconds, repro = run_dvc(["repro"])
        if repro.returncode != 0:
            problem = f"dvc repro exited {repro.returncode}: {one_line(repro.stderr)}"
            break
        timings["dvc repro (no-op)"].append(seconds)
    rows = [
        {"command": command, "runs": len(seconds), "median_seconds": statistics.median(seconds)}
        for command, seconds in timings.items()
        if seconds
    ]
    print_table(f"6. DVC overhead (median of up to {budget.dvc_repeats})", rows, ["command", "runs", "median_seconds"])
    if problem:
        print(f"note: {problem}")
    return {
        "rows": rows,
        "all_seconds": {command: [round(s, 3) for s in seconds] for command, seconds in timings.items()},
        "problem": problem,
        "note": "`dvc status --json` (the check `dvc status` makes) in the repo root; `dvc repro` only when up to date",
    }
