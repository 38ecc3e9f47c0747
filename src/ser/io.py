"""Atomic outputs: write under a temporary name beside the target, rename only when complete."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd


@contextlib.contextmanager
def atomic_path(target: str | Path, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target`, on error it is removed.

    An interrupted stage therefore never leaves a half-written output under the final name.
    With `directory=True` the temporary path is an empty folder and a whole folder is swapped in.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
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
