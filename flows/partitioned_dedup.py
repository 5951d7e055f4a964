"""Dedup on a Dask cluster, partition by partition, with exactly the result of ``pipeline.dedup.deduplicate``.

Contract: ``deduplicate_partitioned(client, partitions, settings, priority, references)`` takes the records of
a build as partitions in input order (frames, or Dask futures of frames already on the workers: the flow's
shards), and returns the ``DedupResult`` that ``dedup.deduplicate`` returns for their concatenation: the same
kept records in input order, duplicates.parquet rows, signatures, fingerprints and stats (tests/
test_partitioned_dedup.py checks it for every setting that changes the path). ``duplicates_partitioned``
returns the duplicates.parquet rows alone (``dedup.duplicates_of``), leaving the kept records where they are.

Where the work happens (every task pinned to the worker that holds its inputs; N = the cluster's workers; B =
the shuffle buckets, N or more: one per ``BUCKET_RECORDS`` records, bucket k on worker k mod N, so a bucket's
task stays small however many records a worker holds):
1. On each partition's worker: rank columns, key texts, one tokenization for the exact fingerprints and the
   shingle sets (flows/dedup_parts.py; the functions of pipeline/dedup.py). Reference sets are split into N
   chunks and placed like partitions.
2. Ranks, on the client: every record's (priority, output length, input order) without its text, sorted as
   ``dedup`` sorts its universe; each partition gets back its records' ranks (``row``).
3. Exact: fingerprints shuffled by hash into B buckets; each bucket finds the best-ranked record of every
   fingerprint and returns the records removed for another (row, keeper), few.
4. Near, over the exact survivors: signatures where the shingles are; every (band, band hash, row) shuffled by
   the hash into B buckets, so each worker holds ~1/N of the LSH buckets and emits their candidate pairs;
   pairs shuffled by their second record into B pair buckets (all candidates of a record in one bucket, as
   ``near_dups``' first round needs); each pair bucket asks the partitions for the shingles, signatures and
   fingerprints of its pairs' records only, then filters, prefilters and checks them as ``near_dups`` does.
5. On the client, from the verified pairs only: clusters after round 1 (sent back to the pair buckets for
   round 2), the final clusters and keepers, and the true Jaccard of each removed record with its keeper
   (measured in the pair buckets when the two were not compared directly).
6. ``dedup.outcomes`` builds duplicates.parquet on the client; each partition returns its kept records with
   their signatures and fingerprints (``deduplicate_partitioned``), or writes them as files of the stage folder
   (``deduplicate_written``: the flow's dedup stage).

The client holds per-record ranks and ids (the duplicates rows name both records) and the result; the
tokens, shingles, signatures and LSH buckets stay on the workers, and with ``deduplicate_written`` the kept
records too.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from distributed import Client, Future, wait

from flows import dedup_parts as parts
from pipeline import dedup, near_dups
from schemas.mix import DedupSpec

BUCKET_RECORDS = 250_000  # records per shuffle bucket at most (one band bucket's entries: ~150 MB), >= 1 a worker


class _Cluster:
    """Tasks pinned to workers, and shuffles between them."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.workers = sorted(client.scheduler_info()["workers"])
        if not self.workers:
            raise ValueError("the Dask cluster has no workers")
        self.size = len(self.workers)
        self.buckets = self.size  # shuffle buckets, ``bucket(k)``'s worker each: set once the records are counted

    def run(self, where: str, function: Callable[..., Any], *args: Any) -> Future:
        return self.client.submit(function, *args, workers=[where], allow_other_workers=False, pure=False)

    def split(self, where: str, future: Future, count: int) -> list[Future]:
        """The ``count`` items of a task's list (or tuple) result, each a future on the same worker."""
        return [self.run(where, operator.getitem, future, k) for k in range(count)]

    def put(self, where: str, value: Any) -> Future:
        return self.client.scatter(value, workers=[where], hash=False)

    def gather(self, futures: Sequence[Future]) -> list[Any]:
        return list(self.client.gather(list(futures)))

    def bucket(self, k: int) -> str:
        return self.workers[k % self.size]


class _Placed:
    """A partition on its worker: its ``Part`` future, the worker, and where its rows start (in input order for
    this build's records, in the reference set for a reference chunk)."""

    def __init__(self, part: Future, where: str, spec: parts.PartSpec, start: int) -> None:
        self.part, self.where, self.spec, self.start = part, where, spec, start


def deduplicate_partitioned(client: Client, partitions: Sequence[pl.DataFrame | Future], settings: DedupSpec,
                            priority: Sequence[str], references: Sequence[dedup.Reference] = ()) -> dedup.DedupResult:
    """``dedup.deduplicate(pl.concat(partitions), settings, priority, references)``, computed on the cluster."""
    found = _find(client, partitions, settings, priority, references)
    kept, signatures, keys = _kept(found)
    return dedup.DedupResult(kept, found.duplicates, signatures, found.stats,
                             keys if settings.key == "record" else None)


