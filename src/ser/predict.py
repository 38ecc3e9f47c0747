"""Prediction on any audio: files and folders in, one emotion and its probabilities per file out.

    path -> decode (any rate, any channels) -> mono at the bundle's rate
         -> fits one window after silence trimming? `prepare` as in training : overlapping windows, each prepared
         -> batches of windows -> LogMel -> model -> softmax -> mean over the file's windows

Everything about the features comes from the bundle, so a file that fits one window gets exactly the
features the melspec stage computes (load_audio -> prepare -> LogMel). Files longer than
`stream_above_s` are never decoded whole: soundfile blocks through a streaming resampler (soxr), so an
hour of audio needs memory for a few windows only. A file that cannot be used becomes a Failure naming the
file and the problem, and the files after it are still predicted.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr
import torch

from ser.audio import AudioError, FrontEndConfig, LogMel, load_audio, prepare, trim_silence
from ser.bundle import Bundle, load_bundle
from ser.corpora import AUDIO_EXTENSIONS, EMOTIONS
from ser.parallel import imap

SILENT = "silent"  # the `predicted` value of a file too quiet to judge

# Extensions searched for in folders, per libsndfile major format; only formats this libsndfile reads count.
# (Files named on the command line are tried whatever their extension.)
FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "WAV": (".wav",),
    "WAVEX": (".wav",),
    "W64": (".w64",),
    "RF64": (".rf64",),
    "FLAC": (".flac",),
    "OGG": (".ogg", ".oga", ".opus"),
    "AIFF": (".aif", ".aiff", ".aifc"),
    "CAF": (".caf",),
    "AU": (".au", ".snd"),
    "MP3": (".mp3",),
}
# libsndfile's log line for a WAV data chunk shorter than its header says: "data : 105706 (should be 52831)"
TRUNCATED_WAV = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# data sizes that streaming writers put in the header when they cannot know the length: not truncation
UNKNOWN_DATA_SIZES = frozenset({0, 0x7FFFFFFF, 0xFFFFFFFF})


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    overlap: float = 0.5  # fraction of a window shared with the next, for clips longer than one window
    silence_dbfs: float = -60.0  # a clip (or window) whose peak is below this (dB re full scale) is not judged
    batch_size: int = 64  # windows per forward pass
    workers: int = 1  # processes decoding files (ser.parallel.imap); 1: decode in this process
    stream_above_s: float = 60.0  # s; longer files are decoded block by block, never whole
    block_s: float = 10.0  # s of audio read per block when streaming

    def __post_init__(self) -> None:
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {self.overlap}")
        if self.batch_size < 1 or self.workers < 1:
            raise ValueError(f"batch_size and workers must be at least 1, got {self.batch_size}, {self.workers}")
        if self.block_s <= 0 or self.stream_above_s < 0:
            raise ValueError(f"block_s must be positive and stream_above_s not negative, got {self}")

    @property
    def silence_peak(self) -> float:
        """The silence threshold as a linear amplitude (full scale = 1)."""
        return 10.0 ** (self.silence_dbfs / 20.0)


@dataclasses.dataclass(frozen=True)
class WindowPrediction:
    start_s: float  # where the window starts in the file
    probabilities: tuple[float, ...] | None  # one per label; None: a silent window, not judged


@dataclasses.dataclass(frozen=True)
class Prediction:
    path: Path
    labels: tuple[str, ...]  # the bundle's emotions, in output order
    probabilities: tuple[float, ...] | None  # mean over the judged windows; None: the whole file is silent
    windows: tuple[WindowPrediction, ...]  # one for a clip that fits a window
    duration_s: float  # of the decoded audio
    peak_dbfs: float  # loudest sample of the mono signal, dB re full scale (-inf for digital silence)

    @property
    def silent(self) -> bool:
        return self.probabilities is None

    @property
    def predicted(self) -> str:
        """The most probable emotion, or SILENT."""
        return SILENT if self.probabilities is None else self.labels[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        """The probability of the predicted emotion (NaN when silent)."""
        return float("nan") if self.probabilities is None else max(self.probabilities)


@dataclasses.dataclass(frozen=True)
class Failure:
    path: Path
    message: str  # one line: the file and the problem


@dataclasses.dataclass(frozen=True, eq=False)
class ClipWindows:
    """One file decoded and cut for the model."""

    path: Path
    duration_s: float
    peak_dbfs: float
    starts_s: tuple[float, ...]  # where each window starts in the file
    windows: tuple[np.ndarray | None, ...]  # each (n_samples,) float32, prepared as in training; None: silent


@dataclasses.dataclass(frozen=True)
class LongFile:
    """A file too long to decode whole: the predictor streams it."""

    path: Path


def audio_extensions() -> frozenset[str]:
    """Extensions searched for in folders: those of the formats this libsndfile reads, and the corpora's."""
    readable = sf.available_formats()
    found = {ext for name, extensions in FORMAT_EXTENSIONS.items() if name in readable for ext in extensions}
    return frozenset(found | AUDIO_EXTENSIONS)


