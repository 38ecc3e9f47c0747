"""Augmentation: clips that train in some fold only, reproducible from the seed, each copy traceable to its source."""

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser.augment import augment_training_set, perturb
from ser.splitting import FOLDS, role_column

SR = 16000  # of the synthetic clips given to perturb


@pytest.fixture
def nothing(params):
    """params.yaml's augmentation with every transform switched off."""
    return dataclasses.replace(
        params.augment, noise_prob=0.0, shift_prob=0.0, gain_prob=0.0, pitch_prob=0.0, stretch_prob=0.0
    )


@pytest.fixture
def small_split(mirror, tmp_path) -> tuple[pd.DataFrame, object]:
    """Six real RAVDESS clips copied into a raw folder of the test's own, with their roles in the six folds:
    two that train in fold 1, two that train in fold 4 only, two that never train."""
    never = ("test", "val", "val", "val", "val", "val")
    names = [
        ("Actor_02/03-01-05-01-01-01-02.flac", ("train", "val", "test", "train", "train", "train")),
        ("Actor_03/03-01-04-02-02-01-03.flac", ("train", "train", "val", "test", "train", "train")),
        ("Actor_06/03-01-03-01-01-01-06.flac", ("val", "test", "val", "train", "val", "val")),
        ("Actor_08/03-01-06-02-01-02-08.flac", ("val", "val", "test", "train", "val", "val")),
        ("Actor_01/03-01-02-01-01-01-01.flac", never),
        ("Actor_11/03-01-07-02-02-02-11.flac", never),
    ]
    raw = tmp_path / "raw"
    rows = []
    for relpath, roles in names:
        (raw / "ravdess" / relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mirror / "ravdess" / relpath, raw / "ravdess" / relpath)
        rows.append(
            {
                "clip_id": f"ravdess/{relpath.split('/')[1][:-5]}",
                "path": f"ravdess/{relpath}",
                "corpus": "ravdess",
                "speaker": relpath.split("/")[0],
                "gender": "female",
                "emotion": "angry",
                "statement": "kids are talking by the door",
                "intensity": "normal",
                "repetition": 1,
                **{role_column(fold): role for fold, role in zip(FOLDS, roles, strict=True)},
            }
        )
    return pd.DataFrame(rows), raw


def run(table, raw, out, audio, augment, workers=1):
    return augment_training_set(table, raw, out / "audio", out / "table.csv", audio, augment, workers)


def test_clips_that_train_in_some_fold_are_augmented_and_each_copy_names_its_source(
    small_split, tmp_path, params, frontend
):
    table, raw = small_split
    augmented = run(table, raw, tmp_path / "a", params.audio, dataclasses.replace(params.augment, copies=3))
    train_ids = set(table["clip_id"][:4])  # the last two never train
    assert len(augmented) == 3 * len(train_ids)
    assert set(augmented["source_clip_id"]) == train_ids
    assert not any(column.startswith("fold_") for column in augmented)  # roles stay in the split table
    assert augmented["clip_id"].is_unique
    assert pd.read_csv(tmp_path / "a" / "table.csv")["clip_id"].tolist() == augmented["clip_id"].tolist()
    for relpath in augmented["path"]:
        samples, rate = sf.read(tmp_path / "a" / "audio" / relpath)
        assert rate == params.audio.sample_rate and samples.shape == (frontend.n_samples,)
    written = sorted(p.name for p in (tmp_path / "a" / "audio").rglob("*.flac"))
    assert len(written) == len(augmented)
    assert not any(clip_id.split("/")[1] in name for name in written for clip_id in set(table["clip_id"]) - train_ids)


def test_same_seed_same_audio_any_worker_count_and_another_seed_differs(small_split, tmp_path, params):
    table, raw = small_split
    augment = dataclasses.replace(params.augment, copies=2, seed=5)
    first = run(table, raw, tmp_path / "one", params.audio, augment, workers=1)
    again = run(table, raw, tmp_path / "two", params.audio, augment, workers=2)
    reseeded = run(table, raw, tmp_path / "three", params.audio, dataclasses.replace(augment, seed=6))
    pd.testing.assert_frame_equal(first, again)
    for relpath in first["path"]:
        a = (tmp_path / "one" / "audio" / relpath).read_bytes()
        assert a == (tmp_path / "two" / "audio" / relpath).read_bytes()
    assert not first[["gain_db", "noise_snr_db"]].equals(reseeded[["gain_db", "noise_snr_db"]])


def test_no_transform_leaves_the_clip_unchanged(nothing):
    rng = np.random.default_rng(0)
    clip = (0.1 * rng.standard_normal(SR)).astype(np.float32)  # peak well below the 16-bit limit
    out, applied = perturb(clip, SR, nothing, np.random.default_rng(1))
    assert np.array_equal(out, clip)
    assert all(np.isnan(value) for value in applied.values())


def test_noise_lands_at_the_drawn_snr_and_gain_at_the_drawn_level(nothing):
    t = np.arange(SR) / SR
    clip = (0.1 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    noisy, applied = perturb(
        clip, SR, dataclasses.replace(nothing, noise_prob=1.0, noise_snr_db=(15.0, 15.0)), np.random.default_rng(2)
    )
    measured_snr = 10 * np.log10(np.mean(clip**2) / np.mean((noisy - clip) ** 2))
    assert applied["noise_snr_db"] == 15.0
    assert measured_snr == pytest.approx(15.0, abs=0.3)
    louder, applied = perturb(clip, SR, dataclasses.replace(nothing, gain_prob=1.0), np.random.default_rng(3))
    assert 0 < abs(applied["gain_db"]) <= nothing.gain_db
    assert np.allclose(louder, clip * 10 ** (applied["gain_db"] / 20), atol=1e-6)


@pytest.mark.parametrize("transform", ["stretch", "pitch", "shift"])
def test_every_transform_keeps_the_length_and_changes_the_audio(nothing, transform):
    t = np.arange(SR) / SR
    clip = (0.2 * np.sin(2 * np.pi * 440 * t) * np.hanning(SR)).astype(np.float32)
    params = dataclasses.replace(nothing, **{f"{transform}_prob": 1.0})
    out, _ = perturb(clip, SR, params, np.random.default_rng(4))
    assert out.shape == clip.shape and out.dtype == np.float32
    assert not np.allclose(out, clip, atol=1e-3)
    assert np.abs(out).max() <= 1.0
