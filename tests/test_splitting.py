"""Splits: speaker-independent, deterministic, and the six folds cover every RAVDESS actor once."""

import dataclasses

import pandas as pd
import pydantic
import pytest

from ser.audio import find_audio
from ser.corpora import PARSERS
from ser.splitting import EMOBOX_FOLDS, SPLITS, SplitError, actor_name, assign_splits, split_summary


@pytest.fixture(scope="module")
def manifest(mirror) -> pd.DataFrame:
    """The real corpora's clips with their labels, parsed from names (no decoding needed to split)."""
    rows = []
    for corpus, parse in PARSERS.items():
        for path in find_audio(mirror / corpus):
            labels = parse(path.name)
            rows.append({"clip_id": f"{corpus}/{path.stem}", "corpus": corpus, **dataclasses.asdict(labels)})
    return pd.DataFrame(rows)


def speakers_in(table: pd.DataFrame, split: str) -> set[str]:
    ravdess = table[table["corpus"] == "ravdess"]
    return set(ravdess.loc[ravdess["split"] == split, "speaker"])


@pytest.mark.parametrize("fold", sorted(EMOBOX_FOLDS))
def test_no_actor_or_word_is_in_two_splits(manifest, params, fold):
    table = assign_splits(manifest, dataclasses.replace(params.split, fold=fold))
    assert set(table["split"]) == set(SPLITS)
    assert table.groupby("speaker")["split"].nunique()[lambda s: s.index.str.startswith("Actor")].max() == 1
    tess = table[table["corpus"] == "tess"]
    assert tess.groupby("statement")["split"].nunique().max() == 1
    assert speakers_in(table, "test") == {actor_name(n) for n in EMOBOX_FOLDS[fold]}


def test_validation_actors_are_four_balanced_by_gender_and_outside_the_test_fold(manifest, params):
    table = assign_splits(manifest, dataclasses.replace(params.split, fold=1, val_actors=4, seed=7))
    val = speakers_in(table, "val")
    assert len(val) == 4
    assert not val & speakers_in(table, "test")
    genders = table.drop_duplicates("speaker").set_index("speaker").loc[sorted(val), "gender"]
    assert sorted(genders) == ["female", "female", "male", "male"]
    assert len(speakers_in(table, "train")) == 24 - 4 - 4


def test_the_six_folds_test_every_actor_and_every_tess_word_exactly_once(manifest, params):
    tested_actors: list[str] = []
    tested_words: list[str] = []
    for fold in EMOBOX_FOLDS:
        table = assign_splits(manifest, dataclasses.replace(params.split, fold=fold))
        tested_actors += sorted(speakers_in(table, "test"))
        tess = table[(table["corpus"] == "tess") & (table["split"] == "test")]
        tested_words += sorted(set(tess["statement"]))
    assert sorted(tested_actors) == [actor_name(n) for n in range(1, 25)]
    assert len(tested_words) == len(set(tested_words)) == 200


def test_split_is_a_pure_function_of_manifest_and_params(manifest, params):
    split = dataclasses.replace(params.split, fold=3, seed=11)
    first = assign_splits(manifest, split)
    again = assign_splits(manifest.sample(frac=1.0, random_state=0), split).loc[first.index]
    pd.testing.assert_frame_equal(first, again)
    other_seed = assign_splits(manifest, dataclasses.replace(split, seed=12))
    assert speakers_in(other_seed, "test") == speakers_in(first, "test")
    assert (other_seed["split"] != first["split"]).any()  # a new seed draws other validation actors or words


def test_summary_counts_every_clip_once(manifest, params):
    table = assign_splits(manifest, dataclasses.replace(params.split, fold=1))
    summary = split_summary(table)
    assert sum(summary["total"].values()) == len(manifest)
    assert sum(summary["ravdess"].values()) == (manifest["corpus"] == "ravdess").sum()
    assert summary["ravdess_actors"]["test"] == ["Actor_01", "Actor_11", "Actor_20", "Actor_21"]  # EmoBox fold 1


@pytest.mark.parametrize(("field", "value"), [("fold", 0), ("fold", 7), ("val_actors", 1)])
def test_out_of_range_split_values_are_refused_naming_the_key(params, field, value):
    with pytest.raises(pydantic.ValidationError, match=field):
        dataclasses.replace(params.split, **{field: value})


def test_more_validation_actors_than_present_is_refused_with_the_key_to_change(manifest, params):
    with pytest.raises(SplitError, match=r"split\.val_actors=20"):
        assign_splits(manifest, dataclasses.replace(params.split, val_actors=20))
