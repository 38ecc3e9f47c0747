"""Normalisation of log-mel features: the clips of one speaker standardised per mel band by the mean and
standard deviation over every frame of that speaker's own clips (no labels are used), or, for a clip heard
alone, by those of the clip itself ("utterance"); or each clip's dB taken relative to its own loudest bin
("peak", librosa's `power_to_db(ref=np.max)`).

Either way the model's input no longer depends on the recording's gain: in dB a gain adds one constant to
every value, which the peak or the mean takes away. The standardising modes also remove a fixed colouring of
the channel shared by the clips normalised together (a constant per band); "peak" keeps the spectrum's shape,
and with it how loud each band is against the rest. `train.normalise` chooses the mode; it travels with
the weights (the bundle's `info`), so the evaluate stage and `ser predict` normalise as training did. Test
speakers' statistics come from their own test clips, never from training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ser.corpora import SPEAKER
from ser.features import FeatureSplit

MODES: tuple[str, ...] = ("none", "peak", "utterance", "speaker")
STD_FLOOR_DB = 1.0  # a band that barely varies (a silent clip's floor) is divided by this, not by ~0


@dataclasses.dataclass(frozen=True)
class BandStats:
    """Per mel band mean and standard deviation (dB) over every frame of some clips."""

    mean: np.ndarray  # (n_mels,) float32
    std: np.ndarray  # (n_mels,) float32, at least STD_FLOOR_DB


class StatsAccumulator:
    """Sums for BandStats, fed batch by batch (float64, so a long recording's many frames lose nothing)."""

    def __init__(self) -> None:
        self.count, self.total, self.squares = 0, 0.0, 0.0

    def add(self, features: np.ndarray) -> None:
        """features: (n_clips, n_mels, n_frames)."""
        x = np.asarray(features, dtype=np.float64)
        self.count += x.shape[0] * x.shape[2]
        self.total = self.total + x.sum(axis=(0, 2))
        self.squares = self.squares + np.square(x).sum(axis=(0, 2))

    def stats(self) -> BandStats:
        if not self.count:
            raise ValueError("no frames to take statistics of")
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.squares / self.count - np.square(mean), 0.0))
        return BandStats(mean.astype(np.float32), np.maximum(std, STD_FLOOR_DB).astype(np.float32))


def band_stats(features: np.ndarray) -> BandStats:
    """BandStats of clips (n_clips, n_mels, n_frames)."""
    accumulator = StatsAccumulator()
    accumulator.add(features)
    return accumulator.stats()


def standardise(features: np.ndarray, stats: BandStats) -> np.ndarray:
    """(n_clips, n_mels, n_frames) minus the mean, over the standard deviation, of each band: a new float32 array."""
    return ((features - stats.mean[:, None]) / stats.std[:, None]).astype(np.float32)


def standardise_each(features: np.ndarray) -> np.ndarray:
    """Every clip (n_clips, n_mels, n_frames) standardised by its own BandStats ("utterance")."""
    x = np.asarray(features, dtype=np.float64)
    mean = x.mean(axis=2, keepdims=True)
    std = np.maximum(x.std(axis=2, keepdims=True), STD_FLOOR_DB)
    return ((x - mean) / std).astype(np.float32)


def relative_to_peak(features: np.ndarray) -> np.ndarray:
    """Every clip (n_clips, n_mels, n_frames) in dB relative to its own loudest bin ("peak"): a new float32
    array, at most 0 (the front end's `top_db` keeps it at or above -top_db)."""
    x = np.asarray(features, dtype=np.float32)
    return x - x.max(axis=(1, 2), keepdims=True)


def normalise_alone(features: np.ndarray, mode: str) -> np.ndarray:
    """Clips (n_clips, n_mels, n_frames) normalised for a model trained with `mode`, each clip by itself: a
    speaker-normalised model's clips are standardised each by its own statistics ("utterance"), what a clip
    heard without others of its speaker gets."""
    if mode not in MODES:
        raise ValueError(f"normalise mode {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "none":
        return features
    if mode == "peak":
        return relative_to_peak(features)
    return standardise_each(features)


def normalise_clips(
    features: np.ndarray, table: pd.DataFrame, mode: str, fit: Sequence[bool] | np.ndarray | None = None
) -> np.ndarray:
    """The features of the clips of `table` (one row each, in array order) normalised as `mode` says: "none"
    returns them as they are; "peak" and "utterance" normalise each clip by itself (`normalise_alone`);
    "speaker" standardises the clips of each speaker (ser.corpora.SPEAKER) by the BandStats of that speaker's
    clips where `fit` is true (all of them if `fit` is None; training passes its originals, so the augmented
    copies are normalised like their sources are, and keep the gain and noise they were given)."""
    if mode != "speaker":
        return normalise_alone(features, mode)
    fit = np.ones(len(table), bool) if fit is None else np.asarray(fit, bool)
    out = np.empty(features.shape, np.float32)
    for key, rows in table.reset_index(drop=True).groupby(list(SPEAKER), sort=False).groups.items():
        rows = np.asarray(rows)
        fitted = rows[fit[rows]]
        if not len(fitted):
            raise ValueError(f"speaker {'/'.join(map(str, key))}: no clips to take its statistics from")
        out[rows] = standardise(features[rows], band_stats(features[fitted]))
    return out


def normalise_split(split: FeatureSplit, mode: str) -> FeatureSplit:
    """A fold's clips of one role normalised as `mode` says; a speaker's statistics come from its original
    clips in this split only (a training split's augmented copies are normalised by their speaker's)."""
    fit = ~split.table["prepared"].astype(bool).to_numpy()
    return dataclasses.replace(split, features=normalise_clips(split.features, split.table, mode, fit))
