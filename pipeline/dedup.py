"""Exact and near-duplicate removal, across sources and against reference sets: the dedup stage.

Contract: ``deduplicate(records, settings, priority, references)`` takes the validated records of a build and
returns the records it keeps (in their input order), one row per removed record (``DUPLICATE_SCHEMA``, written
to duplicates.parquet), counts for the report, and the MinHash signatures of the kept records (the build's
signature index, which a later build can dedup against). References are never changed.

Which copy stays: records are ranked by source priority (reference sets first, then the sources in mix.yaml
order), then by longer output, then by input order; each group of duplicates keeps its best-ranked record.

Exact: the key text (``key: record`` = history + instruction + input + output, ``prompt`` = without the
output) with case folded and punctuation and whitespace runs turned into single spaces, compared by a 128-bit
fingerprint.

Near, over the records that survive exact dedup: ``near_dups.near_clusters`` (MinHash LSH candidates, verified
by true Jaccard or the signature estimate, clustered as connected components; its module docstring has the
steps) names for each survivor the best-ranked record of its cluster. Every record but that one is removed, with
``kept_id`` naming it and ``similarity`` their true Jaccard; an exact copy shares the fate of the copy it was
removed for.

The pieces (``rank_columns`` and ``in_rank_order`` for the ranks, ``keys_and_shingles``, ``exact_keepers``,
``outcomes`` for the rows of duplicates.parquet) are what flows/partitioned_dedup.py runs per partition and
per bucket on a Dask cluster, with the same result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import polars as pl

from pipeline import minhash, near_dups
from pipeline.io import heap
from schemas.mix import DedupSpec

T = TypeVar("T")

STAGE = "dedup"
DUPLICATE_SCHEMA = pl.Schema({
    "id": pl.String(), "source": pl.String(), "kept_id": pl.String(), "kept_source": pl.String(),
    "kept_in": pl.String(), "kind": pl.String(), "similarity": pl.Float64(),
})
THIS_BUILD = "build"  # ``kept_in`` of a duplicate whose kept copy is in this build, not in a reference set
SLICE_ROWS = 1 << 15  # records tokenized at a time per thread: bounds the memory of their token lists
SLICE_BYTES = 8 << 20  # and about this much key text: a slice of long records holds ~80 MB of tokens at once


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
    fingerprints: pl.DataFrame | None = None  # key_a, key_b of each kept record (``key: record`` only)


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


def keys_and_shingles(frame: pl.DataFrame, key: str, ngram: int,
                      shingles: bool = True) -> tuple[pl.DataFrame, minhash.ShingleSets | None]:
    """The exact-dedup key and (with ``shingles``) the shingle hashes of each record of ``frame``, from one
    tokenization of its key text (``key_text(key)``). The key is the tokens joined by spaces (case, punctuation
    and whitespace folded), kept as two 64-bit hashes with different seeds (a 128-bit fingerprint: equal keys
    always match, different ones collide with probability ~n^2 / 2^129), so a million keys take 16 MB instead of
    the texts' size. Slices run on all cores (polars and numpy release the GIL); only a slice's key text and
    token lists are held at once, never the whole frame's (a million records' key text is about 500 MB)."""
    def one_slice(start: int, rows: int) -> tuple[pl.DataFrame, minhash.ShingleSets | None]:
        tokens = minhash.token_series(frame.slice(start, rows).select(key_text(key)).to_series())
        return _fingerprints(tokens), minhash.shingle_sets_of_tokens(tokens, ngram) if shingles else None

    parts = _by_slices(frame, key, one_slice)
    keys = pl.concat([k for k, _ in parts]) if parts else pl.DataFrame(schema=FINGERPRINT_SCHEMA)
    slices = [s for _, s in parts if s is not None]
    del parts  # ``concat`` lets each slice's sets go once copied
    return keys, minhash.ShingleSets.concat(slices) if shingles else None


FINGERPRINT_SCHEMA = {"key_a": pl.UInt64(), "key_b": pl.UInt64()}


def _fingerprints(tokens: pl.Series) -> pl.DataFrame:
    key = tokens.list.join(" ")
    return pl.DataFrame({"key_a": key.hash(1), "key_b": key.hash(2)})


def exact_fingerprints(records: pl.DataFrame, key: str = "record") -> pl.DataFrame:
    """The 128-bit fingerprint (key_a, key_b) of each record's exact-dedup key, as ``deduplicate`` computes it."""
    return keys_and_shingles(records, key, 0, shingles=False)[0]


