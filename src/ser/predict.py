"""Prediction on any audio: files and folders in, one emotion and its probabilities per file out.

    paths -> audio files -> a flat stream of each file's windows (prepared as in training), its end or failure
          -> batches of windows -> LogMel -> model -> softmax -> grouped back per file -> mean over its windows

The front end comes from the bundle, so a file that fits one window gets exactly the melspec stage's
features. Files longer than `stream_above_s` are read block by block, in constant memory. A file that cannot
be used becomes a Failure naming it and the problem, and the files after it are still predicted.

What is not speech is not judged, and says what it is instead of an emotion: a silent file or window, one too
short, one with next to no sound (a click), one holding only a DC offset (`Unjudged`). A float file whose
samples exceed full scale is judged as if scaled down to full scale, and flagged.
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
from ser.options import PredictOptions
from ser.parallel import imap

TOO_SHORT, NO_SPEECH, DC_ONLY = "too short", "no speech", "DC only"  # besides SILENT: what is not judged
SOUND_FRAME_S, SOUND_HOP_S = 0.025, 0.010  # frames in which sound is measured (sound_seconds)


@dataclasses.dataclass(frozen=True)
class Unjudged:
    """Why a file or window got no emotion."""

    reason: str  # SILENT, TOO_SHORT, NO_SPEECH or DC_ONLY: the `predicted` value of its row
    detail: str  # what was measured, against what limit

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


def sound_seconds(samples: np.ndarray, sample_rate: int, top_db: float) -> float:
    """How long a signal (n,) sounds: its mean removed, the total duration of the SOUND_FRAME_S frames (every
    SOUND_HOP_S) whose RMS lies within `top_db` of the loudest frame's. Relative to the signal's own loudest
    frame, so the same at any gain."""
    frame, hop = round(SOUND_FRAME_S * sample_rate), round(SOUND_HOP_S * sample_rate)
    centred = samples.astype(np.float64) - samples.mean()
    energy = np.concatenate([[0.0], np.cumsum(np.square(centred))])  # energy[i]: of the first i samples
    starts = np.arange(0, max(1, len(centred) - frame + 1), hop)  # (n_frames,)
    ends = np.minimum(starts + frame, len(centred))
    rms_db = 10.0 * np.log10(np.maximum((energy[ends] - energy[starts]) / frame, 1e-20))
    return float((rms_db > rms_db.max() - top_db).sum()) * hop / sample_rate


@dataclasses.dataclass(frozen=True)
class WindowPrediction:
    start_s: float  # where the window starts in the file
    probabilities: tuple[float, ...] | None  # one per label; None: not judged (see unjudged)
    unjudged: Unjudged | None = None  # why there are no probabilities


@dataclasses.dataclass(frozen=True)
class Prediction:
    path: Path
    labels: tuple[str, ...]  # the bundle's emotions, in output order
    probabilities: tuple[float, ...] | None  # mean over the judged windows; None: no window was judged
    windows: tuple[WindowPrediction, ...]  # one for a clip that fits a window
    duration_s: float  # of the decoded audio
    peak_dbfs: float  # loudest sample of the mono signal, dB re full scale (-inf for digital silence)

    @property
    def unjudged(self) -> Unjudged | None:
        """Why the file got no emotion (None if it did): its window's reason, or for a long file whose windows
        were all left out, the first that is not silence (silence being the least surprising)."""
        if self.probabilities is not None:
            return None
        reasons = [window.unjudged for window in self.windows if window.unjudged is not None]
        return next((reason for reason in reasons if reason.reason != SILENT), reasons[0])

    @property
    def silent(self) -> bool:
        return self.unjudged is not None and self.unjudged.reason == SILENT

    @property
    def over_full_scale(self) -> bool:
        """Samples beyond full scale (a float file): judged as if scaled down to full scale."""
        return self.peak_dbfs > 0.0

    @property
    def note(self) -> str:
        """Why no emotion, or that the file went over full scale; "" for a plain prediction."""
        if self.unjudged is not None:
            return str(self.unjudged)
        if self.over_full_scale:
            return f"over full scale: peak {self.peak_dbfs:+.1f} dBFS, judged as if scaled down to 0 dBFS"
        return ""

    @property
    def predicted(self) -> str:
        """The most probable emotion, or why none was judged (Unjudged.reason)."""
        return self._row["predicted"] if self.unjudged is None else self.unjudged.reason

    @property
    def confidence(self) -> float:
        """The probability of the predicted emotion (NaN when silent)."""
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


@dataclasses.dataclass(frozen=True)
class FileEnd:
    """Closes a file's windows in the stream."""

    path: Path
    duration_s: float
    peak_dbfs: float


Item = Window | FileEnd | Failure  # what flows from the files to the model and back, in input order


def find_files(paths: Iterable[str | Path]) -> Iterator[Path | Failure]:
    """Each folder's audio files (ser.audio.find_audio), or a Failure for a folder without any; any other
    path as given (decoding names what is wrong with it)."""
    for path in map(Path, paths):
        if not path.is_dir():
            yield path
        elif found := audio.find_audio(path):
            yield from found
        else:
            yield Failure(path, "no audio files in this folder")


