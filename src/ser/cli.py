"""The `ser` command: `ser predict` (emotions of audio files), `ser info` (what a model bundle holds) and
`ser export` (a bundle as ONNX).

A thin layer over ser.predict: parse the command line, run the Predictor, format the table. User errors
(bad files, bad model, bad options) are one line on stderr, never a traceback; names holding control
characters (a newline) are shown escaped, so each problem stays one line. torch, pandas and ser.predict are
imported only once a command runs: parsing and --help answer at once.
Exit status: 0 all files predicted (or not speech), 1 some files failed, 2 no run (model, options, output).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pydantic

from ser.errors import UserError, flat, shown
from ser.options import DEFAULT_MODEL, PredictOptions
from ser.params import problems

if TYPE_CHECKING:
    import pandas as pd
    import torch

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
THREADS_PER_CORE = 4  # the most --threads allows: more only adds contention, and torch crashes far above it
DEVICES = re.compile(r"cpu|cuda(:\d+)?|mps")  # what ser can run on (mps where torch is built with it)
# the header of a table ser writes: path, [start_s,] predicted, confidence, p_<emotion>..., note (older: no note)
HEADER = re.compile(r"path (start_s )?predicted confidence( p_\S+)+( note)?")


class UsageError(UserError):
    """An option or model that makes the whole run impossible: one line, exit status 2."""


def table_text(table: pd.DataFrame) -> str:
    """Aligned columns for reading: text left, numbers right; files not judged show '-' for their probabilities."""
    import pandas as pd

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
    return shown(value)


def csv_text(table: pd.DataFrame) -> str:
    return table.to_csv(index=False)


def json_text(table: pd.DataFrame) -> str:
    """A list of row objects; NaN (files not judged) and an empty note as null."""
    records = [
        {
            key: None if value == "" or (isinstance(value, float) and math.isnan(value)) else value
            for key, value in row.items()
        }
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
            "are averaged. What is not speech (silent, too short, a click, a DC offset) gets no emotion: its row "
            "says what it is. One row per file on stdout (or --out); problems on stderr, one line per file. "
            "A name starting with '-' goes after '--': ser predict -- -clip.wav. "
            "Exit status: 0 all files predicted or not speech, 1 some files failed, 2 the model or an option is "
            "unusable."
        ),
    )
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="audio files, or folders to search")
    model_help = (
        "model bundle, or an ONNX file `ser export` wrote (default: %(default)s, fold 1's model, written by "
        "`dvc repro`)"
    )
    predict.add_argument("--model", type=Path, default=DEFAULT_MODEL, metavar="PATH", help=model_help)
    predict.add_argument("--format", choices=list(FORMATS), default="table", help="output format (default: table)")
    predict.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="write the output here (atomically), not stdout; refused if FILE is an input, the model, or a file "
        "that is not an earlier output of this format",
    )
    force_help = "replace --out even if it is an input, the model or a file ser did not write"
    predict.add_argument("--force", action="store_true", help=force_help)
    predict.add_argument("--per-window", action="store_true", help="one row per window, with its start time (s)")
    predict.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help="draw the emotion probabilities over time, window by window, of the one file given, into this PNG",
    )
    predict.add_argument(
        "--speakers",
        choices=["window", "file", "folder", "all"],
        help="for a model normalised per speaker (`ser info` says): which audio shares a speaker, whose "
        "statistics then normalise it: each window alone, each file (one speaker per recording), each folder, or "
        f"all the files given (default: {DEFAULTS.speakers}); other models ignore it",
    )
    predict.add_argument(
        "--no-shifts",
        dest="shifts",
        action="store_false",
        help="score each window at its own position only, not averaged over shifts of up to 0.25 s as the "
        "evaluate stage scores: a fifth of the model's time, a little less accurate",
    )
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
        help=f"threads for the front end and the model, 1 to {max_threads()} (default: torch's, one per core); "
        "1 helps on a busy machine",
    )
    predict.set_defaults(run=run_predict)

    info = commands.add_parser(
        "info", help="show what a model bundle holds", description="Print a model bundle's settings as JSON."
    )
    info.add_argument("--model", type=Path, default=DEFAULT_MODEL, metavar="PATH", help=model_help)
    info.set_defaults(run=run_info)

    export = commands.add_parser(
        "export",
        help="write a model bundle as ONNX",
        description=(
            "Write a model bundle (every member of its ensemble) as one ONNX file, log-mel in, log-probabilities "
            "out, with the labels and front-end settings in its metadata: `ser predict --model FILE.onnx` runs "
            "it with onnxruntime. Checks the file against the bundle on random inputs before it says done."
        ),
    )
    export.add_argument("--model", type=Path, default=DEFAULT_MODEL, metavar="PATH", help=model_help)
    export.add_argument("--format", choices=["onnx"], default="onnx", help="output format (default: onnx)")
    export.add_argument(
        "--out", type=Path, metavar="FILE", help="the file to write, ending in .onnx (default: the model's, as .onnx)"
    )
    export.set_defaults(run=run_export)
    return parser


def max_threads() -> int:
    return (os.cpu_count() or 1) * THREADS_PER_CORE


def usable_device(requested: str | None) -> torch.device:
    """The device to run on: one ser runs on (DEVICES), checked by placing a tensor there."""
    import torch

    from ser.device import pick_device

    mps = torch.backends.mps.is_built()
    if requested is not None and (not DEVICES.fullmatch(requested) or (requested == "mps" and not mps)):
        allowed = "cpu, cuda or cuda:N" + (" or mps" if mps else "")
        raise UsageError(f"--device {shown(requested)}: not a device ser runs on; use {allowed}")
    try:
        device = pick_device(requested)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:
        raise UsageError(f"--device {shown(requested)}: not usable here ({str(error).splitlines()[0]})") from error
    return device


def is_earlier_output(path: Path, fmt: str) -> bool:
    """Whether an existing file holds nothing, or what `ser predict --format fmt` writes: csv and table by
    their header line, json as a list of rows."""
    with path.open("rb") as file:
        head = file.read(1 << 16)
        if not head.strip():
            return not head  # an empty file holds nothing to lose
        if fmt == "json":
            if not head.lstrip().startswith(b"["):
                return False
            try:
                rows = json.loads(head + file.read())
            except ValueError:
                return False
            return isinstance(rows, list) and all(isinstance(row, dict) and "path" in row for row in rows)
    try:
        first = head.split(b"\n", 1)[0].decode()
    except UnicodeDecodeError:
        return False
    columns = first.split(",") if fmt == "csv" else first.split()
    return HEADER.fullmatch(" ".join(column.strip() for column in columns)) is not None


def is_same_file(found: os.stat_result, path: Path) -> bool:
    try:
        return os.path.samestat(found, path.stat())
    except OSError:  # missing, or unreadable: not a file whose data --out could destroy
        return False


def why_not_replace(found: os.stat_result, out: Path, paths: Sequence[Path], model: Path, fmt: str) -> str | None:
    """Why the existing file --out (`found`, its stat) must not be replaced, or None."""
    if is_same_file(found, model):
        return f"is the model bundle (--model {shown(model)})"
    from ser.predict import find_files  # the files `ser predict PATHS` reads

    for item in find_files(paths):
        if isinstance(item, Path) and is_same_file(found, item):
            return f"is one of the input files ({shown(item)})"
    try:
        earlier = is_earlier_output(out, fmt)
    except OSError as error:
        return f"cannot be read to check that ser wrote it ({error.strerror or error})"
    return None if earlier else f"exists and is not an earlier {fmt} output of ser predict"


def check_out(out: Path, paths: Sequence[Path], model: Path, fmt: str, force: bool) -> None:
    """Refuse, before anything is predicted, an --out that would destroy data unless `force` (an input file,
    also one found in a folder or spelled otherwise; the model; a file ser did not write), or that cannot be
    written (a folder or not a regular file; its folder neither exists nor can be made, or is not writable)."""
    name = f"--out {shown(out)}"
    out = Path(os.path.realpath(out.parent)) / out.name  # where it lands once missing folders are made: x/../a
    try:
        found = out.stat()
    except (FileNotFoundError, NotADirectoryError):
        found = None
    except OSError as error:
        raise UsageError(f"{name}: {error.strerror or error}") from error
    if found is not None and stat.S_ISDIR(found.st_mode):
        raise UsageError(f"{name}: is a folder; name a file to write")
    if found is not None and not stat.S_ISREG(found.st_mode):
        raise UsageError(f"{name}: not a regular file (a device, FIFO or socket); name a file to write")
    if found is not None and not force and (why := why_not_replace(found, out, paths, model, fmt)):
        raise UsageError(f"{name}: {why}; name another file, or pass --force to replace it")
    folder = out.parent
    while not folder.exists():  # made when the output is written
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"{name}: cannot make its folder, {shown(folder)} is a file; name another place")
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        raise UsageError(f"{name}: cannot write in {shown(folder)} ({error.strerror or error})") from error


def predict_options(args: argparse.Namespace) -> PredictOptions:
    """The PredictOptions the command line sets (the others keep PredictOptions' defaults)."""
    fields = [flag.removeprefix("--").replace("-", "_") for flag, *_ in PREDICT_OPTIONS] + [
        "silence_dbfs",
        "speakers",
        "shifts",
    ]
    given = {field: getattr(args, field) for field in fields if getattr(args, field) is not None}
    try:
        return PredictOptions(**given)
    except pydantic.ValidationError as error:
        found = [f"--{key.replace('_', '-')}: {what}" for key, what in problems(error)]
        raise UsageError("; ".join(found)) from None


def run_predict(args: argparse.Namespace) -> int:
    import torch

    from ser.io import atomic_path
    from ser.predict import Failure, Prediction, Predictor, predictions_table

    options = predict_options(args)
    if args.threads is not None:
        if not 1 <= args.threads <= max_threads():
            raise UsageError(
                f"--threads {args.threads}: allowed 1 to {max_threads()} ({THREADS_PER_CORE} per core); "
                "1 helps on a busy machine"
            )
        torch.set_num_threads(args.threads)
    device = usable_device(args.device)
    if args.out is not None:
        check_out(args.out, args.paths, args.model, args.format, args.force)
    if args.plot is not None:
        check_plot(args.plot, args.paths, args.model)
    predictor = Predictor(args.model, device, options)
    if args.speakers not in (None, "window") and predictor.bundle.normalise != "speaker":
        print(
            f"note: --speakers {args.speakers} changes nothing: {shown(args.model)} is normalised "
            f"'{predictor.bundle.normalise}', not per speaker",
            file=sys.stderr,
        )
    predictions: list[Prediction] = []
    failed = silent = not_speech = 0
    for result in predictor.predict_paths(args.paths):
        if isinstance(result, Failure):
            failed += 1
            print(f"error: {shown(result.message)}", file=sys.stderr)
            continue
        predictions.append(result)
        if result.unjudged is not None:
            silent += result.silent
            not_speech += not result.silent
            reason, detail = result.unjudged.reason, result.unjudged.detail
            print(f"{reason}: {shown(result.path)}: {detail}; no emotion predicted", file=sys.stderr)
        elif result.over_full_scale:
            print(f"warning: {shown(result.path)}: {result.note}", file=sys.stderr)
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
            raise UsageError(f"--out {shown(args.out)}: cannot write the output ({error.strerror or error})") from error
    if args.plot is not None and predictions:
        draw_timeline(predictions[0], args.plot, predictor.frontend.audio.duration)
    predicted = len(predictions) - silent - not_speech
    print(
        f"ser predict: {predicted} predicted, {failed} failed, {silent} silent, {not_speech} not speech",
        file=sys.stderr,
    )
    return EXIT_FILES_FAILED if failed else EXIT_OK


def check_plot(plot: Path, paths: Sequence[Path], model: Path) -> None:
    """Refuse, before anything is predicted, a --plot for more than one file (or a folder), not named .png, or
    that is an input or the model."""
    name = f"--plot {shown(plot)}"
    if len(paths) != 1 or paths[0].is_dir():
        raise UsageError(f"{name}: draws one recording; give a single audio file, not {len(paths)} paths or a folder")
    if plot.suffix.lower() != ".png":
        raise UsageError(f"{name}: writes a PNG; name a file ending in .png")
    if plot.is_dir():
        raise UsageError(f"{name}: is a folder; name a file to write")
    try:
        found = plot.stat()
    except OSError:
        return
    if is_same_file(found, model) or is_same_file(found, paths[0]):
        raise UsageError(f"{name}: is the model or the input; name another file")


def draw_timeline(prediction, plot: Path, window_s: float) -> None:
    """The one file's windows as ser.plots.emotion_timeline draws them, titled with its name and duration."""
    import numpy as np

    from ser.plots import emotion_timeline

    windows = prediction.windows
    starts = np.array([window.start_s for window in windows])
    probabilities = np.array(
        [window.probabilities or [float("nan")] * len(prediction.labels) for window in windows], dtype=float
    )
    title = (
        f"{prediction.path.name}: {prediction.duration_s:.1f} s, {len(windows)} window(s) of {window_s:g} s; "
        f"overall {prediction.predicted}"
    )
    try:
        emotion_timeline(starts, probabilities, prediction.labels, window_s, title, plot)
    except OSError as error:
        raise UsageError(f"--plot {shown(plot)}: cannot write it ({error.strerror or error})") from error
    print(f"ser predict: drew {len(windows)} window(s) of {shown(prediction.path)} into {shown(plot)}", file=sys.stderr)


def run_info(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from ser.predict import load_model

    bundle = load_model(args.model, torch.device("cpu"))
    summary = {
        "model": str(args.model),
        "members": len(bundle.model.members) if hasattr(bundle.model, "members") else bundle.model.n_members,
        "labels": list(bundle.labels),
        "model_config": dataclasses.asdict(bundle.model_config),
        "frontend": bundle.frontend.as_dict(),
        "normalise": bundle.normalise,
        "info": bundle.info,
    }
    print(json.dumps(summary, indent=2, default=str))
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    import torch

    from ser.bundle import load_bundle
    from ser.export import export_onnx

    if args.model.suffix.lower() == ".onnx":
        raise UsageError(f"--model {shown(args.model)}: already ONNX; export a model bundle (.pt)")
    out = args.out if args.out is not None else args.model.with_suffix(".onnx")
    if out.suffix.lower() != ".onnx":
        raise UsageError(f"--out {shown(out)}: name a file ending in .onnx (ser predict knows ONNX by its suffix)")
    if out.is_dir():
        raise UsageError(f"--out {shown(out)}: is a folder; name a file to write")
    bundle = load_bundle(args.model, torch.device("cpu"))
    try:
        difference = export_onnx(bundle, out)
    except OSError as error:
        raise UsageError(f"--out {shown(out)}: cannot write it ({error.strerror or error})") from error
    size_mb = out.stat().st_size / 1e6
    print(
        f"ser export: wrote {shown(out)} ({size_mb:.1f} MB, {len(bundle.model.members)} member(s)); its "
        f"probabilities differ from the bundle's by at most {difference:.1e} on random inputs",
        file=sys.stderr,
    )
    return EXIT_OK


def error_line(error: Exception, model: Path | None) -> str:
    """An error as one line: the file it names shown escaped, the library's text on one line."""
    from ser.audio import AudioError

    if isinstance(error, AudioError):
        return f"{shown(error.path)}: {flat(error.problem)}"
    if isinstance(error, UsageError):
        return shown(error)  # its names are shown already
    text = str(error)
    if model is not None and text.startswith(f"{model}: "):  # a BundleError names the bundle first
        return f"{shown(model)}: {flat(text.removeprefix(f'{model}: '))}"
    return flat(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ser` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_NO_RUN
    try:
        return args.run(args)
    except UserError as error:
        print(f"ser {args.command}: {error_line(error, getattr(args, 'model', None))}", file=sys.stderr)
        return EXIT_NO_RUN
    except KeyboardInterrupt:
        print(f"ser {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `ser predict ... | head`: stop quietly, as Python's docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FILES_FAILED


if __name__ == "__main__":
    sys.exit(main())
