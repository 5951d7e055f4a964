"""Exact and near-duplicate removal, across sources and against reference sets.

Contract: ``deduplicate(records, settings, priority, references)`` takes the validated records of a build and
returns the records it keeps (in their input order), one row per removed record (``DUPLICATE_SCHEMA``, written
to duplicates.parquet), counts for the report, and the MinHash signatures of the kept records (the build's
signature index, which a later build can dedup against). References are never changed.

Which copy stays: records are ranked by source priority (reference sets first, then the sources in mix.yaml
order), then by longer output, then by input order; each group of duplicates keeps its best-ranked record.

Exact: the key text (``key: record`` = history + instruction + input + output, ``prompt`` = without the
output) with case folded and punctuation and whitespace runs turned into single spaces, compared by a 128-bit
fingerprint.

Near, over the records that survive exact dedup:
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
4. Clusters are the connected components of the verified pairs (scipy.sparse.csgraph); every record but the
   best-ranked one of a cluster is removed, with ``kept_id`` naming that one and ``similarity`` their true Jaccard.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pipeline import minhash
from schemas.mix import DedupSpec

T = TypeVar("T")

STAGE = "dedup"
DUPLICATE_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(), "source": pl.String(), "kept_id": pl.String(), "kept_source": pl.String(),
    "kept_in": pl.String(), "kind": pl.String(), "similarity": pl.Float64(),
}
THIS_BUILD = "build"  # ``kept_in`` of a duplicate whose kept copy is in this build, not in a reference set
SMALL_BUCKET = 32
PREFILTER_SIGMAS = 5.0
SHARD_ROWS = 1 << 15  # records tokenized at a time per thread: bounds the memory of their token lists


@dataclass(frozen=True)
class Reference:
    """A reference set: its records (canonical columns) and, when it is an earlier build with a compatible
    index, their signatures (rows aligned with ``records``)."""

    name: str
    records: pl.DataFrame
    signatures: np.ndarray | None = None


@dataclass
class DedupResult:
    kept: pl.DataFrame
    duplicates: pl.DataFrame
    signatures: np.ndarray | None  # rows aligned with ``kept``; None when near dedup is off
    stats: dict[str, int | float | None] = field(default_factory=dict)


def key_text(key: str) -> pl.Expr:
    """The text a record is compared by: earlier turns, then instruction and input (and output for ``record``)."""
    turns = pl.col("history").list.eval(
        pl.concat_str(pl.element().struct.field("user"), pl.element().struct.field("assistant"), separator="\n")
    ).list.join("\n")
    fields = [turns, pl.col("instruction"), pl.col("input")] + ([pl.col("output")] if key == "record" else [])
    return pl.concat_str(fields, separator="\n", ignore_nulls=True)


def exact_key(text: pl.Expr) -> pl.Expr:
    """The exact-dedup key as an expression (the same folding as the token join: case, punctuation, spaces)."""
    return minhash.token_series_expr(text).list.join(" ")


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


def candidate_pairs(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Unique (i, j) pairs, i < j, of records (by rank: row number = rank) that share a band hash in some band.
    A bucket of at most ``SMALL_BUCKET`` records gives all its pairs, a bigger one each member with its best
    record. Each band is independent (a unit of work that a cluster could spread); the pairs found so far are
    made unique every few bands (a similar pair shares most bands), which bounds memory."""
    def band_pairs(band: int) -> np.ndarray:
        hashes = band_hash(np.ascontiguousarray(signatures[:, band * rows:(band + 1) * rows].T))
        order = np.argsort(hashes, kind="stable").astype(np.int64)  # stable: a bucket's members in rank order
        sorted_hashes = hashes[order]
        starts = np.flatnonzero(np.concatenate(([True], sorted_hashes[1:] != sorted_hashes[:-1])))
        sizes = np.diff(np.append(starts, len(hashes)))
        found = [np.empty(0, dtype=np.int64)]
        for size in np.unique(sizes[sizes > 1]):
            members = order[starts[sizes == size][:, None] + np.arange(size)]
            if size <= SMALL_BUCKET:
                first, second = np.triu_indices(size, 1)
                found.append(((members[:, first] << 32) | members[:, second]).ravel())
            else:
                found.append(((members[:, :1] << 32) | members[:, 1:]).ravel())
        return np.concatenate(found)  # packed i << 32 | j

    threads = os.cpu_count() or 1
    unique = pl.Series(dtype=pl.Int64)
    with ThreadPoolExecutor(threads) as pool:  # numpy releases the GIL
        for first in range(0, bands, 4 * threads):
            found = list(pool.map(band_pairs, range(first, min(first + 4 * threads, bands))))
            unique = pl.concat([unique, pl.Series(np.concatenate(found))]).unique()  # hash-based, parallel
    packed = unique.sort().to_numpy()
    return np.column_stack((packed >> 32, packed & 0xFFFFFFFF))


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
        if not len(pairs):
            return np.empty(0)
        involved, local = np.unique(pairs, return_inverse=True)
        local = local.reshape(pairs.shape)
        mine = self.sets.take(involved)
        owner = np.repeat(np.arange(len(involved), dtype=np.uint64), mine.counts)
        keys = np.sort((owner << np.uint64(32)) | mine.hashes.astype(np.uint64))
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
        starts = np.searchsorted(keys, np.arange(len(involved) + 1, dtype=np.uint64) << np.uint64(32))
        return _pair_jaccard(keys, starts, local)


