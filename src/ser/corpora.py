"""The two corpora: label parsing from file names, and the clip manifest built from decoded audio."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ser.audio import AudioError, decode, find_audio, mono, peak_dbfs

# The project's label set, in the order of the model's outputs.
EMOTIONS: tuple[str, ...] = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
CORPORA: tuple[str, ...] = ("ravdess", "tess")

# RAVDESS file names: modality-channel-emotion-intensity-statement-repetition-actor, two digits each.
RAVDESS_EMOTIONS = dict(zip(("01", "02", "03", "04", "05", "06", "07", "08"), EMOTIONS, strict=True))
RAVDESS_INTENSITY = {"01": "normal", "02": "strong"}
RAVDESS_STATEMENTS = {"01": "kids are talking by the door", "02": "dogs are sitting by the door"}
RAVDESS_AUDIO_ONLY, RAVDESS_SPEECH = "03", "01"

# TESS file names: <speaker>_<word>_<emotion>. Both speakers are female.
TESS_EMOTIONS = {
    "neutral": "neutral",
    "happy": "happy",
    "sad": "sad",
    "angry": "angry",
    "fear": "fearful",
    "disgust": "disgust",
    "ps": "surprised",  # "pleasant surprise"
}
# `OA_bite_neutral` is one real file of speaker OAF with a shortened prefix.
TESS_SPEAKERS = {"OAF": "OAF", "OA": "OAF", "YAF": "YAF"}

MANIFEST_COLUMNS = (
    "clip_id", "path", "corpus", "speaker", "gender", "emotion", "statement", "intensity", "repetition",
    "duration_s", "sample_rate", "channels", "pcm_md5",
)  # fmt: skip


class LabelError(ValueError):
    """A file name that does not follow its corpus's naming scheme."""


@dataclasses.dataclass(frozen=True)
class ClipLabels:
    speaker: str  # RAVDESS: "Actor_07"; TESS: "OAF" or "YAF"
    gender: str  # "male" | "female"
    emotion: str  # one of EMOTIONS
    statement: str  # RAVDESS: the sentence; TESS: the word
    intensity: str = ""  # RAVDESS: "normal" | "strong"; TESS: ""
    repetition: int = 1


def parse_ravdess_name(name: str) -> ClipLabels:
    """Labels of a RAVDESS speech file name such as `03-01-05-02-01-02-12.wav` (angry, strong, actor 12)."""
    fields = Path(name).stem.split("-")
    if len(fields) != 7 or not all(len(f) == 2 and f.isascii() and f.isdigit() for f in fields):
        raise LabelError(f"{name}: expected 7 two-digit fields like 03-01-05-01-02-01-12")
    modality, channel, emotion, intensity, statement, repetition, actor = fields
    if modality != RAVDESS_AUDIO_ONLY or channel != RAVDESS_SPEECH:
        raise LabelError(f"{name}: not an audio-only speech clip (modality {modality}, channel {channel})")
    if emotion not in RAVDESS_EMOTIONS:
        raise LabelError(f"{name}: unknown emotion code {emotion}")
    if intensity not in RAVDESS_INTENSITY or statement not in RAVDESS_STATEMENTS:
        raise LabelError(f"{name}: unknown intensity {intensity} or statement {statement}")
    if repetition not in ("01", "02") or not 1 <= int(actor) <= 24:
        raise LabelError(f"{name}: unknown repetition {repetition} or actor {actor}")
    return ClipLabels(
        speaker=f"Actor_{actor}",
        gender="male" if int(actor) % 2 else "female",
        emotion=RAVDESS_EMOTIONS[emotion],
        statement=RAVDESS_STATEMENTS[statement],
        intensity=RAVDESS_INTENSITY[intensity],
        repetition=int(repetition),
    )


def parse_tess_name(name: str) -> ClipLabels:
    """Labels of a TESS file name such as `OAF_back_ps.wav` (older speaker, word "back", surprised)."""
    fields = Path(name).stem.split("_")
    if len(fields) != 3:
        raise LabelError(f"{name}: expected <speaker>_<word>_<emotion>, like OAF_back_angry")
    speaker, word, emotion = fields
    if speaker.upper() not in TESS_SPEAKERS:
        raise LabelError(f"{name}: unknown speaker {speaker!r}; expected one of {sorted(TESS_SPEAKERS)}")
    if emotion.lower() not in TESS_EMOTIONS:
        raise LabelError(f"{name}: unknown emotion {emotion!r}; expected one of {sorted(TESS_EMOTIONS)}")
    if not word.isalpha():
        raise LabelError(f"{name}: the word {word!r} is not a plain word")
    return ClipLabels(
        speaker=TESS_SPEAKERS[speaker.upper()],
        gender="female",
        emotion=TESS_EMOTIONS[emotion.lower()],
        statement=word.lower(),
    )


