"""The corpora, one entry each in CORPORA: how to parse a file name into speaker / emotion / sentence, how to
deal the corpus into six speaker-independent folds, and how fetch gets it; and the clip manifest built from
the decoded audio."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ser.audio import AudioError, decode, find_audio, mono, peak_dbfs
from ser.errors import UserError

# The project's label set, in the order of the model's outputs.
EMOTIONS: tuple[str, ...] = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
SPEAKER: tuple[str, ...] = ("corpus", "speaker")  # the columns that name a speaker: one within one corpus
N_FOLDS = 6  # every corpus is dealt into this many folds; fold k's test groups are tested in fold k only

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

# The six RAVDESS folds of the EmoBox benchmark (Ma et al., 2024): the test actors of each.
EMOBOX_FOLDS: dict[int, tuple[int, ...]] = {
    1: (1, 11, 20, 21),
    2: (4, 10, 12, 14),
    3: (8, 9, 19, 23),
    4: (3, 5, 7, 24),
    5: (2, 15, 16, 18),
    6: (6, 13, 17, 22),
}

# CREMA-D file names: <actor>_<sentence>_<emotion>_<level>, e.g. 1001_DFA_ANG_XX. Actors 1001-1091; their sex
# is in the official VideoDemographics.csv, of which this is the female list (every other actor is male).
CREMAD_ACTORS = range(1001, 1092)
CREMAD_FEMALE = frozenset(
    (1002, 1003, 1004, 1006, 1007, 1008, 1009, 1010, 1012, 1013, 1018, 1020, 1021, 1024, 1025, 1028, 1029, 1030,
     1037, 1043, 1046, 1047, 1049, 1052, 1053, 1054, 1055, 1056, 1058, 1060, 1061, 1063, 1072, 1073, 1074, 1075,
     1076, 1078, 1079, 1082, 1084, 1089, 1091)
)  # fmt: skip
CREMAD_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
CREMAD_LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": ""}  # XX: unspecified
CREMAD_SENTENCES = {
    "IEO": "it's eleven o'clock",
    "TIE": "that is exactly what happened",
    "IOM": "i'm on my way to the meeting",
    "IWW": "i wonder what this is about",
    "TAI": "the airplane is almost full",
    "MTI": "maybe tomorrow it will be cold",
    "IWL": "i would like a new alarm clock",
    "ITH": "i think i have a doctor's appointment",
    "DFA": "don't forget a jacket",
    "ITS": "i think i've seen this before",
    "TSI": "the surface is slick",
    "WSI": "we'll stop in a couple of minutes",
}

MANIFEST_COLUMNS = (
    "clip_id", "path", "corpus", "speaker", "gender", "emotion", "statement", "intensity", "repetition",
    "duration_s", "sample_rate", "channels", "pcm_md5",
)  # fmt: skip


class LabelError(UserError, ValueError):
    """A file name that does not follow its corpus's naming scheme."""


@dataclasses.dataclass(frozen=True)
class ClipLabels:
    speaker: str  # RAVDESS: "Actor_07"; TESS: "OAF" or "YAF"; CREMA-D: "1001"
    gender: str  # "male" | "female"
    emotion: str  # one of EMOTIONS
    statement: str  # RAVDESS and CREMA-D: the sentence; TESS: the word
    intensity: str = ""  # RAVDESS: "normal" | "strong"; CREMA-D: "low" | "medium" | "high" | "" (unspecified)
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


def parse_cremad_name(name: str) -> ClipLabels:
    """Labels of a CREMA-D file name such as `1001_DFA_ANG_XX.wav` (actor 1001, "don't forget a jacket", angry)."""
    fields = Path(name).stem.split("_")
    if len(fields) != 4:
        raise LabelError(f"{name}: expected <actor>_<sentence>_<emotion>_<level>, like 1001_DFA_ANG_XX")
    actor, sentence, emotion, level = fields
    if not (actor.isascii() and actor.isdigit() and int(actor) in CREMAD_ACTORS):
        raise LabelError(f"{name}: unknown actor {actor!r}; expected {CREMAD_ACTORS[0]}-{CREMAD_ACTORS[-1]}")
    for value, known, what in (
        (sentence, CREMAD_SENTENCES, "sentence"),
        (emotion, CREMAD_EMOTIONS, "emotion"),
        (level, CREMAD_LEVELS, "level"),
    ):
        if value not in known:
            raise LabelError(f"{name}: unknown {what} {value!r}; expected one of {sorted(known)}")
    return ClipLabels(
        speaker=actor,
        gender="female" if int(actor) in CREMAD_FEMALE else "male",
        emotion=CREMAD_EMOTIONS[emotion],
        statement=CREMAD_SENTENCES[sentence],
        intensity=CREMAD_LEVELS[level],
    )


def ravdess_folds(actors: Iterable[str]) -> dict[str, int]:
    """The EmoBox fold in which each RAVDESS actor (`Actor_07`) is tested."""
    fold_of = {f"Actor_{n:02d}": fold for fold, numbers in EMOBOX_FOLDS.items() for n in numbers}
    return {actor: fold_of[actor] for actor in actors}


def tess_folds(words: Iterable[str]) -> dict[str, int]:
    """TESS has two speakers, so its folds are of words: the sorted words present, dealt round-robin."""
    return {word: i % N_FOLDS + 1 for i, word in enumerate(sorted(set(words)))}


