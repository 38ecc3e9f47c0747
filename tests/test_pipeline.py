"""End to end: the DVC pipeline on a small slice of the real corpora, in a fresh copy of this repository."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ser.corpora import EMOTIONS
from ser.params import (
    AudioParams,
    AugmentParams,
    FetchParams,
    MelspecParams,
    ModelParams,
    SplitParams,
    TrainParams,
)

REPO = Path(__file__).resolve().parents[1]
CLIPS_PER_CORPUS = 48

# The params sections each stage loads (src/stages/*.py); dvc.yaml must list exactly their keys.
STAGE_SECTIONS = {
    "fetch": {"fetch": FetchParams},
    "split": {"split": SplitParams},
    "augment": {"audio": AudioParams, "augment": AugmentParams},
    "melspec": {"audio": AudioParams, "melspec": MelspecParams},
    "train": {"model": ModelParams, "train": TrainParams},
}


def run(command: list[str], cwd: Path, env: dict) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{output[-4000:]}"
    return output


def set_params(project: Path, **changes: object) -> None:
    """Set dotted keys of the copy's params.yaml, e.g. set_params(p, **{"augment.copies": 2})."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    for dotted, value in changes.items():
        *sections, key = dotted.split(".")
        node = params
        for section in sections:
            node = node[section]
        node[key] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory, mirror) -> tuple[Path, dict]:
    """A fresh clone-like copy of the working tree (git-visible files only), as its own git repository."""
    root = tmp_path_factory.mktemp("clone")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for relpath in filter(None, listed.split("\0")):
        if (REPO / relpath).is_file():
            (root / relpath).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / relpath, root / relpath)
    env = {
        **os.environ,
        "SER_DATA_MIRROR": str(mirror),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # `python` is this venv's
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    set_params(root, **{"fetch.limit_per_corpus": CLIPS_PER_CORPUS, "augment.copies": 1})
    run(["git", "init", "-q"], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "slice"], root, env)
    return root, env


def test_dvc_yaml_names_exactly_the_params_keys_each_stage_reads():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for stage, sections in STAGE_SECTIONS.items():
        expected = {f"{name}.{field.name}" for name, cls in sections.items() for field in dataclasses.fields(cls)}
        assert set(stages[stage]["params"]) == expected, stage
        assert f"src/stages/{stage}.py" in stages[stage]["deps"]
    assert "params" not in stages["evaluate"]  # evaluate reads everything it needs from the model bundle


@pytest.mark.slow
def test_data_half_runs_end_to_end_and_is_incremental(project):
    root, env = project
    first = run(["dvc", "repro", "melspec"], root, env)
    for stage in ("fetch", "split", "augment", "melspec"):
        assert f"Running stage '{stage}'" in first

    manifest = pd.read_csv(root / "data" / "manifest.csv")
    assert manifest.groupby("corpus").size().to_dict() == {"ravdess": CLIPS_PER_CORPUS, "tess": CLIPS_PER_CORPUS}
    split = pd.read_csv(root / "data" / "split.csv")
    ravdess = split[split["corpus"] == "ravdess"]
    assert ravdess.groupby("speaker")["split"].nunique().max() == 1
    assert {"Actor_01", "Actor_11", "Actor_20", "Actor_21"} >= set(ravdess.loc[ravdess["split"] == "test", "speaker"])

    clips = pd.read_csv(root / "data" / "features" / "clips.csv")
    n_train = int((split["split"] == "train").sum())
    expected = {"train": 2 * n_train, **{s: int((split["split"] == s).sum()) for s in ("val", "test")}}
    for name, count in expected.items():
        features = np.load(root / "data" / "features" / f"{name}.npy", mmap_mode="r")
        assert features.shape == (count, 64, 188)
        assert np.isfinite(features).all()
        assert (clips["split"] == name).sum() == count
    assert set(clips.loc[clips["prepared"], "split"]) == {"train"}  # augmented copies: train only
    assert {p.stem for p in (root / "plots" / "spectrograms").glob("*.png")} <= set(EMOTIONS)
    assert len(list((root / "plots" / "spectrograms").glob("*.png"))) >= 6

    second = run(["dvc", "repro", "melspec"], root, env)
    assert "Running stage" not in second

    set_params(root, **{"augment.copies": 2})
    third = run(["dvc", "repro", "melspec"], root, env)
    assert "Running stage 'augment'" in third and "Running stage 'melspec'" in third
    assert "Running stage 'fetch'" not in third and "Running stage 'split'" not in third
    assert np.load(root / "data" / "features" / "train.npy", mmap_mode="r").shape[0] == 3 * n_train


