"""openSMILE's eGeMAPS v02: 88 functionals of a clip (pitch, loudness, spectral shape, voice quality), the
features of the baseline (ser.baseline)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from ser.audio import load_audio, trim_silence
from ser.parallel import imap
from ser.params import AudioParams

ID_COLUMNS = ("clip_id", "corpus", "speaker", "emotion")  # what the table keeps of each clip beside its features


@functools.cache
def _smile():
    import opensmile  # imported in the worker that needs it: it loads openSMILE's library

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals
    )


def egemaps(path: str, audio: AudioParams) -> np.ndarray:
    """The 88 eGeMAPS v02 functionals (float64) of a clip, decoded as training decodes it and its leading and
    trailing silence trimmed (not padded: a pause would count in the functionals)."""
    samples = trim_silence(load_audio(path, audio.sample_rate), audio.trim_db)
    return _smile().process_signal(samples, audio.sample_rate).to_numpy()[0]


def feature_names() -> list[str]:
    return list(_smile().feature_names)


def compute_egemaps(split_table: pd.DataFrame, raw_dir: Path, audio: AudioParams, workers: int) -> pd.DataFrame:
    """One row per clip of the split table: its ID_COLUMNS and the 88 functionals."""
    paths = [str(raw_dir / path) for path in split_table["path"]]
    rows = list(imap(functools.partial(egemaps, audio=audio), paths, workers, desc="egemaps"))
    features = pd.DataFrame(np.stack(rows), columns=feature_names())
    return pd.concat([split_table[list(ID_COLUMNS)].reset_index(drop=True), features], axis=1)
