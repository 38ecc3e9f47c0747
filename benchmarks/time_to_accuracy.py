"""Section 3: time to accuracy. The training recipe of params.yaml against the old default's (OLD_RECIPE), on real
features of one fold, their epochs alternating so both see the same machine: how long each takes to its final
validation score, and how long params.yaml's takes to reach the old default's score.

Run by itself, it makes the same comparison on whole folds already trained, in epochs
(`python benchmarks/time_to_accuracy.py reports/folds reports/peak/folds`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Hashable, Sequence
from pathlib import Path

import pandas as pd
import torch
from common import REPO_ROOT, Budget, print_table

from ser.corpora import EMOTIONS, evenly_spaced
from ser.evaluation import selection_score
from ser.features import FeatureSplit, load_frontend, load_training_data
from ser.io import read_table
from ser.model import ModelConfig
from ser.normalise import normalise_split
from ser.params import Params, TrainParams, load_params
from ser.train import Training, TrainResult

FEATURES = REPO_ROOT / "data" / "features"  # the melspec stage's output
SPLIT = REPO_ROOT / "data" / "split.csv"
FOLD = 1
# The default when issue 13 was filed, as it may differ from params.yaml's: every version of every clip each
# epoch, 40 epochs, the one-cycle schedule peaking at 1e-3, the log-mel as the front end gives it (no
# normalisation; reports/pilots/ has how each later change was chosen).
OLD_RECIPE = {
    "versions_per_epoch": None,
    "versions_per_epoch_corpora": None,
    "epochs": 40,
    "average_last": 10,
    "lr": 1e-3,
    "normalise": "none",
}


def evenly_spaced_rows(split: FeatureSplit, column: str, n: int) -> FeatureSplit:
    """The rows whose `column` value is one of `n` values evenly spaced over its sorted distinct values (so every
    corpus and emotion keeps its share)."""
    chosen = evenly_spaced(sorted(set(split.table[column])), n)
    keep = split.table[column].isin(chosen).to_numpy()
    return FeatureSplit(features=split.features[keep], table=split.table[keep].reset_index(drop=True))


def subset(train: FeatureSplit, n_sources: int) -> FeatureSplit:
    """The versions of `n_sources` source clips, evenly spaced over the sorted source ids."""
    return evenly_spaced_rows(train, "source_clip_id", n_sources)


def validation_subset(val: FeatureSplit, share: float) -> FeatureSplit:
    """`share` of the validation clips, evenly spaced over the sorted clip ids."""
    return evenly_spaced_rows(val, "clip_id", max(1, round(share * len(val.table))))


def recipe_input(train: FeatureSplit, val: FeatureSplit, params: TrainParams) -> tuple[FeatureSplit, FeatureSplit]:
    """A recipe's training and validation clips normalised as its own `train.normalise` says, as the train
    stage normalises them."""
    return normalise_split(train, params.normalise), normalise_split(val, params.normalise)


def recipe_summary(name: str, params: TrainParams, result: TrainResult, target: float | None) -> dict:
    history = result.history
    final = selection_score(result.best_val, params.corpora)
    row = {
        "recipe": name,
        "versions_per_epoch": params.versions_per_epoch or "all",
        "versions_per_epoch_corpora": list(params.versions_per_epoch_corpora or []) or None,
        "epochs": params.epochs,
        "normalise": params.normalise,
        "steps": result.steps,
        "seconds": result.seconds,
        "final_val_score": final,
        "kept": "average" if result.averaged else f"epoch {result.best_epoch}",
    }
    if target is not None:  # the first epoch at the old default's final score, or the whole run if averaging got there
        reached = first_at(history, target)
        if reached is not None:
            row["seconds_to_target"] = float(history.loc[reached, "seconds"])
        elif final >= target:
            row["seconds_to_target"] = result.seconds
        else:
            row["seconds_to_target"] = None
    return row


def first_at(history: pd.DataFrame, target: float) -> Hashable | None:
    """The label of the first epoch of `history` whose validation score reaches `target`; None if none does."""
    reached = history.index[history["val_score"] >= target]
    return reached[0] if len(reached) else None


def whole_folds(old_dir: Path, new_dir: Path, corpora: Sequence[str]) -> list[dict]:
    """The same comparison on whole folds already trained (`<dir>/<k>/train.json` and `training.csv`, as
    `make cv-report` reads them), in epochs, which cost the same in both recipes when only the input's
    normalisation differs: for each fold in both, the epoch (all members counted, `run_epoch`) at which the new
    recipe's run first reaches the old recipe's final validation score, against the old run's epochs."""
    rows = []
    for fold in sorted(int(path.name) for path in Path(new_dir).iterdir() if (Path(old_dir) / path.name).is_dir()):
        old, new = Path(old_dir) / str(fold), Path(new_dir) / str(fold)
        target = selection_score(json.loads((old / "train.json").read_text())["val"], corpora)
        new_final = json.loads((new / "train.json").read_text())["val"]["score"]
        old_epochs = len(pd.read_csv(old / "training.csv"))
        new_history = pd.read_csv(new / "training.csv")
        reached = first_at(new_history, target)
        if reached is not None:
            epochs = int(new_history.loc[reached, "run_epoch"])
        elif new_final >= target:  # only the kept weights (an average, or the ensemble) got there
            epochs = len(new_history)
        else:
            epochs = None
        rows.append(
            {
                "fold": fold,
                "old_final_score": target,
                "new_final_score": new_final,
                "old_epochs": old_epochs,
                "new_epochs_to_old_score": epochs,
                "speedup": old_epochs / epochs if epochs else None,
            }
        )
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Time to the old default's validation score on whole folds.")
    parser.add_argument("old", type=Path, help="the old recipe's folds, e.g. reports/folds")
    parser.add_argument("new", type=Path, help="the new recipe's folds, e.g. reports/peak/folds")
    parser.add_argument("--params", type=Path, default=REPO_ROOT / "params.yaml", help="whose train.corpora score")
    args = parser.parse_args(argv)
    rows = whole_folds(args.old, args.new, load_params(args.params).train.corpora)
    columns = ["fold", "old_final_score", "new_final_score", "old_epochs", "new_epochs_to_old_score", "speedup"]
    print_table(f"time to the old recipe's final validation score: {args.new} against {args.old}", rows, columns)
    reached = [row for row in rows if row["new_epochs_to_old_score"]]
    if reached:
        total = sum(row["old_epochs"] for row in rows)
        new_epochs = sum(row["new_epochs_to_old_score"] for row in reached)
        print(
            f"over the {len(rows)} folds: {total} epochs of the old recipe; the new one reaches its score in "
            f"{len(reached)} of the {len(rows)} folds, after {new_epochs} epochs of those folds' "
            f"{sum(row['old_epochs'] for row in reached)}"
        )


