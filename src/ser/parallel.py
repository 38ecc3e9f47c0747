"""Order-preserving parallel map over processes, with a progress bar."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity, unlike os.cpu_count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def imap(fn: Callable[[T], R], items: Iterable[T], workers: int, desc: str) -> Iterator[R]:
    """Yield fn(item) for each item, in order; `workers` processes (1: in this process, no pool).

    `fn` must be a picklable top-level function (functools.partial of one is fine).
    """
    items = list(items)
    with tqdm(total=len(items), desc=desc, unit="clip") as bar:
        if workers <= 1:
            for item in items:
                yield fn(item)
                bar.update()
            return
        chunksize = max(1, min(32, len(items) // (workers * 8)))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(fn, items, chunksize=chunksize):
                yield result
                bar.update()
