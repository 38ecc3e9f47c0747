"""One epoch of training of each model preset on the GPU (or any device), as the train stage trains: samples/s
and peak memory, for the first run on a new machine.

    .venv/bin/python benchmarks/gpu.py                      # every preset, CUDA if there is one, params.yaml's batch
    .venv/bin/python benchmarks/gpu.py --compile --batch-size 256 --presets 8M 32M
    .venv/bin/python benchmarks/gpu.py --device cpu --clips 64 --presets tiny   # a smoke run anywhere

Each preset trains one ser.train.Training epoch (bf16 autocast, channels-last, pinned batches on CUDA) on random
dB inputs of the feature shape, after one untimed warm-up epoch (compilation, cuDNN's kernel choice); then one
validation pass. Prints one row per preset and a JSON line with everything.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence

import torch
from common import REPO_ROOT, machine_info, print_table
from training import random_split, random_split_params

from ser.audio import FrontEndConfig
from ser.corpora import EMOTIONS
from ser.device import pick_device
from ser.features import FeatureSplit
from ser.model import PRESETS, ModelConfig, count_parameters
from ser.params import load_params
from ser.train import Training


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def preset_epoch(size: str, train: FeatureSplit, val: FeatureSplit, params, frontend, device) -> dict:
    config = ModelConfig.from_preset(size, frontend.melspec.n_mels, frontend.n_frames, len(EMOTIONS))
    training = Training(train, val, config, random_split_params(params), device)
    training.epoch()  # warm-up: compilation, kernel selection, the allocator's pools
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step_seconds = training.step_seconds
    started = time.perf_counter()
    training.epoch()
    synchronize(device)
    seconds = time.perf_counter() - started
    steps_seconds = training.step_seconds - step_seconds
    samples = training.n_batches * params.batch_size
    return {
        "preset": size,
        "parameters": count_parameters(training.model),
        "batch_size": params.batch_size,
        "samples": samples,
        "train_samples_per_s": samples / steps_seconds,
        "epoch_seconds_with_validation": seconds,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA if there is one, else the CPU)")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS), metavar="SIZE")
    parser.add_argument("--clips", type=int, default=4096, help="training clips per epoch (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, help="global batch (default: params.yaml's)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (train.compile)")
    args = parser.parse_args(argv)
    params = load_params(REPO_ROOT / "params.yaml")
    frontend = FrontEndConfig(audio=params.audio, melspec=params.melspec)
    train_params = dataclasses.replace(
        params.train, batch_size=args.batch_size or params.train.batch_size, compile=args.compile, processes=1
    )
    if args.clips < train_params.batch_size:
        parser.error(f"--clips {args.clips} is less than one batch of {train_params.batch_size}")
    device = pick_device(args.device)
    shape = (frontend.melspec.n_mels, frontend.n_frames)
    train, val = random_split(args.clips, *shape, seed=0), random_split(max(64, args.clips // 8), *shape, seed=1)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {device} ({name}); batch {train_params.batch_size}; compile {args.compile}; {args.clips} clips")
    rows = [preset_epoch(size, train, val, train_params, frontend, device) for size in args.presets]
    print_table(
        "one training epoch per preset",
        rows,
        ["preset", "parameters", "samples", "train_samples_per_s", "epoch_seconds_with_validation", "peak_memory_gib"],
    )
    print(json.dumps({"machine": machine_info(), "device": name, "compile": args.compile, "rows": rows}))


if __name__ == "__main__":
    main()
