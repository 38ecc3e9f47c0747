"""Section 1b: clips/s of ser.audio's FLAC decoder, dr_flac (miniaudio), against libsndfile on the section's
clips, and whether they decode the same samples."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
from common import SIDE_BY_SIDE_ROUNDS, Budget, print_side_by_side, side_by_side

from ser.audio import decode_whole_flac


def whole_flac(path: Path) -> tuple[np.ndarray, int]:
    """dr_flac's (samples, rate) of a FLAC file it decodes whole; RuntimeError if it leaves the file to libsndfile."""
    decoded = decode_whole_flac(path)
    if decoded is None:
        raise RuntimeError(f"{path}: dr_flac did not decode the whole file, so decode() would use libsndfile")
    return decoded


def libsndfile_flac(path: Path) -> tuple[np.ndarray, int]:
    return sf.read(path, dtype="float32", always_2d=True)


def same_samples(path: Path) -> bool:
    """Whether dr_flac and libsndfile decode the file into the same rate and float32 samples, bit for bit."""
    (samples, rate), (reference, reference_rate) = whole_flac(path), libsndfile_flac(path)
    return rate == reference_rate and np.array_equal(samples, reference)


def decode_all(decoder: Callable[[Path], object], files: Sequence[Path]) -> None:
    """Decode each file in turn, dropping the samples."""
    for path in files:
        decoder(path)


def flac_decoding_section(files: Sequence[Path], budget: Budget) -> dict:
    """Clips/s of ser.audio's FLAC decoder, dr_flac, against libsndfile on the same files; whether they agree."""
    identical = all([same_samples(path) for path in files])  # every clip, and the files in the page cache
    sides = {
        "dr_flac": lambda: decode_all(whole_flac, files),
        "libsndfile": lambda: decode_all(libsndfile_flac, files),
    }
    summary, _ = side_by_side(sides, len(files), dict.fromkeys(sides, 1), SIDE_BY_SIDE_ROUNDS, budget.side_by_side_s)
    result = {
        **summary,
        "samples_identical": identical,
        "note": (
            f"best of alternating runs of each for about {budget.side_by_side_s:g} s (at least "
            f"{SIDE_BY_SIDE_ROUNDS} each) over the section's FLAC clips, one thread; dr_flac = "
            "ser.audio.decode_whole_flac (miniaudio), as ser.audio.decode reads FLAC; libsndfile = "
            'soundfile.read(dtype="float32", always_2d=True), what decode falls back to; samples identical: '
            "np.array_equal of the two decodings (and equal rates) on every clip"
        ),
    }
    print_side_by_side("1b. FLAC decoding", result, f"samples identical on all {len(files)} clips: {identical}")
    return result
