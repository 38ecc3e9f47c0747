"""Training-set augmentation: seeded, parameterised perturbations of each training clip (librosa effects)."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import librosa
import numpy as np
import pandas as pd

from ser.audio import load_audio, pad_or_trim, prepare, write_audio
from ser.io import atomic_path, write_csv
from ser.parallel import imap
from ser.params import AudioParams, AugmentParams
from ser.splitting import trains_in_some_fold

# Columns copied from the source clip; the transform columns are NaN where a transform was not applied.
LABEL_COLUMNS = ("corpus", "speaker", "gender", "emotion", "statement", "intensity", "repetition")
TRANSFORM_COLUMNS = ("stretch_rate", "pitch_semitones", "shift_s", "gain_db", "noise_snr_db")
PEAK_LIMIT = 0.999  # augmented clips are stored as 16-bit audio (write_audio): scale down anything that would clip


def clip_rng(seed: int, clip_id: str) -> np.random.Generator:
    """A generator for one source clip, from the seed and the clip's id alone (independent of order/workers)."""
    key = int.from_bytes(hashlib.md5(clip_id.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, key])


def perturb(
    samples: np.ndarray, sample_rate: int, params: AugmentParams, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, float]]:
    """One random perturbation of a prepared clip (n,) -> (n,), and the transform values it used.

    Each transform is applied with its own probability: time stretch, pitch shift, time shift, gain,
    then additive white noise at a random SNR (relative to the clip's mean power).
    """
    n = samples.shape[0]
    applied = dict.fromkeys(TRANSFORM_COLUMNS, float("nan"))
    y = samples
    if rng.random() < params.stretch_prob:
        applied["stretch_rate"] = rate = float(rng.uniform(*params.stretch))
        y = pad_or_trim(librosa.effects.time_stretch(y, rate=rate), n)
    if rng.random() < params.pitch_prob:
        applied["pitch_semitones"] = steps = float(rng.uniform(-params.pitch_semitones, params.pitch_semitones))
        y = librosa.effects.pitch_shift(y, sr=sample_rate, n_steps=steps)
    if rng.random() < params.shift_prob:
        applied["shift_s"] = shift_s = float(rng.uniform(-params.shift_s, params.shift_s))
        shift = round(shift_s * sample_rate)
        y = np.roll(y, shift)
        if shift > 0:
            y[:shift] = 0.0
        elif shift < 0:
            y[shift:] = 0.0
    if rng.random() < params.gain_prob:
        applied["gain_db"] = gain_db = float(rng.uniform(-params.gain_db, params.gain_db))
        y = y * 10.0 ** (gain_db / 20.0)
    if rng.random() < params.noise_prob:
        applied["noise_snr_db"] = snr_db = float(rng.uniform(*params.noise_snr_db))
        noise_power = float(np.mean(y**2)) / 10.0 ** (snr_db / 10.0)
        y = y + rng.standard_normal(n) * np.sqrt(noise_power)
    peak = float(np.abs(y).max())
    if peak > PEAK_LIMIT:
        y = y * (PEAK_LIMIT / peak)
    return y.astype(np.float32), applied


def _augment_clip(job: tuple[str, Path], out_dir: Path, audio: AudioParams, params: AugmentParams) -> list[dict]:
    """Decode one training clip once, prepare it, write `params.copies` perturbed copies; their rows."""
    clip_id, path = job
    samples = prepare(load_audio(path, audio.sample_rate), audio)
    rng = clip_rng(params.seed, clip_id)
    rows = []
    for copy in range(1, params.copies + 1):
        augmented, applied = perturb(samples, audio.sample_rate, params, rng)
        relpath = f"{clip_id}__aug{copy}.flac"
        write_audio(out_dir / relpath, augmented, audio.sample_rate)
        rows.append({"clip_id": f"{clip_id}#aug{copy}", "source_clip_id": clip_id, "path": relpath, **applied})
    return rows


def augment_training_set(
    split_table: pd.DataFrame,
    raw_dir: Path,
    out_dir: Path,
    table_path: Path,
    audio: AudioParams,
    params: AugmentParams,
    workers: int,
) -> pd.DataFrame:
    """Write `params.copies` perturbed copies of every clip that trains in some fold to `out_dir`.

    A copy depends on its clip's id and the seed alone (`clip_rng`), so one augmented set serves every fold:
    each fold's training set takes the copies of its own training clips, and no fold ever sees a copy of a
    clip it validates or tests on. Copies are prepared like every clip (trimmed and padded to
    `audio.duration`), so the melspec stage takes them as they are. The table (one row per copy, with its
    source clip, labels and transform values) goes to `table_path` and is returned.
    """
    train = split_table[trains_in_some_fold(split_table)]
    jobs = [(clip_id, raw_dir / path) for clip_id, path in zip(train["clip_id"], train["path"], strict=True)]
    with atomic_path(out_dir, directory=True) as tmp:
        work = functools.partial(_augment_clip, out_dir=tmp, audio=audio, params=params)
        rows = [row for rows in imap(work, jobs, workers, desc="augment") for row in rows]
    table = pd.DataFrame(rows, columns=["clip_id", "source_clip_id", "path", *TRANSFORM_COLUMNS])
    labels = train.set_index("clip_id")[list(LABEL_COLUMNS)]
    table = table.join(labels, on="source_clip_id")
    write_csv(table, table_path)
    return table
