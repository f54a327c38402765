"""Compositional-generalisation (CG) experiments as data and as code.

- Typed manifests (`manifests/cg/*.yaml`): every experiment as explicit subset lists, with its direction type,
  caps, controls and the paper's reported numbers; `load_cg` reads them, collecting problems.
- A generator over the registry's MAT table: for any target, the Related subsets (grouped by the elements they
  share), the Unrelated ones, and a seeded Baseline+ draw (`relations`, `baseline_plus`, `scaling_sets`).
- The invariants `medmat validate` checks (`check_cg`), and `find_hash_leaks` / `check_no_hash_leak` for the hub
  builder, which alone sees the pixel hashes.
- The `medmat cg list | show | related` commands (`cg_app`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from itertools import permutations
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .registry.loader import Registry, _display, parse_model
from .registry.models import NonEmptyStr, SubsetId, TaskType
from .registry.problems import Problem

ELEMENTS = ("modality", "area", "task")
# `cg-<id>` is a Hub config name: lowercase slug, so never `<>:/\|?*`, and never the refused name `data`.
ExperimentId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", min_length=2, max_length=60)]
RELATEDNESS_FILE = "relatedness.yaml"
DEFAULT_SEED = 42
# Which subsets can supply training data: the paper trained only on ID subsets (>= 3,000 training samples);
# detection/segmentation subsets have no ID/OOD role, so all of them can.
TRAINABLE_ROLES = {"classification": ("ID",), "detseg": ("detseg",)}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Kind(str, Enum):
    two_source = "two-source"
    three_source = "three-source"
    scaling = "scaling"
    data_limited = "data-limited"
    cls_det = "cls-det"


class Direction(str, Enum):
    """How the training subsets hold the target's elements (checked against the MAT table)."""

    fixed_modality = "fixed_modality"  # every train subset shares the modality; together they hold A and T
    fixed_area = "fixed_area"
    fixed_task = "fixed_task"
    modality_area_pair = "modality_area_pair"  # one train subset shares M and A; the others bring T
    modality_task_pair = "modality_task_pair"
    area_task_pair = "area_task_pair"
    one_element_each = "one_element_each"  # three subsets, one element from each
    all_data = "all_data"  # every trainable subset but the target
    all_related = "all_related"  # every trainable subset sharing at least one element
    all_unrelated = "all_unrelated"  # every trainable subset sharing none (near elements count as shared)
    related_without_modality = "related_without_modality"  # related, none sharing the modality
    related_without_area = "related_without_area"
    related_without_task = "related_without_task"
    target_only = "target_only"  # no related data; only the target's own training samples (data-limited)


FIXED = {Direction.fixed_modality: "modality", Direction.fixed_area: "area", Direction.fixed_task: "task"}
PAIRS = {Direction.modality_area_pair: ("modality", "area"), Direction.modality_task_pair: ("modality", "task"),
         Direction.area_task_pair: ("area", "task")}
WITHOUT = {Direction.related_without_modality: "modality", Direction.related_without_area: "area",
           Direction.related_without_task: "task"}


# --- manifests -----------------------------------------------------------------------------------


class Caps(Strict):
    split: Literal["paper", "full"] = Field(default="paper", description="which subset split flavour feeds training")
    per_subset: int | None = Field(default=3000, ge=1, description="at most this many samples from each train subset")
    total: int | None = Field(default=None, ge=0, description="at most this many samples in all (equal shares)")


class BaselinePlus(Strict):
    subsets: list[SubsetId] = Field(min_length=1, description="unrelated subsets: share no M, A or T with the target")
    size: Literal["match-train"] = Field(default="match-train",
                                         description="draw as many samples as the related training set has")
    seed: int = DEFAULT_SEED


class Controls(Strict):
    baseline: bool = Field(default=True, description="score the untrained model on the target's test set")
    baseline_plus: BaselinePlus | None = None


class TreatAs(Strict):
    """The paper named a subset by another element in this experiment (its task names are loose)."""

    subset: SubsetId
    modality: str | None = None
    area: str | None = None
    task: str | None = Field(default=None, description="a task element, e.g. Cancer")
    reason: NonEmptyStr


