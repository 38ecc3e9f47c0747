"""What `ser predict` can be told: its options and the default model, importable without torch (so the
command line answers --help at once)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pydantic

from ser.params import Dbfs, Fraction, NonNegativeFloat, Positive, PositiveFloat

DEFAULT_MODEL = Path("data/models/1/model.pt")  # where `dvc repro` writes fold 1's bundle, relative to the repo


@pydantic.dataclasses.dataclass(frozen=True, config=pydantic.ConfigDict(extra="forbid"))
class PredictOptions:
    overlap: Fraction = 0.5  # fraction of a window shared with the next, for clips longer than one window
    silence_dbfs: Dbfs | None = None  # a file or window whose peak is below this is not judged; None: the bundle's
    # Not speech, so not judged either: a file shorter than min_duration_s, or a file or window with less than
    # min_sound_s of sound (25 ms frames within sound_db of its loudest, after removing its mean: a lone click
    # or a DC offset is not speech).
    min_duration_s: PositiveFloat = 0.25
    min_sound_s: PositiveFloat = 0.25
    sound_db: PositiveFloat = 40.0
    batch_size: Positive = 64  # windows per forward pass
    workers: Positive = 1  # processes decoding files (ser.parallel.imap); 1: decode in this process
    stream_above_s: NonNegativeFloat = 60.0  # s; longer files are decoded block by block, never whole
    block_s: PositiveFloat = 10.0  # s of audio read per block when streaming
    # Which windows share a speaker, for a model normalised per speaker (ser.normalise): each window alone
    # ("window", as for a lone clip), the windows of each file ("file": one speaker per recording), the files
    # of each folder ("folder"), or every file given ("all"). Models normalised otherwise ignore it.
    speakers: Literal["window", "file", "folder", "all"] = "window"
    # Average each window's probabilities over it shifted by ser.tta.SHIFTS_S, as the evaluate stage scores;
    # False: each window at its own position only (a fifth of the model's time, a little less accurate).
    shifts: bool = True
