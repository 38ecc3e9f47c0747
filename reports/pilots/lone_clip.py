"""How a speaker-normalised model scores validation clips heard alone, under stand-ins for the speaker's
statistics (a measurement for reports/pilots/README.md; validation clips only, never test).

Run in a clone whose workspace holds a fold's speaker-normalised model and the feature store (after
`dvc exp run -S train.normalise=speaker -S 'cv.folds=[k]'`): `python reports/pilots/lone_clip.py k`.
"""

import sys
from pathlib import Path

import numpy as np

from ser.bundle import load_bundle
from ser.corpora import EMOTIONS, SPEAKER
from ser.evaluation import predict_proba, probability_table, scores_by_corpus, selection_score
from ser.features import load_fold
from ser.io import read_table
from ser.normalise import BandStats, band_stats, normalise_split, standardise


def main(fold: int) -> None:
    bundle = load_bundle(Path("data/models") / str(fold) / "model.pt", "cpu")
    split = read_table(Path("data/split.csv"))
    val = load_fold(Path("data/features"), split, fold, "val")
    train = load_fold(Path("data/features"), split, fold, "train", bundle.info["corpora"])
    originals = ~train.table["prepared"].astype(bool).to_numpy()
    x_train, speakers = np.asarray(train.features)[originals], train.table[originals].reset_index(drop=True)
    # every training speaker's BandStats; their means stand in for an unknown speaker's
    stats = [band_stats(x_train[np.asarray(rows)]) for rows in speakers.groupby(list(SPEAKER)).groups.values()]
    mean, std = np.mean([s.mean for s in stats], axis=0), np.mean([s.std for s in stats], axis=0)  # (n_mels,)
    x_val = np.asarray(val.features, dtype=np.float32)  # (N, n_mels, n_frames) dB
    level = x_val.mean(axis=(1, 2), keepdims=True) - mean.mean()  # (N, 1, 1): each clip's gain against theirs
    candidates = {
        "speaker (as trained)": normalise_split(val, "speaker").features,
        "utterance (ser predict's lone clip)": normalise_split(val, "utterance").features,
        "training speakers' mean stats": standardise(x_val, BandStats(mean, std)),
        "the same, clip level removed": standardise(x_val - level, BandStats(mean, std)),
    }
    print(f"fold {fold}, validation clips, each scored with the statistics named (score over {bundle.info['corpora']})")
    for name, features in candidates.items():
        probabilities = predict_proba(bundle.model, features, "cpu")
        table = probability_table(probabilities, EMOTIONS).assign(
            corpus=val.table["corpus"].to_numpy(), actual=val.table["emotion"].to_numpy()
        )
        results = scores_by_corpus(table)
        ua = " ".join(f"{corpus} {result['ua']:.3f}" for corpus, result in results.items())
        print(f"{name:38s} score {selection_score(results, bundle.info['corpora']):.3f}  UA {ua}")


if __name__ == "__main__":
    main(int(sys.argv[1]))
