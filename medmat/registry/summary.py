"""Plain-data views of the registry for `medmat list` and `medmat info`."""

from __future__ import annotations

from .loader import Registry
from .models import EvidenceStrength, Source


def evidence_counts(src: Source) -> dict[str, int]:
    """How many of the source's layout facts are backed at each strength (issue 15), plus the total."""
    counts = {strength.value: 0 for strength in EvidenceStrength}
    for item in src.evidence:
        counts[item.strength.value] += 1
    return counts | {"total": len(src.evidence)}


def evidence_rows(src: Source) -> list[dict]:
    """The source's evidence facts as plain rows (fact, strength, claim, where, shows), in manifest order."""
    return [{"fact": e.fact.value, "strength": e.strength.value, "claim": e.claim, "where": e.where,
             "shows": e.shows} for e in src.evidence]


def source_row(reg: Registry, source_id: str) -> dict:
    src = reg.sources[source_id]
    homes = reg.subset_of(source_id)
    task = reg.vocabulary.task(src.task) if reg.vocabulary else None
    return {
        "kind": "source",
        "id": src.id,
        "row": src.upstream.row,
        "name": src.name,
        "subset": homes[0].id if homes else None,
        "modality": src.modality,
        "area": src.area,
        "task": src.task,
        "task_element": task.element if task else None,
        "task_type": src.task_type.value,
        "dimensionality": src.dimensionality,
        "access": src.access.kind.value,
        "license": src.license,
        "redistributable": src.redistributable,
        "labels": len(src.labels.vocabulary),
        "expected_count": src.expected_count,
        "homepage": str(src.homepage),
        "evidence": evidence_counts(src),
    }


def subset_row(reg: Registry, subset_id: str) -> dict:
    sub = reg.subsets[subset_id]
    task = reg.vocabulary.task(sub.task) if reg.vocabulary else None
    members = [reg.sources[s] for s in sub.sources if s in reg.sources]
    counts = [m.expected_count for m in members]
    return {
        "kind": "subset",
        "id": sub.id,
        "name": sub.name,
        "modality": sub.modality,
        "area": sub.area,
        "task": sub.task,
        "task_element": task.element if task else None,
        "task_type": sub.task_type.value,
        "role": sub.role,
        "sources": list(sub.sources),
        "labels": list(sub.labels),
        "access": sorted({m.access.kind.value for m in members}),
        "redistributable": all(m.redistributable for m in members) if members else None,
        # Known only when every member states its size.
        "expected_count": sum(counts) if counts and None not in counts else None,
    }
