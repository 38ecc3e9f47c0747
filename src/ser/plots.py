"""Figures people would rather look at than read: example spectrograms, training curves, confusion matrices."""

from __future__ import annotations

from pathlib import Path

import librosa.display
import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ser.audio import FrontEndConfig
from ser.corpora import EMOTIONS
from ser.io import atomic_path


def save_figure(figure: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)


def spectrogram_examples(
    features: np.ndarray, table: pd.DataFrame, frontend: FrontEndConfig, out_dir: Path
) -> list[Path]:
    """One PNG per emotion (`<emotion>.png`): the first original clip of that emotion, RAVDESS first.

    Args:
        features: (n_clips, n_mels, n_frames) log-mel dB, rows matching `table`.
        table: the clips' rows, with `clip_id`, `emotion`, `corpus` and `prepared` (True for augmented copies).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    originals = table[~table["prepared"].astype(bool)]
    written = []
    for emotion in EMOTIONS:
        candidates = originals[originals["emotion"] == emotion].sort_values("corpus", kind="stable")
        if candidates.empty:
            continue
        row = candidates.index[0]
        figure, axes = plt.subplots(figsize=(6, 3))
        image = librosa.display.specshow(
            features[row],
            sr=frontend.audio.sample_rate,
            hop_length=frontend.melspec.hop_length,
            n_fft=frontend.melspec.n_fft,
            x_axis="time",
            y_axis="mel",
            htk=True,
            fmin=frontend.melspec.fmin,
            fmax=frontend.melspec.fmax or frontend.audio.sample_rate / 2,
            ax=axes,
        )
        figure.colorbar(image, ax=axes, format="%+.0f dB")
        axes.set_title(f"{emotion}: {candidates.loc[row, 'clip_id']}")
        save_figure(figure, out_dir / f"{emotion}.png")
        written.append(out_dir / f"{emotion}.png")
    return written
