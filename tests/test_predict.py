"""Prediction: windows, streaming, features equal to the melspec stage's, any rate or channels, bad input."""

import dataclasses
import errno
import math
import os
import re
import shutil
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr
import torch

from ser.audio import AudioError, LogMel, find_audio, load_audio, prepare, sliding_windows, stream_audio
from ser.bundle import BundleError, load_bundle, save_bundle
from ser.corpora import EMOTIONS
from ser.evaluation import SILENT, predict_proba
from ser.features import compute_features, load_features
from ser.model import Classifier, Ensemble
from ser.predict import (
    DC_ONLY,
    NO_SPEECH,
    TOO_SHORT,
    Failure,
    Prediction,
    PredictOptions,
    Predictor,
    Window,
    find_files,
    predictions_table,
)
from ser.tta import ShiftAveraged, shift_frames

SR = 16000
EXACT = 1e-6  # probabilities of the same features through differently sized batches
# The same clip stored at 44.1 kHz comes back through two soxr passes, so its features and probabilities
# move a little; these bounds leave room for that, and a test checks they still tell two clips apart.
RESAMPLED_DB = 0.5  # mean |difference| of the log-mel features, dB
RESAMPLED_P = 5e-4  # largest |difference| of a probability


@pytest.fixture(scope="module")
def predictor(tiny_bundle):
    return Predictor(tiny_bundle, "cpu")


@pytest.fixture(scope="module")
def long_signal(clips):
    """20 s of speech at 16 kHz (real clips end to end), with digital silence from 6 s to 11 s."""
    speech = np.concatenate([load_audio(clip, SR) for clip in clips * 4])[: 20 * SR]
    assert speech.shape == (20 * SR,)
    speech[6 * SR : 11 * SR] = 0.0
    return speech


def windows_of(predictor: Predictor, path) -> list:
    """The prepared windows the predictor cuts from a file (None: silent)."""
    return [item.samples for item in predictor._items([path]) if hasattr(item, "samples")]


