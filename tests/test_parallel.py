"""The parallel map, over processes and over threads: order kept, errors raised, a bounded number of jobs in
flight."""

import functools
import time
from pathlib import Path

import pytest

from ser.parallel import CHUNKS_IN_FLIGHT, imap, torch_threads


def square(x: int) -> int:
    return x * x


def fail_on_seven(x: int) -> int:
    if x == 7:
        raise ValueError("item 7 is bad")
    return x


def mark_done(x: int, folder: Path) -> int:
    (folder / str(x)).touch()
    return x


@pytest.mark.parametrize("threads", [False, True])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_results_come_in_item_order(workers, threads):
    assert list(imap(square, range(100), workers, desc="test", threads=threads)) == [x * x for x in range(100)]


@pytest.mark.parametrize("threads", [False, True])
def test_a_worker_error_reaches_the_caller(threads):
    with pytest.raises(ValueError, match="item 7"):
        list(imap(fail_on_seven, range(50), 2, desc="test", threads=threads))


@pytest.mark.parametrize("threads", [False, True])
def test_a_slow_consumer_does_not_make_the_workers_run_ahead(tmp_path, threads):
    items, workers = 400, 2
    chunksize = min(32, items // (workers * 8))
    work = functools.partial(mark_done, folder=tmp_path)
    results = imap(work, range(items), workers, desc="test", threads=threads)
    assert next(results) == 0
    time.sleep(1.0)  # plenty of time for the workers to finish all 400 items, were they allowed to
    done = len(list(tmp_path.iterdir()))
    assert done <= (CHUNKS_IN_FLIGHT * workers + 1) * chunksize < items
    assert list(results) == list(range(1, items))
    assert len(list(tmp_path.iterdir())) == items


def test_torch_threads_sets_and_restores_the_thread_count():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="inside"), torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before
