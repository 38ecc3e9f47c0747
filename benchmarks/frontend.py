"""Section 1: clips/s of the melspec stage's front end against librosa's, on the same real clips."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
from common import Budget, print_side_by_side, side_by_side

from ser.audio import FrontEndConfig, prepare, reference_log_mel
from ser.features import clip_table, compute_features, load_features, load_table
from ser.parallel import available_cores


def project_table(files: Sequence[Path], mirror: Path) -> pd.DataFrame:
    """The melspec stage's clip table for `files` (paths relative to `mirror`), originals only."""
    relpaths = [p.relative_to(mirror).as_posix() for p in files]
    split_table = pd.DataFrame({"clip_id": relpaths, "path": relpaths})
    no_copies = pd.DataFrame(
        {"clip_id": pd.Series(dtype=str), "source_clip_id": pd.Series(dtype=str), "path": pd.Series(dtype=str)}
    )
    return clip_table(split_table, no_copies, mirror, mirror)


def written_features(features_dir: Path, table: pd.DataFrame) -> np.ndarray:
    """What compute_features wrote, (n_clips, n_mels, n_frames), in the order of `table`."""
    if list(load_table(features_dir)["path"]) != list(table["path"]):
        raise RuntimeError(f"{features_dir}: the clips were written in another order than the table's")
    return np.array(load_features(features_dir))


def librosa_front_end(files: Sequence[Path], frontend: FrontEndConfig) -> np.ndarray:
    """The same features the textbook way, one clip after another in this process: (n_clips, n_mels, n_frames)."""
    clips = (librosa.load(path, sr=frontend.audio.sample_rate, mono=True)[0] for path in files)
    return np.stack([reference_log_mel(prepare(samples, frontend.audio), frontend) for samples in clips])


def front_end_section(files: Sequence[Path], mirror: Path, frontend: FrontEndConfig, budget: Budget) -> dict:
    """Clips/s of the melspec stage's code against librosa on the same clips, best of alternating runs."""
    workers = available_cores()
    table = project_table(files, mirror)
    with tempfile.TemporaryDirectory(prefix="ser-bench-") as tmp:
        features_dir = Path(tmp) / "features"
        sides = {
            "project": lambda: compute_features(table, features_dir, frontend, workers),
            "librosa": lambda: librosa_front_end(files, frontend),
        }
        threads = {"project": workers, "librosa": 1}
        summary, results = side_by_side(sides, len(files), threads, budget.front_end_repeats)
        project, reference = written_features(features_dir, table), results["librosa"]
    difference_db = np.abs(project.astype(np.float64) - reference.astype(np.float64))  # (n_clips, n_mels, n_frames)
    result = {
        **summary,
        "max_abs_difference_db": float(difference_db.max()),
        "mean_abs_difference_db": float(difference_db.mean()),
        "note": (
            "best of alternating runs of each (project, librosa, project, ...); project = "
            f"ser.features.compute_features with {workers} decoding threads (available_cores, as the melspec "
            "stage) and batched torch log-mel, writing its .npy files into a temp dir; librosa = librosa.load + "
            "ser.audio.prepare + ser.audio.reference_log_mel, one process"
        ),
    }
    difference = (
        f"max |dB difference| {result['max_abs_difference_db']:.3g} dB (mean {result['mean_abs_difference_db']:.2g})"
    )
    print_side_by_side("1. front end", result, difference)
    return result
