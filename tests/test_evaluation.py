"""Scores: known answers for WA, UA and macro-F1, per corpus and together."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from ser.evaluation import confusion, headline, predict_proba, recall_table, scores, scores_by_corpus


def test_perfect_predictions_score_one_everywhere():
    labels = ["angry", "sad", "sad", "calm"]
    result = scores(labels, labels)
    assert result["clips"] == 4
    assert result["wa"] == result["ua"] == result["macro_f1"] == 1.0
    assert result["recall"] == {"calm": 1.0, "sad": 1.0, "angry": 1.0}


def test_ua_weights_classes_equally_and_wa_weights_clips_equally():
    actual = ["sad"] * 8 + ["angry"] * 2
    predicted = ["sad"] * 10  # always the majority class
    result = scores(actual, predicted)
    assert result["wa"] == pytest.approx(0.8)
    assert result["ua"] == pytest.approx(0.5)  # recall 1 for sad, 0 for angry
    assert result["ua"] == pytest.approx(balanced_accuracy_score(actual, predicted))
    assert result["macro_f1"] == pytest.approx((2 * 0.8 / 1.8 + 0.0) / 2)
    assert result["recall"] == {"sad": 1.0, "angry": 0.0}


def test_classes_absent_from_the_truth_do_not_dilute_ua():
    # TESS has no "calm": predicting it is an error, but it is not a class to average over.
    result = scores(["happy", "happy", "sad", "sad"], ["calm", "happy", "sad", "sad"])
    assert set(result["recall"]) == {"happy", "sad"}
    assert result["ua"] == pytest.approx((0.5 + 1.0) / 2)


def test_scores_by_corpus_reports_each_corpus_and_all():
    table = pd.DataFrame(
        {
            "corpus": ["ravdess", "ravdess", "tess", "tess", "tess"],
            "actual": ["calm", "sad", "sad", "angry", "angry"],
            "predicted": ["calm", "calm", "sad", "angry", "sad"],
        }
    )
    result = scores_by_corpus(table)
    assert set(result) == {"ravdess", "tess", "all"}
    assert result["ravdess"]["clips"] == 2 and result["ravdess"]["wa"] == 0.5
    assert result["tess"]["wa"] == pytest.approx(2 / 3)
    assert result["all"]["clips"] == 5 and result["all"]["wa"] == pytest.approx(3 / 5)


def test_the_headline_keeps_three_scores_per_corpus_and_the_recall_table_the_detail():
    table = pd.DataFrame(
        {
            "corpus": ["ravdess", "ravdess", "ravdess", "tess", "tess"],
            "actual": ["sad", "calm", "sad", "angry", "angry"],
            "predicted": ["calm", "calm", "sad", "angry", "sad"],
        }
    )
    result = scores_by_corpus(table)
    shown = headline(result)
    assert list(shown) == ["ravdess", "tess", "all"]
    assert all(list(scores) == ["ua", "wa", "macro_f1"] for scores in shown.values())
    assert shown["ravdess"]["ua"] == result["ravdess"]["ua"] == pytest.approx(0.75)  # calm 1, sad 1/2
    recall = recall_table(table)
    assert recall[["corpus", "emotion", "clips"]].values.tolist() == [
        ["ravdess", "calm", 1],
        ["ravdess", "sad", 2],
        ["tess", "angry", 2],
        ["all", "calm", 1],  # corpora in name order, "all" last; emotions in EMOTIONS order
        ["all", "sad", 2],
        ["all", "angry", 2],
    ]
    assert recall["recall"].tolist() == [1.0, 0.5, 0.5, 1.0, 0.5, 0.5]
    assert recall["label"].iloc[1] == "ravdess sad"
    for corpus, rows in recall.groupby("corpus"):  # the same recalls as the scores
        assert dict(zip(rows["emotion"], rows["recall"], strict=True)) == pytest.approx(result[corpus]["recall"])


def test_confusion_counts_rows_actual_columns_predicted_in_label_order():
    matrix = confusion(pd.Series(["neutral", "calm", "calm"]), pd.Series(["neutral", "neutral", "calm"]))
    assert matrix.shape == (8, 8)
    assert matrix[0, 0] == 1 and matrix[1, 0] == 1 and matrix[1, 1] == 1 and matrix.sum() == 3


def test_predict_proba_batches_give_the_same_probabilities():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 5, 8))
    features = np.random.default_rng(0).standard_normal((7, 4, 5)).astype(np.float32)
    whole = predict_proba(model, features, torch.device("cpu"), batch_size=100)
    in_twos = predict_proba(model, features, torch.device("cpu"), batch_size=2)
    assert whole.shape == (7, 8)
    assert np.allclose(whole.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(whole, in_twos, atol=1e-6)
