"""Benchmarks of ser: the front end, training throughput per preset, `ser predict`, and DVC's own overhead.

    python benchmarks/run.py [--quick] [--clips N] [--out benchmarks/results.json]

The machine is shared and noisy, so every figure that matters is a ratio of two things measured side by side
in the same run: the project's front end against librosa, achieved training FLOP/s against a plain fp32 matmul
measured just before and after. Absolute rates are recorded too, with the machine they came from.
The full run is budgeted (BUDGETS) to finish in under 10 minutes on 2 cores; --quick (under a minute) only
checks that every section works: its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from ser.audio import AMIN, FrontEndConfig, prepare
from ser.bundle import save_bundle
from ser.corpora import CORPORA, evenly_spaced, find_audio
from ser.features import clip_table, compute_features, load_split
from ser.io import write_json
from ser.model import PRESETS, Classifier, ModelConfig, count_parameters
from ser.parallel import available_cores
from ser.params import TrainParams, load_params
from ser.predict import Failure, Predictor
from ser.train import spec_augment, train_step

REPO_ROOT = Path(__file__).resolve().parents[1]
MIRROR_ENV = "SER_DATA_MIRROR"  # a folder holding ravdess/ and tess/; default: ../shared/corpora from the repo
TRAINED_MODEL = Path("data/model/model.pt")  # where `dvc repro train` writes the bundle, relative to the repo
MATMUL_SIZE = 1024  # n of the n x n x n fp32 matmul that stands for the machine's practical peak
INPUT_DB_MEAN, INPUT_DB_STD = -40.0, 20.0  # random training inputs, dB: roughly the level of real log-mels
FLOP_COUNT_BATCH = 8  # clips in the batch whose FLOPs are counted: per-clip FLOPs do not depend on the batch
GIGA = 1e9
# The default preset before the speed work of issue 5, measured beside today's presets for the ratio: "small"
# with a 3x3 / 9x3 convolution stage at the stems' resolution and 64 ms Transformer tokens.
BASELINE_NAME = "small@v1"
BASELINE_SMALL = ModelConfig(
    stem_channels=8, square_channels=(8, 32, 64, 128), wide_channels=(8, 32, 64), stem_pool=False, patch=4
)


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much work each section does: the full run (< 10 min on 2 cores) or --quick (< 1 min)."""

    front_end_repeats: int  # runs of each front end, alternating; the best of each is reported
    warmup_steps: int  # untimed training steps per preset; 0: time min_timed_steps steps straight away
    train_target_s: float  # timed training per preset, s: the step count is scaled to it
    min_timed_steps: int  # at least this many timed steps, however slow the preset
    skipped_presets: tuple[str, ...]  # presets left out of the training section
    matmul_s: float  # s of matmuls per peak measurement (one before the presets, one after)
    alternating_rounds: int  # rounds of default preset, then small@v1, for their ratio
    alternating_round_s: float  # s of training steps per preset per round
    inference_repeats: int  # timed runs of the predictor and of the CLI; the best of each is reported
    dvc_repeats: int  # runs of `dvc status` (and of a no-op `dvc repro`); the median is reported


BUDGETS: dict[str, Budget] = {
    "full": Budget(
        front_end_repeats=3,
        warmup_steps=2,
        train_target_s=20.0,
        min_timed_steps=2,
        skipped_presets=(),
        matmul_s=3.0,
        alternating_rounds=5,
        alternating_round_s=3.0,
        inference_repeats=2,
        dvc_repeats=3,
    ),
    "quick": Budget(
        front_end_repeats=2,
        warmup_steps=0,
        train_target_s=0.5,
        min_timed_steps=1,
        skipped_presets=("16M", "32M"),
        matmul_s=0.3,
        alternating_rounds=1,
        alternating_round_s=0.3,
        inference_repeats=1,
        dvc_repeats=1,
    ),
}


