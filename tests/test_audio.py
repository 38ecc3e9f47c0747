"""The audio front end: known answers for the log-mel spectrogram, and decoding of good and bad files."""

import dataclasses
import errno
import math
import os

import librosa
import miniaudio
import numpy as np
import pytest
import soundfile as sf
import torch

from ser.audio import (
    AudioError,
    FrontEndConfig,
    LogMel,
    convert_audio,
    decode,
    decode_whole_flac,
    find_audio,
    load_audio,
    log_mel_spectrogram,
    mel_filters,
    pad_or_trim,
    peak_dbfs,
    prepare,
    reference_log_mel,
    stft_window,
    stream_audio,
    trim_silence,
)
from ser.params import ParamsError

SR = 16000


def tone(frequency_hz: float, seconds: float = 1.0, sample_rate: int = SR, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)


def htk_mel(f_hz):
    return 2595.0 * np.log10(1.0 + np.asarray(f_hz) / 700.0)


@pytest.mark.parametrize("frequency_hz", [200.0, 440.0, 1000.0, 2500.0, 6000.0])
def test_a_tone_peaks_in_the_mel_band_that_contains_it(make_frontend, frequency_hz):
    cfg = make_frontend(preemphasis=None)
    spectrum = log_mel_spectrogram(tone(frequency_hz), cfg)  # (n_mels, n_frames)
    loudest_band = int(np.argmax(spectrum[:, 10:-10].mean(axis=1)))
    # Band k's triangle rises from edge k to its peak at edge k+1 and falls to edge k+2, equally spaced in mel.
    edges_mel = np.linspace(htk_mel(0.0), htk_mel(SR / 2), cfg.melspec.n_mels + 2)
    centre_mel = edges_mel[loudest_band + 1]
    half_width = edges_mel[1] - edges_mel[0]
    assert abs(htk_mel(frequency_hz) - centre_mel) <= half_width / 2 + 1e-6


def test_filter_bank_is_triangles_on_the_htk_mel_scale(make_frontend):
    melspec = make_frontend(n_mels=40, n_fft=2048, fmax=None, fmin=0.0).melspec
    filters = mel_filters(SR, melspec)  # (40, 1025)
    assert filters.shape == (40, 1025)
    # Peak 1 (no area normalisation), up to where the FFT bins happen to sample the narrow low triangles.
    assert np.all(filters.max(axis=1) <= 1.0) and np.all(filters.max(axis=1) > 0.9)
    fft_hz = np.linspace(0, SR / 2, 1025)
    peaks_hz = fft_hz[filters.argmax(axis=1)]
    expected_hz = 700.0 * (10.0 ** (np.linspace(htk_mel(0), htk_mel(SR / 2), 42)[1:-1] / 2595.0) - 1.0)
    assert np.all(np.abs(peaks_hz - expected_hz) <= SR / 2048)  # within one FFT bin
    assert htk_mel(1000.0) == pytest.approx(1000.0, abs=0.05)  # the scale's defining point


def test_matches_librosa_within_a_hundredth_of_a_db_without_preemphasis(make_frontend):
    rng = np.random.default_rng(0)
    waveform = (tone(300.0, 3.0) + 0.05 * rng.standard_normal(3 * SR)).astype(np.float32)
    cfg = make_frontend(preemphasis=None)
    ours = log_mel_spectrogram(waveform, cfg)
    reference = reference_log_mel(waveform.astype(np.float64), cfg)
    assert ours.shape == reference.shape == (cfg.melspec.n_mels, cfg.n_frames)
    assert np.max(np.abs(ours - reference)) < 0.01  # dB; float32 against float64


def test_matches_librosa_with_preemphasis_too(make_frontend):
    rng = np.random.default_rng(1)
    waveform = (tone(1200.0, 3.0) + 0.05 * rng.standard_normal(3 * SR)).astype(np.float32)
    cfg = make_frontend(preemphasis=0.97)
    difference = log_mel_spectrogram(waveform, cfg) - reference_log_mel(waveform.astype(np.float64), cfg)
    assert np.max(np.abs(difference)) < 0.01


@pytest.mark.parametrize("changes", [{}, {"n_fft": 1024, "n_mels": 80, "fmin": 50.0, "fmax": 7000.0}, {"n_fft": 400}])
def test_filter_bank_equals_librosas(make_frontend, changes):
    melspec = make_frontend(**changes).melspec
    expected = librosa.filters.mel(
        sr=SR, n_fft=melspec.n_fft, n_mels=melspec.n_mels, fmin=melspec.fmin, fmax=melspec.fmax, htk=True, norm=None
    )
    np.testing.assert_array_equal(mel_filters(SR, melspec), expected.astype(np.float32))