def features(predictor: Predictor, windows: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return predictor.logmel(torch.from_numpy(np.asarray(windows, dtype=np.float32))).numpy()


def test_sliding_windows_count_start_and_cover_the_end():
    signal = np.arange(23, dtype=np.float32)
    windows = list(sliding_windows([signal], size=10, hop=5))
    assert [start for start, _ in windows] == [0, 5, 10, 13]  # 1 + ceil((23 - 10) / 5); the last ends the signal
    for start, window in windows:
        np.testing.assert_array_equal(window, signal[start : start + 10])
    assert [s for s, _ in sliding_windows([signal[:20]], 10, 5)] == [0, 5, 10]  # already ends at the end
    short = list(sliding_windows([signal[:7]], 10, 5))
    assert len(short) == 1 and short[0][0] == 0 and short[0][1].shape == (7,)
    assert list(sliding_windows([], 10, 5)) == []


def test_sliding_windows_are_the_same_whatever_the_chunks_and_read_lazily():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(1000).astype(np.float32)
    cuts = np.sort(rng.choice(np.arange(1, 1000), size=40, replace=False))
    whole = list(sliding_windows([signal], 96, 48))
    chunked = list(sliding_windows(np.split(signal, cuts), 96, 48))
    assert [s for s, _ in chunked] == [s for s, _ in whole]
    for (_, a), (_, b) in zip(chunked, whole, strict=True):
        np.testing.assert_array_equal(a, b)
    pulled = []

    def chunks():
        for i in range(10**6):  # endless: only what the first window needs may be read
            pulled.append(i)
            yield np.zeros(10, np.float32)

    next(sliding_windows(chunks(), 96, 48))
    assert len(pulled) == 10  # 96 samples need 10 chunks of 10


def test_a_clip_that_fits_one_window_gets_exactly_the_melspec_stage_features(predictor, frontend, clips, tmp_path):
    table = pd.DataFrame({"row": range(len(clips)), "file": list(map(str, clips)), "prepared": False})
    compute_features(table, tmp_path / "features", frontend, workers=1)  # the melspec stage's own code
    stage = np.array(load_features(tmp_path / "features"))  # (3, n_mels, n_frames)
    cut = [windows_of(predictor, clip) for clip in clips]
    assert all(len(windows) == 1 for windows in cut)
    windows = np.stack([w[0] for w in cut])  # (3, n_samples)
    np.testing.assert_array_equal(windows, np.stack([prepare(load_audio(c, SR), frontend.audio) for c in clips]))
    np.testing.assert_array_equal(features(predictor, windows), stage)
    with torch.inference_mode():
        np.testing.assert_array_equal(features(predictor, windows), LogMel(frontend)(torch.from_numpy(windows)).numpy())
    # so the probabilities are the evaluate stage's (predict_proba on the stored features, heard at ser.tta's shifts)
    model = ShiftAveraged(predictor.bundle.model, shift_frames(frontend))
    expected = predict_proba(model, stage, torch.device("cpu"))
    got = [predictor.predict_file(clip).probabilities for clip in clips]
    np.testing.assert_allclose(got, expected, atol=EXACT)
    # and --no-shifts is the bundle's model at the clip's own position, which differs
    alone = Predictor(predictor.bundle, options=dataclasses.replace(predictor.options, shifts=False))
    unshifted = [alone.predict_file(clip).probabilities for clip in clips]
    np.testing.assert_allclose(unshifted, predict_proba(predictor.bundle.model, stage, torch.device("cpu")), atol=EXACT)
    assert np.abs(np.array(unshifted) - expected).max() > 10 * EXACT


def test_stereo_and_44k_copies_predict_like_the_mono_16k_clip(predictor, clips, tmp_path):
    clip = clips[1]
    mono = load_audio(clip, SR)
    sf.write(tmp_path / "stereo.wav", np.stack([mono, mono], axis=1), SR, subtype="FLOAT")
    sf.write(tmp_path / "44k.wav", soxr.resample(mono, SR, 44100, quality="HQ"), 44100, subtype="PCM_16")
    reference = np.array(predictor.predict_file(clip).probabilities)
    stereo = np.array(predictor.predict_file(tmp_path / "stereo.wav").probabilities)
    np.testing.assert_allclose(stereo, reference, atol=EXACT)
    resampled = predictor.predict_file(tmp_path / "44k.wav")
    assert resampled.duration_s == pytest.approx(mono.shape[0] / SR, abs=1e-3)
    np.testing.assert_allclose(resampled.probabilities, reference, atol=RESAMPLED_P)
    other_clip = np.array(predictor.predict_file(clips[0]).probabilities)
    assert np.abs(other_clip - reference).max() > 4 * RESAMPLED_P  # the tolerance does tell clips apart
    both = [features(predictor, windows_of(predictor, p)[0][None]) for p in (clip, tmp_path / "44k.wav")]
    assert np.abs(both[0] - both[1]).mean() < RESAMPLED_DB


def test_a_long_clip_is_windowed_and_silent_windows_are_left_out(predictor, long_signal, tmp_path):
    prediction = predictor.predict_samples(long_signal, SR, "long")
    starts = [window.start_s for window in prediction.windows]
    assert starts == [1.5 * k for k in range(12)] + [17.0]  # 50% overlap, the last window aligned to the end
    silent = [window.start_s for window in prediction.windows if window.probabilities is None]
    assert silent == [6.0, 7.5]  # the windows inside 6-11 s of digital silence
    judged = [window.probabilities for window in prediction.windows if window.probabilities is not None]
    np.testing.assert_allclose(prediction.probabilities, np.mean(judged, axis=0), atol=EXACT)
    assert prediction.duration_s == 20.0 and not prediction.silent
    # each window is scored as a clip of its own, prepared as in training
    third = long_signal[3 * SR : 6 * SR]
    alone = predictor.predict_samples(third, SR)
    assert len(alone.windows) == 1
    np.testing.assert_allclose(prediction.windows[2].probabilities, alone.probabilities, atol=EXACT)
    table = predictions_table([prediction], per_window=True)
    assert list(table["start_s"]) == starts
    assert list(table["predicted"][table["start_s"].isin(silent)]) == [SILENT, SILENT]


def test_what_is_not_speech_gets_no_emotion_and_says_what_it_is(predictor, clips):
    speech = load_audio(clips[0], SR)
    click = np.zeros(SR, np.float32)
    click[SR // 2] = 0.9
    cases = {
        "dc": (np.full(SR, 0.25, np.float32), DC_ONLY),
        "click": (click, NO_SPEECH),
        "click on dc": (click - 0.5, NO_SPEECH),
        "10 ms of speech": (speech[SR : SR + SR // 100], TOO_SHORT),
        "digital silence": (np.zeros(SR, np.float32), SILENT),
    }
    results = [predictor.predict_samples(samples, SR, name) for name, (samples, _) in cases.items()]
    for result, (name, (_, reason)) in zip(results, cases.items(), strict=True):
        assert result.probabilities is None and result.unjudged.reason == reason, name
        assert result.predicted == reason and result.note.startswith(f"{reason}: ") and math.isnan(result.confidence)
    judged = predictor.predict_samples(speech, SR, "speech")
    assert judged.unjudged is None and judged.predicted in EMOTIONS and judged.note == ""
    table = predictions_table([*results, judged])
    assert list(table["predicted"]) == [reason for _, reason in cases.values()] + [judged.predicted]
    assert table[["confidence", *(f"p_{e}" for e in EMOTIONS)]].iloc[:-1].isna().all().all()
    assert list(table["note"]) == [result.note for result in results] + [""]
    assert "0.010 s, under 0.25 s" in table["note"][3]  # what was measured, against what limit


def test_a_window_of_nothing_but_a_click_is_left_out_of_a_long_file(predictor, long_signal):
    clicked = long_signal.copy()
    clicked[8 * SR] = 0.9  # in the digital silence from 6 to 11 s: the windows at 6 and 7.5 s hold only the click
    plain, with_click = (predictor.predict_samples(signal, SR) for signal in (long_signal, clicked))
    reasons = {w.start_s: w.unjudged.reason for w in with_click.windows if w.unjudged is not None}
    assert reasons == {6.0: NO_SPEECH, 7.5: NO_SPEECH}
    np.testing.assert_allclose(with_click.probabilities, plain.probabilities, atol=EXACT)
    table = predictions_table([with_click], per_window=True)
    assert list(table["predicted"][table["start_s"].isin(reasons)]) == [NO_SPEECH, NO_SPEECH]


def test_no_real_clip_is_taken_for_non_speech_even_20_db_quieter(predictor, mirror):
    """Every tenth clip of the three corpora: the rules for what is not speech must never refuse real speech,
    also played quieter."""
    files = find_audio(mirror)[::10]
    assert {path.relative_to(mirror).parts[0] for path in files} == {"ravdess", "tess", "cremad"}
    for gain_db in (0.0, -20.0, -30.0):
        flagged = {}
        for path in files:
            samples = load_audio(path, SR) * np.float32(10 ** (gain_db / 20))
            windows = [
                item for item in predictor._cut(path, samples, False) if isinstance(item, Window)
            ]  # as predicted
            for window in windows:
                if window.unjudged is not None and window.unjudged.reason != SILENT:  # silence: the bundle's level
                    flagged[f"{path.name} at {window.start_s} s"] = str(window.unjudged)
        assert flagged == {}, gain_db


def test_samples_over_full_scale_are_flagged_and_do_not_decide_the_answer(predictor, clips, tmp_path):
    speech = load_audio(clips[1], SR)
    at_full_scale = speech / np.abs(speech).max()
    reference = predictor.predict_samples(at_full_scale, SR)
    assert not reference.over_full_scale and reference.note == ""
    for gain in (4.0, 1e6):
        path = tmp_path / f"over_{gain:g}.wav"
        sf.write(path, at_full_scale * np.float32(gain), SR, subtype="FLOAT")
        loud = predictor.predict_file(path)
        assert loud.over_full_scale and loud.peak_dbfs == pytest.approx(20 * math.log10(gain), abs=0.01)
        assert loud.note.startswith(f"over full scale: peak +{20 * math.log10(gain):.1f} dBFS")
        np.testing.assert_allclose(loud.probabilities, reference.probabilities, atol=EXACT)
        assert predictions_table([loud])["note"][0] == loud.note


def test_a_clipped_integer_file_resampled_is_not_taken_for_over_full_scale(predictor, clips, tmp_path):
    speech = soxr.resample(load_audio(clips[1], SR), SR, 48000, quality="HQ")
    clipped = np.clip(8.0 * speech / np.abs(speech).max(), -1.0, 1.0)  # hard clipping at full scale
    path = tmp_path / "clipped_48k.wav"
    sf.write(path, clipped, 48000, subtype="PCM_16")
    prediction = predictor.predict_file(path)
    assert prediction.peak_dbfs > 0.0  # the resampler overshoots full scale: the recording itself does not
    assert not prediction.over_full_scale and prediction.note == ""
    (window,) = windows_of(predictor, path)
    np.testing.assert_array_equal(window, prepare(load_audio(path, SR), predictor.frontend.audio))  # not scaled


def test_in_a_long_file_only_the_windows_over_full_scale_are_scaled_and_noted(predictor, long_signal):
    loud = long_signal.copy()
    loud[: 3 * SR] *= 8.0 / np.abs(loud[: 3 * SR]).max()  # the first window at +18 dBFS
    plain, scaled = (predictor.predict_samples(signal, SR) for signal in (long_signal, loud))
    assert scaled.over_full_scale and scaled.note.startswith("over full scale: peak +18.1 dBFS")
    notes = [window.note for window in scaled.windows]
    assert notes[0].startswith("over full scale: peak +18.1 dBFS, scaled down") and notes[1].startswith("over full")
    assert notes[2:] == [window.note for window in plain.windows[2:]]  # from 3 s on, as they were (some silent)
    assert not any("over full scale" in note for note in notes[2:])
    for a, b in zip(plain.windows[2:], scaled.windows[2:], strict=True):
        assert a.probabilities == b.probabilities
    table = predictions_table([scaled], per_window=True)
    assert list(table["note"]) == notes


def test_a_folder_that_cannot_be_searched_fails_and_the_rest_is_predicted(predictor, clips, tmp_path, monkeypatch):
    shutil.copy(clips[0], tmp_path / "good.flac")
    locked = tmp_path / "locked"
    locked.mkdir()
    shutil.copy(clips[1], locked / "hidden_from_us.flac")
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == os.fspath(locked):  # as for a user without permission (root reads anything)
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    results = list(predictor.predict_paths([tmp_path]))
    assert isinstance(results[0], Prediction) and results[0].path == tmp_path / "good.flac"
    assert results[1] == Failure(locked, "cannot search this folder (Permission denied)")


@pytest.mark.parametrize("rate", [SR, 44100])
def test_streaming_a_long_file_gives_the_in_memory_result(tiny_bundle, long_signal, rate, tmp_path):
    path = tmp_path / f"long_{rate}.flac"
    samples = long_signal if rate == SR else soxr.resample(long_signal, SR, rate, quality="HQ")
    sf.write(path, np.stack([samples, samples], axis=1), rate, subtype="PCM_24")  # stereo
    streaming = Predictor(tiny_bundle, options=PredictOptions(stream_above_s=5.0, block_s=0.7))
    in_memory = Predictor(tiny_bundle, options=PredictOptions(stream_above_s=math.inf))
    decoded, _ = sf.read(path, dtype="float32")
    chunks = list(stream_audio(path, SR, block_s=0.7))
    assert max(map(len, chunks)) <= 1.1 * 0.7 * SR  # about a block at a time (the resampler's delay evens out)
    np.testing.assert_array_equal(np.concatenate(chunks), load_audio(path, SR))
    streamed = streaming.predict_file(path)
    for other in (in_memory.predict_file(path), in_memory.predict_samples(decoded, rate)):
        assert [w.start_s for w in streamed.windows] == [w.start_s for w in other.windows]
        np.testing.assert_allclose(streamed.probabilities, other.probabilities, atol=EXACT)
        assert streamed.duration_s == pytest.approx(other.duration_s)
        assert streamed.peak_dbfs == pytest.approx(other.peak_dbfs, abs=1e-4)


def test_streaming_keeps_memory_bounded(tiny_bundle, tmp_path):
    """Three minutes of 44.1 kHz stereo (63 MB as float32): numpy never holds more than a few MB at once."""
    seconds, rate = 180, 44100
    path = tmp_path / "three_minutes.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", rate, 2, subtype="PCM_16") as file:
        for _ in range(seconds // 10):
            file.write(0.1 * rng.standard_normal((10 * rate, 2)).astype(np.float32))
    predictor = Predictor(tiny_bundle, options=PredictOptions(stream_above_s=60.0, batch_size=16))
    tracemalloc.start()
    prediction = predictor.predict_file(path)
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(prediction.windows) == 1 + math.ceil((seconds - 3) / 1.5)
    whole_file_bytes = seconds * rate * 2 * 4
    assert peak_bytes < whole_file_bytes / 4


def test_bad_files_fail_one_by_one_with_the_audio_modules_message_and_the_others_are_predicted(
    predictor, clips, bad_audio, tmp_path, write_tone
):
    good = tmp_path / "good.wav"
    write_tone(good, 440.0, seconds=1.0)
    sf.write(tmp_path / "silent.wav", np.full(SR, 10 ** (-70 / 20), np.float32), SR, subtype="FLOAT")
    (tmp_path / "empty_folder").mkdir()
    bad = {**bad_audio, tmp_path / "empty_folder": "no audio files in this folder"}
    bad[tmp_path / "folder.wav"] = "no audio files in this folder"  # a folder named on the command line is searched
    paths = [good, *bad, tmp_path / "silent.wav", clips[1]]
    results = list(predictor.predict_paths(paths))
    assert [r.path for r in results] == paths
    assert isinstance(results[0], Prediction) and isinstance(results[-1], Prediction)
    for result, (path, problem) in zip(results[1:-2], bad.items(), strict=True):
        assert isinstance(result, Failure)
        assert result.message.startswith(f"{path}: {problem}") and "\n" not in result.message
        if not path.is_dir():  # the same message as the audio module's, and from predict_file
            with pytest.raises(AudioError) as error:
                load_audio(path, SR)
            assert result.message == str(error.value)
            with pytest.raises(AudioError, match=re.escape(problem)):
                predictor.predict_file(path)
    silent = results[-2]
    assert silent.silent and silent.predicted == SILENT and math.isnan(silent.confidence)
    assert silent.peak_dbfs == pytest.approx(-70.0, abs=0.01)


def test_the_silence_level_comes_from_the_bundle_unless_given(predictor, tiny_bundle, tmp_path):
    sf.write(tmp_path / "quiet.wav", np.full(SR, 10 ** (-70 / 20), np.float32), SR, subtype="FLOAT")
    bundle = load_bundle(tiny_bundle)
    assert predictor.silence_dbfs == bundle.frontend.audio.silence_dbfs
    assert predictor.predict_file(tmp_path / "quiet.wav").silent
    louder = dataclasses.replace(bundle.frontend.audio, silence_dbfs=-80.0)
    trained_quieter = dataclasses.replace(bundle, frontend=dataclasses.replace(bundle.frontend, audio=louder))
    assert not Predictor(trained_quieter).predict_file(tmp_path / "quiet.wav").silent
    assert not Predictor(bundle, options=PredictOptions(silence_dbfs=-80.0)).predict_file(tmp_path / "quiet.wav").silent
    with pytest.raises(ValueError, match="silence_dbfs"):
        PredictOptions(silence_dbfs=float("nan"))


def test_a_long_file_that_breaks_midway_fails_and_the_next_file_is_predicted(tiny_bundle, long_signal, clips, tmp_path):
    path = tmp_path / "long.flac"
    sf.write(path, long_signal, SR)
    data = path.read_bytes()
    broken = tmp_path / "broken.flac"
    broken.write_bytes(data[: len(data) // 2] + bytes(4096) + data[len(data) // 2 + 4096 :])  # a corrupt stretch
    predictor = Predictor(tiny_bundle, options=PredictOptions(stream_above_s=5.0, batch_size=4))
    results = list(predictor.predict_paths([broken, clips[0]]))
    assert isinstance(results[0], Failure) and results[0].message.startswith(f"{broken}: cannot decode audio")
    assert isinstance(results[1], Prediction)


def test_folders_are_searched_with_find_audio_and_other_paths_pass_as_given(tmp_path, write_tone):
    write_tone(tmp_path / "b" / "one.wav", 300.0)
    write_tone(tmp_path / "a" / "two.flac", 300.0)
    (tmp_path / "empty").mkdir()
    found = list(find_files([tmp_path / "b" / "one.wav", tmp_path, tmp_path / "missing.wav", tmp_path / "empty"]))
    assert found[:4] == [
        tmp_path / "b" / "one.wav",
        tmp_path / "a" / "two.flac",
        tmp_path / "b" / "one.wav",
        tmp_path / "missing.wav",
    ]
    assert found[4] == Failure(tmp_path / "empty", "no audio files in this folder")


def test_model_files_that_cannot_be_used_raise_bundle_error(tiny_bundle, tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(tiny_bundle.read_bytes()[:1000])
    payload = torch.load(tiny_bundle, weights_only=True)
    payload["format_version"] += 1
    newer = tmp_path / "newer.pt"
    torch.save(payload, newer)
    for path, problem in (
        (corrupt, "not a readable model file"),
        (newer, "format version"),
        (tmp_path / "no.pt", "not found"),
    ):
        with pytest.raises(BundleError, match=problem):
            Predictor(path)


def test_a_bundle_always_holds_an_ensemble_and_rebuilds_every_member(tiny_bundle, tmp_path):
    one = load_bundle(tiny_bundle)
    assert isinstance(one.model, Ensemble) and len(one.model.members) == 1
    config = one.model_config
    torch.manual_seed(1)
    ensemble = Ensemble([*one.model.members, Classifier(config)]).eval()
    path = tmp_path / "ensemble.pt"
    save_bundle(path, ensemble, one.frontend, info={})
    again = load_bundle(path)
    assert isinstance(again.model, Ensemble) and len(again.model.members) == 2
    x = torch.randn(3, config.n_mels, config.n_frames) * 10 - 40
    with torch.no_grad():
        torch.testing.assert_close(again.model(x), ensemble(x))
        # one member's ensemble predicts that member's probabilities
        torch.testing.assert_close(one.model(x).softmax(-1), one.model.members[0](x).softmax(-1))
    payload = torch.load(path, weights_only=True)
    payload["state_dicts"] = []
    torch.save(payload, tmp_path / "empty.pt")
    with pytest.raises(BundleError, match="does not match"):
        load_bundle(tmp_path / "empty.pt")


def test_bundles_with_wrong_labels_or_weights_are_refused(tiny_bundle, tmp_path):
    payload = torch.load(tiny_bundle, weights_only=True)
    short = {**payload, "labels": payload["labels"][:-1]}
    torch.save(short, tmp_path / "short.pt")
    with pytest.raises(BundleError, match="7 labels for 8 outputs"):
        load_bundle(tmp_path / "short.pt")
    broken = {**payload, "state_dicts": [{k: v.clone() for k, v in payload["state_dicts"][0].items()}]}
    next(v for v in broken["state_dicts"][0].values() if v.is_floating_point()).fill_(float("nan"))
    torch.save(broken, tmp_path / "nan.pt")
    with pytest.raises(BundleError, match="NaN or infinite"):
        load_bundle(tmp_path / "nan.pt")
    bad_frontend = {
        **payload,
        "frontend": {**payload["frontend"], "audio": {**payload["frontend"]["audio"], "sample_rate": 0}},
    }
    torch.save(bad_frontend, tmp_path / "rate.pt")
    with pytest.raises(BundleError, match=r"rate\.pt: frontend: audio\.sample_rate: 0 is not allowed"):
        load_bundle(tmp_path / "rate.pt")


def test_batches_and_decoding_processes_do_not_change_the_answer(tiny_bundle, clips, long_signal, tmp_path):
    long_path = tmp_path / "long.wav"
    sf.write(long_path, long_signal, SR)
    paths = [clips[0], long_path, clips[1], clips[2]]
    reference = list(Predictor(tiny_bundle, options=PredictOptions(batch_size=64)).predict_paths(paths))
    for options in (PredictOptions(batch_size=4), PredictOptions(batch_size=5, workers=2)):
        results = list(Predictor(tiny_bundle, options=options).predict_paths(paths))
        for got, expected in zip(results, reference, strict=True):
            assert got.path == expected.path
            np.testing.assert_allclose(got.probabilities, expected.probabilities, atol=EXACT)


def test_the_predictions_table_has_the_evaluate_stage_columns_and_a_note(predictor, clips):
    predictions = list(predictor.predict_paths(clips))
    table = predictions_table(predictions)
    assert list(table.columns) == ["path", "predicted", "confidence", *(f"p_{e}" for e in EMOTIONS), "note"]
    assert list(table["note"]) == [""] * len(clips)
    assert list(table["path"]) == list(map(str, clips))
    probabilities = table[[f"p_{e}" for e in EMOTIONS]].to_numpy()
    np.testing.assert_array_equal(probabilities, [p.probabilities for p in predictions])
    np.testing.assert_allclose(table["confidence"], probabilities.max(axis=1))
    assert list(table["predicted"]) == [p.predicted for p in predictions]
    empty = predictions_table([])
    assert list(empty.columns) == list(table.columns) and empty.empty
