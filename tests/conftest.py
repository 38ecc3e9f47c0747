"""Shared fixtures: the read-only corpora mirror, and synthetic test tones."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

DEFAULT_MIRROR = Path(__file__).parents[2] / "shared" / "corpora"


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The real corpora mirror: $SER_DATA_MIRROR, else ../shared/corpora beside the repository."""
    value = os.environ.get("SER_DATA_MIRROR")
    if value:
        path = Path(value).expanduser()
        if not (path / "ravdess").is_dir() or not (path / "tess").is_dir():
            pytest.fail(f"SER_DATA_MIRROR={value} does not hold ravdess/ and tess/")
        return path
    if not (DEFAULT_MIRROR / "ravdess").is_dir() or not (DEFAULT_MIRROR / "tess").is_dir():
        pytest.skip(f"corpora mirror not available: SER_DATA_MIRROR is unset and {DEFAULT_MIRROR} is absent")
    return DEFAULT_MIRROR


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
