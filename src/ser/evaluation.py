"""Scoring: batched class probabilities from a model, the probability table, and WA / UA / macro-F1 /
per-class recall per corpus."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

from ser.corpora import EMOTIONS

EVAL_BATCH = 256  # clips per forward pass when scoring: no gradients, so larger than training batches
# the key, beside the corpora, of a speaker-normalised model's scores with each clip normalised alone
PER_UTTERANCE = "per_utterance"
SILENT = "silent"  # the `predicted` value of a row that was not judged (a silent file or window)


def predict_proba(
    model: torch.nn.Module, features: np.ndarray, device: torch.device, batch_size: int = EVAL_BATCH
) -> np.ndarray:
    """Softmax probabilities (n_clips, n_classes) for log-mel features (n_clips, n_mels, n_frames)."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(features), batch_size):
            batch = torch.from_numpy(np.array(features[start : start + batch_size])).to(device)  # copy: writable
            out.append(torch.softmax(model(batch).float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(EMOTIONS)), np.float32)


def probability_table(probabilities: np.ndarray, labels: Sequence[str], decimals: int | None = None) -> pd.DataFrame:
    """Columns predicted, confidence and p_<label> (in label order), one row per row of `probabilities`
    (N, n_labels); a row of NaN (not judged) has predicted SILENT and NaN confidence. The table of the
    evaluate stage, of validation and of `ser predict`; the values keep the input's dtype, rounded to
    `decimals` if given."""
    p = np.asarray(probabilities).reshape(-1, len(labels))  # (N, n_labels)
    judged = ~np.isnan(p).any(axis=1)
    table = pd.DataFrame(
        {
            "predicted": np.where(judged, np.asarray(labels, dtype=object)[p.argmax(axis=1)], SILENT),
            "confidence": p.max(axis=1),
            **{f"p_{label}": p[:, i] for i, label in enumerate(labels)},
        }
    )
    return table if decimals is None else table.round(decimals)


def scores(actual: list[str] | np.ndarray, predicted: list[str] | np.ndarray) -> dict:
    """WA (accuracy), UA (balanced accuracy: mean recall over the classes present), macro-F1 over the
    classes present, recall of each present class, and the clip count."""
    actual, predicted = np.asarray(actual), np.asarray(predicted)
    present = [emotion for emotion in EMOTIONS if emotion in set(actual)]
    if not present:
        return {"clips": 0}
    recalls = recall_score(actual, predicted, labels=present, average=None, zero_division=0)
    return {
        "clips": len(actual),
        "wa": float(accuracy_score(actual, predicted)),
        "ua": float(np.mean(recalls)),  # = balanced_accuracy_score, without its warning for unseen predictions
        "macro_f1": float(f1_score(actual, predicted, labels=present, average="macro", zero_division=0)),
        "recall": {emotion: float(r) for emotion, r in zip(present, recalls, strict=True)},
    }


def scores_by_corpus(table: pd.DataFrame) -> dict:
    """`scores` for each corpus and for all clips together; `table` has columns corpus, actual, predicted."""
    result = {
        corpus: scores(group["actual"], group["predicted"]) for corpus, group in table.groupby("corpus", sort=True)
    }
    result["all"] = scores(table["actual"], table["predicted"])
    return result


HEADLINE: tuple[str, ...] = ("ua", "wa", "macro_f1")  # the scores a metrics file keeps, per corpus
TEST = "test"  # the key of the test scores in the metrics files (`dvc exp show`: test.ravdess.ua, ...)


def headline(per_corpus: dict[str, dict]) -> dict[str, dict[str, float]]:
    """`scores_by_corpus` cut to what `dvc exp show` and `dvc metrics diff` should show: UA, WA and macro-F1 of
    each corpus with clips. Clip counts and per-class recall go to `recall_table`."""
    return {corpus: {m: result[m] for m in HEADLINE} for corpus, result in per_corpus.items() if result["clips"]}


def recall_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per-class recall of a table with columns corpus, actual and predicted: one row per corpus (and "all")
    and emotion present, with its `label` (`<corpus> <emotion>`, for a bar chart), test clips and recall."""
    both = pd.concat([table, table.assign(corpus="all")], ignore_index=True)
    both = both.assign(hit=both["actual"] == both["predicted"])
    rows = both.groupby(["corpus", "actual"], sort=False)["hit"].agg(clips="size", recall="mean").reset_index()
    rows = rows.rename(columns={"actual": "emotion"})
    order = {emotion: index for index, emotion in enumerate(EMOTIONS)}
    rows = rows.assign(
        corpus_order=rows["corpus"].map(lambda c: (c == "all", c)), emotion_order=rows["emotion"].map(order)
    )
    rows = rows.sort_values(["corpus_order", "emotion_order"]).drop(columns=["corpus_order", "emotion_order"])
    rows.insert(2, "label", rows["corpus"] + " " + rows["emotion"])
    return rows.reset_index(drop=True)


def selection_score(per_corpus: dict[str, dict], corpora: Sequence[str]) -> float:
    """The validation score that picks the checkpoint: the mean UA of the training corpora (`corpora`), each
    weighing the same, so that the easy corpus (TESS, near 1.0) cannot outvote the hard ones. A corpus left
    out of training stays unseen: its validation clips are scored, never used to choose."""
    missing = [corpus for corpus in corpora if corpus not in per_corpus]
    if missing:
        raise ValueError(f"no validation clips of {', '.join(missing)}: nothing to choose the weights with")
    return float(np.mean([per_corpus[corpus]["ua"] for corpus in corpora]))


def confusion(actual: pd.Series, predicted: pd.Series) -> np.ndarray:
    """Counts (n_emotions, n_emotions): rows actual, columns predicted, in EMOTIONS order."""
    return confusion_matrix(actual, predicted, labels=list(EMOTIONS))


def confusion_by_corpus(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """`confusion` of each corpus of a table with columns corpus, actual and predicted, in corpus order."""
    return {corpus: confusion(rows["actual"], rows["predicted"]) for corpus, rows in table.groupby("corpus")}
