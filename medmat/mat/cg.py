"""The CG generator and training plans, pure functions over the registry.

- For any target: the Related subsets (grouped by the elements they share), the Unrelated ones, a seeded
  Baseline+ draw, and the paper's scaling settings (`relations`, `baseline_plus`, `scaling_sets`).
- `allocate` and `training_plan`: how many samples each training part contributes once an experiment's caps
  (`caps.per_subset`, `caps.total`) and `target_train_samples` are applied, and which ones (a seeded rank).
- `find_hash_leaks` / `check_no_hash_leak` for the hub assembler, which alone sees the pixel hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..registry.cg_models import DEFAULT_SEED, ELEMENTS, CGError, CGSet, Direction, Experiment, Reading, Relatedness
from ..registry.loader import Registry
from ..registry.models import TaskType
from ..registry.triplets import Mat, mat_table, near_shares, read_table, shares

# Which subsets can supply training data: the paper trained only on ID subsets (>= 3,000 training samples);
# detection/segmentation subsets have no ID/OOD role, so all of them can.
TRAINABLE_ROLES = {"classification": ("ID",), "detseg": ("detseg",)}


def subset_kind(reg: Registry, sid: str) -> str:
    """classification or detseg: the two pools a training set (and its Baseline+) draws from."""
    tt = reg.subsets[sid].task_type
    return "detseg" if tt in (TaskType.detection, TaskType.segmentation) else "classification"


def trainable(reg: Registry, sid: str) -> bool:
    return reg.subsets[sid].role in TRAINABLE_ROLES[subset_kind(reg, sid)]


@dataclass
class Relations:
    """Every other subset of a pool, sorted into Related (by shared elements) and Unrelated."""

    target: str
    mat: Mat
    related: dict[str, tuple[str, ...]]  # subset -> shared elements
    unrelated: list[str]
    near: dict[str, tuple[str, ...]]  # unrelated by key, but near on these elements

    def groups(self) -> list[tuple[tuple[str, ...], list[str]]]:
        """Related subsets grouped by the exact set of elements they share: pairs first, then single elements."""
        order = sorted({s for s in self.related.values()}, key=lambda s: (-len(s), [ELEMENTS.index(e) for e in s]))
        return [(s, sorted(k for k, v in self.related.items() if v == s)) for s in order]

    def strictly_unrelated(self) -> list[str]:
        """Unrelated and not near: what an unrelated control may use."""
        return [s for s in self.unrelated if s not in self.near]


def _read(reg: Registry, relatedness: Relatedness | None, reading: Reading | None):
    relatedness = relatedness or Relatedness()
    if reading is not None and not reading.near:
        relatedness = Relatedness()  # the paper's counts use exact elements only
    return read_table(mat_table(reg), reading), relatedness


def relations(reg: Registry, target: str, relatedness: Relatedness | None = None,
              pool: Iterable[str] | None = None, reading: Reading | None = None) -> Relations:
    """Related and Unrelated subsets for `target` among `pool` (default: every other subset), with the MAT table
    as `reading` (the paper's task elements for one family of experiments) reads it."""
    table, relatedness = _read(reg, relatedness, reading)
    if target not in table:
        raise CGError(f"subset {target!r} does not exist; choose one of {', '.join(table)}")
    tm = table[target]
    related, unrelated, near = {}, [], {}
    for sid in sorted(set(pool) if pool is not None else table):
        if sid == target:
            continue
        if sid not in table:
            raise CGError(f"subset {sid!r} in the pool does not exist")
        shared = shares(tm, table[sid])
        if shared:
            related[sid] = shared
        else:
            unrelated.append(sid)
            close = near_shares(tm, table[sid], relatedness)
            if close:
                near[sid] = close
    return Relations(target, tm, related, unrelated, near)


def _rank(seed: int, target: str, sid: str) -> str:
    # A hash rank instead of random.sample: independent of candidate order and of the Python version.
    return hashlib.sha256(f"medmat-cg:{seed}:{target}:{sid}".encode()).hexdigest()


def baseline_plus(reg: Registry, target: str, train: Iterable[str], seed: int = DEFAULT_SEED,
                  relatedness: Relatedness | None = None) -> list[str]:
    """Unrelated subsets sized like the related training set: one per train subset, of the same kind
    (classification or det/seg) where the pool allows, from trainable subsets sharing no (or near) element."""
    wanted: dict[str, int] = {}
    for sid in train:
        wanted[subset_kind(reg, sid)] = wanted.get(subset_kind(reg, sid), 0) + 1
    return draw_unrelated(reg, target, wanted, seed, relatedness)


def draw_unrelated(reg: Registry, target: str, wanted: Mapping[str, int], seed: int = DEFAULT_SEED,
                   relatedness: Relatedness | None = None) -> list[str]:
    """`wanted[kind]` trainable subsets of each kind unrelated to `target`, chosen by a seeded hash rank."""
    rel = relations(reg, target, relatedness, pool=[s for s in reg.subsets if trainable(reg, s)])
    candidates = sorted(rel.strictly_unrelated(), key=lambda s: _rank(seed, target, s))
    chosen: list[str] = []
    for kind in sorted(wanted):
        same = [s for s in candidates if subset_kind(reg, s) == kind and s not in chosen]
        chosen += same[: wanted[kind]]
    # Too few of a kind (no det/seg subset is unrelated to a det/seg target): fill from the rest, in rank order.
    needed = sum(wanted.values())
    chosen += [s for s in candidates if s not in chosen][: needed - len(chosen)]
    if len(chosen) < needed:
        raise CGError(f"only {len(chosen)} trainable subsets are unrelated to {target}; Baseline+ needs {needed}")
    return sorted(chosen)


SCALING = (Direction.all_data, Direction.all_related, Direction.all_unrelated, Direction.related_without_modality,
           Direction.related_without_area, Direction.related_without_task)


def scaling_sets(reg: Registry, target: str, relatedness: Relatedness | None = None,
                 reading: Reading | None = None) -> dict[Direction, list[str]]:
    """The paper's scaling settings for `target` over the trainable subsets of the target's kind."""
    kind = subset_kind(reg, target)
    pool = [s for s in reg.subsets if trainable(reg, s) and subset_kind(reg, s) == kind]
    rel = relations(reg, target, relatedness, pool, reading)
    table, relatedness = _read(reg, relatedness, reading)

    def without(element: str) -> list[str]:
        return sorted(s for s, shared in rel.related.items()
                      if element not in shared and element not in near_shares(rel.mat, table[s], relatedness))

    return {
        Direction.all_data: sorted(s for s in pool if s != target),
        Direction.all_related: sorted(rel.related),
        Direction.all_unrelated: rel.strictly_unrelated(),
        Direction.related_without_modality: without("modality"),
        Direction.related_without_area: without("area"),
        Direction.related_without_task: without("task"),
    }


def allocate(available: Mapping[str, int], per_subset: int | None = None, total: int | None = None) -> dict[str, int]:
    """How many samples to take from each subset: at most `per_subset` each and `total` in all, in equal shares
    (water-filling: what a small subset cannot give goes to the others). Deterministic; ties go to lower ids."""
    take = {s: min(n, per_subset) if per_subset is not None else n for s, n in sorted(available.items())}
    if total is None or sum(take.values()) <= total:
        return take
    out = dict.fromkeys(take, 0)
    left, open_ = total, sorted(take)
    while left > 0 and open_:
        share, extra = divmod(left, len(open_))
        for i, sid in enumerate(open_):
            give = min(take[sid] - out[sid], share + (1 if i < extra else 0))
            out[sid] += give
            left -= give
        open_ = [s for s in open_ if out[s] < take[s]]
    return out


# --- invariants ----------------------------------------------------------------------------------


def find_hash_leaks(train: Mapping[str, Iterable[str]], test: Iterable[str]) -> dict[str, list[str]]:
    """For each training part (a subset id, or e.g. 'target-train'), the `pixel_sha256` values it shares with the
    target's test set, sorted; parts without leaks are left out. Streams the training hashes."""
    test_set = {h.lower() for h in test}
    leaks = {}
    for part, hashes in train.items():
        hit = sorted({h.lower() for h in hashes if h.lower() in test_set})
        if hit:
            leaks[part] = hit
    return dict(sorted(leaks.items()))


class HashLeakError(CGError):
    pass


def check_no_hash_leak(experiment_id: str, train: Mapping[str, Iterable[str]], test: Iterable[str]) -> None:
    """Raise HashLeakError naming each training part that holds an image of the target's test set."""
    leaks = find_hash_leaks(train, test)
    if leaks:
        parts = "; ".join(f"{p}: {len(h)} image(s), e.g. {', '.join(x[:12] for x in h[:3])}" for p, h in leaks.items())
        raise HashLeakError(f"cg-{experiment_id}: training images also in the target's test set ({parts}). "
                            "Fix: drop these hashes from the training side (or rebuild the splits so duplicates stay "
                            "on one side) and build again.")




def get_experiment(cg: CGSet, name: str) -> Experiment:
    """An experiment by id or config name (`cg-<id>`)."""
    key = name.removeprefix("cg-")
    if key not in cg.experiments:
        raise CGError(f"no CG experiment {name!r}; run `medmat cg list` (e.g. {', '.join(list(cg.experiments)[:4])})")
    return cg.experiments[key]


# --- training plans: caps and target data ---------------------------------------------------------

TARGET_PART = "target"  # the part of a data-limited training set drawn from the target's own train split


def training_plan(exp: Experiment, available: Mapping[str, int]) -> dict[str, int]:
    """Samples each training part contributes, given how many each part holds (`available`, keyed by train subset
    id and, for data-limited settings, TARGET_PART).

    The related subsets share `caps.per_subset` and `caps.total` by water-filling (`allocate`); the target part
    adds exactly `target_train_samples` on top, as the paper's data-limited settings do (§5: "the same amount of
    target data, with or without related data"). Raises CGError when the target part holds too few samples."""
    plan = allocate({s: available.get(s, 0) for s in exp.train}, exp.caps.per_subset, exp.caps.total)
    if exp.caps.exact and exp.caps.total is not None and sum(plan.values()) < exp.caps.total:
        raise CGError(f"cg-{exp.id} holds its volume at {exp.caps.total} samples (as the paper does) but "
                      f"{' + '.join(exp.train)} give only {sum(plan.values())} ({plan}); build the full split of these "
                      f"subsets (caps.split {exp.caps.split!r}) or add data")
    if exp.target_train_samples:
        have = available.get(TARGET_PART, 0)
        if have < exp.target_train_samples:
            raise CGError(f"cg-{exp.id} needs {exp.target_train_samples} samples of subset {exp.target}'s train "
                          f"split and the data holds {have}; build more of it or lower target_train_samples")
        plan[TARGET_PART] = exp.target_train_samples
    return plan


def sample_rank(seed: int, experiment_id: str, sample_id: str) -> str:
    """The seeded rank that decides which samples a capped part keeps: independent of row order and workers."""
    return hashlib.sha256(f"medmat-cg-sample:{seed}:{experiment_id}:{sample_id}".encode()).hexdigest()


def select_training_ids(exp: Experiment, ids_by_part: Mapping[str, Iterable[str]],
                        seed: int = DEFAULT_SEED) -> dict[str, list[str]]:
    """The sample ids each part keeps under `training_plan`: the lowest `sample_rank` values, sorted by id."""
    ids = {part: sorted(set(v)) for part, v in ids_by_part.items()}
    plan = training_plan(exp, {part: len(v) for part, v in ids.items()})
    return {part: sorted(sorted(ids.get(part, []), key=lambda i: sample_rank(seed, exp.id, i))[:n])
            for part, n in plan.items()}