@dataclass(frozen=True)
class WrittenDedup:
    """A partitioned dedup whose workers wrote what it kept: ``files`` holds the parts of each frame of
    ``plan.kept_outputs`` and of "kept" (the records), one per partition in input order."""

    duplicates: pl.DataFrame
    stats: dict[str, int | float | None]
    files: dict[str, list[Path]]


def deduplicate_written(client: Client, partitions: Sequence[pl.DataFrame | Future], settings: DedupSpec,
                        priority: Sequence[str], references: Sequence[dedup.Reference], folder: Path) -> WrittenDedup:
    """``deduplicate_partitioned`` with each partition's kept records, signatures and fingerprints written into
    ``folder`` by the worker that holds them (``dedup_parts.write_kept``): nothing of them comes to the client."""
    found = _find(client, partitions, settings, priority, references)
    cluster = found.cluster
    written = cluster.gather([cluster.run(p.where, parts.write_kept, p.part, survivors, local, folder,
                                          settings.key == "record") for p, survivors, local in _kept_parts(found)])
    return WrittenDedup(found.duplicates, found.stats, {name: [w[name] for w in written] for name in written[0]})


def duplicates_partitioned(client: Client, partitions: Sequence[pl.DataFrame | Future], settings: DedupSpec,
                           priority: Sequence[str], references: Sequence[dedup.Reference] = ()) -> pl.DataFrame:
    """``dedup.duplicates_of(pl.concat(partitions), ...)``: the duplicates.parquet rows alone (the kept records
    stay on the workers)."""
    return _find(client, partitions, settings, priority, references, keep=False).duplicates


class _Found:
    def __init__(self, cluster: _Cluster, placed: list[_Placed], near_parts: list[Future] | None,
                 universe: pl.DataFrame, duplicates: pl.DataFrame, kept_rows: pl.DataFrame,
                 stats: dict[str, int | float | None]) -> None:
        self.cluster, self.placed, self.near_parts, self.universe = cluster, placed, near_parts, universe
        self.duplicates, self.kept_rows, self.stats = duplicates, kept_rows, stats


