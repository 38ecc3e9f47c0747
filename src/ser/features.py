"""The feature store: log-mel arrays per split (memory-mappable .npy) plus one table of labels and metadata."""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ser.audio import FrontEndConfig, LogMel, load_audio, prepare
from ser.io import atomic_path
from ser.parallel import imap, torch_threads
from ser.splitting import SPLITS

TABLE_NAME = "clips.csv"  # every clip of every split; `row` indexes its split's array
FRONTEND_NAME = "frontend.json"  # the FrontEndConfig the arrays were computed with
# clips per front-end batch, one job for a worker: enough to batch the FFTs, few enough that a batch's frames
# and spectra stay near one core's L2 cache
BATCH_CLIPS = 8


def clip_table(split_table: pd.DataFrame, augmented: pd.DataFrame, raw_dir: Path, aug_dir: Path) -> pd.DataFrame:
    """Originals and augmented copies in one table, with absolute `file` paths and a `prepared` flag
    (augmented copies were already trimmed and padded by the augment stage)."""
    originals = split_table.assign(file=[str(raw_dir / p) for p in split_table["path"]], prepared=False)
    copies = augmented.assign(file=[str(aug_dir / p) for p in augmented["path"]], prepared=True)
    table = pd.concat([originals, copies], ignore_index=True, sort=False)
    order = {split: i for i, split in enumerate(SPLITS)}
    table = table.sort_values("split", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    table["row"] = table.groupby("split").cumcount()
    return table


def _load_prepared(path: str, prepared: bool, frontend: FrontEndConfig) -> np.ndarray:
    """Decode one clip once and bring it to exactly `frontend.n_samples` samples."""
    samples = load_audio(path, frontend.audio.sample_rate)
    if prepared:
        if samples.shape[0] != frontend.n_samples:
            raise ValueError(f"{path}: {samples.shape[0]} samples, expected {frontend.n_samples}; rerun augment")
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
    """Write `<split>.npy` (n_clips, n_mels, n_frames) float32 for each split, the table, and the config.

    Each clip is decoded once. Each split's clips go in batches of BATCH_CLIPS consecutive rows to `workers`
    threads; a thread decodes and prepares its batch, turns it into log-mels in one batched STFT and writes
    them straight into the split's memory-mapped array (dr_flac, libsndfile, numpy and torch release the GIL,
    so threads share out the cores without the start-up and pickling of worker processes, and no rows pass
    through this thread). The folder appears under its final name only when complete.
    """
    batches = []  # (split, first row, [(file, prepared), ...]): consecutive rows of one split
    for split, rows in table.sort_values("row").groupby("split", sort=False):
        if not np.array_equal(rows["row"], np.arange(len(rows))):
            raise ValueError(f"the {split} rows of the clip table are not numbered 0..{len(rows) - 1}; use clip_table")
        jobs = list(zip(rows["file"], rows["prepared"], strict=True))
        batches += [(split, start, jobs[start : start + BATCH_CLIPS]) for start in range(0, len(jobs), BATCH_CLIPS)]
    with atomic_path(out_dir, directory=True) as tmp, torch_threads(1):
        arrays = {
            split: np.lib.format.open_memmap(
                tmp / f"{split}.npy",
                mode="w+",
                dtype=np.float32,
                shape=(int((table["split"] == split).sum()), frontend.melspec.n_mels, frontend.n_frames),
            )
            for split in SPLITS
        }

        def write_batch(batch: tuple[str, int, list[tuple[str, bool]]]) -> None:
            split, start, jobs = batch
            arrays[split][start : start + len(jobs)] = _batch_features(jobs, frontend)

        for _ in imap(write_batch, batches, workers, desc="melspec", size=lambda batch: len(batch[2]), threads=True):
            pass
        arrays.clear()  # unmapped; the pages reach the file without an msync, as every other output is written
        table.drop(columns=["file"]).to_csv(tmp / TABLE_NAME, index=False)
        (tmp / FRONTEND_NAME).write_text(json.dumps(frontend.as_dict(), indent=2) + "\n")


@dataclasses.dataclass(frozen=True)
class FeatureSplit:
    """One split as the train stage sees it."""

    features: np.ndarray  # (n_clips, n_mels, n_frames) float32, memory-mapped
    table: pd.DataFrame  # one row per clip, in array order


def load_frontend(features_dir: Path) -> FrontEndConfig:
    path = features_dir / FRONTEND_NAME
    return FrontEndConfig.from_dict(json.loads(path.read_text()), str(path))


def load_split(features_dir: Path, split: str) -> FeatureSplit:
    """Memory-map one split's array and return it with its rows of the table."""
    table = pd.read_csv(features_dir / TABLE_NAME)
    rows = table[table["split"] == split].sort_values("row").reset_index(drop=True)
    features = np.load(features_dir / f"{split}.npy", mmap_mode="r")
    if features.shape[0] != len(rows):
        raise ValueError(f"{features_dir}: {split}.npy has {features.shape[0]} clips, the table {len(rows)}")
    return FeatureSplit(features=features, table=rows)