def cremad_folds(actors: Iterable[str]) -> dict[str, int]:
    """Each CREMA-D actor's fold: the 91 actors, the men in ID order and then the women in ID order, dealt
    round-robin into the six folds (the women continue where the men stop, so fold sizes differ by one at
    most). A pure function of the ID: any subset of actors gets the folds the full corpus gives it."""
    males = [a for a in CREMAD_ACTORS if a not in CREMAD_FEMALE]
    females = [a for a in CREMAD_ACTORS if a in CREMAD_FEMALE]
    fold_of = {str(actor): i % N_FOLDS + 1 for i, actor in enumerate(males + females)}
    return {actor: fold_of[str(actor)] for actor in actors}


@dataclasses.dataclass(frozen=True)
class Corpus:
    """One corpus: everything about it that the pipeline needs, in one place."""

    name: str  # its folder under data/raw and under $SER_DATA_MIRROR, and its key in params.yaml's fetch
    title: str
    parse: Callable[[str], ClipLabels]  # file name -> labels; raises LabelError
    fold_by: str  # the manifest column whose values are dealt into folds and never share two roles of a fold
    folds: Callable[[Iterable[str]], dict[str, int]]  # values of `fold_by` present -> the fold testing each
    source: str  # how fetch gets it: "zip" (one verified archive) | "lfs" (file by file from a Git LFS store)


CORPORA: dict[str, Corpus] = {
    corpus.name: corpus
    for corpus in (
        Corpus("ravdess", "RAVDESS speech", parse_ravdess_name, "speaker", ravdess_folds, "zip"),
        Corpus("tess", "TESS", parse_tess_name, "statement", tess_folds, "zip"),
        Corpus("cremad", "CREMA-D", parse_cremad_name, "speaker", cremad_folds, "lfs"),
    )
}


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
    speakers: dict[str, int] = dataclasses.field(default_factory=dict)  # speakers among the kept clips
    unparseable: list[str] = dataclasses.field(default_factory=list)  # "path: reason"
    undecodable: list[str] = dataclasses.field(default_factory=list)
    silent: list[str] = dataclasses.field(default_factory=list)
    duplicates: list[str] = dataclasses.field(default_factory=list)  # "dropped path = kept path"
    conflicting: list[str] = dataclasses.field(default_factory=list)  # "path (emotion) = path (emotion)"

    LISTS = ("unparseable", "undecodable", "silent", "duplicates", "conflicting")

    def as_dict(self) -> dict:
        """Counts first (numbers, for `dvc metrics show`), then the names behind them."""
        return {
            "found": self.found,
            "kept": self.kept,
            "speakers": self.speakers,
            "left_out": {name: len(getattr(self, name)) for name in self.LISTS},
            **{name: getattr(self, name) for name in self.LISTS},
        }

    def lines(self) -> list[str]:
        out = [
            f"{corpus}: {self.found.get(corpus, 0)} clips found, {self.kept.get(corpus, 0)} kept, "
            f"{self.speakers.get(corpus, 0)} speakers"
            for corpus in self.found
        ]
        for title, entries in (
            ("unparseable names", self.unparseable),
            ("files that do not decode", self.undecodable),
            ("all-silent clips", self.silent),
            ("duplicates removed (same decoded audio, same label; the first is kept)", self.duplicates),
            ("duplicates with conflicting labels (same decoded audio; all copies left out)", self.conflicting),
        ):
            out.append(f"{title}: {len(entries)}")
            out.extend(f"  - {entry}" for entry in entries)
        return out


def build_manifest(raw_dir: Path, corpora: Iterable[str], silence_dbfs: float) -> tuple[pd.DataFrame, ManifestReport]:
    """Decode every clip under `raw_dir/<corpus>/` once, parse its labels, and tabulate it.

    Files whose names do not parse, that do not decode, that are empty or all-silent (peak below
    `silence_dbfs`) are left out and listed in the report. Clips with the same decoded audio are kept once
    (the first met: corpus by corpus in `corpora` order, files in name order) when their emotions agree;
    when they disagree, no label can be trusted and every copy is left out. Returns the manifest
    (MANIFEST_COLUMNS, `path` relative to `raw_dir`) and the report.
    """
    report = ManifestReport()
    rows: list[dict] = []
    for corpus in corpora:
        files = find_audio(raw_dir / corpus)
        report.found[corpus] = len(files)
        for path in tqdm(files, desc=f"fetch: reading {corpus}", unit="clip"):
            relpath = path.relative_to(raw_dir).as_posix()
            try:
                labels = CORPORA[corpus].parse(path.name)
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
            rows.append(
                {
                    "clip_id": f"{corpus}/{path.stem}",
                    "path": relpath,
                    "corpus": corpus,
                    **dataclasses.asdict(labels),
                    "duration_s": round(samples.shape[0] / sample_rate, 6),
                    "sample_rate": sample_rate,
                    "channels": samples.shape[1],
                    "pcm_md5": pcm_md5(samples),
                }
            )
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    keep = np.ones(len(manifest), dtype=bool)
    for _, copies in manifest.groupby("pcm_md5", sort=False):
        if len(copies) == 1:
            continue
        first = copies.iloc[0]
        if copies["emotion"].nunique() > 1:
            report.conflicting.append(" = ".join(f"{row.path} ({row.emotion})" for row in copies.itertuples()))
            keep[copies.index] = False
        else:
            report.duplicates.extend(f"{row.path} = {first.path}" for row in copies.iloc[1:].itertuples())
            keep[copies.index[1:]] = False
    manifest = manifest[keep].reset_index(drop=True)
    for corpus in report.found:
        kept = manifest[manifest["corpus"] == corpus]
        report.kept[corpus], report.speakers[corpus] = len(kept), kept["speaker"].nunique()
    duplicated_ids = manifest["clip_id"][manifest["clip_id"].duplicated()]
    if len(duplicated_ids):
        raise ValueError(f"two different clips share the name {duplicated_ids.iloc[0]}; rename one of them")
    return manifest, report
