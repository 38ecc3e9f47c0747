"""Training: masks, class weights, determinism, and model selection on validation only."""

import dataclasses

import numpy as np
import pandas as pd
import pydantic
import pytest
import torch

from ser.audio import FrontEndConfig, htk_mel, mel_edges
from ser.corpora import EMOTIONS
from ser.evaluation import predict_proba, scores, selection_score
from ser.features import FeatureSplit
from ser.model import Classifier, Ensemble, ModelConfig
from ser.params import ParamsError, TrainParams
from ser.plots import training_curves
from ser.train import (
    FrequencyWarp,
    drawn_share,
    epoch_rows,
    label_indices,
    mixup,
    one_cycle,
    rows_per_epoch,
    sample_weights,
    spec_augment,
    train_ensemble,
    train_model,
    validation_scores,
    version_caps,
    version_groups,
)

N_MELS, N_FRAMES = 64, 48


def synthetic_split(n_per_class: int, seed: int, classes=EMOTIONS) -> FeatureSplit:
    """Spectrograms whose loudest band encodes the emotion: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    emotions = [e for e in classes for _ in range(n_per_class)]
    features = rng.normal(-40.0, 3.0, (len(emotions), N_MELS, N_FRAMES)).astype(np.float32)
    for row, emotion in enumerate(emotions):
        band = 4 + 7 * EMOTIONS.index(emotion)
        features[row, band : band + 4] += 25.0
    return FeatureSplit(features=features, table=pd.DataFrame({"emotion": emotions, "corpus": "ravdess"}))


def shortened(train: TrainParams) -> TrainParams:
    """params.yaml's training, shortened to seconds on the synthetic splits (all "ravdess"): one model, every
    version every epoch, no mixup, no averaging."""
    return dataclasses.replace(
        train,
        corpora=("ravdess",),
        versions_per_epoch=None,
        versions_per_epoch_corpora=None,
        epochs=4,
        batch_size=16,
        lr=3e-3,
        weight_decay=0.0,
        time_masks=1,
        freq_masks=1,
        freq_mask_bands=2,
        mixup=0.0,
        average_last=0,
        members=1,
    )


@pytest.fixture
def fast(params):
    return shortened(params.train)


def tiny() -> ModelConfig:
    return ModelConfig.from_preset("tiny", N_MELS, N_FRAMES, len(EMOTIONS))


def test_spec_augment_masks_within_the_widths_and_fills_with_the_clip_mean(fast):
    batch = torch.arange(2 * 8 * 30, dtype=torch.float32).reshape(2, 8, 30)
    params = dataclasses.replace(fast, time_masks=1, time_mask_frames=5, freq_masks=0)
    out = spec_augment(batch, params, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape
    for clip in range(2):
        changed = (out[clip] != batch[clip]).any(dim=0)  # (n_frames,)
        assert changed.sum() <= 5
        assert torch.all(out[clip][:, changed] == batch[clip].mean())
    none = spec_augment(batch, dataclasses.replace(params, time_masks=0), torch.Generator())
    assert torch.equal(none, batch)


def test_frequency_warp_moves_a_formant_by_its_factor_and_keeps_the_ends(frontend):
    warp = FrequencyWarp(frontend, 0.1)
    n_mels = frontend.melspec.n_mels
    edges = mel_edges(frontend.audio.sample_rate, frontend.melspec)
    alphas = np.array([0.9, 1.0, 1.1])
    positions = warp.positions(alphas)  # (3, n_mels)
    np.testing.assert_allclose(positions[1], np.arange(n_mels), atol=1e-9)  # alpha 1: every band reads itself
    # the top frequency stays where it is (the paper's warp), so the top band barely moves
    np.testing.assert_allclose(positions[:, -1], n_mels - 1, atol=0.2)
    assert np.all(np.diff(positions, axis=1) > 0)  # the warp is monotonic: no band reads behind its neighbour
    # below the knee, output frequency f reads the source at f / alpha: a band's content moves to alpha f
    band = 20
    assert edges[band + 1] < FrequencyWarp.F_HI * edges[-1] * 0.9
    for row, alpha in enumerate(alphas):
        source_mel = htk_mel(edges[band + 1] / alpha)
        step = htk_mel(edges[2]) - htk_mel(edges[1])
        assert positions[row, band] == pytest.approx((source_mel - htk_mel(edges[1])) / step)
    # a spectrum peaked at one band, warped up by 1.1, peaks 10% higher in Hz
    batch = torch.zeros(1, n_mels, 3)
    batch[0, band] = 1.0
    fixed = torch.Generator().manual_seed(0)
    up = FrequencyWarp(frontend, 0.1)
    up.positions = lambda alpha: warp.positions(np.full_like(alpha, 1.1))
    peak = int(up(batch, fixed)[0, :, 0].argmax())
    assert peak != band
    assert abs(edges[peak + 1] - 1.1 * edges[band + 1]) < abs(edges[peak] - 1.1 * edges[band + 1])
    assert abs(edges[peak + 1] - 1.1 * edges[band + 1]) < abs(edges[peak + 2] - 1.1 * edges[band + 1])


def test_frequency_warp_draws_a_factor_per_clip_within_its_range_and_is_seeded(frontend):
    warp = FrequencyWarp(frontend, 0.1)
    batch = torch.randn(16, frontend.melspec.n_mels, 10)
    first = warp(batch, torch.Generator().manual_seed(3))
    assert torch.equal(first, warp(batch, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, warp(batch, torch.Generator().manual_seed(4)))
    assert first.shape == batch.shape
    assert not torch.equal(first[0], batch[0])
    # every output value lies between the two input bands it interpolates: within the clip's range
    assert torch.all(first.amax(dim=(1, 2)) <= batch.amax(dim=(1, 2)) + 1e-6)
    assert torch.all(first.amin(dim=(1, 2)) >= batch.amin(dim=(1, 2)) - 1e-6)
    torch.testing.assert_close(FrequencyWarp(frontend, 0.0)(batch, torch.Generator()), batch)  # alpha 1: as it was


def test_frequency_warp_of_some_clips_leaves_the_others_and_draws_as_for_all(frontend):
    warp = FrequencyWarp(frontend, 0.1)
    batch = torch.randn(6, frontend.melspec.n_mels, 10)
    only = torch.tensor([True, False, True, False, False, True])
    every, after_every = warp(batch, torch.Generator().manual_seed(5)), torch.Generator().manual_seed(5)
    warp(batch, after_every)
    generator = torch.Generator().manual_seed(5)
    some = warp(batch, generator, only)
    assert torch.equal(some[only], every[only]) and not torch.equal(some[only], batch[only])
    assert torch.equal(some[~only], batch[~only])
    assert torch.equal(generator.get_state(), after_every.get_state())  # what is drawn next does not move


def two_corpora(split: FeatureSplit) -> FeatureSplit:
    """The synthetic split with every other clip relabelled as TESS's."""
    corpus = np.where(np.arange(len(split.table)) % 2, "tess", "ravdess")
    return dataclasses.replace(split, table=split.table.assign(corpus=corpus))


