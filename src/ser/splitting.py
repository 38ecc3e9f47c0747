"""Speaker-independent cross-validation: each clip's role (train / val / test) in every fold, a pure function
of the manifest and the seed.

Each corpus deals its groups (speakers; TESS: words) into N_FOLDS folds (`Corpus.folds`). In fold k the
groups of fold k test; as many other groups, half of each sex where the corpus has both, drawn by seed,
validate; the rest train. Over the folds every group is tested exactly once, and no group has two roles in
one fold.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from ser.corpora import CORPORA, N_FOLDS
from ser.errors import UserError
from ser.params import SplitParams

ROLES: tuple[str, ...] = ("train", "val", "test")
FOLDS: tuple[int, ...] = tuple(range(1, N_FOLDS + 1))


class SplitError(UserError, ValueError):
    pass


def role_column(fold: int) -> str:
    """The column of the split table holding each clip's role in `fold`."""
    if fold not in FOLDS:
        raise SplitError(f"fold {fold} does not exist: the folds are {FOLDS[0]}-{FOLDS[-1]}")
    return f"fold_{fold}"


def trains_in_some_fold(split_table: pd.DataFrame) -> pd.Series:
    """Whether each clip of the split table trains in at least one fold (those are the clips augmented)."""
    return (split_table[[role_column(fold) for fold in FOLDS]] == "train").any(axis=1)


def draw_validation(groups: pd.DataFrame, count: int, rng: np.random.Generator) -> list[str]:
    """`count` of the candidate `groups` (columns group, gender), half male and half female (the odd one
    male) where both sexes are present, else all of the one present; at least one of each sex is left over."""
    pools = {gender: sorted(rows["group"]) for gender, rows in groups.groupby("gender")}
    shares = dict.fromkeys(pools, count) if len(pools) == 1 else {"male": (count + 1) // 2, "female": count // 2}
    drawn: list[str] = []
    for gender, share in shares.items():
        pool = pools.get(gender, [])
        if share > len(pool) - 1:
            raise SplitError(
                f"{share} {gender} validation groups are needed and at least one more for training, but only "
                f"{len(pool)} are left besides the test fold; fetch more of the corpus"
            )
        drawn += rng.choice(pool, size=share, replace=False).tolist()
    return drawn


def corpus_roles(clips: pd.DataFrame, corpus: str, fold: int, seed: int) -> pd.Series:
    """The role of each clip of one corpus in `fold` (index: the clips')."""
    spec = CORPORA[corpus]
    groups = clips[[spec.fold_by, "gender"]].drop_duplicates(spec.fold_by).set_axis(["group", "gender"], axis=1)
    test_fold = spec.folds(groups["group"])
    test = {group for group, k in test_fold.items() if k == fold}
    rest = groups[~groups["group"].isin(test)]
    rng = np.random.default_rng([seed, fold, zlib.crc32(corpus.encode())])
    try:
        val = set(draw_validation(rest, len(test), rng)) if test else set()
    except SplitError as error:
        raise SplitError(f"{corpus}, fold {fold}: {error}") from None
    roles = {group: "test" if group in test else "val" if group in val else "train" for group in groups["group"]}
    return clips[spec.fold_by].map(roles)


def assign_roles(manifest: pd.DataFrame, params: SplitParams) -> pd.DataFrame:
    """The manifest with one column per fold (`role_column`) holding each clip's role in it."""
    unknown = sorted(set(manifest["corpus"]) - set(CORPORA))
    if unknown:
        raise SplitError(f"the manifest has clips of unknown corpora {unknown}; known: {sorted(CORPORA)}")
    table = manifest.copy()
    for fold in FOLDS:
        roles = pd.Series("", index=table.index, dtype=object)
        for corpus, clips in table.groupby("corpus"):
            roles[clips.index] = corpus_roles(clips, corpus, fold, params.seed)
        table[role_column(fold)] = roles
    return table


def fold_clips(split_table: pd.DataFrame, fold: int, role: str, corpora: list[str] | None = None) -> pd.DataFrame:
    """The rows of the split table with `role` in `fold`, of `corpora` only if given."""
    rows = split_table[split_table[role_column(fold)] == role]
    return rows if corpora is None else rows[rows["corpus"].isin(corpora)]


def split_summary(table: pd.DataFrame) -> dict:
    """Per fold and corpus: clips and groups (speakers; TESS: words) in each role, for metrics/ and the log."""
    summary: dict = {}
    for fold in FOLDS:
        column = role_column(fold)
        summary[str(fold)] = {
            corpus: {
                **{role: int((clips[column] == role).sum()) for role in ROLES},
                **{f"{role}_groups": int(clips.loc[clips[column] == role, by].nunique()) for role in ROLES},
            }
            for corpus, clips in table.groupby("corpus")
            for by in [CORPORA[corpus].fold_by]
        }
    return summary


def tested_groups(table: pd.DataFrame, fold: int) -> dict[str, list[str]]:
    """Who (what) is tested in `fold`, per corpus: the values of each corpus's `fold_by` column."""
    rows = table[table[role_column(fold)] == "test"]
    return {corpus: sorted(clips[CORPORA[corpus].fold_by].unique()) for corpus, clips in rows.groupby("corpus")}
