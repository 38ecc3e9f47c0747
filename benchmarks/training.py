"""Section 2: training samples/s and FLOPs of every preset, as a share of the fp32 matmul rate measured around them
(the machine's practical peak, in the same run); and the default preset's step three ways, their rounds
alternating: fp32 as trained, in bfloat16 autocast, and compiled by torch.compile (inductor)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from common import GIGA, Budget, alternating, calls_per_s, print_table, speedups_per_round, timed

from ser.audio import FrontEndConfig
from ser.corpora import EMOTIONS
from ser.features import FeatureSplit
from ser.model import PRESETS, Classifier, ModelConfig, count_parameters, flop_counter_mode
from ser.params import TrainParams
from ser.train import adamw, spec_augment, train_step

MATMUL_SIZE = 1024  # n of the n x n x n fp32 matmul that stands for the machine's practical peak
INPUT_DB_MEAN, INPUT_DB_STD = -40.0, 20.0  # random training inputs, dB: roughly the level of real log-mels
FLOP_COUNT_BATCH = 8  # clips in the batch whose FLOPs are counted: per-clip FLOPs do not depend on the batch


def random_split(n_clips: int, n_mels: int, n_frames: int, seed: int) -> FeatureSplit:
    """Random dB spectrograms with random emotions, all of RAVDESS (the selection needs one training corpus)."""
    rng = np.random.default_rng(seed)
    features = (INPUT_DB_MEAN + INPUT_DB_STD * rng.standard_normal((n_clips, n_mels, n_frames))).astype(np.float32)
    emotions = rng.choice(EMOTIONS, n_clips)
    return FeatureSplit(features=features, table=pd.DataFrame({"emotion": emotions, "corpus": "ravdess"}))


def random_split_params(train: TrainParams) -> TrainParams:
    """`train` for epochs timed on `random_split`'s clips: one member, two epochs, no averaging, and every
    version of every clip, whatever params.yaml's recipe draws."""
    return dataclasses.replace(
        train,
        epochs=2,
        corpora=("ravdess",),
        average_last=0,
        members=1,
        versions_per_epoch=None,
        versions_per_epoch_corpora=None,
    )


def matmul_gflop_per_s(seconds: float, size: int = MATMUL_SIZE) -> float:
    """GFLOP/s of back-to-back fp32 size^3 torch.mm calls over about `seconds` (2 size^3 FLOPs per call)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    torch.mm(a, b)  # warm-up: thread pool and kernel selection
    return 2 * size**3 * calls_per_s(lambda: torch.mm(a, b), seconds) / GIGA


def count_flops(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn) -> tuple[int, int]:
    """(forward, forward + backward) FLOPs of one batch in the model's current (train) mode; grads cleared after."""
    with flop_counter_mode() as counter:
        loss = loss_fn(model(inputs), targets)
        forward_flops = counter.get_total_flops()
        loss.backward()
        step_flops = counter.get_total_flops()
    model.zero_grad(set_to_none=True)
    return forward_flops, step_flops


@dataclasses.dataclass(frozen=True)
class TrainingStep:
    """One model's training step on fixed random inputs of the feature shape, and its FLOPs per batch of
    FLOP_COUNT_BATCH (train mode)."""

    step: Callable[[], None]  # what ser.train.train_model does per batch: spec_augment, then train_step
    parameters: int
    forward_flops: int
    step_flops: int  # forward + backward


def training_step(config: ModelConfig, params: TrainParams, bf16: bool = False, compiled: bool = False) -> TrainingStep:
    """The step as ser.train runs it on the CPU (fp32, eager), or in bfloat16 autocast, or torch.compile'd."""
    torch.manual_seed(params.seed)
    generator = torch.Generator().manual_seed(params.seed)
    model = Classifier(config).train()
    net = torch.compile(model) if compiled else model
    optimizer = adamw(model, params)
    shape = (params.batch_size, config.n_mels, config.n_frames)
    inputs = INPUT_DB_MEAN + INPUT_DB_STD * torch.randn(shape, generator=generator)  # (B, n_mels, n_frames) dB
    targets = torch.randint(0, config.n_classes, (params.batch_size,), generator=generator)
    weights = torch.ones(params.batch_size)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    sample = slice(0, FLOP_COUNT_BATCH)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=params.label_smoothing)
    forward_flops, step_flops = count_flops(
        model, spec_augment(inputs[sample], params, generator), targets[sample], loss_fn
    )

    def step() -> None:
        batch = spec_augment(inputs, params, generator)
        train_step(net, optimizer, batch, targets, weights, params.label_smoothing, autocast)

    return TrainingStep(step, count_parameters(model), forward_flops, step_flops)