def _pair_jaccard(keys: np.ndarray, starts: np.ndarray, pairs: np.ndarray, batch: int = 1 << 22) -> np.ndarray:
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


def keys_and_shingles(texts: pl.Series, ngram: int) -> tuple[pl.DataFrame, minhash.ShingleSets]:
    """The exact-dedup key and the shingle hashes of each text, from one tokenization. The key is the tokens
    joined by spaces (case, punctuation and whitespace folded), kept as two 64-bit hashes with different seeds
    (a 128-bit fingerprint: equal keys always match, different ones collide with probability ~n^2 / 2^129), so
    a million keys take 16 MB instead of the texts' size. Shards run on all cores (polars and numpy release the
    GIL); a shard's token lists are dropped once it is hashed, which bounds memory."""
    def shard(start: int, rows: int) -> tuple[pl.DataFrame, minhash.ShingleSets]:
        tokens = minhash.token_series(texts.slice(start, rows))
        return _fingerprints(tokens), minhash.shingle_sets_of_tokens(tokens, ngram)

    parts = _by_slices(len(texts), shard)
    keys = pl.concat([k for k, _ in parts]) if parts else pl.DataFrame(schema=FINGERPRINT_SCHEMA)
    return keys, minhash.ShingleSets.concat([sets for _, sets in parts])


FINGERPRINT_SCHEMA = {"key_a": pl.UInt64(), "key_b": pl.UInt64()}


def _fingerprints(tokens: pl.Series) -> pl.DataFrame:
    key = tokens.list.join(" ")
    return pl.DataFrame({"key_a": key.hash(1), "key_b": key.hash(2)})


def exact_fingerprints(records: pl.DataFrame, key: str = "record") -> pl.DataFrame:
    """The 128-bit fingerprint (key_a, key_b) of each record's exact-dedup key, as ``deduplicate`` computes it,
    a slice of records at a time on all cores: only a slice's folded text and tokens are held at once, never
    the whole frame's (a million records' folded text is about a gigabyte)."""
    def shard(start: int, rows: int) -> pl.DataFrame:
        return _fingerprints(minhash.token_series(records.slice(start, rows).select(key_text(key)).to_series()))

    parts = _by_slices(records.height, shard)
    return pl.concat(parts) if parts else pl.DataFrame(schema=FINGERPRINT_SCHEMA)


