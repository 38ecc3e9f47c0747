"""The reference row: eGeMAPS functionals of real clips, speaker standardisation, and the SVM that validation
tunes and the test folds score."""

import numpy as np
import pandas as pd
import pytest

from ser.audio import AudioError
from ser.baseline import fit_and_test, speaker_standardised
from ser.egemaps import ID_COLUMNS, egemaps, feature_names
from ser.params import BaselineParams
from ser.splitting import role_column

EMOTIONS4 = ["neutral", "happy", "sad", "angry"]


def synthetic(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Eight speakers of one corpus, 40 clips each (10 per emotion) and 6 features: an emotion's direction
    (small) plus the speaker's own offset (large), and fold 1's roles (speakers 1-4 train, 5-6 validate, 7-8
    test)."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(0.0, 1.0, (len(EMOTIONS4), 6))
    rows = []
    for speaker in range(1, 9):
        offset = rng.normal(0.0, 10.0, 6)
        for i in range(40):
            emotion = i % len(EMOTIONS4)
            x = offset + directions[emotion] + rng.normal(0.0, 0.3, 6)
            rows.append(
                {
                    "clip_id": f"s{speaker}-{i}",
                    "corpus": "ravdess",
                    "speaker": f"s{speaker}",
                    "emotion": EMOTIONS4[emotion],
                    **{f"f{k}": v for k, v in enumerate(x)},
                }
            )
    features = pd.DataFrame(rows)
    roles = np.select(
        [features["speaker"].isin(["s5", "s6"]), features["speaker"].isin(["s7", "s8"])], ["val", "test"], "train"
    )
    split = features[list(ID_COLUMNS)].assign(**{role_column(1): roles})
    return features, split


def test_each_speaker_is_standardised_over_its_own_clips():
    features, _ = synthetic()
    x = speaker_standardised(features, [f"f{k}" for k in range(6)])
    for speaker in ("s1", "s8"):
        rows = (features["speaker"] == speaker).to_numpy()
        np.testing.assert_allclose(x[rows].mean(axis=0), 0.0, atol=1e-9)
        np.testing.assert_allclose(x[rows].std(axis=0), 1.0, atol=1e-9)


def test_the_svm_hears_emotion_through_speaker_offsets_and_validation_picks_c():
    features, split = synthetic()
    table, chosen = fit_and_test(features, split, 1, ["ravdess"], BaselineParams(c=(0.1, 1.0, 10.0)))
    assert set(table["speaker"]) == {"s7", "s8"} and len(table) == 80  # the test speakers, only
    assert chosen["c"] in (0.1, 1.0, 10.0) and chosen["val_score"] > 0.9
    assert (table["actual"] == table["predicted"]).mean() > 0.9
    # what it took away: before standardisation the features tell the speaker more than the emotion
    assert features.groupby("speaker")["f0"].mean().std() > 3 * features.groupby("emotion")["f0"].mean().std()


def test_egemaps_of_a_real_clip_are_88_finite_functionals(clips, params):
    values = egemaps(str(clips[0]), params.audio)
    assert values.shape == (88,) and np.isfinite(values).all()
    assert len(feature_names()) == 88 and feature_names()[0].startswith("F0semitone")
    with pytest.raises(AudioError, match="missing"):
        egemaps(str(clips[0].with_suffix(".missing.flac")), params.audio)
