"""How much of a clip's peak-relative log-mel each recording change moves, under several dB floors (a
measurement for reports/pilots/README.md, "A higher floor"; features only, no model; validation clips only).

Run in a clone whose workspace holds data/split.csv and data/raw (after `dvc repro split`), from its root:
`python reports/pilots/floor_features.py [--fold 1] [--clips 80]`. Takes `--clips` evenly spaced validation
clips of RAVDESS and CREMA-D, writes each as benchmarks/invariance.py does (as recorded, and under each of its
changes), computes the front end's log-mel without a floor, then for each floor F compares the two clips'
spectrograms floored at their own maximum - F and taken relative to it: the mean absolute difference in dB
and the share of bins that differ by more than 3 dB.
"""

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np

from ser.audio import FrontEndConfig, load_audio, log_mel_spectrogram, prepare
from ser.corpora import evenly_spaced
from ser.io import read_table
from ser.params import load_params
from ser.splitting import fold_clips

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import invariance  # the changes, and how a changed clip is stored

FLOORS_DB = (80.0, 70.0, 60.0, 50.0)


def relative_to_floored_peak(db: np.ndarray, floor_db: float) -> np.ndarray:
    """dB floored at the spectrogram's maximum - floor_db, relative to that maximum (LogMel's top_db, then peak)."""
    return np.maximum(db, db.max() - floor_db) - db.max()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--clips", type=int, default=80)
    args = parser.parse_args(argv)
    params = load_params("params.yaml")
    frontend = FrontEndConfig(audio=params.audio, melspec=dataclasses.replace(params.melspec, top_db=None))
    clips = fold_clips(read_table(Path("data/split.csv")), args.fold, "val", ["ravdess", "cremad"])
    paths = [
        Path("data/raw") / path for path in evenly_spaced(clips.sort_values("clip_id")["path"].tolist(), args.clips)
    ]
    originals = [load_audio(path, invariance.SR) for path in paths]

    def log_mels(stem: Path, change, storage) -> list[np.ndarray]:
        written = [invariance.write(Path(f"{stem}-{i:03d}"), change(x), storage) for i, x in enumerate(originals)]
        return [
            log_mel_spectrogram(prepare(load_audio(path, invariance.SR), params.audio), frontend) for path in written
        ]

    print(f"{len(paths)} validation clips of fold {args.fold}; per floor: mean |difference| dB, share of bins > 3 dB")
    print("change", *(f"floor {floor:g} dB" for floor in FLOORS_DB), sep=" | ")
    with tempfile.TemporaryDirectory() as tmp:
        as_recorded = log_mels(Path(tmp) / "as-recorded", lambda x: x, ("WAV", "PCM_16", invariance.SR))
        for name, (change, storage) in invariance.CHANGES.items():
            changed = log_mels(Path(tmp) / "changed", change, storage)
            cells = []
            for floor in FLOORS_DB:
                diff = np.concatenate(
                    [
                        np.abs(relative_to_floored_peak(a, floor) - relative_to_floored_peak(b, floor)).ravel()
                        for a, b in zip(as_recorded, changed, strict=True)
                    ]
                )
                cells.append(f"{diff.mean():.2f} {np.mean(diff > 3):.3f}")
            print(name, *cells, sep=" | ")


if __name__ == "__main__":
    main()
