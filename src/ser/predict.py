"""Prediction on any audio: files and folders in, one emotion and its probabilities per file out.

    paths -> audio files -> a flat stream of each file's windows (prepared as in training), its end or failure
          -> batches of windows -> LogMel -> model -> softmax -> grouped back per file -> mean over its windows

The front end comes from the bundle, so a file that fits one window gets exactly the melspec stage's
features. A model normalised per speaker (ser.normalise) normalises each window by itself, unless told which
files share a speaker (`options.speakers`): then each group's statistics are taken in a first pass over its
windows, and the second pass predicts with them. Files longer than `stream_above_s` are read block by block,
in constant memory. A file that cannot be used becomes a Failure naming it and the problem, and the files
after it are still predicted.

What is not speech is not judged, and says what it is instead of an emotion: a silent file or window, one too
short, one with next to no sound (a click), one holding only a DC offset (`Unjudged`). A window of a float file
whose samples exceed full scale is scaled down to full scale, and the file is flagged.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ser import audio
from ser.bundle import Bundle, load_bundle
from ser.corpora import EMOTIONS
from ser.evaluation import SILENT, probability_table
from ser.normalise import BandStats, StatsAccumulator, normalise_alone, standardise
from ser.options import PredictOptions
from ser.parallel import imap
from ser.tta import ShiftAveraged, shift_frames

TOO_SHORT, NO_SPEECH, DC_ONLY = "too short", "no speech", "DC only"  # besides SILENT: what is not judged
# Stored as floats, a file's samples can go beyond full scale; stored as integers they cannot (resampling a
# clipped one overshoots, but that is the resampler's doing, not the recording's). A window of float samples
# over 0 dBFS is scaled down to 0 dBFS before it is judged.
FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE"})


@dataclasses.dataclass(frozen=True)
class Unjudged:
    """Why a file or window got no emotion."""

    reason: str  # SILENT, TOO_SHORT, NO_SPEECH or DC_ONLY: the `predicted` value of its row
    detail: str  # what was measured, against what limit

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclasses.dataclass(frozen=True)
class WindowPrediction:
    start_s: float  # where the window starts in the file
    probabilities: tuple[float, ...] | None  # one per label; None: not judged (see unjudged)
    unjudged: Unjudged | None = None  # why there are no probabilities
    note: str = ""  # why not judged, or that the window was over full scale and scaled down


@dataclasses.dataclass(frozen=True)
class Prediction:
    path: Path
    labels: tuple[str, ...]  # the bundle's emotions, in output order
    probabilities: tuple[float, ...] | None  # mean over the judged windows; None: no window was judged
    windows: tuple[WindowPrediction, ...]  # one for a clip that fits a window
    duration_s: float  # of the decoded audio
    peak_dbfs: float  # loudest sample of the mono signal, dB re full scale (-inf for digital silence)
    over_full_scale: bool = False  # float samples beyond full scale: each window over it judged scaled down

    @property
    def unjudged(self) -> Unjudged | None:
        """Why the file got no emotion (None if it did): its window's reason, or for a long file whose windows
        were all left out, the first that is not silence (silence being the least surprising)."""
        if self.probabilities is not None:
            return None
        reasons = [window.unjudged for window in self.windows if window.unjudged is not None]
        if not reasons:  # no window at all
            return Unjudged(SILENT, "no samples")
        return next((reason for reason in reasons if reason.reason != SILENT), reasons[0])

    @property
    def silent(self) -> bool:
        return self.unjudged is not None and self.unjudged.reason == SILENT

    @property
    def note(self) -> str:
        """Why no emotion, or that the file went over full scale; "" for a plain prediction."""
        if self.unjudged is not None:
            return str(self.unjudged)
        if self.over_full_scale:
            return f"over full scale: peak {self.peak_dbfs:+.1f} dBFS, each window over it scaled down to 0 dBFS"
        return ""

    @property
    def predicted(self) -> str:
        """The most probable emotion, or why none was judged (Unjudged.reason)."""
        return self._row["predicted"] if self.unjudged is None else self.unjudged.reason

    @property
    def confidence(self) -> float:
        """The probability of the predicted emotion (NaN when not judged)."""
        return float(self._row["confidence"])

    @functools.cached_property
    def _row(self) -> pd.Series:
        probabilities = np.full(len(self.labels), np.nan) if self.probabilities is None else self.probabilities
        return probability_table(np.array([probabilities], dtype=float), self.labels).iloc[0]


@dataclasses.dataclass(frozen=True)
class Failure:
    path: Path
    problem: str  # what is wrong with the file, as ser.audio.AudioError says it

    @property
    def message(self) -> str:
        """One line: the file and the problem."""
        return f"{self.path}: {self.problem}"


@dataclasses.dataclass(frozen=True, eq=False)
class Window:
    """One window of a file in the stream: its start and samples (n_samples,) prepared as in training."""

    start_s: float
    samples: np.ndarray | None  # None: not judged
    unjudged: Unjudged | None = None  # why not
    note: str = ""  # WindowPrediction.note


@dataclasses.dataclass(frozen=True)
class FileEnd:
    """Closes a file's windows in the stream."""

    path: Path
    duration_s: float
    peak_dbfs: float
    over_full_scale: bool  # Prediction.over_full_scale