class Alternative(Strict):
    subset: SubsetId = Field(description="the subset we chose")
    instead_of: list[SubsetId] = Field(min_length=1, description="the other candidates the paper's name fits")
    why: NonEmptyStr


class Inference(Strict):
    """How the paper's loose names were mapped to subset numbers, and how sure we are."""

    confidence: Literal["high", "medium", "low"]
    paper_mapping: NonEmptyStr = Field(description="the mapping as transcribed (e.g. `inferred_subset_ids`)")
    alternatives: list[Alternative] = []
    notes: str = ""


class PaperResult(Strict):
    reference: NonEmptyStr = Field(description="where in the paper, e.g. 'Table 3, row 4'")
    names: list[str] = Field(default=[], description="the paper's names for the train subsets and the target")
    direction: str | None = Field(default=None, description="the paper's grouping, when it differs from ours")
    model: str = "LLaVA-1.5-7B"
    metric: Literal["accuracy", "iou"] = "accuracy"
    baseline: float | None = Field(default=None, ge=0, le=100)
    baseline_plus: float | None = Field(default=None, ge=0, le=100)
    trained: float | None = Field(default=None, ge=0, le=100)
    helps: bool | None = None


class Experiment(Strict):
    id: ExperimentId
    kind: Kind
    direction: Direction
    target: SubsetId
    train: list[SubsetId] = Field(description="training subsets; never the target")
    target_train_samples: int = Field(default=0, ge=0, description="samples of the target's own train split "
                                                                    "(data-limited settings only)")
    caps: Caps = Caps()
    controls: Controls = Controls()
    treat_as: list[TreatAs] = []
    origin: Literal["paper", "ours"] = Field(description="paper: the paper ran it; ours: our choice of subsets")
    paper: PaperResult | None = None
    inference: Inference | None = None
    notes: str = ""

    @property
    def config_name(self) -> str:
        return f"cg-{self.id}"


class ExperimentFile(Strict):
    family: Kind
    description: NonEmptyStr
    experiments: list[Experiment] = Field(min_length=1)


class NearGroup(Strict):
    element: Literal["modality", "area", "task"]
    values: list[NonEmptyStr] = Field(min_length=2)
    reason: NonEmptyStr


class Relatedness(Strict):
    """Distinct vocabulary keys that are too close for an *unrelated* control (e.g. lung and chest)."""

    near: list[NearGroup] = []


@dataclass
class CGSet:
    root: Path
    experiments: dict[str, Experiment] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # id -> shown path
    positions: dict[str, int] = field(default_factory=dict)  # id -> index in its file's `experiments`
    relatedness: Relatedness = Relatedness()

    def where(self, exp_id: str, attr: str = "") -> tuple[str, str]:
        """(file, field path) of an experiment's field, for problems."""
        path = f"experiments[{self.positions[exp_id]}]"
        return self.files[exp_id], f"{path}.{attr}" if attr else path


class CGError(ValueError):
    """A CG request that cannot be met; the message says what to do."""


def cg_dir(manifests_root: Path) -> Path:
    return Path(manifests_root) / "cg"


def load_cg(manifests_root: Path) -> tuple[CGSet, list[Problem]]:
    """Read `<manifests>/cg/`; a missing folder is an empty set (a minimal registry has no experiments)."""
    root = Path(manifests_root)
    folder = cg_dir(root)
    cg, problems = CGSet(root=folder), []
    if not folder.is_dir():
        return cg, problems
    near = folder / RELATEDNESS_FILE
    if near.is_file():
        parsed, found = parse_model(Relatedness, near, _display(near, root))
        problems += found
        cg.relatedness = parsed or Relatedness()
    for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
        if path.name == RELATEDNESS_FILE:
            continue
        shown = _display(path, root)
        parsed, found = parse_model(ExperimentFile, path, shown)
        problems += found
        if parsed is None:
            continue
        for i, exp in enumerate(parsed.experiments):
            if exp.kind is not parsed.family:
                problems.append(Problem(shown, f"experiments[{i}].kind", f"{exp.id!r} is {exp.kind.value!r} in a "
                                        f"{parsed.family.value!r} file", "move it to its family's file or fix `kind`"))
            if exp.id in cg.experiments:
                problems.append(Problem(shown, f"experiments[{i}].id", f"{exp.id!r} is already used by "
                                        f"{cg.files[exp.id]}", "give each experiment its own id"))
                continue
            cg.experiments[exp.id] = exp
            cg.files[exp.id] = shown
            cg.positions[exp.id] = i
    return cg, problems


