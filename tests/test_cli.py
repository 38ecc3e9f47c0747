"""The `ser` command: help, output formats that parse back, one-line errors, exit statuses."""

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from ser.audio import load_audio
from ser.cli import (
    DECIMALS,
    EXIT_FILES_FAILED,
    EXIT_NO_RUN,
    EXIT_OK,
    THREADS_PER_CORE,
    main,
)
from ser.corpora import EMOTIONS
from ser.predict import PredictOptions, Predictor, predictions_table

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
        assert status == EXIT_OK and "2 predicted, 0 failed, 0 silent, 0 not speech" in err
        tables[fmt] = parse(out, fmt)
        assert list(tables[fmt].columns) == ["path", "predicted", "confidence", *P_COLUMNS, "note"]
        assert list(tables[fmt]["path"]) == list(map(str, clips))
        assert list(tables[fmt]["predicted"]) == list(expected["predicted"])
        np.testing.assert_allclose(
            tables[fmt][["confidence", *P_COLUMNS]], expected[["confidence", *P_COLUMNS]], atol=0.5 * 10**-DECIMALS
        )
    for fmt in ("table", "json"):  # identical numbers, not merely close
        pd.testing.assert_frame_equal(tables[fmt].drop(columns="note"), tables["csv"].drop(columns="note"))
    assert all(tables[fmt]["note"].isna().all() for fmt in tables)  # nothing to say: empty, or null in JSON


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
    assert list(table.columns) == ["path", "start_s", "predicted", "confidence", *P_COLUMNS, "note"]
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
    assert lines[-1] == f"ser predict: 2 predicted, {len(bad)} failed, 1 silent, 0 not speech"
    assert "Traceback" not in err
    table = pd.read_csv(io.StringIO(out))
    assert list(table["path"]) == [str(clips[0]), str(tmp_path / "silent.wav"), str(clips[1])]
    assert table["predicted"][1] == "silent" and table[["confidence", *P_COLUMNS]].iloc[1].isna().all()


def test_non_speech_and_over_full_scale_files_say_what_they_are(model, clips, tmp_path, capsys):
    dc, loud = tmp_path / "dc.wav", tmp_path / "loud.wav"
    sf.write(dc, np.full(SR, 0.25, np.float32), SR, subtype="FLOAT")
    speech = load_audio(clips[0], SR)
    sf.write(loud, 4.0 * speech / np.abs(speech).max(), SR, subtype="FLOAT")  # peak +12 dBFS
    status, out, err = ser("predict", "--model", model, "--format", "csv", clips[0], dc, loud, capsys=capsys)
    assert status == EXIT_OK
    lines = err.splitlines()
    assert lines[0].startswith(f"DC only: {dc}: a constant offset of +0.2500") and "no emotion predicted" in lines[0]
    assert lines[1].startswith(f"warning: {loud}: over full scale: peak +12.0 dBFS")
    assert lines[2] == "ser predict: 2 predicted, 0 failed, 0 silent, 1 not speech"
    table = pd.read_csv(io.StringIO(out), keep_default_na=False)
    assert list(table["predicted"])[1] == "DC only" and table["predicted"][2] in EMOTIONS
    assert table["note"][0] == "" and table["note"][1].startswith("DC only: ") and "over full scale" in table["note"][2]
    status, out, _ = ser("predict", "--model", model, "--format", "json", clips[0], dc, capsys=capsys)
    rows = json.loads(out)
    assert rows[0]["note"] is None and rows[1]["predicted"] == "DC only" and rows[1]["confidence"] is None


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
    monkeypatch.chdir(tmp_path)  # no data/models/1/model.pt here
    status, out, err = ser("predict", clips[0], capsys=capsys)
    assert status == EXIT_NO_RUN and out == ""
    assert err.count("\n") == 1 and "data/models/1/model.pt" in err
    assert "dvc repro" in err and "--model" in err


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


@pytest.fixture
def nothing_predicted(monkeypatch) -> list:
    """The calls of Predictor.predict_paths: a test of a refused run expects none."""
    calls = []
    monkeypatch.setattr(Predictor, "predict_paths", lambda self, paths: calls.append(paths) or iter(()))
    return calls


