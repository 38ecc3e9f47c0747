"""Order-preserving parallel map over processes or threads, with a progress bar and a bounded number of jobs
in flight."""

from __future__ import annotations

import collections
import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")

CHUNKS_IN_FLIGHT = 4  # per worker: enough to keep every worker busy, few enough to bound the memory of results


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity, unlike os.cpu_count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _single_threaded() -> None:
    """Worker initialiser: one thread per process, since the processes already share out the cores."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with torch's intra-op threads set to `n` (restored after): pool threads that each call
    torch should not each start a team of threads of their own."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _map_chunk(fn: Callable[[T], R], chunk: Sequence[T]) -> list[R]:
    return [fn(item) for item in chunk]


def _pool(workers: int, threads: bool) -> Executor:
    if threads:
        return ThreadPoolExecutor(max_workers=workers)
    return ProcessPoolExecutor(max_workers=workers, initializer=_single_threaded)


def imap(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    desc: str,
    size: Callable[[T], int] | None = None,
    threads: bool = False,
) -> Iterator[R]:
    """Yield fn(item) for each item, in order; `workers` processes (1: in this process, no pool).

    With `threads`, the workers are threads of this process instead: no start-up, warm caches shared, and no
    results to pickle, which pays when `fn` spends its time in code that releases the GIL (file decoding,
    numpy, torch). Otherwise `fn` must be a picklable top-level function (functools.partial of one is fine).
    Items go out in chunks, at most CHUNKS_IN_FLIGHT per worker at a time, so results never pile up when the
    consumer is slower. The bar counts clips: `size(item)` clips per item (default 1), for batches of clips.
    """
    items = list(items)
    weigh = size or (lambda item: 1)
    with tqdm(total=sum(weigh(item) for item in items), desc=desc, unit="clip") as bar:
        if workers <= 1:
            for item in items:
                yield fn(item)
                bar.update(weigh(item))
            return
        chunksize = max(1, min(32, len(items) // (workers * 8)))
        chunks = collections.deque(items[i : i + chunksize] for i in range(0, len(items), chunksize))
        in_flight: collections.deque[tuple[Future[list[R]], list[T]]] = collections.deque()
        with _pool(workers, threads) as pool:
            while chunks or in_flight:
                while chunks and len(in_flight) < CHUNKS_IN_FLIGHT * workers:
                    chunk = chunks.popleft()
                    in_flight.append((pool.submit(_map_chunk, fn, chunk), chunk))
                future, chunk = in_flight.popleft()
                for item, result in zip(chunk, future.result(), strict=True):
                    yield result
                    bar.update(weigh(item))
