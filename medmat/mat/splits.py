"""Leak-free train/test splits of a subset, and the paper's capped, label-balanced flavour.

The rules are written out, with the paper's wording beside each, in docs/splits.md. In short:

1. Linking (medmat.mat.linking): group, exact-pixel and near-pixel links, near-duplicate clusters bounded by
   NEAR_COMPONENT_CAP; each component goes to one side only.
2. Sides. Each sample votes with its source's own split: a source that publishes a test split maps test -> test
   and everything else (train, validation) -> train; a source that publishes only train + validation maps
   validation -> test; a source whose built samples carry no test or validation split (no official split, or an
   official test set without labels, so not built) casts no vote. A component goes to test if any member votes
   test, to train if any votes train, else it is carved: carved components, ordered by a seeded key of their
   smallest id, go to test until they hold 1/10 of the carved samples (9:1, group-safe, independent of order),
   leaving at least one in train.
3. Paper flavour. Train is capped at 3,000 samples, label-balanced as far as possible (round-robin over labels).
   Test is strictly label-balanced and as large as possible: n per label for every label with at least n test
   samples, n <= 50 chosen to maximise n x (labels kept), at least two labels kept where two exist; a label with
   too few test samples is left out of the paper test set rather than shrinking every other label. Multi-label
   (and detection/segmentation) subsets balance per label, not per label combination.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .linking import NEAR_COMPONENT_CAP, NEAR_DUPLICATE_BITS, link  # noqa: F401  (re-exported)

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


_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & _M64
    x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
    x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
    return x ^ (x >> np.uint64(31))


def order_keys(ids, seed: int, purpose: str) -> np.ndarray:
    """A seeded 64-bit key per id, from the id's bytes alone (FNV-1a, then splitmix64 with the seed and purpose):
    the same id gets the same key whatever else is in the set or in which order. Vectorised over the ids."""
    array = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else pa.array(ids, pa.string())
    array = array.cast(pa.large_binary())
    n = len(array)
    out = np.empty(n, np.uint64)
    salt = _splitmix(np.array([int.from_bytes(hashlib.sha256(f"{seed}\x1f{purpose}".encode()).digest()[:8], "big")],
                              np.uint64))[0]
    with np.errstate(over="ignore"):
        for start in range(0, n, 65536):
            part = array.slice(start, 65536)
            offsets = np.frombuffer(part.buffers()[1], np.int64)[part.offset: part.offset + len(part) + 1]
            data = np.frombuffer(part.buffers()[2], np.uint8) if part.buffers()[2] is not None else np.zeros(1, np.uint8)
            lengths = np.diff(offsets)
            h = np.full(len(part), np.uint64(0xCBF29CE484222325))
            for k in range(int(lengths.max()) if len(part) else 0):
                live = lengths > k
                byte = data[np.minimum(offsets[:-1] + k, data.size - 1)].astype(np.uint64)
                h = np.where(live, (h ^ byte) * np.uint64(0x100000001B3), h)
            out[start:start + len(part)] = _splitmix(h ^ salt)
    return out


def plan_splits(keys, seed: int) -> SplitPlan:
    """The full flavour: each component on one side, by the rules above."""
    table = _as_table(keys)
    linking = link(table)
    comp = linking.component
    n = table.num_rows
    rules = source_rules(table)
    # Each sample's vote, looked up once per distinct (source, official split) pair.
    pairs = pc.binary_join_element_wise(table["source"], pc.fill_null(table["original_split"], "\x00"), "\x1f")
    encoded = pc.dictionary_encode(pairs.combine_chunks())
    side_code = {TRAIN: 0, TEST: 1, None: -1}
    lookup = []
    for text in encoded.dictionary.to_pylist():
        source, _, original = text.partition("\x1f")
        lookup.append(side_code[rules[source][None if original == "\x00" else original]])
    vote = np.asarray(lookup, np.int8)[np.asarray(encoded.indices, np.int64)] if n else np.zeros(0, np.int8)
    ncomp = int(comp.max()) + 1 if n else 0
    comp_vote = np.full(ncomp, -1, np.int8)
    np.maximum.at(comp_vote, comp, vote)
    carved = np.flatnonzero(comp_vote < 0)
    if carved.size:
        order = pc.sort_indices(pa.table({"c": comp, "id": table["id"]}), [("c", "ascending"), ("id", "ascending")])
        order = order.to_numpy()
        sorted_comp = comp[order]
        heads = order[np.r_[True, sorted_comp[1:] != sorted_comp[:-1]]]  # the smallest id of every component
        anchor = np.empty(ncomp, np.int64)
        anchor[comp[heads]] = heads
        # Carved components in the order of a seeded key of their smallest id; the first go to test until they
        # hold 1/10 of the carved samples (rounded up), leaving at least one component in train.
        ranked = carved[np.argsort(order_keys(table["id"].take(pa.array(anchor[carved])), seed, "carve"),
                                   kind="stable")]
        sizes = np.bincount(comp, minlength=ncomp)[ranked]
        target = math.ceil(CARVE_TEST_SHARE * int(sizes.sum()))
        before = np.cumsum(sizes) - sizes
        to_test = (before < target) & (np.arange(ranked.size) < ranked.size - 1)
        comp_vote[ranked] = to_test.astype(np.int8)
    is_test = comp_vote[comp] == 1 if n else np.zeros(0, bool)
    stats = dict(linking.stats)
    stats["split_rules"] = {s: {k or "(none)": v or "carved 9:1" for k, v in sorted(r.items(), key=lambda x: x[0] or "")}
                            for s, r in sorted(rules.items())}
    stats["components_by_rule"] = {"official": int(ncomp - carved.size), "carved": int(carved.size)}
    return SplitPlan(table["id"].to_pylist(), comp, is_test, stats)


def assign_splits(samples, seed: int) -> dict[str, str]:
    """id -> train | test for the full flavour."""
    return plan_splits(samples, seed).as_dict()


# --- the paper flavour ----------------------------------------------------------------------------------------


@dataclass
class _Labels:
    names: list[str]  # sorted
    rows: np.ndarray  # sample index of each (sample, label) entry
    codes: np.ndarray  # index into names of each entry


def _labels(table: pa.Table, per_label: bool) -> _Labels:
    """Each sample's balance labels: its first label (single-label) or every label (per_label); NO_LABEL when none."""
    lists = table["labels"].combine_chunks()
    n = len(lists)
    if n == 0:
        return _Labels([], np.zeros(0, np.int64), np.zeros(0, np.int64))
    empty = pc.fill_null(pc.equal(pc.list_value_length(lists), 0), True)
    if per_label:
        flat = pc.list_flatten(lists)
        rows = np.asarray(pc.list_parent_indices(lists), np.int64)
        missing = np.flatnonzero(np.asarray(empty))
        flat = pa.concat_arrays([flat.cast(pa.string()), pa.array([NO_LABEL] * missing.size, pa.string())])
        rows = np.concatenate([rows, missing])
    else:
        flat = pc.list_element(pc.if_else(empty, pa.scalar([NO_LABEL], lists.type), lists), 0)
        rows = np.arange(n)
    encoded = pc.dictionary_encode(flat)
    names = encoded.dictionary.to_pylist()
    rank = np.empty(len(names), np.int64)
    rank[np.argsort(np.array(names, dtype=object))] = np.arange(len(names))
    codes = rank[np.asarray(encoded.indices, np.int64)]
    return _Labels(sorted(names), rows, codes)


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


