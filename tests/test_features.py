"""The feature store: every clip decoded once, log-mels batched in worker threads, one row per clip; a fold's
roles select its rows (training: the originals and their copies; validation and test: originals only)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ser.audio import FrontEndConfig, load_audio, log_mel_spectrogram, prepare
from ser.features import (
    ARRAY_NAME,
    BATCH_CLIPS,
    FeatureStoreError,
    clip_table,
    compute_features,
    load_features,
    load_fold,
    load_training_data,
)
from ser.params import ParamsError
from ser.splitting import FOLDS, role_column

ROLE_CYCLE = ["test", "train", "val", "train"]  # interleaved, so a fold's rows are picked from all over the array
CORPUS_CYCLE = ["ravdess", "tess", "cremad"]  # out of step with the roles: each corpus has clips in every role


@pytest.fixture(scope="module")
def short_frontend(make_frontend) -> FrontEndConfig:
    """The repository's front end with 1 s clips, to keep the tests quick."""
    return make_frontend(audio={"duration": 1.0})


@pytest.fixture
def corpus(tmp_path, write_tone, short_frontend):
    """40 originals (tones of different pitch and length, splits interleaved) and 3 prepared copies."""
    raw, aug = tmp_path / "raw", tmp_path / "aug"
    rows = []
    for i in range(40):
        path = f"a/clip{i:02d}.wav"
        write_tone(raw / path, 150.0 + 40 * i, seconds=0.4 + 0.02 * i, sr=22050 if i % 5 == 0 else 16000)
        roles = {role_column(fold): ROLE_CYCLE[(i + fold) % 4] for fold in FOLDS}  # fold 1: c0 train, c1 val...
        rows.append({"clip_id": f"c{i}", "path": path, "corpus": CORPUS_CYCLE[i % 3], **roles})
    copies = []
    for i in range(3):
        path = f"a/clip{i:02d}__aug1.flac"
        write_tone(aug / path, 3000.0 + 100 * i, seconds=short_frontend.audio.duration)
        copies.append(
            {
                "clip_id": f"c{i}#aug1",
                "source_clip_id": f"c{i}",
                "path": path,
                "corpus": CORPUS_CYCLE[i % 3],
            }
        )
    split_table = pd.DataFrame(rows)
    table = clip_table(split_table, pd.DataFrame(copies), raw, aug)
    return table, split_table, tmp_path


def expected_features(rows: pd.DataFrame, frontend: FrontEndConfig) -> np.ndarray:
    """Clip by clip, in this process: decode, prepare (originals only), log-mel."""
    rate = frontend.audio.sample_rate
    clips = [
        load_audio(file, rate) if prepared else prepare(load_audio(file, rate), frontend.audio)
        for file, prepared in zip(rows["file"], rows["prepared"], strict=True)
    ]
    return log_mel_spectrogram(np.stack(clips), frontend)


def test_the_clip_table_has_no_fold_columns_and_numbers_every_clip():
    split_table = pd.DataFrame({"clip_id": ["a", "b"], "path": ["a.wav", "b.wav"], "fold_1": ["train", "test"]})
    copies = pd.DataFrame({"clip_id": ["a#aug1"], "source_clip_id": ["a"], "path": ["a__aug1.flac"]})
    table = clip_table(split_table, copies, Path("/raw"), Path("/aug"))
    assert "fold_1" not in table  # the store does not depend on the folds
    assert table["row"].tolist() == [0, 1, 2]
    assert table["source_clip_id"].tolist() == ["a", "b", "a"]
    assert table["prepared"].tolist() == [False, False, True]
    assert table["file"].tolist() == ["/raw/a.wav", "/raw/b.wav", "/aug/a__aug1.flac"]


@pytest.mark.parametrize("workers", [1, 2])
def test_every_clip_has_its_log_mels_in_its_row(corpus, short_frontend, workers):
    table, _, tmp_path = corpus
    assert len(table) > 2 * BATCH_CLIPS  # several batches, so several jobs per worker
    compute_features(table, tmp_path / "features", short_frontend, workers)
    written = load_features(tmp_path / "features")
    assert written.shape == (len(table), short_frontend.melspec.n_mels, short_frontend.n_frames)
    np.testing.assert_allclose(written, expected_features(table.sort_values("row"), short_frontend), atol=1e-4)


