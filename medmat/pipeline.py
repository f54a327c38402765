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


def build(reg: Registry, names: list[str], data_dir: Path, out: Path, options=None, *, hub: bool = True,
          seed: int = 42, publishable: bool = False, repo_id: str | None = None,
          on_source: Callable[[str, dict | None, str | None], None] | None = None) -> BuildResult:
    """Build the named sources from `data_dir` into `out`, then (with `hub`) the hub folder of their subsets.

    `on_source(source_id, report, error)` is called after each source. With `options.strict`, the first failure
    stops the build."""
    from .prepare.source import BuildOptions, SourceFailure, build_source

    options = options or BuildOptions()
    source_ids, subset_ids = resolve(reg, names)
    result = BuildResult()
    for name in source_ids:
        if "all" in names and not (Path(data_dir) / name).is_dir():
            continue  # `all` builds what is present; `medmat doctor` lists what is missing
        try:
            report = build_source(reg, name, data_dir, out, options)
        except SourceFailure as exc:
            result.failures[name] = str(exc)
            if on_source:
                on_source(name, None, str(exc))
            if options.strict:
                return result
            continue
        result.reports[name] = report
        if on_source:
            on_source(name, report, None)
    if hub:
        from .hub import build_hub

        result.hub = build_hub(reg, out, subset_ids, seed=seed, publishable=publishable, repo_id=repo_id)
    return result


def example(reg: Registry, out: Path, num_proc: int = 1,
            on_source: Callable[[str, dict | None, str | None], None] | None = None) -> BuildResult:
    """The packaged example: real images from pydicom, nibabel and scikit-image laid out as five sources' archives,
    built into `out/hub`. The example's pixels are those packages' own test images, which may be republished."""
    from .example_data import assemble
    from .prepare.source import BuildOptions

    data = Path(out) / "data"
    sources = assemble(data)
    return build(reg, sources, data, out, BuildOptions(num_proc=num_proc), on_source=on_source)
