"""The Ray engine: the per-item work as Ray Data `map_batches`, one batch of raw items per Ray Data row.

Batches are sent in windows (a few hundred at a time), each a small Ray Data dataset executed with
`preserve_order`, so the driver holds at most one window of items and results, and the order is the input order
whatever the number of nodes and workers. A task that fails for a system reason (a node lost) is retried by Ray (its default retries); since its work is a pure function
of its input, a retry gives the same rows and nothing is duplicated (rows flow only through the dataset's output).
"""

from __future__ import annotations

import itertools
import os
import pickle
from collections.abc import Callable, Iterator

BATCHES_PER_WINDOW = 256  # 256 batches of 16 items: about 4,000 items per Ray Data execution


LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray binds a local cluster to 127.0.0.1, not the LAN


def _init(address: str | None, num_proc: int) -> None:
    if not address:
        # A Ray started here serves this build alone: keep it on loopback (set before Ray is first imported).
        os.environ.setdefault(LOOPBACK_ENV, "0")
    import ray

    if ray.is_initialized():
        return
    kwargs = dict(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
                  configure_logging=False)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=max(1, num_proc), **kwargs)


def _apply(rows: dict, work: Callable[[list], list]) -> dict:
    # One Ray Data row per batch: unpickle the items, run the pure work, pickle the results.
    return {"index": rows["index"], "results": [pickle.dumps(work(pickle.loads(b)), protocol=5)
                                                for b in rows["items"]]}


def map_ordered(work: Callable[[list], list], batches: Iterator[list], options) -> Iterator[list]:
    import ray.data

    _init(options.ray_address, options.num_proc)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    start = 0
    while chunk := list(itertools.islice(batches, BATCHES_PER_WINDOW)):
        rows = [{"index": start + i, "items": pickle.dumps(batch, protocol=5)} for i, batch in enumerate(chunk)]
        start += len(chunk)
        ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), max(1, options.num_proc) * 4))
        out = ds.map_batches(_apply, fn_kwargs={"work": work}, batch_size=1, batch_format="pandas", num_cpus=1)
        expected = start - len(chunk)
        for row in out.iter_rows():
            if row["index"] != expected:  # preserve_order guarantees this; refuse rather than write out of order
                raise RuntimeError(f"Ray returned batch {row['index']} where {expected} was due")
            expected += 1
            yield pickle.loads(row["results"])


def map_tasks(work: Callable, items: list, options) -> list:
    """One Ray task per item, pinned to this (the driver's) node: the hub tasks read OUT/sources and write
    OUT/hub, which live on the driver's disk (or its staging folder for an object-store OUT). Ray retries a task
    lost to a system failure; each task clears its own output folder first, so a retry writes it afresh."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    _init(options.ray_address, options.num_proc)
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    task = ray.remote(num_cpus=1, scheduling_strategy=here)(_call)
    return ray.get([task.remote(work, item) for item in items])


def _call(work: Callable, item):
    return work(item)
