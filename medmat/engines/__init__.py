"""Where the per-item work runs: `local` (this machine's processes) or `ray` (a Ray cluster, through Ray Data).

An engine maps the pure function `process_batch_table` (medmat.prepare.process) over batches of raw items and yields the results in input
order, with a bounded number of batches in flight. Because the function is pure and the order is restored before
anything is written, every engine writes byte-identical output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

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
