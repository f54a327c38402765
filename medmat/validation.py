"""`medmat validate`: every manifest loaded and cross-checked, in one call.

The registry checks each manifest and the links between them; the layout check asks the source adapters whether
each `layout.params` fits its family; the CG checks read `manifests/cg/`. Composing them here keeps the registry
free of imports from the packages above it.
"""

from __future__ import annotations

from pathlib import Path

from .registry import Problem, Registry, check_registry, load_registry
from .registry.cg_checks import check_cg_manifests
from .registry.cg_models import CGError, CGSet, load_cg


def validate(root: Path | None = None, cg: bool = True) -> tuple[Registry, list[Problem]]:
    """Load and cross-check every manifest under `root`; returns the registry and all problems, sorted.
    `cg=False` leaves out the CG manifests (manifests/cg/), for commands that never read them (a build without
    its hub stage); `medmat validate` checks everything."""
    from .sources import layout_problems  # the adapters' parameter models (pydantic only; no image library)

    registry, problems = load_registry(root)
    problems += check_registry(registry)
    problems += layout_problems(registry)
    if cg:
        problems += check_cg_manifests(registry)
    return registry, sorted(set(problems))


def load_experiments(manifests: Path | None = None) -> tuple[Registry, CGSet]:
    """The validated registry and CG set, or CGError listing every problem (for the trainer and hub assembler)."""
    reg, problems = validate(manifests)
    if problems:
        raise CGError(f"{len(problems)} problem(s) in the manifests:\n" + "\n".join(map(str, problems)))
    cg, _ = load_cg(reg.root)
    return reg, cg


def check_hub_options(registry: Registry, hub: Path) -> list[Problem]:
    """Every question of every built subset config (hub/data/subset-NN*/) against its manifest's label relations:
    no option set may hold two answers that could both be right (medmat.mat.qa.ambiguous_options)."""
    import pyarrow.parquet as pq

    from .mat.qa import ambiguous_options

    problems: list[Problem] = []
    for folder in sorted((Path(hub) / "data").glob("subset-*")):
        sid = folder.name.split("-")[1]
        subset = registry.subsets.get(sid)
        if subset is None:
            problems.append(Problem(str(folder), "subset", f"no subset manifest {sid}", "rebuild the hub"))
            continue
        related = subset.label_relations.related(subset.labels)
        for path in sorted(folder.rglob("*.parquet")):
            table = pq.read_table(path, columns=["id", "task_type", "answer", "options"])
            for row in table.to_pylist():
                why = ambiguous_options(row["options"], row["answer"], row["task_type"], related)
                if why:
                    problems.append(Problem(str(path), row["id"], f"ambiguous options: {why}",
                                            f"declare the relation in {registry.subset_files[sid]} and rebuild"))
    return problems