def time_to_accuracy_section(params: Params, budget: Budget) -> dict:
    """Both recipes, one member each, from one seed, on `budget.tta_sources` training clips of fold FOLD (with
    their augmented copies) and the same share of its validation clips: validating every epoch then costs
    each recipe the share of its time it costs on the whole fold."""
    for path in (FEATURES, SPLIT):
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: missing; run `dvc repro melspec` (or `dvc pull`) first")
    frontend = load_frontend(FEATURES)
    train, val = load_training_data(FEATURES, read_table(SPLIT), FOLD, params.train.corpora)
    sources = train.table["source_clip_id"].nunique()
    train = subset(train, budget.tta_sources)
    val = validation_subset(val, train.table["source_clip_id"].nunique() / sources)
    config = ModelConfig.from_preset(params.model.size, frontend.melspec.n_mels, frontend.n_frames, len(EMOTIONS))
    device = torch.device("cpu")
    base = dataclasses.replace(params.train, members=1, processes=1)
    recipes = {"old default": dataclasses.replace(base, **OLD_RECIPE), "params.yaml": base}
    if budget.tta_epochs:
        recipes = {name: dataclasses.replace(p, epochs=budget.tta_epochs) for name, p in recipes.items()}
    trainings = {name: Training(*recipe_input(train, val, p), config, p, device) for name, p in recipes.items()}
    while not all(training.done for training in trainings.values()):  # epochs alternate: a, b, a, b, ...
        for training in trainings.values():
            if not training.done:
                training.epoch()
    results = {name: training.result() for name, training in trainings.items()}
    old = recipe_summary("old default", recipes["old default"], results["old default"], None)
    new = recipe_summary("params.yaml", recipes["params.yaml"], results["params.yaml"], old["final_val_score"])
    rows = [old, new]
    speedup = old["seconds"] / new["seconds_to_target"] if new["seconds_to_target"] else None
    print_table(
        f"3. time to accuracy, fold {FOLD}: {len(train.table)} training clips (versions) of "
        f"{train.table['source_clip_id'].nunique()} sources, {len(val.table)} validation clips",
        rows,
        [
            "recipe",
            "versions_per_epoch",
            "versions_per_epoch_corpora",
            "epochs",
            "normalise",
            "steps",
            "seconds",
            "final_val_score",
            "kept",
            "seconds_to_target",
        ],
    )
    print(
        "params.yaml's recipe reaches the old default's final validation score "
        + (f"{speedup:.2f}x sooner than the old default's run ends" if speedup else "not at all in its run")
    )
    return {
        "fold": FOLD,
        "train_clips": len(train.table),
        "sources": int(train.table["source_clip_id"].nunique()),
        "val_clips": len(val.table),
        "model_size": params.model.size,
        "rows": rows,
        "old_recipe": OLD_RECIPE,
        "speedup_to_old_score": speedup,
        "train_clips_per_s": {name: result.train_clips_per_s for name, result in results.items()},
        "note": (
            f"one member each, seed {base.seed}, on the CPU; their epochs alternate in one process; seconds count "
            "each recipe's own epochs (training steps and validation) and the final weight averaging; "
            "validation: the share of the fold's validation clips that the training clips are of its training "
            "clips; seconds_to_target: the first epoch whose validation score reaches the old default's final "
            "(kept) score; the speed-up is the old default's whole run over that"
        ),
    }


if __name__ == "__main__":
    main()
