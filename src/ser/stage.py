"""What every stage script shares: a command line of named paths (given by dvc.yaml's cmd), and how it ends
on a problem with its inputs: one line, no traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ser.errors import UserError, flat

EXIT_USER_ERROR = 2


def stage_args(
    description: str | None, paths: Sequence[str], argv: Sequence[str] | None = None, fold: bool = False
) -> argparse.Namespace:
    """Parse `--params FILE` plus one required `--<name> PATH` per entry of `paths` (dashes for underscores),
    and with `fold` a required `--fold N` (the fold of a matrix stage, from dvc.yaml's `${item.fold}`).

    Stage scripts take every path from dvc.yaml, so nothing about the data layout is hard-coded twice.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: %(default)s)")
    if fold:
        parser.add_argument("--fold", type=int, required=True, metavar="N", help="the cross-validation fold, 1-6")
    for name in paths:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=Path, required=True, metavar="PATH")
    return parser.parse_args(argv)


def run(main: Callable[[], None]) -> None:
    """Run a stage script's main(). A UserError (params.yaml, a file, a download: ser.errors) ends it with its
    one line on stderr, `<stage>: error: ...`, and exit status 2, which DVC reports as the stage failing; any
    other exception is a bug and keeps its traceback."""
    try:
        main()
    except UserError as error:
        print(f"{Path(sys.argv[0]).stem}: error: {flat(str(error))}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
