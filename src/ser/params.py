"""Typed access to params.yaml: one frozen dataclass per section, unknown or mistyped keys rejected."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

T = TypeVar("T")


class ParamsError(ValueError):
    """A params file that is missing, malformed, or has an unknown or mistyped key."""


@dataclasses.dataclass(frozen=True)
class SourceParams:
    """Where the official archive of one corpus lives."""

    url: str  # direct download address of the archive (zip)
    md5: str | None  # expected MD5 of the archive; None: not pinned, the fetch stage prints what it got
    bytes: int | None = None  # expected archive size, used only for the progress bar


@dataclasses.dataclass(frozen=True)
class FetchParams:
    ravdess: SourceParams
    tess: SourceParams
    limit_per_corpus: int | None = None  # evenly spaced subset of N clips per corpus (tests); None: all
    silence_dbfs: float = -60.0  # a clip whose peak is below this level (dB re full scale) counts as silent

    def __post_init__(self) -> None:
        if self.limit_per_corpus is not None and self.limit_per_corpus < 1:
            raise ParamsError(f"fetch.limit_per_corpus must be at least 1 or null, got {self.limit_per_corpus}")


@dataclasses.dataclass(frozen=True)
class SplitParams:
    fold: int = 1  # EmoBox fold (1..6) whose RAVDESS actors form the test split
    val_actors: int = 4  # RAVDESS actors held out for validation (half male, half female), drawn by seed
    seed: int = 0  # draws the validation actors and the TESS word folds


@dataclasses.dataclass(frozen=True)
class AudioParams:
    sample_rate: int = 16000  # Hz; everything after fetch works at this rate, mono
    duration: float = 3.0  # s; every clip is padded or trimmed to this length before the front end
    trim_db: float | None = 40.0  # strip leading/trailing silence quieter than peak - trim_db dB; None: off


@dataclasses.dataclass(frozen=True)
class AugmentParams:
    copies: int = 2  # perturbed copies per training clip (2 -> 3x the training set in total)
    seed: int = 0
    noise_snr_db: tuple[float, float] = (10.0, 30.0)  # additive white noise at an SNR drawn from this range
    noise_prob: float = 0.8  # probability of each transform being applied to a copy ...
    shift_s: float = 0.25  # ... time shift of up to +-shift_s seconds (circular with zero fill)
    shift_prob: float = 0.5
    gain_db: float = 6.0  # ... gain of up to +-gain_db dB
    gain_prob: float = 0.8
    pitch_semitones: float = 2.0  # ... pitch shift of up to +-pitch_semitones semitones
    pitch_prob: float = 0.4
    stretch: tuple[float, float] = (0.9, 1.1)  # ... time stretch by a rate drawn from this range
    stretch_prob: float = 0.4


@dataclasses.dataclass(frozen=True)
class MelspecParams:
    n_fft: int = 512  # samples per frame (32 ms at 16 kHz); also the window length
    hop_length: int = 256  # samples between frames (16 ms at 16 kHz)
    n_mels: int = 64  # mel bands
    fmin: float = 0.0  # Hz
    fmax: float | None = None  # Hz; None: sample_rate / 2
    window: str = "hamming"  # any scipy.signal window name
    preemphasis: float | None = 0.97  # alpha in y(t) = x(t) - alpha x(t-1); None: off
    top_db: float | None = 80.0  # floor each clip's dB at its own max - top_db; None: no floor


@dataclasses.dataclass(frozen=True)
class ModelParams:
    size: str = "small"  # a key of ser.model.PRESETS: tiny, small, 2M, 8M, 16M, 32M


@dataclasses.dataclass(frozen=True)
class TrainParams:
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3  # peak learning rate of the one-cycle schedule (AdamW)
    l2: float = 0.05  # AdamW weight decay
    warmup: float = 0.1  # fraction of the steps spent warming the learning rate up
    label_smoothing: float = 0.1
    balance: Literal["none", "class", "corpus_class"] = "corpus_class"  # loss weights: inverse frequency of
    # each emotion ("class"), or of each emotion within each corpus ("corpus_class"): TESS has no calm and 4x
    # the neutral clips of RAVDESS, so global class weights would push RAVDESS's quiet clips towards calm
    time_masks: int = 2  # SpecAugment: masked stretches of time per training clip ...
    time_mask_frames: int = 20  # ... each up to this many frames wide
    freq_masks: int = 2  # ... and masked bands of frequency
    freq_mask_bands: int = 8  # ... each up to this many mel bands tall
    mixup: float = 0.0  # alpha of the Beta(alpha, alpha) weight that mixes each batch with itself shuffled; 0: off
    average_last: int = 0  # also try the mean weights of the last N epochs (all, if fewer); validation picks; 0: off
    seed: int = 0  # initial weights, dropout, batch order, masks and mixup (of the first member)
    members: int = 1  # models trained from seeds seed, seed + 1, ...; their mean probability predicts

    def __post_init__(self) -> None:
        if self.members < 1:
            raise ParamsError(f"train.members must be at least 1 (one model, no ensemble), got {self.members}")
        if self.mixup < 0:
            raise ParamsError(f"train.mixup must be 0 (off) or a positive Beta alpha, got {self.mixup}")
        if self.average_last < 0:
            raise ParamsError(f"train.average_last must be 0 (off) or a number of epochs, got {self.average_last}")

    @property
    def first_averaged_epoch(self) -> int:
        """The first of the epochs whose weights `average_last` averages (1-based; all epochs if fewer)."""
        return max(1, self.epochs - self.average_last + 1)


@dataclasses.dataclass(frozen=True)
class Params:
    fetch: FetchParams
    split: SplitParams
    audio: AudioParams
    augment: AugmentParams
    melspec: MelspecParams
    model: ModelParams
    train: TrainParams


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """Check (and gently coerce) one value against a type annotation; `where` names the key for errors."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, where)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, where)
            except ParamsError as error:
                errors.append(str(error))
        raise ParamsError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {annotation}")
    if origin is Literal:
        if value not in typing.get_args(annotation):
            raise ParamsError(f"{where}: {value!r} is not one of {list(typing.get_args(annotation))}")
        return value
    if origin is tuple:
        item_types = typing.get_args(annotation)
        if not isinstance(value, list | tuple) or len(value) != len(item_types):
            raise ParamsError(f"{where}: expected a list of {len(item_types)} values, got {value!r}")
        return tuple(_convert(v, t, f"{where}[{i}]") for i, (v, t) in enumerate(zip(value, item_types, strict=True)))
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamsError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation in (str, bool):
        if not isinstance(value, annotation):
            raise ParamsError(f"{where}: expected {annotation.__name__}, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {annotation!r} at {where}")


