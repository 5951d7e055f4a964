"""Near-duplicate clusters for the dedup stage (``pipeline.dedup``): MinHash LSH candidates, verified pairs,
connected components.

Contract: ``near_clusters(sets, is_ref, group, settings, known, fingerprints)`` takes the shingle sets of records
in rank order (position 0 = best ranked; dedup passes the records that survive exact dedup), which of them are
reference records, and optionally each record's group (its source, when ``across_sources`` is off), the
signatures already ``known`` for some and the records' 128-bit exact fingerprints. It returns, by position, the
record each one is a near-duplicate of (the best-ranked record of its cluster; itself when kept), their true
Jaccard, every record's MinHash signature and counters for the report. Two reference records are never
compared, nor (with ``group``) two records of different groups. It never sees the records themselves, only
their shingles: dedup ranks the records and turns the clusters into kept records and duplicates.parquet rows.

Steps:
1. MinHash signatures of the shingle sets (``minhash``: word n-grams, character n-grams for CJK).
2. LSH: ``bands`` x ``rows`` slices of each signature, each hashed to 64 bits; records sharing a slice hash in
   some band are candidates. The banding is chosen for recall at the threshold (a pair at exactly the threshold
   becomes a candidate with probability >= 0.99); precision comes from step 3. Candidate pairs are every pair of
   a bucket of at most ``SMALL_BUCKET`` records, and each member with the bucket's best-ranked record in bigger
   ones, so a family of thousands does not cost millions of pairs.
3. Verification: a pair whose signature estimate is far below the threshold (``PREFILTER_SIGMAS`` standard
   deviations) is dropped; the rest count when their true Jaccard similarity (``verify: jaccard``, default) or
   their estimate (``verify: signature``) reaches the threshold; two records of one shingle each (at most
   ``ngram`` tokens) are similar only when their exact fingerprints are equal, never by a shingle hash
   collision. Pairs are measured in two rounds: each record with its best-ranked candidate, then only the pairs
   whose records are not yet in one cluster (measuring a pair inside a cluster cannot change the clusters),
   which at 1M records measures 1.2M of 2M candidates.
4. Clusters are the connected components of the verified pairs (scipy.sparse.csgraph); each record's keeper is
   the best-ranked record of its cluster, and its similarity the true Jaccard with that record.

Each step is a function of its own (``banding``, ``band_hashes``, ``bucket_pairs``, ``eligible``,
``prefiltered``, ``measures``, ``first_candidates``, ``components``, ``best_of_components``,
``similarity_to_keepers``, ``near_stats``): flows/partitioned_dedup.py runs the same steps over partitions on
a Dask cluster, with the same result.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pipeline import minhash
from schemas.mix import DedupSpec

SMALL_BUCKET = 32
PREFILTER_SIGMAS = 5.0
INDEX_SHINGLES = 1 << 23  # shingles that ``ShingleIndex`` indexes at once (64 MB of keys)
Measure = Callable[[np.ndarray], np.ndarray]  # the similarity of each (i, j) pair of records


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """The (bands, rows) with the most rows per band (the fewest false candidates) for which a pair at exactly
    the threshold is still a candidate with probability >= 0.99."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= 0.99:
            return bands, rows
    return num_perm, 1


