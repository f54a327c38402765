"""The CG invariants `medmat validate` checks: subsets exist, the target is never trained on, Baseline+ shares
no (near) element with the target, direction types match what the train subsets share."""

from __future__ import annotations

import random

from .cg_models import DEFAULT_SEED, ELEMENTS, RELATEDNESS_FILE, CGSet, Direction, Experiment, Kind, TreatAs, load_cg
from .loader import Registry, _display
from .models import TaskType
from .problems import Problem
from .triplets import direction_problem, effective_table, mat_table, near_shares, read_table, shares

# Table 3's direction types by row (the paper's segments A-D), which the data-limited selection rule works within.
TABLE3_SEGMENTS = {"fixed_modality": range(1, 15), "fixed_area": range(15, 19), "fixed_task": range(19, 31),
                   "modality_area_pair": range(31, 44)}


def id_pool(reg: Registry) -> list[str]:
    """The paper's 25 ID classification subsets (Table 1): those that train."""
    return sorted(s for s, sub in reg.subsets.items() if sub.role == "ID" and sub.task_type not in
                  (TaskType.detection, TaskType.segmentation))


def reading_counts(reg: Registry, cg: CGSet, name: str, target: str) -> tuple[int, int]:
    """(related, unrelated) ID subsets of `target` as reading `name` reads the MAT table (exact elements)."""
    table = read_table(mat_table(reg), cg.relatedness.reading(name))
    others = [s for s in id_pool(reg) if s != target]
    related = sum(1 for s in others if shares(table[target], table[s]))
    return related, len(others) - related


def table3_row(exp: Experiment) -> int | None:
    ref = exp.paper.reference if exp.paper else ""
    return int(ref.rsplit(" ", 1)[-1]) if exp.kind is Kind.two_source and ref.startswith("Table 3, row ") else None


def data_limited_rows(cg: CGSet, seed: int = DEFAULT_SEED) -> dict[str, dict[str, dict]]:
    """The paper's selection of Table 3 rows for the data-limited curves, per section and direction type.

    §5.1 (no target data): the CG-helps rows whose Trained beats both Baseline and Baseline+ by >= 10 points;
    §5.2 (limited target data): the rows where CG does not help. "If multiple combinations meet the criteria, a random
    seed of 42 was used": `random.Random(seed).choice` over the candidates in row order (the paper does not say
    which generator; see docs/cg.md). Returns {section: {direction: {"candidates": [...], "chosen": id}}}."""
    rows = {table3_row(e): e for e in cg.experiments.values() if table3_row(e)}
    out: dict[str, dict[str, dict]] = {"5.1": {}, "5.2": {}}
    for direction, span in TABLE3_SEGMENTS.items():
        in_seg = [rows[r] for r in span if r in rows]
        first = [e.id for e in in_seg if e.paper.helps and e.paper.trained is not None and e.paper.trained - max(
            e.paper.baseline or 0, e.paper.baseline_plus or 0) >= 10]
        second = [e.id for e in in_seg if e.paper.helps is False]
        for section, cands in (("5.1", first), ("5.2", second)):
            if cands:
                out[section][direction] = {"candidates": cands, "chosen": random.Random(seed).choice(cands)}
    return out

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
        if exp.target in exp.train and exp.kind is not Kind.pilot:
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
        if exp.target_train_samples and exp.kind not in (Kind.data_limited, Kind.cls_det):
            problem("target_train_samples", f"is {exp.target_train_samples} in a {exp.kind.value} experiment",
                    "only data-limited settings (and the paper's detection targets) train on the target; set it to 0")
        if exp.reading and cg.relatedness.reading(exp.reading) is None:
            problem("reading", f"names no reading of {rshown}",
                    f"use one of {[r.name for r in cg.relatedness.readings]} or remove it")
            continue
        found.extend(_kind_problems(reg, cg, exp, problem))
        if exp.caps.total is not None and exp.caps.total == 0 and exp.train:
            problem("caps.total", "is 0 but train subsets are listed", "remove the train subsets or raise the cap")

        table = effective_table(reg, exp, cg.relatedness)
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