def find_audio_files(paths: Iterable[str | Path]) -> Iterator[Path | Failure]:
    """Each file as given; each folder's audio files (recursively, sorted, hidden names skipped); a Failure for a
    path that does not exist and for a folder without audio."""
    extensions = audio_extensions()
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in extensions
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                yield Failure(path, f"{path}: no audio files in this folder ({' '.join(sorted(extensions))})")
            yield from found
        elif path.exists():
            yield path
        else:
            yield Failure(path, f"{path}: no such file or folder")


def dbfs(peak: float) -> float:
    """A linear amplitude in dB re full scale."""
    return 20.0 * float(np.log10(peak)) if peak > 0 else float("-inf")


def audio_info(path: Path) -> sf._SoundFileInfo:
    """The header of an audio file, after checking that it can be decoded and holds samples.

    Raises AudioError naming the file for an empty, unreadable, truncated (WAV) or sample-less file.
    """
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes)")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError) as error:
        reason = getattr(error, "error_string", str(error))
        raise AudioError(f"{path}: not readable as audio ({reason})") from error
    truncated = TRUNCATED_WAV.search(info.extra_info)
    if truncated:
        declared, present = int(truncated[1]), int(truncated[2])
        if declared not in UNKNOWN_DATA_SIZES and present < declared:
            raise AudioError(
                f"{path}: the file is truncated (its header promises {declared} bytes, it holds {present})"
            )
    if info.frames == 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    return info


def stream_mono(path: Path, sample_rate: int, block_s: float) -> Iterator[np.ndarray]:
    """Decode block by block, average the channels, resample with a streaming soxr resampler.

    Yields float32 chunks (m,) at `sample_rate`; together they equal load_audio(path, sample_rate).
    Raises AudioError naming the file for undecodable blocks and NaN or infinite samples.
    """
    try:
        with sf.SoundFile(str(path)) as file:
            native_rate = file.samplerate
            block_frames = max(1, round(block_s * native_rate))
            resampler = (
                None
                if native_rate == sample_rate
                else soxr.ResampleStream(native_rate, sample_rate, 1, dtype="float32", quality="HQ")
            )
            while True:
                block = file.read(block_frames, dtype="float32", always_2d=True)  # (frames, channels)
                last = len(block) < block_frames
                if not np.isfinite(block).all():
                    raise AudioError(f"{path}: the audio holds NaN or infinite samples")
                mono = block.mean(axis=1)  # (frames,)
                if resampler is not None:
                    mono = resampler.resample_chunk(mono, last=last)
                if len(mono):
                    yield mono
                if last:
                    return
    except (sf.LibsndfileError, RuntimeError) as error:
        reason = getattr(error, "error_string", str(error))
        raise AudioError(f"{path}: cannot decode audio ({reason})") from error