@pytest.mark.slow
def test_model_half_trains_evaluates_and_experiments_compare(project, mirror):
    root, env = project
    set_params(root, **{"model.size": "small", "train.epochs": 2, "train.batch_size": 16, "train.members": 2})
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "small model, two epochs, two members"], root, env)
    output = run(["dvc", "repro"], root, env)
    assert "Running stage 'train'" in output and "Running stage 'evaluate'" in output
    assert "Running stage 'melspec'" not in output  # the data half is cached from the test above

    results = json.loads((root / "metrics" / "evaluate.json").read_text())
    assert set(results) == {"ravdess", "tess", "all"}
    for name in results:
        assert set(results[name]) == {"clips", "wa", "ua", "macro_f1", "recall"}
        assert 0.0 <= results[name]["ua"] <= 1.0
    test_clips = pd.read_csv(root / "data" / "split.csv").query("split == 'test'")
    assert results["all"]["clips"] == len(test_clips)
    assert results["ravdess"]["clips"] == int((test_clips["corpus"] == "ravdess").sum())
    history = pd.read_csv(root / "plots" / "training.csv")
    assert history["epoch"].tolist() == [1, 2, 1, 2]  # two members, one after the other
    assert history["member"].tolist() == [1, 1, 2, 2] and history["run_epoch"].tolist() == [1, 2, 3, 4]
    trained = json.loads((root / "metrics" / "train.json").read_text())
    assert [member["seed"] for member in trained["members"].values()] == [0, 1]
    for png in ("training.png", "confusion.png"):
        assert (root / "plots" / png).stat().st_size > 10_000
    evaluated = pd.read_csv(root / "plots" / "predictions.csv")
    assert len(evaluated) == len(test_clips)

    # `ser predict` on the same clips, straight from the mirror, gives the evaluate stage's probabilities.
    sample = evaluated.groupby("corpus").head(3).set_index("clip_id")
    paths = test_clips.set_index("clip_id")["path"]  # relative to data/raw: <corpus>/<as in the mirror>
    files = [str(mirror / paths[clip_id]) for clip_id in sample.index]
    out = root / "predicted.csv"
    summary = run(
        ["ser", "predict", "--format", "csv", "--out", str(out), "--model", "data/model/model.pt", *files], root, env
    )
    assert f"{len(files)} predicted, 0 failed" in summary
    predicted = pd.read_csv(out)
    assert len(predicted) == len(sample)
    probability_columns = [c for c in evaluated.columns if c.startswith("p_")]
    assert np.allclose(predicted[probability_columns].to_numpy(), sample[probability_columns].to_numpy(), atol=2e-4)
    assert predicted["predicted"].tolist() == sample["predicted"].tolist()

    first = run(["dvc", "exp", "run", "-n", "higher-lr", "-S", "train.lr=0.003"], root, env)
    second = run(["dvc", "exp", "run", "-n", "tiny-model", "-S", "model.size=tiny"], root, env)
    assert "Running stage 'train'" in first and "Running stage 'train'" in second, first + second
    shown = run(["dvc", "exp", "show", "--csv"], root, env)
    assert "higher-lr" in shown and "tiny-model" in shown
    diff = json.loads(run(["dvc", "metrics", "diff", "higher-lr", "tiny-model", "--all", "--json"], root, env))
    evaluated_diff = diff["metrics/evaluate.json"]
    assert {"all.ua", "ravdess.ua", "tess.ua"} <= set(evaluated_diff), (first, second, shown)
    assert all(entry["old"] is not None and entry["new"] is not None for entry in evaluated_diff.values())
    assert "parameters" in diff["metrics/train.json"]  # the two experiments' model sizes differ
    run(["dvc", "plots", "diff", "higher-lr", "tiny-model", "-o", str(root / "plots_diff")], root, env)
    assert (root / "plots_diff" / "index.html").is_file()
