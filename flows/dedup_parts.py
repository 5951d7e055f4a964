"""The worker side of partitioned dedup (flows/partitioned_dedup.py): what one Dask task does to one partition of
records, one shuffle bucket or one set of candidate pairs. Functions of their arguments; no Dask here, but for
the sizes of the values they return, which Dask's memory manager needs to spill them (flows/dask_sizes.py).

Contract: every function takes and returns plain values (frames, arrays, the dataclasses below), so a task
can run it on whichever worker holds its inputs. Records are named by their ``row``: their rank in the whole
dedup (references and records of every partition together), as ``pipeline.dedup`` numbers the rows of its
universe; a partition is named by its ``home`` (its index). Every rule comes from ``pipeline.dedup`` and
``pipeline.near_dups`` (keys, shingles, signatures, band hashes, bucket pairs, the pair filters and measures),
applied to a partition's or a bucket's share of the records; partitioned_dedup.py only routes and gathers.
``write_kept`` alone writes: a partition's share of the stage's output, as files of the stage folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from flows import dask_sizes, stage_store
from pipeline import dedup, minhash, near_dups, plan
from schemas.mix import DedupSpec

PAIR_SCHEMA = {"pair": pl.Int64(), "homes": pl.Int64()}  # i << 32 | j, home_i << 32 | home_j
VERIFIED_SCHEMA = {"i": pl.Int64(), "j": pl.Int64(), "similarity": pl.Float64()}


@dataclass(frozen=True)
class PartSpec:
    """Which partition this is: ``home`` (its index); for a chunk of a reference set, the set's name and its
    place among the ``references``; ``keep``: whether its records are kept for ``kept`` (a dedup that only
    reports its duplicates lets them go once prepared)."""

    home: int
    priority: tuple[str, ...]
    ref: str | None = None
    ref_index: int = 0
    references: int = 0
    keep: bool = True


@dataclass(frozen=True)
class Part:
    """One partition on its worker: its records (a reference chunk keeps none: it is never returned), their
    rank columns, exact fingerprints and shingle sets (local order), a reference chunk's stored signatures
    (``known``, when its index is reused); ``rows`` and ``groups`` once ranked."""

    spec: PartSpec
    records: pl.DataFrame
    known: np.ndarray | None
    meta: pl.DataFrame  # dedup.rank_columns
    keys: pl.DataFrame  # key_a, key_b
    sets: minhash.ShingleSets | None
    rows: np.ndarray | None = None
    groups: np.ndarray | None = None  # the source of each record, as a code, when across_sources is off


def prepare(records: pl.DataFrame, known: np.ndarray | None, spec: PartSpec, settings: DedupSpec) -> Part:
    """Rank columns, fingerprints and (near dedup on) shingle sets, from one tokenization of the key texts."""
    priority = (dedup.ref_priority(spec.ref_index, spec.references) if spec.ref is not None
                else dedup.source_priority(spec.priority))
    columns = dedup.rank_columns(records, settings, priority, spec.ref)
    keys, sets = dedup.keys_and_shingles(records, settings.key, settings.ngram, settings.near)
    kept = records if spec.ref is None and spec.keep else records.clear()
    return Part(spec, kept, known, columns, keys, sets)


def meta(part: Part) -> pl.DataFrame:
    """What the client ranks the partition's records by (no text)."""
    return part.meta


def ranked(part: Part, rows: np.ndarray, groups: np.ndarray | None) -> Part:
    """The Part with its records' ranks (``rows``, local order) and source codes; its rank columns let go."""
    return dataclasses.replace(part, rows=rows, groups=groups, meta=part.meta.clear())


def split_by(frame: pl.DataFrame, key: pl.Expr, buckets: int) -> list[pl.DataFrame]:
    """``frame``'s rows in ``buckets`` frames by ``key`` (a non-negative integer) modulo ``buckets``."""
    parts = frame.with_columns(_bucket=(key % buckets).cast(pl.Int64)).partition_by(
        "_bucket", as_dict=True, include_key=False, maintain_order=True)
    return [parts.get((b,), frame.clear()) for b in range(buckets)]


