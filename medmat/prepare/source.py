"""Build one source: adapter entries -> per-item work (optionally in worker processes) -> streaming writer."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator

from pydantic import ValidationError
from tqdm.auto import tqdm

from ..engines import EngineOptions, map_ordered
from ..readers.base import DEFAULT_MAX_BYTES, inside
from ..sources import AdapterError, RawItem, Skipped, adapter_for
from ..sources.ledger import Ledger
from ..sources.tables import TableError
from ..registry.loader import Registry
from .process import BatchResult, SourceContext, process_batch_table
from .atomic import disk_problem, worker_init
from .writer import BuildError, SourceWriter

BATCH_ITEMS = 16  # items per task sent to a worker

# Everything that makes a whole source unbuildable (missing folder, unreadable label table, --strict stop):
# the pipeline reports it for that source and goes on with the others.
SourceFailure = BuildError


class DiskProblem(BuildError):
    """The output cannot be written (disk full, read-only): every later source would fail alike."""


@dataclass(frozen=True)
class BuildOptions:
    max_examples: int | None = None
    num_proc: int = 1
    strict: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    progress: bool = True
    engine: str = "local"  # local | ray (medmat.engines)
    ray_address: str | None = None


def _batches(items: Iterable[RawItem], size: int) -> Iterator[list[RawItem]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _results(batches: Iterator[list[RawItem]], ctx: SourceContext, options: BuildOptions) -> Iterator[BatchResult]:
    """Batch results in input order, from the engine the options name (memory bounded by its window). Local
    workers ignore SIGINT (the parent handles it) and die with their parent."""
    engine = EngineOptions(options.engine, options.num_proc, options.ray_address)
    return map_ordered(partial(process_batch_table, ctx=ctx), batches, engine, initializer=worker_init)


def build_source(registry: Registry, source_id: str, data_dir: Path, out: Path,
                 options: BuildOptions = BuildOptions()) -> dict:
    """Build DIR/<source-id>/ into OUT/sources/<source-id>/ and return its report."""
    source = registry.sources[source_id]
    adapter = adapter_for(source)
    source_dir = Path(data_dir) / source_id
    root = source_dir / source.layout.root if source.layout.root else source_dir
    if source.layout.root and root.exists() and not inside(root, source_dir):
        raise SourceFailure(f"layout.root {source.layout.root!r} resolves outside {source_dir} (through a symbolic "
                            "link); links are never followed: move the files into the source folder")
    ctx = SourceContext.of(registry, source, source_dir, options.max_bytes)
    try:
        writer = SourceWriter(Path(out) / "sources", source_id)
    except OSError as exc:
        raise SourceFailure(disk_problem(exc) or f"cannot write {exc.filename}: {exc.strerror}") from None
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
        for result in _results(_batches(items(), BATCH_ITEMS), ctx, options):
            for entry in writer.add_batch(result):  # in input order: --strict names the first quarantined item
                _check_strict(entry, options)
            bar.update(result.size)
        excluded, files = ledger.close()
        for entry in excluded:
            writer.skip(entry)
        return writer.finish(files)
    except (AdapterError, TableError) as exc:
        writer.abort()
        raise SourceFailure(str(exc)) from exc
    except ValidationError as exc:
        writer.abort()
        first = exc.errors()[0] if exc.errors() else {"msg": str(exc), "loc": ()}
        raise SourceFailure(f"invalid layout parameter {'.'.join(map(str, first['loc']))}: {first['msg']}; run "
                            "`medmat validate`") from None
    except OSError as exc:
        writer.abort()
        problem = disk_problem(exc)
        if problem is None:
            raise SourceFailure(f"cannot read or write {exc.filename or source_dir}: {exc.strerror or exc}") from None
        raise DiskProblem(problem) from None
    except (KeyboardInterrupt, SystemExit, MemoryError):
        writer.abort()
        raise
    except Exception as exc:  # an adapter meeting input it does not expect: this source fails alone, never a traceback
        writer.abort()
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise SourceFailure(f"the {source.layout.family.value} adapter stopped ({type(exc).__name__}: {first}); the "
                            "other sources still build; please report this with the file it names") from None
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()


def _check_strict(entry: Skipped, options: BuildOptions) -> None:
    if options.strict and entry.kind == "quarantined":
        raise BuildError(f"--strict: {entry.path}: {entry.reason}")