@pytest.mark.parametrize("name", ["hann", "hamming", "blackman", "bartlett", "cosine", "triang"])
def test_stft_window_is_librosas_periodic_window(name):
    expected = librosa.filters.get_window(name, 512, fftbins=True)
    np.testing.assert_allclose(stft_window(name, 512), expected, rtol=0, atol=1e-12)


def test_preemphasis_is_the_first_difference_filter(make_frontend):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(SR).astype(np.float32)
    alpha = 0.97
    y = np.concatenate([x[:1], x[1:] - alpha * x[:-1]])
    with_filter = log_mel_spectrogram(x, make_frontend(preemphasis=alpha))
    by_hand = log_mel_spectrogram(y, make_frontend(preemphasis=None))
    assert np.allclose(with_filter, by_hand, atol=1e-3)


def test_preemphasis_tilts_the_spectrum_by_its_frequency_response(make_frontend):
    low_hz, high_hz, alpha = 150.0, 6000.0, 0.97
    mixture = tone(low_hz) + tone(high_hz)
    flat = log_mel_spectrogram(mixture, make_frontend(preemphasis=None, top_db=None)).mean(axis=1)
    tilted = log_mel_spectrogram(mixture, make_frontend(preemphasis=alpha, top_db=None)).mean(axis=1)
    low_band, high_band = (
        int(np.argmax(np.where(np.arange(64) < 32, flat, -np.inf))),
        int(np.argmax(flat[32:])) + 32,
    )

    def response_db(f_hz):  # |1 - alpha e^{-j w}|^2 in dB
        return 10 * np.log10(np.abs(1 - alpha * np.exp(-2j * np.pi * f_hz / SR)) ** 2)

    measured = (tilted[high_band] - flat[high_band]) - (tilted[low_band] - flat[low_band])
    assert measured == pytest.approx(response_db(high_hz) - response_db(low_hz), abs=1.0)  # about 29 dB


def test_top_db_floors_each_clip_at_its_own_max(make_frontend):
    cfg = make_frontend(top_db=50.0)
    loud_and_silent = np.concatenate([tone(1000.0), np.zeros(SR, dtype=np.float32)])
    spectrum = log_mel_spectrogram(loud_and_silent, cfg)
    assert spectrum.min() == pytest.approx(spectrum.max() - 50.0, abs=1e-3)