# --- the MAT table and the generator -------------------------------------------------------------


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


def relations(reg: Registry, target: str, relatedness: Relatedness | None = None,
              pool: Iterable[str] | None = None) -> Relations:
    """Related and Unrelated subsets for `target` among `pool` (default: every other subset)."""
    table = mat_table(reg)
    if target not in table:
        raise CGError(f"subset {target!r} does not exist; choose one of {', '.join(table)}")
    relatedness = relatedness or Relatedness()
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


def scaling_sets(reg: Registry, target: str, relatedness: Relatedness | None = None) -> dict[Direction, list[str]]:
    """The paper's scaling settings for `target` over the trainable subsets of the target's kind."""
    relatedness = relatedness or Relatedness()
    kind = subset_kind(reg, target)
    pool = [s for s in reg.subsets if trainable(reg, s) and subset_kind(reg, s) == kind]
    rel = relations(reg, target, relatedness, pool)
    table = mat_table(reg)

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


def effective_table(reg: Registry, exp: Experiment) -> dict[str, Mat]:
    """The MAT table with this experiment's `treat_as` overrides applied."""
    table = mat_table(reg)
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

    d = exp.direction
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


def _vocab_problems(reg: Registry, t: TreatAs) -> list[tuple[str, str]]:
    vocab, bad = reg.vocabulary, []
    if t.modality and vocab.modality(t.modality) is None:
        bad.append(("modality", f"{t.modality!r} is not a modality of the vocabulary"))
    if t.area and vocab.area(t.area) is None:
        bad.append(("area", f"{t.area!r} is not an area of the vocabulary"))
    if t.task and t.task not in vocab.task_elements:
        bad.append(("task", f"{t.task!r} is not a task element; use one of {vocab.task_elements}"))
    if not (t.modality or t.area or t.task):
        bad.append(("", "changes nothing"))
    return bad