# --------------------------------------------------------------------------------------------- helpers


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """(wall seconds, result) of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def calls_per_s(fn: Callable[[], object], seconds: float) -> float:
    """Calls of `fn` per second, back to back for about `seconds` (at least one call)."""
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or calls == 0:
        fn()
        calls += 1
    return calls / elapsed


def console_script(name: str) -> list[str]:
    """The command of a console script installed beside this Python (the venv's `ser`, `dvc`)."""
    script = Path(sys.executable).parent / name
    if not script.exists():
        raise FileNotFoundError(f"{script}: not installed beside {sys.executable}; run `make install`")
    return [str(script)]


def one_line(text: str, limit: int = 300) -> str:
    """A command's stderr as one line, its end kept (where the error is)."""
    return " ".join(text.split())[-limit:]


def subprocess_env() -> dict[str, str]:
    """The environment with this venv's bin first on PATH, as `make repro` runs dvc (its stages call `python`)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def print_table(title: str, rows: Sequence[dict], columns: Sequence[str]) -> None:
    """Rows as aligned columns under a title; floats to 4 significant figures."""

    def cell(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    cells = [[cell(row.get(column, "")) for column in columns] for row in rows]
    widths = [max([len(column), *(len(line[i]) for line in cells)]) for i, column in enumerate(columns)]
    print(f"\n== {title}")
    print("  ".join(column.rjust(width) for column, width in zip(columns, widths, strict=True)))
    for line in cells:
        print("  ".join(value.rjust(width) for value, width in zip(line, widths, strict=True)))


def machine_info() -> dict:
    """What the numbers were measured on."""
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown",
    )
    return {
        "cpu_model": cpu_model,
        "cores_available": available_cores(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],
        "python": platform.python_version(),
        "versions": {name: importlib.metadata.version(name) for name in ("torch", "numpy", "librosa", "dvc", "ser")},
    }


def clip_files(mirror: Path, n_clips: int) -> list[Path]:
    """`n_clips` audio files, half from each corpus, evenly spaced over each corpus's sorted files."""
    per_corpus = [n_clips // len(CORPORA) + (i < n_clips % len(CORPORA)) for i in range(len(CORPORA))]
    files = [
        path
        for corpus, count in zip(CORPORA, per_corpus, strict=True)
        for path in evenly_spaced(find_audio(mirror / corpus), count)
    ]
    if len(files) < n_clips:
        raise FileNotFoundError(f"{mirror}: found {len(files)} audio files under {', '.join(CORPORA)}/, want {n_clips}")
    return files


# ----------------------------------------------------------------------------------- 1. the front end


def project_table(files: Sequence[Path], mirror: Path) -> pd.DataFrame:
    """The melspec stage's clip table for `files` (paths relative to `mirror`), all in one split, no copies."""
    split_table = pd.DataFrame({"path": [p.relative_to(mirror).as_posix() for p in files], "split": "train"})
    no_copies = pd.DataFrame({"path": pd.Series(dtype=str), "split": pd.Series(dtype=str)})
    return clip_table(split_table, no_copies, mirror, mirror)


def written_features(features_dir: Path, table: pd.DataFrame) -> np.ndarray:
    """What compute_features wrote, (n_clips, n_mels, n_frames), in the order of `table`."""
    written = load_split(features_dir, "train")
    if list(written.table["path"]) != list(table["path"]):
        raise RuntimeError(f"{features_dir}: the clips were written in another order than the table's")
    return np.array(written.features)


def librosa_log_mel(path: Path, frontend: FrontEndConfig) -> np.ndarray:
    """The same features the textbook way, one clip: (n_mels, n_frames) dB."""
    audio, melspec = frontend.audio, frontend.melspec
    samples, _ = librosa.load(path, sr=audio.sample_rate, mono=True)
    clip = prepare(samples, audio)
    if melspec.preemphasis is not None:  # as LogMel: the first sample is kept as it is
        clip = np.concatenate([clip[:1], clip[1:] - melspec.preemphasis * clip[:-1]])
    power = librosa.feature.melspectrogram(
        y=clip,
        sr=audio.sample_rate,
        n_fft=melspec.n_fft,
        hop_length=melspec.hop_length,
        window=melspec.window,
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=melspec.n_mels,
        fmin=melspec.fmin,
        fmax=melspec.fmax,
        htk=True,
        norm=None,
    )  # (n_mels, n_frames)
    return librosa.power_to_db(power, ref=1.0, amin=AMIN, top_db=melspec.top_db)


def librosa_front_end(files: Sequence[Path], frontend: FrontEndConfig) -> np.ndarray:
    """librosa_log_mel of every file in this one process: (n_clips, n_mels, n_frames)."""
    return np.stack([librosa_log_mel(path, frontend) for path in files])


def front_end_section(files: Sequence[Path], mirror: Path, frontend: FrontEndConfig, budget: Budget) -> dict:
    """Clips/s of the melspec stage's code against librosa on the same clips, best of alternating runs."""
    workers = available_cores()
    table = project_table(files, mirror)
    runs: dict[str, list[float]] = {"project": [], "librosa": []}
    with tempfile.TemporaryDirectory(prefix="ser-bench-") as tmp:
        features_dir = Path(tmp) / "features"
        for _ in range(budget.front_end_repeats):  # alternating, so both see the same noise
            seconds, _ = timed(lambda: compute_features(table, features_dir, frontend, workers))
            runs["project"].append(seconds)
            seconds, baseline = timed(lambda: librosa_front_end(files, frontend))
            runs["librosa"].append(seconds)
        project = written_features(features_dir, table)
    difference_db = np.abs(project.astype(np.float64) - baseline.astype(np.float64))  # (n_clips, n_mels, n_frames)
    rows = [
        {
            "front_end": name,
            "workers": workers if name == "project" else 1,
            "best_seconds": min(seconds),
            "clips_per_s": len(files) / min(seconds),
            "all_seconds": [round(s, 3) for s in seconds],
        }
        for name, seconds in runs.items()
    ]
    result = {
        "clips": len(files),
        "runs_each": budget.front_end_repeats,
        "rows": rows,
        "speedup_project_over_librosa": rows[0]["clips_per_s"] / rows[1]["clips_per_s"],
        # each round's librosa time over its project time: how far the best-of ratio is from a typical one
        "speedup_per_round": [round(lib / ours, 3) for ours, lib in zip(runs["project"], runs["librosa"], strict=True)],
        "max_abs_difference_db": float(difference_db.max()),
        "mean_abs_difference_db": float(difference_db.mean()),
        "note": (
            "best of alternating runs of each (project, librosa, project, ...); project = "
            f"ser.features.compute_features with {workers} decoding threads (available_cores, as the melspec "
            "stage) and batched torch log-mel, writing its .npy files into a temp dir; librosa = librosa.load + "
            "ser.audio.prepare + pre-emphasis + melspectrogram + power_to_db, one process"
        ),
    }
    print_table(
        f"1. front end, {len(files)} clips (best of {budget.front_end_repeats} runs each)",
        rows,
        ["front_end", "workers", "best_seconds", "clips_per_s"],
    )
    print(
        f"speedup project/librosa: {result['speedup_project_over_librosa']:.2f}x best over best "
        f"(round by round: {', '.join(f'{r:.2f}x' for r in result['speedup_per_round'])}); "
        f"max |dB difference| {result['max_abs_difference_db']:.3g} dB (mean {result['mean_abs_difference_db']:.2g})"
    )
    return result


# ------------------------------------------------------------------------------ 2. training throughput


def matmul_gflop_per_s(seconds: float, size: int = MATMUL_SIZE) -> float:
    """GFLOP/s of back-to-back fp32 size^3 torch.mm calls over about `seconds` (2 size^3 FLOPs per call)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    torch.mm(a, b)  # warm-up: thread pool and kernel selection
    return 2 * size**3 * calls_per_s(lambda: torch.mm(a, b), seconds) / GIGA


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def cpu_attention_flop_formulas() -> dict:
    """FlopCounterMode knows the CUDA attention kernels only; count the CPU one the same way."""
    aten = torch.ops.aten
    formulas = {
        "_scaled_dot_product_flash_attention_for_cpu": _cpu_sdpa_flops,
        "_scaled_dot_product_flash_attention_for_cpu_backward": _cpu_sdpa_backward_flops,
    }
    return {getattr(aten, name): formula for name, formula in formulas.items() if hasattr(aten, name)}


def count_flops(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn) -> tuple[int, int]:
    """(forward, forward + backward) FLOPs of one batch in the model's current (train) mode; grads cleared after."""
    with FlopCounterMode(display=False, custom_mapping=cpu_attention_flop_formulas()) as counter:
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


def training_step(config: ModelConfig, params: TrainParams) -> TrainingStep:
    torch.manual_seed(params.seed)
    generator = torch.Generator().manual_seed(params.seed)
    model = Classifier(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.l2)
    shape = (params.batch_size, config.n_mels, config.n_frames)
    inputs = INPUT_DB_MEAN + INPUT_DB_STD * torch.randn(shape, generator=generator)  # (B, n_mels, n_frames) dB
    targets = torch.randint(0, config.n_classes, (params.batch_size,), generator=generator)
    weights = torch.ones(params.batch_size)
    autocast = torch.autocast("cpu", enabled=False)

    sample = slice(0, FLOP_COUNT_BATCH)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=params.label_smoothing)
    forward_flops, step_flops = count_flops(
        model, spec_augment(inputs[sample], params, generator), targets[sample], loss_fn
    )

    def step() -> None:
        batch = spec_augment(inputs, params, generator)
        train_step(model, optimizer, batch, targets, weights, params.label_smoothing, autocast)

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


def alternating_speedup(default: TrainingStep, baseline: TrainingStep, params: TrainParams, budget: Budget) -> dict:
    """Samples/s of `default` over `baseline` (both already warm from their rows), timed in alternating rounds
    so that both see the same machine (the per-preset rows time them minutes apart, and this machine's speed
    drifts in between)."""
    rounds = []
    for _ in range(budget.alternating_rounds):
        rates = [
            params.batch_size * calls_per_s(bench.step, budget.alternating_round_s) for bench in (default, baseline)
        ]
        rounds.append(
            {"default_samples_per_s": rates[0], "baseline_samples_per_s": rates[1], "ratio": rates[0] / rates[1]}
        )
    ratios = [r["ratio"] for r in rounds]
    return {
        "median_ratio": statistics.median(ratios),
        "min_ratio": min(ratios),
        "max_ratio": max(ratios),
        "rounds": rounds,
    }


def training_section(frontend: FrontEndConfig, params: TrainParams, default_size: str, budget: Budget) -> dict:
    """Samples/s and achieved FLOP/s of each preset, against the fp32 matmul rate measured around them."""
    shape = {"n_mels": frontend.melspec.n_mels, "n_frames": frontend.n_frames}
    configs = {size: ModelConfig.from_preset(size, **shape) for size in PRESETS if size not in budget.skipped_presets}
    configs[BASELINE_NAME] = dataclasses.replace(BASELINE_SMALL, **shape)
    matmul_before = matmul_gflop_per_s(budget.matmul_s)
    rows, kept = [], {}  # kept: the two steps compared again in alternating rounds
    for name, config in configs.items():
        bench = training_step(config, params)
        rows.append(preset_throughput(name, bench, params, budget))
        if name in (default_size, BASELINE_NAME):
            kept[name] = bench
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
    by_name = {row["preset"]: row for row in rows}
    speedup, alternating = None, None
    if default_size in by_name:  # not when --quick skips it
        speedup = by_name[default_size]["samples_per_s"] / by_name[BASELINE_NAME]["samples_per_s"]
        alternating = alternating_speedup(kept[default_size], kept[BASELINE_NAME], params, budget)
        print(
            f"default preset {default_size!r} against {BASELINE_NAME}: {speedup:.2f}x the training samples/s from "
            f"the rows; {alternating['median_ratio']:.2f}x median of {budget.alternating_rounds} alternating rounds "
            f"({alternating['min_ratio']:.2f}-{alternating['max_ratio']:.2f}x)"
        )
    return {
        "rows": rows,
        "default_preset": default_size,
        f"speedup_default_over_{BASELINE_NAME}": speedup,
        f"speedup_default_over_{BASELINE_NAME}_alternating": alternating,
        "skipped_presets": list(budget.skipped_presets),
        "matmul_gflop_per_s_before": matmul_before,
        "matmul_gflop_per_s_after": matmul_after,
        "practical_peak_gflop_per_s": peak,
        "note": (
            f"per preset: FLOPs counted with FlopCounterMode on a batch of {FLOP_COUNT_BATCH} in train mode "
            "(forward + loss, then + backward; CPU attention counted as the CUDA kernels are; the AdamW update and "
            f"elementwise ops are not counted), {budget.warmup_steps} "
            f"warm-up step(s), then a number of steps scaled to about {budget.train_target_s} s; each step is "
            "spec_augment + forward + label-smoothed cross-entropy + backward + AdamW, on random dB inputs; "
            f"practical peak = the faster of two {MATMUL_SIZE}^3 fp32 torch.mm runs (before and after the presets); "
            f"alternating: {budget.alternating_rounds} rounds of about {budget.alternating_round_s} s of steps of the "
            f"default preset, then as long of {BASELINE_NAME}, the same models right after their rows"
        ),
    }


# ----------------------------------------------------------------------------------- 3. `ser predict`


def untrained_bundle(path: Path, frontend: FrontEndConfig, size: str) -> None:
    """A bundle of the params' model size with its initial weights: same cost as a trained one."""
    torch.manual_seed(0)
    config = ModelConfig.from_preset(size, frontend.melspec.n_mels, frontend.n_frames)
    save_bundle(path, Classifier(config), config, frontend, {"benchmark": "untrained weights"})


def predictor_seconds_best(bundle: Path, files: Sequence[Path], repeats: int) -> tuple[float, int]:
    """(best seconds, failures) of Predictor.predict_paths on all files, after a 2-file warm-up."""
    predictor = Predictor(bundle)
    list(predictor.predict_paths(files[:2]))
    best, failures = float("inf"), 0
    for _ in range(repeats):
        seconds, results = timed(lambda: list(predictor.predict_paths(files)))
        best = min(best, seconds)
        failures = sum(isinstance(result, Failure) for result in results)
    return best, failures


def cli_seconds(bundle: Path, files: Sequence[Path], repeats: int) -> float:
    """Best wall seconds of `ser predict --format csv --model BUNDLE FILES...` as a subprocess, start-up included."""
    command = [*console_script("ser"), "predict", "--format", "csv", "--model", str(bundle), *map(str, files)]
    best = float("inf")
    for _ in range(repeats):
        seconds, done = timed(lambda: subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT))
        if done.returncode != 0:
            raise RuntimeError(f"ser predict exited {done.returncode}: {one_line(done.stderr)}")
        best = min(best, seconds)
    return best


