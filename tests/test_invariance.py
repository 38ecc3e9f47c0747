"""What the answer must not depend on: the recording's gain (10 and 20 dB quieter, peak-normalised) or a mild
fixed colouring of the channel, for a model normalised per speaker or to each clip's peak (ser.normalise);
and `ser predict` told which files share a speaker normalises them by that speaker's statistics."""

from __future__ import annotations

import functools
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from ser.audio import load_audio, log_mel_spectrogram, prepare
from ser.bundle import load_bundle, save_bundle
from ser.corpora import EMOTIONS
from ser.evaluation import predict_proba
from ser.model import Classifier, Ensemble, ModelConfig
from ser.normalise import normalise_clips
from ser.predict import PredictOptions, Predictor
from ser.tta import ShiftAveraged, shift_frames

SR = 16000
SAME_ANSWERS = 0.95  # the bar: at least this share of real clips keeps its answer


@pytest.fixture(scope="module")
def trained_members(mirror, frontend) -> Callable[[str], list[dict]]:
    """trained_members(mode): the weights of two tiny models (seeds 0 and 1) fitted for 80 steps to 96 RAVDESS
    clips of actors 1-8 normalised as `mode` says, so that their answers differ from clip to clip, averaged
    over ser.tta's shifts too (an untrained model gives every clip one answer, and an unchanged answer would
    say nothing; after 40 steps, 38 of the 40 test clips still got one answer)."""
    paths = [p for actor in range(1, 9) for p in sorted((mirror / "ravdess" / f"Actor_{actor:02d}").glob("*.flac"))]
    paths = paths[:: len(paths) // 96][:96]
    waveforms = np.stack([prepare(load_audio(path, SR), frontend.audio) for path in paths])
    table = pd.DataFrame({"corpus": "ravdess", "speaker": [path.parent.name for path in paths]})
    features = log_mel_spectrogram(waveforms, frontend)
    y = torch.tensor([int(path.name.split("-")[2]) - 1 for path in paths])  # RAVDESS's codes 01-08, in EMOTIONS order
    config = ModelConfig.from_preset("tiny", frontend.melspec.n_mels, frontend.n_frames, len(EMOTIONS))

    @functools.cache
    def fit(mode: str) -> list[dict]:
        x = torch.from_numpy(normalise_clips(features, table, mode))
        states = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            model = Classifier(config)
            optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
            for step in range(80):
                batch = torch.arange(step * 32, step * 32 + 32) % len(y)
                loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            states.append(model.state_dict())
        return states

    return fit


@pytest.fixture
def bundle_normalised(tmp_path, frontend, trained_members):
    """bundle_normalised(mode, fitted_as=mode): a bundle of the two members fitted to inputs normalised
    `fitted_as`, whose info says its input is normalised `mode`."""

    def make(mode: str, fitted_as: str | None = None):
        config = ModelConfig.from_preset("tiny", frontend.melspec.n_mels, frontend.n_frames, len(EMOTIONS))
        states = trained_members(fitted_as or mode)
        members = [Classifier(config) for _ in states]
        for member, state in zip(members, states, strict=True):
            member.load_state_dict(state)
        path = tmp_path / f"{mode}.pt"
        save_bundle(path, Ensemble(members).eval(), frontend, info={"train": {"normalise": mode}})
        return path

    return make


@pytest.fixture(scope="module")
def real_clips(mirror) -> list[np.ndarray]:
    """40 real RAVDESS clips: ten of each of four actors, every emotion among them."""
    paths = []
    for actor in (21, 22, 23, 24):
        files = sorted((mirror / "ravdess" / f"Actor_{actor:02d}").glob("*.flac"))
        paths += files[:: len(files) // 10][:10]
    return [load_audio(path, SR) for path in paths]


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
try:  # the changes benchmarks/invariance.py measures the trained model's answers under
    from invariance import mild_eq, peak_normalised, quieter
finally:
    sys.path.pop(0)

CHANGES = {
    "10 dB quieter": quieter(10),
    "20 dB quieter": quieter(20),
    "peak-normalised to -1 dBFS": peak_normalised,
    "a mild fixed EQ": mild_eq,
}


def write_clips(folder, clips: list[np.ndarray], subtype: str = "FLOAT") -> list:
    """WAV files of float samples: stored in 16 bits, a clip 20 dB quieter also gets a relatively louder
    rounding noise, which is a change of the recording, not of its gain (benchmarks/invariance.py measures
    what it does to the trained model's answers)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"clip-{i:02d}.wav" for i in range(len(clips))]
    for path, samples in zip(paths, clips, strict=True):
        sf.write(path, samples, SR, subtype=subtype)
    return paths


def answers(predictor: Predictor, paths) -> tuple[np.ndarray, np.ndarray]:
    results = list(predictor.predict_paths(paths))
    return np.array([r.predicted for r in results]), np.array([r.probabilities for r in results])


GAINS = [change for change in CHANGES if change != "a mild fixed EQ"]


# "peak" removes a gain only: a colouring of the channel stays in the spectrum's shape, and what it does to a
# trained model's answers is benchmarks/invariance.py's to measure
# A lone clip's bands standardised by their own statistics remove a constant offset per band, not the EQ's
# slope within a band: with members that tell the clips apart (80 steps), 6-8 of 40 answers move. Known, and
# kept failing here until the input removes it (issue 14's invariance bar).
EQ_NOT_REMOVED = pytest.mark.xfail(strict=True, reason="per-band standardisation of a lone clip does not remove an EQ")


@pytest.mark.parametrize(
    ("mode", "change"),
    [
        *(pytest.param("speaker", c, marks=EQ_NOT_REMOVED if c == "a mild fixed EQ" else ()) for c in CHANGES),
        *(("peak", c) for c in GAINS),
    ],
)
def test_the_same_clip_at_another_gain_or_through_a_mild_eq_gets_the_same_answer(
    tmp_path, bundle_normalised, real_clips, change, mode
):
    model = bundle_normalised(mode)
    predictor = Predictor(model)  # each clip normalised by itself: what a user with one clip gets
    changed = [CHANGES[change](x) for x in real_clips]
    before, p_before = answers(predictor, write_clips(tmp_path / "as-recorded", real_clips))
    after, p_after = answers(predictor, write_clips(tmp_path / "changed", changed))
    assert len(set(before)) > 1  # the model tells clips apart, so an unchanged answer means something
    assert (before == after).mean() >= SAME_ANSWERS, change
    if change != "a mild fixed EQ":  # a gain only adds a constant to every dB value, which normalisation removes
        assert np.abs(p_before - p_after).max() < 1e-3, change


def test_without_normalisation_the_same_weights_do_hear_the_gain(tmp_path, bundle_normalised, real_clips):
    """The control that shows the test above can fail: the input of a model not normalised moves with gain."""
    model = bundle_normalised("none", fitted_as="speaker")
    predictor = Predictor(model)
    _, p_before = answers(predictor, write_clips(tmp_path / "as-recorded", real_clips))
    _, p_after = answers(
        predictor, write_clips(tmp_path / "quieter", [CHANGES["20 dB quieter"](x) for x in real_clips])
    )
    assert np.abs(p_before - p_after).max() > 0.05


def test_a_folder_of_one_speaker_is_normalised_by_that_speakers_statistics(
    tmp_path, frontend, bundle_normalised, real_clips, monkeypatch
):
    """`--speakers folder`: the files of a folder share the statistics; the probabilities are those of the
    melspec stage's features normalised as the training and evaluate stages normalise a speaker."""
    model = bundle_normalised("speaker")
    actors = {"actor-21": real_clips[:10], "actor-22": real_clips[10:20]}
    paths = [path for name, clips in actors.items() for path in write_clips(tmp_path / "in" / name, clips)]
    predictor = Predictor(model, options=PredictOptions(speakers="folder"))
    results = list(predictor.predict_paths([tmp_path / "in"]))
    assert [r.path for r in results] == paths  # in the order found, whatever the grouping

    bundle = load_bundle(model)
    waveforms = np.stack([prepare(load_audio(path, SR), frontend.audio) for path in paths])
    table = pd.DataFrame({"corpus": "user", "speaker": np.repeat(list(actors), 10)})
    expected = predict_proba(
        ShiftAveraged(bundle.model, shift_frames(frontend)),
        normalise_clips(log_mel_spectrogram(waveforms, frontend), table, "speaker"),
        "cpu",
    )
    np.testing.assert_allclose(np.array([r.probabilities for r in results]), expected, atol=1e-5)
    # one folder named two ways, relative and absolute, is one speaker still
    monkeypatch.chdir(tmp_path)
    named_twice = [path.relative_to(tmp_path) if i % 2 else path for i, path in enumerate(paths[:10])]
    again = [r.probabilities for r in predictor.predict_paths(named_twice)]
    np.testing.assert_allclose(again, expected[:10], atol=1e-5)
    per_window = np.array([r.probabilities for r in Predictor(model).predict_paths(paths)])
    assert np.abs(per_window - expected).max() > 1e-3  # normalising per speaker is not normalising per clip

    # the whole folder 20 dB quieter: the speaker's statistics move with it, and the answers stay
    quieter = tmp_path / "quieter"
    for name, clips in actors.items():
        write_clips(quieter / name, [CHANGES["20 dB quieter"](x) for x in clips])
    again = list(predictor.predict_paths([quieter]))
    assert np.abs(np.array([r.probabilities for r in again]) - expected).max() < 0.01


@pytest.mark.parametrize("speakers", ["file", "all"])
def test_every_grouping_keeps_the_input_order_and_reports_failures_in_place(
    tmp_path, bundle_normalised, real_clips, speakers
):
    model = bundle_normalised("speaker")
    paths = write_clips(tmp_path / "in", real_clips[:3])
    broken = tmp_path / "in" / "broken.wav"
    broken.write_bytes(b"not audio")
    shutil.copy(paths[0], tmp_path / "copy.wav")
    order = [paths[2], broken, tmp_path / "copy.wav", paths[0]]
    results = list(Predictor(model, options=PredictOptions(speakers=speakers)).predict_paths(order))
    assert [r.path for r in results] == order
    assert not hasattr(results[1], "probabilities")  # the Failure, where the file was
    assert results[2].probabilities == pytest.approx(results[3].probabilities, abs=1e-6)