def check_cg(reg: Registry, cg: CGSet) -> list[Problem]:
    """The CG invariants: subsets exist; the target is never trained on; Baseline+ shares no (near) element with
    the target; direction types match what the train subsets share; kind-specific fields are consistent."""
    if reg.vocabulary is None:
        return []
    found: list[Problem] = []
    known = set(reg.subsets)
    vocab = reg.vocabulary
    rshown = _display(cg.root / RELATEDNESS_FILE, cg.root.parent)
    for i, g in enumerate(cg.relatedness.near):
        keys = {"modality": [m.key for m in vocab.modalities], "area": [a.key for a in vocab.areas],
                "task": list(vocab.task_elements)}[g.element]
        for v in g.values:
            if v not in keys:
                found.append(Problem(rshown, f"near[{i}].values", f"{v!r} is not a {g.element} of the vocabulary",
                                     f"use one of {keys}"))
    for exp_id, exp in cg.experiments.items():
        def problem(attr: str, message: str, fix: str) -> None:
            file, path = cg.where(exp_id, attr)
            found.append(Problem(file, path, f"{exp_id}: {message}", fix))

        bp = exp.controls.baseline_plus
        refs = [("target", exp.target)] + [(f"train[{j}]", s) for j, s in enumerate(exp.train)]
        refs += [(f"controls.baseline_plus.subsets[{j}]", s) for j, s in enumerate(bp.subsets if bp else [])]
        refs += [(f"treat_as[{j}].subset", t.subset) for j, t in enumerate(exp.treat_as)]
        missing = [(attr, s) for attr, s in refs if s not in known]
        for attr, s in missing:
            problem(attr, f"subset {s!r} does not exist", f"use a subset id of manifests/subsets ({min(known)}-"
                    f"{max(known)})" if known else "add the subset manifests")
        if missing:
            continue
        if exp.target in exp.train:
            problem("train", f"the target {exp.target} is in its own training set",
                    "remove it from `train` (data-limited settings add target data via target_train_samples)")
        dupes = sorted({s for s in exp.train if exp.train.count(s) > 1})
        if dupes:
            problem("train", f"lists {dupes} more than once", "list each subset once")
        for j, t in enumerate(exp.treat_as):
            for attr, message in _vocab_problems(reg, t):
                problem(f"treat_as[{j}]" + (f".{attr}" if attr else ""), message,
                        "name a vocabulary key, or remove the entry")
            if t.subset != exp.target and t.subset not in exp.train:
                problem(f"treat_as[{j}].subset", f"{t.subset} is neither the target nor a train subset",
                        "treat_as only re-reads subsets of this experiment")
        if exp.target_train_samples and exp.kind is not Kind.data_limited:
            problem("target_train_samples", f"is {exp.target_train_samples} in a {exp.kind.value} experiment",
                    "only data-limited settings train on the target; set it to 0")
        if exp.caps.total is not None and exp.caps.total == 0 and exp.train:
            problem("caps.total", "is 0 but train subsets are listed", "remove the train subsets or raise the cap")

        table = effective_table(reg, exp)
        why = direction_problem(exp, table, cg.relatedness)
        if why:
            problem("direction", why, "pick the direction the shared elements support (see docs/cg.md), or "
                    "correct `train`; record a loose paper name with `treat_as`")

        if bp:
            plain = mat_table(reg)
            if exp.target in bp.subsets:
                problem("controls.baseline_plus.subsets", f"contains the target {exp.target}",
                        "Baseline+ uses unrelated subsets only")
            for j, s in enumerate(bp.subsets):
                if s == exp.target:
                    continue
                hits = set()
                for tab in (plain, table):  # unrelated both as the registry and as this experiment reads them
                    hits |= set(shares(tab[exp.target], tab[s])) | set(near_shares(tab[exp.target], tab[s],
                                                                                   cg.relatedness))
                if hits:
                    shared = ", ".join(f"{e} {plain[s].get(e)!r}" for e in ELEMENTS if e in hits)
                    problem(f"controls.baseline_plus.subsets[{j}]", f"Baseline+ subset {s} shares {shared} with the "
                            f"target {exp.target} ({plain[exp.target]})",
                            f"replace it; `medmat cg related {exp.target}` lists the unrelated subsets")
            if len(bp.subsets) != len(exp.train):
                problem("controls.baseline_plus.subsets", f"has {len(bp.subsets)} subsets for {len(exp.train)} "
                        "train subsets", "draw one unrelated subset per train subset (see `baseline_plus`)")
    return found


def check_cg_manifests(reg: Registry) -> list[Problem]:
    """Load `<manifests>/cg/` beside the registry and check it (called by `medmat.registry.validate`)."""
    cg, problems = load_cg(reg.root)
    return problems + check_cg(reg, cg)


def load_experiments(manifests: Path | None = None) -> tuple[Registry, CGSet]:
    """The validated registry and CG set, or CGError listing every problem (for the trainer and hub builder)."""
    from .registry import validate

    reg, problems = validate(manifests)
    if problems:
        raise CGError(f"{len(problems)} problem(s) in the manifests:\n" + "\n".join(map(str, problems)))
    cg, _ = load_cg(reg.root)
    return reg, cg


def get_experiment(cg: CGSet, name: str) -> Experiment:
    """An experiment by id or config name (`cg-<id>`)."""
    key = name.removeprefix("cg-")
    if key not in cg.experiments:
        raise CGError(f"no CG experiment {name!r}; run `medmat cg list` (e.g. {', '.join(list(cg.experiments)[:4])})")
    return cg.experiments[key]


