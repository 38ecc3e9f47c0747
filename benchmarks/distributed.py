"""Section 4: data-parallel training throughput, one process (torch threads on every core) against two
(torchrun's layout: gloo, the cores shared out), on the default preset with params.yaml's global batch."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
import torch.multiprocessing as mp
from common import Budget, print_table
from training import random_split, random_split_params

from ser.audio import FrontEndConfig
from ser.corpora import EMOTIONS
from ser.distributed import free_port, process_group, rank_environment
from ser.model import ModelConfig
from ser.params import Params
from ser.train import Training

PROCESS_COUNTS = (1, 2)
ROUNDS = 2  # alternating rounds of (1 process, 2 processes); the best of each is reported


def _rank(rank: int, world_size: int, port: int, params: Params, steps: int, out: str) -> None:
    """One rank: a warm-up epoch of `steps` global batches, then a timed one; rank 0 writes its samples/s."""
    os.environ.update(rank_environment(rank, world_size, port))
    frontend = FrontEndConfig(audio=params.audio, melspec=params.melspec)
    config = ModelConfig.from_preset(params.model.size, frontend.melspec.n_mels, frontend.n_frames, len(EMOTIONS))
    train_params = random_split_params(params.train)
    shape = (frontend.melspec.n_mels, frontend.n_frames)
    train = random_split(steps * train_params.batch_size, *shape, seed=0)
    val = random_split(train_params.batch_size, *shape, seed=1)
    device = torch.device("cpu")
    with process_group(device) as ranks:
        training = Training(train, val, config, train_params, device, ranks)
        training.epoch()
        warm = training.step_seconds
        training.epoch()
        seconds = training.step_seconds - warm
    if rank == 0:
        samples = steps * train_params.batch_size
        result = {"processes": world_size, "threads_each": torch.get_num_threads(), "samples_per_s": samples / seconds}
        Path(out).write_text(json.dumps(result))


def throughput(world_size: int, params: Params, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = str(Path(folder) / "result.json")
        mp.start_processes(
            _rank, args=(world_size, free_port(), params, steps, out), nprocs=world_size, start_method="spawn"
        )
        return json.loads(Path(out).read_text())


def distributed_section(params: Params, budget: Budget) -> dict:
    runs: dict[int, list[dict]] = {n: [] for n in PROCESS_COUNTS}
    for _ in range(ROUNDS):
        for n in PROCESS_COUNTS:
            runs[n].append(throughput(n, params, budget.ddp_steps))
    rows = [max(results, key=lambda r: r["samples_per_s"]) for results in runs.values()]
    for row in rows:
        row["all_samples_per_s"] = [round(r["samples_per_s"], 1) for r in runs[row["processes"]]]
    print_table(
        f"4. data-parallel training, {params.model.size}, global batch {params.train.batch_size}, "
        f"{budget.ddp_steps} timed steps (best of {ROUNDS} alternating rounds)",
        rows,
        ["processes", "threads_each", "samples_per_s"],
    )
    return {
        "model_size": params.model.size,
        "batch_size": params.train.batch_size,
        "timed_steps": budget.ddp_steps,
        "rows": rows,
        "two_over_one": rows[1]["samples_per_s"] / rows[0]["samples_per_s"],
        "note": (
            "each run in fresh processes (spawned; 2: gloo process group on 127.0.0.1), one warm-up epoch of the "
            "timed number of steps, then the timed epoch (ser.train.Training steps: masks, mixup, forward, "
            "backward, all-reduce, AdamW) on random dB inputs; threads: torch's, per process"
        ),
    }