def test_out_never_replaces_an_input_the_model_or_a_file_ser_did_not_write(
    model, clips, tmp_path, capsys, nothing_predicted
):
    victim = tmp_path / "audio" / "victim.wav"
    victim.parent.mkdir()
    shutil.copy(clips[0], victim)
    link = tmp_path / "link.wav"
    link.symlink_to(victim)
    bundle = tmp_path / "model.pt"
    shutil.copy(model, bundle)
    notes = tmp_path / "notes.txt"
    notes.write_text("path,predicted\nmy own notes\n")
    earlier_csv = tmp_path / "earlier.csv"
    earlier_csv.write_text(",".join(["path", "start_s", "predicted", "confidence", *P_COLUMNS]) + "\n")
    kept = {path: path.read_bytes() for path in (victim, bundle, notes, earlier_csv)}
    for out, argv, why in (
        (victim, [victim], "is one of the input files"),
        (victim.parent / ".." / "audio" / "victim.wav", [victim.parent], "is one of the input files"),  # a folder
        (victim.parent / "made" / ".." / "victim.wav", [victim], "is one of the input files"),  # made/ is not there yet
        (link, [victim], "is one of the input files"),
        (bundle, [clips[0]], "is the model bundle"),
        (notes, [clips[0]], "exists and is not an earlier csv output"),
        (earlier_csv, ["--format", "json", clips[0]], "exists and is not an earlier json output"),
    ):
        status, stdout, err = ser("predict", "--model", bundle, "--format", "csv", "--out", out, *argv, capsys=capsys)
        assert status == EXIT_NO_RUN and stdout == "" and err.count("\n") == 1, err
        assert err.startswith(f"ser predict: --out {out}: {why}") and "--force" in err
    assert nothing_predicted == [] and {path: path.read_bytes() for path in kept} == kept


def test_out_replaces_earlier_outputs_and_anything_with_force(model, clips, tmp_path, capsys):
    for fmt in ("csv", "json", "table"):
        out = tmp_path / f"earlier.{fmt}"
        for _ in range(2):  # the second run replaces the first one's output
            status, _, err = ser("predict", "--model", model, "--format", fmt, "--out", out, clips[0], capsys=capsys)
            assert status == EXIT_OK, err
        assert list(parse(out.read_text(), fmt)["path"]) == [str(clips[0])]
    empty = tmp_path / "empty.csv"
    empty.touch()  # nothing to lose
    assert ser("predict", "--model", model, "--format", "csv", "--out", empty, clips[0], capsys=capsys)[0] == EXIT_OK
    victim = tmp_path / "victim.wav"
    shutil.copy(clips[0], victim)
    status, _, _ = ser(
        "predict", "--model", model, "--format", "csv", "--out", victim, "--force", victim, capsys=capsys
    )
    assert status == EXIT_OK and list(pd.read_csv(victim)["path"]) == [str(victim)]


def test_out_that_cannot_be_written_is_refused_before_predicting(model, clips, tmp_path, capsys, nothing_predicted):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    cases = [
        (a_file / "results" / "out.csv", "cannot make its folder"),
        (tmp_path, "is a folder"),
        (Path(os.devnull), "not a regular file"),
    ]
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        cases.append((locked / "out.csv", "cannot write in"))
    for out, problem in cases:
        status, stdout, err = ser("predict", "--model", model, "--out", out, clips[0], capsys=capsys)
        assert status == EXIT_NO_RUN and stdout == "" and err.count("\n") == 1
        assert err.startswith(f"ser predict: --out {out}: {problem}"), err
    assert nothing_predicted == []


def test_threads_and_device_outside_their_range_are_one_line(model, clips, monkeypatch, capsys):
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)  # 100000 threads crash torch (SIGSEGV)
    most = (os.cpu_count() or 1) * THREADS_PER_CORE
    for option, expected in (
        (["--threads", "100000"], f"--threads 100000: allowed 1 to {most}"),
        (["--threads", str(most + 1)], f"--threads {most + 1}: allowed 1 to {most}"),
        (["--threads", "0"], f"--threads 0: allowed 1 to {most}"),
        (["--device", "meta"], "--device meta: not a device ser runs on; use cpu, cuda or cuda:N"),
        (["--device", ""], "--device : not a device ser runs on"),
        (["--device", "cuda:x"], "--device cuda:x: not a device ser runs on"),
    ):
        status, out, err = ser("predict", "--model", model, *option, clips[0], capsys=capsys)
        assert status == EXIT_NO_RUN and out == "" and err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"ser predict: {expected}"), err
    assert threads == []
    status, _, _ = ser("predict", "--model", model, "--threads", most, "--device", "cpu", clips[0], capsys=capsys)
    assert status == EXIT_OK and threads == [most]


