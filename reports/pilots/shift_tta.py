"""Test-time averaging over shifted windows, on validation clips only (a measurement for
reports/pilots/README.md; never test): each fold's saved model scores its validation clips as they are, and with
its probabilities averaged over the clip's log-mel shifted by SHIFTS frames.

Run in a clone whose workspace holds the feature store, naming each fold's model bundle:
`python reports/pilots/shift_tta.py 1=path/to/model.pt 2=... [--out shift_tta.json]`.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from ser.bundle import load_bundle
from ser.evaluation import predict_proba, probability_table, scores_by_corpus, selection_score
from ser.features import load_fold
from ser.io import read_table
from ser.normalise import normalise_split

SHIFTS = (-16, -8, 0, 8, 16)  # frames of 16 ms: up to 0.256 s either way, training's augment.shift_s range


def shifted(features: np.ndarray, frames: int) -> np.ndarray:
    """(N, n_mels, n_frames) moved later by `frames` (earlier if negative); vacated frames take each clip's floor."""
    if frames == 0:
        return features
    out = np.empty_like(features)
    out[...] = features.min(axis=(1, 2), keepdims=True)
    if frames > 0:
        out[..., frames:] = features[..., :-frames]
    else:
        out[..., :frames] = features[..., -frames:]
    return out


def fold_scores(fold: int, model: Path) -> dict:
    bundle = load_bundle(model, "cpu")
    val = normalise_split(
        load_fold(Path("data/features"), read_table(Path("data/split.csv")), fold, "val"), bundle.normalise
    )
    x = np.asarray(val.features, dtype=np.float32)
    corpora = bundle.info["corpora"]
    probabilities = {shift: predict_proba(bundle.model, shifted(x, shift), "cpu") for shift in SHIFTS}
    result = {}
    for name, p in {"unshifted": probabilities[0], "averaged": np.mean(list(probabilities.values()), axis=0)}.items():
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
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    folds = {int(k): Path(v) for k, v in (pair.split("=", 1) for pair in args.models)}
    results = {fold: fold_scores(fold, model) for fold, model in sorted(folds.items())}
    for fold, result in results.items():
        print(
            f"fold {fold}: "
            + "; ".join(f"{n} " + " ".join(f"{k} {v:.3f}" for k, v in r.items()) for n, r in result.items())
        )
    means = {
        name: {key: float(np.mean([r[name][key] for r in results.values()])) for key in results[min(results)][name]}
        for name in ("unshifted", "averaged")
    }
    for name, mean in means.items():
        print(f"mean of {len(results)} folds, {name}: " + " ".join(f"{k} {v:.4f}" for k, v in mean.items()))
    if args.out:
        args.out.write_text(json.dumps({"shifts": SHIFTS, "folds": results, "mean": means}, indent=2) + "\n")


if __name__ == "__main__":
    main()
