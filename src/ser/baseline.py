"""The reference row: openSMILE's 88 eGeMAPS functionals of each clip (ser.egemaps), each speaker's features
standardised over that speaker's own clips (as ser.normalise does the model's input), and a support vector machine
(scikit-learn's SVC on standardised features, classes balanced) whose C validation chooses, on the same
folds as the model. What the deep model adds is what it scores above this."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from ser.corpora import SPEAKER
from ser.egemaps import ID_COLUMNS
from ser.evaluation import scores_by_corpus, selection_score
from ser.params import BaselineParams
from ser.splitting import fold_clips


def speaker_standardised(table: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """The `columns` of the clips of `table`, each speaker's z-scored over that speaker's clips here."""
    x = table[list(columns)].to_numpy(dtype=np.float64)
    out = np.empty_like(x)
    for rows in table.reset_index(drop=True).groupby(list(SPEAKER), sort=False).indices.values():
        block = x[rows]
        out[rows] = (block - block.mean(axis=0)) / np.maximum(block.std(axis=0), 1e-8)
    return out


def fit_and_test(
    features: pd.DataFrame, split_table: pd.DataFrame, fold: int, corpora: Sequence[str], params: BaselineParams
) -> tuple[pd.DataFrame, dict]:
    """For one fold: an SVC fitted to the training clips of `corpora` for each C of `params.c`; the C whose
    validation score (mean UA over `corpora`, as the model is selected) is highest predicts the test clips.
    (the test table: ID_COLUMNS as clip_id, corpus, speaker, actual, predicted; and what validation chose)."""
    columns = [c for c in features.columns if c not in ID_COLUMNS]
    indexed = features.set_index("clip_id")

    def role(name: str, only: Sequence[str] | None = None) -> pd.DataFrame:
        ids = fold_clips(split_table, fold, name, list(only) if only is not None else None)["clip_id"]
        return indexed.loc[ids].reset_index()

    train, val, test = role("train", corpora), role("val"), role("test")
    x_train, x_val, x_test = (speaker_standardised(part, columns) for part in (train, val, test))
    best = None
    for c in params.c:
        model = make_pipeline(StandardScaler(), SVC(C=c, kernel="rbf", class_weight="balanced"))
        model.fit(x_train, train["emotion"])
        judged = val.assign(actual=val["emotion"], predicted=model.predict(x_val))
        score = selection_score(scores_by_corpus(judged), corpora)
        if best is None or score > best[0]:
            best = (score, c, model)
    score, c, model = best
    table = test[["clip_id", "corpus", "speaker"]].assign(actual=test["emotion"], predicted=model.predict(x_test))
    return table, {"c": c, "val_score": score}
