"""params.yaml loading: types, unknown and mistyped keys, missing keys and files, bad YAML."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ser.params import (
    AudioParams,
    AugmentParams,
    FetchParams,
    LfsSourceParams,
    MelspecParams,
    Params,
    ParamsError,
    SourceParams,
    SplitParams,
    from_dict,
    load_params,
    load_section,
    naming,
)

REPO_PARAMS = Path(__file__).parents[1] / "params.yaml"


@pytest.fixture(scope="module")
def raw_params() -> dict:
    return yaml.safe_load(REPO_PARAMS.read_text())


@pytest.fixture
def edited(tmp_path, raw_params):
    """edited(change) -> path of a copy of params.yaml after `change(raw_dict)` edited it in place."""

    def make(change) -> Path:
        raw = copy.deepcopy(raw_params)
        change(raw)
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    return make


def set_key(keys: tuple[str, ...], value):
    def change(raw: dict) -> None:
        node = raw
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return change


def delete_key(keys: tuple[str, ...]):
    def change(raw: dict) -> None:
        node = raw
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return change


def test_repo_params_load_with_the_documented_types():
    params = load_params(REPO_PARAMS)
    assert isinstance(params, Params)
    assert isinstance(params.fetch, FetchParams) and isinstance(params.fetch.ravdess, SourceParams)
    assert params.fetch.ravdess.url.startswith("https://")
    assert params.fetch.ravdess.md5 == "bc696df654c87fed845eb13823edef8a"
    assert params.fetch.ravdess.bytes == 208468073
    assert params.fetch.tess.md5 is None and params.fetch.tess.bytes is None
    assert params.fetch.limit_per_corpus is None
    assert type(params.audio.silence_dbfs) is float and params.audio.silence_dbfs < 0
    assert isinstance(params.split, SplitParams) and type(params.split.seed) is int
    assert params.cv.folds == (1,)  # one fold by default, so that `dvc repro` stays within its hour
    assert params.train.corpora == ("ravdess", "tess", "cremad")
    assert isinstance(params.fetch.cremad, LfsSourceParams) and params.fetch.cremad.folder == "AudioWAV"
    assert isinstance(params.audio, AudioParams) and type(params.audio.sample_rate) is int
    assert type(params.audio.duration) is float
    assert isinstance(params.augment, AugmentParams) and type(params.augment.copies) is int
    assert isinstance(params.augment.noise_snr_db, tuple) and len(params.augment.noise_snr_db) == 2
    assert all(type(v) is float for v in (*params.augment.noise_snr_db, *params.augment.stretch))
    assert isinstance(params.melspec, MelspecParams) and params.melspec.fmax is None
    assert type(params.melspec.n_fft) is int and type(params.melspec.window) is str
    assert type(params.train.weight_decay) is float and params.train.balance in ("none", "class", "corpus_class")
    assert type(params.model.size) is str


def test_loaded_values_are_the_values_in_the_file(raw_params):
    params = load_params(REPO_PARAMS)
    for section in ("split", "cv", "audio", "augment", "melspec", "model", "train"):
        for key, value in raw_params[section].items():
            got = getattr(getattr(params, section), key)
            assert got == (tuple(value) if isinstance(value, list) else value), f"{section}.{key}"
    for corpus in ("ravdess", "tess", "cremad"):
        assert dataclasses.asdict(getattr(params.fetch, corpus)) == raw_params["fetch"][corpus]


def test_load_section_loads_one_section():
    assert load_section(REPO_PARAMS, "split", SplitParams) == load_params(REPO_PARAMS).split
    with pytest.raises(ParamsError, match="no section 'no_such_section'"):
        load_section(REPO_PARAMS, "no_such_section", SplitParams)


def test_ints_become_floats_and_nothing_else_is_converted(edited):
    params = load_params(edited(lambda raw: raw["audio"].update(duration=3)))
    assert params.audio.duration == 3.0 and type(params.audio.duration) is float
    assert params.augment.noise_snr_db == (10.0, 30.0) and type(params.augment.noise_snr_db) is tuple


def test_an_unknown_section_is_rejected_naming_it(edited):
    path = edited(set_key(("augmnet",), {"copies": 2}))
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert "augmnet" in str(caught.value) and str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("keys", "unknown"),
    [
        (("split", "folds"), "folds"),
        (("fetch", "ravdess", "sha256"), "sha256"),
        (("melspec", "n_mfcc"), "n_mfcc"),
    ],
)
def test_an_unknown_key_is_rejected_naming_key_and_file(edited, keys, unknown):
    path = edited(set_key(keys, 2))
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    message = str(caught.value)
    assert unknown in message and keys[0] in message and str(path) in message


@pytest.mark.parametrize(
    ("keys", "value"),
    [
        (("cv", "folds"), "one"),
        (("cv", "folds"), None),
        (("cv", "folds"), ["1"]),
        (("train", "corpora"), "ravdess"),
        (("augment", "copies"), 1.5),
        (("split", "seed"), True),
        (("audio", "sample_rate"), "16000"),
        (("audio", "duration"), True),
        (("audio", "trim_db"), "40"),
        (("melspec", "window"), 5),
        (("melspec", "fmax"), "8000"),
        (("fetch", "limit_per_corpus"), 2.5),
        (("fetch", "ravdess", "md5"), 123),
        (("fetch", "ravdess", "url"), None),
        (("augment", "noise_snr_db"), [10.0]),
        (("augment", "noise_snr_db"), 10.0),
        (("augment", "stretch"), [0.9, "1.1"]),
        (("split",), 3),
    ],
)
def test_a_mistyped_value_is_rejected_naming_the_key(edited, keys, value):
    path = edited(set_key(keys, value))
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    message = str(caught.value)
    assert ".".join(keys) in message.replace(": ", ".").replace(f"{path}.", ""), message
    assert str(path) in message


@pytest.mark.parametrize(
    "keys",
    [("fetch", "ravdess", "url"), ("fetch", "tess"), ("melspec",), ("fetch", "tess", "md5"), ("split", "seed")],
)
def test_a_missing_required_key_is_rejected_naming_it(edited, keys):
    path = edited(delete_key(keys))
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert str(caught.value) == f"{path}: {'.'.join(keys)}: missing key"


def test_warping_named_corpora_without_a_warp_is_refused(edited):
    path = edited(set_key(("train", "freq_warp_corpora"), ["ravdess"]))  # params.yaml's freq_warp is 0
    with pytest.raises(ParamsError, match=r"freq_warp_corpora warps nothing while freq_warp is 0"):
        load_params(path)


def test_a_params_path_that_is_a_folder_is_one_line(tmp_path):
    with pytest.raises(ParamsError, match=r": cannot read the params file: Is a directory$"):
        load_params(tmp_path)


def test_a_missing_file_is_reported(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ParamsError, match="not found") as caught:
        load_params(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("fetch: [unclosed\n", "not valid YAML"),
        ("split:\n  fold: 1\n bad indent: 2\n", "not valid YAML"),
        ("- a\n- list\n", "expected a mapping"),
        ("", "expected a mapping"),
    ],
)
def test_invalid_yaml_is_reported(tmp_path, text, reason):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=reason) as caught:
        load_params(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("keys", "value", "allowed"),
    [
        (("train", "epochs"), -1, "greater than or equal to 1"),
        (("train", "lr"), "abc", "a valid number"),
        (("train", "batch_size"), 0, "greater than or equal to 2"),
        (("cv", "folds"), [1, 7], "less than or equal to 6"),
        (("cv", "folds"), [2, 2], "a value is listed twice"),
        (("cv", "folds"), [], "at least 1 item"),
        (("train", "corpora"), ["tess", "tess"], "a value is listed twice"),
        (("audio", "sample_rate"), 0, "greater than or equal to 1"),
        (("audio", "duration"), 0, "greater than 0"),
        (("augment", "noise_prob"), 1.5, "less than or equal to 1"),
        (("train", "balance"), "speaker", "'none', 'class' or 'corpus_class'"),
        (("train", "mixup"), float("nan"), "finite number"),
        (("split", "seed"), -1, "greater than or equal to 0"),
        (("augment", "seed"), -3, "greater than or equal to 0"),
        (("train", "seed"), -1, "greater than or equal to 0"),
    ],
)
def test_an_out_of_range_value_is_one_line_naming_file_key_value_and_what_is_allowed(edited, keys, value, allowed):
    path = edited(set_key(keys, value))
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    message = str(caught.value)
    shown = ".".join(keys) + (".1" if value == [1, 7] else "")  # pydantic names the list item
    shown_value = 7 if value == [1, 7] else value
    assert message.startswith(f"{path}: {shown}: {shown_value!r} is not allowed (") and allowed in message
    assert "\n" not in message
    with pytest.raises(ParamsError) as caught:  # the stages load one section at a time: the same message
        load_section(path, keys[0], type(getattr(load_params(REPO_PARAMS), keys[0])))
    assert str(caught.value) == message


def test_a_renamed_key_names_its_new_name(edited):
    path = edited(set_key(("train", "l2"), 0.1))
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert str(caught.value) == f"{path}: train.l2 is now train.weight_decay: rename it"
    path = edited(set_key(("split", "fold"), 3))
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert str(caught.value) == f"{path}: split.fold is now cv.folds (a list of folds): rename it"


def test_a_retired_key_says_why_it_went(edited):
    path = edited(set_key(("split", "val_actors"), 4))
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert str(caught.value) == (
        f"{path}: split.val_actors: each fold now validates on as many speakers as it tests, half of each sex: "
        "remove it"
    )


def test_from_dict_builds_nested_dataclasses_and_names_where_it_failed():
    lfs = {"tree": "t", "pointers": "p/", "media": "m/", "folder": "AudioWAV"}
    raw = {
        "ravdess": {"url": "http://x/r.zip", "md5": None, "bytes": 10},
        "tess": {"url": "u", "md5": "AB", "bytes": None},
        "cremad": lfs,
    }
    fetch = from_dict(FetchParams, {**raw, "limit_per_corpus": None}, "test")
    assert fetch == FetchParams(
        SourceParams("http://x/r.zip", None, 10), SourceParams("u", "AB", None), LfsSourceParams(**lfs), None
    )
    with pytest.raises(ParamsError, match=r"^test: fetch\.ravdess: expected a mapping of keys, got 'http://x'$"):
        from_dict(FetchParams, "http://x", "test", ("fetch", "ravdess"))
    with pytest.raises(ParamsError, match=r"^test: fetch\.ravdess: 'http://x' is not allowed"):
        from_dict(FetchParams, {**raw, "ravdess": "http://x", "limit_per_corpus": None}, "test", ("fetch",))


# The cases, each with what its one line must say: the key, the value and what is allowed.
BAD_VALUES = {
    "model.size": ("7M", "model.size: '7M' is not a preset; known: tiny, "),
    "train.epochs": (-1, "train.epochs: -1 is not allowed (input should be greater than or equal to 1)"),
    "train.lr": ("abc", "train.lr: 'abc' is not allowed (input should be a valid number"),
    "split.fold": (7, "split.fold is now cv.folds (a list of folds): rename it"),
    "audio.sample_rate": (0, "audio.sample_rate: 0 is not allowed (input should be greater than or equal to 1)"),
    "train.batch_size": (0, "train.batch_size: 0 is not allowed (input should be greater than or equal to 2)"),
    "split.bogus_key": (3, "split.bogus_key: unknown key"),
    "trian.epochs": (3, "trian: unknown key"),
    "train.corpora": (["ravdess", "iemocap"], "train.corpora: ['iemocap'] are not corpora"),
    "train.versions_per_epoch_corpora": (["tes"], "train.versions_per_epoch_corpora: ['tes'] are not corpora"),
    # a check across a section's keys says what is wrong, not the whole section
    "train.freq_warp_corpora": (["iemocap"], "train: freq_warp_corpora names iemocap, which does not train"),
    # checks across sections: the front end's settings together, the masks against the axes they mask
    "melspec.fmax": (9000.0, "melspec.fmax 9000 Hz is above half of audio.sample_rate (8000 Hz): lower it, or null"),
    "melspec.fmin": (8000.0, "melspec.fmin 8000 Hz must be below melspec.fmax (8000 Hz)"),
    "melspec.window": ("kaiser", "melspec.window 'kaiser' is not a window scipy.signal.get_window knows"),
    "train.freq_mask_bands": (64, "train.freq_mask_bands 64 is not below the 64 mel bands of melspec.n_mels"),
    "train.time_mask_frames": (188, "train.time_mask_frames 188 is not below the 188 frames of a clip: lower it"),
}


@pytest.mark.parametrize("key", BAD_VALUES)
def test_the_check_stage_refuses_each_bad_value_in_one_line_without_a_traceback(edited, key):
    value, expected = BAD_VALUES[key]

    def change(raw: dict) -> None:
        section, name = key.split(".")
        raw.setdefault(section, {})[name] = value

    path = edited(change)
    check = Path(__file__).parents[1] / "src" / "stages" / "check.py"
    ok = path.parent / "params.ok"
    result = subprocess.run(
        [sys.executable, str(check), "--params", str(path), "--ok", str(ok)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stdout == "" and not ok.exists(), result.stderr
    assert result.stderr.startswith(f"check: error: {path}: ") and result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr


def test_the_check_stage_passes_the_repository_params_and_always_writes_the_same_bytes(tmp_path, edited):
    check = Path(__file__).parents[1] / "src" / "stages" / "check.py"
    written = []
    for params in (REPO_PARAMS, edited(lambda raw: raw["train"].update(lr=0.5))):  # another valid value
        ok = tmp_path / f"{len(written)}.ok"
        command = [sys.executable, str(check), "--params", str(params), "--ok", str(ok)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and result.stderr == "" and "every key known and allowed" in result.stdout
        written.append(ok.read_bytes())
    assert written[0] == written[1]  # so fetch, which depends on it, does not rerun when a param changes


def test_naming_puts_the_params_file_before_a_params_error_and_lets_other_errors_through():
    with pytest.raises(ParamsError, match=r"^p\.yaml: train\.batch_size: too big$"), naming("p.yaml"):
        raise ParamsError("train.batch_size: too big")
    with pytest.raises(KeyError), naming("p.yaml"):
        raise KeyError("not about params")