def _build(cls: type[T], raw: Any, where: str) -> T:
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    missing = [
        name
        for name, f in fields.items()
        if name not in raw and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ParamsError(f"{where}: missing key(s) {missing}")
    return cls(**{key: _convert(value, hints[key], _child(where, key)) for key, value in raw.items()})


def _child(where: str, key: str) -> str:
    """`params.yaml: split` + `fold` -> `params.yaml: split.fold`; a root `params.yaml:` -> `params.yaml: fold`."""
    return f"{where} {key}" if where.endswith(":") else f"{where}.{key}"


def from_dict(cls: type[T], raw: Any, where: str) -> T:
    """Build dataclass `cls` from a parsed mapping; errors name `where` (file and key)."""
    return _build(cls, raw, where)


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    return raw


def load_section(path: str | Path, section: str, cls: type[T]) -> T:
    """Load one section of a params file into its dataclass, e.g. `load_section(p, "split", SplitParams)`."""
    raw = read_yaml(path)
    if section not in raw:
        raise ParamsError(f"{path}: no section '{section}'")
    return from_dict(cls, raw[section], f"{path}: {section}")


def load_params(path: str | Path) -> Params:
    """Load and validate the whole params file: every section and key."""
    return from_dict(Params, read_yaml(path), f"{path}:")
