"""Cross-validation results: known means and spreads, only the folds listed, and a missing fold named."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser.crossval import (
    VAL,
    FoldMissingError,
    aggregate,
    per_fold_table,
    read_fold_results,
    read_validation,
    summary_lines,
    validation_means,
)
from ser.evaluation import PER_UTTERANCE, TEST
from ser.io import read_table

REPO = Path(__file__).resolve().parents[1]


def fold_result(ravdess_ua: float, tess_ua: float | None = None) -> dict:
    """An evaluate.json with made-up figures: WA = UA - 0.1, macro-F1 = UA - 0.2, 10 clips per corpus."""

    def scores(ua: float) -> dict:
        return {"clips": 10, "wa": ua - 0.1, "ua": ua, "macro_f1": ua - 0.2, "recall": {}}

    result = {"ravdess": scores(ravdess_ua), "all": scores(ravdess_ua)}
    if tess_ua is not None:
        result["tess"] = scores(tess_ua)
    return result


def test_mean_and_sample_standard_deviation_over_the_folds():
    results = {1: fold_result(0.5, 1.0), 3: fold_result(0.7, 1.0), 2: fold_result(0.6, 1.0)}
    summary = aggregate(results)
    assert list(summary) == [TEST, "folds"] and summary["folds"] == [1, 2, 3]  # the headline first
    assert list(summary[TEST]) == ["ravdess", "tess", "all"]  # corpora in name order, "all" last
    ravdess = summary[TEST]["ravdess"]
    assert list(ravdess) == ["ua", "ua_std", "wa", "macro_f1"]  # the spread of UA, the one a change must beat
    assert ravdess["ua"] == pytest.approx(0.6)
    assert ravdess["ua_std"] == pytest.approx(0.1)  # sample std of 0.5, 0.6, 0.7 (ddof=1)
    assert ravdess["wa"] == pytest.approx(0.5) and ravdess["macro_f1"] == pytest.approx(0.4)
    assert summary[TEST]["tess"]["ua"] == 1.0 and summary[TEST]["tess"]["ua_std"] == 0.0
    table = per_fold_table(results)  # each fold's own figures: a table, not metrics
    assert table[["fold", "corpus"]].values.tolist() == [
        [fold, corpus] for fold in (1, 2, 3) for corpus in ("ravdess", "tess", "all")
    ]
    row = table[(table["fold"] == 3) & (table["corpus"] == "ravdess")].iloc[0]
    assert row["label"] == "fold 3 ravdess" and row["clips"] == 10 and row["ua"] == 0.7
    assert row["wa"] == pytest.approx(0.6) and row["macro_f1"] == pytest.approx(0.5)


def test_one_fold_has_no_spread_and_a_corpus_missing_from_a_fold_counts_where_present():
    single = aggregate({1: fold_result(0.55)})
    assert single[TEST]["ravdess"]["ua"] == 0.55 and single[TEST]["ravdess"]["ua_std"] is None
    results = {1: fold_result(0.5, 0.9), 2: fold_result(0.7)}
    mixed = aggregate(results)
    assert mixed[TEST]["tess"]["ua"] == 0.9 and mixed[TEST]["tess"]["ua_std"] is None
    assert mixed[TEST]["ravdess"]["ua_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    lines = summary_lines(mixed, per_fold_table(results))
    assert lines[0] == "ravdess: 2 fold(s), 20 test clips; UA 0.600 ± 0.141, WA 0.500, macro-F1 0.400"
    assert lines[1].startswith("tess: 1 fold(s), 10 test clips; UA 0.900, ")


def test_a_speaker_normalised_models_per_clip_scores_are_summarised_beside_and_apart():
    """evaluate.json of a model normalised per speaker also holds its scores with each clip normalised alone
    (PER_UTTERANCE): the summary gives both, and the corpora's figures are the speaker-normalised ones."""
    results = {fold: {**fold_result(ua), PER_UTTERANCE: fold_result(ua - 0.05)} for fold, ua in ((1, 0.6), (2, 0.7))}
    summary = aggregate(results)
    assert list(summary) == [TEST, PER_UTTERANCE, "folds"]
    assert summary[TEST]["ravdess"]["ua"] == pytest.approx(0.65)
    assert list(summary[PER_UTTERANCE]) == ["ravdess", "all"]
    assert summary[PER_UTTERANCE]["ravdess"]["ua"] == pytest.approx(0.60)
    assert summary[PER_UTTERANCE]["ravdess"]["ua_std"] == pytest.approx(np.std([0.55, 0.65], ddof=1))
    lines = summary_lines(summary, per_fold_table(results))
    assert len(lines) == 4 and lines[2].startswith(
        "each clip normalised alone: ravdess: 2 fold(s), 20 test clips; UA 0.600"
    )
    assert PER_UTTERANCE not in aggregate({1: fold_result(0.6)})  # a model not normalised per speaker: none


