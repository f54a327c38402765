"""Cross-checks between manifests: the rules no single file can check on its own."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from .loader import Registry
from .models import Redistribution, Source, Subset, TaskType
from .problems import Problem

INSTRUCTIONS_PER_SUBSET = 6
# Issue 15: every source cites where its layout was confirmed, at least its top folders. Off until the last batch
# of evidence blocks lands (then every manifest has one); the lead flips it to True at that merge.
REQUIRE_EVIDENCE = True
# What `evidence[].where` starts with: a URL, or `owner/repo:path` of public code (optionally #L.. and @commit);
# a note may follow.
_WHERE = re.compile(r"^(https?://[^\s/]+\S*|[A-Za-z0-9][\w.-]*/[\w.-]+:\S+)")
MULTI_LABEL = TaskType.multi_label
# Which source task types a subset of each type may take (segmentation masks give boxes, not the reverse).
COMPATIBLE = {
    TaskType.single_label: {TaskType.single_label},
    TaskType.multi_label: {TaskType.multi_label, TaskType.single_label},
    TaskType.detection: {TaskType.detection, TaskType.segmentation},
    TaskType.segmentation: {TaskType.segmentation},
}


def check_registry(reg: Registry) -> list[Problem]:
    problems: list[Problem] = []
    problems += _check_file_names(reg)
    if reg.vocabulary is None or reg.licenses is None:
        return problems  # the rest needs both; their own parse errors are already reported
    problems += _check_vocabulary(reg)
    for source in reg.sources.values():
        problems += _check_source(reg, source)
    problems += _check_upstream_rows(reg)
    for subset in reg.subsets.values():
        problems += _check_subset(reg, subset)
    problems += _check_membership(reg)
    return problems


def _check_file_names(reg: Registry) -> list[Problem]:
    found = []
    for sid, shown in reg.source_files.items():
        if Path(shown).stem != sid:
            found.append(Problem(shown, "id", f"id {sid!r} differs from the file name", f"rename the file to {sid}.yaml"))
    for sid, shown in reg.subset_files.items():
        if not Path(shown).stem.startswith(f"{sid}-"):
            found.append(Problem(shown, "id", f"subset {sid!r} is in a file not named {sid}-<name>.yaml",
                                 f"rename the file to {sid}-<name>.yaml"))
    return found


def _check_vocabulary(reg: Registry) -> list[Problem]:
    vocab, found = reg.vocabulary, []
    shown = str(Path(reg.root.name) / "vocabulary.yaml")
    for name, items in (("modalities", vocab.modalities), ("areas", vocab.areas), ("tasks", vocab.tasks)):
        keys = [i.key for i in items]
        for dupe in sorted({k for k in keys if keys.count(k) > 1}):
            found.append(Problem(shown, name, f"key {dupe!r} is defined twice", "keep one definition"))
    return found


def _check_source(reg: Registry, src: Source) -> list[Problem]:
    vocab, shown, found = reg.vocabulary, reg.source_files[src.id], []
    corrected = {c.field for c in src.corrections}

    if vocab.modality(src.modality) is None:
        found.append(Problem(shown, "modality", f"{src.modality!r} is not in the vocabulary",
                             f"use one of {[m.key for m in vocab.modalities]}"))
    if vocab.area(src.area) is None:
        found.append(Problem(shown, "area", f"{src.area!r} is not in the vocabulary",
                             f"use one of {[a.key for a in vocab.areas]}"))
    if vocab.task(src.task) is None:
        found.append(Problem(shown, "task", f"{src.task!r} is not a task of the vocabulary",
                             "use the `task` key of the subset this source belongs to"))

    # The upstream row's modality/area must agree with ours, or the disagreement must be a recorded correction.
    for attr, normalise in (("modality", vocab.normalise_modality), ("area", vocab.normalise_area)):
        upstream_value = getattr(src.upstream, attr)
        if normalise(upstream_value) != getattr(src, attr) and attr not in corrected:
            found.append(Problem(shown, attr, f"is {getattr(src, attr)!r} but upstream row says {upstream_value!r}",
                                 f"add a `corrections:` entry with field: {attr} explaining the change, "
                                 "or add the spelling to the vocabulary's aliases"))

    if src.upstream.row is None and "upstream.row" not in corrected:
        found.append(Problem(shown, "upstream.row", "has no number",
                             "number the row and add a `corrections:` entry with field: upstream.row"))

    lic = reg.licenses.licenses.get(src.license)
    if lic is None:
        found.append(Problem(shown, "license", f"{src.license!r} is not in licenses.yaml",
                             f"use one of {sorted(reg.licenses.licenses)} or add the license to licenses.yaml"))
    elif src.redistributable and lic.redistribution is Redistribution.forbidden:
        found.append(Problem(shown, "redistributable", f"is true but license {src.license!r} forbids redistribution",
                             "set redistributable: false (users then rebuild pixels from their own download)"))

    for i, ov in enumerate(src.overlaps):
        if ov.source not in reg.sources:
            found.append(Problem(shown, f"overlaps[{i}].source", f"{ov.source!r} is not a known source id",
                                 "name an existing source manifest's id"))
        elif ov.source == src.id:
            found.append(Problem(shown, f"overlaps[{i}].source", "names the source itself", "remove this entry"))

    found += _check_label_coverage(src, shown)
    found += check_evidence(src, shown, required=REQUIRE_EVIDENCE)
    return found


def check_evidence(src: Source, shown: str, required: bool = REQUIRE_EVIDENCE) -> list[Problem]:
    """Each evidence item names a URL or a repository path; with `required`, the block must exist and cover at
    least the top folders (the fact a build fails on first when it is wrong)."""
    found = []
    for i, item in enumerate(src.evidence):
        if item.where.strip().startswith("not found:"):
            if item.strength.value != "unverified":
                found.append(Problem(shown, f"evidence[{i}].strength", "a fact whose `where` says `not found:` "
                                     f"is {item.strength.value!r}", "set strength: unverified, or cite where it was seen"))
            continue
        if not _WHERE.match(item.where.strip()):
            found.append(Problem(shown, f"evidence[{i}].where", f"{item.where!r} is neither a URL nor "
                                 "owner/repo:path", "cite a URL, or public code as owner/repo:path#Lstart-Lend, or "
                                 "write `not found: <what was searched>` for an unverified fact"))
    if not required:
        return found
    if not src.evidence:
        found.append(Problem(shown, "evidence", "has no evidence block: no layout fact is cited",
                             "add `evidence:` items (fact, claim, where, shows, strength); see docs/maintainers.md"))
    elif not any(item.fact.value == "top-folders" for item in src.evidence):
        found.append(Problem(shown, "evidence", "cites no `top-folders` fact",
                             "add an evidence item with fact: top-folders saying where the top folders were seen"))
    return found


def _check_label_coverage(src: Source, shown: str) -> list[Problem]:
    found = []
    vocab = set(src.labels.vocabulary)
    mapped, excluded = set(src.labels.map), set(src.labels.exclude)
    for label in sorted(vocab - mapped - excluded):
        found.append(Problem(shown, "labels.map", f"source label {label!r} is neither mapped nor excluded",
                             f"add `{label}: <subset label>` under labels.map or a reason under labels.exclude"))
    for label in sorted(mapped & excluded):
        found.append(Problem(shown, "labels.exclude", f"source label {label!r} is both mapped and excluded",
                             "keep it in one of labels.map or labels.exclude"))
    for label in sorted((mapped | excluded) - vocab):
        found.append(Problem(shown, "labels.map", f"{label!r} is not in labels.vocabulary",
                             "add it to labels.vocabulary or remove it from the map"))
    return found


def _check_upstream_rows(reg: Registry) -> list[Problem]:
    seen: dict[int, str] = {}
    found = []
    for sid, src in sorted(reg.sources.items(), key=lambda kv: reg.source_files[kv[0]]):
        row = src.upstream.row
        if row is None:
            continue
        if row in seen:
            found.append(Problem(reg.source_files[sid], "upstream.row", f"row {row} is also claimed by {seen[row]}",
                                 "each upstream row has exactly one manifest"))
        else:
            seen[row] = reg.source_files[sid]
    return found


def _check_subset(reg: Registry, sub: Subset) -> list[Problem]:
    vocab, shown, found = reg.vocabulary, reg.subset_files[sub.id], []
    modality, area, task = vocab.modality(sub.modality), vocab.area(sub.area), vocab.task(sub.task)
    if modality is None:
        found.append(Problem(shown, "modality", f"{sub.modality!r} is not in the vocabulary",
                             f"use one of {[m.key for m in vocab.modalities]}"))
    if area is None:
        found.append(Problem(shown, "area", f"{sub.area!r} is not in the vocabulary",
                             f"use one of {[a.key for a in vocab.areas]}"))
    if task is None:
        found.append(Problem(shown, "task", f"{sub.task!r} is not a task of the vocabulary",
                             "add the task to vocabulary.yaml or use an existing key"))

    for other in reg.subsets.values():
        if other.id < sub.id and (other.modality, other.area, other.task) == (sub.modality, sub.area, sub.task):
            found.append(Problem(shown, "task", f"triplet ({sub.modality}, {sub.area}, {sub.task}) is also subset "
                                 f"{other.id}'s", "merge the two subsets or give one a distinct task"))

    for i, sid in enumerate(sub.sources):
        src = reg.sources.get(sid)
        if src is None:
            found.append(Problem(shown, f"sources[{i}]", f"{sid!r} is not a known source id",
                                 f"add manifests/sources/{sid}.yaml or correct the id"))
            continue
        if (src.modality, src.area, src.task) != (sub.modality, sub.area, sub.task):
            found.append(Problem(shown, f"sources[{i}]",
                                 f"{sid!r} has triplet ({src.modality}, {src.area}, {src.task}), the subset has "
                                 f"({sub.modality}, {sub.area}, {sub.task})", "move the source to the subset of its triplet"))
        if src.task_type not in COMPATIBLE[sub.task_type]:
            found.append(Problem(shown, f"sources[{i}]", f"{sid!r} is {src.task_type.value}, which a "
                                 f"{sub.task_type.value} subset cannot take", "check task_type in both manifests"))
        found += _check_label_targets(reg, sub, src)

    rows = sorted(reg.sources[s].upstream.row or 0 for s in sub.sources if s in reg.sources)
    if rows != sorted(sub.paper.source_rows) and "sources" not in {c.field for c in sub.corrections}:
        found.append(Problem(shown, "sources", f"member rows {rows} differ from the paper's {sorted(sub.paper.source_rows)}",
                             "record the change as a `corrections:` entry with field: sources"))

    reached = {lab for s in sub.sources if s in reg.sources for v in reg.sources[s].labels.map.values()
               for lab in ([v] if isinstance(v, str) else v)}
    for label in sub.labels:
        if label not in reached:
            found.append(Problem(shown, "labels", f"{label!r} is reached by no member source's labels.map",
                                 "remove the label or map a source label to it"))

    found += _check_instructions(reg, sub, shown, modality, area)
    found += _check_label_relations(reg, sub, shown)
    return found


@lru_cache(maxsize=8192)
def _words(label: str) -> frozenset[str]:
    return frozenset(w for w in re.split(r"[^a-z0-9]+", label.lower()) if w)


def _check_label_relations(reg: Registry, sub: Subset, shown: str) -> list[Problem]:
    """Relations name real labels and hold together; labels whose names read as related are declared one way or
    the other; no question can be left with a single option."""
    rel, found = sub.label_relations, []
    for label in sorted(rel.labels_named() - set(sub.labels)):
        found.append(Problem(shown, "label_relations", f"{label!r} is not a label of subset {sub.id}",
                             f"use one of the subset's labels: {sub.labels}"))
    for child in rel.parent:
        if child in rel.ancestors(child) or any(child in rel.ancestors(p) for p in rel.ancestors(child)):
            found.append(Problem(shown, f"label_relations.parent.{child}", "the parent chain comes back to itself",
                                 "a label cannot be its own ancestor: remove one link of the cycle"))
    for negation, negated in rel.negations.items():
        if negation == negated:
            found.append(Problem(shown, f"label_relations.negations.{negation}", "a label cannot negate itself",
                                 "name the label it is the negative class of"))
    related = rel.related(sub.labels)
    for pair in rel.distinct:
        for i, a in enumerate(pair):
            for b in pair[i + 1:]:
                if b in related.get(a, ()):
                    found.append(Problem(shown, "label_relations.distinct", f"{a!r} and {b!r} are declared distinct "
                                         "and related", "keep the pair in one of the two"))
    if sub.task_type in (TaskType.single_label, MULTI_LABEL):
        declared = {frozenset(p) for group in rel.distinct for p in _pairs(group)}
        declared |= {frozenset(p) for p in rel.negations.items()}
        for a in sub.labels:
            for b in sub.labels:
                if a != b and _words(a) < _words(b) and b not in related[a] and frozenset((a, b)) not in declared:
                    found.append(Problem(shown, "label_relations", f"{b!r} reads as a kind of {a!r}, but no relation "
                                         "says whether they can both be right",
                                         f"add `parent: {{{b}: {a}}}`, an overlap or a negation, or list "
                                         f"[{a}, {b}] under label_relations.distinct"))
    if sub.task_type is TaskType.single_label:
        pools = {"the subset": list(sub.labels)}
        if sub.distractors == "source":
            pools = {f"source {s}": sorted(_mapped(reg.sources[s])) for s in sub.sources if s in reg.sources}
        for where, pool in pools.items():
            for label in pool:
                if label in related and not [x for x in pool if x != label and x not in related[label]]:
                    found.append(Problem(shown, "label_relations", f"a question answered {label!r} ({where}) would "
                                         "have no distractor: every other label it could meet is related to it",
                                         "check the relations (or use distractors: subset)"))
    return found


def _pairs(group: list[str]) -> list[tuple[str, str]]:
    return [(a, b) for i, a in enumerate(group) for b in group[i + 1:]]


def _mapped(src: Source) -> set[str]:
    return {t for v in src.labels.map.values() for t in ([v] if isinstance(v, str) else v)}


def _check_label_targets(reg: Registry, sub: Subset, src: Source) -> list[Problem]:
    shown, found = reg.source_files[src.id], []
    for source_label, target in src.labels.map.items():
        targets = [target] if isinstance(target, str) else target
        if not targets and sub.task_type is not MULTI_LABEL:
            found.append(Problem(shown, f"labels.map.{source_label}", "maps to no label, which only a multi-label "
                                 f"subset allows (subset {sub.id} is {sub.task_type.value})",
                                 "map it to one subset label or move it to labels.exclude"))
        for t in targets:
            if t not in sub.labels:
                found.append(Problem(shown, f"labels.map.{source_label}", f"{t!r} is not a label of subset {sub.id}",
                                     f"use one of {sub.labels} or add it to {reg.subset_files[sub.id]}"))
    return found


def _check_instructions(reg: Registry, sub: Subset, shown: str, modality, area) -> list[Problem]:
    found = []
    texts = sub.instructions
    if len(texts) != INSTRUCTIONS_PER_SUBSET:
        found.append(Problem(shown, "instructions", f"has {len(texts)} instructions",
                             f"write exactly {INSTRUCTIONS_PER_SUBSET}"))
    normalised = [" ".join(t.lower().split()) for t in texts]
    if len(set(normalised)) != len(normalised):
        found.append(Problem(shown, "instructions", "repeats an instruction", "make all six distinct"))
    for i, text in enumerate(texts):
        if modality is not None and not modality.mentioned_in(text):
            found.append(Problem(shown, f"instructions[{i}]", f"does not name the modality {sub.modality}",
                                 f"use one of the words {modality.terms}"))
        if area is not None and not area.mentioned_in(text):
            found.append(Problem(shown, f"instructions[{i}]", f"does not name the area {sub.area}",
                                 f"use one of the words {area.terms}"))
        if sub.task_type is MULTI_LABEL and not ("comma" in text.lower() and "normal" in text.lower()):
            found.append(Problem(shown, f"instructions[{i}]", "is for a multi-label subset but does not ask for a "
                                 "comma-separated list with 'Normal' when nothing is present",
                                 "say: list all ..., separated by commas; answer 'Normal' if none"))
    return found


def _check_membership(reg: Registry) -> list[Problem]:
    """Every source sits in exactly one subset: the one whose triplet it has."""
    found = []
    by_triplet = {(s.modality, s.area, s.task): s for s in reg.subsets.values()}
    for sid, src in reg.sources.items():
        shown = reg.source_files[sid]
        homes = reg.subset_of(sid)
        allowed = by_triplet.get((src.modality, src.area, src.task))
        if not homes:
            fix = (f"add {sid!r} to the sources of subset {allowed.id} ({reg.subset_files[allowed.id]})"
                   if allowed else "create a subset for its triplet or correct modality/area/task")
            found.append(Problem(shown, "task", "the source is in no subset", fix))
        elif len(homes) > 1:
            found.append(Problem(shown, "task", f"the source is in subsets {[h.id for h in homes]}",
                                 "a source belongs to exactly one subset: remove it from the others"))
    return found