def _by_slices(n: int, work: Callable[[int, int], T]) -> list[T]:
    """``work(start, rows)`` over slices of ``n`` records, in order, on all cores (polars and numpy release the
    GIL); at most ``SHARD_ROWS`` records a slice, which bounds what one slice holds."""
    threads = os.cpu_count() or 1
    rows = max(1, min(SHARD_ROWS, -(-n // threads)))
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda start: work(start, rows), range(0, n, rows)))


def _universe(records: pl.DataFrame, settings: DedupSpec, priority: Sequence[str],
              references: Sequence[Reference]) -> pl.DataFrame:
    """References and records in rank order, with their key text: row number = rank."""
    parts = [
        ref.records.select(
            "id", "source", pl.lit(ref.name).alias("ref"), pl.lit(-len(references) + k, pl.Int64).alias("_priority"),
            key_text(settings.key).alias("text"), pl.col("output").str.len_chars().alias("_length"),
            pl.int_range(pl.len()).alias("_order"), pl.int_range(pl.len()).alias("_ref_row"),
        )
        for k, ref in enumerate(references)
    ]
    rank = {name: k for k, name in enumerate(priority)}
    parts.append(records.select(
        "id", "source", pl.lit(None, pl.String).alias("ref"),
        pl.col("source").replace_strict(rank, return_dtype=pl.Int64).alias("_priority"),
        key_text(settings.key).alias("text"), pl.col("output").str.len_chars().alias("_length"),
        pl.int_range(pl.len()).alias("_order"), pl.lit(None, pl.Int64).alias("_ref_row"),
    ))
    universe = pl.concat(parts).sort(["_priority", "_length", "_order"], descending=[False, True, False])
    return universe.with_row_index("row").drop("_length")


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
    bands, rows = (settings.bands, settings.rows) if settings.bands and settings.rows else lsh_params(
        settings.threshold, settings.num_perm)
    n = len(sets)
    signatures = np.empty((n, settings.num_perm), dtype=np.uint32)
    have = np.zeros(n, dtype=bool)
    if known is not None:
        have[known[0]] = True
        signatures[known[0]] = known[1]
    signatures[~have] = minhash.signatures_of(sets.take(np.flatnonzero(~have)), settings.num_perm, settings.seed)
    index = ShingleIndex(sets)
    pairs = candidate_pairs(signatures, bands, rows)
    pairs = pairs[~(is_ref[pairs[:, 0]] & is_ref[pairs[:, 1]])]
    if group is not None:
        pairs = pairs[group[pairs[:, 0]] == group[pairs[:, 1]]]
    candidates = len(pairs)
    sigma = math.sqrt(settings.threshold * (1 - settings.threshold) / settings.num_perm)
    pairs = pairs[estimated_similarity(signatures, pairs) >= settings.threshold - PREFILTER_SIGMAS * sigma]
    measure = index.jaccard if settings.verify == "jaccard" else lambda p: estimated_similarity(signatures, p)
    jaccard = index.jaccard
    if fingerprints is not None:
        measure, jaccard = (_one_shingle_exact(m, sets.counts, fingerprints) for m in (measure, jaccard))
    component, verified, checked = _verified_components(n, pairs, measure, settings.threshold)
    best = np.full(component.max() + 1, n, dtype=np.int64)
    np.minimum.at(best, component, np.arange(n))
    keeper = best[component]
    similarity = np.ones(n)
    moved = np.flatnonzero(keeper != np.arange(n))
    similarity[moved] = _similarity_to_keepers(moved, keeper[moved], verified, jaccard)
    sizes = np.bincount(keeper)
    stats: dict[str, int | float | None] = {
        "bands": bands, "rows": rows, "candidate_pairs": candidates, "checked_pairs": checked,
        "verified_pairs": len(verified),
        "clusters": int((sizes > 1).sum()), "largest_cluster": int(sizes.max()),
    }
    return NearClusters(keeper, similarity, signatures, stats)


def _one_shingle_exact(measure: Callable[[np.ndarray], np.ndarray], counts: np.ndarray,
                       fingerprints: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``measure``, except for pairs of one-shingle records (at most ``ngram`` tokens: the shingle is all of the
    text, and a 32-bit collision of it would be a Jaccard of 1.0): 1.0 when their fingerprints are equal, else 0."""
    def exact(pairs: np.ndarray) -> np.ndarray:
        out = measure(pairs)
        one = (counts[pairs[:, 0]] == 1) & (counts[pairs[:, 1]] == 1)
        out[one] = (fingerprints[pairs[one, 0]] == fingerprints[pairs[one, 1]]).all(axis=1)
        return out
    return exact


def _verified_components(n: int, pairs: np.ndarray, measure: Callable[[np.ndarray], np.ndarray],
                         threshold: float) -> tuple[np.ndarray, pl.DataFrame, int]:
    """Connected components of the pairs whose similarity reaches the threshold, measuring as few as possible:
    first each record's pair with its best-ranked candidate, then only the pairs whose records are not yet in
    one component (measuring a pair inside a component cannot change the components). Returns the component of
    each record, the verified pairs (i, j, similarity) and how many pairs were measured."""
    first = np.zeros(len(pairs), dtype=bool)
    if len(pairs):
        order = np.lexsort((pairs[:, 0], pairs[:, 1]))  # by j, then i: the first of each j is its best candidate
        first[order[np.concatenate(([True], pairs[order[1:], 1] != pairs[order[:-1], 1]))]] = True
    verified, checked = [], 0
    component = np.arange(n)
    for batch in (pairs[first], pairs[~first]):
        if len(batch) and verified:  # only pairs that could still join two components
            batch = batch[component[batch[:, 0]] != component[batch[:, 1]]]
        similarity = measure(batch)
        checked += len(batch)
        keep = similarity >= threshold
        verified.append(pl.DataFrame({"i": batch[keep, 0], "j": batch[keep, 1], "similarity": similarity[keep]}))
        edges = pl.concat(verified)
        graph = coo_matrix((np.ones(edges.height), (edges["i"].to_numpy(), edges["j"].to_numpy())), shape=(n, n))
        component = connected_components(graph, directed=False)[1]
    return component, pl.concat(verified), checked


def _similarity_to_keepers(moved: np.ndarray, keepers: np.ndarray, verified: pl.DataFrame,
                           measure: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Each removed record's similarity with the record kept in its place: reused from its verified pair when
    the two were compared directly, measured otherwise."""
    known = pl.DataFrame({"i": keepers, "j": moved}).join(verified, on=["i", "j"], how="left",
                                                           maintain_order="left")["similarity"].to_numpy().copy()
    missing = np.isnan(known)
    known[missing] = measure(np.column_stack((moved[missing], keepers[missing])))
    return known


def deduplicate(records: pl.DataFrame, settings: DedupSpec, priority: Sequence[str],
                references: Sequence[Reference] = ()) -> DedupResult:
    universe = _universe(records, settings, priority, references)
    n = universe.height
    itself = np.arange(n, dtype=np.int64)
    scope = [] if settings.across_sources else ["source"]
    keys, sets = keys_and_shingles(universe["text"], settings.ngram)
    universe = universe.drop("text")
    exact_keeper = itself
    if settings.exact:
        exact_keeper = pl.concat([universe.select("row", "source"), keys], how="horizontal").select(
            pl.col("row").first().over("key_a", "key_b", *scope)).to_series().to_numpy().astype(np.int64)
    survivors = np.flatnonzero(exact_keeper == itself)
    fingerprints = keys.to_numpy()[survivors] if settings.near else None  # only near dedup's check needs them
    del keys
    sets = sets.take(survivors)
    keeper, similarity, signatures = exact_keeper, np.ones(n), None
    stats: dict[str, int | float | None] = {"records": records.height, "references": n - records.height}
    if settings.near and len(survivors):
        group = None
        if scope:
            group = universe["source"].gather(survivors).cast(pl.Categorical).to_physical().to_numpy()
        near = near_clusters(sets, universe["ref"].is_not_null().to_numpy()[survivors],
                             group, settings, _known_signatures(universe, survivors, references), fingerprints)
        final, near_similarity = itself.copy(), np.ones(n)
        final[survivors], near_similarity[survivors] = survivors[near.keeper], near.similarity
        keeper, similarity = final[exact_keeper], near_similarity[exact_keeper]  # an exact copy shares its twin's fate
        signatures = near.signatures
        stats.update(near.stats)
    return _result(records, universe, exact_keeper, keeper, similarity, signatures, survivors, stats)


def _known_signatures(universe: pl.DataFrame, survivors: np.ndarray,
                      references: Sequence[Reference]) -> tuple[np.ndarray, np.ndarray] | None:
    """Stored signatures of the reference records among the survivors: (survivor positions, signatures)."""
    found = universe.select("ref", "_ref_row")[survivors].with_row_index("position")
    positions, signatures = [], []
    for ref in references:
        if ref.signatures is not None:
            mine = found.filter(pl.col("ref") == ref.name)
            positions.append(mine["position"].to_numpy().astype(np.int64))
            signatures.append(ref.signatures[mine["_ref_row"].to_numpy()])
    return (np.concatenate(positions), np.concatenate(signatures)) if positions else None


def _result(records: pl.DataFrame, universe: pl.DataFrame, exact_keeper: np.ndarray, keeper: np.ndarray,
            similarity: np.ndarray, signatures: np.ndarray | None, survivors: np.ndarray,
            stats: dict[str, int | float | None]) -> DedupResult:
    """The kept records in input order with their signatures (those of exact survivors, in ``survivors``
    order), and the removed ones as rows of duplicates.parquet."""
    table = universe.select("row", "id", "source", "ref", "_order").with_columns(
        keeper=pl.Series(keeper), similarity=pl.Series(similarity),
        kind=pl.when(pl.Series(keeper == exact_keeper)).then(pl.lit("exact")).otherwise(pl.lit("near")),
    ).filter(pl.col("ref").is_null())
    keepers = universe.select(pl.col("row").alias("keeper"), pl.col("id").alias("kept_id"),
                              pl.col("source").alias("kept_source"),
                              pl.col("ref").fill_null(THIS_BUILD).alias("kept_in"))
    removed = table.filter(pl.col("keeper") != pl.col("row"))
    duplicates = removed.join(keepers, on="keeper", how="left").sort("_order").select(*DUPLICATE_SCHEMA)
    stats.update({f"{kind}_removed": int((duplicates["kind"] == kind).sum()) for kind in ("exact", "near")})
    kept_rows = table.filter(pl.col("keeper") == pl.col("row")).sort("_order")
    kept = records[kept_rows["_order"].to_numpy()]
    kept_signatures = None
    if signatures is not None:  # a kept record survived exact dedup, so it has a signature
        kept_signatures = signatures[np.searchsorted(survivors, kept_rows["row"].to_numpy())]
    return DedupResult(kept, duplicates.cast(DUPLICATE_SCHEMA), kept_signatures, stats)
