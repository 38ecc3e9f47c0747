"""The feature store: every clip decoded once, log-mels batched in worker threads, rows in their split's place."""

import numpy as np
import pandas as pd
import pytest
import torch

from ser.audio import FrontEndConfig, load_audio, log_mel_spectrogram, prepare
from ser.features import BATCH_CLIPS, clip_table, compute_features, load_split

SPLIT_CYCLE = ["test", "train", "val", "train"]  # interleaved, so rows must be sorted into their splits


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
        rows.append({"clip_id": f"c{i}", "path": path, "split": SPLIT_CYCLE[i % 4]})
    copies = []
    for i in range(3):
        path = f"a/clip{i:02d}__aug1.flac"
        write_tone(aug / path, 3000.0 + 100 * i, seconds=short_frontend.audio.duration)
        copies.append({"clip_id": f"c{i}#aug1", "path": path, "split": "train"})
    table = clip_table(pd.DataFrame(rows), pd.DataFrame(copies), raw, aug)
    return table, tmp_path


def expected_features(table: pd.DataFrame, split: str, frontend: FrontEndConfig) -> np.ndarray:
    """Clip by clip, in this process: decode, prepare (originals only), log-mel."""
    rows = table[table["split"] == split].sort_values("row")
    rate = frontend.audio.sample_rate
    clips = [
        load_audio(file, rate) if prepared else prepare(load_audio(file, rate), frontend.audio)
        for file, prepared in zip(rows["file"], rows["prepared"], strict=True)
    ]
    return log_mel_spectrogram(np.stack(clips), frontend)


@pytest.mark.parametrize("workers", [1, 2])
def test_each_split_holds_its_clips_log_mels_in_table_order(corpus, short_frontend, workers):
    table, tmp_path = corpus
    assert len(table) > 2 * BATCH_CLIPS  # several batches, so several jobs per worker
    compute_features(table, tmp_path / "features", short_frontend, workers)
    for split in ("train", "val", "test"):
        written = load_split(tmp_path / "features", split)
        expected_table = table[table["split"] == split].sort_values("row")
        assert list(written.table["path"]) == list(expected_table["path"])
        assert written.features.shape == (len(expected_table), short_frontend.melspec.n_mels, short_frontend.n_frames)
        np.testing.assert_allclose(written.features, expected_features(table, split, short_frontend), atol=1e-4)


def test_worker_threads_write_exactly_what_one_thread_writes_and_leave_torch_threads_as_they_were(
    corpus, short_frontend
):
    table, tmp_path = corpus
    threads = torch.get_num_threads()
    compute_features(table, tmp_path / "one", short_frontend, workers=1)
    compute_features(table, tmp_path / "two", short_frontend, workers=2)
    assert torch.get_num_threads() == threads
    for split in ("train", "val", "test"):
        one, two = (np.load(tmp_path / name / f"{split}.npy") for name in ("one", "two"))
        assert np.array_equal(one, two), split


def test_a_copy_of_the_wrong_length_names_the_file_and_leaves_no_output(corpus, write_tone, short_frontend):
    table, tmp_path = corpus
    bad = table[table["prepared"]].iloc[0]["file"]
    write_tone(tmp_path / "aug" / "a" / "clip00__aug1.flac", 500.0, seconds=0.5)
    with pytest.raises(ValueError, match=r"clip00__aug1\.flac.*rerun augment"):
        compute_features(table, tmp_path / "features", short_frontend, workers=2)
    assert bad.endswith("clip00__aug1.flac")
    assert not (tmp_path / "features").exists()


def test_a_table_whose_rows_are_not_numbered_in_order_is_refused_before_any_output(corpus, short_frontend):
    table, tmp_path = corpus
    gapped = table.assign(row=table["row"].where(table["split"] != "val", table["row"] * 2))  # val rows 0, 2, 4, ...
    with pytest.raises(ValueError, match=r"val rows .* not numbered"):
        compute_features(gapped, tmp_path / "features", short_frontend, workers=2)
    assert not (tmp_path / "features").exists()
