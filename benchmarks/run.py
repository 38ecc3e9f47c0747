"""Benchmarks of ser: the front end (and its FLAC decoder), training throughput per preset, time to accuracy
of the training recipe against the old default, data-parallel throughput, `ser predict`, and DVC's own overhead.

    python benchmarks/run.py [--quick] [--clips N] [--out results.json] [--readme README.md]

Runs the sections (the modules beside this one) in order, writes their results to a JSON and, from that JSON,
the README's table (report.py). The full run is budgeted (common.BUDGETS) to finish in under 10 minutes on
2 cores; --quick (under a minute) only checks that every section works: its numbers mean nothing, so it writes
into a temporary folder unless --out and --readme name the files.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from common import BUDGETS, REPO_ROOT, clip_files, corpus_mirror, machine_info, timed
from distributed import distributed_section
from dvc_overhead import dvc_section
from flac_decoding import flac_decoding_section
from frontend import front_end_section
from prediction import prediction_section
from report import README, shown_path, write_readme
from time_to_accuracy import time_to_accuracy_section
from training import training_section

from ser.audio import FrontEndConfig
from ser.io import write_json
from ser.params import load_params

RESULTS = REPO_ROOT / "benchmarks" / "results.json"
QUICK_DIR = Path(tempfile.gettempdir()) / "ser-benchmark-quick"  # where --quick writes unless told otherwise


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    elsewhere = f"with --quick: in {QUICK_DIR}"
    parser.add_argument(
        "--quick", action="store_true", help="a smoke test of every section (< 1 min): its numbers mean nothing"
    )
    parser.add_argument(
        "--clips",
        type=int,
        default=300,
        help="real clips for the front-end, FLAC-decoding and prediction sections (default: 300)",
    )
    parser.add_argument("--out", type=Path, help=f"the results JSON (default: {shown_path(RESULTS)}; {elsewhere})")
    parser.add_argument("--readme", type=Path, help=f"the README to write (default: {shown_path(README)}; {elsewhere})")
    parser.add_argument("--params", type=Path, default=REPO_ROOT / "params.yaml", help="params file")
    args = parser.parse_args(argv)
    if args.clips < 2:
        parser.error(f"--clips must be at least 2, got {args.clips}")
    args.out = args.out or (QUICK_DIR / RESULTS.name if args.quick else RESULTS)
    args.readme = args.readme or (QUICK_DIR / README.name if args.quick else README)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    budget = BUDGETS["quick" if args.quick else "full"]
    params = load_params(args.params)
    frontend = FrontEndConfig(audio=params.audio, melspec=params.melspec)
    mirror = corpus_mirror()
    files = clip_files(mirror, args.clips)
    results: dict = {"quick": args.quick, "budget": dataclasses.asdict(budget), "machine": machine_info()}
    print(f"machine: {json.dumps(results['machine'])}")
    size, members = params.model.size, params.train.members
    sections = {
        "front_end": lambda: front_end_section(files, mirror, frontend, budget),
        "flac_decoding": lambda: flac_decoding_section(files, budget),
        "training": lambda: training_section(frontend, params.train, size, budget),
        "time_to_accuracy": lambda: time_to_accuracy_section(params, budget),
        "distributed": lambda: distributed_section(params, budget),
        "prediction": lambda: prediction_section(files, frontend, size, members, budget),
        "dvc": lambda: dvc_section(budget),
    }
    section_seconds: dict[str, float] = {}
    for name, run in sections.items():
        section_seconds[name], results[name] = timed(run)
    results["section_seconds"] = section_seconds
    results["load_average_1min_after"] = os.getloadavg()[0]
    write_json(results, args.out)
    write_readme(results, args.out, args.readme)
    print(f"\nsections took {', '.join(f'{k} {v:.0f} s' for k, v in section_seconds.items())}")
    print(f"wrote {args.out} and {args.readme}")


if __name__ == "__main__":
    main()
