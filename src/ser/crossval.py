"""Cross-validation results: the folds' test scores gathered per corpus, with their mean and spread."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ser.errors import UserError
from ser.evaluation import HEADLINE, PER_UTTERANCE, TEST, scores_by_corpus, selection_score
from ser.io import read_table

METRICS = HEADLINE
VAL = "val"  # the key, in each fold's train.json and in the cv summary, of the validation figures that select
NAMES = {"ua": "UA", "wa": "WA", "macro_f1": "macro-F1"}
TABLES: tuple[str, ...] = ("predictions.csv", "training.csv")  # what each fold's stages write to its plots folder


class FoldMissingError(UserError, FileNotFoundError):
    """A fold listed in cv.folds whose results are not there."""


def read_fold_results(
    metrics_dir: Path, plots_dir: Path, folds: Sequence[int]
) -> tuple[dict[int, dict], pd.DataFrame, pd.DataFrame]:
    """Each listed fold's test scores per corpus (`scores_by_corpus` of its `plots_dir/<fold>/predictions.csv`,
    and, for a speaker-normalised model, its per-clip-normalised scores from `metrics_dir/<fold>/evaluate.json`
    under PER_UTTERANCE), and all their test predictions and training histories (`predictions.csv`,
    `training.csv`) each in one table with a `fold` column; the histories' `cv_epoch` counts epochs over the
    folds one after another. Only the listed folds are read: another fold's files left in the workspace by an
    earlier run are never counted."""
    results, predictions, histories = {}, [], []
    for fold in folds:
        paths = [metrics_dir / str(fold) / "evaluate.json", *(plots_dir / str(fold) / n for n in TABLES)]
        for path in paths:
            if not path.is_file():
                raise FoldMissingError(
                    f"{path}: missing, though cv.folds lists fold {fold}; train and evaluate that fold first"
                )
        table = read_table(paths[1])
        if "fold" in table and not (table["fold"] == fold).all():
            raise ValueError(f"{paths[1]}: holds predictions of fold(s) {sorted(set(table['fold']))}, not {fold}")
        results[fold] = scores_by_corpus(table)
        alone = json.loads(paths[0].read_text()).get(PER_UTTERANCE)
        if alone:  # headline scores: the clips are those of the fold's own scores
            results[fold][PER_UTTERANCE] = {
                corpus: {**scores, "clips": results[fold][corpus]["clips"]} for corpus, scores in alone.items()
            }
        predictions.append(table.assign(fold=fold))
        histories.append(read_table(paths[2]).assign(fold=fold))
    history = pd.concat(histories, ignore_index=True)
    history["cv_epoch"] = np.arange(1, len(history) + 1)
    return results, pd.concat(predictions, ignore_index=True), history


def per_fold_table(results: dict[int, dict]) -> pd.DataFrame:
    """One row per fold and corpus with clips ("all" last in each fold): fold, corpus, its label (`fold <k>
    <corpus>`, for a bar chart), clips, UA, WA, macro-F1."""
    rows = [
        {
            "fold": fold,
            "corpus": corpus,
            "label": f"fold {fold} {corpus}",
            "clips": scores["clips"],
            **{m: scores.get(m) for m in METRICS},  # per-utterance folds: UA only
        }
        for fold, result in sorted(results.items())
        for corpus, scores in sorted(result.items(), key=lambda item: (item[0] == "all", item[0]))
        if corpus != PER_UTTERANCE and scores["clips"]
    ]
    return pd.DataFrame(rows, columns=["fold", "corpus", "label", "clips", *METRICS])


def means(table: pd.DataFrame, metrics: Sequence[str] = METRICS) -> dict[str, dict]:
    """Per corpus of a `per_fold_table` ("all" last): the mean of each of `metrics` over the folds with clips of
    the corpus, and after UA its sample standard deviation (`ua_std`, ddof=1; None for a single fold), the
    spread a change has to beat."""
    summary: dict = {}
    for corpus, rows in sorted(table.groupby("corpus"), key=lambda item: (item[0] == "all", item[0])):
        entry: dict = {}
        for metric in metrics:
            entry[metric] = float(rows[metric].mean())
            if metric == "ua":
                entry["ua_std"] = float(rows["ua"].std(ddof=1)) if len(rows) > 1 else None
        summary[corpus] = entry
    return summary


def read_validation(metrics_dir: Path, folds: Sequence[int]) -> dict[int, dict]:
    """Each listed fold's validation figures, as its train stage wrote them under VAL in
    `metrics_dir/<fold>/train.json`: the selection score (from its training corpora's UA, for a train.json of
    the layout before it carried its score), and UA per corpus."""
    validation = {}
    for fold in folds:
        path = metrics_dir / str(fold) / "train.json"
        if not path.is_file():
            raise FoldMissingError(f"{path}: missing, though cv.folds lists fold {fold}; train that fold first")
        trained = json.loads(path.read_text())
        val = trained[VAL]
        if "score" not in val:  # written before train.json carried its score: the folds committed under reports/
            val = {"score": selection_score(val, trained["corpora"]), **val}
        validation[fold] = val
    return validation


def validation_means(validation: dict[int, dict]) -> dict:
    """The means over the folds of `read_validation`'s figures: the selection score, then UA per corpus (over
    the folds that have the corpus), in the folds' order of corpora."""
    scores = [entry["score"] for entry in validation.values()]
    corpora = list(dict.fromkeys(name for entry in validation.values() for name in entry if name != "score"))
    return {
        "score": float(np.mean(scores)),
        **{name: {"ua": float(np.mean([e[name]["ua"] for e in validation.values() if name in e]))} for name in corpora},
    }


def aggregate(results: dict[int, dict], validation: dict[int, dict] | None = None) -> dict:
    """The summary that `dvc exp show` reads, the only metrics file of a run besides dvclive's: per corpus,
    under TEST, the means over the folds of UA (with its spread), WA and macro-F1 (`means`); under VAL, given
    the folds' `validation`, the means of the figures that selected (`validation_means`); for a
    speaker-normalised model, the per-clip-normalised UA under PER_UTTERANCE; then the folds. The folds' own
    figures are `per_fold_table`'s."""
    summary: dict = {TEST: means(per_fold_table(results))}
    if validation is not None:
        summary[VAL] = validation_means(validation)
    alone = {fold: result[PER_UTTERANCE] for fold, result in results.items() if PER_UTTERANCE in result}
    if alone:
        summary[PER_UTTERANCE] = means(per_fold_table(alone), ("ua",))
    summary["folds"] = sorted(results)
    return summary


BASELINE = "baseline"  # the key of the reference row's figures in the cv summary


def summary_lines(summary: dict, per_fold: pd.DataFrame) -> list[str]:
    """One line per corpus: the means over the folds of UA (± its std), WA and macro-F1, and the folds' clips."""

    def shown(scores: dict, metric: str) -> str:
        std = scores.get(f"{metric}_std")
        return f"{scores[metric]:.3f}" + ("" if std is None else f" ± {std:.3f}")

    def lines(means: dict) -> list[str]:
        counted = per_fold.groupby("corpus")["clips"].agg(["size", "sum"])
        return [
            f"{corpus}: {counted.loc[corpus, 'size']} fold(s), {counted.loc[corpus, 'sum']} test clips; "
            + ", ".join(f"{NAMES[metric]} {shown(scores, metric)}" for metric in METRICS if metric in scores)
            for corpus, scores in means.items()
        ]

    out = lines(summary[TEST])
    if PER_UTTERANCE in summary:
        out += [f"each clip normalised alone: {line}" for line in lines(summary[PER_UTTERANCE])]
    return out