def inference_section(files: Sequence[Path], frontend: FrontEndConfig, size: str, budget: Budget) -> dict:
    """Clips/s of prediction in-process and through the CLI, on the trained bundle if there is one."""
    with tempfile.TemporaryDirectory(prefix="ser-bench-") as tmp:
        trained = REPO_ROOT / TRAINED_MODEL
        if trained.is_file():
            bundle, source = trained, f"trained bundle {TRAINED_MODEL}"
        else:
            bundle, source = Path(tmp) / "model.pt", f"untrained '{size}' model (no {TRAINED_MODEL} yet)"
            untrained_bundle(bundle, frontend, size)
        predictor_seconds, failures = predictor_seconds_best(bundle, files, budget.inference_repeats)
        command_seconds = cli_seconds(bundle, files, budget.inference_repeats)
    if failures:
        raise RuntimeError(f"the predictor failed on {failures} of {len(files)} clips")
    rows = [
        {
            "path": "Predictor.predict_paths",
            "best_seconds": predictor_seconds,
            "clips_per_s": len(files) / predictor_seconds,
        },
        {
            "path": "ser predict (subprocess)",
            "best_seconds": command_seconds,
            "clips_per_s": len(files) / command_seconds,
        },
    ]
    print_table(
        f"3. inference, {len(files)} clips, {source} (best of {budget.inference_repeats})",
        rows,
        ["path", "best_seconds", "clips_per_s"],
    )
    return {
        "clips": len(files),
        "model": source,
        "rows": rows,
        "cli_startup_and_overhead_seconds": command_seconds - predictor_seconds,
        "note": (
            "Predictor with default options (as `ser predict`), timed after a 2-file warm-up; the CLI is timed end "
            "to end (interpreter and torch start-up, model load, CSV on stdout); best of "
            f"{budget.inference_repeats} each"
        ),
    }


