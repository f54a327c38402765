"""The local engine: the calling process, or a standard-library process pool with a bounded window."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

WINDOW_PER_WORKER = 4  # batches in flight per worker: keeps memory bounded while workers stay busy


def map_ordered(work: Callable[[list], list], batches: Iterator[list], options,
                initializer: Callable[[], None] | None = None) -> Iterator[list]:
    if options.num_proc <= 1:
        yield from map(work, batches)
        return
    with ProcessPoolExecutor(max_workers=options.num_proc, initializer=initializer) as pool:
        # A sliding window: each result handed on makes room for the next batch, so no worker waits for the
        # slowest batch of a group (memory stays bounded by the window).
        pending = deque(pool.submit(work, b) for b in itertools.islice(batches, WINDOW_PER_WORKER * options.num_proc))
        while pending:
            result = pending.popleft().result()
            for batch in itertools.islice(batches, 1):
                pending.append(pool.submit(work, batch))
            yield result
