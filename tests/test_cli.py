"""The `ser` command: help, output formats that parse back, one-line errors, exit statuses."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from ser.audio import load_audio
from ser.cli import DECIMALS, EXIT_FILES_FAILED, EXIT_NO_RUN, EXIT_OK, main
from ser.corpora import EMOTIONS
from ser.predict import Predictor, predictions_table

SR = 16000
P_COLUMNS = [f"p_{emotion}" for emotion in EMOTIONS]


@pytest.fixture(scope="module")
def model(tiny_bundle) -> Path:
    return tiny_bundle


@pytest.fixture(scope="module")
def clips(clips) -> list[Path]:
    """Two of the shared real clips."""
    return clips[:2]


def ser(*argv, capsys) -> tuple[int, str, str]:
    """Run `ser ARGV...` in this process: (exit status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def parse(text: str, fmt: str) -> pd.DataFrame:
    if fmt == "csv":
        return pd.read_csv(io.StringIO(text))
    if fmt == "json":
        return pd.DataFrame(json.loads(text))
    return pd.read_csv(io.StringIO(text), sep=r"\s+", na_values="-")


def test_the_installed_command_and_every_subcommand_have_help(capsys):
    installed = Path(sys.executable).with_name("ser")
    command = [str(installed)] if installed.exists() else [sys.executable, "-m", "ser.cli"]
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and "predict" in result.stdout and "info" in result.stdout
    for subcommand, option in (("predict", "--per-window"), ("info", "--model")):
        with pytest.raises(SystemExit) as exit_info:
            main([subcommand, "--help"])
        assert exit_info.value.code == 0 and option in capsys.readouterr().out
    assert main([]) == EXIT_NO_RUN and "predict" in capsys.readouterr().err


def test_table_csv_and_json_parse_back_to_the_same_numbers(model, clips, capsys):
    expected = predictions_table(Predictor(model).predict_paths(clips))
    tables = {}
    for fmt in ("table", "csv", "json"):
        status, out, err = ser("predict", "--model", model, "--format", fmt, *clips, capsys=capsys)
        assert status == EXIT_OK and "2 predicted, 0 failed, 0 silent" in err
        tables[fmt] = parse(out, fmt)
        assert list(tables[fmt].columns) == ["path", "predicted", "confidence", *P_COLUMNS]
        assert list(tables[fmt]["path"]) == list(map(str, clips))
        assert list(tables[fmt]["predicted"]) == list(expected["predicted"])
        np.testing.assert_allclose(
            tables[fmt][["confidence", *P_COLUMNS]], expected[["confidence", *P_COLUMNS]], atol=0.5 * 10**-DECIMALS
        )
    for fmt in ("table", "json"):
        pd.testing.assert_frame_equal(tables[fmt], tables["csv"])  # identical numbers, not merely close


def test_out_writes_the_file_and_nothing_to_stdout(model, clips, tmp_path, capsys):
    target = tmp_path / "results" / "predictions.csv"
    status, out, _ = ser("predict", "--model", model, "--format", "csv", "--out", target, clips[0], capsys=capsys)
    assert status == EXIT_OK and out == ""
    assert list(pd.read_csv(target)["path"]) == [str(clips[0])]
    assert [p.name for p in target.parent.iterdir()] == ["predictions.csv"]  # no temporary left behind


def test_per_window_lists_each_window_of_a_long_file(model, clips, tmp_path, capsys):
    long_path = tmp_path / "long.wav"
    speech = np.concatenate([load_audio(clip, SR) for clip in clips * 4])[: 10 * SR]  # 10 s
    sf.write(long_path, speech, SR)
    status, out, _ = ser(
        "predict", "--model", model, "--format", "csv", "--per-window", long_path, clips[0], capsys=capsys
    )
    table = pd.read_csv(io.StringIO(out))
    assert status == EXIT_OK
    assert list(table.columns) == ["path", "start_s", "predicted", "confidence", *P_COLUMNS]
    assert list(table["start_s"]) == [0.0, 1.5, 3.0, 4.5, 6.0, 7.0, 0.0]  # the last window of 10 s starts at 7 s
    assert list(table["path"]) == [str(long_path)] * 6 + [str(clips[0])]
    status, out, _ = ser("predict", "--model", model, "--format", "csv", long_path, capsys=capsys)
    whole = pd.read_csv(io.StringIO(out))
    np.testing.assert_allclose(whole[P_COLUMNS].to_numpy()[0], table[P_COLUMNS].to_numpy()[:6].mean(axis=0), atol=1e-4)


def test_bad_files_get_one_line_each_and_the_rest_is_predicted(model, clips, bad_audio, tmp_path, capsys):
    sf.write(tmp_path / "silent.wav", np.zeros(SR, np.float32), SR)
    bad = [path for path in bad_audio if not path.is_dir()]
    paths = [clips[0], *bad, tmp_path / "silent.wav", clips[1]]
    status, out, err = ser("predict", "--model", model, "--format", "csv", *paths, capsys=capsys)
    assert status == EXIT_FILES_FAILED
    lines = err.strip().splitlines()
    assert len(lines) == len(bad) + 2  # one per bad file, one for the silent file, the summary
    for line, path in zip(lines, bad, strict=False):
        assert line.startswith(f"error: {path}: {bad_audio[path]}")
    assert lines[-2].startswith(f"silent: {tmp_path / 'silent.wav'}: ")
    assert lines[-1] == f"ser predict: 2 predicted, {len(bad)} failed, 1 silent"
    assert "Traceback" not in err
    table = pd.read_csv(io.StringIO(out))
    assert list(table["path"]) == [str(clips[0]), str(tmp_path / "silent.wav"), str(clips[1])]
    assert table["predicted"][1] == "silent" and table[["confidence", *P_COLUMNS]].iloc[1].isna().all()


def test_silence_threshold_is_an_option(model, tmp_path, capsys):
    quiet = tmp_path / "quiet.wav"
    rng = np.random.default_rng(0)
    sf.write(quiet, 10 ** (-70 / 20) * rng.uniform(-1, 1, SR).astype(np.float32), SR, subtype="FLOAT")
    status, out, err = ser("predict", "--model", model, "--format", "json", quiet, capsys=capsys)
    assert (
        status == EXIT_OK and json.loads(out)[0]["predicted"] == "silent" and json.loads(out)[0]["confidence"] is None
    )
    status, out, err = ser(
        "predict", "--model", model, "--format", "json", "--silence-dbfs", "-80", quiet, capsys=capsys
    )
    assert status == EXIT_OK and json.loads(out)[0]["predicted"] in EMOTIONS and "0 silent" in err


def test_missing_default_model_says_how_to_get_one(clips, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no data/model/model.pt here
    status, out, err = ser("predict", clips[0], capsys=capsys)
    assert status == EXIT_NO_RUN and out == ""
    assert err.count("\n") == 1 and "data/model/model.pt" in err
    assert "dvc repro train" in err and "--model" in err


def test_unusable_model_files_end_the_run_with_one_line(model, clips, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(model.read_bytes()[:2000])
    payload = torch.load(model, weights_only=True)
    payload["format_version"] = 99
    other_version = tmp_path / "version99.pt"
    torch.save(payload, other_version)
    not_a_model = tmp_path / "text.pt"
    not_a_model.write_text("hello")
    for path, problem in (
        (corrupt, "not a readable model file"),
        (other_version, "format version 99"),
        (not_a_model, ""),
    ):
        status, out, err = ser("predict", "--model", path, clips[0], capsys=capsys)
        assert status == EXIT_NO_RUN and out == ""
        assert err.count("\n") == 1 and err.startswith(f"ser predict: {path}: ") and problem in err


def test_unusable_options_end_the_run_with_one_line(model, clips, capsys):
    for option in (
        ["--overlap", "1.5"],
        ["--device", "no-such-device"],
        ["--workers", "0"],
        ["--silence-dbfs", "nan"],
        ["--silence-dbfs", "3"],
    ):
        status, out, err = ser("predict", "--model", model, *option, clips[0], capsys=capsys)
        assert status == EXIT_NO_RUN and out == "" and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--model", str(model), "--format", "xml", str(clips[0])])
    assert exit_info.value.code == EXIT_NO_RUN  # argparse's own usage error
    capsys.readouterr()


def test_info_shows_the_bundle(model, capsys):
    status, out, _ = ser("info", "--model", model, capsys=capsys)
    summary = json.loads(out)
    assert status == EXIT_OK and summary["labels"] == list(EMOTIONS) and summary["members"] == 1
    assert summary["frontend"]["audio"]["sample_rate"] == SR and summary["info"] == {"note": "untrained, for tests"}
