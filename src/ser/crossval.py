"""Cross-validation results: the folds' test scores gathered per corpus, with their mean and spread."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ser.errors import UserError
from ser.evaluation import PER_UTTERANCE
from ser.io import read_table

METRICS: tuple[str, ...] = ("ua", "wa", "macro_f1")
NAMES = {"ua": "UA", "wa": "WA", "macro_f1": "macro-F1"}
TABLES: tuple[str, ...] = ("predictions.csv", "training.csv")  # what each fold's stages write to its plots folder


class FoldMissingError(UserError, FileNotFoundError):
    """A fold listed in cv.folds whose results are not there."""


def read_fold_results(
    metrics_dir: Path, plots_dir: Path, folds: Sequence[int]
) -> tuple[dict[int, dict], pd.DataFrame, pd.DataFrame]:
    """Each listed fold's `evaluate.json` (from `metrics_dir/<fold>/`), and all their test predictions and
    training histories (`plots_dir/<fold>/predictions.csv`, `training.csv`) each in one table with a `fold`
    column; the histories' `cv_epoch` counts epochs over the folds one after another. Only the listed folds
    are read: another fold's files left in the workspace by an earlier run are never counted."""
    results, predictions, histories = {}, [], []
    for fold in folds:
        paths = [metrics_dir / str(fold) / "evaluate.json", *(plots_dir / str(fold) / n for n in TABLES)]
        for path in paths:
            if not path.is_file():
                raise FoldMissingError(
                    f"{path}: missing, though cv.folds lists fold {fold}; train and evaluate that fold first"
                )
        results[fold] = json.loads(paths[0].read_text())
        table = read_table(paths[1])
        if "fold" in table and not (table["fold"] == fold).all():
            raise ValueError(f"{paths[1]}: holds predictions of fold(s) {sorted(set(table['fold']))}, not {fold}")
        predictions.append(table.assign(fold=fold))
        histories.append(read_table(paths[2]).assign(fold=fold))
    history = pd.concat(histories, ignore_index=True)
    history["cv_epoch"] = np.arange(1, len(history) + 1)
    return results, pd.concat(predictions, ignore_index=True), history


def aggregate(results: dict[int, dict]) -> dict:
    """Per corpus ("all" last): each fold's clips, UA, WA and macro-F1, and over the folds each metric's mean
    and standard deviation (sample, ddof=1; None for a single fold), and the total clip count. Folds of a
    speaker-normalised model also have their per-clip-normalised scores aggregated, under PER_UTTERANCE."""
    scored = {fold: {k: v for k, v in result.items() if k != PER_UTTERANCE} for fold, result in results.items()}
    corpora = [*sorted({name for result in scored.values() for name in result if name != "all"}), "all"]
    summary: dict = {"folds": sorted(results)}
    for corpus in corpora:
        per_fold = {
            str(fold): {"clips": result[corpus]["clips"], **{m: result[corpus][m] for m in METRICS}}
            for fold, result in sorted(scored.items())
            if corpus in result and result[corpus]["clips"]
        }
        entry: dict = {"folds": len(per_fold), "clips": sum(scores["clips"] for scores in per_fold.values())}
        for metric in METRICS:
            values = np.array([scores[metric] for scores in per_fold.values()])
            entry[metric] = {
                "mean": float(values.mean()) if len(values) else None,
                "std": float(values.std(ddof=1)) if len(values) > 1 else None,
            }
        entry["per_fold"] = per_fold
        summary[corpus] = entry
    alone = {fold: result[PER_UTTERANCE] for fold, result in results.items() if PER_UTTERANCE in result}
    if alone:
        summary[PER_UTTERANCE] = {k: v for k, v in aggregate(alone).items() if k != "folds"}
    return summary


BASELINE = "baseline"  # the key of the reference row's figures in the cv summary


def baseline_means(summary: dict) -> dict:
    """The baseline's summary (aggregate's layout) without its per-fold figures: per corpus the folds, the clips,
    and each metric's mean and std."""
    return {
        corpus: {"folds": entry["folds"], "clips": entry["clips"], **{metric: entry[metric] for metric in METRICS}}
        for corpus, entry in summary.items()
        if corpus != "folds"
    }


def summary_lines(summary: dict) -> list[str]:
    """One line per corpus: mean ± std of UA, WA and macro-F1 over the folds."""

    def shown(stats: dict) -> str:
        mean, std = stats["mean"], stats["std"]
        return "n/a" if mean is None else f"{mean:.3f}" + ("" if std is None else f" ± {std:.3f}")

    lines = [
        f"{corpus}: {entry['folds']} fold(s), {entry['clips']} test clips; "
        + ", ".join(f"{NAMES[metric]} {shown(entry[metric])}" for metric in METRICS)
        for corpus, entry in summary.items()
        if corpus not in ("folds", PER_UTTERANCE, BASELINE)
    ]
    if PER_UTTERANCE in summary:
        lines += [f"each clip normalised alone: {line}" for line in summary_lines(summary[PER_UTTERANCE])]
    if BASELINE in summary:
        lines += [f"baseline (eGeMAPS + SVM): {line}" for line in summary_lines(summary[BASELINE])]
    return lines
