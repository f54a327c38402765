"""Linking the samples of a subset into components that must stay on one side of a split.

Samples are linked when they share a patient/study/lesion (`group_id`), exact pixels (`pixel_sha256`) or near
pixels (64-bit perceptual hashes within `NEAR_DUPLICATE_BITS`). Candidate near pairs come from 4 bands of 16 bits
(by pigeonhole, two hashes within 3 bits agree exactly on one band); every pair in every bucket is compared,
vectorised with `numpy.bitwise_count`, and no bucket is skipped. Components come from
`scipy.sparse.csgraph.connected_components`. Near links may not build a near-duplicate cluster of more than
`NEAR_COMPONENT_CAP` samples: such a cluster is re-linked with a tighter distance (2, then 1 bit); the pairs of a
cluster still over the cap are refused, and samples whose identical hash is shared by more than the cap are not
near-linked at all (exact-pixel and group links still hold). Every decision is counted in `Linking.stats`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

NEAR_DUPLICATE_BITS = 3  # pHash Hamming distance treated as the same image (4 bands of 16 bits find all of them)
NEAR_COMPONENT_CAP = 64  # most samples one near-duplicate cluster may hold (docs/splits.md)
_BLOCK = 1024  # rows of a large bucket compared at once (memory: _BLOCK x bucket bytes)
_SMALL_BUCKET = 64


# --- linking --------------------------------------------------------------------------------------------------


def _codes(column: pa.ChunkedArray) -> np.ndarray:
    """Dictionary code of each value, -1 for null or empty."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    array = pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array)
    indices = pc.dictionary_encode(array).indices
    return np.asarray(indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _first_of(codes: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """The smallest position holding each code 0..size-1."""
    first = np.full(size, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, codes, positions)
    return first


def _star_edges(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges from the first sample of each code to every other sample with that code (codes < 0 ignored)."""
    valid = np.flatnonzero(codes >= 0)
    if not valid.size:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    c = codes[valid]
    heads = _first_of(c, valid, int(c.max()) + 1)[c]
    keep = heads != valid
    return heads[keep], valid[keep]


def _phash_values(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 value, has-hash mask) per sample."""
    texts = column.to_pylist()
    has = np.fromiter((bool(t) for t in texts), bool, len(texts))
    values = np.fromiter((int(t, 16) if t else 0 for t in texts), np.uint64, len(texts))
    return values, has


def _bucket_pairs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Every pair of distinct values within NEAR_DUPLICATE_BITS, found through 4 exact 16-bit bands."""
    found_a, found_b = [], []
    compared, largest = 0, 0
    m = len(values)
    for band in range(4):
        key = ((values >> np.uint64(16 * band)) & np.uint64(0xFFFF)).astype(np.int64)
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
        sizes = np.diff(np.r_[starts, m])
        if sizes.size:
            largest = max(largest, int(sizes.max()))
        # Small buckets, all at once: pair each position with the one k places further while both share a bucket.
        small = np.repeat(sizes <= _SMALL_BUCKET, sizes)
        pos = order[small]
        pos_key = sorted_key[small]
        for k in range(1, _SMALL_BUCKET):
            if pos.size <= k:
                break
            same = pos_key[:-k] == pos_key[k:]
            if not same.any():
                break
            a, b = pos[:-k][same], pos[k:][same]
            compared += a.size
            near = np.bitwise_count(values[a] ^ values[b]) <= NEAR_DUPLICATE_BITS
            found_a.append(a[near])
            found_b.append(b[near])
        # Large buckets, in blocks of rows against the whole bucket (upper triangle only).
        for start, size in zip(starts[sizes > _SMALL_BUCKET], sizes[sizes > _SMALL_BUCKET]):
            members = order[start:start + size]
            v = values[members]
            for r0 in range(0, size, _BLOCK):
                rows = v[r0:r0 + _BLOCK]
                dist = np.bitwise_count(rows[:, None] ^ v[None, :])
                i, j = np.nonzero(dist <= NEAR_DUPLICATE_BITS)
                i = i + r0
                upper = j > i
                compared += int(rows.size * size - rows.size * (rows.size + 1) // 2 - rows.size * r0)
                found_a.append(members[i[upper]])
                found_b.append(members[j[upper]])
    a = np.concatenate(found_a) if found_a else np.empty(0, np.int64)
    b = np.concatenate(found_b) if found_b else np.empty(0, np.int64)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pair = np.unique(lo.astype(np.int64) * m + hi)  # the same pair found through several bands counts once
    return pair // m, pair % m, {"pairs_compared": int(compared), "largest_band_bucket": largest}


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if n == 0:
        return np.empty(0, np.int64)
    graph = coo_matrix((np.ones(a.size, np.int8), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _near_edges(values: np.ndarray, has: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Sample-level near-duplicate edges, with near-duplicate clusters bounded by NEAR_COMPONENT_CAP."""
    stats = {"near_links": 0, "near_pairs_within_bits": 0, "near_pairs_tightened": 0, "near_pairs_refused": 0,
             "identical_phash_samples_unlinked": 0, "pairs_compared": 0, "largest_band_bucket": 0}
    idx = np.flatnonzero(has)
    if idx.size < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64), stats
    unique, inverse, counts = np.unique(values[idx], return_inverse=True, return_counts=True)
    u = unique.size
    ua, ub, found = _bucket_pairs(unique)
    stats.update(found)
    stats["near_pairs_within_bits"] = int(ua.size)
    dist = np.bitwise_count(unique[ua] ^ unique[ub])

    # Bound cluster growth: a cluster over the cap is re-linked with a tighter distance (2, then 1 bit); the pairs
    # of a cluster still over the cap at 1 bit are refused. Each accepted cluster holds at most the cap.
    keep = np.zeros(ua.size, bool)
    active = np.ones(ua.size, bool)
    for bits in range(NEAR_DUPLICATE_BITS, 0, -1):
        use = active & (dist <= bits)
        stats["near_pairs_tightened"] += int((active & ~use).sum())
        comp = _components(u, ua[use], ub[use])
        over = np.bincount(comp, weights=counts, minlength=u)[comp] > NEAR_COMPONENT_CAP
        keep |= use & ~over[ua]
        active = use & over[ua]
        if not active.any():
            break
    stats["near_pairs_refused"] = int(active.sum())
    # Samples sharing one identical hash are linked unless that hash alone is shared by more than the cap (every
    # pair touching such a hash was refused above, since its cluster is over the cap at any distance).
    lonely = counts > NEAR_COMPONENT_CAP
    stats["identical_phash_samples_unlinked"] = int(counts[lonely].sum())
    first = _first_of(inverse, idx, u)
    same_a, same_b = first[inverse], idx
    same = (same_a != same_b) & ~lonely[inverse]
    near_a = np.concatenate([first[ua[keep]], same_a[same]])
    near_b = np.concatenate([first[ub[keep]], same_b[same]])
    stats["near_links"] = int(near_a.size)
    return near_a, near_b, stats


@dataclass
class Linking:
    component: np.ndarray  # component index per sample
    stats: dict = field(default_factory=dict)


def link(table: pa.Table) -> Linking:
    """Components of a key table (columns group_id, pixel_sha256, phash): group, exact and bounded near links."""
    n = table.num_rows
    group_a, group_b = _star_edges(_codes(table["group_id"]))
    sha_a, sha_b = _star_edges(_codes(table["pixel_sha256"]))
    values, has = _phash_values(table["phash"])
    near_a, near_b, near_stats = _near_edges(values, has)
    comp = _components(n, np.concatenate([group_a, sha_a, near_a]), np.concatenate([group_b, sha_b, near_b]))
    sizes = np.bincount(comp) if n else np.zeros(0, np.int64)
    stats = {"samples": n, "components": int(sizes.size),
             "largest_component": int(sizes.max()) if n else 0,
             "largest_component_share": round(float(sizes.max()) / n, 4) if n else 0.0,
             "links": {"group": int(group_a.size), "exact": int(sha_a.size), "near": near_stats["near_links"]},
             "near_duplicates": {"max_bits": NEAR_DUPLICATE_BITS, "cluster_cap": NEAR_COMPONENT_CAP,
                                 **{k: v for k, v in near_stats.items() if k != "near_links"}},
             "samples_without_phash": int((~has).sum())}
    return Linking(comp, stats)