def _by_slices(frame: pl.DataFrame, key: str, work: Callable[[int, int], T]) -> list[T]:
    """``work(start, rows)`` over slices of ``frame``'s records, in order, on all cores (polars and numpy release
    the GIL). A slice holds at most ``SLICE_ROWS`` records and about ``SLICE_BYTES`` of key text (a record
    more when one alone is larger), which bounds what a slice holds however long the records are: 32k long
    records' token lists and shingle temporaries took 320 MB a thread, 32k short ones a tenth of that."""
    threads = os.cpu_count() or 1
    rows = max(1, min(SLICE_ROWS, -(-frame.height // threads)))
    ends = np.cumsum(frame.select(_key_bytes(key)).to_series().to_numpy())
    bounds, start = [], 0
    while start < frame.height:
        end = int(np.searchsorted(ends, (ends[start - 1] if start else 0) + SLICE_BYTES, side="right"))
        end = min(max(end, start + 1), start + rows)
        bounds.append((start, end - start))
        start = end
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda bound: work(*bound), bounds))


def _key_bytes(key: str) -> pl.Expr:
    """About the size of each record's key text in bytes (the fields' lengths, without separators)."""
    turns = pl.col("history").list.eval(pl.element().struct.field("user").str.len_bytes()
                                        + pl.element().struct.field("assistant").str.len_bytes()).list.sum()
    fields = ["instruction", "input"] + (["output"] if key == "record" else [])
    return pl.sum_horizontal(turns.fill_null(0), *(pl.col(name).str.len_bytes().fill_null(0) for name in fields))


def _universe(frames: Sequence[pl.DataFrame], settings: DedupSpec, priority: Sequence[str],
              references: Sequence[Reference]) -> pl.DataFrame:
    """The references' and the records' rank columns (``frames``: the references' records, then this build's) in
    rank order, row number = rank, with ``_src``: the record's row in the concatenation of ``frames``."""
    offsets = np.cumsum([0, *(frame.height for frame in frames)])
    parts = [rank_columns(ref.records, settings, ref_priority(k, len(references)), ref.name)
             for k, ref in enumerate(references)]
    parts.append(rank_columns(frames[-1], settings, source_priority(priority)))
    return in_rank_order([part.with_columns(_src=pl.col("_order") + int(offset))
                          for part, offset in zip(parts, offsets, strict=False)])


def ref_priority(k: int, references: int) -> pl.Expr:
    """The priority of the k-th of ``references`` reference sets: before every source, in their order."""
    return pl.lit(-references + k, pl.Int64)


def source_priority(priority: Sequence[str]) -> pl.Expr:
    """A record's priority: its source's place in ``priority`` (mix.yaml order)."""
    return pl.col("source").replace_strict({name: k for k, name in enumerate(priority)}, return_dtype=pl.Int64)


def rank_columns(frame: pl.DataFrame, settings: DedupSpec, priority: pl.Expr, ref: str | None = None) -> pl.DataFrame:
    """What ranks the records of ``frame`` (of reference set ``ref``, or of this build when None): id, source,
    ref, _priority, _length (of the output), _order (input order, from 0) and _ref_row (a reference record's
    row in its set). No text: ``keys_and_shingles`` reads the key text from the records a slice at a time."""
    order = pl.int_range(pl.len())
    return frame.select(
        "id", "source", pl.lit(ref, pl.String).alias("ref"), priority.alias("_priority"),
        pl.col("output").str.len_chars().alias("_length"),
        order.alias("_order"), (order if ref is not None else pl.lit(None, pl.Int64)).alias("_ref_row"),
    )


def in_rank_order(parts: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """The ``rank_columns`` of every part (order offsets applied) sorted by rank: source priority, then longer
    output, then input order; ``row`` = rank."""
    universe = pl.concat(parts).sort(["_priority", "_length", "_order"], descending=[False, True, False])
    return universe.with_row_index("row").drop("_length")


def exact_keepers(ranked: pl.DataFrame, scope: Sequence[str]) -> np.ndarray:
    """The ``row`` of the best-ranked record with each record's fingerprint (key_a, key_b, and the ``scope``
    columns), given records in rank order."""
    return ranked.select(pl.col("row").first().over("key_a", "key_b", *scope)).to_series().to_numpy().astype(
        np.int64)


@dataclass
class Found:
    """What dedup decided, by universe row (rank): each row's exact keeper, final keeper and similarity to it,
    the exact survivors (rows, sorted) with their signatures (None when near dedup is off), the counts, and
    with ``key: record`` the fingerprint of every row."""

    universe: pl.DataFrame  # rank columns in rank order (``_universe``)
    exact_keeper: np.ndarray
    keeper: np.ndarray
    similarity: np.ndarray
    survivors: np.ndarray
    signatures: np.ndarray | None
    stats: dict[str, int | float | None]
    keys: pl.DataFrame | None


def deduplicate(records: pl.DataFrame, settings: DedupSpec, priority: Sequence[str],
                references: Sequence[Reference] = ()) -> DedupResult:
    """The kept records in input order with their signatures (those of exact survivors) and fingerprints,
    and the removed ones as rows of duplicates.parquet. The survivors' signatures are let go once the kept
    ones are taken from them, before the kept records are: the two largest arrays are never held with both."""
    found = find(records, settings, priority, references)
    duplicates, kept_rows = outcomes(found.universe, found.exact_keeper, found.keeper, found.similarity, found.stats)
    rows = kept_rows["row"].to_numpy()
    signatures = None
    if found.signatures is not None:  # a kept record survived exact dedup, so it has a signature
        signatures = found.signatures[np.searchsorted(found.survivors, rows)]
    keys = None if found.keys is None else found.keys[rows]
    stats = found.stats
    del found
    kept = np.zeros(records.height, dtype=bool)
    kept[kept_rows["_order"].to_numpy()] = True  # a filter, not a gather: 0.2 s and 0.1 GB at 1M, not 6 s and 1 GB
    return DedupResult(records.filter(pl.Series(kept)), duplicates, signatures, stats, keys)


def duplicates_of(records: pl.DataFrame, settings: DedupSpec, priority: Sequence[str],
                  references: Sequence[Reference] = ()) -> pl.DataFrame:
    """The rows of duplicates.parquet that ``deduplicate`` gives, without the kept records and signatures."""
    found = find(records, settings, priority, references)
    return outcomes(found.universe, found.exact_keeper, found.keeper, found.similarity, found.stats)[0]


def find(records: pl.DataFrame, settings: DedupSpec, priority: Sequence[str],
         references: Sequence[Reference] = ()) -> Found:
    """Exact then near dedup over the references and the records, by rank. Keys and shingles are computed in
    input order, each frame a slice at a time, then taken in rank order (``_src``)."""
    frames = [*(ref.records for ref in references), records]
    universe = _universe(frames, settings, priority, references)
    n = universe.height
    itself = np.arange(n, dtype=np.int64)
    scope = [] if settings.across_sources else ["source"]
    parts = [keys_and_shingles(frame, settings.key, settings.ngram, settings.near) for frame in frames]
    source = universe["_src"].to_numpy()
    keys = pl.concat([k for k, _ in parts])[source]
    slices = [s for _, s in parts if s is not None]
    del parts
    sets = minhash.ShingleSets.concat(slices) if settings.near else None
    heap.trim()  # the slices' numpy temporaries, freed in the worker threads' malloc arenas
    exact_keeper = itself
    if settings.exact:
        exact_keeper = exact_keepers(pl.concat([universe.select("row", "source"), keys], how="horizontal"), scope)
    survivors = np.flatnonzero(exact_keeper == itself)
    keeper, similarity, signatures = exact_keeper, np.ones(n), None
    stats: dict[str, int | float | None] = {"records": records.height, "references": n - records.height}
    if sets is not None and len(survivors):
        sets = sets.take(source[survivors])  # the survivors' shingles, in rank order
        group = None
        if scope:
            group = universe["source"].gather(survivors).cast(pl.Categorical).to_physical().to_numpy()
        near = near_dups.near_clusters(sets, universe["ref"].is_not_null().to_numpy()[survivors], group, settings,
                                       _known_signatures(universe, survivors, references),
                                       keys.to_numpy()[survivors])  # only near dedup's check needs them
        del sets
        final, near_similarity = itself.copy(), np.ones(n)
        final[survivors], near_similarity[survivors] = survivors[near.keeper], near.similarity
        keeper, similarity = final[exact_keeper], near_similarity[exact_keeper]  # an exact copy shares its twin's fate
        signatures = near.signatures
        stats.update(near.stats)
    return Found(universe, exact_keeper, keeper, similarity, survivors, signatures, stats,
                 keys if settings.key == "record" else None)


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


def outcomes(universe: pl.DataFrame, exact_keeper: np.ndarray, keeper: np.ndarray, similarity: np.ndarray,
             stats: dict[str, int | float | None]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Given every universe row's keeper (by row) and similarity to it, the rows of duplicates.parquet (in input
    order) and the kept records of this build (``row``, ``_order``, in input order); counts the removals into
    ``stats``. ``universe`` needs row (0..n-1, in order), id, source, ref and _order."""
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
    kept_rows = table.filter(pl.col("keeper") == pl.col("row")).select("row", "_order").sort("_order")
    return duplicates.cast(DUPLICATE_SCHEMA), kept_rows
