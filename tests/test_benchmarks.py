"""The committed benchmark table is generated: benchmarks/README.md is what report.py makes of results.json."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ser.corpora import evenly_spaced
from ser.features import FeatureSplit
from ser.params import load_params

REPO = Path(__file__).resolve().parents[1]


def benchmark_module(name: str):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def test_the_benchmark_readme_is_rendered_from_the_committed_full_run():
    report = benchmark_module("report")
    results = json.loads((REPO / "benchmarks" / "results.json").read_text())
    assert not results["quick"]  # a smoke run's numbers mean nothing: never the committed table
    readme = (REPO / "benchmarks" / "README.md").read_text()
    assert readme == report.render(results, "benchmarks/results.json")


def test_the_gpu_script_trains_an_epoch_of_a_preset_anywhere(capsys):
    gpu = benchmark_module("gpu")
    gpu.main(["--device", "cpu", "--clips", "64", "--batch-size", "32", "--presets", "tiny"])
    printed = capsys.readouterr().out
    result = json.loads(printed.strip().splitlines()[-1])
    (row,) = result["rows"]
    assert row["preset"] == "tiny" and row["samples"] == 64 and row["batch_size"] == 32
    assert row["train_samples_per_s"] > 0 and row["peak_memory_gib"] is None  # no CUDA memory on the CPU
    assert "one training epoch per preset" in printed


def test_time_to_accuracy_trains_on_every_version_of_an_evenly_spaced_subset_of_clips():
    time_to_accuracy = benchmark_module("time_to_accuracy")

    sources = [f"c{i:02d}" for i in range(10)]
    table = pd.DataFrame({"source_clip_id": sources * 3, "emotion": "sad", "corpus": "ravdess"})
    features = np.arange(30, dtype=np.float32).reshape(30, 1, 1)
    picked = time_to_accuracy.subset(FeatureSplit(features=features, table=table), 5)
    chosen = set(evenly_spaced(sources, 5))
    assert set(picked.table["source_clip_id"]) == chosen and len(chosen) == 5
    kept_rows = [row for row in range(30) if sources[row % 10] in chosen]  # each clip with both its copies
    assert picked.features[:, 0, 0].tolist() == kept_rows and len(picked.table) == 15


def test_time_to_accuracy_gives_each_recipe_its_own_normalisation():
    time_to_accuracy = benchmark_module("time_to_accuracy")
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"speaker": "ravdess_01", "prepared": False, "emotion": "sad"}, index=range(4))
    features = rng.uniform(-80.0, -20.0, size=(4, 8, 10)).astype(np.float32)  # dB, each clip's peak below 0
    split = FeatureSplit(features=features, table=table)
    base = load_params(REPO / "params.yaml").train
    old = dataclasses.replace(base, **time_to_accuracy.OLD_RECIPE)
    peak = dataclasses.replace(base, normalise="peak")
    assert old.normalise == "none"  # the default when issue 13 was filed: the log-mel as the front end gives it
    old_train, old_val = time_to_accuracy.recipe_input(split, split, old)
    np.testing.assert_array_equal(old_train.features, features)
    np.testing.assert_array_equal(old_val.features, features)
    peak_train, peak_val = time_to_accuracy.recipe_input(split, split, peak)
    for normalised in (peak_train.features, peak_val.features):
        np.testing.assert_allclose(normalised.max(axis=(1, 2)), 0.0, atol=1e-5)  # each clip's loudest bin at 0 dB
        shift = normalised - features  # one constant per clip: the spectrum's shape is kept
        np.testing.assert_allclose(shift, np.broadcast_to(shift[:, :1, :1], shift.shape), atol=1e-4)


def test_whole_folds_counts_the_epochs_the_new_recipe_takes_to_the_old_final_score(tmp_path):
    time_to_accuracy = benchmark_module("time_to_accuracy")

    def fold(root, k, final, scores):
        (root / str(k)).mkdir(parents=True)
        val = {"score": final, "ravdess": {"ua": final}}
        (root / str(k) / "train.json").write_text(json.dumps({"val": val}))
        history = pd.DataFrame({"val_score": scores, "run_epoch": range(1, len(scores) + 1)})
        history.to_csv(root / str(k) / "training.csv", index=False)

    old, new = tmp_path / "old", tmp_path / "new"
    fold(old, 1, 0.70, [0.5, 0.6, 0.68, 0.69])
    fold(new, 1, 0.75, [0.6, 0.71, 0.75, 0.74])  # first at 0.70 in its second epoch
    fold(old, 2, 0.70, [0.5, 0.6, 0.68, 0.69])
    fold(new, 2, 0.72, [0.6, 0.65, 0.69, 0.68])  # only its kept weights (an average) reach 0.70: the whole run
    fold(old, 3, 0.70, [0.5, 0.6, 0.68, 0.69])
    fold(new, 3, 0.60, [0.5, 0.55, 0.6, 0.6])  # never
    fold(new, 4, 0.90, [0.9])  # no old run of fold 4: left out
    rows = time_to_accuracy.whole_folds(old, new, ["ravdess"])
    assert [row["fold"] for row in rows] == [1, 2, 3]
    assert [row["new_epochs_to_old_score"] for row in rows] == [2, 4, None]
    assert [row["speedup"] for row in rows] == [2.0, 1.0, None]
    assert rows[0]["old_final_score"] == 0.70 and rows[0]["old_epochs"] == 4


def test_machine_info_names_a_missing_package_instead_of_failing():
    """A GPU machine may hold torch alone: the benchmark's closing JSON must still print."""
    common = benchmark_module("common")
    assert common.installed_version("torch") == torch.__version__
    assert common.installed_version("no-such-distribution-ser") is None
