"""The committed benchmark table is generated: benchmarks/README.md is what report.py makes of results.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ser.corpora import evenly_spaced
from ser.features import FeatureSplit

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


def test_the_gpu_script_trains_an_epoch_of_a_preset_anywhere(capsys):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import gpu
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    gpu.main(["--device", "cpu", "--clips", "64", "--batch-size", "32", "--presets", "tiny"])
    printed = capsys.readouterr().out
    result = json.loads(printed.strip().splitlines()[-1])
    (row,) = result["rows"]
    assert row["preset"] == "tiny" and row["samples"] == 64 and row["batch_size"] == 32
    assert row["train_samples_per_s"] > 0 and row["peak_memory_gib"] is None  # no CUDA memory on the CPU
    assert "one training epoch per preset" in printed


def test_time_to_accuracy_trains_on_every_version_of_an_evenly_spaced_subset_of_clips():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import time_to_accuracy
    finally:
        sys.path.remove(str(REPO / "benchmarks"))

    sources = [f"c{i:02d}" for i in range(10)]
    table = pd.DataFrame({"source_clip_id": sources * 3, "emotion": "sad", "corpus": "ravdess"})
    features = np.arange(30, dtype=np.float32).reshape(30, 1, 1)
    picked = time_to_accuracy.subset(FeatureSplit(features=features, table=table), 5)
    chosen = set(evenly_spaced(sources, 5))
    assert set(picked.table["source_clip_id"]) == chosen and len(chosen) == 5
    kept_rows = [row for row in range(30) if sources[row % 10] in chosen]  # each clip with both its copies
    assert picked.features[:, 0, 0].tolist() == kept_rows and len(picked.table) == 15