def write_fold(root: Path, fold: int, hits: int, alone: dict | None = None) -> None:
    """A fold's files as its stages write them: 10 RAVDESS test clips, all sad, `hits` of them predicted sad
    (so UA and WA are hits / 10); evaluate.json's headline, and `alone` as its per-utterance scores; train.json's
    validation figures, RAVDESS UA (hits + 1) / 10 and that the score."""
    (root / "metrics" / str(fold)).mkdir(parents=True)
    metrics = {TEST: {"ravdess": {"ua": hits / 10}}, **({PER_UTTERANCE: alone} if alone else {})}
    (root / "metrics" / str(fold) / "evaluate.json").write_text(json.dumps(metrics))
    val = {"score": (hits + 1) / 10, "ravdess": {"ua": (hits + 1) / 10}}
    (root / "metrics" / str(fold) / "train.json").write_text(json.dumps({VAL: val, "parameters": 1}))
    (root / "plots" / str(fold)).mkdir(parents=True)
    clips = pd.DataFrame(
        {
            "clip_id": [f"c{fold}-{i}" for i in range(10)],
            "corpus": "ravdess",
            "actual": "sad",
            "predicted": ["sad"] * hits + ["angry"] * (10 - hits),
        }
    )
    clips.to_csv(root / "plots" / str(fold) / "predictions.csv", index=False)
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [2.0, 1.0]})
    history.to_csv(root / "plots" / str(fold) / "training.csv", index=False)


def test_only_the_listed_folds_are_read_scored_from_their_predictions_and_a_missing_one_is_named(tmp_path):
    for fold, hits in ((1, 5), (2, 6), (3, 9)):  # fold 3: left over from an earlier run
        write_fold(tmp_path, fold, hits)
    results, predictions, history = read_fold_results(tmp_path / "metrics", tmp_path / "plots", [2, 1])
    assert sorted(results) == [1, 2] and aggregate(results)[TEST]["ravdess"]["ua"] == pytest.approx(0.55)
    assert results[1]["ravdess"]["clips"] == 10 and results[2]["all"]["wa"] == pytest.approx(0.6)
    assert predictions["fold"].tolist() == [2] * 10 + [1] * 10
    assert history["fold"].tolist() == [2, 2, 1, 1] and history["cv_epoch"].tolist() == [1, 2, 3, 4]
    relabelled = read_table(tmp_path / "plots" / "2" / "predictions.csv").assign(fold=3)
    relabelled.to_csv(tmp_path / "plots" / "2" / "predictions.csv", index=False)
    with pytest.raises(ValueError, match=r"predictions\.csv: holds predictions of fold\(s\) \[3\], not 2"):
        read_fold_results(tmp_path / "metrics", tmp_path / "plots", [2])
    with pytest.raises(
        FoldMissingError, match=r"metrics/4/evaluate\.json: missing, though cv\.folds lists fold 4; train"
    ):
        read_fold_results(tmp_path / "metrics", tmp_path / "plots", [1, 4])