def preset_throughput(name: str, bench: TrainingStep, params: TrainParams, budget: Budget) -> dict:
    """Training samples/s of one model's training step, and its FLOPs per sample."""
    warmup_seconds = [timed(bench.step)[0] for _ in range(budget.warmup_steps)]
    n_steps = budget.min_timed_steps
    if warmup_seconds:  # scale the timed steps to the target time by the fastest warm-up step
        n_steps = max(n_steps, round(budget.train_target_s / min(warmup_seconds)))
    seconds, _ = timed(lambda: [bench.step() for _ in range(n_steps)])
    samples_per_s = n_steps * params.batch_size / seconds
    return {
        "preset": name,
        "parameters": bench.parameters,
        "batch_size": params.batch_size,
        "timed_steps": n_steps,
        "seconds": seconds,
        "samples_per_s": samples_per_s,
        "forward_gflop_per_sample": bench.forward_flops / FLOP_COUNT_BATCH / GIGA,
        "forward_backward_gflop_per_sample": bench.step_flops / FLOP_COUNT_BATCH / GIGA,
        "achieved_gflop_per_s": bench.step_flops / FLOP_COUNT_BATCH * samples_per_s / GIGA,
    }


# the default preset's step as ser.train runs it on the CPU, and two ways it could run (training_step's options)
VARIANTS = {"fp32": {}, "bf16 autocast": {"bf16": True}, "torch.compile": {"compiled": True}}


def step_variants(config: ModelConfig, params: TrainParams, budget: Budget) -> dict:
    """Samples/s of the default preset's training step in each of VARIANTS, their rounds alternating (about
    budget.variant_round_s each), and each one's speed-up over fp32 (best over best, and round by round). The
    first two steps of each are timed apart: they hold torch.compile's compilation."""
    steps, first_seconds = {}, {}
    for name in budget.variants:
        bench = training_step(config, params, **VARIANTS[name])
        first_seconds[name], _ = timed(lambda bench=bench: [bench.step() for _ in range(2)])
        steps[name] = bench.step
    n_steps = max(1, round(budget.variant_round_s / min(first_seconds.values()) * 2))
    runs, _ = alternating(
        {name: lambda step=step: [step() for _ in range(n_steps)] for name, step in steps.items()},
        budget.variant_rounds,
    )
    rows = [
        {
            "variant": name,
            "first_two_steps_seconds": first_seconds[name],
            "samples_per_s": n_steps * params.batch_size / min(seconds),
            "speedup_over_fp32": min(runs["fp32"]) / min(seconds),
            "speedup_per_round": speedups_per_round(seconds, runs["fp32"]),
        }
        for name, seconds in runs.items()
    ]
    print_table(
        f"2b. the {config.n_mels}x{config.n_frames} default preset's step, {budget.variant_rounds} alternating "
        f"rounds of {n_steps} steps",
        rows,
        ["variant", "first_two_steps_seconds", "samples_per_s", "speedup_over_fp32"],
    )
    return {"steps_per_round": n_steps, "rows": rows}


def training_section(frontend: FrontEndConfig, params: TrainParams, default_size: str, budget: Budget) -> dict:
    """Samples/s and achieved FLOP/s of each preset, against the fp32 matmul rate measured before and after them."""
    matmul_before = matmul_gflop_per_s(budget.matmul_s)
    rows = []
    for size in PRESETS:
        if size not in budget.skipped_presets:
            config = ModelConfig.from_preset(size, frontend.melspec.n_mels, frontend.n_frames, len(EMOTIONS))
            rows.append(preset_throughput(size, training_step(config, params), params, budget))
    matmul_after = matmul_gflop_per_s(budget.matmul_s)
    peak = max(matmul_before, matmul_after)
    for row in rows:
        row["fraction_of_peak"] = row["achieved_gflop_per_s"] / peak
    print_table(
        f"2. training throughput, batch {params.batch_size}, input {frontend.melspec.n_mels}x{frontend.n_frames}",
        rows,
        [
            "preset",
            "parameters",
            "timed_steps",
            "samples_per_s",
            "forward_gflop_per_sample",
            "forward_backward_gflop_per_sample",
            "achieved_gflop_per_s",
            "fraction_of_peak",
        ],
    )
    print(
        f"fp32 {MATMUL_SIZE}^3 matmul: {matmul_before:.1f} GFLOP/s before, {matmul_after:.1f} after; "
        f"practical peak = max = {peak:.1f} GFLOP/s"
    )
    default_config = ModelConfig.from_preset(default_size, frontend.melspec.n_mels, frontend.n_frames, len(EMOTIONS))
    variants = step_variants(default_config, params, budget)
    return {
        "rows": rows,
        "default_preset": default_size,
        "variants": variants,
        "skipped_presets": list(budget.skipped_presets),
        "matmul_size": MATMUL_SIZE,
        "matmul_gflop_per_s_before": matmul_before,
        "matmul_gflop_per_s_after": matmul_after,
        "practical_peak_gflop_per_s": peak,
        "note": (
            f"per preset: FLOPs counted with ser.model.flop_counter_mode on a batch of {FLOP_COUNT_BATCH} in train "
            "mode (forward + loss, then + backward; the AdamW update and elementwise ops are not counted), "
            f"{budget.warmup_steps} warm-up step(s), then a number of steps scaled to about "
            f"{budget.train_target_s} s; each step is spec_augment + forward + label-smoothed cross-entropy + "
            "backward + AdamW, on random dB inputs; practical peak = the faster of two "
            f"{MATMUL_SIZE}^3 fp32 torch.mm runs (before and after the presets); variants: the default preset's step "
            "in fp32 (as ser.train runs it on the CPU), in bfloat16 autocast and compiled by torch.compile "
            "(inductor), their rounds alternating; speed-up: fp32's best round over the variant's"
        ),
    }