def exact_entries(part: Part, buckets: int) -> list[pl.DataFrame]:
    """(row, key_a, key_b[, group]) of every record, by fingerprint bucket."""
    assert part.rows is not None
    frame = part.keys.with_columns(row=pl.Series(part.rows, dtype=pl.Int64))
    if part.groups is not None:
        frame = frame.with_columns(group=pl.Series(part.groups, dtype=pl.Int64))
    return split_by(frame, pl.col("key_a"), buckets)


def exact_removed(*entries: pl.DataFrame) -> pl.DataFrame:
    """The records of one fingerprint bucket that are not the best-ranked of their fingerprint: (row, keeper)."""
    frame = pl.concat(entries).sort("row")
    scope = ["group"] if "group" in frame.columns else []
    keeper = dedup.exact_keepers(frame, scope)
    return pl.DataFrame({"row": frame["row"], "keeper": keeper}).filter(pl.col("row") != pl.col("keeper"))


@dataclass(frozen=True)
class Survivors:
    """A partition's exact survivors in rank order, with what near dedup needs of each."""

    home: int
    is_ref: bool
    rows: np.ndarray  # sorted
    sets: minhash.ShingleSets
    signatures: np.ndarray
    fingerprints: np.ndarray  # (key_a, key_b) as uint64
    groups: np.ndarray | None

    def take(self, rows: np.ndarray) -> Info:
        at = np.searchsorted(self.rows, rows)
        return Info(rows, self.sets.take(at), self.signatures[at], self.fingerprints[at],
                    np.full(len(rows), self.is_ref), None if self.groups is None else self.groups[at])


def survivors(part: Part, removed: np.ndarray, settings: DedupSpec) -> Survivors:
    """The partition's records that survive exact dedup (``removed``: the rows that do not), in rank order,
    with their signatures (a reference chunk's stored ones when its index is reused)."""
    assert part.rows is not None and part.sets is not None
    local = np.flatnonzero(~np.isin(part.rows, removed))
    local = local[np.argsort(part.rows[local])]
    sets = part.sets.take(local)
    given = None if part.known is None else (np.arange(len(local)), part.known[local])
    return Survivors(part.spec.home, part.spec.ref is not None, part.rows[local], sets,
                     near_dups.signatures_with(sets, settings, given), part.keys.to_numpy()[local],
                     None if part.groups is None else part.groups[local])


def without_sets(part: Part) -> Part:
    """The Part once its survivors hold their own shingle sets: the partition's are let go."""
    return dataclasses.replace(part, sets=None)


@dataclass(frozen=True)
class BandEntries:
    """Band hashes of some survivors of one partition (``home``): the band, hash and row of each entry."""

    home: int
    band: np.ndarray  # int16
    hash: np.ndarray  # uint64
    row: np.ndarray  # int64


