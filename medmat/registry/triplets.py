"""The MAT table of the subsets, and which elements two triplets share.

Used by the CG checks (a direction type is a statement about shared elements) and the CG generator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import permutations

from .cg_models import ELEMENTS, FIXED, PAIRS, WITHOUT, Direction, Experiment, Reading, Relatedness
from .loader import Registry

@dataclass(frozen=True)
class Mat:
    modality: str
    area: str
    task: str  # the coarse task element (State, Cancer, ...)

    def get(self, element: str) -> str:
        return getattr(self, element)

    def __str__(self) -> str:
        return f"{self.modality} / {self.area} / {self.task}"


def mat_table(reg: Registry) -> dict[str, Mat]:
    """Subset id -> (modality, area, task element), from the subsets and the vocabulary."""
    table = {}
    for sid, sub in sorted(reg.subsets.items()):
        task = reg.vocabulary.task(sub.task) if reg.vocabulary else None
        table[sid] = Mat(sub.modality, sub.area, task.element if task else sub.task)
    return table


def shares(a: Mat, b: Mat) -> tuple[str, ...]:
    """The elements two triplets have in common (exact vocabulary keys), in M, A, T order."""
    return tuple(e for e in ELEMENTS if a.get(e) == b.get(e))


def near_shares(a: Mat, b: Mat, relatedness: Relatedness) -> tuple[str, ...]:
    """Elements that differ as keys but sit in one of `relatedness.near`'s groups (lung ~ chest)."""
    found = []
    for e in ELEMENTS:
        if a.get(e) != b.get(e) and any(g.element == e and {a.get(e), b.get(e)} <= set(g.values)
                                        for g in relatedness.near):
            found.append(e)
    return tuple(found)


def read_table(table: Mapping[str, Mat], reading: Reading | None) -> dict[str, Mat]:
    """`table` with a relatedness reading's task elements applied (the paper's task names for one family)."""
    out = dict(table)
    for sid, task in (reading.task.items() if reading else ()):
        if sid in out:
            out[sid] = Mat(out[sid].modality, out[sid].area, task)
    return out


def effective_table(reg: Registry, exp: Experiment, relatedness: Relatedness | None = None) -> dict[str, Mat]:
    """The MAT table with this experiment's reading (from `relatedness`) and `treat_as` overrides applied."""
    table = read_table(mat_table(reg), relatedness.reading(exp.reading) if relatedness else None)
    for t in exp.treat_as:
        if t.subset in table:
            m = table[t.subset]
            table[t.subset] = Mat(t.modality or m.modality, t.area or m.area, t.task or m.task)
    return table


def direction_problem(exp: Experiment, table: Mapping[str, Mat], relatedness: Relatedness) -> str | None:
    """Why the train subsets do not fit `exp.direction`, or None."""
    tm = table[exp.target]
    got = {s: shares(tm, table[s]) for s in exp.train}
    covered = {e for v in got.values() for e in v}
    missing = [e for e in ELEMENTS if e not in covered]

    def show(sids: Iterable[str]) -> str:
        return ", ".join(f"{s} shares {'+'.join(got[s]) or 'nothing'}" for s in sids)

    reading = relatedness.reading(exp.reading)
    if reading is not None and not reading.near:
        relatedness = Relatedness()  # the paper's counts use exact elements only
    d = exp.direction
    if d in (Direction.single_task, Direction.multi_task):
        return None  # the pilot trains on the target itself (checked in cg_checks)
    if d is Direction.untrained:
        return "untrained takes no train subsets" if exp.train or exp.target_train_samples else None
    if d is Direction.target_only:
        if exp.train:
            return "target_only takes no train subsets"
        if exp.target_train_samples == 0:
            return "target_only needs target_train_samples > 0"
        return None
    if not exp.train:
        return f"{d.value} needs train subsets (use target_only for target data alone)"
    if d in FIXED:
        e = FIXED[d]
        lacking = [s for s in exp.train if e not in got[s]]
        if lacking:
            return f"{d.value}: {show(lacking)}, not the target's {e} {tm.get(e)!r}"
    if d in PAIRS:
        a, b = PAIRS[d]
        if not any(a in got[s] and b in got[s] for s in exp.train):
            return f"{d.value}: no train subset shares both {a} and {b} with the target ({show(exp.train)})"
    if d is Direction.one_element_each:
        if len(exp.train) != 3 or not any(all(e in got[s] for s, e in zip(order, ELEMENTS))
                                           for order in permutations(exp.train)):
            return f"one_element_each needs three subsets giving M, A and T one each ({show(exp.train)})"
    if d in FIXED or d in PAIRS or d is Direction.one_element_each:
        if missing:
            return f"together the train subsets lack the target's {', '.join(missing)} ({show(exp.train)})"
    if d in (Direction.all_related, *WITHOUT):
        lone = [s for s in exp.train if not got[s]]
        if lone:
            return f"{d.value}: {', '.join(lone)} share(s) no element with the target"
    if d in WITHOUT:
        e = WITHOUT[d]
        bad = [s for s in exp.train if e in got[s] or e in near_shares(tm, table[s], relatedness)]
        if bad:
            return f"{d.value}: {', '.join(bad)} share(s) the target's {e} {tm.get(e)!r} (or a near one)"
    if d is Direction.all_unrelated:
        bad = [s for s in exp.train if got[s] or near_shares(tm, table[s], relatedness)]
        if bad:
            return f"all_unrelated: {', '.join(bad)} share(s) an element (or a near one) with the target"
    return None