def test_frequency_warp_of_named_corpora_warps_only_their_training_clips(fast, frontend):
    mel = dataclasses.replace(frontend.melspec, n_mels=N_MELS)
    frontend = FrontEndConfig(audio=frontend.audio, melspec=mel)
    train, val = two_corpora(synthetic_split(12, seed=0)), two_corpora(synthetic_split(4, seed=1))
    both = dataclasses.replace(fast, corpora=("ravdess", "tess"), freq_warp=0.1)

    def history(**changes):
        params = dataclasses.replace(both, **changes)
        result = train_model(train, val, tiny(), params, torch.device("cpu"), frontend=frontend)
        return result.history.drop(columns="seconds")

    every = history(freq_warp_corpora=None)
    pd.testing.assert_frame_equal(history(freq_warp_corpora=("tess", "ravdess")), every)  # all that train: all
    assert not history(freq_warp_corpora=("tess",))["train_loss"].equals(every["train_loss"])
    with pytest.raises(ValueError, match="freq_warp_corpora names cremad, which does not train"):
        dataclasses.replace(both, freq_warp_corpora=("cremad",))


def test_training_with_frequency_warp_is_deterministic_learns_and_needs_the_front_end(fast, frontend):
    mel = dataclasses.replace(frontend.melspec, n_mels=N_MELS)
    frontend = FrontEndConfig(audio=frontend.audio, melspec=mel)
    params = dataclasses.replace(fast, freq_warp=0.1)
    train, val = synthetic_split(12, seed=0), synthetic_split(4, seed=1)
    first = train_model(train, val, tiny(), params, torch.device("cpu"), frontend=frontend)
    again = train_model(train, val, tiny(), params, torch.device("cpu"), frontend=frontend)
    plain = train_model(train, val, tiny(), fast, torch.device("cpu"))
    pd.testing.assert_frame_equal(first.history.drop(columns="seconds"), again.history.drop(columns="seconds"))
    assert not first.history["train_loss"].equals(plain.history["train_loss"])
    assert first.best_val["all"]["ua"] > 0.5
    with pytest.raises(ValueError, match="freq_warp"):
        train_model(train, val, tiny(), params, torch.device("cpu"))


