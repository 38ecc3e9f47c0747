"""Shared fixtures: the repository's params and front end, the corpora mirror, real clips, an untrained tiny
model bundle, every kind of unusable audio file, and synthetic tones."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ser.audio import FrontEndConfig
from ser.bundle import save_bundle
from ser.corpora import CORPORA, EMOTIONS
from ser.fetch import MIRROR_ENV, mirror_from_env
from ser.model import Classifier, Ensemble, ModelConfig
from ser.params import Params, load_params

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MIRROR = REPO.parent / "shared" / "corpora"


@pytest.fixture(scope="session")
def params() -> Params:
    """The repository's params.yaml, loaded: the only place default values live."""
    return load_params(REPO / "params.yaml")


@pytest.fixture(scope="session")
def frontend(params) -> FrontEndConfig:
    """The front end that params.yaml configures (16 kHz, 3 s clips, 64 mels, ...)."""
    return FrontEndConfig(audio=params.audio, melspec=params.melspec)


@pytest.fixture(scope="session")
def make_frontend(frontend) -> Callable[..., FrontEndConfig]:
    """make_frontend(audio={...}, **melspec): the repository's front end with some keys changed."""

    def make(audio: dict | None = None, **melspec) -> FrontEndConfig:
        return FrontEndConfig(
            audio=dataclasses.replace(frontend.audio, **(audio or {})),
            melspec=dataclasses.replace(frontend.melspec, **melspec),
        )

    return make


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The real corpora mirror: $SER_DATA_MIRROR, else ../shared/corpora beside the repository.

    Without it the test is skipped on a laptop, but fails in CI (CI is set), where a skip would hide it.
    """
    named = mirror_from_env()
    path = named or DEFAULT_MIRROR
    missing = [corpus for corpus in CORPORA if not (path / corpus).is_dir()]
    if missing:
        message = f"corpora mirror not found: {path} holds no {', '.join(missing)} (set {MIRROR_ENV})"
        if os.environ.get("CI") or named:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def clips(mirror) -> list[Path]:
    """Three real clips, each shorter than one 3 s window: two RAVDESS actors, one TESS."""
    return [
        mirror / "ravdess" / "Actor_01" / "03-01-01-01-01-01-01.flac",
        mirror / "ravdess" / "Actor_14" / "03-01-05-02-01-02-14.flac",
        mirror / "tess" / "YAF_happy" / "YAF_ring_happy.flac",
    ]


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, frontend) -> Path:
    """An untrained one-member bundle of the tiny preset (seed 0) for the repository's front end."""
    torch.manual_seed(0)
    config = ModelConfig.from_preset("tiny", frontend.melspec.n_mels, frontend.n_frames, len(EMOTIONS))
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_bundle(path, Ensemble([Classifier(config)]).eval(), frontend, info={"note": "untrained, for tests"})
    return path


@pytest.fixture
def bad_audio(tmp_path, clips) -> dict[Path, str]:
    """Every kind of unusable audio file, written to tmp_path: path -> what its one-line message says."""
    flac = clips[0].read_bytes()
    (tmp_path / "truncated.flac").write_bytes(flac[: len(flac) // 2])
    wav = tmp_path / "whole.wav"
    sf.write(wav, sf.read(clips[0], dtype="float32")[0], 16000)
    (tmp_path / "truncated.wav").write_bytes(wav.read_bytes()[: wav.stat().st_size // 2])
    wav.unlink()
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "no_samples.wav", np.zeros(0, np.float32), 16000)
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, -0.1] * 1000, np.float32), 16000, subtype="FLOAT")
    (tmp_path / "text.flac").write_text("this is not audio\n" * 20)
    (tmp_path / "folder.wav").mkdir()
    os.mkfifo(tmp_path / "fifo.wav")
    os.mkfifo(tmp_path / "fifo.flac")  # must be refused before any decoder opens it (it would block)
    return {
        tmp_path / "missing.wav": "no such file",
        tmp_path / "truncated.flac": "cannot decode audio",
        tmp_path / "truncated.wav": "the file is truncated",
        tmp_path / "empty.wav": "the file is empty (0 bytes)",
        tmp_path / "no_samples.wav": "the file holds no audio samples",
        tmp_path / "nan.wav": "the audio holds NaN or infinite samples",
        tmp_path / "text.flac": "not readable as audio",
        tmp_path / "folder.wav": "is a folder, not an audio file",
        tmp_path / "fifo.wav": "not a regular file",
        tmp_path / "fifo.flac": "not a regular file",
    }


@pytest.fixture
def write_tone() -> Callable[..., np.ndarray]:
    """write_tone(path, freq, seconds=0.25, sr=16000, amp=0.5, fmt=None): a sine tone; returns its samples."""

    def write(
        path: Path, freq: float, seconds: float = 0.25, sr: int = 16000, amp: float = 0.5, fmt: str | None = None
    ) -> np.ndarray:
        t = np.arange(round(seconds * sr)) / sr
        samples = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, samples, sr, format=fmt, subtype="PCM_16")
        return samples

    return write
