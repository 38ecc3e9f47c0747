"""Typed access to params.yaml: one frozen dataclass per section, validated by pydantic.

params.yaml is the only place a value is set: these classes give each key its type and allowed range, no
default. Unknown, missing, mistyped or out-of-range keys are refused with one line naming the file and key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import pydantic
import yaml
from pydantic import AfterValidator, ConfigDict, Field, Strict
from pydantic.dataclasses import dataclass

from ser.errors import UserError, flat

T = TypeVar("T")

# YAML gives ints, floats, strings and bools: no silent conversion between them, except an int for a float.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]
Positive = Annotated[Int, Field(ge=1)]
Count = Annotated[Int, Field(ge=0)]
Probability = Annotated[Float, Field(ge=0.0, le=1.0)]
Fraction = Annotated[Float, Field(ge=0.0, lt=1.0)]
Dbfs = Annotated[Float, Field(lt=0.0)]  # a level in dB re full scale, below full scale
PositiveFloat = Annotated[Float, Field(gt=0.0)]
NonNegativeFloat = Annotated[Float, Field(ge=0.0)]

section = dataclass(frozen=True, config=ConfigDict(extra="forbid", allow_inf_nan=False))

# Keys that were renamed: the old name is refused with a message that names the new one.
RENAMED: dict[str, str] = {"train.l2": "train.weight_decay", "split.fold": "cv.folds (a list of folds)"}
# Keys that are gone: the old name is refused with a message that says why.
RETIRED: dict[str, str] = {
    "split.val_actors": "each fold now validates on as many speakers as it tests, half of each sex: remove it",
}
Fold = Annotated[Int, Field(ge=1, le=6)]  # one of the six speaker-independent folds


class ParamsError(UserError, ValueError):
    """A params file that is missing, malformed, or has an unknown, missing, mistyped or out-of-range key."""


@section
class SourceParams:
    """Where the official archive of one corpus lives."""

    url: Str  # direct download address of the archive (zip)
    md5: Str | None  # expected MD5 of the archive; None: not pinned, the fetch stage prints what it got
    bytes: Positive | None  # expected archive size, used only for the progress bar


@section
class LfsSourceParams:
    """Where a corpus kept in a Git LFS repository lives: its file list, each file's pointer (the sha256 and
    size of the real file, as committed to git), and the LFS content itself."""

    tree: Str  # URL of the repository's file list (JSON: {"tree": [{"path": ..., "type": "blob"}, ...]})
    pointers: Str  # URL prefix of the files as committed: prefix + path is that file's LFS pointer
    media: Str  # URL prefix of the LFS store: prefix + path is the file itself
    folder: Str  # the repository folder whose .wav files are the corpus


@section
class FetchParams:
    ravdess: SourceParams
    tess: SourceParams
    cremad: LfsSourceParams
    limit_per_corpus: Positive | None  # evenly spaced subset of N clips per corpus (tests); None: all


@section
class SplitParams:
    seed: Count  # draws each fold's validation speakers (TESS: words)


def _distinct(values: tuple) -> tuple:
    if len(set(values)) != len(values):
        raise ValueError("a value is listed twice")
    return values


Corpora = Annotated[tuple[Str, ...], Field(min_length=1), AfterValidator(_distinct)]  # names of corpora, each once


@section
class CvParams:
    # the folds to train and test; [1, 2, 3, 4, 5, 6]: the whole cross-validation
    folds: Annotated[tuple[Fold, ...], Field(min_length=1), AfterValidator(_distinct)]


@section
class AudioParams:
    sample_rate: Positive  # Hz; everything after fetch works at this rate, mono
    duration: PositiveFloat  # s; every clip is padded or trimmed to this length
    trim_db: PositiveFloat | None  # strip leading/trailing audio quieter than peak - trim_db
    silence_dbfs: Dbfs  # a clip whose peak is below this level is silent

    @property
    def clip_samples(self) -> int:
        """Samples per clip: `duration` seconds at `sample_rate`."""
        return round(self.duration * self.sample_rate)


@section
class AugmentParams:
    copies: Count  # perturbed copies per training clip
    seed: Count  # of each clip's perturbations (with its id)
    noise_snr_db: tuple[Float, Float]  # additive white noise at an SNR drawn from this range (dB)
    noise_prob: Probability  # probability of each transform being applied to a copy ...
    shift_s: NonNegativeFloat  # ... time shift of up to +-shift_s seconds (zero fill)
    shift_prob: Probability
    gain_db: NonNegativeFloat  # ... gain of up to +-gain_db dB
    gain_prob: Probability
    pitch_semitones: NonNegativeFloat  # ... pitch shift of up to +-pitch_semitones
    pitch_prob: Probability
    stretch: tuple[PositiveFloat, PositiveFloat]  # ... time stretch rates
    stretch_prob: Probability


@section
class MelspecParams:
    n_fft: Annotated[Int, Field(ge=2)]  # samples per frame; also the window length
    hop_length: Positive  # samples between frames
    n_mels: Positive  # mel bands
    fmin: NonNegativeFloat  # Hz
    fmax: PositiveFloat | None  # Hz; None: sample_rate / 2
    window: Str  # any scipy.signal window name
    preemphasis: Fraction | None  # alpha in y(t) = x(t) - alpha x(t-1); None: off
    top_db: PositiveFloat | None  # floor each clip's dB at its own max - top_db; None: off


@section
class ModelParams:
    size: Str  # a key of ser.model.PRESETS


@section
class TrainParams:
    epochs: Positive
    # of each training clip's versions (the original and its augment.copies copies), this many are drawn anew
    # for every epoch; None: every version, every epoch
    versions_per_epoch: Positive | None
    # the corpora whose clips versions_per_epoch limits where they train (the others train every version, every
    # epoch; the loss weights keep each corpus's share of an epoch); None: every corpus that trains
    versions_per_epoch_corpora: Corpora | None
    batch_size: Annotated[Int, Field(ge=2)]  # BatchNorm needs more than one clip a batch (per process)
    lr: PositiveFloat  # peak learning rate of the one-cycle schedule (AdamW)
    weight_decay: NonNegativeFloat  # AdamW's decoupled weight decay
    warmup: Fraction  # fraction of the steps spent warming the learning rate up
    label_smoothing: Fraction
    # loss weights: inverse frequency of each emotion ("class"), or of each emotion within each corpus
    # ("corpus_class"): TESS has no calm and more neutral clips than RAVDESS, so global class weights would
    # push RAVDESS's quiet clips towards calm
    balance: Literal["none", "class", "corpus_class"]
    time_masks: Count  # SpecAugment: masked stretches of time per training clip ...
    time_mask_frames: Count  # ... each up to this many frames wide
    freq_masks: Count  # ... and masked bands of frequency
    freq_mask_bands: Count  # ... each up to this many mel bands tall
    mixup: NonNegativeFloat  # alpha of the Beta(alpha, alpha) mixing weight; 0: off
    average_last: Count  # also try the mean weights of the last N epochs; validation picks; 0: off
    seed: Count  # initial weights, dropout, batch order, masks and mixup of the first member
    members: Positive  # models trained from seeds seed, seed + 1, ...; their mean probability predicts
    corpora: Corpora  # whose training clips train;
    # every fetched corpus is validated and tested, and model selection sees the validation of these only
    processes: Positive  # data-parallel training processes (torchrun, ser.distributed); batch_size is global
    compile: Bool  # torch.compile the model for training
    # each mel band standardised over each speaker's own clips ("speaker"), over each clip ("utterance"), each
    # clip's dB relative to its loudest bin ("peak"), or none ("none"): ser.normalise; the bundle keeps it, so
    # evaluation and prediction do the same
    normalise: Literal["none", "peak", "utterance", "speaker"]
    # vocal-tract length perturbation (ser.train.FrequencyWarp): every time a training clip is drawn, its
    # frequency axis is warped by a factor from [1 - freq_warp, 1 + freq_warp]; 0: off
    freq_warp: Annotated[Float, Field(ge=0.0, le=0.3)]
    # the corpora whose training clips freq_warp warps (the others train unwarped); None: every corpus that trains
    freq_warp_corpora: Corpora | None

    def __post_init__(self) -> None:
        not_training = [name for name in self.freq_warp_corpora or () if name not in self.corpora]
        if not_training:
            raise ValueError(
                f"freq_warp_corpora names {', '.join(not_training)}, which does not train "
                f"(corpora: {', '.join(self.corpora)}): list corpora of train.corpora, or null for all of them"
            )
        if self.freq_warp_corpora is not None and not self.freq_warp:
            raise ValueError("freq_warp_corpora warps nothing while freq_warp is 0: set freq_warp, or null it")
        if self.versions_per_epoch_corpora is not None and self.versions_per_epoch is None:
            raise ValueError("versions_per_epoch_corpora needs versions_per_epoch: set it, or set both to null")
        if self.batch_size % self.processes or self.batch_size // self.processes < 2:
            raise ValueError(
                f"batch_size {self.batch_size} must split into equal shares of at least 2 clips over "
                f"{self.processes} processes"
            )

    @property
    def first_averaged_epoch(self) -> int:
        """The first of the epochs whose weights `average_last` averages (1-based; all epochs if fewer)."""
        return max(1, self.epochs - self.average_last + 1)


@section
class BaselineParams:
    c: Annotated[tuple[PositiveFloat, ...], Field(min_length=1)]  # the SVM's C values; validation picks one per fold


@section
class Params:
    fetch: FetchParams
    split: SplitParams
    cv: CvParams
    audio: AudioParams
    augment: AugmentParams
    melspec: MelspecParams
    model: ModelParams
    train: TrainParams
    baseline: BaselineParams

    def __post_init__(self) -> None:  # the checks across sections
        from ser.audio import FrontEndConfig, frontend_problem  # ser.audio imports this module

        if (problem := frontend_problem(self.audio, self.melspec)) is not None:
            raise ValueError(problem)
        n_frames = FrontEndConfig(audio=self.audio, melspec=self.melspec).n_frames
        train = self.train
        for key, count, width, axis, length in (
            ("time_mask_frames", train.time_masks, train.time_mask_frames, "frames of a clip", n_frames),
            (
                "freq_mask_bands",
                train.freq_masks,
                train.freq_mask_bands,
                "mel bands of melspec.n_mels",
                self.melspec.n_mels,
            ),
        ):
            if count and width >= length:
                raise ValueError(f"train.{key} {width} is not below the {length} {axis}: lower it")


def problems(error: pydantic.ValidationError, prefix: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Each problem pydantic found, as (dotted key below `prefix`, what is wrong with it)."""
    found = []
    for problem in error.errors():
        key = ".".join(str(part) for part in (*prefix, *problem["loc"]))
        if problem["type"] == "unexpected_keyword_argument":
            what = f"is now {RENAMED[key]}: rename it" if key in RENAMED else RETIRED.get(key, "unknown key")
        elif problem["type"] == "missing":
            what = "missing key"
        elif problem["type"] == "value_error" and isinstance(problem["input"], dict):  # a check across a section's
            what = problem["msg"].removeprefix("Value error, ")  # keys (__post_init__): its message names them
        else:
            what = f"{problem['input']!r} is not allowed ({problem['msg'][0].lower()}{problem['msg'][1:]})"
        found.append((key, what))
    return found