def test_validation_is_averaged_over_the_listed_folds_each_corpus_over_the_folds_that_have_it(tmp_path):
    for fold, hits in ((1, 5), (2, 7), (3, 0)):  # fold 3: left over from an earlier run
        write_fold(tmp_path, fold, hits)
    validation = read_validation(tmp_path / "metrics", [2, 1])
    assert validation == {2: {"score": 0.8, "ravdess": {"ua": 0.8}}, 1: {"score": 0.6, "ravdess": {"ua": 0.6}}}
    validation[1]["tess"] = {"ua": 1.0}  # a corpus only fold 1 validated (its speakers: elsewhere in fold 2)
    means = validation_means(validation)
    assert means["score"] == pytest.approx(0.7) and means["ravdess"]["ua"] == pytest.approx(0.7)
    assert means["tess"] == {"ua": 1.0} and list(means) == ["score", "ravdess", "tess"]
    assert VAL not in aggregate(read_fold_results(tmp_path / "metrics", tmp_path / "plots", [1])[0])  # baseline's
    older = {VAL: {"ravdess": {"ua": 0.5, "clips": 10}, "tess": {"ua": 1.0, "clips": 4}}, "corpora": ["ravdess"]}
    (tmp_path / "metrics" / "3" / "train.json").write_text(json.dumps(older))  # as reports/folds/<k>/ hold them
    assert read_validation(tmp_path / "metrics", [3])[3]["score"] == 0.5  # the training corpora's mean UA
    (tmp_path / "metrics" / "2" / "train.json").unlink()
    with pytest.raises(FoldMissingError, match=r"metrics/2/train\.json: missing, though cv\.folds lists fold 2"):
        read_validation(tmp_path / "metrics", [1, 2])


def test_a_folds_per_utterance_scores_come_from_its_evaluate_json_with_its_clips(tmp_path):
    alone = {"ravdess": {"ua": 0.3, "wa": 0.3, "macro_f1": 0.2}, "all": {"ua": 0.3, "wa": 0.3, "macro_f1": 0.2}}
    write_fold(tmp_path, 1, 5, alone)
    results, _, _ = read_fold_results(tmp_path / "metrics", tmp_path / "plots", [1])
    assert results[1][PER_UTTERANCE]["ravdess"] == {"ua": 0.3, "wa": 0.3, "macro_f1": 0.2, "clips": 10}
    assert aggregate(results)[PER_UTTERANCE]["ravdess"]["ua"] == 0.3


def test_the_cv_stage_writes_the_summary_pooled_predictions_and_plot_of_its_params_folds(tmp_path):
    for fold, hits in ((1, 5), (2, 7), (5, 1)):
        write_fold(tmp_path, fold, hits)
    (tmp_path / "params.yaml").write_text("cv:\n  folds: [1, 2]\n")  # what `make cv-report` writes, too
    spec = importlib.util.spec_from_file_location("cv_stage", REPO / "src" / "stages" / "cv.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    out = tmp_path / "out"
    baseline = per_fold_table({fold: fold_result(0.4 + 0.1 * (fold % 2 == 0), 0.9) for fold in range(1, 7)})
    baseline.to_csv(tmp_path / "baseline.csv", index=False)  # the baseline stage's six folds
    paths = {
        "params": tmp_path / "params.yaml",
        "fold-metrics": tmp_path / "metrics",
        "fold-plots": tmp_path / "plots",
        "baseline": tmp_path / "baseline.csv",
        "metrics": out / "cv.json",
        "folds": out / "folds.csv",
        "predictions": out / "predictions.csv",
        "history": out / "training.csv",
        "confusion": out / "confusion.png",
    }
    stage.main([arg for name, path in paths.items() for arg in (f"--{name}", str(path))])
    summary = json.loads((out / "cv.json").read_text())
    assert list(summary) == [TEST, VAL, "folds", "baseline"]
    assert summary["folds"] == [1, 2] and summary[TEST]["ravdess"]["ua"] == pytest.approx(0.6)
    assert summary[VAL] == {"score": pytest.approx(0.7), "ravdess": {"ua": pytest.approx(0.7)}}  # (6 + 8) / 20
    assert summary["baseline"]["ravdess"]["ua"] == pytest.approx(0.45)  # beside the model, its own six folds
    assert summary["baseline"]["tess"] == {"ua": 0.9, "ua_std": 0.0}  # UA and its spread, no more
    assert pd.read_csv(out / "folds.csv")[["fold", "corpus", "clips"]].values.tolist() == [
        [1, "ravdess", 10],
        [1, "all", 10],
        [2, "ravdess", 10],
        [2, "all", 10],
    ]
    assert pd.read_csv(out / "predictions.csv")["fold"].tolist() == [1] * 10 + [2] * 10
    assert (out / "confusion.png").stat().st_size > 5_000