def decode_unless_long(path: Path, sample_rate: int, stream_above_s: float) -> np.ndarray | Failure | None:
    """A file's mono samples at `sample_rate` (load_audio), a Failure, or None for a file to stream."""
    try:
        return None if audio.audio_info(path).duration > stream_above_s else audio.load_audio(path, sample_rate)
    except audio.AudioError as error:
        return Failure(path, error.problem)


class Predictor:
    """A model bundle ready to predict: `Predictor("data/models/1/model.pt").predict_file("clip.wav")`.

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
        self.frontend: audio.FrontEndConfig = self.bundle.frontend
        self.labels: tuple[str, ...] = self.bundle.labels
        self.options = options or PredictOptions()
        silence = self.options.silence_dbfs
        self.silence_dbfs = self.frontend.audio.silence_dbfs if silence is None else silence
        self.hop = max(1, round(self.frontend.n_samples * (1.0 - self.options.overlap)))  # samples between windows
        self.logmel = audio.LogMel(self.frontend).to(self.device)

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """Emotion probabilities (B, n_classes) of prepared windows (B, n_samples), in one forward pass."""
        with torch.inference_mode():
            waveforms = torch.from_numpy(np.asarray(windows, dtype=np.float32)).to(self.device)  # (B, n_samples)
            logits = self.bundle.model(self.logmel(waveforms))  # (B, n_classes)
            return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def predict_file(self, path: str | Path) -> Prediction:
        """One file's prediction; raises AudioError (naming the file and the problem) for a file it cannot use."""
        if Path(path).is_dir():
            raise audio.AudioError(path, audio.IS_FOLDER)
        (result,) = self.predict_paths([path])
        if isinstance(result, Failure):
            raise audio.AudioError(result.path, result.problem)
        return result

    def predict_samples(self, samples: np.ndarray, sample_rate: int, name: str = "<samples>") -> Prediction:
        """The in-memory path: samples (n,) or (n, channels) at any rate, converted as load_audio converts."""
        mono = audio.convert_audio(samples, sample_rate, self.frontend.audio.sample_rate, name)
        (result,) = self._grouped(self._scored(self._cut(Path(name), mono)))
        return result

    def predict_paths(self, paths: Iterable[str | Path]) -> Iterator[Prediction | Failure]:
        """A Prediction or a Failure per audio file, in order; folders are searched recursively for audio."""
        return self._grouped(self._scored(self._items(find_files(paths))))

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
            samples = next(decoded) if isinstance(item, Path) else item
            if isinstance(samples, Failure):
                yield samples
            elif samples is None:
                yield from self._streamed(item)
            else:
                yield from self._cut(item, samples)
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
        sound = sound_seconds(samples, rate, options.sound_db)
        if sound < options.min_sound_s:
            return Unjudged(NO_SPEECH, f"{sound:.2f} s of sound, under {options.min_sound_s:g} s")
        return None

    def _window(self, start: int, samples: np.ndarray) -> Window:
        """A window as training prepares a clip (silence trimmed, padded to the clip length), or why it is not
        judged. A window beyond full scale is scaled down to full scale first."""
        clip = self.frontend.audio
        peak = float(np.abs(samples).max()) if samples.size else 0.0
        if peak > 1.0:
            samples = samples / peak
        unjudged = self.unjudged(samples)
        return Window(start / clip.sample_rate, None if unjudged else audio.prepare(samples, clip), unjudged)

    def _cut(self, path: Path, samples: np.ndarray) -> Iterator[Item]:
        """A decoded file (n,) as windows: one, `prepare`d exactly as in training, if it fits one after silence
        trimming (or is silent); else overlapping windows over the whole signal."""
        clip, size, peak = self.frontend.audio, self.frontend.n_samples, audio.peak_dbfs(samples)
        if peak < self.silence_dbfs or len(audio.trim_silence(samples, clip.trim_db)) <= size:
            yield self._window(0, samples)
        else:
            yield from (self._window(start, w) for start, w in audio.sliding_windows([samples], size, self.hop))
        yield FileEnd(path, len(samples) / clip.sample_rate, peak)

    def _streamed(self, path: Path) -> Iterator[Item]:
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
                yield self._window(start, window)
        except audio.AudioError as error:
            yield Failure(path, error.problem)
            return
        yield FileEnd(path, length / rate, peak)

    def _scored(self, items: Iterable[Item]) -> Iterator[tuple[Item, np.ndarray | None]]:
        """Each item with its window's probabilities (n_classes,) (None for ends, failures, silent windows),
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
                windows.append(WindowPrediction(item.start_s, as_tuple, item.unjudged))
                continue
            if isinstance(item, Failure):
                yield item
            else:
                judged = [window.probabilities for window in windows if window.probabilities is not None]
                mean = tuple(float(p) for p in np.mean(judged, axis=0)) if judged else None  # (n_classes,)
                yield Prediction(item.path, self.labels, mean, tuple(windows), item.duration_s, item.peak_dbfs)
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
            [
                (w.start_s, w.probabilities, w.unjudged, "" if w.unjudged is None else str(w.unjudged))
                for w in prediction.windows
            ]
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