def band_hash(columns: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each record's slice of its signature, given the slice's columns: shape (rows, records)."""
    h = np.full(columns.shape[1], 0x9E3779B97F4A7C15, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in columns:
            h = (h ^ column.astype(np.uint64)) * np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(31)
    return h


def banding(settings: DedupSpec) -> tuple[int, int]:
    """The (bands, rows) of the settings: as given, or ``lsh_params`` for their threshold."""
    if settings.bands and settings.rows:
        return settings.bands, settings.rows
    return lsh_params(settings.threshold, settings.num_perm)


def bucket_pairs(sorted_hashes: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pairs (first, second) of one band: ``sorted_hashes`` are the band hashes in order, with
    ``members`` (record ids) in rank order within each run of equal hashes (a bucket). A bucket of at most
    ``SMALL_BUCKET`` records gives all its pairs, a bigger one its best member with each of the others; ``first``
    is always the better ranked."""
    starts = np.flatnonzero(np.concatenate(([True], sorted_hashes[1:] != sorted_hashes[:-1])))
    sizes = np.diff(np.append(starts, len(sorted_hashes)))
    firsts, seconds = [members[:0]], [members[:0]]
    for size in np.unique(sizes[sizes > 1]):
        ids = members[starts[sizes == size][:, None] + np.arange(size)]
        if size <= SMALL_BUCKET:
            first, second = np.triu_indices(size, 1)
            firsts.append(ids[:, first].ravel())
            seconds.append(ids[:, second].ravel())
        else:
            firsts.append(np.repeat(ids[:, 0], size - 1))
            seconds.append(ids[:, 1:].ravel())
    return np.concatenate(firsts), np.concatenate(seconds)


def band_hashes(signatures: np.ndarray, band: int, rows: int) -> np.ndarray:
    """Each record's hash of its slice of the signature in ``band``."""
    return band_hash(np.ascontiguousarray(signatures[:, band * rows:(band + 1) * rows].T))


def candidate_pairs(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Unique (i, j) pairs, i < j, of records (by rank: row number = rank) that share a band hash in some band
    (``bucket_pairs``). Each band is independent (a unit of work that a cluster could spread); the pairs found so
    far are made unique every few bands (a similar pair shares most bands), which bounds memory."""
    def band_pairs(band: int) -> np.ndarray:
        hashes = band_hashes(signatures, band, rows)
        order = np.argsort(hashes, kind="stable").astype(np.int64)  # stable: a bucket's members in rank order
        first, second = bucket_pairs(hashes[order], order)
        return (first << 32) | second  # packed i << 32 | j

    threads = os.cpu_count() or 1
    unique = pl.Series(dtype=pl.Int64)
    with ThreadPoolExecutor(threads) as pool:  # numpy releases the GIL
        for first in range(0, bands, 4 * threads):
            found = list(pool.map(band_pairs, range(first, min(first + 4 * threads, bands))))
            unique = pl.concat([unique, pl.Series(np.concatenate(found))]).unique()  # hash-based, parallel
    packed = unique.sort().to_numpy()
    return np.column_stack((packed >> 32, packed & 0xFFFFFFFF))


def eligible(pairs: np.ndarray, is_ref: np.ndarray, group: np.ndarray | None) -> np.ndarray:
    """The pairs that may be compared: never two reference records, and (with ``group``) only within a group."""
    pairs = pairs[~(is_ref[pairs[:, 0]] & is_ref[pairs[:, 1]])]
    return pairs if group is None else pairs[group[pairs[:, 0]] == group[pairs[:, 1]]]


def prefiltered(signatures: np.ndarray, pairs: np.ndarray, threshold: float, num_perm: int) -> np.ndarray:
    """The pairs whose signature estimate is within ``PREFILTER_SIGMAS`` standard deviations of the threshold."""
    sigma = math.sqrt(threshold * (1 - threshold) / num_perm)
    return pairs[estimated_similarity(signatures, pairs) >= threshold - PREFILTER_SIGMAS * sigma]


def estimated_similarity(signatures: np.ndarray, pairs: np.ndarray, batch: int = 1 << 15) -> np.ndarray:
    out = np.empty(len(pairs), dtype=np.float64)
    for start in range(0, len(pairs), batch):
        p = pairs[start:start + batch]
        out[start:start + batch] = (signatures[p[:, 0]] == signatures[p[:, 1]]).mean(axis=1)
    return out


class ShingleIndex:
    """True Jaccard similarity of record pairs, from their shingle hashes. Only the records of the pairs asked
    about are indexed (their distinct hashes sorted into one array), so the cost follows the candidates, not the
    corpus."""

    def __init__(self, sets: minhash.ShingleSets) -> None:
        self.sets = sets

    def jaccard(self, pairs: np.ndarray) -> np.ndarray:
        """Each pair's Jaccard, indexing the records of about ``INDEX_SHINGLES`` shingles at a time (each pair's
        value is its own, so batches only bound the index: 8 bytes for each shingle of a batch's records)."""
        out = np.empty(len(pairs), dtype=np.float64)
        counts = self.sets.counts
        ends = np.cumsum(counts[pairs[:, 0]] + counts[pairs[:, 1]])  # an upper bound: a record may repeat
        first = 0
        while first < len(pairs):
            last = int(np.searchsorted(ends, (ends[first - 1] if first else 0) + INDEX_SHINGLES, side="right"))
            last = max(last, first + 1)
            out[first:last] = self._jaccard(pairs[first:last])
            first = last
        return out

    def _jaccard(self, pairs: np.ndarray) -> np.ndarray:
        involved, local = np.unique(pairs, return_inverse=True)
        local = local.reshape(pairs.shape)
        mine = self.sets.take(involved)
        keys = np.repeat(np.arange(len(involved), dtype=np.uint64), mine.counts)
        keys <<= np.uint64(32)
        keys |= mine.hashes  # record << 32 | hash
        del mine
        keys.sort()
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
        starts = np.searchsorted(keys, np.arange(len(involved) + 1, dtype=np.uint64) << np.uint64(32))
        return _pair_jaccard(keys, starts, local)


def _pair_jaccard(keys: np.ndarray, starts: np.ndarray, pairs: np.ndarray, batch: int = 1 << 20) -> np.ndarray:
    """Jaccard of each (i, j) pair of records whose distinct shingles are ``keys[starts[i]:starts[i + 1]]``
    (``record << 32 | hash``, sorted): each shingle of the smaller set is looked up in the other."""
    sizes = np.diff(starts)
    i, j = pairs[:, 0], pairs[:, 1]
    swap = sizes[i] > sizes[j]
    small, large = np.where(swap, j, i), np.where(swap, i, j)
    # Look-ups grouped by the set they search (and sorted within it) stay in cache: 30x faster than in pair order.
    by_large = np.argsort(large, kind="stable")
    small, large = small[by_large], large[by_large]
    out = np.empty(len(pairs), dtype=np.float64)
    lengths = sizes[small]
    ends = np.cumsum(lengths)
    first = 0
    while first < len(pairs):
        done = ends[first - 1] if first else 0
        last = max(int(np.searchsorted(ends, done + batch, side="right")), first + 1)
        n = lengths[first:last]
        pair = np.repeat(np.arange(last - first), n)
        offset = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        mine = keys[starts[small[first:last]][pair] + offset]
        wanted = (large[first:last][pair].astype(np.uint64) << np.uint64(32)) | (mine & np.uint64(0xFFFFFFFF))
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        shared = np.bincount(pair, weights=keys[at] == wanted, minlength=last - first)
        out[first:last] = shared / (sizes[small[first:last]] + sizes[large[first:last]] - shared)
        first = last
    result = np.empty_like(out)
    result[by_large] = out
    return result


@dataclass
class NearClusters:
    """Near-dedup over the exact survivors, by their position k (0 = best ranked)."""

    keeper: np.ndarray  # position of the record each one is a near-duplicate of (itself when kept)
    similarity: np.ndarray  # true Jaccard with that record (1.0 for itself)
    signatures: np.ndarray
    stats: dict[str, int | float | None]


def near_clusters(sets: minhash.ShingleSets, is_ref: np.ndarray, group: np.ndarray | None, settings: DedupSpec,
                  known: tuple[np.ndarray, np.ndarray] | None = None,
                  fingerprints: np.ndarray | None = None) -> NearClusters:
    """Steps 1-4 of the module docstring over records in rank order, given their shingles (and the signatures
    already ``known`` for some, by position). Pairs of two reference records are never compared; with ``group``
    (the source of each record when ``across_sources`` is off) only pairs within a group are. With their 128-bit
    exact ``fingerprints``, two records of one shingle each are similar only when those are equal."""
    bands, rows = banding(settings)
    n = len(sets)
    signatures = signatures_with(sets, settings, known)
    pairs = eligible(candidate_pairs(signatures, bands, rows), is_ref, group)
    candidates = len(pairs)
    pairs = prefiltered(signatures, pairs, settings.threshold, settings.num_perm)
    measure, jaccard = measures(sets, signatures, fingerprints, settings.verify)
    component, verified, checked = _verified_components(n, pairs, measure, settings.threshold)
    keeper = best_of_components(component)
    similarity = np.ones(n)
    moved = np.flatnonzero(keeper != np.arange(n))
    similarity[moved] = similarity_to_keepers(moved, keeper[moved], verified, jaccard)
    stats = near_stats(bands, rows, candidates, checked, len(verified), np.bincount(keeper))
    return NearClusters(keeper, similarity, signatures, stats)


def signatures_with(sets: minhash.ShingleSets, settings: DedupSpec,
                    known: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The MinHash signature of each record of ``sets``: those ``known`` (positions, signatures) as given, the
    others computed."""
    if known is None:
        return minhash.signatures_of(sets, settings.num_perm, settings.seed)  # no copy of the sets
    signatures = np.empty((len(sets), settings.num_perm), dtype=np.uint32)
    have = np.zeros(len(sets), dtype=bool)
    have[known[0]] = True
    signatures[known[0]] = known[1]
    signatures[~have] = minhash.signatures_of(sets.take(np.flatnonzero(~have)), settings.num_perm, settings.seed)
    return signatures


def measures(sets: minhash.ShingleSets, signatures: np.ndarray, fingerprints: np.ndarray | None,
             verify: str) -> tuple[Measure, Measure]:
    """(what verifies a pair: true Jaccard or the signature estimate, by ``verify``; true Jaccard), for pairs of
    the records of ``sets`` / ``signatures`` by index; with ``fingerprints``, two one-shingle records are similar
    only when their fingerprints are equal."""
    index = ShingleIndex(sets)
    measure: Measure = index.jaccard if verify == "jaccard" else lambda p: estimated_similarity(signatures, p)
    jaccard: Measure = index.jaccard
    if fingerprints is not None:
        measure, jaccard = (_one_shingle_exact(m, sets.counts, fingerprints) for m in (measure, jaccard))
    return measure, jaccard


def best_of_components(component: np.ndarray) -> np.ndarray:
    """Each record's cluster keeper: the best-ranked (lowest index) record of its component."""
    best = np.full(component.max() + 1, len(component), dtype=np.int64)
    np.minimum.at(best, component, np.arange(len(component)))
    return best[component]


def near_stats(bands: int, rows: int, candidates: int, checked: int, verified: int,
               sizes: np.ndarray) -> dict[str, int | float | None]:
    """The report's counters; ``sizes`` holds the size of every cluster (1 for a record kept alone)."""
    return {
        "bands": bands, "rows": rows, "candidate_pairs": candidates, "checked_pairs": checked,
        "verified_pairs": verified, "clusters": int((sizes > 1).sum()), "largest_cluster": int(sizes.max()),
    }


def _one_shingle_exact(measure: Measure, counts: np.ndarray, fingerprints: np.ndarray) -> Measure:
    """``measure``, except for pairs of one-shingle records (at most ``ngram`` tokens: the shingle is all of the
    text, and a 32-bit collision of it would be a Jaccard of 1.0): 1.0 when their fingerprints are equal, else 0."""
    def exact(pairs: np.ndarray) -> np.ndarray:
        out = measure(pairs)
        one = (counts[pairs[:, 0]] == 1) & (counts[pairs[:, 1]] == 1)
        out[one] = (fingerprints[pairs[one, 0]] == fingerprints[pairs[one, 1]]).all(axis=1)
        return out
    return exact


def first_candidates(pairs: np.ndarray) -> np.ndarray:
    """Which pairs are their record j's best-ranked candidate (the lowest i of each j): round 1 of the checks."""
    first = np.zeros(len(pairs), dtype=bool)
    if len(pairs):
        order = np.lexsort((pairs[:, 0], pairs[:, 1]))  # by j, then i: the first of each j is its best candidate
        first[order[np.concatenate(([True], pairs[order[1:], 1] != pairs[order[:-1], 1]))]] = True
    return first


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """The connected component of each of ``n`` records, given the edges (i, j)."""
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _verified_components(n: int, pairs: np.ndarray, measure: Measure,
                         threshold: float) -> tuple[np.ndarray, pl.DataFrame, int]:
    """Connected components of the pairs whose similarity reaches the threshold, measuring as few as possible:
    first each record's pair with its best-ranked candidate, then only the pairs whose records are not yet in
    one component (measuring a pair inside a component cannot change the components). Returns the component of
    each record, the verified pairs (i, j, similarity) and how many pairs were measured."""
    first = first_candidates(pairs)
    verified: list[pl.DataFrame] = []
    checked = 0
    component = np.arange(n)
    for batch in (pairs[first], pairs[~first]):
        if len(batch) and verified:  # only pairs that could still join two components
            batch = batch[component[batch[:, 0]] != component[batch[:, 1]]]
        similarity = measure(batch)
        checked += len(batch)
        keep = similarity >= threshold
        verified.append(pl.DataFrame({"i": batch[keep, 0], "j": batch[keep, 1], "similarity": similarity[keep]}))
        edges = pl.concat(verified)
        component = components(n, edges["i"].to_numpy(), edges["j"].to_numpy())
    return component, pl.concat(verified), checked


def similarity_to_keepers(moved: np.ndarray, keepers: np.ndarray, verified: pl.DataFrame,
                          measure: Measure) -> np.ndarray:
    """Each removed record's similarity with the record kept in its place: reused from its verified pair when
    the two were compared directly, measured otherwise."""
    known = pl.DataFrame({"i": keepers, "j": moved}).join(verified, on=["i", "j"], how="left",
                                                           maintain_order="left")["similarity"].to_numpy().copy()
    missing = np.isnan(known)
    known[missing] = measure(np.column_stack((moved[missing], keepers[missing])))
    return known
