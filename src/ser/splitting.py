"""Speaker-independent splits: RAVDESS by actor (EmoBox folds), TESS by word; a pure function of the manifest."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ser.params import SplitParams

SPLITS: tuple[str, ...] = ("train", "val", "test")

# The six RAVDESS folds of the EmoBox benchmark (Ma et al., 2024): the test actors of each.
EMOBOX_FOLDS: dict[int, tuple[int, ...]] = {
    1: (1, 11, 20, 21),
    2: (4, 10, 12, 14),
    3: (8, 9, 19, 23),
    4: (3, 5, 7, 24),
    5: (2, 15, 16, 18),
    6: (6, 13, 17, 22),
}


class SplitError(ValueError):
    pass


def actor_name(number: int) -> str:
    return f"Actor_{number:02d}"


def ravdess_actor_splits(actors: pd.DataFrame, params: SplitParams) -> dict[str, str]:
    """Split RAVDESS actors: the fold's actors test, `val_actors` others (half male, half female) val.

    Args:
        actors: one row per actor present, columns `speaker` and `gender`.
    Returns:
        speaker -> split name.
    """
    if params.fold not in EMOBOX_FOLDS:
        raise SplitError(f"split.fold must be one of {sorted(EMOBOX_FOLDS)}, got {params.fold}")
    test = {actor_name(n) for n in EMOBOX_FOLDS[params.fold]}
    rest = actors[~actors["speaker"].isin(test)].sort_values("speaker")
    rng = np.random.default_rng(params.seed)
    val: list[str] = []
    for gender, count in (("male", (params.val_actors + 1) // 2), ("female", params.val_actors // 2)):
        pool = rest.loc[rest["gender"] == gender, "speaker"].to_list()
        if count > len(pool) - 1:
            raise SplitError(
                f"split.val_actors={params.val_actors} needs {count} {gender} actors besides the test fold "
                f"and at least one left for training; only {len(pool)} are present"
            )
        val.extend(rng.choice(pool, size=count, replace=False).tolist())
    return {
        speaker: "test" if speaker in test else "val" if speaker in val else "train" for speaker in actors["speaker"]
    }


def tess_word_splits(words: list[str], params: SplitParams) -> dict[str, str]:
    """Split TESS by word: the sorted words are dealt round-robin into six folds; fold `split.fold` is test,
    and as many words again, drawn by seed from the other folds, are val. A word is never in two splits.
    """
    words = sorted(set(words))
    n_folds = len(EMOBOX_FOLDS)
    test = {word for i, word in enumerate(words) if i % n_folds == params.fold - 1}
    rest = [word for word in words if word not in test]
    if len(rest) < 2:
        raise SplitError(f"TESS has {len(words)} distinct words: too few to split into train, val and test")
    n_val = min(len(test), len(rest) - 1)
    val = set(np.random.default_rng(params.seed).choice(rest, size=n_val, replace=False).tolist())
    return {word: "test" if word in test else "val" if word in val else "train" for word in words}


def assign_splits(manifest: pd.DataFrame, params: SplitParams) -> pd.DataFrame:
    """The manifest with a `split` column: RAVDESS by actor, TESS by word. Deterministic for fixed params."""
    table = manifest.copy()
    table["split"] = ""
    is_ravdess = table["corpus"] == "ravdess"
    if is_ravdess.any():
        actors = table.loc[is_ravdess, ["speaker", "gender"]].drop_duplicates("speaker")
        table.loc[is_ravdess, "split"] = table.loc[is_ravdess, "speaker"].map(ravdess_actor_splits(actors, params))
    is_tess = table["corpus"] == "tess"
    if is_tess.any():
        words = table.loc[is_tess, "statement"].to_list()
        table.loc[is_tess, "split"] = table.loc[is_tess, "statement"].map(tess_word_splits(words, params))
    unknown = sorted(set(table["corpus"]) - {"ravdess", "tess"})
    if unknown:
        raise SplitError(f"the manifest has clips of unknown corpora {unknown}")
    return table


def split_summary(table: pd.DataFrame) -> dict:
    """Clip counts per corpus and split, and who is in which split (for metrics/ and the log)."""
    counts = table.groupby(["corpus", "split"]).size()
    summary: dict = {
        corpus: {split: int(counts.get((corpus, split), 0)) for split in SPLITS}
        for corpus in sorted(table["corpus"].unique())
    }
    summary["total"] = {split: int((table["split"] == split).sum()) for split in SPLITS}
    ravdess = table[table["corpus"] == "ravdess"]
    summary["ravdess_actors"] = {
        split: sorted(ravdess.loc[ravdess["split"] == split, "speaker"].unique().tolist()) for split in SPLITS
    }
    return summary