def test_sample_weights_balance_classes_or_classes_within_corpora():
    table = pd.DataFrame(
        {
            "corpus": ["ravdess", "ravdess", "ravdess", "tess", "tess", "tess"],
            "emotion": ["calm", "neutral", "neutral", "neutral", "neutral", "neutral"],
        }
    )
    by_class = sample_weights(table, "class")
    by_cell = sample_weights(table, "corpus_class")
    assert by_class.mean().item() == pytest.approx(1.0) and by_cell.mean().item() == pytest.approx(1.0)
    # "class": calm (1 clip) weighs as much in total as neutral (5 clips).
    assert by_class[0].item() == pytest.approx(5 * by_class[1].item())
    # "corpus_class": each (corpus, emotion) cell weighs the same in total: RAVDESS neutral clips count
    # 3/2 as much as TESS ones, where "class" would weigh them the same.
    assert by_cell[0].item() == pytest.approx(2 * by_cell[1].item())
    assert by_cell[1].item() == pytest.approx(1.5 * by_cell[3].item())
    assert torch.equal(sample_weights(table, "none"), torch.ones(6))
    assert label_indices(pd.Series(["neutral", "surprised"])).tolist() == [0, 7]


def test_selection_score_weighs_each_training_corpus_equally_and_never_sees_an_unseen_one():
    scores = {"ravdess": {"ua": 0.5}, "tess": {"ua": 1.0}, "cremad": {"ua": 0.2}, "all": {"ua": 0.9}}
    assert selection_score(scores, ["ravdess", "tess"]) == pytest.approx(0.75)  # cremad left out of training
    assert selection_score(scores, ["ravdess", "tess", "cremad"]) == pytest.approx(1.7 / 3)
    assert selection_score(scores, ["cremad"]) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="no validation clips of crema: nothing to choose the weights with"):
        selection_score(scores, ["ravdess", "crema"])  # never a silent mean over the corpora that happen to be there


