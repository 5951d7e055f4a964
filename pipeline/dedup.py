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
from schemas.mix import DedupSpec

T = TypeVar("T")

STAGE = "dedup"
DUPLICATE_SCHEMA = pl.Schema({
    "id": pl.String(), "source": pl.String(), "kept_id": pl.String(), "kept_source": pl.String(),
    "kept_in": pl.String(), "kind": pl.String(), "similarity": pl.Float64(),
})
THIS_BUILD = "build"  # ``kept_in`` of a duplicate whose kept copy is in this build, not in a reference set
SLICE_ROWS = 1 << 15  # records tokenized at a time per thread: bounds the memory of their token lists


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


def keys_and_shingles(texts: pl.Series, ngram: int) -> tuple[pl.DataFrame, minhash.ShingleSets]:
    """The exact-dedup key and the shingle hashes of each text, from one tokenization. The key is the tokens
    joined by spaces (case, punctuation and whitespace folded), kept as two 64-bit hashes with different seeds
    (a 128-bit fingerprint: equal keys always match, different ones collide with probability ~n^2 / 2^129), so
    a million keys take 16 MB instead of the texts' size. Slices run on all cores (polars and numpy release the
    GIL); a slice's token lists are dropped once it is hashed, which bounds memory."""
    def one_slice(start: int, rows: int) -> tuple[pl.DataFrame, minhash.ShingleSets]:
        tokens = minhash.token_series(texts.slice(start, rows))
        return _fingerprints(tokens), minhash.shingle_sets_of_tokens(tokens, ngram)

    parts = _by_slices(len(texts), one_slice)
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
    def one_slice(start: int, rows: int) -> pl.DataFrame:
        return _fingerprints(minhash.token_series(records.slice(start, rows).select(key_text(key)).to_series()))

    parts = _by_slices(records.height, one_slice)
    return pl.concat(parts) if parts else pl.DataFrame(schema=FINGERPRINT_SCHEMA)


def _by_slices(n: int, work: Callable[[int, int], T]) -> list[T]:
    """``work(start, rows)`` over slices of ``n`` records, in order, on all cores (polars and numpy release the
    GIL); at most ``SLICE_ROWS`` records a slice, which bounds what one slice holds."""
    threads = os.cpu_count() or 1
    rows = max(1, min(SLICE_ROWS, -(-n // threads)))
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda start: work(start, rows), range(0, n, rows)))


def _universe(records: pl.DataFrame, settings: DedupSpec, priority: Sequence[str],
              references: Sequence[Reference]) -> pl.DataFrame:
    """References and records in rank order, with their key text: row number = rank."""
    parts = [rank_columns(ref.records, settings, ref_priority(k, len(references)), ref.name)
             for k, ref in enumerate(references)]
    parts.append(rank_columns(records, settings, source_priority(priority)))
    return in_rank_order(parts)


def ref_priority(k: int, references: int) -> pl.Expr:
    """The priority of the k-th of ``references`` reference sets: before every source, in their order."""
    return pl.lit(-references + k, pl.Int64)


def source_priority(priority: Sequence[str]) -> pl.Expr:
    """A record's priority: its source's place in ``priority`` (mix.yaml order)."""
    return pl.col("source").replace_strict({name: k for k, name in enumerate(priority)}, return_dtype=pl.Int64)


def rank_columns(frame: pl.DataFrame, settings: DedupSpec, priority: pl.Expr, ref: str | None = None) -> pl.DataFrame:
    """What ranks the records of ``frame`` (of reference set ``ref``, or of this build when None) and their key
    text: id, source, ref, _priority, text, _length (of the output), _order (input order, from 0) and _ref_row
    (a reference record's row in its set)."""
    order = pl.int_range(pl.len())
    return frame.select(
        "id", "source", pl.lit(ref, pl.String).alias("ref"), priority.alias("_priority"),
        key_text(settings.key).alias("text"), pl.col("output").str.len_chars().alias("_length"),
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
        exact_keeper = exact_keepers(pl.concat([universe.select("row", "source"), keys], how="horizontal"), scope)
    survivors = np.flatnonzero(exact_keeper == itself)
    fingerprints = keys.to_numpy()[survivors] if settings.near else None  # only near dedup's check needs them
    record_keys = keys if settings.key == "record" else None  # what the split report checks: see _result
    del keys
    sets = sets.take(survivors)
    keeper, similarity, signatures = exact_keeper, np.ones(n), None
    stats: dict[str, int | float | None] = {"records": records.height, "references": n - records.height}
    if settings.near and len(survivors):
        group = None
        if scope:
            group = universe["source"].gather(survivors).cast(pl.Categorical).to_physical().to_numpy()
        near = near_dups.near_clusters(sets, universe["ref"].is_not_null().to_numpy()[survivors], group, settings,
                                       _known_signatures(universe, survivors, references), fingerprints)
        final, near_similarity = itself.copy(), np.ones(n)
        final[survivors], near_similarity[survivors] = survivors[near.keeper], near.similarity
        keeper, similarity = final[exact_keeper], near_similarity[exact_keeper]  # an exact copy shares its twin's fate
        signatures = near.signatures
        stats.update(near.stats)
    return _result(records, universe, exact_keeper, keeper, similarity, signatures, survivors, stats, record_keys)


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
            stats: dict[str, int | float | None], keys: pl.DataFrame | None) -> DedupResult:
    """The kept records in input order with their signatures (those of exact survivors, in ``survivors``
    order) and their fingerprints (from ``keys``, one per row of the universe), and the removed ones as rows of
    duplicates.parquet."""
    duplicates, kept_rows = outcomes(universe, exact_keeper, keeper, similarity, stats)
    kept = records[kept_rows["_order"].to_numpy()]
    kept_signatures = None
    if signatures is not None:  # a kept record survived exact dedup, so it has a signature
        kept_signatures = signatures[np.searchsorted(survivors, kept_rows["row"].to_numpy())]
    kept_keys = None if keys is None else keys[kept_rows["row"].to_numpy()]
    return DedupResult(kept, duplicates, kept_signatures, stats, kept_keys)


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
