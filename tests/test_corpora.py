"""Label parsing from file names, the manifest builder, and evenly spaced subsets."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser.audio import AudioError, decode, find_audio
from ser.corpora import (
    CORPORA,
    EMOTIONS,
    MANIFEST_COLUMNS,
    ClipLabels,
    LabelError,
    build_manifest,
    evenly_spaced,
    parse_cremad_name,
    parse_ravdess_name,
    parse_tess_name,
)

SILENCE_DBFS = -60.0  # dB re full scale: the level the tests give build_manifest
STATEMENTS = {"01": "kids are talking by the door", "02": "dogs are sitting by the door"}


def read_mirror_manifest(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / "MANIFEST.tsv", newline="") as handle:
        return {row["relpath"]: row for row in csv.DictReader(handle, delimiter="\t")}


def mirror_files(mirror: Path, corpus: str, count: int) -> tuple[Path, list[Path], dict[str, dict[str, str]]]:
    """The corpus's folder in the mirror, its `count` audio files (find_audio sees every one of them) and the
    mirror's MANIFEST.tsv rows by relative path (the tests' check only: the code never reads it)."""
    folder = mirror / corpus
    files = find_audio(folder)
    others = [p for p in folder.rglob("*") if p.is_file() and p.name not in ("MANIFEST.tsv", "SOURCE.md")]
    assert sorted(others) == files and len(files) == count
    expected = read_mirror_manifest(folder)
    assert {p.relative_to(folder).as_posix() for p in files} == set(expected)
    return folder, files, expected


# --- known answers -----------------------------------------------------------------------------------


def test_parse_ravdess_known_name():
    assert parse_ravdess_name("03-01-05-02-01-02-12.wav") == ClipLabels(
        speaker="Actor_12",
        gender="female",
        emotion="angry",
        statement="kids are talking by the door",
        intensity="strong",
        repetition=2,
    )


def test_parse_ravdess_odd_actor_is_male_and_flac_name_parses():
    labels = parse_ravdess_name("03-01-02-01-02-01-07.flac")
    assert (labels.speaker, labels.gender, labels.emotion) == ("Actor_07", "male", "calm")
    assert (labels.intensity, labels.statement, labels.repetition) == (
        "normal",
        "dogs are sitting by the door",
        1,
    )


@pytest.mark.parametrize(
    ("code", "emotion"),
    [
        ("01", "neutral"),
        ("02", "calm"),
        ("03", "happy"),
        ("04", "sad"),
        ("05", "angry"),
        ("06", "fearful"),
        ("07", "disgust"),
        ("08", "surprised"),
    ],
)
def test_parse_ravdess_emotion_codes(code, emotion):
    assert parse_ravdess_name(f"03-01-{code}-01-01-01-24.wav").emotion == emotion


@pytest.mark.parametrize(
    ("name", "speaker", "emotion", "word"),
    [
        ("OAF_back_ps.wav", "OAF", "surprised", "back"),
        ("OAF_food_fear", "OAF", "fearful", "food"),
        ("OA_bite_neutral.wav", "OAF", "neutral", "bite"),
        ("YAF_germ_angry.wav", "YAF", "angry", "germ"),
        ("YAF_dog_disgust.flac", "YAF", "disgust", "dog"),
        ("YAF_late_happy.wav", "YAF", "happy", "late"),
        ("OAF_wife_sad.wav", "OAF", "sad", "wife"),
    ],
)
def test_parse_tess_known_names(name, speaker, emotion, word):
    assert parse_tess_name(name) == ClipLabels(
        speaker=speaker, gender="female", emotion=emotion, statement=word, intensity="", repetition=1
    )


@pytest.mark.parametrize(
    "name",
    [
        "03-01-05-02-01-12.wav",  # six fields
        "03-01-05-02-01-02-12-01.wav",  # eight fields
        "3-1-5-2-1-2-12.wav",  # one-digit fields
        "03-01-05-02-01-02-xx.wav",  # not digits
        "03-02-05-02-01-02-12.wav",  # song channel
        "01-01-05-02-01-02-12.wav",  # audio-video modality
        "03-01-09-02-01-02-12.wav",  # emotion 09
        "03-01-00-02-01-02-12.wav",  # emotion 00
        "03-01-05-03-01-02-12.wav",  # intensity 03
        "03-01-05-02-03-02-12.wav",  # statement 03
        "03-01-05-02-01-03-12.wav",  # repetition 03
        "03-01-05-02-01-02-25.wav",  # actor 25
        "03-01-05-02-01-02-00.wav",  # actor 00
        "OAF_back_ps.wav",  # a TESS name
    ],
)
def test_parse_ravdess_bad_names_raise_with_the_name(name):
    with pytest.raises(LabelError) as caught:
        parse_ravdess_name(name)
    assert name in str(caught.value)


@pytest.mark.parametrize(
    "name",
    [
        "OAF_back_fearful.wav",  # unknown emotion
        "OAF_back_calm.wav",  # TESS has no calm
        "XYZ_back_ps.wav",  # unknown speaker
        "OAF_back.wav",  # two fields
        "OAF_back_ps_2.wav",  # four fields
        "OAF_b4ck_ps.wav",  # not a plain word
        "03-01-05-02-01-02-12.wav",  # a RAVDESS name
    ],
)
def test_parse_tess_bad_names_raise_with_the_name(name):
    with pytest.raises(LabelError) as caught:
        parse_tess_name(name)
    assert name in str(caught.value)


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("1001_DFA_ANG_XX.wav", ClipLabels("1001", "male", "angry", "don't forget a jacket", "")),
        ("1002_IEO_HAP_HI.flac", ClipLabels("1002", "female", "happy", "it's eleven o'clock", "high")),
        ("1091_WSI_SAD_LO.wav", ClipLabels("1091", "female", "sad", "we'll stop in a couple of minutes", "low")),
        ("1090_TSI_FEA_MD.wav", ClipLabels("1090", "male", "fearful", "the surface is slick", "medium")),
        ("1052_ITS_DIS_XX.wav", ClipLabels("1052", "female", "disgust", "i think i've seen this before", "")),
        ("1017_IWW_NEU_XX.wav", ClipLabels("1017", "male", "neutral", "i wonder what this is about", "")),
    ],
)
def test_parse_cremad_known_names(name, labels):
    assert parse_cremad_name(name) == labels


@pytest.mark.parametrize(
    "name",
    [
        "1000_DFA_ANG_XX.wav",  # actor below 1001
        "1092_DFA_ANG_XX.wav",  # actor above 1091
        "１００１_DFA_ANG_XX.wav",  # not ASCII digits
        "1001_XYZ_ANG_XX.wav",  # unknown sentence
        "1001_DFA_SUR_XX.wav",  # CREMA-D has no surprise
        "1001_DFA_ANG_VH.wav",  # unknown level
        "1001_DFA_ANG.wav",  # three fields
        "OAF_back_ps.wav",  # a TESS name
    ],
)
def test_parse_cremad_bad_names_raise_with_the_name(name):
    with pytest.raises(LabelError) as caught:
        parse_cremad_name(name)
    assert name in str(caught.value)


# --- every name in the real mirror ---------------------------------------------------------------------


def test_every_ravdess_name_in_the_mirror_parses_and_matches_its_manifest(mirror):
    folder, files, expected = mirror_files(mirror, "ravdess", 1440)

    labels = {}
    for path in files:
        got = parse_ravdess_name(path.name)
        row = expected[path.relative_to(folder).as_posix()]
        assert got.emotion == row["emotion"], path
        assert got.speaker == row["speaker"] == path.parent.name, path
        assert got.gender == row["gender"], path
        assert got.intensity == {"01": "normal", "02": "strong"}[row["intensity"]], path
        assert got.statement == STATEMENTS[row["statement"]], path
        assert got.repetition == int(row["repetition"]), path
        labels[path.name] = got

    values = list(labels.values())
    assert {v.emotion for v in values} == set(EMOTIONS)
    assert all(v.emotion in EMOTIONS for v in values)
    assert Counter(v.speaker for v in values) == {f"Actor_{i:02d}": 60 for i in range(1, 25)}
    assert all((v.gender == "male") == (int(v.speaker[-2:]) % 2 == 1) for v in values)
    # Neutral is spoken at normal intensity only: 2 statements x 2 repetitions; every other emotion x 8.
    emotions = Counter(v.emotion for v in values)
    assert emotions == {e: 96 if e == "neutral" else 192 for e in EMOTIONS}
    assert {v.intensity for v in values if v.emotion == "neutral"} == {"normal"}


def test_every_tess_name_in_the_mirror_parses_and_matches_its_manifest(mirror):
    folder, files, expected = mirror_files(mirror, "tess", 2800)
    manifest_emotion = {"fear": "fearful", "pleasant_surprise": "surprised"}

    values = []
    for path in files:
        got = parse_tess_name(path.name)
        row = expected[path.relative_to(folder).as_posix()]
        assert got.emotion == manifest_emotion.get(row["emotion"], row["emotion"]), path
        assert got.speaker == row["speaker"] == path.parent.name[:3], path
        assert got.statement == row["word"], path
        assert got.gender == "female"
        assert (got.intensity, got.repetition) == ("", 1)
        values.append(got)

    assert {v.emotion for v in values} == set(EMOTIONS) - {"calm"}
    assert {v.speaker for v in values} == {"OAF", "YAF"}
    assert len({v.statement for v in values}) == 200
    # Each speaker says each of the 200 words once in each of the 7 emotions.
    assert Counter((v.speaker, v.emotion) for v in values) == {
        (s, e): 200 for s in ("OAF", "YAF") for e in EMOTIONS if e != "calm"
    }
    assert len({(v.speaker, v.statement, v.emotion) for v in values}) == 2800


def test_every_cremad_name_in_the_mirror_parses_and_matches_its_manifest(mirror):
    folder, files, expected = mirror_files(mirror, "cremad", 2290)
    values = []
    for path in files:
        got = parse_cremad_name(path.name)
        row = expected[path.relative_to(folder).as_posix()]
        assert got.speaker == row["original_name"][:4], path
        assert got.gender == row["actor_sex"].lower(), path
        values.append(got)
    assert {v.emotion for v in values} == {"angry", "disgust", "fearful", "happy", "neutral", "sad"}
    assert len({v.speaker for v in values}) == 28 and len({v.statement for v in values}) == 12
    speakers = Counter(v.speaker for v in values)
    assert speakers["1019"] == 76 and {n for s, n in speakers.items() if s != "1019"} == {82}  # SOURCE.md
    assert Counter(v.gender for v in values) == {"male": 14 * 82 - 6, "female": 14 * 82}
    # IEO is spoken at three levels and unspecified; the other sentences unspecified only
    assert {v.intensity for v in values if v.statement != "it's eleven o'clock"} == {""}
    assert {v.intensity for v in values if v.statement == "it's eleven o'clock"} == {"", "low", "medium", "high"}


# --- build_manifest -------------------------------------------------------------------------------------

RAVDESS_CLIPS = (
    "Actor_01/03-01-01-01-01-01-01.flac",
    "Actor_01/03-01-05-02-02-01-01.flac",
    "Actor_12/03-01-05-02-01-02-12.flac",
)
TESS_CLIPS = ("OAF_angry/OAF_back_angry.flac", "YAF_sad/YAF_bite_sad.flac")
CREMAD_CLIPS = ("AudioWAV/1018_IEO_HAP_HI.flac",)
# byte-identical in the official release, with different labels: neither can be trusted (cremad/SOURCE.md)
CREMAD_CONFLICT = ("AudioWAV/1017_IWW_ANG_XX.flac", "AudioWAV/1017_IWW_FEA_XX.flac")


def copy_real(mirror: Path, raw: Path, corpus: str, relpath: str) -> Path:
    dest = raw / corpus / relpath
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mirror / corpus / relpath, dest)
    return dest


@pytest.fixture
def messy_raw(tmp_path, mirror):
    """A raw dir with real clips plus every kind of bad file; returns (raw, {kind: [relpath]})."""
    raw = tmp_path / "raw"
    for relpath in RAVDESS_CLIPS:
        copy_real(mirror, raw, "ravdess", relpath)
    for relpath in TESS_CLIPS:
        copy_real(mirror, raw, "tess", relpath)
    for relpath in (*CREMAD_CLIPS, *CREMAD_CONFLICT):
        copy_real(mirror, raw, "cremad", relpath)
    bad: dict[str, list[str]] = {
        "unparseable": [],
        "undecodable": [],
        "silent": [],
        "duplicates": [],
        "conflicting": [],
    }
    bad["conflicting"].append(
        "cremad/AudioWAV/1017_IWW_ANG_XX.flac (angry) = cremad/AudioWAV/1017_IWW_FEA_XX.flac (fearful)"
    )

    # Names that do not parse (checked before decoding, so the content does not matter).
    for relpath in ("ravdess/Actor_01/notes-01.wav", "tess/OAF_angry/OAF_back.wav"):
        shutil.copyfile(raw / "tess" / TESS_CLIPS[0], raw / relpath)
        bad["unparseable"].append(relpath)
    # Random bytes, a zero-length file, a header with no frames, and NaN samples, under valid names.
    corrupt = raw / "ravdess/Actor_01/03-01-04-01-01-01-01.wav"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (raw / "ravdess/Actor_12/03-01-04-01-01-01-12.flac").write_bytes(b"")
    sf.write(raw / "tess/YAF_sad/YAF_dog_sad.wav", np.zeros((0, 1)), 16000)
    nan = np.full(800, 0.1, dtype=np.float32)
    nan[100] = np.nan
    sf.write(raw / "tess/YAF_sad/YAF_late_sad.wav", nan, 16000, subtype="FLOAT")
    bad["undecodable"] += [
        "ravdess/Actor_01/03-01-04-01-01-01-01.wav",
        "ravdess/Actor_12/03-01-04-01-01-01-12.flac",
        "tess/YAF_sad/YAF_dog_sad.wav",
        "tess/YAF_sad/YAF_late_sad.wav",
    ]
    # An all-silent clip.
    sf.write(raw / "tess/YAF_sad/YAF_germ_sad.wav", np.zeros(16000, dtype=np.float32), 16000)
    bad["silent"].append("tess/YAF_sad/YAF_germ_sad.wav")
    # A byte-identical copy (sorted after its original), and the same PCM in a WAV container.
    dup = raw / "ravdess/Actor_01/03-01-01-01-01-02-01.flac"
    shutil.copyfile(raw / "ravdess" / RAVDESS_CLIPS[0], dup)
    samples, sr = sf.read(raw / "tess" / TESS_CLIPS[0], dtype="int16")
    sf.write(raw / "tess/OAF_angry/OAF_bean_angry.wav", samples, sr, subtype="PCM_16")
    bad["duplicates"] += [
        "ravdess/Actor_01/03-01-01-01-01-02-01.flac = ravdess/Actor_01/03-01-01-01-01-01-01.flac",
        "tess/OAF_angry/OAF_bean_angry.wav = tess/OAF_angry/OAF_back_angry.flac",
    ]
    # TESS quirk: an AIFF file with a .wav name decodes and is kept.
    samples, sr = sf.read(mirror / "tess/YAF_angry/YAF_germ_angry.flac", dtype="int16")
    (raw / "tess/YAF_angry").mkdir()
    sf.write(raw / "tess/YAF_angry/YAF_germ_angry.wav", samples, sr, format="AIFF", subtype="PCM_16")
    return raw, bad


def test_build_manifest_reports_every_bad_file_and_keeps_good_clips_once(messy_raw, mirror):
    raw, bad = messy_raw
    manifest, report = build_manifest(raw, CORPORA, SILENCE_DBFS)

    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    good = (
        [f"ravdess/{r}" for r in RAVDESS_CLIPS]
        + [f"tess/{r}" for r in TESS_CLIPS]
        + [f"cremad/{r}" for r in CREMAD_CLIPS]
    )
    good.append("tess/YAF_angry/YAF_germ_angry.wav")
    assert sorted(manifest["path"]) == sorted(good)
    assert manifest["clip_id"].is_unique and manifest["pcm_md5"].is_unique

    for kind in ("unparseable", "undecodable", "silent"):
        assert sorted(e.split(": ")[0] for e in getattr(report, kind)) == sorted(bad[kind]), kind
    assert sorted(report.duplicates) == sorted(bad["duplicates"])
    assert report.conflicting == bad["conflicting"]  # both copies left out, each named with its label
    # Each bad file is listed exactly once, and none of them is in the manifest.
    listed = [e.split(": ")[0].split(" = ")[0] for k in bad if k != "conflicting" for e in getattr(report, k)]
    listed += [part.split(" (")[0] for e in report.conflicting for part in e.split(" = ")]
    assert len(listed) == len(set(listed)) == sum(len(v) for v in bad.values()) + 1
    assert not set(listed) & set(manifest["path"])
    # The reasons are the audio module's message for each kind of fault, with the path inside raw/.
    for entry in report.undecodable:
        relpath, problem = entry.split(": ", 1)
        with pytest.raises(AudioError) as error:
            decode(raw / relpath)
        assert error.value.problem == problem
    assert any("NaN" in e for e in report.undecodable)
    assert any("no audio samples" in e for e in report.undecodable)
    assert all("dBFS" in e for e in report.silent)

    on_disk = {c: len([p for p in (raw / c).rglob("*") if p.is_file()]) for c in CORPORA}
    assert report.found == on_disk
    assert report.kept == {"ravdess": 3, "tess": 3, "cremad": 1}
    assert report.speakers == {"ravdess": 2, "tess": 2, "cremad": 1}
    lines = report.lines()
    assert f"ravdess: {on_disk['ravdess']} clips found, 3 kept, 2 speakers" in lines
    assert "duplicates removed (same decoded audio, same label; the first is kept): 2" in lines
    assert "duplicates with conflicting labels (same decoded audio; all copies left out): 1" in lines
    assert report.as_dict()["left_out"]["conflicting"] == 1


def test_build_manifest_rows_have_the_right_labels_and_audio_facts(messy_raw, mirror):
    raw, _ = messy_raw
    manifest, _ = build_manifest(raw, CORPORA, SILENCE_DBFS)
    rows = manifest.set_index("path")

    for path, row in rows.iterrows():
        info = sf.info(raw / path)
        assert row["sample_rate"] == info.samplerate == 16000
        assert row["channels"] == info.channels == 1
        assert row["duration_s"] == pytest.approx(info.frames / info.samplerate, abs=1e-6)
        assert 1.0 < row["duration_s"] < 6.0
        corpus, stem = path.split("/")[0], Path(path).stem
        assert row["corpus"] == corpus and row["clip_id"] == f"{corpus}/{stem}"

    angry = rows.loc["ravdess/Actor_12/03-01-05-02-01-02-12.flac"]
    assert (angry["speaker"], angry["gender"], angry["emotion"]) == ("Actor_12", "female", "angry")
    assert (angry["intensity"], angry["repetition"]) == ("strong", 2)
    assert angry["statement"] == "kids are talking by the door"
    tess = rows.loc["tess/OAF_angry/OAF_back_angry.flac"]
    assert (tess["speaker"], tess["emotion"], tess["statement"], tess["intensity"]) == (
        "OAF",
        "angry",
        "back",
        "",
    )


def test_build_manifest_silence_threshold(tmp_path, write_tone):
    raw = tmp_path / "raw"
    write_tone(raw / "tess/OAF_x/OAF_back_sad.wav", 440, amp=10 ** (-50 / 20))  # peak -50 dBFS
    write_tone(raw / "tess/OAF_x/OAF_bar_sad.wav", 550, amp=0.5)

    manifest, report = build_manifest(raw, ["tess"], SILENCE_DBFS)
    assert len(manifest) == 2 and report.silent == []

    manifest, report = build_manifest(raw, ["tess"], -40.0)
    assert list(manifest["path"]) == ["tess/OAF_x/OAF_bar_sad.wav"]
    assert len(report.silent) == 1 and report.silent[0].startswith("tess/OAF_x/OAF_back_sad.wav: peak -50")


def test_build_manifest_drops_the_known_duplicate_pair_of_the_real_corpus(tmp_path, mirror):
    raw = tmp_path / "raw"
    pair = ("Actor_07/03-01-03-01-02-01-07.flac", "Actor_07/03-01-03-01-02-02-07.flac")
    for relpath in (*pair, "Actor_07/03-01-03-01-01-01-07.flac"):
        copy_real(mirror, raw, "ravdess", relpath)
    manifest, report = build_manifest(raw, ["ravdess"], SILENCE_DBFS)
    assert len(manifest) == 2
    assert report.duplicates == [f"ravdess/{pair[1]} = ravdess/{pair[0]}"]


def test_build_manifest_of_an_empty_or_missing_corpus_folder(tmp_path):
    (tmp_path / "ravdess").mkdir()
    manifest, report = build_manifest(tmp_path, CORPORA, SILENCE_DBFS)
    assert list(manifest.columns) == list(MANIFEST_COLUMNS) and manifest.empty
    assert report.found == report.kept == {"ravdess": 0, "tess": 0, "cremad": 0}


# --- evenly_spaced --------------------------------------------------------------------------------------


def test_evenly_spaced_known_answers():
    items = list(range(10))
    assert evenly_spaced(items, None) == items
    assert evenly_spaced(items, None) is not items
    assert evenly_spaced(items, 10) == items
    assert evenly_spaced(items, 25) == items
    assert evenly_spaced(items, 4) == [0, 3, 6, 9]
    assert evenly_spaced(items, 2) == [0, 9]
    assert evenly_spaced(items, 1) == [0]
    assert evenly_spaced(list(range(101)), 3) == [0, 50, 100]
    assert evenly_spaced(list("abcdefghijk"), 6) == list("acegik")
    assert evenly_spaced([], 3) == []


@pytest.mark.parametrize("n", [2, 3, 7, 10, 33, 1440])
def test_evenly_spaced_invariants(n):
    items = list(range(n))
    for limit in {2, 3, n // 2, n - 1} - {0, 1}:
        if limit >= n:
            continue
        got = evenly_spaced(items, limit)
        assert len(got) == limit
        assert got[0] == 0 and got[-1] == n - 1
        gaps = np.diff(got)
        assert (gaps > 0).all()
        assert gaps.max() - gaps.min() <= 1