def test_validation_scores_are_the_hand_computed_ua_wa_f1_per_corpus_and_the_mean_log_loss():
    # a "model" that outputs its input: each clip's features are the log of its class probabilities, 0.65 on
    # the predicted emotion and 0.05 on each other
    actual = ["neutral", "calm", "calm", "neutral", "neutral", "neutral", "sad"]
    predicted = ["neutral", "calm", "neutral", "neutral", "sad", "sad", "sad"]
    probabilities = np.full((7, len(EMOTIONS)), 0.05, np.float32)
    probabilities[np.arange(7), [EMOTIONS.index(e) for e in predicted]] = 0.65
    val = FeatureSplit(
        features=np.log(probabilities),
        table=pd.DataFrame({"emotion": actual, "corpus": ["ravdess"] * 3 + ["tess"] * 4}),
    )
    y_val = label_indices(val.table["emotion"]).numpy()
    per_corpus, score, loss = validation_scores(
        torch.nn.Identity(), val, y_val, ["ravdess", "tess"], torch.device("cpu")
    )
    _, ravdess_only, _ = validation_scores(torch.nn.Identity(), val, y_val, ["ravdess"], torch.device("cpu"))
    assert ravdess_only == pytest.approx(0.75)
    # ravdess: neutral 1/1, calm 1/2 right; tess: neutral 1/3, sad 1/1 right
    assert per_corpus["ravdess"]["ua"] == pytest.approx((1 + 1 / 2) / 2)
    assert per_corpus["ravdess"]["wa"] == pytest.approx(2 / 3)
    assert per_corpus["tess"]["ua"] == pytest.approx((1 / 3 + 1) / 2)
    assert per_corpus["tess"]["wa"] == pytest.approx(2 / 4)
    # all: neutral 2/4, calm 1/2, sad 1/1 right; F1 of neutral (P 2/3, R 1/2) 4/7, calm (P 1, R 1/2) 2/3,
    # sad (P 1/3, R 1) 1/2
    assert per_corpus["all"]["ua"] == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    assert per_corpus["all"]["wa"] == pytest.approx(4 / 7)
    assert per_corpus["all"]["macro_f1"] == pytest.approx((4 / 7 + 2 / 3 + 1 / 2) / 3)
    assert per_corpus["all"]["recall"] == pytest.approx({"neutral": 0.5, "calm": 0.5, "sad": 1.0})
    assert score == pytest.approx((0.75 + 2 / 3) / 2)  # the corpora's UAs, each weighing the same
    assert loss == pytest.approx(-(4 * np.log(0.65) + 3 * np.log(0.05)) / 7, rel=1e-5)


def test_mixup_mixes_inputs_targets_and_weights_with_one_weight_per_batch():
    inputs = torch.randn(6, 4, 5)
    targets = torch.tensor([0, 1, 2, 3, 4, 5])
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    mixed, probabilities, mixed_weights = mixup(
        inputs, targets, weights, 8, 0.4, np.random.default_rng(0), torch.Generator().manual_seed(0)
    )
    assert probabilities.shape == (6, 8)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(6))
    own = probabilities[torch.arange(6), targets]  # the clip's own class, lam (or 1 if paired with itself)
    lam = own.min().item()
    assert 0.5 <= lam < 1.0
    for row in range(6):
        partner_class = int(torch.argsort(probabilities[row], descending=True)[1]) if own[row] < 1 else row
        partner = int((targets == partner_class).nonzero())
        torch.testing.assert_close(mixed[row], lam * inputs[row] + (1 - lam) * inputs[partner])
        torch.testing.assert_close(mixed_weights[row], lam * weights[row] + (1 - lam) * weights[partner])


def test_mixup_training_is_deterministic_and_learns(fast):
    train, val = synthetic_split(12, seed=0), synthetic_split(4, seed=1)
    params = dataclasses.replace(fast, mixup=0.4, epochs=6)
    first = train_model(train, val, tiny(), params, torch.device("cpu"))
    again = train_model(train, val, tiny(), params, torch.device("cpu"))
    pd.testing.assert_frame_equal(first.history.drop(columns="seconds"), again.history.drop(columns="seconds"))
    assert first.best_val["all"]["ua"] > 0.5