def from_dict(cls: type[T], raw: Any, where: str, prefix: tuple[str, ...] = ()) -> T:
    """Build dataclass `cls` from a parsed mapping; errors name `where` (a file) and each key below `prefix`."""
    if not isinstance(raw, dict):
        key = ".".join(prefix) or "the top level"
        raise ParamsError(f"{where}: {key}: expected a mapping of keys, got {raw!r}")
    try:
        return pydantic.TypeAdapter(cls).validate_python(raw)
    except pydantic.ValidationError as error:
        found = "; ".join(
            what if not key else f"{key} {what}" if what.startswith("is now") else f"{key}: {what}"
            for key, what in problems(error, prefix)
        )
        raise ParamsError(f"{where}: {found}") from None


@contextlib.contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """A ParamsError raised inside (by code that checks values, not files) says which params file it is about."""
    try:
        yield
    except ParamsError as error:
        raise ParamsError(f"{path}: {error}") from None


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except (OSError, UnicodeDecodeError) as error:  # a folder, no permission, not text
        raise ParamsError(
            f"{path}: cannot read the params file: {flat(getattr(error, 'strerror', None) or str(error))}"
        ) from None
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    return raw


def load_section(path: str | Path, name: str, cls: type[T]) -> T:
    """Load one section of a params file into its dataclass, e.g. `load_section(p, "split", SplitParams)`."""
    raw = read_yaml(path)
    if name not in raw:
        raise ParamsError(f"{path}: no section '{name}'")
    return from_dict(cls, raw[name], str(path), (name,))


def load_params(path: str | Path) -> Params:
    """Load and validate the whole params file: every section and key."""
    return from_dict(Params, read_yaml(path), str(path))