def band_entries(survivors: Survivors, bands: int, rows: int, buckets: int) -> list[BandEntries]:
    """Every survivor's hash in every band (``near_dups.band_hashes``), by band-hash bucket."""
    n = len(survivors.rows)
    hashes = np.concatenate([near_dups.band_hashes(survivors.signatures, band, rows) for band in range(bands)])
    band = np.repeat(np.arange(bands, dtype=np.int16), n)
    row = np.tile(survivors.rows.astype(np.int64), bands)
    bucket = (hashes % np.uint64(buckets)).astype(np.int64)
    order = np.argsort(bucket, kind="stable")
    bounds = np.searchsorted(bucket[order], np.arange(buckets + 1))
    return [BandEntries(survivors.home, band[order[a:b]], hashes[order[a:b]], row[order[a:b]])
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def bucket_pairs(buckets: int, *entries: BandEntries) -> list[pl.DataFrame]:
    """The candidate pairs of one band-hash bucket's entries (``near_dups.bucket_pairs``, band by band, members
    in rank order), unique, by the bucket of their second record. A pair is ``pair`` = i << 32 | j (rows, i
    better ranked) and ``homes`` = home_i << 32 | home_j; pairs are made unique every few bands (a similar pair
    shares most bands), which bounds memory."""
    frame = pl.DataFrame({
        "band": np.concatenate([e.band for e in entries]), "hash": np.concatenate([e.hash for e in entries]),
        "row": np.concatenate([e.row for e in entries]),
        "home": np.concatenate([np.full(len(e.row), e.home, dtype=np.int64) for e in entries]),
    })
    found, batch = pl.DataFrame(schema=PAIR_SCHEMA), []
    for band in frame.partition_by("band"):
        band = band.sort("hash", "row")
        first, second = near_dups.bucket_pairs(band["hash"].to_numpy(), np.arange(band.height))
        rows, homes = band["row"].to_numpy(), band["home"].to_numpy()
        batch.append(pl.DataFrame({"pair": (rows[first] << 32) | rows[second],
                                   "homes": (homes[first] << 32) | homes[second]}, schema=PAIR_SCHEMA))
        if len(batch) == 4:
            found, batch = pl.concat([found, *batch]).unique("pair"), []
    found = pl.concat([found, *batch]).unique("pair")
    return split_by(found, pl.col("pair") % (1 << 32), buckets)


def pair_frame(i: np.ndarray, j: np.ndarray, home_i: np.ndarray, home_j: np.ndarray) -> pl.DataFrame:
    """Pairs of rows (with their homes) as ``bucket_pairs`` sends them."""
    return pl.DataFrame({"pair": (i.astype(np.int64) << 32) | j, "homes": (home_i.astype(np.int64) << 32) | home_j},
                        schema=PAIR_SCHEMA)


def _ends(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, home_i, home_j) of the pairs of a ``PAIR_SCHEMA`` frame."""
    pair, homes = frame["pair"].to_numpy(), frame["homes"].to_numpy()
    return pair >> 32, pair & 0xFFFFFFFF, homes >> 32, homes & 0xFFFFFFFF


def requests(*pairs: pl.DataFrame) -> dict[int, np.ndarray]:
    """The rows a set of pairs needs, by the partition that holds them (sorted, unique)."""
    i, j, home_i, home_j = _ends(pl.concat(pairs))
    rows = pl.DataFrame({"row": np.concatenate((i, j)), "home": np.concatenate((home_i, home_j))}).unique()
    return {int(home[0]): group["row"].sort().to_numpy() for home, group in rows.group_by("home")}


def serve(survivors: Survivors, *asked: dict[int, np.ndarray]) -> list[Info | None]:
    """What each pair bucket asked of this partition (None where it asked nothing)."""
    return [survivors.take(ask[survivors.home]) if survivors.home in ask else None for ask in asked]


@dataclass(frozen=True)
class Info:
    """Records brought together for their pairs: rows, shingles, signatures, fingerprints, is_ref, groups."""

    rows: np.ndarray
    sets: minhash.ShingleSets
    signatures: np.ndarray
    fingerprints: np.ndarray
    is_ref: np.ndarray
    groups: np.ndarray | None

    @staticmethod
    def merge(parts: list[Info]) -> Info:
        """One Info of several, in the order given (``local`` finds a row)."""
        groups = [p.groups for p in parts if p.groups is not None]
        return Info(np.concatenate([p.rows for p in parts] or [np.empty(0, np.int64)]),
                    minhash.ShingleSets.concat([p.sets for p in parts]),
                    np.concatenate([p.signatures for p in parts]) if parts else np.empty((0, 0), np.uint32),
                    np.concatenate([p.fingerprints for p in parts]) if parts else np.empty((0, 2), np.uint64),
                    np.concatenate([p.is_ref for p in parts] or [np.empty(0, bool)]),
                    np.concatenate(groups) if groups else None)

    def local(self, rows: np.ndarray) -> np.ndarray:
        """The index of each of ``rows`` here."""
        order = np.argsort(self.rows)
        return order[np.searchsorted(self.rows, rows, sorter=order)]


@dataclass(frozen=True)
class PairTable:
    """A bucket's pairs as indices into ``info`` (``info.rows[pairs]``: by rank, i < j) with their records."""

    pairs: np.ndarray
    info: Info

    def measures(self, settings: DedupSpec) -> tuple[near_dups.Measure, near_dups.Measure]:
        return near_dups.measures(self.info.sets, self.info.signatures, self.info.fingerprints, settings.verify)

    def verified(self, batch: np.ndarray, similarity: np.ndarray, threshold: float) -> pl.DataFrame:
        keep = similarity >= threshold
        rows = self.info.rows
        return pl.DataFrame({"i": rows[batch[keep, 0]], "j": rows[batch[keep, 1]],
                             "similarity": similarity[keep]}, schema=VERIFIED_SCHEMA)


def pair_table(pairs: list[pl.DataFrame], *served: Info | None) -> PairTable:
    """A pair bucket's pairs (unique: two band buckets can find one pair; else in the order given) and the
    records they name, from what each partition served it."""
    i, j, _, _ = _ends(pl.concat(pairs).unique("pair", maintain_order=True))
    info = Info.merge([s for s in served if s is not None])
    return PairTable(np.column_stack((info.local(i), info.local(j))).astype(np.int64).reshape(-1, 2), info)


@dataclass(frozen=True)
class Round:
    """One round of checks in one pair bucket: the verified pairs (by row) and counts."""

    verified: pl.DataFrame
    candidates: int
    checked: int


def first_round(table: PairTable, settings: DedupSpec) -> tuple[PairTable, Round]:
    """``near_dups``' filters and prefilter over the bucket's pairs, then the first round of checks (each
    record j with its best-ranked candidate: every pair of one j is in j's bucket); the rest is kept for round 2."""
    info = table.info
    pairs = near_dups.eligible(table.pairs, info.is_ref, info.groups)
    candidates = len(pairs)
    pairs = near_dups.prefiltered(info.signatures, pairs, settings.threshold, settings.num_perm)
    first = near_dups.first_candidates(info.rows[pairs])  # by rank, as near_dups picks them
    measure, _ = table.measures(settings)
    batch = pairs[first]
    found = table.verified(batch, measure(batch), settings.threshold)
    return PairTable(pairs[~first], info), Round(found, candidates, len(batch))


def second_round(table: PairTable, labels: pl.DataFrame, settings: DedupSpec) -> Round:
    """The rest of the bucket's pairs whose records the first round left in different clusters (``labels``:
    row -> the best row of its cluster, for the rows in a cluster; any other row is a cluster of its own)."""
    rows = table.info.rows
    cluster = pl.DataFrame({"row": rows}).join(labels, on="row", how="left", maintain_order="left").select(
        pl.col("label").fill_null(pl.col("row")))["label"].to_numpy()
    batch = table.pairs[cluster[table.pairs[:, 0]] != cluster[table.pairs[:, 1]]]
    measure, _ = table.measures(settings)
    return Round(table.verified(batch, measure(batch), settings.threshold), 0, len(batch))


def jaccard(table: PairTable, settings: DedupSpec) -> np.ndarray:
    """The true Jaccard of the table's pairs (one-shingle records by their fingerprints), in its order."""
    return table.measures(settings)[1](table.pairs)


def kept(part: Part, survivors: Survivors | None, local: np.ndarray,
         ) -> tuple[pl.DataFrame, np.ndarray | None, pl.DataFrame]:
    """The records of this partition that are kept (``local``: their indices, in input order), their
    signatures and fingerprints."""
    assert part.rows is not None
    signatures = None
    if survivors is not None:
        signatures = survivors.signatures[np.searchsorted(survivors.rows, part.rows[local])]
    return part.records[local], signatures, part.keys[local]


def write_kept(part: Part, survivors: Survivors | None, local: np.ndarray, folder: Path,
               fingerprints: bool) -> dict[str, Path]:
    """``kept`` written by this partition's worker into ``folder`` (the stage's scratch folder, on a file system
    every worker shares) as the stage's frames (``plan.kept_outputs``): "kept" (its records), with near dedup
    "signatures", with ``fingerprints`` "fingerprints"; the file of each, by its name."""
    records, signatures, keys = kept(part, survivors, local)
    frames = {"kept": records, **plan.kept_outputs(records, signatures, keys if fingerprints else None)}
    return {name: stage_store.write(frame, folder / f"{name}-{part.spec.home:05d}.arrow")
            for name, frame in frames.items()}


dask_sizes.register(Part, Survivors, BandEntries, Info, PairTable, Round, minhash.ShingleSets)
