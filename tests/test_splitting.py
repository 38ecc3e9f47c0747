"""Folds: speaker-independent in every corpus, every speaker (TESS: word) tested exactly once over the six,
validation drawn from each fold's training speakers, deterministic."""

import dataclasses

import pandas as pd
import pytest

from ser.audio import find_audio
from ser.corpora import CORPORA, CREMAD_ACTORS, CREMAD_FEMALE, EMOBOX_FOLDS, cremad_folds
from ser.io import read_table, write_csv
from ser.splitting import FOLDS, ROLES, SplitError, assign_roles, fold_clips, role_column, split_summary


@pytest.fixture(scope="module")
def manifest(mirror) -> pd.DataFrame:
    """The real corpora's clips with their labels, parsed from names (no decoding needed to split)."""
    rows = []
    for corpus, spec in CORPORA.items():
        for path in find_audio(mirror / corpus):
            labels = spec.parse(path.name)
            rows.append({"clip_id": f"{corpus}/{path.stem}", "corpus": corpus, **dataclasses.asdict(labels)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def table(manifest, params) -> pd.DataFrame:
    return assign_roles(manifest, params.split)


def groups_in(table: pd.DataFrame, corpus: str, fold: int, role: str) -> set[str]:
    rows = fold_clips(table[table["corpus"] == corpus], fold, role)
    return set(rows[CORPORA[corpus].fold_by])


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_no_group_has_two_roles_in_a_fold_and_each_is_tested_exactly_once(table, corpus):
    clips = table[table["corpus"] == corpus]
    by = CORPORA[corpus].fold_by
    tested: list[str] = []
    for fold in FOLDS:
        assert clips.groupby(by)[role_column(fold)].nunique().max() == 1, fold  # a speaker is in one role
        assert set(clips[role_column(fold)]) == set(ROLES), fold
        test, val = groups_in(table, corpus, fold, "test"), groups_in(table, corpus, fold, "val")
        assert len(val) == len(test) and not val & test  # validation: as many others, never a test speaker
        tested += sorted(test)
    assert sorted(tested) == sorted(clips[by].unique())  # every group tested once over the six folds


@pytest.mark.parametrize("corpus", ["ravdess", "cremad"])
def test_validation_speakers_are_half_of_each_sex(table, corpus):
    clips = table[table["corpus"] == corpus].drop_duplicates("speaker").set_index("speaker")
    for fold in FOLDS:
        val = sorted(groups_in(table, corpus, fold, "val"))
        sexes = clips.loc[val, "gender"].value_counts()
        assert sexes["male"] - sexes["female"] in (0, 1), (fold, val)


def test_ravdess_tests_the_emobox_folds(table):
    for fold, actors in EMOBOX_FOLDS.items():
        assert groups_in(table, "ravdess", fold, "test") == {f"Actor_{n:02d}" for n in actors}


def test_cremad_folds_are_a_pure_function_of_the_actor_balanced_by_sex():
    everyone = cremad_folds([str(actor) for actor in CREMAD_ACTORS])
    assert len(CREMAD_FEMALE) == 43 and len(CREMAD_ACTORS) == 91  # as in VideoDemographics.csv
    for fold in FOLDS:
        members = [int(actor) for actor, k in everyone.items() if k == fold]
        males = [a for a in members if a not in CREMAD_FEMALE]
        assert len(males) == 8 and len(members) - len(males) in (7, 8), fold  # 48 men and 43 women, dealt
    subset = ["1052", "1017", "1030"]
    assert cremad_folds(subset) == {actor: everyone[actor] for actor in subset}  # any subset: the same folds


def test_the_sex_table_agrees_with_the_mirrors_manifest(mirror):
    listed = pd.read_csv(mirror / "cremad" / "MANIFEST.tsv", sep="\t")  # the test's check only: the code has none
    listed["actor"] = listed["original_name"].str[:4].astype(int)
    for actor, sex in listed.drop_duplicates("actor").set_index("actor")["actor_sex"].items():
        assert (actor in CREMAD_FEMALE) == (sex == "Female"), actor


def test_roles_are_a_pure_function_of_manifest_and_seed(manifest, params, table):
    shuffled = assign_roles(manifest.sample(frac=1.0, random_state=0), params.split).loc[table.index]
    pd.testing.assert_frame_equal(shuffled, table)
    reseeded = assign_roles(manifest, dataclasses.replace(params.split, seed=params.split.seed + 1))
    for fold in FOLDS:
        column = role_column(fold)
        assert ((reseeded[column] == "test") == (table[column] == "test")).all()  # the folds do not move
    assert any((reseeded[role_column(fold)] != table[role_column(fold)]).any() for fold in FOLDS)  # validation does


def test_summary_counts_every_clip_once_per_fold(table):
    summary = split_summary(table)
    assert sorted(summary) == [str(fold) for fold in FOLDS]
    for fold in FOLDS:
        per_corpus = summary[str(fold)]
        assert sum(c[role] for c in per_corpus.values() for role in ROLES) == len(table)
        assert per_corpus["ravdess"]["test_groups"] == 4 and per_corpus["ravdess"]["val_groups"] == 4
        assert per_corpus["cremad"]["train"] + per_corpus["cremad"]["val"] + per_corpus["cremad"]["test"] == 2290


def test_a_corpus_too_small_to_validate_is_refused_saying_what_to_do(manifest, params):
    few = manifest[manifest["speaker"].isin(["Actor_01", "Actor_02", "Actor_11"])]  # fold 1 tests 01 and 11
    with pytest.raises(SplitError, match=r"^ravdess, fold 1: 2 female validation groups are needed .* fetch more"):
        assign_roles(few, params.split)


def test_a_manifest_read_back_from_csv_keeps_cremad_speakers_as_names(manifest, params, tmp_path):
    cremad = manifest[manifest["corpus"] == "cremad"]  # alone, its speaker column looks like integers
    write_csv(cremad, tmp_path / "manifest.csv")
    again = read_table(tmp_path / "manifest.csv")
    assert again["speaker"].tolist() == cremad["speaker"].tolist() and set(again["intensity"]) >= {"", "high"}
    table = assign_roles(again, params.split)
    assert set(fold_clips(table, 1, "test")["speaker"]) == {"1017", "1021", "1031", "1037", "1038"}


def test_unknown_corpora_and_folds_are_refused(manifest, params):
    with pytest.raises(SplitError, match=r"unknown corpora \['other'\]"):
        assign_roles(manifest.head(3).assign(corpus="other"), params.split)
    with pytest.raises(SplitError, match="fold 7 does not exist"):
        role_column(7)