def test_control_characters_in_names_are_shown_escaped_on_one_line(model, clips, tmp_path, capsys):
    good, bad, quiet = tmp_path / "good\nclip.flac", tmp_path / "bad\nname.wav", tmp_path / "quiet\tfile.wav"
    shutil.copy(clips[0], good)
    bad.write_text("this is not audio\n" * 20)
    sf.write(quiet, np.zeros(SR, np.float32), SR)
    status, out, err = ser("predict", "--model", model, good, bad, quiet, capsys=capsys)
    assert status == EXIT_FILES_FAILED
    rows = out.splitlines()
    assert len(rows) == 3 and rows[1].startswith(f"{tmp_path}/good\\nclip.flac ") and "quiet\\tfile" in rows[2]
    lines = err.splitlines()
    assert len(lines) == 3 and lines[0].startswith(f"error: {tmp_path}/bad\\nname.wav: not readable as audio")
    assert lines[1].startswith(f"silent: {tmp_path}/quiet\\tfile.wav: peak")
    for fmt in ("csv", "json"):  # quoted or escaped by the format: the exact name comes back
        status, out, _ = ser("predict", "--model", model, "--format", fmt, good, capsys=capsys)
        assert status == EXIT_OK and list(parse(out, fmt)["path"]) == [str(good)]
    status, out, err = ser("predict", "--model", tmp_path / "no\nmodel.pt", good, capsys=capsys)
    assert status == EXIT_NO_RUN and err.startswith(f"ser predict: {tmp_path}/no\\nmodel.pt: model file not found")


def test_a_name_starting_with_a_dash_goes_after_double_dash(model, clips, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    sf.write("-odd-name.wav", load_audio(clips[0], SR), SR)
    status, out, _ = ser("predict", "--model", model, "--format", "csv", "--", "-odd-name.wav", capsys=capsys)
    assert status == EXIT_OK and list(pd.read_csv(io.StringIO(out))["path"]) == ["-odd-name.wav"]
    with pytest.raises(SystemExit) as exit_info:  # without it, an unknown option
        main(["predict", "--model", str(model), "-odd-name.wav"])
    assert exit_info.value.code == EXIT_NO_RUN
    capsys.readouterr()


def test_import_and_help_load_neither_torch_nor_pandas():
    script = """if True:
        import contextlib, io, json, sys
        from ser.cli import main
        codes = []
        for argv in (["--help"], ["predict", "--help"], ["info", "--help"]):
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    main(argv)
                except SystemExit as exit:
                    codes.append(exit.code)
        print(json.dumps([codes, [name for name in ("torch", "pandas", "ser.predict") if name in sys.modules]]))
    """
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(result.stdout) == [[0, 0, 0], []]  # `ser --help` answers at once


def test_speakers_says_which_files_share_a_speaker_for_a_model_normalised_per_speaker(
    tmp_path, frontend, clips, capsys
):
    """`--speakers all` normalises the files given by their pooled statistics, as Predictor does; `ser info`
    says how the model normalises; a choice that does not exist is refused in one line."""
    from ser.bundle import save_bundle
    from ser.model import Classifier, Ensemble, ModelConfig

    torch.manual_seed(0)
    config = ModelConfig.from_preset("tiny", frontend.melspec.n_mels, frontend.n_frames, len(EMOTIONS))
    model = tmp_path / "speaker.pt"
    save_bundle(model, Ensemble([Classifier(config)]).eval(), frontend, info={"train": {"normalise": "speaker"}})
    status, out, _ = ser("info", "--model", model, capsys=capsys)
    assert status == 0 and json.loads(out)["normalise"] == "speaker"
    for speakers in ("window", "all"):
        status, out, _ = ser(
            "predict", "--model", model, "--format", "csv", "--speakers", speakers, *clips, capsys=capsys
        )
        expected = Predictor(model, options=PredictOptions(speakers=speakers)).predict_paths(clips)
        probabilities = parse(out, "csv").filter(like="p_").to_numpy()
        np.testing.assert_allclose(probabilities, [r.probabilities for r in expected], atol=1e-4)
    with pytest.raises(SystemExit):
        ser("predict", "--model", model, "--speakers", "everyone", *clips, capsys=capsys)
    assert "--speakers: invalid choice: 'everyone'" in capsys.readouterr().err


def test_speakers_says_it_changes_nothing_for_a_model_not_normalised_per_speaker(model, clips, capsys):
    status, alone, err = ser("predict", "--model", model, "--format", "csv", *clips, capsys=capsys)
    assert status == 0 and "--speakers" not in err
    status, grouped, err = ser(
        "predict", "--model", model, "--format", "csv", "--speakers", "all", *clips, capsys=capsys
    )
    assert status == 0 and grouped == alone
    assert f"note: --speakers all changes nothing: {model} is normalised 'none', not per speaker" in err
