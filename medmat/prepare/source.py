"""Build one source: adapter entries -> per-item work (optionally in worker processes) -> streaming writer."""

from __future__ import annotations

import itertools
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator

from tqdm.auto import tqdm

from ..readers.base import DEFAULT_MAX_PIXELS
from ..sources import AdapterError, RawItem, Skipped, adapter_for
from ..sources.ledger import Ledger
from ..sources.tables import TableError
from ..registry.loader import Registry
from .process import SourceContext, process_batch
from .writer import BuildError, SourceWriter

BATCH_ITEMS = 16  # items per task sent to a worker

# Everything that makes a whole source unbuildable (missing folder, unreadable label table, --strict stop):
# the pipeline reports it for that source and goes on with the others.
SourceFailure = BuildError


@dataclass(frozen=True)
class BuildOptions:
    max_examples: int | None = None
    num_proc: int = 1
    strict: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    progress: bool = True


def _batches(items: Iterable[RawItem], size: int) -> Iterator[list[RawItem]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _results(batches: Iterator[list[RawItem]], ctx: SourceContext, num_proc: int) -> Iterator[list]:
    """Batch results in input order. At most 4 batches per worker are in flight, so memory stays bounded."""
    work = partial(process_batch, ctx=ctx)
    if num_proc <= 1:
        yield from map(work, batches)
        return
    with ProcessPoolExecutor(max_workers=num_proc) as pool:
        window = 4 * num_proc
        while chunk := list(itertools.islice(batches, window)):
            yield from pool.map(work, chunk)


def build_source(registry: Registry, source_id: str, data_dir: Path, out: Path,
                 options: BuildOptions = BuildOptions()) -> dict:
    """Build DIR/<source-id>/ into OUT/sources/<source-id>/ and return its report."""
    source = registry.sources[source_id]
    adapter = adapter_for(source)
    source_dir = Path(data_dir) / source_id
    ctx = SourceContext.of(registry, source, source_dir, options.max_pixels)
    writer = SourceWriter(Path(out) / "sources", source_id)
    ledger = Ledger(source_dir, source.layout.root)
    taken = 0

    def items() -> Iterator[RawItem]:
        nonlocal taken
        for entry in adapter.entries(source_dir):
            if isinstance(entry, Skipped):
                ledger.skipped(entry)
                writer.skip(entry)
                _check_strict(entry, options)
                continue
            ledger.item(entry)
            if options.max_examples is not None and taken >= options.max_examples:
                writer.skip(Skipped(entry.key, "excluded",
                                    f"beyond --max-examples {options.max_examples}"))
            else:
                taken += 1
                yield entry

    # disable=None: tqdm's own test, no bar when the output is not a terminal (logs, CI, notebooks' streams)
    bar = tqdm(desc=source_id, unit="img", disable=None if options.progress else True, leave=False)
    try:
        for results in _results(_batches(items(), BATCH_ITEMS), ctx, options.num_proc):
            for result in results:
                if isinstance(result, Skipped):
                    writer.skip(result)
                    _check_strict(result, options)
                else:
                    problem = writer.add(result)
                    if problem is not None:
                        _check_strict(problem, options)
                bar.update(1)
        excluded, files = ledger.close()
        for entry in excluded:
            writer.skip(entry)
        return writer.finish(files)
    except (AdapterError, TableError) as exc:
        writer.abort()
        raise SourceFailure(str(exc)) from exc
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()


def _check_strict(entry: Skipped, options: BuildOptions) -> None:
    if options.strict and entry.kind == "quarantined":
        raise BuildError(f"--strict: {entry.path}: {entry.reason}")