def sliding_windows(chunks: Iterable[np.ndarray], size: int, hop: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start, window) pairs: `size` samples every `hop` samples, then one window aligned to the end if the
    regular ones stop short of it. A signal of at most `size` samples gives one window: all of it.

    The signal comes in chunks (m,) of any length and is never held whole: memory stays about size + one chunk.
    For a signal of n > size samples: 1 + ceil((n - size) / hop) windows.
    """
    buffer = np.zeros(0, dtype=np.float32)
    offset = 0  # the signal index of buffer[0]
    next_start, last_start = 0, None
    for chunk in chunks:
        buffer = np.concatenate([buffer, chunk])
        while next_start + size <= offset + len(buffer):
            yield next_start, buffer[next_start - offset : next_start - offset + size].copy()
            last_start, next_start = next_start, next_start + hop
        keep_from = max(offset, min(next_start, offset + len(buffer) - size))  # the last `size` may end the signal
        buffer, offset = buffer[keep_from - offset :], keep_from
    end = offset + len(buffer)
    if last_start is None and end:
        yield 0, buffer.copy()
    elif last_start is not None and last_start + size < end:
        yield end - size, buffer[end - size - offset :].copy()


def _prepared_or_silent(window: np.ndarray, frontend: FrontEndConfig, silence_peak: float) -> np.ndarray | None:
    """A window as training prepares a clip (silence trimmed, padded to the clip length), or None if silent."""
    if not window.size or np.abs(window).max() < silence_peak:
        return None
    return prepare(window, frontend.audio)


def clip_windows(samples: np.ndarray, frontend: FrontEndConfig, options: PredictOptions, path: Path) -> ClipWindows:
    """Cut decoded mono samples (n,) at the bundle's rate into prepared windows.

    A clip that is silent gives one silent window; one whose silence-trimmed length fits a window gives one,
    `prepare`d exactly as in training; a longer one gives overlapping windows over the whole signal.
    """
    rate, size = frontend.audio.sample_rate, frontend.n_samples
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak < options.silence_peak:
        starts, windows = [0], [None]
    elif trim_silence(samples, frontend.audio.trim_db).shape[0] <= size:
        starts, windows = [0], [prepare(samples, frontend.audio)]
    else:
        pairs = list(sliding_windows([samples], size, window_hop(frontend, options)))
        starts = [start for start, _ in pairs]
        windows = [_prepared_or_silent(window, frontend, options.silence_peak) for _, window in pairs]
    return ClipWindows(
        path=path,
        duration_s=samples.shape[0] / rate,
        peak_dbfs=dbfs(peak),
        starts_s=tuple(start / rate for start in starts),
        windows=tuple(windows),
    )


def window_hop(frontend: FrontEndConfig, options: PredictOptions) -> int:
    """Samples from one window's start to the next's."""
    return max(1, round(frontend.n_samples * (1.0 - options.overlap)))


def decode_file(path: Path, frontend: FrontEndConfig, options: PredictOptions) -> ClipWindows | LongFile | Failure:
    """Decode one file (load_audio, as the melspec stage does) and cut it; never raises for a bad file.

    A file longer than `options.stream_above_s` is not decoded here: LongFile says to stream it.
    """
    try:
        info = audio_info(path)
        if info.duration > options.stream_above_s:
            return LongFile(path)
        return clip_windows(load_audio(path, frontend.audio.sample_rate), frontend, options, path)
    except (AudioError, OSError) as error:
        return Failure(path, str(error) if isinstance(error, AudioError) else f"{path}: {error.strerror}")


class _Accumulator:
    """Collects one file's window probabilities as batches come back, then becomes its Prediction."""

    def __init__(self, path: Path):
        self.path = path
        self.starts_s: list[float] = []
        self.probabilities: list[np.ndarray | None] = []  # per window: (n_classes,), or None while waiting/silent
        self.waiting = 0  # windows sent to the model and not yet back
        self.closed = False  # all windows are known
        self.failure: Failure | None = None
        self.duration_s = 0.0
        self.peak_dbfs = float("-inf")

    @property
    def done(self) -> bool:
        return self.closed and self.waiting == 0

    def result(self, labels: tuple[str, ...]) -> Prediction | Failure:
        if self.failure is not None:
            return self.failure
        if not self.starts_s:
            return Failure(self.path, f"{self.path}: the file holds no audio samples")
        judged = [p for p in self.probabilities if p is not None]
        mean = np.mean(judged, axis=0) if judged else None  # (n_classes,)
        return Prediction(
            path=self.path,
            labels=labels,
            probabilities=None if mean is None else tuple(float(p) for p in mean),
            windows=tuple(
                WindowPrediction(start, None if p is None else tuple(float(v) for v in p))
                for start, p in zip(self.starts_s, self.probabilities, strict=True)
            ),
            duration_s=self.duration_s,
            peak_dbfs=self.peak_dbfs,
        )


