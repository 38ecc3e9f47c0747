"""How often a trained model changes its answer when the recording changes and the emotion does not.

    .venv/bin/python benchmarks/invariance.py [--model data/models/1/model.pt] [--fold 1] [--clips 40] [--role test]

Takes `--clips` RAVDESS clips of the fold in `--role` (test, or val to compare candidates without reading
test clips; evenly spaced over data/split.csv's, from data/raw), writes
each one changed as a user's file would be (16-bit WAV unless the change is a codec), predicts the original
and every changed copy with `ser predict`'s Predictor, each clip on its own (`--speakers window`), and
prints, per change, how many answers moved. `--json FILE` also writes them. The changes are the ones issue
14 measured: quieter, peak-normalised, a mild fixed EQ, white noise, leading silence, lossy codecs, another
sample rate.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf
import soxr

SR = 16000


def quieter(db: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: (x * 10 ** (-db / 20)).astype(np.float32)


def peak_normalised(x: np.ndarray) -> np.ndarray:
    """Scaled so that the peak sits at -1 dBFS."""
    return (x * (10 ** (-1 / 20) / np.abs(x).max())).astype(np.float32)


def mild_eq(x: np.ndarray) -> np.ndarray:
    """A fixed peaking filter, +4 dB around 1 kHz, Q 1 (the audio-EQ cookbook's biquad)."""
    gain, w0, q = 10 ** (4 / 40), 2 * np.pi * 1000 / SR, 1.0
    alpha = np.sin(w0) / (2 * q)
    b = [1 + alpha * gain, -2 * np.cos(w0), 1 - alpha * gain]
    a = [1 + alpha / gain, -2 * np.cos(w0), 1 - alpha / gain]
    return scipy.signal.lfilter(b, a, x).astype(np.float32)


def white_noise(snr_db: float, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    def add(x: np.ndarray) -> np.ndarray:
        noise = np.random.default_rng(seed).standard_normal(x.shape)
        scale = np.sqrt(np.mean(np.square(x)) / 10 ** (snr_db / 10))
        return np.clip(x + scale * noise, -1.0, 1.0).astype(np.float32)

    return add


def leading_silence(seconds: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: np.concatenate([np.zeros(round(seconds * SR), np.float32), x])


# name -> (change of the samples at 16 kHz, how the file is stored: (format, subtype, sample rate))
CHANGES: dict[str, tuple[Callable[[np.ndarray], np.ndarray], tuple[str, str, int]]] = {
    "10 dB quieter": (quieter(10), ("WAV", "PCM_16", SR)),
    "20 dB quieter": (quieter(20), ("WAV", "PCM_16", SR)),
    "peak-normalised to -1 dBFS": (peak_normalised, ("WAV", "PCM_16", SR)),
    "mild fixed EQ (+4 dB at 1 kHz)": (mild_eq, ("WAV", "PCM_16", SR)),
    "white noise at 30 dB SNR": (white_noise(30), ("WAV", "PCM_16", SR)),
    "0.5 s of leading silence": (leading_silence(0.5), ("WAV", "PCM_16", SR)),
    "MP3": (lambda x: x, ("MP3", "MPEG_LAYER_III", SR)),
    "Opus": (lambda x: x, ("OGG", "OPUS", SR)),
    "44.1 kHz": (lambda x: x, ("WAV", "PCM_16", 44100)),
}
SUFFIXES = {"WAV": ".wav", "MP3": ".mp3", "OGG": ".opus"}


def write(path: Path, samples: np.ndarray, storage: tuple[str, str, int]) -> Path:
    """The samples (at 16 kHz) stored as `storage` says; the path gets the format's suffix."""
    fmt, subtype, rate = storage
    if rate != SR:
        samples = soxr.resample(samples, SR, rate)
    path = path.with_suffix(SUFFIXES[fmt])
    sf.write(path, np.clip(samples, -1.0, 1.0), rate, format=fmt, subtype=subtype)
    return path


def ravdess_clips(split: Path, raw: Path, fold: int, role: str, count: int) -> list[Path]:
    from ser.corpora import evenly_spaced
    from ser.io import read_table
    from ser.splitting import fold_clips

    clips = fold_clips(read_table(split), fold, role, ["ravdess"]).sort_values("clip_id")
    return [raw / path for path in evenly_spaced(clips["path"].tolist(), count)]


def answer_changes(model: Path, clips: list[Path], speakers: str = "window") -> dict[str, int]:
    """For each change, how many of `clips` get another answer than as recorded."""
    from ser.audio import load_audio
    from ser.options import PredictOptions
    from ser.predict import Predictor

    predictor = Predictor(model, options=PredictOptions(speakers=speakers))
    originals = [load_audio(path, SR) for path in clips]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        as_recorded = [write(folder / f"{i:03d}", x, ("WAV", "PCM_16", SR)) for i, x in enumerate(originals)]
        before = [result.predicted for result in predictor.predict_paths(as_recorded)]
        changes = {}
        for name, (change, storage) in CHANGES.items():
            paths = [write(folder / f"{i:03d}-changed", change(x), storage) for i, x in enumerate(originals)]
            after = [result.predicted for result in predictor.predict_paths(paths)]
            changes[name] = sum(a != b for a, b in zip(before, after, strict=True))
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("data/models/1/model.pt"))
    parser.add_argument("--split", type=Path, default=Path("data/split.csv"))
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--role", choices=("test", "val"), default="test", help="the fold's test or validation clips")
    parser.add_argument("--json", type=Path, help="also write the counts here")
    args = parser.parse_args(argv)
    clips = ravdess_clips(args.split, args.raw, args.fold, args.role, args.clips)
    changes = answer_changes(args.model, clips)
    width = max(map(len, changes))
    print(f"answers changed, of {len(clips)} RAVDESS {args.role} clips of fold {args.fold} ({args.model}):")
    for name, count in changes.items():
        print(f"  {name:<{width}}  {count:>3}")
    if args.json:
        from ser.io import write_json

        result = {
            "model": str(args.model),
            "fold": args.fold,
            "role": args.role,
            "clips": len(clips),
            "changed": changes,
        }
        write_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
