"""Section 3: clips/s of `ser predict`, in this process (Predictor) and as a command, start-up included."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from common import REPO_ROOT, Budget, console_script, one_line, print_table, timed

from ser.audio import FrontEndConfig
from ser.bundle import save_bundle
from ser.corpora import EMOTIONS
from ser.model import Classifier, Ensemble, ModelConfig
from ser.options import DEFAULT_MODEL
from ser.predict import Failure, Predictor


def untrained_bundle(path: Path, frontend: FrontEndConfig, size: str, members: int) -> None:
    """A bundle of the params' model size and number of members with their initial weights: the cost of a
    trained one."""
    torch.manual_seed(0)
    config = ModelConfig.from_preset(size, frontend.melspec.n_mels, frontend.n_frames, len(EMOTIONS))
    model = Ensemble([Classifier(config) for _ in range(members)])
    save_bundle(path, model, frontend, {"benchmark": "untrained weights"})


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


def prediction_section(
    files: Sequence[Path], frontend: FrontEndConfig, size: str, members: int, budget: Budget
) -> dict:
    """Clips/s of prediction in-process and through the CLI, on the trained bundle if there is one."""
    with tempfile.TemporaryDirectory(prefix="ser-bench-") as tmp:
        trained = REPO_ROOT / DEFAULT_MODEL
        if trained.is_file():
            bundle, source = trained, f"trained bundle {DEFAULT_MODEL}"
        else:
            bundle, source = Path(tmp) / "model.pt", f"untrained {size!r} model x {members} (no {DEFAULT_MODEL} yet)"
            untrained_bundle(bundle, frontend, size, members)
        predictor_seconds, failures = predictor_seconds_best(bundle, files, budget.prediction_repeats)
        command_seconds = cli_seconds(bundle, files, budget.prediction_repeats)
    if failures:
        raise RuntimeError(f"the predictor failed on {failures} of {len(files)} clips")
    rows = [
        {"path": path, "best_seconds": seconds, "clips_per_s": len(files) / seconds}
        for path, seconds in (("Predictor.predict_paths", predictor_seconds), ("ser predict", command_seconds))
    ]
    print_table(
        f"5. prediction, {len(files)} clips, {source} (best of {budget.prediction_repeats})",
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
            f"{budget.prediction_repeats} each"
        ),
    }