class Predictor:
    """A model bundle ready to predict: `Predictor("data/model/model.pt").predict_file("clip.wav")`.

    Args:
        bundle: a bundle file (read with load_bundle: no code is executed) or a loaded Bundle.
        device: where the front end and the model run.
        options: windowing, silence threshold, batching, decoding processes, streaming.
    """

    def __init__(
        self, bundle: str | Path | Bundle, device: torch.device | str = "cpu", options: PredictOptions | None = None
    ):
        self.device = torch.device(device)
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle, self.device)
        self.bundle.model.to(self.device).eval()
        self.frontend: FrontEndConfig = self.bundle.frontend
        self.labels: tuple[str, ...] = self.bundle.labels
        self.options = options or PredictOptions()
        self.logmel = LogMel(self.frontend).to(self.device)

    def features(self, windows: np.ndarray) -> np.ndarray:
        """Log-mel spectrograms (B, n_mels, n_frames) of prepared windows (B, n_samples), as the melspec stage."""
        with torch.inference_mode():
            return self.logmel(torch.from_numpy(np.asarray(windows, dtype=np.float32)).to(self.device)).cpu().numpy()

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """Emotion probabilities (B, n_classes) of prepared windows (B, n_samples), in one forward pass."""
        with torch.inference_mode():
            waveforms = torch.from_numpy(np.asarray(windows, dtype=np.float32)).to(self.device)  # (B, n_samples)
            logits = self.bundle.model(self.logmel(waveforms))  # (B, n_classes)
            return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def predict_file(self, path: str | Path) -> Prediction:
        """One file's prediction; raises AudioError (naming the file and the problem) for a file it cannot use."""
        path = Path(path)
        if path.is_dir():
            raise AudioError(f"{path}: is a folder; use predict_paths for folders")
        (result,) = self.predict_paths([path])
        if isinstance(result, Failure):
            raise AudioError(result.message)
        return result

    def predict_samples(self, samples: np.ndarray, sample_rate: int, name: str = "<samples>") -> Prediction:
        """The in-memory path: samples (n,) or (n, channels) at any rate, decoded as load_audio would."""
        samples = np.asarray(samples, dtype=np.float32)
        if samples.size == 0 or not np.isfinite(samples).all():
            raise AudioError(f"{name}: no samples, or NaN or infinite samples")
        mono = samples.mean(axis=1) if samples.ndim == 2 else samples
        if sample_rate != self.frontend.audio.sample_rate:
            mono = soxr.resample(mono, sample_rate, self.frontend.audio.sample_rate, quality="HQ")
        clip = clip_windows(mono.astype(np.float32, copy=False), self.frontend, self.options, Path(name))
        (result,) = self._predict([clip])
        assert isinstance(result, Prediction)  # an in-memory clip cannot fail
        return result

    def predict_paths(self, paths: Iterable[str | Path]) -> Iterator[Prediction | Failure]:
        """A Prediction or a Failure per audio file, in order; folders are searched recursively for audio."""
        return self._predict(self._decoded(find_audio_files(paths)))

    def _decoded(self, items: Iterable[Path | Failure]) -> Iterator[ClipWindows | LongFile | Failure]:
        """Decode files in order, in `options.workers` processes (ser.parallel.imap, which bounds the decoded
        audio held in memory); failures found while listing pass through in their place."""
        items = list(items)
        files = [item for item in items if isinstance(item, Path)]
        decode = functools.partial(decode_file, frontend=self.frontend, options=self.options)
        if self.options.workers > 1 and len(files) > 1:
            decoded = iter(imap(decode, files, self.options.workers, desc="predict: decoding"))
        else:
            decoded = map(decode, files)
        for item in items:
            yield next(decoded) if isinstance(item, Path) else item
        next(decoded, None)  # run the pool (and its progress bar) to its end, so that it closes

    def _windows(self, clip: ClipWindows | LongFile, accumulator: _Accumulator) -> Iterator[np.ndarray | None]:
        """The file's prepared windows in order (None: silent), recording start times, duration and peak."""
        if isinstance(clip, ClipWindows):
            accumulator.duration_s, accumulator.peak_dbfs = clip.duration_s, clip.peak_dbfs
            accumulator.starts_s.extend(clip.starts_s)
            yield from clip.windows
            return
        rate = self.frontend.audio.sample_rate
        length, peak = 0, 0.0

        def measured(chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
            nonlocal length, peak
            for chunk in chunks:
                length, peak = length + len(chunk), max(peak, float(np.abs(chunk).max()))
                yield chunk

        chunks = measured(stream_mono(clip.path, rate, self.options.block_s))
        for start, window in sliding_windows(chunks, self.frontend.n_samples, window_hop(self.frontend, self.options)):
            accumulator.starts_s.append(start / rate)
            yield _prepared_or_silent(window, self.frontend, self.options.silence_peak)
        accumulator.duration_s, accumulator.peak_dbfs = length / rate, dbfs(peak)

    def _predict(self, clips: Iterable[ClipWindows | LongFile | Failure]) -> Iterator[Prediction | Failure]:
        """Batch every file's windows through the model; yield each file's result once all its windows are back."""
        slots: collections.deque[_Accumulator | Failure] = collections.deque()  # input order
        batch: list[tuple[_Accumulator, int, np.ndarray]] = []  # (file, window index, prepared window)

        def run_batch() -> None:
            probabilities = self.probabilities(np.stack([window for _, _, window in batch]))  # (B, n_classes)
            for (accumulator, index, _), p in zip(batch, probabilities, strict=True):
                accumulator.probabilities[index] = p
                accumulator.waiting -= 1
            batch.clear()

        def finished() -> Iterator[Prediction | Failure]:
            while slots and (isinstance(slots[0], Failure) or slots[0].done):
                slot = slots.popleft()
                yield slot if isinstance(slot, Failure) else slot.result(self.labels)

        for clip in clips:
            if isinstance(clip, Failure):
                slots.append(clip)
                yield from finished()
                continue
            accumulator = _Accumulator(clip.path)
            slots.append(accumulator)
            try:
                for window in self._windows(clip, accumulator):
                    accumulator.probabilities.append(None)
                    if window is None:
                        continue
                    batch.append((accumulator, len(accumulator.probabilities) - 1, window))
                    accumulator.waiting += 1
                    if len(batch) == self.options.batch_size:
                        run_batch()
                        yield from finished()
            except AudioError as error:
                accumulator.failure = Failure(clip.path, str(error))
            accumulator.closed = True
            yield from finished()
        if batch:
            run_batch()
        yield from finished()


def predictions_table(predictions: Iterable[Prediction], per_window: bool = False) -> pd.DataFrame:
    """One row per file (or per window): path, [start_s,] predicted, confidence, p_<emotion> in label order.

    The p_ columns are those the evaluate stage writes to plots/predictions.csv. Silent files and windows
    have predicted "silent" and NaN probabilities.
    """
    rows = []
    labels: tuple[str, ...] = EMOTIONS  # the columns of an empty table
    for prediction in predictions:
        labels = prediction.labels
        entries = (
            [(window.start_s, window.probabilities) for window in prediction.windows]
            if per_window
            else [(None, prediction.probabilities)]
        )
        for start_s, probabilities in entries:
            p = np.full(len(labels), np.nan) if probabilities is None else np.asarray(probabilities)
            row = {"path": str(prediction.path)}
            if per_window:
                row["start_s"] = start_s
            row["predicted"] = SILENT if probabilities is None else labels[int(np.argmax(p))]
            row["confidence"] = float(np.nan if probabilities is None else p.max())
            row.update({f"p_{label}": float(value) for label, value in zip(labels, p, strict=True)})
            rows.append(row)
    columns = ["path", *(["start_s"] if per_window else []), "predicted", "confidence"]
    return pd.DataFrame(rows, columns=[*columns, *(f"p_{label}" for label in labels)])


def predict_table(
    model: str | Path | Bundle,
    paths: Iterable[str | Path],
    device: torch.device | str = "cpu",
    options: PredictOptions | None = None,
) -> pd.DataFrame:
    """predictions_table of every file under `paths`; raises AudioError if any file cannot be used."""
    results = list(Predictor(model, device, options).predict_paths(paths))
    failures = [result for result in results if isinstance(result, Failure)]
    if failures:
        raise AudioError(f"{len(failures)} file(s) could not be predicted; the first: {failures[0].message}")
    return predictions_table(result for result in results if isinstance(result, Prediction))
