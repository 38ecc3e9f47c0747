"""Live training curves: each epoch of each ensemble member, written by dvclive as the train stage runs, so
`dvc plots show` (and `dvc exp show`, through the summary) can follow a running experiment."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

# history columns (ser.train.Training.epoch) -> dvclive metric names, under member-<m>/
LIVE_METRICS = {"train_loss": "train/loss", "val_loss": "val/loss", "val_score": "val/score"}


@contextlib.contextmanager
def live_log(directory: Path | None) -> Iterator[Callable[[int, dict], None] | None]:
    """A callback `log(member, row)` for `train_ensemble`'s `on_epoch`, logging to dvclive in `directory`
    (None: no log, for the ranks that do not write). Each member's metrics go to their own directory,
    `plots/metrics/member-<m>/`, stepped by its own epoch, so the members' curves overlay instead of running on
    one after another; `metrics.json` holds the latest values of each."""
    if directory is None:
        yield None
        return
    from dvclive import Live  # imported here: the other ranks, and `ser` outside the pipeline, do without

    with Live(str(directory), report=None, save_dvc_exp=False, dvcyaml=None) as live:

        def log(member: int, row: dict) -> None:
            live.step = int(row["epoch"])
            for column, name in LIVE_METRICS.items():
                live.log_metric(f"member-{member}/{name}", float(row[column]))
            live.next_step()

        yield log
