"""Where the per-item work runs: `local` (this machine's processes) or `ray` (a Ray cluster, through Ray Data).

An engine maps the pure function `process_batch_table` (medmat.prepare.process) over batches of raw items and
yields the results in input order, with a bounded number of batches in flight (`map_ordered`), and runs the hub's
per-subset work as one task per subset (`map_tasks`). Because the work is pure and the order is restored before
anything is written, every engine writes byte-identical output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class EngineOptions:
    name: str = "local"
    num_proc: int = 1
    ray_address: str | None = None  # None: start (or join) a local Ray; "auto" or "host:port": an existing cluster

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise ValueError(f"unknown engine {self.name!r}; choose one of {', '.join(ENGINES)}")


def map_ordered(work: Callable[[list], list], batches: Iterator[list], options: EngineOptions,
                initializer: Callable[[], None] | None = None) -> Iterator[list]:
    """`work(batch)` for every batch, results in input order. `initializer` runs once in each local worker."""
    if options.name == "ray":
        from .ray_engine import map_ordered as engine_map
        return engine_map(work, batches, options)
    from .local import map_ordered as engine_map
    return engine_map(work, batches, options, initializer)


def map_tasks(work: Callable[[T], R], items: Sequence[T], options: EngineOptions,
              initializer: Callable[[], None] | None = None) -> list[R]:
    """`work(item)` for each item as one task (a subset's hub work), results in input order. Local: in this
    process, or up to `num_proc` worker processes (`initializer` runs once in each). Ray: one Ray task each, on
    the node that holds OUT."""
    items = list(items)
    if options.name == "ray":
        from .ray_engine import map_tasks as engine_map
        return engine_map(work, items, options)
    if options.num_proc <= 1 or len(items) <= 1:
        return [work(item) for item in items]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(options.num_proc, len(items)), initializer=initializer) as pool:
        return list(pool.map(work, items))