# --- image-hash leak check (for the hub builder) -------------------------------------------------


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


# --- command line --------------------------------------------------------------------------------

cg_app = typer.Typer(help="Compositional-generalisation experiments: list, show, and the related subsets of a target.",
                     no_args_is_help=True, add_completion=False)
ManifestsOpt = Annotated[
    Optional[Path], typer.Option("--manifests", help="manifests folder (default: the one shipped with medmat)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def _load(manifests: Path | None) -> tuple[Registry, CGSet]:
    try:
        return load_experiments(manifests)
    except CGError as exc:
        typer.echo(f"{str(exc).splitlines()[0]}; run `medmat validate` for details", err=True)
        raise typer.Exit(1) from None


def _numbers(p: PaperResult | None) -> str:
    if p is None:
        return "-"
    fmt = lambda v: "?" if v is None else f"{v:g}"  # noqa: E731
    return f"{fmt(p.baseline)} / {fmt(p.baseline_plus)} / {fmt(p.trained)}"


@cg_app.command("list")
def list_cmd(
    kind: Annotated[Optional[Kind], typer.Option(help="only this family")] = None,
    target: Annotated[Optional[str], typer.Option(help="only experiments on this target subset")] = None,
    as_json: JsonOpt = False,
    manifests: ManifestsOpt = None,
) -> None:
    """List the CG experiments: id, family, direction, train -> target, paper's baseline / baseline+ / trained."""
    _, cg = _load(manifests)
    rows = [e for e in cg.experiments.values()
            if (kind is None or e.kind is kind) and (target is None or e.target == target.zfill(2))]
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json") for e in rows], indent=2))
        return
    typer.echo(f"{len(rows)} experiment(s); paper numbers are baseline / baseline+ / trained (LLaVA-1.5-7B)")
    for e in rows:
        extra = f" +{e.target_train_samples} target" if e.target_train_samples else ""
        typer.echo(f"cg-{e.id:<28} {e.kind.value:<12} {e.direction.value:<24} "
                   f"{' + '.join(e.train) or '-'} -> {e.target}{extra}   {_numbers(e.paper)}")


@cg_app.command("show")
def show_cmd(
    experiment: Annotated[str, typer.Argument(help="an experiment id, e.g. two-04 (or cg-two-04)")],
    as_json: JsonOpt = False,
    manifests: ManifestsOpt = None,
) -> None:
    """Show one experiment: subsets with their triplets, what each shares with the target, controls, paper."""
    reg, cg = _load(manifests)
    try:
        exp = get_experiment(cg, experiment)
    except CGError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(exp.model_dump(mode="json"), indent=2))
        return
    table, plain = effective_table(reg, exp), mat_table(reg)
    tm = table[exp.target]
    out = [f"{exp.config_name}  ({exp.kind.value}, {exp.direction.value}, origin: {exp.origin})",
           f"file: {cg.files[exp.id]}",
           f"target: {exp.target} {reg.subsets[exp.target].name} [{tm}]"]
    for s in exp.train:
        read = " (as read here, see treat_as)" if table[s] != plain[s] else ""
        out.append(f"train:  {s} {reg.subsets[s].name} [{table[s]}]{read}  shares: {_shared_text(tm, table[s])}")
    if exp.target_train_samples:
        out.append(f"target data: {exp.target_train_samples} samples of {exp.target}'s train split")
    caps = exp.caps
    out.append(f"caps: split {caps.split}, per subset {caps.per_subset or 'none'}, total {caps.total or 'none'}")
    bp = exp.controls.baseline_plus
    out.append(f"controls: baseline {'yes' if exp.controls.baseline else 'no'}; Baseline+ "
               + (f"{' + '.join(bp.subsets)} ({bp.size}, seed {bp.seed})" if bp else "none"))
    if bp:
        for s in bp.subsets:
            out.append(f"  baseline+ {s} {reg.subsets[s].name} [{plain[s]}]")
    for t in exp.treat_as:
        changed = ", ".join(f"{e} {getattr(t, e)}" for e in ELEMENTS if getattr(t, e))
        out.append(f"treat {t.subset} as {changed}: {t.reason}")
    if exp.paper:
        p = exp.paper
        out.append(f"paper: {p.reference}; {' + '.join(p.names[:-1])} -> {p.names[-1]}" if p.names
                   else f"paper: {p.reference}")
        out.append(f"  {p.model} {p.metric} (baseline / baseline+ / trained): {_numbers(p)}"
                   + ("" if p.helps is None else f"; CG helps: {'yes' if p.helps else 'no'}")
                   + (f"; paper's direction: {p.direction}" if p.direction else ""))
    if exp.inference:
        inf = exp.inference
        out.append(f"inference ({inf.confidence} confidence): {inf.paper_mapping}")
        for a in inf.alternatives:
            out.append(f"  chose {a.subset} over {', '.join(a.instead_of)}: {a.why}")
        if inf.notes:
            out.append(f"  {inf.notes}")
    if exp.notes:
        out.append(f"notes: {exp.notes}")
    typer.echo("\n".join(out))


def _shared_text(tm: Mat, m: Mat) -> str:
    shared = shares(tm, m)
    return ", ".join(f"{e} {m.get(e)}" for e in shared) or "nothing"


@cg_app.command("related")
def related_cmd(
    subset: Annotated[str, typer.Argument(help="the target subset, e.g. 03")],
    trainable_only: Annotated[bool, typer.Option("--trainable", help="only subsets that can supply training data "
                                                 "(ID classification and det/seg subsets)")] = False,
    seed: Annotated[int, typer.Option(help="seed of the Baseline+ draw")] = DEFAULT_SEED,
    as_json: JsonOpt = False,
    manifests: ManifestsOpt = None,
) -> None:
    """Print the Related subsets (grouped by the element each shares with the target) and the Unrelated ones."""
    reg, cg = _load(manifests)
    target = subset.zfill(2)
    if target not in reg.subsets:
        typer.echo(f"no subset {subset!r}; choose one of {', '.join(sorted(reg.subsets))}", err=True)
        raise typer.Exit(2)
    pool = [s for s in reg.subsets if trainable(reg, s)] if trainable_only else None
    rel = relations(reg, target, cg.relatedness, pool)
    table = mat_table(reg)
    if as_json:
        typer.echo(json.dumps({
            "target": target, "mat": vars(rel.mat),
            "related": {s: {e: table[s].get(e) for e in shared} for s, shared in rel.related.items()},
            "unrelated": rel.unrelated,
            "near": {s: {e: table[s].get(e) for e in close} for s, close in rel.near.items()},
        }, indent=2))
        return

    def line(s: str, note: str) -> str:
        sub = reg.subsets[s]
        return f"    {s}  {str(table[s]):<34} {sub.role:<6} {sub.name}  [{note}]"

    out = [f"target {target}: {reg.subsets[target].name} [{rel.mat}]", "",
           f"Related ({len(rel.related)}): share at least one of modality, area, task element"]
    for shared, members in rel.groups():
        out.append(f"  sharing {' + '.join(f'{e} {rel.mat.get(e)}' for e in shared)}:")
        out += [line(s, "shares " + ", ".join(f"{e} {table[s].get(e)}" for e in shared)) for s in members]
    out += ["", f"Unrelated ({len(rel.unrelated)}): share no element"]
    out += [line(s, "shares nothing" if s not in rel.near else "shares nothing; near: " + ", ".join(
        f"{e} {table[s].get(e)} ~ {rel.mat.get(e)}" for e in rel.near[s]) + " (never used for Baseline+)")
        for s in rel.unrelated]
    try:
        draw = draw_unrelated(reg, target, {subset_kind(reg, target): 2}, seed, cg.relatedness)
        out += ["", f"Baseline+ for two {subset_kind(reg, target)} train subsets (seed {seed}): {' + '.join(draw)}"]
    except CGError as exc:
        out += ["", f"Baseline+: {exc}"]
    typer.echo("\n".join(out))