def _rank_within(codes: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, rank): entries sorted by (code, key), and each sorted entry's rank inside its code."""
    order = np.lexsort((key, codes))
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]) if order.size else order
    sizes = np.diff(np.r_[starts, order.size])
    rank = np.arange(order.size) - np.repeat(starts, sizes)
    return order, rank


def _per_sample(lab: _Labels, rows: np.ndarray) -> dict[int, list[int]]:
    wanted = np.zeros(int(lab.rows.max()) + 1 if lab.rows.size else 0, bool)
    wanted[rows] = True
    out: dict[int, list[int]] = defaultdict(list)
    pick = wanted[lab.rows]
    for r, c in zip(lab.rows[pick].tolist(), lab.codes[pick].tolist()):
        out[r].append(c)
    return out


def _paper_test(lab: _Labels, side: np.ndarray, key: np.ndarray, multi: bool) -> np.ndarray:
    entry = side[lab.rows]
    rows, codes = lab.rows[entry], lab.codes[entry]
    counts = np.bincount(codes, minlength=len(lab.names))
    n = balanced_test_size(dict(enumerate(counts.tolist())))
    kept = counts >= n
    order, rank = _rank_within(codes, key[rows])
    if not multi:
        take = kept[codes[order]] & (rank < n)
        return np.sort(rows[order][take])
    # Per label, rarest kept label first: take samples of it (in seeded order) until it has n, preferring samples
    # that do not push another kept label past n; a sample counts for every label it carries.
    labels_of = _per_sample(lab, np.unique(rows))
    members: dict[int, list[int]] = defaultdict(list)
    for r, c in zip(rows[order].tolist(), codes[order].tolist()):
        members[c].append(r)
    have = np.zeros(len(lab.names), np.int64)
    taken: set[int] = set()
    for label in sorted(np.flatnonzero(kept).tolist(), key=lambda c: (counts[c], c)):
        for strict in (True, False):
            for r in members[label]:
                if have[label] >= n:
                    break
                if r in taken or (strict and any(have[o] >= n for o in labels_of[r] if o != label and kept[o])):
                    continue
                taken.add(r)
                have[labels_of[r]] += 1
    return np.array(sorted(taken), np.int64)