Item = Window | FileEnd | Failure  # what flows from the files to the model and back, in input order


def find_files(paths: Iterable[str | Path]) -> Iterator[Path | Failure]:
    """Each folder's audio files (ser.audio.find_audio) and a Failure for each folder below it that cannot be
    searched, or a Failure for a folder without any; any other path as given (decoding names what is wrong
    with it)."""
    for path in map(Path, paths):
        if not path.is_dir():
            yield path
            continue
        unsearchable: list[audio.AudioError] = []
        found = audio.find_audio(path, unreadable=unsearchable.append)
        yield from found
        yield from (Failure(Path(error.path), error.problem) for error in unsearchable)
        if not found and not unsearchable:
            yield Failure(path, "no audio files in this folder")


def load_model(path: str | Path, device: torch.device) -> Bundle:
    """A bundle file, or an exported ONNX file (by its .onnx suffix) as a Bundle (ser.export)."""
    if Path(path).suffix.lower() == ".onnx":
        from ser.export import load_onnx_bundle  # onnxruntime only when asked for

        return load_onnx_bundle(path)
    return load_bundle(path, device)


def decode_unless_long(path: Path, sample_rate: int, stream_above_s: float) -> tuple[np.ndarray | None, bool] | Failure:
    """A file's mono samples at `sample_rate` (load_audio), or None for a file to stream, and whether they are
    stored as floats (FLOAT_SUBTYPES); or a Failure."""
    try:
        info = audio.audio_info(path)
        samples = None if info.duration > stream_above_s else audio.load_audio(path, sample_rate)
        return samples, info.subtype in FLOAT_SUBTYPES
    except audio.AudioError as error:
        return Failure(path, error.problem)