def test_averaged_weights_compete_with_single_epochs_on_validation(fast):
    train, val = synthetic_split(12, seed=0), synthetic_split(4, seed=1)
    params = dataclasses.replace(fast, epochs=5, average_last=3)
    result = train_model(train, val, tiny(), params, torch.device("cpu"))
    again = train_model(train, val, tiny(), params, torch.device("cpu"))
    for a, b in zip(result.model.state_dict().values(), again.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert result.average_val is not None
    best_single = result.history["val_score"].max()
    average_score = selection_score(result.average_val, params.corpora)
    assert result.averaged == (average_score > best_single)
    kept = result.history.loc[result.history["kept"], "epoch"].tolist()
    if result.averaged:
        assert result.best_epoch == params.epochs and result.best_val == result.average_val
        assert kept == [3, 4, 5]
    else:
        assert kept == [result.best_epoch]
    probabilities = predict_proba(result.model, val.features, torch.device("cpu"))
    rescored = scores(val.table["emotion"], np.take(EMOTIONS, probabilities.argmax(axis=1)))
    assert rescored["ua"] == pytest.approx(result.best_val["all"]["ua"])
    off = train_model(train, val, tiny(), dataclasses.replace(params, average_last=0), torch.device("cpu"))
    assert off.average_val is None and not off.averaged
    pd.testing.assert_frame_equal(off.history.drop(columns="seconds"), result.history.drop(columns="seconds"))


def test_averaging_more_epochs_than_trained_averages_them_all(fast):
    assert dataclasses.replace(fast, epochs=5, average_last=3).first_averaged_epoch == 3
    assert dataclasses.replace(fast, epochs=2, average_last=10).first_averaged_epoch == 1
    train, val = synthetic_split(12, seed=0), synthetic_split(4, seed=1)
    result = train_model(train, val, tiny(), dataclasses.replace(fast, epochs=2, average_last=10), torch.device("cpu"))
    assert result.average_val is not None


@pytest.mark.parametrize(
    ("field", "value"),
    [("average_last", -1), ("mixup", -0.1), ("members", 0), ("weight_decay", -0.01), ("freq_warp", 0.5)],
)
def test_out_of_range_training_values_are_refused_naming_the_key(params, field, value):
    with pytest.raises(pydantic.ValidationError, match=field):
        dataclasses.replace(params.train, **{field: value})


def test_training_is_deterministic_on_the_cpu_and_learns(fast):
    train, val = synthetic_split(12, seed=0), synthetic_split(4, seed=1)
    first = train_model(train, val, tiny(), fast, torch.device("cpu"))
    again = train_model(train, val, tiny(), fast, torch.device("cpu"))
    pd.testing.assert_frame_equal(first.history.drop(columns="seconds"), again.history.drop(columns="seconds"))
    for (name, a), b in zip(first.model.state_dict().items(), again.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert len(first.history) == fast.epochs
    assert first.best_val["all"]["ua"] > 0.5  # 8 classes: chance is 0.125
    assert first.history["train_loss"].iloc[-1] < first.history["train_loss"].iloc[0]


def test_the_kept_weights_are_those_of_the_best_validation_epoch(fast):
    train, val = synthetic_split(12, seed=0), synthetic_split(4, seed=1)
    result = train_model(train, val, tiny(), fast, torch.device("cpu"))
    best_row = result.history.loc[result.history["val_score"].idxmax()]
    assert result.best_epoch == int(best_row["epoch"])
    assert result.history.loc[result.history["kept"], "epoch"].tolist() == [result.best_epoch]
    assert result.best_val["all"]["ua"] == pytest.approx(best_row["val_ua"])
    probabilities = predict_proba(result.model, val.features, torch.device("cpu"))
    rescored = scores(val.table["emotion"], np.take(EMOTIONS, probabilities.argmax(axis=1)))
    assert rescored["ua"] == pytest.approx(result.best_val["all"]["ua"])


def tripled(split: FeatureSplit) -> FeatureSplit:
    """Each clip of `split` and two copies of it (its versions), each copy a little louder."""
    table = pd.concat([split.table.assign(source_clip_id=range(len(split.table)))] * 3, ignore_index=True)
    return FeatureSplit(features=np.concatenate([split.features + version for version in range(3)]), table=table)


def test_too_few_clips_for_a_batch_is_a_clear_error(fast):
    with pytest.raises(ParamsError, match=r"train\.batch_size: an epoch draws 8 training rows, fewer than one batch"):
        train_model(synthetic_split(1, 0), synthetic_split(1, 1), tiny(), fast, torch.device("cpu"))
    # 24 rows, 8 of them an epoch: the count is of the rows an epoch draws
    once = dataclasses.replace(fast, versions_per_epoch=1)
    with pytest.raises(ParamsError, match="draws 8 training rows"):
        train_model(tripled(synthetic_split(1, 0)), synthetic_split(1, 1), tiny(), once, torch.device("cpu"))


def test_averaged_weights_take_batchnorm_statistics_from_every_version_of_every_clip(fast, monkeypatch):
    train, val = tripled(synthetic_split(12, seed=0)), synthetic_split(4, seed=1)
    seen = []
    update_bn = torch.optim.swa_utils.update_bn

    def recorded(batches, model, device):
        batches = list(batches)
        seen.append(torch.cat(batches))
        return update_bn(batches, model, device)

    monkeypatch.setattr(torch.optim.swa_utils, "update_bn", recorded)
    for versions in (1, None):  # whatever an epoch draws: every row, in table order
        params = dataclasses.replace(fast, epochs=3, average_last=2, versions_per_epoch=versions)
        train_model(train, val, tiny(), params, torch.device("cpu"))
        assert torch.equal(seen.pop(), torch.from_numpy(train.features))


def test_ensemble_members_are_the_models_of_successive_seeds_and_validation_scores_their_mean(fast, tmp_path):
    train, val = synthetic_split(12, seed=0), synthetic_split(4, seed=1)
    params = dataclasses.replace(fast, seed=3, members=2)
    result = train_ensemble(train, val, tiny(), params, torch.device("cpu"))
    assert len(result.members) == 2
    assert isinstance(result.model, Ensemble) and result.model.config == tiny()
    assert list(result.model.members) == [member.model for member in result.members]
    for index, member in enumerate(result.members):
        alone = train_model(train, val, tiny(), dataclasses.replace(params, seed=3 + index), torch.device("cpu"))
        for a, b in zip(member.model.state_dict().values(), alone.model.state_dict().values(), strict=True):
            assert torch.equal(a, b)
    mean = np.mean([predict_proba(m.model, val.features, torch.device("cpu")) for m in result.members], axis=0)
    np.testing.assert_allclose(predict_proba(result.model, val.features, torch.device("cpu")), mean, atol=1e-5)
    rescored = scores(val.table["emotion"], np.take(EMOTIONS, mean.argmax(axis=1)))
    assert rescored["ua"] == pytest.approx(result.val["all"]["ua"])
    assert list(result.history["member"]) == [1] * fast.epochs + [2] * fast.epochs
    assert list(result.history["run_epoch"]) == list(range(1, 2 * fast.epochs + 1))
    training_curves(result.history, tmp_path / "curves.png")  # one line style per member
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_every_epoch_of_every_member_is_reported_as_it_ends(fast):
    train, val = synthetic_split(12, seed=0), synthetic_split(4, seed=1)
    seen = []
    result = train_ensemble(
        train,
        val,
        tiny(),
        dataclasses.replace(fast, members=2, epochs=2),
        torch.device("cpu"),
        on_epoch=lambda member, row: seen.append((member, row["epoch"], row["val_score"])),
    )
    assert [(member, epoch) for member, epoch, _ in seen] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert [score for *_, score in seen] == result.history["val_score"].tolist()


def test_one_member_is_plain_training_in_an_ensemble_of_one(fast):
    train, val = synthetic_split(12, seed=0), synthetic_split(4, seed=1)
    result = train_ensemble(train, val, tiny(), fast, torch.device("cpu"))
    alone = train_model(train, val, tiny(), fast, torch.device("cpu"))
    assert isinstance(result.model, Ensemble) and len(result.model.members) == 1
    (member,) = result.model.members
    assert isinstance(member, Classifier) and result.val == alone.best_val
    for a, b in zip(member.state_dict().values(), alone.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    np.testing.assert_allclose(
        predict_proba(result.model, val.features, torch.device("cpu")),
        predict_proba(alone.model, val.features, torch.device("cpu")),
        atol=1e-6,
    )


def test_each_epoch_draws_the_asked_number_of_versions_of_every_source_clip(fast):
    # 5 sources: 0 and 1 with two copies each, 2 with none, 3 and 4 with one
    table = pd.DataFrame({"source_clip_id": ["a", "a", "a", "b", "b", "b", "c", "d", "d", "e", "e"]})
    table["corpus"] = ["ravdess"] * 6 + ["tess"] * 5
    groups = version_groups(table)

    def caps(per_epoch, corpora=None):
        params = dataclasses.replace(
            fast, corpora=("ravdess", "tess"), versions_per_epoch=per_epoch, versions_per_epoch_corpora=corpora
        )
        return version_caps(table, groups, params)

    generator = torch.Generator().manual_seed(0)
    drawn = [epoch_rows(groups, caps(1), generator) for _ in range(60)]
    for rows in drawn:
        assert len(rows) == rows_per_epoch(groups, caps(1)) == 5
        assert sorted(groups[rows.numpy()]) == [0, 1, 2, 3, 4]  # one version of each source, every epoch
    # every version of "a" (rows 0-2) turns up over the epochs, and not always in the same place
    assert {int(rows[np.isin(rows.numpy(), [0, 1, 2])][0]) for rows in drawn} == {0, 1, 2}
    assert len({tuple(rows.tolist()) for rows in drawn}) > 30
    two = epoch_rows(groups, caps(2), generator)
    assert len(two) == rows_per_epoch(groups, caps(2)) == 9 and len(set(two.tolist())) == 9  # "c" has only one
    every = epoch_rows(groups, caps(None), torch.Generator().manual_seed(0))
    assert torch.equal(every, torch.randperm(11, generator=torch.Generator().manual_seed(0)))  # as before: all rows
    assert rows_per_epoch(groups, caps(None)) == 11
    assert (version_groups(pd.DataFrame({"emotion": ["sad", "sad"]})) == [0, 1]).all()  # no copies: own sources
    # limited for TESS only: RAVDESS's six rows every epoch, one version of each TESS source
    tess_once = caps(1, ("tess",))
    assert tess_once.tolist() == [3, 3, 1, 1, 1] and rows_per_epoch(groups, tess_once) == 9
    for _ in range(20):
        rows = epoch_rows(groups, tess_once, generator).numpy()
        assert sorted(rows[rows < 6]) == list(range(6)) and sorted(groups[rows[rows >= 6]]) == [2, 3, 4]
    assert drawn_share(groups, tess_once).tolist() == [1, 1, 1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5]
    assert drawn_share(groups, None).tolist() == [1] * 11


def test_loss_weights_keep_each_corpus_share_when_its_versions_are_drawn_less_often():
    # RAVDESS: 4 rows, all drawn; TESS: 6 rows, each drawn a third of the epochs
    table = pd.DataFrame({"corpus": ["ravdess"] * 4 + ["tess"] * 6, "emotion": ["sad"] * 10})
    drawn = np.array([1.0] * 4 + [1 / 3] * 6)
    weights = sample_weights(table, "corpus_class", drawn).numpy()
    # in an epoch's expectation the two (corpus, emotion) cells weigh the same, and a row weighs 1 on average
    ravdess, tess = (weights * drawn)[:4].sum(), (weights * drawn)[4:].sum()
    assert ravdess == pytest.approx(tess)
    assert (weights * drawn).sum() / drawn.sum() == pytest.approx(1.0)
    # every row drawn: as without `drawn`, and a uniform share changes nothing either
    assert torch.equal(sample_weights(table, "corpus_class", np.ones(10)), sample_weights(table, "corpus_class"))
    assert np.allclose(sample_weights(table, "corpus_class", np.full(10, 1 / 3)), sample_weights(table, "corpus_class"))
    assert torch.equal(sample_weights(table, "none", drawn), torch.ones(10))


def test_versions_per_epoch_corpora_need_a_count_and_limit_only_corpora_that_train(fast):
    both = dataclasses.replace(fast, corpora=("ravdess", "tess"), versions_per_epoch=1)
    # params.yaml names TESS: leaving TESS out of train.corpora needs no other change, and limits nothing
    table = pd.DataFrame({"source_clip_id": ["a", "a", "a", "b", "b"], "corpus": ["ravdess"] * 3 + ["tess"] * 2})
    groups = version_groups(table)
    ravdess_only = dataclasses.replace(both, corpora=("ravdess",), versions_per_epoch_corpora=("tess",))
    assert version_caps(table[:3], groups[:3], ravdess_only).tolist() == [3]  # every version of RAVDESS's clip
    not_training = dataclasses.replace(both, versions_per_epoch_corpora=("cremad",))
    assert version_caps(table, groups, not_training).tolist() == [3, 2]
    tess_once = dataclasses.replace(both, versions_per_epoch_corpora=("tess",))
    assert version_caps(table, groups, tess_once).tolist() == [3, 1]
    with pytest.raises(ValueError, match="versions_per_epoch_corpora needs versions_per_epoch"):
        dataclasses.replace(both, versions_per_epoch=None, versions_per_epoch_corpora=("tess",))


def test_training_on_one_version_a_epoch_takes_a_third_of_the_steps(fast):
    train, val = synthetic_split(12, seed=0), synthetic_split(4, seed=1)
    three = tripled(train)
    params = dataclasses.replace(fast, versions_per_epoch=1)
    one = train_model(three, val, tiny(), params, torch.device("cpu"))
    again = train_model(three, val, tiny(), params, torch.device("cpu"))
    pd.testing.assert_frame_equal(one.history.drop(columns="seconds"), again.history.drop(columns="seconds"))
    every = train_model(three, val, tiny(), dataclasses.replace(params, versions_per_epoch=None), torch.device("cpu"))
    assert every.steps == 3 * one.steps == 3 * fast.epochs * (len(train.table) // fast.batch_size)
    assert one.best_val["all"]["ua"] > 0.5
    # one version of TESS's clips (half of them), every version of RAVDESS's: two thirds of the steps
    two = two_corpora(three), two_corpora(val)
    tess_once = dataclasses.replace(params, corpora=("ravdess", "tess"), versions_per_epoch_corpora=("tess",))
    fewer = train_model(*two, tiny(), tess_once, torch.device("cpu"))
    assert fewer.steps == fast.epochs * (2 * len(train.table) // fast.batch_size)


@pytest.mark.parametrize("total_steps", [1, 3, 4, 10, 2040])
def test_the_schedule_warms_up_then_anneals_however_few_the_steps(params, total_steps):
    optimizer = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=params.train.lr)
    schedule = one_cycle(optimizer, params.train, total_steps)
    rates = []
    for _ in range(total_steps):
        rates.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    if total_steps < 4:  # too short for a warm-up and an annealing: the peak rate throughout
        assert rates == [params.train.lr] * total_steps
        return
    peak = int(np.argmax(rates))
    assert rates[peak] == pytest.approx(params.train.lr) and 1 <= peak <= total_steps - 3
    assert rates[: peak + 1] == sorted(rates[: peak + 1]) and rates[peak:] == sorted(rates[peak:], reverse=True)
    if total_steps == 2040:  # a real run: the warm-up is params.warmup of the steps, as OneCycleLR makes it
        assert peak == round(params.train.warmup * total_steps) - 1
