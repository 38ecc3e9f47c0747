"""What every stage script shares: a command line of named paths (given by dvc.yaml's cmd)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


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