def _kind_problems(reg: Registry, cg: CGSet, exp: Experiment, problem) -> list[Problem]:
    """Pilot, derived experiments (backbones, repeats, few-shot, data-limited), constant volumes."""
    ids = id_pool(reg)
    if exp.direction is Direction.single_task and exp.train != [exp.target]:
        problem("train", f"single-task trains on the target alone, not {exp.train}", f"set train: ['{exp.target}']")
    if exp.direction is Direction.multi_task and sorted(exp.train) != ids:
        problem("train", f"multi-task trains on every ID subset ({len(ids)}); this lists {len(exp.train)}",
                f"set train to {ids}")
    if exp.kind is Kind.pilot and exp.direction not in (Direction.single_task, Direction.multi_task):
        problem("direction", f"a pilot experiment is single_task or multi_task, not {exp.direction.value}",
                "fix `direction`")
    if exp.kind is not Kind.pilot and exp.direction in (Direction.single_task, Direction.multi_task):
        problem("direction", f"{exp.direction.value} belongs to the pilot", "move it to pilot.yaml")
    if exp.kind is Kind.repeats and exp.repeats < 2:
        problem("repeats", f"is {exp.repeats} in a repeats experiment", "set repeats: 3 (Table 9)")
    if exp.kind is Kind.few_shot and not exp.shots:
        problem("shots", "is empty in a few-shot experiment", "list the shots per label, e.g. [0, 2, 3, 4]")
    if exp.shots and exp.kind is not Kind.few_shot:
        problem("shots", f"is set in a {exp.kind.value} experiment", "only few-shot experiments prompt with shots")
    share = exp.shares_training_with
    if share:
        other = cg.experiments.get(share)
        if other is None and cg.unreadable:
            pass
        elif other is None or other.shares_training_with not in (None, share):
            problem("shares_training_with", f"{share!r} is no experiment that trains", "name the group's first one")
        elif sorted(other.train) != sorted(exp.train) or other.caps != exp.caps:
            problem("shares_training_with", f"{share} trains on other data or caps", "share only identical training")
    src = cg.experiments.get(exp.derived_from) if exp.derived_from else None
    if exp.derived_from and src is None and not cg.unreadable:  # else it may sit in the unreadable file
        problem("derived_from", f"{exp.derived_from!r} is no experiment", "name a two-source row, e.g. two-05")
    if src is not None:
        if src.target != exp.target:
            problem("target", f"is {exp.target} but {src.id} targets {src.target}", f"set target: '{src.target}'")
        if exp.arm == "related" and exp.direction is not Direction.target_only and sorted(exp.train) != sorted(
                src.train):
            problem("train", f"differs from {src.id}'s {src.train}", f"re-run {src.id}'s pair: {src.train}")
        bp = src.controls.baseline_plus
        if exp.arm == "unrelated" and bp and sorted(exp.train) != sorted(bp.subsets):
            problem("train", f"the Unrelated arm differs from {src.id}'s Baseline+ {bp.subsets}",
                    f"use {bp.subsets}")
        if exp.arm == "unrelated" and exp.direction is not Direction.all_unrelated:
            problem("direction", "an Unrelated arm is all_unrelated", "set direction: all_unrelated")
    if exp.kind is Kind.data_limited and exp.origin == "paper" and not cg.unreadable:
        picks = data_limited_rows(cg)
        chosen = {v["chosen"] for sec in picks.values() for v in sec.values()}
        if exp.derived_from not in chosen:
            problem("derived_from", f"{exp.derived_from} is not a row the paper's selection rule picks "
                    f"({sorted(chosen)})", "derive from the row `data_limited_rows` chooses (docs/cg.md)")
    if exp.answer != "choice" and reg.subsets[exp.target].task_type not in (TaskType.detection,
                                                                            TaskType.segmentation):
        problem("answer", f"{exp.answer} answers need a detection/segmentation target; {exp.target} classifies",
                "set answer: choice")
    caps = exp.caps
    if caps.exact:
        if caps.total is None:
            problem("caps.exact", "holds no total constant", "set caps.total")
        elif caps.per_subset is not None and caps.per_subset * len(exp.train) < caps.total:
            problem("caps.per_subset", f"{caps.per_subset} x {len(exp.train)} subsets cannot reach the constant "
                    f"{caps.total}", "set per_subset: null and split: full (the paper holds the volume constant)")
    if exp.kind is Kind.scaling:
        volumes = {e.caps.total for e in cg.experiments.values() if e.kind is Kind.scaling and e.target == exp.target}
        if len(volumes) > 1 or not caps.exact:
            problem("caps", f"scaling volumes for {exp.target} are {sorted(v or 0 for v in volumes)}, exact "
                    f"{caps.exact}", "the paper holds 15,000 constant: caps {total: 15000, exact: true}")
    return []


def check_readings(reg: Registry, cg: CGSet) -> list[Problem]:
    """Each reading names vocabulary task elements and reproduces the paper's Related:Unrelated counts."""
    shown = _display(cg.root / RELATEDNESS_FILE, cg.root.parent)
    found = []
    for i, r in enumerate(cg.relatedness.readings):
        for sid, task in r.task.items():
            if sid not in reg.subsets:
                found.append(Problem(shown, f"readings[{i}].task", f"subset {sid!r} does not exist", "fix the id"))
            if task not in reg.vocabulary.task_elements:
                found.append(Problem(shown, f"readings[{i}].task.{sid}", f"{task!r} is not a task element",
                                     f"use one of {reg.vocabulary.task_elements}"))
        for target, want in r.expected.items():
            if target in reg.subsets:
                got = reading_counts(reg, cg, r.name, target)
                if got != tuple(want):
                    found.append(Problem(shown, f"readings[{i}].expected.{target}", f"reading {r.name} gives "
                                         f"{got[0]}:{got[1]} Related:Unrelated for {target}, the paper states "
                                         f"{want[0]}:{want[1]}", "fix the reading's task elements"))
    return found


def check_cg_manifests(reg: Registry) -> list[Problem]:
    """Load `<manifests>/cg/` beside the registry and check it (called by `medmat.registry.validate`)."""
    cg, problems = load_cg(reg.root)
    return problems + check_cg(reg, cg) + (check_readings(reg, cg) if reg.vocabulary else [])


