"""Atomic outputs: write under a temporary name beside the target, rename only when complete."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

HOST = re.sub(r"\W", "_", socket.gethostname()) or "host"  # in temporaries' names: whose process ids they are


def _read_umask() -> int:
    """The process's umask. os.umask can only be read by setting it, so it is set back at once: done once, at
    import, because threads (fetch's downloads) that read it so at the same time could leave it changed."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _read_umask()  # the mode bits new outputs do not get, as open() and mkdir() would not give them


_HIDDEN_TMP: dict[str, list[str]] = {}  # per folder: its hidden *.tmp names when this process first wrote there


def _gone(host: str | None, pid: str | None) -> bool:
    """Whether the process that named a temporary no longer runs: an older naming without one counts as gone;
    another machine's (or container's) process cannot be checked from here, so it does not."""
    if pid is None:
        return True
    if host != HOST or os.name == "nt":  # Windows' os.kill would end the process, not probe it
        return False
    try:
        os.kill(int(pid), 0)  # no signal: only whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, as another user's
        return False
    return False


def stale_temporaries(target: Path) -> list[Path]:
    """The temporaries of `target` (atomic_path's `.<name>.<host>-<pid>.<random>.tmp` beside it) whose process
    no longer runs: left by a run that was killed (kill -9, a power cut) before it could clean up. Those of an
    older naming without the process count as stale too. The folder is listed once per process (a fetch writes
    thousands of files into one), so what this process writes later is never taken for stale."""
    folder = os.path.abspath(target.parent)
    if folder not in _HIDDEN_TMP:
        _HIDDEN_TMP[folder] = [name for name in os.listdir(folder) if name.startswith(".") and name.endswith(".tmp")]
    # tempfile's random part is letters, digits and "_", never a dot: `.a.<...>.tmp` is never `.a.csv.<...>.tmp`
    ours = re.compile(rf"\.{re.escape(target.name)}\.(?:(\w+)-(\d+)\.)?\w+\.tmp")
    stale = [name for name in _HIDDEN_TMP[folder] if (match := ours.fullmatch(name)) and _gone(match[1], match[2])]
    _HIDDEN_TMP[folder] = [name for name in _HIDDEN_TMP[folder] if name not in stale]
    return sorted(target.parent / name for name in stale)


def remove(path: Path) -> None:
    """Remove a file, a link or a whole folder (not what a link points to); gone already is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


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
    prefix = f".{target.name}.{HOST}-{os.getpid()}."
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        # mkstemp and mkdtemp make private files (0600) and folders (0700): give them the mode open() and mkdir
        # would have, under the user's umask
        if directory:
            remove(target)
            tmp.chmod(0o777 & ~UMASK)
        else:
            tmp.chmod(0o666 & ~UMASK)
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