PARSERS: dict[str, Callable[[str], ClipLabels]] = {"ravdess": parse_ravdess_name, "tess": parse_tess_name}


def evenly_spaced(items: list, limit: int | None) -> list:
    """`limit` items spread evenly over `items` (all of them when limit is None or large enough)."""
    if limit is None or limit >= len(items):
        return list(items)
    positions = np.linspace(0, len(items) - 1, num=limit).round().astype(int)
    return [items[i] for i in positions]


def pcm_md5(samples: np.ndarray) -> str:
    """Hash of decoded audio: the same for byte-identical files and for the same PCM in another container."""
    return hashlib.md5(np.ascontiguousarray(samples, dtype=np.float32).tobytes()).hexdigest()


@dataclasses.dataclass
class ManifestReport:
    """What the manifest builder found, kept out, and why: nothing is dropped silently."""

    found: dict[str, int] = dataclasses.field(default_factory=dict)  # audio files seen, per corpus
    kept: dict[str, int] = dataclasses.field(default_factory=dict)  # clips in the manifest, per corpus
    unparseable: list[str] = dataclasses.field(default_factory=list)  # "path: reason"
    undecodable: list[str] = dataclasses.field(default_factory=list)
    silent: list[str] = dataclasses.field(default_factory=list)
    duplicates: list[str] = dataclasses.field(default_factory=list)  # "dropped path = kept path"

    def as_dict(self) -> dict:
        """Counts first (numbers, for `dvc metrics show`), then the names behind them."""
        lists = ("unparseable", "undecodable", "silent", "duplicates")
        return {
            "found": self.found,
            "kept": self.kept,
            "left_out": {name: len(getattr(self, name)) for name in lists},
            **{name: getattr(self, name) for name in lists},
        }

    def lines(self) -> list[str]:
        out = [
            f"{corpus}: {self.found.get(corpus, 0)} clips found, {self.kept.get(corpus, 0)} kept"
            for corpus in self.found
        ]
        for title, entries in (
            ("unparseable names", self.unparseable),
            ("files that do not decode", self.undecodable),
            ("all-silent clips", self.silent),
            ("duplicates removed (same decoded audio)", self.duplicates),
        ):
            out.append(f"{title}: {len(entries)}")
            out.extend(f"  - {entry}" for entry in entries)
        return out


def build_manifest(raw_dir: Path, corpora: Iterable[str], silence_dbfs: float) -> tuple[pd.DataFrame, ManifestReport]:
    """Decode every clip under `raw_dir/<corpus>/` once, parse its labels, and tabulate it.

    Files whose names do not parse, that do not decode, that are empty or all-silent (peak below
    `silence_dbfs`), and later copies of audio already seen are left out and listed in the report.
    Returns the manifest (MANIFEST_COLUMNS, `path` relative to `raw_dir`) and the report.
    """
    report = ManifestReport()
    rows: list[dict] = []
    first_path_of_hash: dict[str, str] = {}
    for corpus in corpora:
        files = find_audio(raw_dir / corpus)
        report.found[corpus] = len(files)
        for path in tqdm(files, desc=f"fetch: reading {corpus}", unit="clip"):
            relpath = path.relative_to(raw_dir).as_posix()
            try:
                labels = PARSERS[corpus](path.name)
            except LabelError as error:
                report.unparseable.append(f"{relpath}: {error}")
                continue
            try:
                samples, sample_rate = decode(path)  # (frames, channels)
            except AudioError as error:
                report.undecodable.append(f"{relpath}: {error.problem}")
                continue
            peak = peak_dbfs(mono(samples))  # as prediction judges it: the level of the mono mix
            if peak < silence_dbfs:
                report.silent.append(f"{relpath}: peak {peak:.1f} dBFS")
                continue
            digest = pcm_md5(samples)
            if digest in first_path_of_hash:
                report.duplicates.append(f"{relpath} = {first_path_of_hash[digest]}")
                continue
            first_path_of_hash[digest] = relpath
            rows.append(
                {
                    "clip_id": f"{corpus}/{path.stem}",
                    "path": relpath,
                    "corpus": corpus,
                    **dataclasses.asdict(labels),
                    "duration_s": round(samples.shape[0] / sample_rate, 6),
                    "sample_rate": sample_rate,
                    "channels": samples.shape[1],
                    "pcm_md5": digest,
                }
            )
        report.kept[corpus] = sum(row["corpus"] == corpus for row in rows)
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    duplicated_ids = manifest["clip_id"][manifest["clip_id"].duplicated()]
    if len(duplicated_ids):
        raise ValueError(f"two different clips share the name {duplicated_ids.iloc[0]}; rename one of them")
    return manifest, report
