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
    """Loss (left) and accuracy / validation UA (right) per epoch, train and validation together. An
    ensemble's members (column `member`) share the colours, one line style each."""
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(11, 4))
    members = list(history.groupby("member")) if "member" in history else [(1, history)]
    for index, (member, rows) in enumerate(members):
        style = {"linestyle": ("-", "--", ":", "-.")[index % 4]}
        hide = "" if index == 0 else "_"  # matplotlib leaves labels starting with "_" out of the legend
        loss_axes.plot(rows["epoch"], rows["train_loss"], color="C0", label=hide + "train (augmented, masked)", **style)
        loss_axes.plot(rows["epoch"], rows["val_loss"], color="C1", label=hide + "val", **style)
        accuracy_axes.plot(rows["epoch"], rows["train_acc"], color="C0", label=hide + "train accuracy", **style)
        accuracy_axes.plot(rows["epoch"], rows["val_acc"], color="C1", label=hide + "val accuracy (WA)", **style)
        for colour, column in enumerate(c for c in rows.columns if c.startswith("val_ua_")):
            label = hide + f"val UA, {column.removeprefix('val_ua_')}"
            accuracy_axes.plot(rows["epoch"], rows[column], color=f"C{colour + 2}", label=label, **style)
        selection = "val score (model selection)" + (f", member {member}" if len(members) > 1 else "")
        accuracy_axes.plot(rows["epoch"], rows["val_score"], color="k", label=selection, **style)
        kept = rows.loc[rows["kept"], "epoch"]  # one epoch, or the span of averaged weights
        where = f"epoch {kept.min()}" if len(kept) == 1 else f"mean of epochs {kept.min()}-{kept.max()}"
        if len(members) > 1:
            where += f", member {member}"
        if len(kept) == 1:
            accuracy_axes.axvline(kept.min(), color="grey", label=f"weights kept: {where}", **style)
        else:
            accuracy_axes.axvspan(kept.min(), kept.max(), color="grey", alpha=0.15, label=f"weights kept: {where}")
    loss_axes.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    accuracy_axes.set(xlabel="epoch", ylabel="fraction", title="accuracy", ylim=(0, 1))
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
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


def emotion_timeline(
    starts_s: np.ndarray, probabilities: np.ndarray, labels: tuple[str, ...], window_s: float, title: str, path: Path
) -> None:
    """The emotion probabilities of a recording's windows over time: a line per emotion at each window's
    centre, the most probable emotion as a band along the top, windows not judged (silence, no speech) grey.

    Args:
        starts_s: (n_windows,) each window's start in s.
        probabilities: (n_windows, n_labels); a row of NaN for a window not judged.
    """
    centres = np.asarray(starts_s, dtype=float) + window_s / 2
    p = np.asarray(probabilities, dtype=float).reshape(len(centres), len(labels))
    judged = ~np.isnan(p).any(axis=1)
    colours = plt.get_cmap("tab10").colors
    figure, (band, axes) = plt.subplots(
        2, 1, figsize=(10, 4.5), sharex=True, gridspec_kw={"height_ratios": [1, 8], "hspace": 0.05}
    )
    step = np.median(np.diff(centres)) if len(centres) > 1 else window_s
    for centre, row, ok in zip(centres, p, judged, strict=True):
        colour = colours[int(np.argmax(row)) % len(colours)] if ok else "lightgrey"
        band.axvspan(centre - step / 2, centre + step / 2, color=colour, linewidth=0)
        if not ok:
            axes.axvspan(centre - step / 2, centre + step / 2, color="whitesmoke", linewidth=0)
    for i, label in enumerate(labels):
        axes.plot(centres, p[:, i], marker=".", color=colours[i % len(colours)], label=label)
    band.set_yticks([])
    band.set_ylabel("top", rotation=0, ha="right", va="center")
    band.set_title(title)
    axes.set_ylim(0, 1)
    if len(centres):
        axes.set_xlim(centres[0] - step / 2, centres[-1] + step / 2)
    axes.set_xlabel("time, s (centre of each window)")
    axes.set_ylabel("probability")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    axes.grid(alpha=0.3)
    save_figure(figure, path)
