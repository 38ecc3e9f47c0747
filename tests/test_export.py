"""`ser export --format onnx` and `ser predict --model model.onnx`; `ser predict --plot` of a long recording."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import soundfile as sf
import torch

from ser.audio import load_audio
from ser.bundle import BundleError, save_bundle
from ser.cli import EXIT_NO_RUN, EXIT_OK, main
from ser.corpora import EMOTIONS
from ser.export import TOLERANCE, load_onnx_bundle
from ser.model import Classifier, Ensemble, ModelConfig
from ser.predict import Predictor


def ser(*argv, capsys) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def two_member_bundle(tmp_path_factory, frontend) -> Path:
    """An untrained two-member ensemble of the tiny preset, its BatchNorm statistics moved off their initial
    values (so that eval-mode normalisation is part of what the export has to get right)."""
    torch.manual_seed(1)
    config = ModelConfig.from_preset("tiny", frontend.melspec.n_mels, frontend.n_frames, len(EMOTIONS))
    members = [Classifier(config) for _ in range(2)]
    for member in members:
        for module in member.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("export") / "model.pt"
    save_bundle(path, Ensemble(members).eval(), frontend, info={"note": "untrained, for tests"})
    return path


@pytest.fixture(scope="module")
def onnx_model(two_member_bundle) -> Path:
    out = two_member_bundle.with_suffix(".onnx")
    assert main(["export", "--model", str(two_member_bundle), "--format", "onnx"]) == EXIT_OK
    return out


def test_the_onnx_model_gives_the_bundles_probabilities_on_real_clips(
    two_member_bundle, onnx_model, clips, long_recording
):
    paths = [*clips, long_recording]  # three clips of one window each, and a recording of many
    torch_results = list(Predictor(two_member_bundle).predict_paths(paths))
    onnx_results = list(Predictor(onnx_model).predict_paths(paths))
    assert len(torch_results[-1].windows) > 1
    for ours, theirs in zip(torch_results, onnx_results, strict=True):
        assert ours.path == theirs.path and ours.labels == theirs.labels
        difference = np.abs(np.array(ours.probabilities) - np.array(theirs.probabilities)).max()
        assert difference < TOLERANCE, f"{ours.path}: ONNX differs by {difference}"
        assert ours.predicted == theirs.predicted
    # several clips in one batch: the batch dimension of the graph is free
    windows = np.stack([load_audio(path, 16000)[:16000].copy() for path in clips])
    assert Predictor(onnx_model).probabilities(np.pad(windows, ((0, 0), (0, 32000)))).shape == (len(clips), 8)


def test_the_onnx_file_carries_the_labels_front_end_and_members(two_member_bundle, onnx_model, capsys):
    bundle = load_onnx_bundle(onnx_model)
    assert bundle.labels == tuple(EMOTIONS) and bundle.model.n_members == 2
    assert bundle.frontend == Predictor(two_member_bundle).frontend
    status, out, _ = ser("info", "--model", onnx_model, capsys=capsys)
    assert status == EXIT_OK and '"members": 2' in out


def test_export_says_what_it_checked(two_member_bundle, tmp_path, capsys):
    status, _, err = ser("export", "--model", two_member_bundle, "--out", tmp_path / "m.onnx", capsys=capsys)
    assert status == EXIT_OK and (tmp_path / "m.onnx").is_file()
    assert "2 member(s)" in err and "differ from the bundle's by at most" in err
    assert not [p for p in tmp_path.iterdir() if p.name != "m.onnx"]  # no temporary left beside it


def test_an_export_that_computes_otherwise_is_not_written(two_member_bundle, tmp_path, capsys, monkeypatch):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"an earlier export")
    monkeypatch.setattr("ser.export.largest_difference", lambda bundle, path: 0.3)  # as a broken exporter would
    status, _, err = ser("export", "--model", two_member_bundle, "--out", out, capsys=capsys)
    assert status == EXIT_NO_RUN and len(err.splitlines()) == 1
    assert f"{out}: not written" in err and "3.0e-01" in err
    assert out.read_bytes() == b"an earlier export" and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_bad_export_and_onnx_inputs_are_one_line_errors(two_member_bundle, onnx_model, tmp_path, clips, capsys):
    status, _, err = ser("export", "--model", two_member_bundle, "--out", tmp_path / "m.txt", capsys=capsys)
    assert status == EXIT_NO_RUN and "ending in .onnx" in err and len(err.splitlines()) == 1
    status, _, err = ser("export", "--model", onnx_model, "--out", tmp_path / "again.onnx", capsys=capsys)
    assert status == EXIT_NO_RUN and "already ONNX" in err and len(err.splitlines()) == 1
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    status, _, err = ser("predict", "--model", garbage, clips[0], capsys=capsys)
    assert status == EXIT_NO_RUN and "not a readable ONNX model" in err and len(err.splitlines()) == 1
    with pytest.raises(BundleError, match="model file not found"):
        load_onnx_bundle(tmp_path / "missing.onnx")


def test_an_onnx_file_without_sers_metadata_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    plain = tmp_path / "plain.onnx"  # a valid ONNX model that ser did not write: y = x
    tensor = {name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1]) for name in "xy"}
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "plain", [tensor["x"]], [tensor["y"]])
    onnx.save(helper.make_model(graph), str(plain))
    with pytest.raises(BundleError, match="without ser's metadata"):
        load_onnx_bundle(plain)


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory, mirror) -> Path:
    """Four RAVDESS clips of one actor, each followed by 1 s of silence: about 20 s."""
    sources = sorted((mirror / "ravdess" / "Actor_02").glob("*.flac"))[::12][:4]
    silence = np.zeros(16000, dtype=np.float32)
    samples = np.concatenate([part for path in sources for part in (load_audio(path, 16000), silence)])
    path = tmp_path_factory.mktemp("long") / "session.wav"
    sf.write(path, samples, 16000)
    return path


def test_predict_plot_draws_every_window_of_a_long_recording(tiny_bundle, long_recording, tmp_path, capsys):
    plot = tmp_path / "timeline.png"
    status, out, err = ser(
        "predict",
        "--model",
        tiny_bundle,
        "--per-window",
        "--format",
        "csv",
        "--plot",
        plot,
        long_recording,
        capsys=capsys,
    )
    assert status == EXIT_OK
    windows = len(out.strip().splitlines()) - 1  # the csv's rows: one per window
    assert windows > 5 and f"drew {windows} window(s) of" in err
    image = matplotlib.image.imread(plot)
    assert image.shape[0] > 200 and image.shape[1] > 500
    assert image[..., :3].std() > 0.05  # not blank: curves, a band and a legend on white


def test_predict_plot_refuses_before_predicting(tiny_bundle, long_recording, clips, tmp_path, capsys):
    for argv, expected in [
        ([long_recording, clips[0]], "give a single audio file"),
        ([long_recording.parent], "give a single audio file"),
    ]:
        status, out, err = ser("predict", "--model", tiny_bundle, "--plot", tmp_path / "t.png", *argv, capsys=capsys)
        assert status == EXIT_NO_RUN and expected in err and out == "" and len(err.splitlines()) == 1
    status, _, err = ser("predict", "--model", tiny_bundle, "--plot", tmp_path / "t.jpg", long_recording, capsys=capsys)
    assert status == EXIT_NO_RUN and "ending in .png" in err
    status, _, err = ser("predict", "--model", tiny_bundle, "--plot", long_recording, long_recording, capsys=capsys)
    assert status == EXIT_NO_RUN
    assert not (tmp_path / "t.png").exists()
