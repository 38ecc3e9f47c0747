"""Atomic outputs: write under a temporary name beside the target, rename only when complete."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        return True
    return True


def stale_temporaries(target: Path) -> list[Path]:
    """The temporaries of `target` (atomic_path's `.<name>.<pid>.<random>.tmp` beside it) whose process no
    longer runs: left by a run that was killed (kill -9, a power cut) before it could clean up. Those of an
    older naming without the process id count as stale too."""
    # tempfile's random part is letters, digits and "_": never a dot, so `.a.<...>.tmp` is never `.a.csv.<...>.tmp`'s
    ours = re.compile(rf"\.{re.escape(target.name)}\.(?:(\d+)\.)?\w+\.tmp")
    found = []
    for path in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        match = ours.fullmatch(path.name)
        if match and not (match[1] and _running(int(match[1]))):
            found.append(path)
    return sorted(found)


def remove(path: Path) -> None:
    """Remove a file, a link or a whole folder (not what a link points to)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_path(target: str | Path, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target`, on error it is removed.

    An interrupted stage therefore never leaves a half-written output under the final name, and what a killed
    run left behind (stale_temporaries) is removed the next time the target is written.
    With `directory=True` the temporary path is an empty folder and a whole folder is swapped in.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_temporaries(target):
        print(f"removing {stale}, left by an interrupted run", file=sys.stderr)
        remove(stale)
    prefix = f".{target.name}.{os.getpid()}."
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory:
            remove(target)
            tmp.chmod(0o755)  # mkdtemp makes 0700 folders
        else:
            tmp.chmod(0o644)
        os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_json(data: object, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


# Columns that hold names, never numbers: a CREMA-D speaker "1001" stays text, and an empty intensity (TESS, and
# CREMA-D's unspecified level) stays "" instead of becoming NaN.
TEXT_COLUMNS = (
    "clip_id", "source_clip_id", "path", "corpus", "speaker", "gender", "emotion", "statement", "intensity",
    "pcm_md5", "actual", "predicted",
)  # fmt: skip


def read_table(path: str | Path) -> pd.DataFrame:
    """A table written by `write_csv`, with TEXT_COLUMNS read as text whatever their values look like."""
    text = [column for column in pd.read_csv(path, nrows=0).columns if column in TEXT_COLUMNS]
    table = pd.read_csv(path, dtype=dict.fromkeys(text, str))
    table[text] = table[text].fillna("")
    return table


def write_csv(table: pd.DataFrame, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        table.to_csv(tmp, index=False)
