"""Test-time averaging over shifted windows, on validation clips only (a measurement for
reports/pilots/README.md; never test): each fold's saved model scores its validation clips as they are, and with
its probabilities averaged over the clip's log-mel shifted by SHIFTS frames (and, with --bands, each of those
also shifted by BANDS mel bands).

Run in a clone whose workspace holds the feature store, naming each fold's model bundle:
`python reports/pilots/shift_tta.py 1=path/to/model.pt 2=... [--bands] [--out shift_tta.json]`.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ser.bundle import load_bundle
from ser.evaluation import predict_proba, probability_table, scores_by_corpus, selection_score
from ser.features import load_fold
from ser.io import read_table
from ser.normalise import normalise_split
from ser.tta import shifted

SHIFTS = (-16, -8, 0, 8, 16)  # frames of 16 ms: up to 0.256 s either way, training's augment.shift_s range
BANDS = (-1, 0, 1)  # mel bands: about a semitone between 1 and 3 kHz


def moved(features: np.ndarray, frames: int, bands: int) -> np.ndarray:
    """(N, n_mels, n_frames) moved `frames` later and `bands` higher by ser.tta.shifted (the band shift on the
    transposed log-mel), what is vacated taking each clip's floor."""
    x = shifted(torch.from_numpy(features), frames)
    return shifted(x.transpose(1, 2), bands).transpose(1, 2).numpy()


def fold_scores(fold: int, model: Path, bands: bool) -> dict:
    bundle = load_bundle(model, "cpu")
    val = normalise_split(
        load_fold(Path("data/features"), read_table(Path("data/split.csv")), fold, "val"), bundle.normalise
    )
    x = np.asarray(val.features, dtype=np.float32)
    corpora = bundle.info["corpora"]
    probabilities = {
        (shift, band): predict_proba(bundle.model, moved(x, shift, band), "cpu")
        for shift in SHIFTS
        for band in (BANDS if bands else (0,))
    }
    views = {"unshifted": probabilities[0, 0], "averaged": np.mean([probabilities[s, 0] for s in SHIFTS], axis=0)}
    if bands:
        views["with bands"] = np.mean(list(probabilities.values()), axis=0)
    result = {}
    for name, p in views.items():
        table = probability_table(p, bundle.labels).assign(
            corpus=val.table["corpus"].to_numpy(), actual=val.table["emotion"].to_numpy()
        )
        per_corpus = scores_by_corpus(table)
        result[name] = {"score": selection_score(per_corpus, corpora)} | {
            corpus: per_corpus[corpus]["ua"] for corpus in corpora
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="fold=model.pt")
    parser.add_argument("--bands", action="store_true", help="also average over BANDS mel-band shifts")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    folds = {int(k): Path(v) for k, v in (pair.split("=", 1) for pair in args.models)}
    results = {fold: fold_scores(fold, model, args.bands) for fold, model in sorted(folds.items())}
    for fold, result in results.items():
        print(
            f"fold {fold}: "
            + "; ".join(f"{n} " + " ".join(f"{k} {v:.3f}" for k, v in r.items()) for n, r in result.items())
        )
    means = {
        name: {key: float(np.mean([r[name][key] for r in results.values()])) for key in results[min(results)][name]}
        for name in results[min(results)]
    }
    for name, mean in means.items():
        print(f"mean of {len(results)} folds, {name}: " + " ".join(f"{k} {v:.4f}" for k, v in mean.items()))
    if args.out:
        args.out.write_text(
            json.dumps(
                {"shifts": SHIFTS, "bands": BANDS if args.bands else None, "folds": results, "mean": means}, indent=2
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
