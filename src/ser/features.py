"""The feature store: one log-mel array of every clip (memory-mappable .npy) and one table of labels and metadata,
indexed by clip, the same for every fold; a fold's roles select its rows."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ser.audio import FrontEndConfig, LogMel, load_audio, prepare
from ser.errors import UserError
from ser.io import atomic_path, read_table
from ser.parallel import imap, torch_threads
from ser.params import ParamsError
from ser.splitting import FOLDS, role_column

TABLE_NAME = "clips.csv"  # every clip, originals and augmented copies; `row` indexes the array
ARRAY_NAME = "features.npy"  # (n_clips, n_mels, n_frames) float32, one row per clip of the table
FRONTEND_NAME = "frontend.json"  # the FrontEndConfig the arrays were computed with
# clips per front-end batch, one job for a worker: enough to batch the FFTs, few enough that a batch's frames
# and spectra stay near one core's L2 cache
BATCH_CLIPS = 8


class FeatureStoreError(UserError, ValueError):
    """A feature store that does not match its split or itself: a stage before it must run again."""


def clip_table(split_table: pd.DataFrame, augmented: pd.DataFrame, raw_dir: Path, aug_dir: Path) -> pd.DataFrame:
    """Originals and augmented copies in one table, indexed by clip and independent of the folds: absolute
    `file` paths, a `prepared` flag (augmented copies were already trimmed and padded by the augment stage),
    `source_clip_id` (an original's is its own id) and `row`, its row of the array."""
    labels = split_table.drop(columns=[role_column(fold) for fold in FOLDS], errors="ignore")
    originals = labels.assign(file=[str(raw_dir / p) for p in labels["path"]], prepared=False)
    originals["source_clip_id"] = originals["clip_id"]
    copies = augmented.assign(file=[str(aug_dir / p) for p in augmented["path"]], prepared=True)
    table = pd.concat([originals, copies], ignore_index=True, sort=False)
    table["row"] = np.arange(len(table))
    return table


def _load_prepared(path: str, prepared: bool, frontend: FrontEndConfig) -> np.ndarray:
    """Decode one clip once and bring it to exactly `frontend.n_samples` samples."""
    samples = load_audio(path, frontend.audio.sample_rate)
    if prepared:
        if samples.shape[0] != frontend.n_samples:
            raise FeatureStoreError(f"{path}: {samples.shape[0]} samples, expected {frontend.n_samples}; rerun augment")
        return samples
    return prepare(samples, frontend.audio)


@functools.cache
def _logmel(frontend: FrontEndConfig) -> LogMel:
    """One LogMel module per config, shared by the pool's threads (filters and window are built once)."""
    return LogMel(frontend)


def _batch_features(jobs: list[tuple[str, bool]], frontend: FrontEndConfig) -> np.ndarray:
    """Decode and prepare a batch of clips, then one batched log-mel: (len(jobs), n_mels, n_frames) float32."""
    waveforms = np.stack([_load_prepared(path, prepared, frontend) for path, prepared in jobs])  # (b, n)
    with torch.inference_mode():
        return _logmel(frontend)(torch.from_numpy(waveforms)).numpy()


def compute_features(table: pd.DataFrame, out_dir: Path, frontend: FrontEndConfig, workers: int) -> None:
    """Write ARRAY_NAME (n_clips, n_mels, n_frames) float32, row `row` for each clip of `table`, the table,
    and the config.

    Each clip is decoded once. The clips go in batches of BATCH_CLIPS consecutive rows to `workers` threads;
    a thread decodes and prepares its batch, turns it into log-mels in one batched STFT and writes them
    straight into the memory-mapped array (dr_flac, libsndfile, numpy and torch release the GIL, so threads
    share out the cores without the start-up and pickling of worker processes, and no rows pass through this
    thread). The folder appears under its final name only when complete.
    """
    rows = table.sort_values("row")
    if not np.array_equal(rows["row"], np.arange(len(rows))):
        raise ValueError(f"the rows of the clip table are not numbered 0..{len(rows) - 1}; use clip_table")
    jobs = list(zip(rows["file"], rows["prepared"], strict=True))
    batches = [(start, jobs[start : start + BATCH_CLIPS]) for start in range(0, len(jobs), BATCH_CLIPS)]
    with atomic_path(out_dir, directory=True) as tmp, torch_threads(1):
        shape = (len(rows), frontend.melspec.n_mels, frontend.n_frames)
        array = np.lib.format.open_memmap(tmp / ARRAY_NAME, mode="w+", dtype=np.float32, shape=shape)

        def write_batch(batch: tuple[int, list[tuple[str, bool]]]) -> None:
            start, jobs = batch
            array[start : start + len(jobs)] = _batch_features(jobs, frontend)

        for _ in imap(write_batch, batches, workers, desc="melspec", size=lambda batch: len(batch[1]), threads=True):
            pass
        array = None  # unmapped; the pages reach the file without an msync, as every other output is written
        rows.drop(columns=["file"]).to_csv(tmp / TABLE_NAME, index=False)
        (tmp / FRONTEND_NAME).write_text(json.dumps(frontend.as_dict(), indent=2) + "\n")


@dataclasses.dataclass(frozen=True)
class FeatureSplit:
    """The clips of one role of one fold, as training and evaluation see them."""

    features: np.ndarray  # (n_clips, n_mels, n_frames) float32
    table: pd.DataFrame  # one row per clip, in array order


def load_frontend(features_dir: Path) -> FrontEndConfig:
    path = features_dir / FRONTEND_NAME
    return FrontEndConfig.from_dict(json.loads(path.read_text()), str(path))


def load_table(features_dir: Path) -> pd.DataFrame:
    """The clip table of a feature store."""
    return read_table(features_dir / TABLE_NAME)


def load_features(features_dir: Path) -> np.ndarray:
    """The whole array of a feature store, memory-mapped (n_clips, n_mels, n_frames)."""
    return np.load(features_dir / ARRAY_NAME, mmap_mode="r")


def load_fold(
    features_dir: Path, split_table: pd.DataFrame, fold: int, role: str, corpora: Sequence[str] | None = None
) -> FeatureSplit:
    """The clips with `role` in `fold` (of `corpora` only, if given), read into memory: for "train" the
    originals and their augmented copies, for "val" and "test" the originals only."""
    table = load_table(features_dir)
    features = load_features(features_dir)
    if features.shape[0] != len(table):
        raise FeatureStoreError(
            f"{features_dir}: {ARRAY_NAME} has {features.shape[0]} clips, {TABLE_NAME} {len(table)}; rerun melspec"
        )
    roles = split_table.set_index("clip_id")[role_column(fold)]
    missing = sorted(set(roles.index) - set(table["clip_id"]))
    if missing:
        raise FeatureStoreError(
            f"{features_dir}: {len(missing)} clips of the split, e.g. {missing[0]}, have no features; rerun melspec"
        )
    chosen = table["source_clip_id"].map(roles) == role
    if role != "train":
        chosen &= ~table["prepared"].astype(bool)
    if corpora is not None:
        chosen &= table["corpus"].isin(corpora)
    rows = table[chosen].reset_index(drop=True)
    return FeatureSplit(features=features[rows["row"].to_numpy()], table=rows)


def load_training_data(
    features_dir: Path, split_table: pd.DataFrame, fold: int, corpora: Sequence[str]
) -> tuple[FeatureSplit, FeatureSplit]:
    """What training in `fold` sees: the training clips of `corpora`, and the validation clips of every
    corpus. Each corpus that trains must have both in this fold (its validation clips choose the weights)."""
    train = load_fold(features_dir, split_table, fold, "train", corpora)
    val = load_fold(features_dir, split_table, fold, "val")
    for role, clips in (("training", train), ("validation", val)):
        missing = [corpus for corpus in corpora if corpus not in set(clips.table["corpus"])]
        if missing:
            raise ParamsError(
                f"train.corpora: {', '.join(missing)} has no {role} clips in fold {fold}; fetch more of it, "
                "or leave it out of train.corpora"
            )
    return train, val