def test_a_fold_takes_the_copies_of_its_training_clips_only_and_the_originals_of_each_role(corpus, short_frontend):
    table, split_table, tmp_path = corpus
    compute_features(table, tmp_path / "features", short_frontend, workers=1)
    everything = load_features(tmp_path / "features")
    for fold in (1, 2):
        column = role_column(fold)
        for role in ("train", "val", "test"):
            chosen = load_fold(tmp_path / "features", split_table, fold, role)
            originals = set(split_table.loc[split_table[column] == role, "clip_id"])
            copies = {f"{c}#aug1" for c in ("c0", "c1", "c2") if c in originals} if role == "train" else set()
            assert set(chosen.table["clip_id"]) == originals | copies, (fold, role)
            np.testing.assert_array_equal(chosen.features, everything[chosen.table["row"].to_numpy()])
    # c1's role cycles with the fold: it trains in folds 2, 4 and 6, and its copy with it, in those only
    trains = [
        fold
        for fold in FOLDS
        if "c1#aug1" in set(load_fold(tmp_path / "features", split_table, fold, "train").table["clip_id"])
    ]
    assert trains == [2, 4, 6]
    only_tess = load_fold(tmp_path / "features", split_table, 1, "train", ["tess"])
    assert set(only_tess.table["corpus"]) == {"tess"} and len(only_tess.table)
    train, val = load_training_data(tmp_path / "features", split_table, 1, ["ravdess", "tess"])
    assert set(train.table["corpus"]) == {"ravdess", "tess"}  # the corpora that train ...
    assert set(val.table["corpus"]) == set(CORPUS_CYCLE)  # ... and the validation clips of every corpus
    no_val = split_table.assign(fold_1=split_table["fold_1"].where(split_table["corpus"] != "tess", "train"))
    with pytest.raises(ParamsError, match=r"^train\.corpora: tess has no validation clips in fold 1; fetch more"):
        load_training_data(tmp_path / "features", no_val, 1, ["ravdess", "tess"])
    with pytest.raises(ParamsError, match=r"^train\.corpora: other has no training clips in fold 1"):
        load_training_data(tmp_path / "features", split_table, 1, ["ravdess", "other"])
    stale = pd.concat([split_table, split_table.iloc[:1].assign(clip_id="new")], ignore_index=True)
    with pytest.raises(FeatureStoreError, match=r"1 clips of the split, e\.g\. new, have no features; rerun melspec"):
        load_fold(tmp_path / "features", stale, 1, "train")


def test_worker_threads_write_exactly_what_one_thread_writes_and_leave_torch_threads_as_they_were(
    corpus, short_frontend
):
    table, _, tmp_path = corpus
    threads = torch.get_num_threads()
    compute_features(table, tmp_path / "one", short_frontend, workers=1)
    compute_features(table, tmp_path / "two", short_frontend, workers=2)
    assert torch.get_num_threads() == threads
    one, two = (np.load(tmp_path / name / ARRAY_NAME) for name in ("one", "two"))
    assert np.array_equal(one, two)


def test_a_copy_of_the_wrong_length_names_the_file_and_leaves_no_output(corpus, write_tone, short_frontend):
    table, _, tmp_path = corpus
    bad = table[table["prepared"]].iloc[0]["file"]
    write_tone(tmp_path / "aug" / "a" / "clip00__aug1.flac", 500.0, seconds=0.5)
    with pytest.raises(FeatureStoreError, match=r"clip00__aug1\.flac.*rerun augment"):
        compute_features(table, tmp_path / "features", short_frontend, workers=2)
    assert bad.endswith("clip00__aug1.flac")
    assert not (tmp_path / "features").exists()


def test_a_table_whose_rows_are_not_numbered_in_order_is_refused_before_any_output(corpus, short_frontend):
    table, _, tmp_path = corpus
    gapped = table.assign(row=table["row"] * 2)  # rows 0, 2, 4, ...
    with pytest.raises(ValueError, match=r"rows of the clip table are not numbered 0\.\.42"):
        compute_features(gapped, tmp_path / "features", short_frontend, workers=2)
    assert not (tmp_path / "features").exists()