def _paper_train(lab: _Labels, side: np.ndarray, key: np.ndarray, multi: bool) -> np.ndarray:
    entry = side[lab.rows]
    rows, codes = lab.rows[entry], lab.codes[entry]
    order, rank = _rank_within(codes, key[rows])
    if not multi:  # round-robin over labels in name order = sort by (rank inside label, label)
        pick = np.lexsort((codes[order], rank))[:PAPER_TRAIN_CAP]
        return np.sort(rows[order][pick])
    queues: dict[int, list[int]] = defaultdict(list)
    for r, c in zip(rows[order].tolist(), codes[order].tolist()):
        queues[c].append(r)
    for queue in queues.values():
        queue.reverse()  # pop() from the end takes the first in seeded order
    taken: set[int] = set()
    while len(taken) < PAPER_TRAIN_CAP and any(queues.values()):
        for label in sorted(queues):
            queue = queues[label]
            while queue and queue[-1] in taken:
                queue.pop()
            if queue and len(taken) < PAPER_TRAIN_CAP:
                taken.add(queue.pop())
    return np.array(sorted(taken), np.int64)


@dataclass
class PaperPlan:
    """Rows (sample indices) of the paper flavour, sorted."""

    test: np.ndarray
    train: np.ndarray

    def as_dict(self, ids: list[str]) -> dict[str, str]:
        chosen = {ids[r]: TEST for r in self.test.tolist()}
        chosen.update((ids[r], TRAIN) for r in self.train.tolist())
        return chosen


def paper_plan(keys, is_test: np.ndarray, seed: int, per_label: bool = False) -> PaperPlan:
    """The paper flavour's rows, from the full flavour's sides (a subset of them).

    per_label: balance on each label a sample carries (multi-label, detection, segmentation) instead of on its
    single label."""
    table = _as_table(keys)
    lab = _labels(table, per_label)
    key = order_keys(table["id"], seed, "paper")
    return PaperPlan(_paper_test(lab, is_test, key, per_label), _paper_train(lab, ~is_test, key, per_label))


def paper_selection(samples, splits: dict[str, str], seed: int, per_label: bool = False) -> dict[str, str]:
    """id -> train | test for the paper flavour (see `paper_plan`)."""
    table = _as_table(samples)
    ids = table["id"].to_pylist()
    is_test = np.fromiter((splits[i] == TEST for i in ids), bool, len(ids))
    return paper_plan(table, is_test, seed, per_label).as_dict(ids)


def _label_counts(lab: _Labels, mask: np.ndarray) -> dict[str, int]:
    counts = np.bincount(lab.codes[mask[lab.rows]], minlength=len(lab.names))
    return {name: int(c) for name, c in zip(lab.names, counts.tolist()) if c}


def split_statistics(plan: SplitPlan, keys, paper: PaperPlan | None = None, per_label: bool = False) -> dict:
    """Per-subset statistics for the report, `medmat info NN` and the card (hub/split_stats.json)."""
    table = _as_table(keys)
    lab = _labels(table, per_label=True)
    stats = dict(plan.stats)
    n = len(plan.ids)
    test = int(plan.is_test.sum())
    stats["test_share"] = round(test / n, 4) if n else 0.0
    stats["splits"] = {TRAIN: n - test, TEST: test}
    stats["labels"] = {TRAIN: _label_counts(lab, ~plan.is_test), TEST: _label_counts(lab, plan.is_test)}
    if paper is not None:
        balance = _labels(table, per_label)
        in_paper = np.zeros(n, bool)
        in_paper[paper.test] = in_paper[paper.train] = True
        paper_test = in_paper & plan.is_test
        test_counts = _label_counts(balance, plan.is_test)
        paper_counts = {TRAIN: _label_counts(balance, in_paper & ~plan.is_test), TEST: _label_counts(balance, paper_test)}
        stats["paper"] = {"splits": {TRAIN: int((in_paper & ~plan.is_test).sum()), TEST: int(paper_test.sum())},
                          "balanced_on": "each label" if per_label else "the label",
                          "test_per_label": balanced_test_size(test_counts),
                          "labels": paper_counts,
                          "test_labels_left_out": sorted(set(test_counts) - set(paper_counts[TEST]))}
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
