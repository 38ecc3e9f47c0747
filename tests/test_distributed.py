"""Data-parallel training: two CPU processes (gloo) end with exactly the same weights on both ranks, and train
like one process with the same global batch."""

from __future__ import annotations

import copy
import dataclasses
import os

import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp

from ser.distributed import ALONE, Ranks, free_port, process_group, rank_environment, weights_digest
from ser.model import Classifier
from ser.train import train_model
from test_train import shortened, synthetic_split, tiny

# How far two processes may drift from one on these synthetic clips (training loss about 2.1 at the start,
# absolute differences). Every step sees the same clips, masks and mixup partners; only BatchNorm differs: it
# normalises over each rank's half of the global batch where one process normalises over all of it (see
# ser.distributed), so the first epoch stays close and the gap then grows slowly.
FIRST_EPOCH_LOSS_TOLERANCE = 0.01
LOSS_TOLERANCE = 0.15  # any epoch
SCORE_TOLERANCE = 0.15  # the best validation score


def _rank(rank: int, world_size: int, port: int, params, out: str) -> None:
    os.environ.update(rank_environment(rank, world_size, port))
    train, val = synthetic_split(12, seed=0), synthetic_split(4, seed=1)
    device = torch.device("cpu")
    with process_group(device) as ranks:
        assert ranks == Ranks(rank=rank, world_size=world_size)
        result = train_model(train, val, tiny(), params, device, ranks)
    torch.save({"state": result.model.state_dict(), "history": result.history}, f"{out}/rank{rank}.pt")


@pytest.fixture(scope="module")
def ddp_params(params):
    """Short training on the synthetic clips, with mixup and masks on: what the ranks must agree on."""
    return dataclasses.replace(shortened(params.train), epochs=6, mixup=0.4, average_last=2)


@pytest.fixture(scope="module")
def two_ranks(ddp_params, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ddp")
    mp.start_processes(_rank, args=(2, free_port(), ddp_params, str(out)), nprocs=2, start_method="spawn")
    return [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(2)]


def test_both_ranks_end_with_exactly_the_same_weights_and_history(two_ranks):
    first, second = two_ranks
    assert list(first["state"]) == list(second["state"])
    for name, tensor in first["state"].items():
        assert torch.equal(tensor, second["state"][name]), name
    pd.testing.assert_frame_equal(first["history"].drop(columns="seconds"), second["history"].drop(columns="seconds"))


def test_two_ranks_train_like_one_process_with_the_same_global_batch(two_ranks, ddp_params):
    train, val = synthetic_split(12, seed=0), synthetic_split(4, seed=1)
    alone = train_model(train, val, tiny(), ddp_params, torch.device("cpu"), ALONE)
    together = two_ranks[0]["history"]
    assert len(together) == len(alone.history) == ddp_params.epochs
    drift = (together["train_loss"] - alone.history["train_loss"]).abs()
    assert drift.iloc[0] <= FIRST_EPOCH_LOSS_TOLERANCE and drift.max() <= LOSS_TOLERANCE, drift.tolist()
    assert abs(together["val_score"].max() - alone.history["val_score"].max()) <= SCORE_TOLERANCE
    assert together["val_score"].max() > 0.5  # it learned: chance is 0.125


def test_a_batch_that_does_not_split_evenly_over_the_ranks_is_refused():
    assert Ranks(rank=1, world_size=2).shard(16) == slice(8, 16)
    assert ALONE.shard(16) == slice(0, 16)
    with pytest.raises(ValueError, match="a batch of 15 clips does not split evenly over 2 processes"):
        Ranks(rank=0, world_size=2).shard(15)


def test_the_weights_digest_tells_equal_weights_from_unequal_ones():
    torch.manual_seed(0)
    model = Classifier(tiny())
    same = copy.deepcopy(model)
    assert weights_digest(model) == weights_digest(same)
    with torch.no_grad():
        next(same.parameters())[0].view(-1)[0] += 1e-7
    assert weights_digest(model) != weights_digest(same)
    same.load_state_dict(model.state_dict())
    same.input_norm.running_mean[0] += 1.0  # buffers count too
    assert weights_digest(model) != weights_digest(same)
