"""The CG invariants `medmat validate` checks: subsets exist, the target is never trained on, Baseline+ shares
no (near) element with the target, direction types match what the train subsets share."""

from __future__ import annotations

from .cg_models import ELEMENTS, RELATEDNESS_FILE, CGSet, Kind, TreatAs, load_cg
from .loader import Registry, _display
from .problems import Problem
from .triplets import direction_problem, effective_table, mat_table, near_shares, shares

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