def _find(client: Client, partitions: Sequence[pl.DataFrame | Future], settings: DedupSpec, priority: Sequence[str],
          references: Sequence[dedup.Reference], keep: bool = True) -> _Found:
    if not partitions:
        raise ValueError("deduplicate_partitioned needs at least one partition of records")
    cluster = _Cluster(client)
    placed = _place(cluster, partitions, references, settings, tuple(priority), keep)
    universe = _rank(cluster, placed, settings)
    n = universe.height
    cluster.buckets = max(cluster.size, -(-n // BUCKET_RECORDS))
    itself = np.arange(n, dtype=np.int64)
    exact_keeper = _exact(cluster, placed, n) if settings.exact else itself
    survivors = np.flatnonzero(exact_keeper == itself)
    records = int(universe["ref"].is_null().sum())
    stats: dict[str, int | float | None] = {"records": records, "references": n - records}
    keeper, similarity, near_parts = exact_keeper, np.ones(n), None
    if settings.near and len(survivors):
        homes = universe["home"].to_numpy()
        removed = np.flatnonzero(exact_keeper != itself)
        near_parts = [cluster.run(p.where, parts.survivors, p.part, removed[homes[removed] == p.spec.home], settings)
                      for p in placed]
        for p in placed:
            p.part = cluster.run(p.where, parts.without_sets, p.part)
        final, near_similarity = _Near(cluster, placed, near_parts, homes, settings).clusters(n, stats)
        keeper, similarity = final[exact_keeper], near_similarity[exact_keeper]  # an exact copy shares its twin's fate
    duplicates, kept_rows = dedup.outcomes(universe, exact_keeper, keeper, similarity, stats)
    return _Found(cluster, placed, near_parts, universe, duplicates, kept_rows, stats)


def _place(cluster: _Cluster, partitions: Sequence[pl.DataFrame | Future], references: Sequence[dedup.Reference],
           settings: DedupSpec, priority: tuple[str, ...], keep: bool) -> list[_Placed]:
    """Every partition's ``Part`` on a worker: the references' chunks first (each set in N chunks), then the
    record partitions (a future stays where it is; a frame goes to the worker with the fewest rows so far)."""
    load = dict.fromkeys(cluster.workers, 0)
    placed: list[_Placed] = []
    wait([p for p in partitions if isinstance(p, Future)])  # then each is somewhere: its work stays there

    def place(data: pl.DataFrame | Future, known: np.ndarray | None, spec: parts.PartSpec, start: int) -> None:
        if isinstance(data, Future):
            where = next(iter(cluster.client.who_has([data]).get(data.key, ())), cluster.workers[0])
        else:
            where = min(load, key=lambda w: load[w])
            load[where] += data.height
            data = cluster.put(where, data)
        stored = None if known is None else cluster.put(where, known)
        placed.append(_Placed(cluster.run(where, parts.prepare, data, stored, spec, settings), where, spec, start))

    for k, ref in enumerate(references):
        for chunk in np.array_split(np.arange(ref.records.height), cluster.size):
            if len(chunk):
                start, rows = int(chunk[0]), len(chunk)
                known = None if ref.signatures is None else ref.signatures[start:start + rows]
                place(ref.records.slice(start, rows), known,
                      parts.PartSpec(len(placed), priority, ref.name, k, len(references)), start)
    for data in partitions:
        place(data, None, parts.PartSpec(len(placed), priority, keep=keep), 0)  # where it starts: once ranked
    return placed


def _rank(cluster: _Cluster, placed: list[_Placed], settings: DedupSpec) -> pl.DataFrame:
    """``dedup``'s universe (row = rank, id, source, ref, _order, _ref_row) from every partition's rank columns,
    with each record's ``home`` and ``local`` index; each partition's Part gets its records' rows (and, with
    ``across_sources`` off, their sources as codes)."""
    metas = cluster.gather([cluster.run(p.where, parts.meta, p.part) for p in placed])
    start = 0
    for p, meta in zip(placed, metas, strict=True):
        if p.spec.ref is None:
            p.start, start = start, start + meta.height
    universe = dedup.in_rank_order([
        meta.with_columns(pl.col("_order") + p.start, pl.col("_ref_row") + p.start,
                          home=pl.lit(p.spec.home, pl.Int32), local=pl.int_range(pl.len(), dtype=pl.Int64))
        for p, meta in zip(placed, metas, strict=True)])
    group = pl.col("source").rank("dense") if not settings.across_sources else pl.lit(0)
    by_home = universe.select("home", "local", pl.col("row").cast(pl.Int64), group=group.cast(pl.Int64)).sort(
        "home", "local").partition_by("home", as_dict=True)
    for p in placed:
        mine = by_home.get((p.spec.home,), pl.DataFrame(schema={"row": pl.Int64, "group": pl.Int64}))
        rows = cluster.put(p.where, mine["row"].to_numpy())
        groups = None if settings.across_sources else cluster.put(p.where, mine["group"].to_numpy())
        p.part = cluster.run(p.where, parts.ranked, p.part, rows, groups)
    return universe


def _exact(cluster: _Cluster, placed: list[_Placed], n: int) -> np.ndarray:
    """Each row's exact keeper (by row), from the fingerprint buckets."""
    buckets = cluster.buckets
    entries = [cluster.split(p.where, cluster.run(p.where, parts.exact_entries, p.part, buckets), buckets)
               for p in placed]
    removed = pl.concat(cluster.gather([
        cluster.run(cluster.bucket(b), parts.exact_removed, *[e[b] for e in entries]) for b in range(buckets)]))
    keeper = np.arange(n, dtype=np.int64)
    keeper[removed["row"].to_numpy()] = removed["keeper"].to_numpy()
    return keeper


class _Near:
    """Near dedup over the partitions' exact survivors (``near_parts``: their ``Survivors`` futures); pair
    bucket t lives on ``cluster.bucket(t)``."""

    def __init__(self, cluster: _Cluster, placed: list[_Placed], near_parts: list[Future], homes: np.ndarray,
                 settings: DedupSpec) -> None:
        self.cluster, self.placed, self.near_parts, self.homes, self.settings = (
            cluster, placed, near_parts, homes, settings)
        self.bands, self.rows = near_dups.banding(settings)

    def clusters(self, n: int, stats: dict[str, int | float | None]) -> tuple[np.ndarray, np.ndarray]:
        """Each row's near keeper (itself when kept) and true Jaccard with it, as ``near_dups.near_clusters``
        finds them (its steps 2-4), for every row of the universe; adds near dedup's counters to ``stats``."""
        cluster, settings = self.cluster, self.settings
        tables = self._pair_tables(self._candidates())
        firsts = [cluster.split(where, cluster.run(where, parts.first_round, table, settings), 2)
                  for where, table in zip(map(cluster.bucket, range(cluster.buckets)), tables, strict=True)]
        first = cluster.gather([f[1] for f in firsts])
        labels, _ = _clusters(pl.concat([r.verified for r in first]))
        shared = cluster.client.scatter(labels, broadcast=True, hash=False)
        second = cluster.gather([cluster.run(cluster.bucket(t), parts.second_round, f[0], shared, settings)
                                 for t, f in enumerate(firsts)])
        verified = pl.concat([r.verified for r in (*first, *second)])
        labels, sizes = _clusters(verified)
        nodes, best = labels["row"].to_numpy(), labels["label"].to_numpy()
        moved, keepers = nodes[best != nodes], best[best != nodes]
        final, similarity = np.arange(n, dtype=np.int64), np.ones(n)
        final[moved] = keepers
        similarity[moved] = near_dups.similarity_to_keepers(moved, keepers, verified, self._jaccard)
        stats.update(near_dups.near_stats(self.bands, self.rows, sum(r.candidates for r in first),
                                          sum(r.checked for r in (*first, *second)), verified.height,
                                          np.append(sizes, 1)))
        return final, similarity

    def _candidates(self) -> list[list[Future]]:
        """The candidate pairs, for each pair bucket the frames every band bucket sent it."""
        cluster, size = self.cluster, self.cluster.buckets
        entries = [cluster.split(p.where, cluster.run(p.where, parts.band_entries, s, self.bands, self.rows, size),
                                 size) for p, s in zip(self.placed, self.near_parts, strict=True)]
        pairs = [cluster.split(cluster.bucket(b), cluster.run(cluster.bucket(b), parts.bucket_pairs, size,
                                                              *[e[b] for e in entries]), size) for b in range(size)]
        return [[found[t] for found in pairs] for t in range(size)]

    def _pair_tables(self, pairs: list[list[Future]]) -> list[Future]:
        """Each pair bucket's pairs with the records they name, served by the partitions that hold them."""
        cluster, size = self.cluster, self.cluster.buckets
        asks = [cluster.run(cluster.bucket(t), parts.requests, *frames) for t, frames in enumerate(pairs)]
        served = [cluster.split(p.where, cluster.run(p.where, parts.serve, s, *asks), size)
                  for p, s in zip(self.placed, self.near_parts, strict=True)]
        return [cluster.run(cluster.bucket(t), parts.pair_table, frames, *[s[t] for s in served])
                for t, frames in enumerate(pairs)]

    def _jaccard(self, pairs: np.ndarray) -> np.ndarray:
        """The true Jaccard of (row, row) pairs, measured in the pair buckets of their first rows."""
        cluster, size = self.cluster, self.cluster.buckets
        out = np.empty(len(pairs))
        if not len(pairs):
            return out
        mine = [np.flatnonzero(pairs[:, 0] % size == t) for t in range(size)]
        homes = self.homes
        frames = [[cluster.put(cluster.bucket(t), parts.pair_frame(pairs[at, 0], pairs[at, 1], homes[pairs[at, 0]],
                                                                   homes[pairs[at, 1]]))] for t, at in enumerate(mine)]
        tables = self._pair_tables(frames)
        values = cluster.gather([cluster.run(cluster.bucket(t), parts.jaccard, table, self.settings)
                                 for t, table in enumerate(tables)])
        for at, value in zip(mine, values, strict=True):
            out[at] = value
        return out


def _clusters(verified: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
    """The clusters of the verified pairs (rows i, j): each row in one, with its cluster's best row (``label``),
    and the size of each cluster."""
    if not verified.height:  # no near pair at all
        return pl.DataFrame(schema={"row": pl.Int64, "label": pl.Int64}), np.zeros(0, dtype=np.int64)
    ends = np.concatenate((verified["i"].to_numpy(), verified["j"].to_numpy()))
    nodes, index = np.unique(ends, return_inverse=True)
    half = len(verified)
    component = near_dups.components(len(nodes), index[:half], index[half:])
    labels = pl.DataFrame({"row": nodes, "label": nodes[near_dups.best_of_components(component)]},
                          schema={"row": pl.Int64, "label": pl.Int64})
    return labels, np.bincount(component)


def _kept_parts(found: _Found) -> list[tuple[_Placed, Future | None, np.ndarray]]:
    """Each record partition with its survivors (near dedup on) and the local indices of its kept records."""
    kept = found.kept_rows.join(found.universe.select("row", "home", "local"), on="row", how="left",
                                maintain_order="left")
    by_home = kept.partition_by("home", as_dict=True)
    return [(p, None if found.near_parts is None else found.near_parts[k],
             by_home.get((p.spec.home,), kept.clear())["local"].to_numpy())
            for k, p in enumerate(found.placed) if p.spec.ref is None]


def _kept(found: _Found) -> tuple[pl.DataFrame, np.ndarray | None, pl.DataFrame]:
    """The kept records of every partition, in input order, with their signatures and fingerprints."""
    cluster = found.cluster
    results = cluster.gather([cluster.run(p.where, parts.kept, p.part, survivors, local)
                              for p, survivors, local in _kept_parts(found)])
    signatures = None if found.near_parts is None else np.concatenate([r[1] for r in results])
    return pl.concat([r[0] for r in results]), signatures, pl.concat([r[2] for r in results])
