"""Leak-free train/test splits of a subset, and the paper's capped, label-balanced flavour.

1. Samples are linked when they share a patient/study/lesion (`group_id`), exact pixels (`pixel_sha256`) or near
   pixels (perceptual hashes within `NEAR_DUPLICATE_BITS`), across every source of the subset. Each linked
   component goes to one side only.
2. A component whose samples carry the source's own split takes it: test if any member is in the source's test
   split (so duplicates of test images leave train), else train. Other components go to test with probability
   1/10, decided by a hash of the seed and the component's smallest id (9:1, independent of order).
3. The paper flavour caps train at 3,000 samples, label-balanced as far as possible (round-robin over labels in
   seeded order), and keeps a strictly label-balanced test set (the same number per label, at most 50). Every
   subset keeps its train split here: the paper calls subsets under 3,000 samples out-of-distribution (never
   trained on in-distribution) but still trains on them in its CG experiments (e.g. 04 + 05 -> 03).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass

TRAIN, TEST = "train", "test"
NEAR_DUPLICATE_BITS = 3  # pHash Hamming distance treated as the same image (4 bands of 16 bits find all of them)
PAPER_TRAIN_CAP = 3000
PAPER_TEST_PER_LABEL = 50
_TEST_NAMES = re.compile(r"test", re.IGNORECASE)


@dataclass(frozen=True)
class SampleKey:
    """What the split needs to know about a sample; nothing else is held in memory."""

    id: str
    group_id: str | None
    original_split: str | None
    pixel_sha256: str
    phash: str
    balance_key: str  # the answer's label set, for balancing


def _unit(seed: int, text: str) -> float:
    digest = hashlib.sha256(f"{seed}\x1f{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _link_all(uf: _UnionFind, indices: list[int]) -> None:
    for other in indices[1:]:
        uf.union(indices[0], other)


def components(samples: list[SampleKey]) -> list[int]:
    """Component index of each sample: linked by group, exact pixels or near pixels."""
    uf = _UnionFind(len(samples))
    by_group, by_hash = defaultdict(list), defaultdict(list)
    bands = [defaultdict(list) for _ in range(4)]
    for i, s in enumerate(samples):
        if s.group_id:
            by_group[s.group_id].append(i)
        by_hash[s.pixel_sha256].append(i)
        if s.phash:
            for b in range(4):
                bands[b][s.phash[4 * b: 4 * b + 4]].append(i)
    for table in (by_group, by_hash):
        for indices in table.values():
            _link_all(uf, indices)
    # Near duplicates: pigeonhole - two hashes within 3 bits agree exactly on at least one of 4 bands.
    for band in bands:
        for indices in band.values():
            if len(indices) < 2 or len(indices) > 5000:  # a huge bucket is a blank-image artefact: skip it
                continue
            values = [int(samples[i].phash, 16) for i in indices]
            for x in range(len(indices)):
                for y in range(x + 1, len(indices)):
                    if bin(values[x] ^ values[y]).count("1") <= NEAR_DUPLICATE_BITS:
                        uf.union(indices[x], indices[y])
    return [uf.find(i) for i in range(len(samples))]


def assign_splits(samples: list[SampleKey], seed: int) -> dict[str, str]:
    """id -> train | test for the full flavour."""
    comp = components(samples)
    members: dict[int, list[int]] = defaultdict(list)
    for i, c in enumerate(comp):
        members[c].append(i)
    result: dict[str, str] = {}
    for indices in members.values():
        official = [samples[i].original_split for i in indices if samples[i].original_split]
        if official:
            side = TEST if any(_TEST_NAMES.search(s) for s in official) else TRAIN
        else:
            anchor = min(samples[i].id for i in indices)
            side = TEST if _unit(seed, anchor) < 0.1 else TRAIN
        for i in indices:
            result[samples[i].id] = side
    return result


def paper_selection(samples: list[SampleKey], splits: dict[str, str], seed: int) -> dict[str, str]:
    """id -> train | test for the paper flavour (a subset of the full flavour's samples)."""
    chosen: dict[str, str] = {}
    by_split_label: dict[str, dict[str, list[str]]] = {TRAIN: defaultdict(list), TEST: defaultdict(list)}
    for s in samples:
        by_split_label[splits[s.id]][s.balance_key].append(s.id)
    for side in (TRAIN, TEST):
        for ids in by_split_label[side].values():
            ids.sort(key=lambda i: _unit(seed, "paper:" + i))

    test = by_split_label[TEST]
    if test:
        per_label = min(PAPER_TEST_PER_LABEL, min(len(ids) for ids in test.values()))
        for label in sorted(test):
            chosen.update((i, TEST) for i in test[label][:per_label])

    queues = {label: list(ids) for label, ids in sorted(by_split_label[TRAIN].items())}
    taken = 0
    while taken < PAPER_TRAIN_CAP and any(queues.values()):
        for label in sorted(queues):
            if queues[label] and taken < PAPER_TRAIN_CAP:
                chosen[queues[label].pop(0)] = TRAIN
                taken += 1
    return chosen