def test_batch_equals_one_by_one_and_runs_under_autograd_free_inference(make_frontend):
    rng = np.random.default_rng(2)
    batch = rng.standard_normal((3, 2 * SR)).astype(np.float32) * 0.1
    together = log_mel_spectrogram(batch, make_frontend())
    for i in range(3):
        assert np.allclose(together[i], log_mel_spectrogram(batch[i], make_frontend()), atol=1e-4)
    module = LogMel(make_frontend())
    assert module(torch.from_numpy(batch)).shape == (3, 64, 1 + 2 * SR // 256)


def test_frame_count_follows_duration_and_hop(make_frontend):
    cfg = make_frontend(audio={"duration": 2.5}, hop_length=160)
    assert cfg.n_samples == 40000
    assert log_mel_spectrogram(np.zeros(cfg.n_samples, np.float32) + 0.01, cfg).shape == (64, cfg.n_frames)
    assert cfg.n_frames == 1 + 40000 // 160


def test_config_round_trips_through_a_plain_dict(make_frontend):
    cfg = make_frontend(n_mels=80, fmax=7600.0)
    assert FrontEndConfig.from_dict(cfg.as_dict()) == cfg
    broken = cfg.as_dict()
    broken["melspec"]["n_mel"] = broken["melspec"].pop("n_mels")
    with pytest.raises(ValueError, match="n_mel"):
        FrontEndConfig.from_dict(broken)


def test_pad_or_trim_gives_exact_lengths():
    x = np.arange(10, dtype=np.float32)
    assert np.array_equal(pad_or_trim(x, 4), x[:4])
    padded = pad_or_trim(x, 15)
    assert padded.shape == (15,) and np.array_equal(padded[:10], x) and not padded[10:].any()


def test_prepare_trims_leading_silence_then_pads(make_frontend):
    audio = make_frontend(audio={"duration": 1.0, "trim_db": 40.0}).audio
    speechless = np.zeros(SR // 2, dtype=np.float32)
    clip = np.concatenate([speechless, tone(500.0, 0.25), speechless])
    ready = prepare(clip, audio)
    assert ready.shape == (SR,)
    first_loud = int(np.argmax(np.abs(ready) > 0.1))
    assert first_loud < 2048  # of 8000 samples of leading silence, less than one trim frame (2048) is left
    assert not ready[-SR // 4 :].any()  # and the end is padding
    untrimmed = prepare(clip, dataclasses.replace(audio, trim_db=None))
    assert np.array_equal(untrimmed, clip[:SR])


def test_trim_silence_cuts_exactly_where_librosa_does(mirror):
    rng = np.random.default_rng(0)
    quiet_and_loud = np.concatenate(
        [0.001 * rng.standard_normal(SR), tone(300.0, 0.5), 0.001 * rng.standard_normal(SR)]
    )
    clips = [quiet_and_loud, np.zeros(SR, dtype=np.float32), tone(300.0, 0.1)]
    clips += [sf.read(path, dtype="float32")[0] for path in sorted(mirror.glob("*/**/*.flac"))[::300]]
    assert len(clips) > 12
    for clip in clips:
        for top_db in (20.0, 40.0, 60.0):
            expected, _ = librosa.effects.trim(clip, top_db=top_db)
            assert np.array_equal(trim_silence(clip, top_db), expected)
    assert trim_silence(quiet_and_loud, None) is quiet_and_loud


def test_load_audio_mixes_down_and_resamples(tmp_path):
    stereo = np.stack([tone(440.0, 1.0, 44100), tone(440.0, 1.0, 44100)], axis=1)
    sf.write(tmp_path / "stereo.wav", stereo, 44100)
    sf.write(tmp_path / "mono16k.flac", tone(440.0, 1.0, SR), SR)
    from_stereo = load_audio(tmp_path / "stereo.wav", SR)
    reference = load_audio(tmp_path / "mono16k.flac", SR)
    assert from_stereo.shape == reference.shape == (SR,)
    assert from_stereo.dtype == np.float32
    # Same tone either way, up to resampler edge effects.
    assert np.max(np.abs(from_stereo[200:-200] - reference[200:-200])) < 0.01


def test_flac_decodes_to_libsndfiles_samples_bit_for_bit(mirror, tmp_path):
    rng = np.random.default_rng(0)
    noise = rng.uniform(-0.9, 0.9, size=(SR // 2, 2)).astype(np.float32)
    sf.write(tmp_path / "stereo24.flac", noise, 44100, subtype="PCM_24")
    sf.write(tmp_path / "mono16.flac", noise[:, 0], SR, subtype="PCM_16")
    files = [tmp_path / "stereo24.flac", tmp_path / "mono16.flac"]
    files += sorted(mirror.glob("*/**/*.flac"))[::400]
    assert len(files) > 10
    for path in files:
        fast = decode_whole_flac(path)
        assert fast is not None, path  # dr_flac took it: the fast path is the one tested
        expected, rate = sf.read(path, dtype="float32", always_2d=True)  # (n, channels)
        assert fast[1] == rate and np.array_equal(fast[0], expected), path
        assert np.array_equal(load_audio(path, rate), expected.mean(axis=1)), path


def test_truncated_or_corrupt_flac_is_refused_although_dr_flac_decodes_part_of_it(mirror, tmp_path):
    whole = (mirror / "ravdess" / "Actor_01" / "03-01-01-01-01-01-01.flac").read_bytes()
    truncated, corrupt = tmp_path / "truncated.flac", tmp_path / "corrupt.flac"
    truncated.write_bytes(whole[: len(whole) // 2])
    corrupt.write_bytes(whole[: len(whole) // 2] + bytes(4096) + whole[len(whole) // 2 + 4096 :])
    for path in (truncated, corrupt):
        declared = miniaudio.flac_get_file_info(str(path)).num_frames
        assert 0 < miniaudio.flac_read_file_f32(str(path)).num_frames < declared  # dr_flac alone would pass it
        assert decode_whole_flac(path) is None
        with pytest.raises(AudioError, match="cannot decode") as error:
            load_audio(path, SR)
        assert str(path) in str(error.value)


def test_a_flac_name_on_other_audio_is_decoded_by_libsndfile(tmp_path):
    path = tmp_path / "really_a_wav.flac"
    sf.write(path, tone(440.0), SR, format="WAV")
    assert decode_whole_flac(path) is None
    assert np.array_equal(load_audio(path, SR), sf.read(path, dtype="float32")[0])


def test_every_kind_of_unusable_file_has_one_message_naming_it(bad_audio):
    for path, problem in bad_audio.items():
        for read in (decode, lambda p: load_audio(p, SR), lambda p: list(stream_audio(p, SR, block_s=1.0))):
            with pytest.raises(AudioError) as error:
                read(path)
            assert str(error.value) == f"{path}: {problem}" or str(error.value).startswith(f"{path}: {problem} (")


def test_nan_samples_in_memory_are_refused_by_the_same_check():
    samples = tone(440.0)
    samples[100] = np.inf
    with pytest.raises(AudioError, match=r"^clip: the audio holds NaN or infinite samples$"):
        convert_audio(samples, SR, SR, "clip")
    with pytest.raises(AudioError, match=r"^clip: the file holds no audio samples$"):
        convert_audio(np.zeros((0, 2), np.float32), SR, SR, "clip")


def test_find_audio_is_recursive_sorted_and_skips_hidden_and_other_files(tmp_path, write_tone):
    for name in ("b/one.wav", "a/two.FLAC", "c/four.aiff", "five.wav"):
        write_tone(tmp_path / name, 300.0, fmt="AIFF" if name.endswith(".aiff") else None)
    (tmp_path / "a" / "deep").mkdir()
    sf.write(tmp_path / "a" / "deep" / "three.ogg", np.zeros(SR, np.float32), SR, format="OGG", subtype="VORBIS")
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / "folder.wav").mkdir()
    write_tone(tmp_path / ".hidden" / "six.wav", 300.0)
    write_tone(tmp_path / "a" / "._seven.wav", 300.0)
    names = [p.relative_to(tmp_path).as_posix() for p in find_audio(tmp_path)]
    assert names == ["a/deep/three.ogg", "a/two.FLAC", "b/one.wav", "c/four.aiff", "five.wav"]


def test_find_audio_follows_links_to_folders_once_and_lists_broken_links(tmp_path, write_tone):
    clips, search = tmp_path / "clips", tmp_path / "search"
    write_tone(clips / "one.wav", 300.0)
    write_tone(clips / "deep" / "two.wav", 300.0)
    write_tone(search / "own.wav", 300.0)
    (search / "linked").symlink_to(clips, target_is_directory=True)  # rglob would skip what is below it
    (search / "again").symlink_to(clips, target_is_directory=True)  # the same folder twice: searched once
    (search / "loop").symlink_to(search, target_is_directory=True)  # a loop: the search still ends
    (search / "gone.wav").symlink_to(tmp_path / "missing.wav")  # broken: listed, so decoding names it
    write_tone(search / "zreal" / "three.wav", 300.0)
    (search / "alink").symlink_to(search / "zreal", target_is_directory=True)  # sorts first, but the real path wins
    names = [p.relative_to(search).as_posix() for p in find_audio(search)]
    assert names == ["again/deep/two.wav", "again/one.wav", "gone.wav", "own.wav", "zreal/three.wav"]
    with pytest.raises(AudioError, match=r"gone\.wav: a broken link \(to .*missing\.wav\): no such file"):
        load_audio(search / "gone.wav", SR)
    assert find_audio(tmp_path / "nowhere") == []


def test_peak_dbfs_known_answers():
    assert peak_dbfs(np.array([0.0, -0.5, 0.25], np.float32)) == pytest.approx(-6.0206, abs=1e-4)
    assert peak_dbfs(np.ones(3, np.float32)) == 0.0
    assert peak_dbfs(np.zeros(3, np.float32)) == -math.inf
    assert peak_dbfs(np.zeros(0, np.float32)) == -math.inf


def test_a_file_this_user_may_not_read_is_named_with_the_reason(tmp_path, write_tone, monkeypatch):
    path = tmp_path / "locked.wav"
    write_tone(path, 300.0)
    path.chmod(0)
    if os.geteuid() == 0:  # root reads it anyway: let the operating system refuse as it would anyone else
        real_open = os.open

        def refuse(name, *args, **kwargs):
            if os.fspath(name) == os.fspath(path):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(name))
            return real_open(name, *args, **kwargs)

        monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(AudioError, match=r"locked\.wav: permission denied: this user cannot read the file"):
        load_audio(path, SR)


def test_front_end_settings_that_disagree_are_one_line_naming_the_params_file(make_frontend):
    frontend = make_frontend()
    nyquist = frontend.audio.sample_rate / 2
    assert FrontEndConfig.of(frontend.audio, frontend.melspec, "params.yaml") == frontend
    too_high = dataclasses.replace(frontend.melspec, fmax=nyquist + 1000.0)
    with pytest.raises(ParamsError, match=r"^params\.yaml: melspec\.fmax .* is above half of audio\.sample_rate"):
        FrontEndConfig.of(frontend.audio, too_high, "params.yaml")
    unknown = dataclasses.replace(frontend.melspec, window="kaiser")  # scipy's kaiser needs a parameter
    with pytest.raises(ParamsError, match=r"^params\.yaml: melspec\.window 'kaiser' is not a window"):
        FrontEndConfig.of(frontend.audio, unknown, "params.yaml")
