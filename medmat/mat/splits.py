"""Leak-free train/test splits of a subset, and the paper's capped, label-balanced flavour.

The rules are written out, with the paper's wording beside each, in docs/splits.md. In short:

1. Linking (medmat.mat.linking): group, exact-pixel and near-pixel links, near-duplicate clusters bounded by
   NEAR_COMPONENT_CAP; each component goes to one side only.
2. Sides. Each sample votes with its source's own split: a source that publishes a test split maps test -> test
   and everything else (train, validation) -> train; a source that publishes only train + validation maps
   validation -> test; a source whose built samples carry no test or validation split (no official split, or an
   official test set without labels, so not built) casts no vote. A component goes to test if any member votes
   test, to train if any votes train, else to test with probability 1/10 (a hash of the seed and the component's
   smallest id: 9:1, independent of order, group-safe).
3. Paper flavour. Train is capped at 3,000 samples, label-balanced as far as possible (round-robin over labels).
   Test is strictly label-balanced and as large as possible: n per label for every label with at least n test
   samples, n <= 50 chosen to maximise n x (labels kept), at least two labels kept where two exist; a label with
   too few test samples is left out of the paper test set rather than shrinking every other label. Multi-label
   (and detection/segmentation) subsets balance per label, not per label combination.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .linking import NEAR_COMPONENT_CAP, NEAR_DUPLICATE_BITS, Linking, link

TRAIN, TEST = "train", "test"
CARVE_TEST_SHARE = 0.1  # the paper's 9:1
PAPER_TRAIN_CAP = 3000
PAPER_TEST_PER_LABEL = 50
NO_LABEL = "(none)"  # balance key of a sample without labels (a multi-label "Normal")
LARGE_COMPONENT_WARNING = 0.5  # warn when one component holds more than this share of a subset

_TEST_NAMES = re.compile(r"test", re.IGNORECASE)
_VAL_NAMES = re.compile(r"(^|[^a-z])(val|valid|validation|dev)([^a-z]|$)|^val", re.IGNORECASE)
_TRAIN_NAMES = re.compile(r"train", re.IGNORECASE)

KEY_SCHEMA = pa.schema([("id", pa.string()), ("source", pa.string()), ("group_id", pa.string()),
                        ("original_split", pa.string()), ("pixel_sha256", pa.string()), ("phash", pa.string()),
                        ("labels", pa.list_(pa.string()))])


@dataclass(frozen=True)
class SampleKey:
    """What the split needs to know about a sample (tests and small callers; the hub reads columns directly)."""

    id: str
    group_id: str | None
    original_split: str | None
    pixel_sha256: str
    phash: str
    balance_key: str  # a single-label sample's label (used when `labels` is empty)
    labels: tuple[str, ...] = ()
    source: str | None = None  # default: the id up to its first "/"


def keys_table(samples: list[SampleKey]) -> pa.Table:
    return pa.Table.from_pydict({
        "id": [s.id for s in samples],
        "source": [s.source or s.id.split("/", 1)[0] for s in samples],
        "group_id": [s.group_id for s in samples],
        "original_split": [s.original_split for s in samples],
        "pixel_sha256": [s.pixel_sha256 for s in samples],
        "phash": [s.phash or None for s in samples],
        "labels": [list(s.labels) if s.labels else ([s.balance_key] if s.balance_key else []) for s in samples],
    }, schema=KEY_SCHEMA)


def _as_table(keys) -> pa.Table:
    return keys if isinstance(keys, pa.Table) else keys_table(list(keys))


def components(samples) -> list[int]:
    """Component index of each sample (see `medmat.mat.linking.link`)."""
    return link(_as_table(samples)).component.tolist()


def _unit(seed: int, text: str) -> float:
    digest = hashlib.sha256(f"{seed}\x1f{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


# --- sides ----------------------------------------------------------------------------------------------------


def split_kind(name: str | None) -> str | None:
    """'test' | 'validation' | 'train' for an official split name, None when there is none."""
    if not name:
        return None
    if _TEST_NAMES.search(name):
        return "test"
    if _VAL_NAMES.search(name) and not _TRAIN_NAMES.search(name):
        return "validation"
    return "train"


def source_rules(table: pa.Table) -> dict[str, dict[str, str | None]]:
    """source -> {official split name -> the side it votes for (None: no vote, carved 9:1)}."""
    names: dict[str, set[str]] = defaultdict(set)
    pairs = pa.Table.from_arrays([table["source"], table["original_split"]], ["s", "o"]).group_by(["s", "o"])
    for row in pairs.aggregate([]).to_pylist():
        names[row["s"]].add(row["o"])
    rules = {}
    for source, splits in names.items():
        kinds = {s: split_kind(s) for s in splits}
        has_test = "test" in kinds.values()
        has_val = "validation" in kinds.values()
        rule = {}
        for name, kind in kinds.items():
            if kind is None:
                rule[name] = None
            elif kind == "test":
                rule[name] = TEST
            elif kind == "validation":
                rule[name] = TRAIN if has_test else TEST
            else:
                rule[name] = TRAIN if (has_test or has_val) else None
        rules[source] = rule
    return rules


@dataclass
class SplitPlan:
    ids: list[str]
    component: np.ndarray
    is_test: np.ndarray  # bool per sample
    stats: dict

    def as_dict(self) -> dict[str, str]:
        return {i: TEST if t else TRAIN for i, t in zip(self.ids, self.is_test.tolist())}


def plan_splits(keys, seed: int) -> SplitPlan:
    """The full flavour: each component on one side, by the rules above."""
    table = _as_table(keys)
    linking = link(table)
    comp = linking.component
    n = table.num_rows
    rules = source_rules(table)
    sources, originals = table["source"].to_pylist(), table["original_split"].to_pylist()
    code = {TRAIN: 0, TEST: 1, None: -1}
    vote = np.fromiter((code[rules[s][o]] for s, o in zip(sources, originals)), np.int8, n)
    ncomp = int(comp.max()) + 1 if n else 0
    comp_vote = np.full(ncomp, -1, np.int8)
    np.maximum.at(comp_vote, comp, vote)
    ids = table["id"].to_pylist()
    carved = np.flatnonzero(comp_vote < 0)
    if carved.size:
        order = pc.sort_indices(pa.table({"c": comp, "id": table["id"]}), [("c", "ascending"), ("id", "ascending")])
        order = order.to_numpy()
        sorted_comp = comp[order]
        heads = order[np.r_[True, sorted_comp[1:] != sorted_comp[:-1]]]  # the smallest id of every component
        anchor = np.empty(ncomp, np.int64)
        anchor[comp[heads]] = heads
        for c in carved.tolist():
            comp_vote[c] = 1 if _unit(seed, ids[anchor[c]]) < CARVE_TEST_SHARE else 0
    is_test = comp_vote[comp] == 1 if n else np.zeros(0, bool)
    stats = dict(linking.stats)
    stats["split_rules"] = {s: {k or "(none)": v or "carved 9:1" for k, v in sorted(r.items(), key=lambda x: x[0] or "")}
                            for s, r in sorted(rules.items())}
    stats["components_by_rule"] = {"official": int((comp_vote >= 0).sum() - carved.size), "carved": int(carved.size)}
    return SplitPlan(ids, comp, is_test, stats)


def assign_splits(samples, seed: int) -> dict[str, str]:
    """id -> train | test for the full flavour."""
    return plan_splits(samples, seed).as_dict()


# --- the paper flavour ----------------------------------------------------------------------------------------


def _labels_of(table: pa.Table) -> list[list[str]]:
    return [labels or [NO_LABEL] for labels in table["labels"].to_pylist()]


def balanced_test_size(counts: dict[str, int], cap: int = PAPER_TEST_PER_LABEL) -> int:
    """n of the largest strictly balanced test set: n per label for every label with at least n samples.

    Maximises n x #{labels with count >= n} over n <= cap; keeps at least two labels where two labels have
    samples; on a tie the smaller n (more labels) wins."""
    values = sorted((c for c in counts.values() if c > 0), reverse=True)
    if not values:
        return 0
    ceiling = min(cap, values[1] if len(values) > 1 else values[0])
    best, best_size = 0, -1
    for n in range(1, ceiling + 1):
        size = n * sum(c >= n for c in values)
        if size > best_size:
            best, best_size = n, size
    return best


def _paper_test(ids: list[str], labels: list[list[str]], order: dict[str, float], multi: bool) -> list[str]:
    counts = Counter(label for ls in labels for label in (ls if multi else ls[:1]))
    n = balanced_test_size(counts)
    kept = {label for label, c in counts.items() if c >= n}
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, ls in enumerate(labels):
        for label in (ls if multi else ls[:1]):
            by_label[label].append(i)
    for members in by_label.values():
        members.sort(key=lambda i: order[ids[i]])
    if not multi:
        return [ids[i] for label in sorted(kept) for i in by_label[label][:n]]
    # Per label: rarest label first, take samples of that label until it has n, preferring samples that do not
    # push another kept label over n; a sample counts for every label it carries.
    have: Counter = Counter()
    chosen: list[int] = []
    taken: set[int] = set()
    for label in sorted(kept, key=lambda x: (counts[x], x)):
        for strict in (True, False):
            for i in by_label[label]:
                if have[label] >= n:
                    break
                if i in taken or (strict and any(have[o] >= n for o in labels[i] if o != label and o in kept)):
                    continue
                taken.add(i)
                chosen.append(i)
                have.update(labels[i])
    return [ids[i] for i in chosen]


def _paper_train(ids: list[str], labels: list[list[str]], order: dict[str, float], multi: bool) -> list[str]:
    queues: dict[str, list[int]] = defaultdict(list)
    for i, ls in enumerate(labels):
        for label in (ls if multi else ls[:1]):
            queues[label].append(i)
    for members in queues.values():
        members.sort(key=lambda i: order[ids[i]], reverse=True)  # pop() from the end takes the first in order
    taken: set[int] = set()
    chosen: list[str] = []
    while len(chosen) < PAPER_TRAIN_CAP and any(queues.values()):
        for label in sorted(queues):
            queue = queues[label]
            while queue and queue[-1] in taken:
                queue.pop()
            if queue and len(chosen) < PAPER_TRAIN_CAP:
                i = queue.pop()
                taken.add(i)
                chosen.append(ids[i])
    return chosen


def paper_selection(samples, splits: dict[str, str], seed: int, per_label: bool = False) -> dict[str, str]:
    """id -> train | test for the paper flavour (a subset of the full flavour's samples).

    per_label: balance on each label a sample carries (multi-label, detection, segmentation) instead of on its
    single label."""
    table = _as_table(samples)
    ids = table["id"].to_pylist()
    labels = _labels_of(table)
    order = {i: _unit(seed, "paper:" + i) for i in ids}
    chosen: dict[str, str] = {}
    for side, pick in ((TEST, _paper_test), (TRAIN, _paper_train)):
        rows = [k for k, i in enumerate(ids) if splits[i] == side]
        picked = pick([ids[k] for k in rows], [labels[k] for k in rows], order, per_label)
        chosen.update((i, side) for i in picked)
    return chosen


def split_statistics(plan: SplitPlan, keys, paper: dict[str, str] | None = None, per_label: bool = False) -> dict:
    """Per-subset statistics for the report, `medmat info NN` and the card (hub/split_stats.json)."""
    table = _as_table(keys)
    labels = _labels_of(table)
    stats = dict(plan.stats)
    n = len(plan.ids)
    test = int(plan.is_test.sum())
    stats["test_share"] = round(test / n, 4) if n else 0.0
    stats["splits"] = {TRAIN: n - test, TEST: test}
    per_split: dict[str, Counter] = {TRAIN: Counter(), TEST: Counter()}
    for ls, t in zip(labels, plan.is_test.tolist()):
        per_split[TEST if t else TRAIN].update(ls)
    stats["labels"] = {s: dict(sorted(c.items())) for s, c in per_split.items()}
    if paper is not None:
        paper_counts: dict[str, Counter] = {TRAIN: Counter(), TEST: Counter()}
        index = {i: k for k, i in enumerate(plan.ids)}
        for i, side in paper.items():
            ls = labels[index[i]]
            paper_counts[side].update(ls if per_label else ls[:1])
        test_counts = per_split[TEST] if per_label else Counter(ls[0] for ls, t in zip(labels, plan.is_test) if t)
        left_out = sorted(set(test_counts) - set(paper_counts[TEST]))
        stats["paper"] = {"splits": {s: sum(1 for v in paper.values() if v == s) for s in (TRAIN, TEST)},
                          "test_per_label": balanced_test_size(test_counts),
                          "labels": {s: dict(sorted(c.items())) for s, c in paper_counts.items()},
                          "test_labels_left_out": left_out}
    warnings = []
    if n and not test:
        warnings.append("no test split: every component went to train")
    if n and test == n:
        warnings.append("no train split: every component went to test")
    if n and stats["largest_component_share"] > LARGE_COMPONENT_WARNING:
        warnings.append(f"one linked component holds {stats['largest_component_share']:.0%} of the samples")
    if stats.get("paper", {}).get("test_labels_left_out"):
        warnings.append("paper test set leaves out label(s) with too few test samples: "
                        + ", ".join(stats["paper"]["test_labels_left_out"]))
    stats["warnings"] = warnings
    return stats
