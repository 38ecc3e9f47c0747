"""Speaker and per-clip normalisation: what it removes (gain, a fixed channel colouring), what it keeps, and
whose statistics it uses."""

import numpy as np
import pandas as pd
import pytest

from ser.audio import load_audio, log_mel_spectrogram, prepare
from ser.features import FeatureSplit
from ser.normalise import STD_FLOOR_DB, band_stats, normalise_clips, normalise_split, standardise_each


def speakers_table(speakers: list[tuple[str, str]], prepared: list[bool] | None = None) -> pd.DataFrame:
    table = pd.DataFrame(speakers, columns=["corpus", "speaker"])
    return table.assign(prepared=prepared if prepared is not None else [False] * len(table))


@pytest.fixture
def features() -> np.ndarray:
    """Six clips (6, 8 bands, 50 frames) of three speakers' dB-like values, each speaker at its own level."""
    rng = np.random.default_rng(0)
    x = rng.normal(-40.0, 10.0, size=(6, 8, 50)).astype(np.float32)
    return x + np.repeat([0.0, 15.0, -20.0], 2)[:, None, None].astype(np.float32)


TABLE = speakers_table(
    [("ravdess", "a"), ("ravdess", "a"), ("ravdess", "b"), ("ravdess", "b"), ("tess", "a"), ("tess", "a")]
)


@pytest.mark.parametrize("mode", ["peak", "utterance", "speaker"])
def test_a_gain_or_a_fixed_colouring_of_the_channel_changes_nothing(features, mode):
    gain = np.float32(-20.0)  # 20 dB quieter: every dB value 20 lower
    colouring = np.linspace(-6.0, 6.0, features.shape[1], dtype=np.float32)[:, None]  # a tilt across the bands
    before = normalise_clips(features, TABLE, mode)
    np.testing.assert_allclose(normalise_clips(features + gain, TABLE, mode), before, atol=1e-4)
    if mode == "peak":  # keeps the spectrum's shape: a colouring stays, as a difference between bands
        coloured = normalise_clips(features + colouring, TABLE, mode)
        assert np.abs(coloured - before).max() > 1.0
        return
    np.testing.assert_allclose(normalise_clips(features + colouring, TABLE, mode), before, atol=1e-4)


def test_peak_puts_each_clips_loudest_bin_at_0_db_and_keeps_every_difference_within_the_clip(features):
    relative = normalise_clips(features, TABLE, "peak")
    assert relative.dtype == np.float32 and relative.shape == features.shape
    np.testing.assert_allclose(relative.max(axis=(1, 2)), 0.0)
    np.testing.assert_allclose(relative, features - features.max(axis=(1, 2), keepdims=True), atol=1e-5)
    assert relative[2:4].mean() == pytest.approx(relative[0:2].mean(), abs=3.0)  # speakers' levels gone (15 dB)


def test_each_speaker_is_standardised_over_its_own_clips_and_keeps_their_differences(features):
    out = normalise_clips(features, TABLE, "speaker")
    for rows in ([0, 1], [2, 3], [4, 5]):  # one speaker's clips, pooled: mean 0 and deviation 1 in every band
        pooled = out[rows].transpose(1, 0, 2).reshape(features.shape[1], -1)
        np.testing.assert_allclose(pooled.mean(axis=1), 0.0, atol=1e-4)
        np.testing.assert_allclose(pooled.std(axis=1), 1.0, atol=1e-4)
    # within a speaker one clip may stay louder than the other: only per-clip normalisation removes that
    louder = features.copy()
    louder[1] += 10.0
    shifted = normalise_clips(louder, TABLE, "speaker")
    assert shifted[1].mean() - shifted[0].mean() > out[1].mean() - out[0].mean() + 0.5
    np.testing.assert_allclose(normalise_clips(louder, TABLE, "utterance")[1], standardise_each(features)[1], atol=1e-4)


def test_speakers_of_different_corpora_with_one_name_are_two_speakers(features):
    out = normalise_clips(features, TABLE, "speaker")  # ravdess/a and tess/a sit 20 dB apart
    joined = normalise_clips(features, TABLE.assign(corpus="ravdess"), "speaker")
    assert not np.allclose(out[[0, 1, 4, 5]], joined[[0, 1, 4, 5]], atol=1e-2)


def test_only_the_fitting_clips_give_a_speakers_statistics(features):
    """Training fits a speaker on its originals; its augmented copies are normalised with those numbers."""
    table = speakers_table([("ravdess", "a")] * 3, prepared=[False, False, True])
    clips = features[:3].copy()
    clips[2] += 30.0  # a copy made 30 dB louder stays 30 dB louder after normalisation
    split = normalise_split(FeatureSplit(features=clips, table=table), "speaker")
    stats = band_stats(clips[:2])
    np.testing.assert_allclose(split.features[2], (clips[2] - stats.mean[:, None]) / stats.std[:, None], atol=1e-4)
    assert split.features[2].mean() > split.features[:2].mean() + 2.0


def test_a_flat_band_is_divided_by_the_floor_not_by_zero():
    flat = np.full((2, 3, 10), -80.0, np.float32)
    out = normalise_clips(flat, speakers_table([("tess", "x")] * 2), "speaker")
    assert np.isfinite(out).all() and np.abs(out).max() == 0.0
    assert band_stats(flat).std.min() == STD_FLOOR_DB


def test_none_leaves_the_features_as_they_are_and_an_unknown_mode_is_refused(features):
    assert normalise_clips(features, TABLE, "none") is features
    with pytest.raises(ValueError, match="choose one of none, peak, utterance, speaker"):
        normalise_clips(features, TABLE, "per-speaker")


@pytest.mark.parametrize("mode", ["peak", "utterance"])
def test_real_clips_at_any_gain_give_the_same_normalised_log_mel(clips, frontend, mode):
    """Through the real front end (pre-emphasis, trimming, top_db floor): 10 and 20 dB quieter, and peak-
    normalised to -1 dBFS, leave the normalised input as it was (trimming cuts at the same sample)."""
    samples = [load_audio(path, frontend.audio.sample_rate) for path in clips]
    table = speakers_table([("ravdess", "1"), ("ravdess", "14"), ("tess", "YAF")])

    def normalised(gains: list[float]) -> np.ndarray:
        waveforms = np.stack([prepare(s * g, frontend.audio) for s, g in zip(samples, gains, strict=True)])
        return normalise_clips(log_mel_spectrogram(waveforms, frontend), table, mode)

    reference = normalised([1.0, 1.0, 1.0])
    peaks = [10 ** (-1 / 20) / np.abs(s).max() for s in samples]
    tolerance = {"peak": 1e-2, "utterance": 1e-3}[mode]  # dB; standard deviations of a band (several dB)
    for gains in ([10 ** (-10 / 20)] * 3, [10 ** (-20 / 20)] * 3, peaks):
        assert np.abs(normalised(gains) - reference).max() < tolerance
