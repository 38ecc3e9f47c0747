"""The `ser` command: `ser predict` (emotions of audio files) and `ser info` (what a model bundle holds).

A thin layer over ser.predict: parse the command line, run the Predictor, format the table. User errors
(bad files, bad model, bad options) are one line on stderr, never a traceback.
Exit status: 0 all files predicted (or silent), 1 some files failed, 2 no run (model, options, output).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pydantic
import torch

from ser.audio import AudioError
from ser.bundle import DEFAULT_PATH, BundleError, load_bundle
from ser.device import pick_device
from ser.io import atomic_path
from ser.params import problems
from ser.predict import Failure, Prediction, PredictOptions, Predictor, predictions_table

DECIMALS = 4  # of probabilities, in every output format (as plots/predictions.csv)
TIME_DECIMALS = 3  # of window start times in s: milliseconds
EXIT_OK, EXIT_FILES_FAILED, EXIT_NO_RUN = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
DEFAULTS = PredictOptions()
# Options that set the PredictOptions field of the same name, defaulting to its value: (flag, type, metavar, help)
PREDICT_OPTIONS = (
    ("--overlap", float, "FRACTION", "overlap of consecutive windows of long clips"),
    ("--workers", int, "N", "processes decoding files"),
    ("--batch-size", int, "N", "windows per forward pass"),
)


class UsageError(Exception):
    """An option or model that makes the whole run impossible: one line, exit status 2."""


def table_text(table: pd.DataFrame) -> str:
    """Aligned columns for reading: text left, numbers right; silent files show '-' for their probabilities."""
    cells = {column: [_cell(column, value) for value in table[column]] for column in table.columns}
    widths = {column: max([len(column), *map(len, values)]) for column, values in cells.items()}
    numeric = {column: pd.api.types.is_numeric_dtype(table[column]) for column in table.columns}

    def line(values: Sequence[str]) -> str:
        padded = [
            value.rjust(widths[column]) if numeric[column] else value.ljust(widths[column])
            for column, value in zip(table.columns, values, strict=True)
        ]
        return "  ".join(padded).rstrip() + "\n"

    rows = zip(*cells.values(), strict=True) if cells else []
    return line(list(table.columns)) + "".join(line(row) for row in rows)


def _cell(column: str, value: object) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{TIME_DECIMALS if column == 'start_s' else DECIMALS}f}"
    return str(value)


def csv_text(table: pd.DataFrame) -> str:
    return table.to_csv(index=False)


def json_text(table: pd.DataFrame) -> str:
    """A list of row objects; NaN (silent files) as null."""
    records = [
        {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in row.items()}
        for row in table.to_dict(orient="records")
    ]
    return json.dumps(records, indent=2) + "\n"


FORMATS: dict[str, Callable[[pd.DataFrame], str]] = {"table": table_text, "csv": csv_text, "json": json_text}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ser", description="Speech emotion recognition.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    predict = commands.add_parser(
        "predict",
        help="predict the emotion of audio files",
        description=(
            "Predict the emotion of each audio file (any rate, mono or stereo, any format libsndfile reads). "
            "Clips longer than the model's clip length are cut into overlapping windows whose probabilities "
            "are averaged. One row per file on stdout (or --out); problems on stderr, one line per file. "
            "Exit status: 0 all files predicted or silent, 1 some files failed, 2 the model or an option is unusable."
        ),
    )
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="audio files, or folders to search")
    model_help = "model bundle (default: %(default)s, written by `dvc repro train`)"
    predict.add_argument("--model", type=Path, default=DEFAULT_PATH, metavar="PATH", help=model_help)
    predict.add_argument("--format", choices=list(FORMATS), default="table", help="output format (default: table)")
    predict.add_argument("--out", type=Path, metavar="FILE", help="write the output here (atomically), not stdout")
    predict.add_argument("--per-window", action="store_true", help="one row per window, with its start time (s)")
    predict.add_argument("--device", metavar="DEV", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    predict.add_argument(
        "--silence-dbfs",
        type=float,
        metavar="DB",
        help="files (and windows) whose peak is below this level are reported as silent (default: the level the "
        "model was trained with, `ser info` shows it)",
    )
    for flag, kind, metavar, text in PREDICT_OPTIONS:
        default = getattr(DEFAULTS, flag.removeprefix("--").replace("-", "_"))
        predict.add_argument(flag, type=kind, default=default, metavar=metavar, help=f"{text} (default: %(default)s)")
    predict.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="threads for the front end and the model (default: torch's, one per core); 1 helps on a busy machine",
    )
    predict.set_defaults(run=run_predict)

    info = commands.add_parser(
        "info", help="show what a model bundle holds", description="Print a model bundle's settings as JSON."
    )
    info.add_argument("--model", type=Path, default=DEFAULT_PATH, metavar="PATH", help=model_help)
    info.set_defaults(run=run_info)
    return parser


def usable_device(requested: str | None) -> torch.device:
    """The device to run on, checked by placing a tensor there."""
    try:
        device = pick_device(requested)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:
        raise UsageError(f"--device {requested}: not usable here ({str(error).splitlines()[0]})") from error
    return device


def run_predict(args: argparse.Namespace) -> int:
    try:
        options = PredictOptions(
            overlap=args.overlap,
            silence_dbfs=args.silence_dbfs,
            batch_size=args.batch_size,
            workers=args.workers,
        )
    except pydantic.ValidationError as error:
        found = [f"--{key.replace('_', '-')}: {what}" for key, what in problems(error)]
        raise UsageError("; ".join(found)) from None
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    predictor = Predictor(args.model, usable_device(args.device), options)
    predictions: list[Prediction] = []
    failed = silent = 0
    for result in predictor.predict_paths(args.paths):
        if isinstance(result, Failure):
            failed += 1
            print(f"error: {result.message}", file=sys.stderr)
            continue
        predictions.append(result)
        if result.silent:
            silent += 1
            print(
                f"silent: {result.path}: peak {result.peak_dbfs:.1f} dBFS, below {predictor.silence_dbfs:.1f} dBFS; "
                "no emotion predicted",
                file=sys.stderr,
            )
    table = predictions_table(predictions, per_window=args.per_window).round(DECIMALS)
    if "start_s" in table:
        table["start_s"] = table["start_s"].round(TIME_DECIMALS)
    text = FORMATS[args.format](table)
    if args.out is None:
        sys.stdout.write(text)
    else:
        try:
            with atomic_path(args.out) as tmp:
                tmp.write_text(text)
        except OSError as error:
            raise UsageError(f"{args.out}: cannot write the output ({error.strerror or error})") from error
    predicted = len(predictions) - silent
    print(f"ser predict: {predicted} predicted, {failed} failed, {silent} silent", file=sys.stderr)
    return EXIT_FILES_FAILED if failed else EXIT_OK


def run_info(args: argparse.Namespace) -> int:
    bundle = load_bundle(args.model, torch.device("cpu"))
    summary = {
        "model": str(args.model),
        "members": len(bundle.model.members),
        "labels": list(bundle.labels),
        "model_config": dataclasses.asdict(bundle.model_config),
        "frontend": bundle.frontend.as_dict(),
        "info": bundle.info,
    }
    print(json.dumps(summary, indent=2, default=str))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ser` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_NO_RUN
    try:
        return args.run(args)
    except (BundleError, UsageError, AudioError) as error:
        print(f"ser {args.command}: {' '.join(str(error).split())}", file=sys.stderr)  # always one line
        return EXIT_NO_RUN
    except KeyboardInterrupt:
        print(f"ser {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `ser predict ... | head`: stop quietly, as Python's docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FILES_FAILED


if __name__ == "__main__":
    sys.exit(main())
