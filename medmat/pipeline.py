"""The orchestration of a build, callable without the CLI: sources -> per-source tables -> hub folder.

`build` resolves names, builds each source (a source that fails does so alone: the others still build), then
assembles the hub folder of their subsets. `example` does the whole path on the packaged example data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .registry import Registry


class SelectionError(ValueError):
    """A name that is neither a source id, a subset number nor `all`."""


def resolve(reg: Registry, names: list[str]) -> tuple[list[str], list[str]]:
    """(source ids to build, subset ids to assemble) for `build` arguments."""
    sources, subsets = [], []
    for name in names:
        if name == "all":
            subsets += sorted(reg.subsets)
            sources += [s for sub in sorted(reg.subsets) for s in reg.subsets[sub].sources]
        elif name.isdigit() and name.zfill(2) in reg.subsets:
            subsets.append(name.zfill(2))
            sources += reg.subsets[name.zfill(2)].sources
        elif name in reg.sources:
            sources.append(name)
            subsets += [s.id for s in reg.subset_of(name)]
        else:
            raise SelectionError(f"unknown source id or subset {name!r}; run `medmat list` for the ids")
    return list(dict.fromkeys(sources)), sorted(set(subsets))


@dataclass
class BuildResult:
    reports: dict[str, dict] = field(default_factory=dict)  # source id -> report.json contents
    failures: dict[str, str] = field(default_factory=dict)  # source id -> why it could not be built
    hub: object | None = None  # medmat.hub.HubContents

    @property
    def ok(self) -> bool:
        return not self.failures


def build(reg: Registry, names: list[str], data_dir: Path | str, out: Path | str, options=None, *, hub: bool = True,
          seed: int = 42, publishable: bool = False, repo_id: str | None = None, figures: bool | None = None,
          on_source: Callable[[str, dict | None, str | None], None] | None = None,
          layout_roots: dict[str, str] | None = None) -> BuildResult:
    """Build the named sources from `data_dir` into `out`, then (with `hub`) the hub folder of their subsets.
    Either may be an fsspec URL (`s3://bucket/prefix`): see `medmat.storage`.

    `on_source(source_id, report, error)` is called after each source. With `options.strict`, the first failure
    stops the build; so does a full disk or an unwritable `out`. A local `out` is locked for the whole build: a
    second build into it raises `OutLocked` naming the holder. Raises `OutProblem` when `out` cannot be used at all.
    `layout_roots` (source id -> folder under DIR/<source-id>/) overrides manifests' `layout.root` for this build,
    as `--layout-root` does (`medmat doctor` prints the value a drift needs). `figures` (the card's coverage grid
    and montages) defaults to `publishable`: a card meant for publishing gets them, a local build stays cheap."""
    from .prepare.atomic import OutLock, disk_problem
    from .storage import is_url, staged_output

    figures = publishable if figures is None else figures
    members = []
    if hub:
        _, subset_ids = resolve(reg, names)
        members = sorted({s for sid in subset_ids for s in reg.subsets[sid].sources})
    with staged_output(out, keep_sources=members) as local_out:  # a remote `out` is built here, then uploaded
        if Path(local_out).exists() and not Path(local_out).is_dir():
            raise OutProblem(f"--out {out} is a file, not a folder; choose another --out")
        try:
            lock = OutLock(Path(local_out)).__enter__()
        except OSError as exc:
            raise OutProblem(disk_problem(exc) or f"cannot use --out {out}: {exc.strerror}") from None
        try:
            return _build_locked(reg, names, data_dir, Path(local_out), options, hub=hub, seed=seed,
                                 publishable=publishable, repo_id=repo_id, figures=figures, on_source=on_source,
                                 layout_roots=layout_roots or {}, shown_out=str(out) if is_url(out) else None)
        finally:
            lock.__exit__(None, None, None)


class OutProblem(Exception):
    """The output folder cannot be used (a file, read-only, full): one line naming it and the fix."""


def _build_locked(reg, names, data_dir, out: Path, options, *, hub, seed, publishable, repo_id, figures, on_source,
                  layout_roots, shown_out) -> BuildResult:
    from .prepare.atomic import disk_problem
    from .prepare.source import BuildOptions, DiskProblem, SourceFailure, build_source
    from .registry.loader import with_layout_roots
    from .storage import exists, is_url, staged_source

    reg = with_layout_roots(reg, layout_roots)
    options = options or BuildOptions()
    source_ids, subset_ids = resolve(reg, names)
    result = BuildResult()
    for name in source_ids:
        present = exists(f"{str(data_dir).rstrip('/')}/{name}") if is_url(data_dir) else (
            Path(data_dir) / name).is_dir()
        if "all" in names and not present:
            continue  # `all` builds what is present; `medmat doctor` lists what is missing
        try:
            with staged_source(data_dir, name) as local_data:  # a remote source is staged here, one at a time
                report = build_source(reg, name, local_data, out, options)
        except SourceFailure as exc:
            result.failures[name] = str(exc)
            if on_source:
                on_source(name, None, str(exc))
            if options.strict or isinstance(exc, DiskProblem):
                return result
            continue
        result.reports[name] = report
        if on_source:
            on_source(name, report, None)
    if hub:
        from .engines import EngineOptions
        from .hub import build_hub

        engine = EngineOptions(options.engine, options.num_proc, options.ray_address)
        try:
            result.hub = build_hub(reg, out, subset_ids, seed=seed, publishable=publishable, repo_id=repo_id,
                                   figures=figures, engine=engine)
        except OSError as exc:
            problem = disk_problem(exc) or f"cannot write {exc.filename}: {exc.strerror}"
            result.failures["hub"] = f"{problem}; the previous {shown_out or Path(out) / 'hub'} is left as it was"
            if on_source:
                on_source("hub", None, result.failures["hub"])
    return result


def example(reg: Registry, out: Path, num_proc: int = 1,
            on_source: Callable[[str, dict | None, str | None], None] | None = None) -> BuildResult:
    """The packaged example: real images from pydicom, nibabel and scikit-image laid out as five sources' archives,
    built into `out/hub`, card figures included (they are what it shows). The example's pixels are those packages'
    own test images, which may be republished."""
    from .example_data import assemble
    from .prepare.source import BuildOptions

    data = Path(out) / "data"
    sources = assemble(data)
    return build(reg, sources, data, out, BuildOptions(num_proc=num_proc), figures=True, on_source=on_source)
