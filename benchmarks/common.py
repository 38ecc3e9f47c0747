"""What the benchmark's sections share: their budgets, timing, the commands they run, the machine (and commit)
the numbers come from, and the real clips they read."""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from ser.audio import find_audio
from ser.corpora import CORPORA, evenly_spaced
from ser.fetch import mirror_from_env
from ser.parallel import available_cores

REPO_ROOT = Path(__file__).resolve().parents[1]
GIGA = 1e9
SIDE_BY_SIDE_ROUNDS = 2  # the fewest rounds of a side_by_side comparison, however long its rounds take


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much work each section does: the full run (< 10 min on 2 cores) or --quick (< 1 min)."""

    front_end_repeats: int  # runs of each front end, alternating; the best of each is reported
    side_by_side_s: float  # s of alternating rounds in each two-way comparison (FLAC decoding)
    warmup_steps: int  # untimed training steps per preset; 0: time min_timed_steps steps straight away
    train_target_s: float  # timed training per preset, s: the step count is scaled to it
    skipped_presets: tuple[str, ...]  # presets left out of the training section
    min_timed_steps: int  # at least this many timed steps, however slow the preset
    matmul_s: float  # s of matmuls per peak measurement (one before the presets, one after)
    variants: tuple[str, ...]  # ways to run the default preset's step (training.VARIANTS), compared side by side
    variant_rounds: int  # alternating rounds of them
    variant_round_s: float  # about this many s of steps per variant per round
    tta_sources: int  # time to accuracy: training clips (each with its augmented copies) of the fold
    tta_epochs: int | None  # time to accuracy: epochs of both recipes; None: each recipe's own
    ddp_steps: int  # data-parallel throughput: timed steps with 1 and with 2 processes
    prediction_repeats: int  # timed runs of the predictor and of the CLI; the best of each is reported
    dvc_repeats: int  # runs of `dvc status` (and of a no-op `dvc repro`); the median is reported


BUDGETS: dict[str, Budget] = {
    "full": Budget(
        front_end_repeats=3,
        side_by_side_s=10.0,
        warmup_steps=2,
        train_target_s=12.0,
        skipped_presets=(),
        min_timed_steps=2,
        matmul_s=3.0,
        variants=("fp32", "bf16 autocast", "torch.compile"),
        variant_rounds=3,
        variant_round_s=4.0,
        tta_sources=500,  # two recipes of 40 epochs of every version: about 3 minutes
        tta_epochs=None,
        ddp_steps=30,
        prediction_repeats=2,
        dvc_repeats=3,
    ),
    "quick": Budget(
        front_end_repeats=2,
        side_by_side_s=0.5,
        warmup_steps=0,
        train_target_s=0.5,
        skipped_presets=("16M", "32M"),
        min_timed_steps=1,
        matmul_s=0.3,
        variants=("fp32", "bf16 autocast"),  # compiling takes over a minute
        variant_rounds=1,
        variant_round_s=0.2,
        tta_sources=64,
        tta_epochs=2,
        ddp_steps=2,
        prediction_repeats=1,
        dvc_repeats=1,
    ),
}


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """(wall seconds, result) of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def alternating(
    sides: Mapping[str, Callable[[], object]], rounds: int, seconds: float = 0.0
) -> tuple[dict[str, list[float]], dict[str, object]]:
    """Wall seconds of each side's call in each round, the sides in turn within a round (a, b, a, b, ...) so
    that both see the same noise, for at least `rounds` rounds and until `seconds` have passed; and each side's
    result from the last round."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    results: dict[str, object] = {}
    start, done = time.perf_counter(), 0
    while done < rounds or time.perf_counter() - start < seconds:
        for name, fn in sides.items():
            elapsed, results[name] = timed(fn)
            times[name].append(elapsed)
        done += 1
    return times, results


def speedups_per_round(ours: Sequence[float], theirs: Sequence[float]) -> list[float]:
    """Each round's `theirs` seconds over its `ours` seconds: how far the best-over-best ratio is from a typical
    one."""
    return [round(slow / fast, 3) for fast, slow in zip(ours, theirs, strict=True)]


def rounds_text(ratios: Sequence[float]) -> str:
    """Per-round speed-ups, each to 2 decimals with an "x", comma-separated."""
    return ", ".join(f"{ratio:.2f}x" for ratio in ratios)


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


def side_by_side(
    sides: Mapping[str, Callable[[], object]], clips: int, threads: Mapping[str, int], rounds: int, seconds: float = 0.0
) -> tuple[dict, dict[str, object]]:
    """Clips/s of two ways to do the same work on `clips` clips with `threads` each, alternating round by round
    (at least `rounds` rounds, and for about `seconds`), and the first side's speed-up over the second (best
    over best, and each round's); and each side's result from the last round."""
    runs, results = alternating(sides, rounds, seconds)
    rows = [
        {
            "name": name,
            "threads": threads[name],
            "best_seconds": min(seconds),
            "clips_per_s": clips / min(seconds),
            "all_seconds": [round(s, 3) for s in seconds],
        }
        for name, seconds in runs.items()
    ]
    ours, theirs = runs.values()
    summary = {
        "clips": clips,
        "runs_each": len(ours),
        "rows": rows,
        "speedup": min(theirs) / min(ours),
        "speedup_per_round": speedups_per_round(ours, theirs),
    }
    return summary, results


def print_side_by_side(title: str, summary: dict, check: str) -> None:
    """The rows of a side_by_side summary, then its speed-up and `check`, what shows both sides agree."""
    print_table(
        f"{title}, {summary['clips']} clips (best of {summary['runs_each']} runs each)",
        summary["rows"],
        ["name", "threads", "best_seconds", "clips_per_s"],
    )
    ours, theirs = (row["name"] for row in summary["rows"])
    print(
        f"speedup {ours}/{theirs}: {summary['speedup']:.2f}x best over best "
        f"(round by round: {rounds_text(summary['speedup_per_round'])}); {check}"
    )


def git_commit() -> str:
    """The checkout's short commit, with "-dirty" when tracked files differ from it; "unknown" outside git."""

    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], capture_output=True, text=True, cwd=REPO_ROOT, check=True).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def machine_info() -> dict:
    """When, on what and from which commit the numbers were measured."""
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown",
    )
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "cpu_model": cpu_model,
        "cores_available": available_cores(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],
        "python": platform.python_version(),
        "versions": {name: installed_version(name) for name in ("torch", "numpy", "librosa", "dvc", "ser")},
    }


def installed_version(name: str) -> str | None:
    """The installed distribution's version; None where it is not installed (a GPU machine with torch alone)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def corpus_mirror() -> Path:
    """The folder holding ravdess/ and tess/: $SER_DATA_MIRROR, else ../shared/corpora beside the repo."""
    return mirror_from_env() or REPO_ROOT.parent / "shared" / "corpora"


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
