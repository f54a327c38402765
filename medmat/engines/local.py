"""The local engine: the calling process, or a standard-library process pool with a bounded window."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

WINDOW_PER_WORKER = 4  # batches in flight per worker: keeps memory bounded while workers stay busy


def map_ordered(work: Callable[[list], list], batches: Iterator[list], options,
                initializer: Callable[[], None] | None = None) -> Iterator[list]:
    if options.num_proc <= 1:
        yield from map(work, batches)
        return
    with ProcessPoolExecutor(max_workers=options.num_proc, initializer=initializer) as pool:
        window = WINDOW_PER_WORKER * options.num_proc
        while chunk := list(itertools.islice(batches, window)):
            yield from pool.map(work, chunk)