class Predictor:
    """A model bundle ready to predict: `Predictor("data/models/1/model.pt").predict_file("clip.wav")`.

    Args:
        bundle: a bundle file (read with load_bundle: no code is executed), an ONNX file that `ser export` wrote
            (run by onnxruntime on the CPU, whatever `device` says), or a loaded Bundle.
        device: where the front end and the model run.
        options: windowing, silence threshold, batching, decoding processes, streaming.
    """

    def __init__(
        self, bundle: str | Path | Bundle, device: torch.device | str = "cpu", options: PredictOptions | None = None
    ):
        self.device = torch.device(device)
        self.bundle = bundle if isinstance(bundle, Bundle) else load_model(bundle, self.device)
        self.bundle.model.to(self.device).eval()
        self.frontend: audio.FrontEndConfig = self.bundle.frontend
        self.labels: tuple[str, ...] = self.bundle.labels
        self.options = options or PredictOptions()
        # the bundle's model, heard at each of ser.tta's shifts (as the evaluate stage hears it) unless told not to
        self.model = ShiftAveraged(
            self.bundle.model, shift_frames(self.bundle.frontend) if self.options.shifts else (0,)
        )
        silence = self.options.silence_dbfs
        self.silence_dbfs = self.frontend.audio.silence_dbfs if silence is None else silence
        self.hop = max(1, round(self.frontend.n_samples * (1.0 - self.options.overlap)))  # samples between windows
        self.logmel = audio.LogMel(self.frontend).to(self.device)
        self._stats: BandStats | None = None  # of the speaker being predicted (speaker-normalised models)

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """Emotion probabilities (B, n_classes) of prepared windows (B, n_samples), in one forward pass."""
        with torch.inference_mode():
            return self._probabilities(self._features(windows))

    def _features(self, windows: np.ndarray) -> torch.Tensor:
        """Log-mel spectrograms (B, n_mels, n_frames) of prepared windows (B, n_samples), on the device."""
        with torch.inference_mode():
            return self.logmel(torch.from_numpy(np.asarray(windows, dtype=np.float32)).to(self.device))

    def _probabilities(self, features: torch.Tensor) -> np.ndarray:
        """The model's probabilities for log-mel features, normalised as the model was trained: by the current
        speaker statistics if there are any, else each window by itself."""
        mode = self.bundle.normalise
        if mode != "none":
            x = features.cpu().numpy()
            by_speaker = mode == "speaker" and self._stats is not None
            x = standardise(x, self._stats) if by_speaker else normalise_alone(x, mode)
            features = torch.from_numpy(x).to(self.device)
        logits = self.model(features)  # (B, n_classes)
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def speaker_stats(self, found: Iterable[Path | Failure]) -> BandStats | None:
        """The BandStats of every judged window of these files (None if there is none): the first pass."""
        accumulator = StatsAccumulator()
        batch: list[np.ndarray] = []

        def add() -> None:
            accumulator.add(self._features(np.stack(batch)).cpu().numpy())
            batch.clear()

        for item in self._items(found):
            if isinstance(item, Window) and item.samples is not None:
                batch.append(item.samples)
                if len(batch) == self.options.batch_size:
                    add()
        if batch:
            add()
        return accumulator.stats() if accumulator.count else None

    def predict_file(self, path: str | Path) -> Prediction:
        """One file's prediction; raises AudioError (naming the file and the problem) for a file it cannot use."""
        if Path(path).is_dir():
            raise audio.AudioError(path, audio.IS_FOLDER)
        (result,) = self.predict_paths([path])
        if isinstance(result, Failure):
            raise audio.AudioError(result.path, result.problem)
        return result

    def predict_samples(self, samples: np.ndarray, sample_rate: int, name: str = "<samples>") -> Prediction:
        """The in-memory path: samples (n,) or (n, channels) at any rate, converted as load_audio converts, and
        taken as floats (they may go beyond full scale)."""
        mono = audio.convert_audio(samples, sample_rate, self.frontend.audio.sample_rate, name)
        (result,) = self._grouped(self._scored(self._cut(Path(name), mono, floats=True)))
        return result

    def predict_paths(self, paths: Iterable[str | Path]) -> Iterator[Prediction | Failure]:
        """A Prediction or a Failure per audio file, in order; folders are searched recursively for audio."""
        if self.bundle.normalise != "speaker" or self.options.speakers == "window":
            return self._grouped(self._scored(self._items(find_files(paths))))
        return self._by_speaker(list(find_files(paths)))

    def _by_speaker(self, found: list[Path | Failure]) -> Iterator[Prediction | Failure]:
        """Each group of files that share a speaker (`options.speakers`) predicted with the group's statistics,
        the results in input order."""
        keys = {
            "file": lambda item: item,
            "folder": lambda item: item.parent.resolve() if isinstance(item, Path) else item,  # ./a, /abs/b: one
            "all": lambda item: None,
        }[self.options.speakers]
        groups: dict = {}
        for index, item in enumerate(found):
            groups.setdefault(keys(item), []).append((index, item))
        results: dict[int, Prediction | Failure] = {}
        for members in groups.values():
            files = [item for _, item in members]
            self._stats = self.speaker_stats(files)
            try:
                predicted = list(self._grouped(self._scored(self._items(files))))
            finally:
                self._stats = None
            results.update(zip((index for index, _ in members), predicted, strict=True))
        return iter([results[index] for index in sorted(results)])

    def _items(self, found: Iterable[Path | Failure]) -> Iterator[Item]:
        """Every file's windows and end, or its Failure, in order. Files that fit in memory are decoded in
        `options.workers` processes (ser.parallel.imap bounds what they hold); longer ones are streamed here."""
        found = list(found)
        files = [item for item in found if isinstance(item, Path)]
        rate = self.frontend.audio.sample_rate
        decode = functools.partial(decode_unless_long, sample_rate=rate, stream_above_s=self.options.stream_above_s)
        if self.options.workers > 1 and len(files) > 1:
            decoded = iter(imap(decode, files, self.options.workers, desc="predict: decoding"))
        else:
            decoded = map(decode, files)
        for item in found:
            result = next(decoded) if isinstance(item, Path) else item
            if isinstance(result, Failure):
                yield result
                continue
            samples, floats = result
            yield from self._streamed(item, floats) if samples is None else self._cut(item, samples, floats)
        next(decoded, None)  # run the pool (and its progress bar) to its end, so that it closes

    def unjudged(self, samples: np.ndarray) -> Unjudged | None:
        """Why a file or window (n,) is not speech to judge: silent, too short, no sound but a click, DC only."""
        rate, options = self.frontend.audio.sample_rate, self.options
        peak = audio.peak_dbfs(samples)
        if peak < self.silence_dbfs:
            return Unjudged(SILENT, f"peak {peak:.1f} dBFS, below {self.silence_dbfs:.1f} dBFS")
        if len(samples) < round(options.min_duration_s * rate):
            return Unjudged(TOO_SHORT, f"{len(samples) / rate:.3f} s, under {options.min_duration_s:g} s")
        varying = audio.peak_dbfs(samples - samples.mean())
        if varying < self.silence_dbfs:
            offset = f"a constant offset of {samples.mean():+.4f} of full scale"
            return Unjudged(DC_ONLY, f"{offset}, and nothing else above {self.silence_dbfs:.1f} dBFS")
        sound = audio.sound_seconds(samples, rate, options.sound_db)
        if sound < options.min_sound_s:
            return Unjudged(NO_SPEECH, f"{sound:.2f} s of sound, under {options.min_sound_s:g} s")
        return None

    def _window(self, start: int, samples: np.ndarray, floats: bool) -> Window:
        """A window as training prepares a clip (silence trimmed, padded to the clip length), or why it is not
        judged. A window of float samples (`floats`) over full scale is scaled down to 0 dBFS first."""
        start_s, clip = start / self.frontend.audio.sample_rate, self.frontend.audio
        if (unjudged := self.unjudged(samples)) is not None:
            return Window(start_s, None, unjudged, str(unjudged))
        peak, note = audio.peak_dbfs(samples), ""
        if floats and peak > 0.0:
            samples = samples * np.float32(10 ** (-peak / 20))
            note = f"over full scale: peak {peak:+.1f} dBFS, scaled down to 0 dBFS"
        return Window(start_s, audio.prepare(samples, clip), None, note)

    def _cut(self, path: Path, samples: np.ndarray, floats: bool) -> Iterator[Item]:
        """A decoded file (n,) as windows: one, `prepare`d exactly as in training, if it fits one after silence
        trimming (or is silent); else overlapping windows over the whole signal."""
        clip, size, peak = self.frontend.audio, self.frontend.n_samples, audio.peak_dbfs(samples)
        if peak < self.silence_dbfs or len(audio.trim_silence(samples, clip.trim_db)) <= size:
            yield self._window(0, samples, floats)
        else:
            windows = audio.sliding_windows([samples], size, self.hop)
            yield from (self._window(start, window, floats) for start, window in windows)
        yield FileEnd(path, len(samples) / clip.sample_rate, peak, floats and peak > 0.0)

    def _streamed(self, path: Path, floats: bool) -> Iterator[Item]:
        """A long file's windows, read block by block; a Failure if a block turns out bad."""
        rate, length, peak = self.frontend.audio.sample_rate, 0, float("-inf")

        def measured(chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
            nonlocal length, peak
            for chunk in chunks:
                length, peak = length + len(chunk), max(peak, audio.peak_dbfs(chunk))
                yield chunk

        try:
            chunks = measured(audio.stream_audio(path, rate, self.options.block_s))
            for start, window in audio.sliding_windows(chunks, self.frontend.n_samples, self.hop):
                yield self._window(start, window, floats)
        except audio.AudioError as error:
            yield Failure(path, error.problem)
            return
        if length == 0:  # a header that promised samples the stream did not hold
            yield Failure(path, audio.NO_SAMPLES)
            return
        yield FileEnd(path, length / rate, peak, floats and peak > 0.0)

    def _scored(self, items: Iterable[Item]) -> Iterator[tuple[Item, np.ndarray | None]]:
        """Each item with its window's probabilities (n_classes,) (None for ends, failures, windows not judged),
        in order; the judged windows go through the model `options.batch_size` at a time."""

        def judged(item: Item) -> bool:
            return isinstance(item, Window) and item.samples is not None

        def score(pending: list[Item]) -> Iterator[tuple[Item, np.ndarray | None]]:
            windows = [item.samples for item in pending if judged(item)]
            probabilities = iter(self.probabilities(np.stack(windows)) if windows else ())
            yield from ((item, next(probabilities) if judged(item) else None) for item in pending)

        pending: list[Item] = []
        count = 0  # judged windows in `pending`
        for item in items:
            pending.append(item)
            count += judged(item)
            if count == self.options.batch_size:
                yield from score(pending)
                pending, count = [], 0
        yield from score(pending)

    def _grouped(self, scored: Iterable[tuple[Item, np.ndarray | None]]) -> Iterator[Prediction | Failure]:
        """Each file's windows collected up to its end: a Prediction (mean of the judged windows) or its Failure."""
        windows: list[WindowPrediction] = []
        for item, probabilities in scored:
            if isinstance(item, Window):
                as_tuple = None if probabilities is None else tuple(float(p) for p in probabilities)
                windows.append(WindowPrediction(item.start_s, as_tuple, item.unjudged, item.note))
                continue
            if isinstance(item, Failure):
                yield item
            else:
                judged = [window.probabilities for window in windows if window.probabilities is not None]
                mean = tuple(float(p) for p in np.mean(judged, axis=0)) if judged else None  # (n_classes,)
                yield Prediction(
                    item.path, self.labels, mean, tuple(windows), item.duration_s, item.peak_dbfs, item.over_full_scale
                )
            windows = []


def predictions_table(predictions: Iterable[Prediction], per_window: bool = False) -> pd.DataFrame:
    """One row per file (or per window): path, [start_s,] ser.evaluation.probability_table's columns (predicted,
    confidence, p_<emotion>), as the evaluate stage writes them, then a note. Files and windows not judged have
    predicted set to why (Unjudged.reason), NaN probabilities, and what was measured in the note; a file over
    full scale says so in its note."""
    predictions = list(predictions)
    labels = predictions[0].labels if predictions else EMOTIONS  # the columns of an empty table
    keys, rows, unjudged, notes = [], [], [], []
    for prediction in predictions:
        entries = (
            [(w.start_s, w.probabilities, w.unjudged, w.note) for w in prediction.windows]
            if per_window
            else [(None, prediction.probabilities, prediction.unjudged, prediction.note)]
        )
        for start_s, probabilities, why, note in entries:
            keys.append({"path": str(prediction.path), **({"start_s": start_s} if per_window else {})})
            rows.append(np.full(len(labels), np.nan) if probabilities is None else probabilities)
            unjudged.append(None if why is None else why.reason)
            notes.append(note)
    columns = ["path", *(["start_s"] if per_window else [])]
    table = pd.concat(
        [pd.DataFrame(keys, columns=columns), probability_table(np.array(rows, dtype=float), labels)], axis=1
    )
    reasons = pd.Series(unjudged, dtype=object)
    table["predicted"] = reasons.where(reasons.notna(), table["predicted"])
    table["note"] = pd.Series(notes, dtype=object)
    return table