# ---------------------------------------------------------------------------------- 4. DVC's overhead


def run_dvc(arguments: Sequence[str]) -> tuple[float, subprocess.CompletedProcess]:
    command = [*console_script("dvc"), *arguments]
    return timed(lambda: subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=subprocess_env()))


def dvc_section(budget: Budget) -> dict:
    """Median seconds of `dvc status` and of a no-op `dvc repro`; each repro only right after a status that
    found the pipeline up to date, so a real repro never runs."""
    timings: dict[str, list[float]] = {"dvc status": [], "dvc repro (no-op)": []}
    problem = None
    for _ in range(budget.dvc_repeats):
        seconds, status = run_dvc(["status", "--json"])
        if status.returncode != 0:  # e.g. another dvc process holds the repo lock
            problem = f"dvc status exited {status.returncode}: {one_line(status.stderr)}"
            break
        timings["dvc status"].append(seconds)
        changed = json.loads(status.stdout or "{}")
        if changed:
            problem = f"pipeline not up to date (changed: {', '.join(sorted(changed))}); timing dvc status only"
            continue
        seconds, repro = run_dvc(["repro"])
        if repro.returncode != 0:
            problem = f"dvc repro exited {repro.returncode}: {one_line(repro.stderr)}"
            break
        timings["dvc repro (no-op)"].append(seconds)
    rows = [
        {"command": command, "runs": len(seconds), "median_seconds": statistics.median(seconds)}
        for command, seconds in timings.items()
        if seconds
    ]
    print_table(f"4. DVC overhead (median of up to {budget.dvc_repeats})", rows, ["command", "runs", "median_seconds"])
    if problem:
        print(f"note: {problem}")
    return {
        "rows": rows,
        "all_seconds": {command: [round(s, 3) for s in seconds] for command, seconds in timings.items()},
        "problem": problem,
        "note": "`dvc status --json` (the check `dvc status` makes) in the repo root; `dvc repro` only when up to date",
    }


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test of every section (< 1 min)")
    parser.add_argument("--clips", type=int, default=300, help="real clips for sections 1 and 3 (default: 300)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results.json", help="results JSON")
    parser.add_argument("--params", type=Path, default=REPO_ROOT / "params.yaml", help="params file")
    args = parser.parse_args(argv)
    if args.clips < 2:
        parser.error(f"--clips must be at least 2, got {args.clips}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    budget = BUDGETS["quick" if args.quick else "full"]
    params = load_params(args.params)
    frontend = FrontEndConfig(audio=params.audio, melspec=params.melspec)
    mirror = Path(os.environ.get(MIRROR_ENV, REPO_ROOT.parent / "shared" / "corpora"))
    files = clip_files(mirror, args.clips)
    results: dict = {"quick": args.quick, "budget": dataclasses.asdict(budget), "machine": machine_info()}
    print(f"machine: {json.dumps(results['machine'])}")
    section_seconds: dict[str, float] = {}
    sections = {
        "front_end": lambda: front_end_section(files, mirror, frontend, budget),
        "training": lambda: training_section(frontend, params.train, params.model.size, budget),
        "inference": lambda: inference_section(files, frontend, params.model.size, budget),
        "dvc": lambda: dvc_section(budget),
    }
    for name, run in sections.items():
        section_seconds[name], results[name] = timed(run)
    results["section_seconds"] = section_seconds
    results["load_average_1min_after"] = os.getloadavg()[0]
    write_json(results, args.out)
    print(f"\nsections took {', '.join(f'{k} {v:.0f} s' for k, v in section_seconds.items())}; wrote {args.out}")


if __name__ == "__main__":
    main()
