"""Linking the samples of a subset into components that must stay on one side of a split.

Samples are linked when they share a patient/study/lesion (`group_id`), exact pixels (`pixel_sha256`) or near
pixels (64-bit perceptual hashes within `NEAR_DUPLICATE_BITS`). Candidate near pairs come from multi-index
hashing: the 64 bits in 5 bands, and two hashes within 3 bits agree exactly on at least 2 of them, so on one of the
10 pairs of bands; every pair in every bucket is compared, vectorised with `numpy.bitwise_count`, and no bucket is
skipped. Components come from `scipy.sparse.csgraph.connected_components`. Near links may not build a
near-duplicate cluster of more than `NEAR_COMPONENT_CAP` samples: such a cluster is re-linked with a tighter
distance (2, then 1 bit); a cluster still over the cap (a chain of similar slices) is cut into runs of at most the
cap along a breadth-first walk, and samples whose identical hash is shared by more than the cap are not
near-linked at all (exact-pixel and group links still hold). Every decision is counted in `Linking.stats`.
Rules and the paper's wording beside them: docs/splits.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components

NEAR_DUPLICATE_BITS = 3  # pHash Hamming distance treated as the same image (4 bands of 16 bits find all of them)
NEAR_COMPONENT_CAP = 64  # most samples one near-duplicate cluster may hold (docs/splits.md)


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


_HEX = np.zeros(256, np.uint64)
for _i, _c in enumerate("0123456789abcdef"):
    _HEX[ord(_c)] = _HEX[ord(_c.upper())] = _i


def _phash_values(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 value, has-hash mask) per sample; 16 hex digits are decoded vectorised, other lengths one by one."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(array)
    lengths = np.asarray(pc.fill_null(pc.utf8_length(array), 0), np.int64)
    regular = lengths == 16
    padded = pc.if_else(pa.array(regular), array, "0" * 16).cast(pa.binary())
    offsets = np.frombuffer(padded.buffers()[1], np.int32)[padded.offset: padded.offset + n + 1]
    data = np.frombuffer(padded.buffers()[2], np.uint8)[offsets[0]: offsets[0] + 16 * n].reshape(n, 16)
    values = np.zeros(n, np.uint64)
    for k in range(16):
        values |= _HEX[data[:, k]] << np.uint64(4 * (15 - k))
    for i in np.flatnonzero(~regular & (lengths > 0)).tolist():  # an unusual hash size
        values[i] = int(array[i].as_py(), 16) & 0xFFFFFFFFFFFFFFFF
    return values, lengths > 0


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    x = np.sort(x)
    return x[np.r_[True, x[1:] != x[:-1]]] if x.size else x


def _pairs_in_runs(order: np.ndarray, starts: np.ndarray, sizes: np.ndarray):
    """Every pair (order[i], order[j]), i < j, inside each run order[start:start+size], in chunks of ~4M pairs."""
    ends = starts + sizes
    positions = np.arange(order.size)
    run_end = np.repeat(ends, sizes)
    partners = run_end - positions - 1  # pairs in which each position is the first element
    cumulative = np.cumsum(partners)
    chunk = 1 << 22
    lo = 0
    while lo < order.size:
        base = cumulative[lo - 1] if lo else 0
        hi = int(np.searchsorted(cumulative, base + chunk, side="right"))
        hi = max(hi, lo + 1)
        counts = partners[lo:hi]
        first = np.repeat(positions[lo:hi], counts)
        step = np.arange(first.size) - np.repeat(np.cumsum(counts) - counts, counts)
        yield order[first], order[first + 1 + step]
        lo = hi


# 64 bits in 5 bands: hashes within 3 bits differ in at most 3 bands, so they agree exactly on at least 2, i.e. on
# one of the 10 pairs of bands (26 bits); buckets of random hashes stay near-empty even at millions of samples.
_BANDS = [(0, 13), (13, 13), (26, 13), (39, 13), (52, 12)]  # (offset, width)
_BAND_PAIRS = [(p, q) for p in range(5) for q in range(p + 1, 5)]


def _band(values: np.ndarray, band: int) -> np.ndarray:
    offset, width = _BANDS[band]
    return ((values >> np.uint64(offset)) & np.uint64((1 << width) - 1)).astype(np.uint16)


def _bucket_pairs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Every pair of distinct values within NEAR_DUPLICATE_BITS (multi-index hashing over `_BAND_PAIRS`): every pair
    of every bucket is compared (vectorised); the same pair found through several buckets counts once."""
    found = []
    compared, largest = 0, 0
    m = len(values)
    if m < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64), {"pairs_compared": 0, "largest_band_bucket": m}
    bands = [_band(values, b) for b in range(len(_BANDS))]
    for p, q in _BAND_PAIRS:
        # Sorted by the 26-bit key (band p, then band q) with two stable radix passes over 13-bit digits: O(n).
        order = np.argsort(bands[q], kind="stable")
        order = order[np.argsort(bands[p][order], kind="stable")]
        sorted_key = ((bands[p].astype(np.int64) << _BANDS[q][1]) | bands[q])[order]
        same = sorted_key[1:] == sorted_key[:-1]
        shared = np.r_[same, False] | np.r_[False, same]  # positions alone in their bucket have no pair
        kept_order, kept_key = order[shared], sorted_key[shared]
        kept_starts = np.flatnonzero(np.r_[True, kept_key[1:] != kept_key[:-1]]) if kept_key.size else kept_order
        kept_sizes = np.diff(np.r_[kept_starts, kept_key.size])
        if kept_sizes.size:
            largest = max(largest, int(kept_sizes.max()))
        for a, b in _pairs_in_runs(kept_order, kept_starts, kept_sizes):
            compared += a.size
            near = np.bitwise_count(values[a] ^ values[b]) <= NEAR_DUPLICATE_BITS
            a, b = a[near], b[near]
            found.append(np.minimum(a, b).astype(np.int64) * m + np.maximum(a, b))
    pair = _sorted_unique(np.concatenate(found)) if found else np.empty(0, np.int64)
    return pair // m, pair % m, {"pairs_compared": int(compared), "largest_band_bucket": largest}


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if n == 0:
        return np.empty(0, np.int64)
    graph = coo_matrix((np.ones(a.size, np.int8), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _cut_chains(u: int, a: np.ndarray, b: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Which edges (a, b) to keep so that every cluster holds at most NEAR_COMPONENT_CAP samples: nodes are walked
    breadth-first from each cluster's smallest node and cut into consecutive runs of at most the cap; edges inside a
    run are kept."""
    comp = _components(u, a, b)
    nodes = _sorted_unique(np.concatenate([a, b]))
    starts = np.full(u, u, np.int64)
    np.minimum.at(starts, comp[nodes], nodes)
    starts = _sorted_unique(starts[comp[nodes]])
    root = u  # a virtual node tied to each cluster's start: one walk covers every cluster
    graph = coo_matrix((np.ones(a.size + starts.size, np.int8),
                        (np.r_[a, np.full(starts.size, root)], np.r_[b, starts])), shape=(u + 1, u + 1)).tocsr()
    walk = breadth_first_order(graph, root, directed=False, return_predecessors=False)[1:]
    walk = walk[np.argsort(comp[walk], kind="stable")]  # the walk, cluster by cluster
    run = np.full(u, -1, np.int64)
    current, filled, last = -1, 0, -1
    for node, c, w in zip(walk.tolist(), comp[walk].tolist(), counts[walk].tolist()):
        if c != last or filled + w > NEAR_COMPONENT_CAP:
            current, filled, last = current + 1, 0, c
        run[node] = current
        filled += w
    return run[a] == run[b]


def _near_edges(values: np.ndarray, has: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Sample-level near-duplicate edges, with near-duplicate clusters bounded by NEAR_COMPONENT_CAP."""
    stats = {"near_links": 0, "near_pairs_within_bits": 0, "near_pairs_tightened": 0, "near_pairs_cut": 0,
             "near_pairs_refused": 0,
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

    # Bound cluster growth: a cluster over the cap is re-linked with a tighter distance (2, then 1 bit); a cluster
    # still over the cap at 1 bit (a chain of similar slices) is cut into runs of at most the cap along a
    # breadth-first walk, so neighbouring slices stay together. Each accepted cluster holds at most the cap.
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
    lonely = counts > NEAR_COMPONENT_CAP  # one identical hash shared by more samples than the cap
    chained = active & ~lonely[ua] & ~lonely[ub]
    if chained.any():
        kept = _cut_chains(u, ua[chained], ub[chained], counts)
        stats["near_pairs_cut"] = int(chained.sum() - kept.sum())
        keep[np.flatnonzero(chained)[kept]] = True
    stats["near_pairs_refused"] = int((active & ~chained).sum())
    # Samples sharing one identical hash are linked unless that hash alone is shared by more than the cap (every
    # pair touching such a hash was refused above, since its cluster is over the cap at any distance).
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
