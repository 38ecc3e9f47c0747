"""Figures people would rather look at than read: example spectrograms, training curves, confusion matrices."""

from __future__ import annotations

from pathlib import Path

import librosa.display
import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import ConfusionMatrixDisplay

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


def training_curves(history: pd.DataFrame, path: Path) -> None:
    """Loss (left) and accuracy / validation UA (right) per epoch, train and validation together."""
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(11, 4))
    loss_axes.plot(history["epoch"], history["train_loss"], label="train (augmented, masked)")
    loss_axes.plot(history["epoch"], history["val_loss"], label="val")
    loss_axes.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    accuracy_axes.plot(history["epoch"], history["train_acc"], label="train accuracy")
    accuracy_axes.plot(history["epoch"], history["val_acc"], label="val accuracy (WA)")
    for column in [c for c in history.columns if c.startswith("val_ua_")]:
        accuracy_axes.plot(history["epoch"], history[column], label=f"val UA, {column.removeprefix('val_ua_')}")
    accuracy_axes.plot(history["epoch"], history["val_score"], "k--", label="val score (model selection)")
    best = history.loc[history["val_score"].idxmax()]
    accuracy_axes.axvline(best["epoch"], color="grey", linestyle=":", label=f"best epoch {int(best['epoch'])}")
    accuracy_axes.set(xlabel="epoch", ylabel="fraction", title="accuracy", ylim=(0, 1))
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    save_figure(figure, path)


def confusion_matrices(matrices: dict[str, np.ndarray], path: Path) -> None:
    """One panel per corpus: counts in the cells, rows the actual emotion, columns the predicted one."""
    figure, axes = plt.subplots(1, len(matrices), figsize=(6.5 * len(matrices), 6))
    for ax, (title, matrix) in zip(np.atleast_1d(axes), matrices.items(), strict=True):
        shown = [i for i in range(len(EMOTIONS)) if matrix[i].sum() or matrix[:, i].sum()]
        ConfusionMatrixDisplay(matrix[np.ix_(shown, shown)], display_labels=[EMOTIONS[i] for i in shown]).plot(
            ax=ax, colorbar=False, cmap="Blues", xticks_rotation=45
        )
        ax.set_title(f"{title}: {int(matrix.sum())} test clips")
    save_figure(figure, path)
