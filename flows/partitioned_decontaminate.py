"""Decontamination on a Dask cluster, partition by partition, with exactly the result of
``pipeline.decontaminate.contaminated``.

Contract: ``contaminated_partitioned(client, partitions, evals, settings)`` takes the records as partitions in
input order (Dask futures of frames on the workers, or frames) and returns the quarantine rows that
``decontaminate.contaminated`` returns for their concatenation (tests/test_partitioned_decontaminate.py).

Where the work happens:
1. n-gram windows: every worker gets the eval prompts' window table once (``decontaminate.eval_table``), and
   each partition's task looks its records' windows up in it where the partition is; a record's match depends
   on the record alone.
2. Near-duplicates of eval prompts: the partitioned dedup (flows/partitioned_dedup.py) of the partitions'
   prompts with the eval sets as references. A record reaches an eval prompt through a cluster of near
   prompts, which can span partitions, so this part is the dedup's shuffle by LSH band, not a map.
3. On the client: the matches (one row per contaminated record: few); then each partition's reject rows are
   made where it is and gathered. ``decontaminate_written`` also has each partition's worker write the records
   it keeps, as a file of the stage folder (the flow's decontaminate stage on Dask).
The client holds the eval sets, the matches and the rejects; the records' text stays on the workers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl
from distributed import Client, Future, wait

from flows import stage_store
from flows.partitioned_dedup import duplicates_partitioned
from pipeline import decontaminate
from pipeline.stage import no_rejects
from schemas.mix import DecontaminateSpec


def contaminated_partitioned(client: Client, partitions: Sequence[pl.DataFrame | Future],
                             evals: Sequence[tuple[str, pl.DataFrame]], settings: DecontaminateSpec) -> pl.DataFrame:
    placed = [p if isinstance(p, Future) else client.scatter(p, hash=False) for p in partitions]
    found = _found(client, list(placed), evals, settings)
    if found is None:
        return no_rejects()
    return pl.concat(client.gather([client.submit(decontaminate.rejects, p, found, pure=False) for p in placed]))


def decontaminate_written(client: Client, read: Callable[[int], Future], evals: Sequence[tuple[str, pl.DataFrame]],
                          settings: DecontaminateSpec, paths: Sequence[Path]) -> pl.DataFrame:
    """``contaminated_partitioned`` over one partition per path in ``paths``, with each partition's worker writing
    the records it keeps (the partition without its rejects) to its path (``stage_store.write``). ``read(k)``
    gives a future of partition k's records; each is read twice, for the lookups and to write what it keeps, so
    no partition's records stay on a worker through the near-duplicate search."""
    found = _found(client, [read(k) for k in range(len(paths))], evals, settings)
    return pl.concat(client.gather([client.submit(rejects_writing_kept, read(k), found, path, pure=False)
                                    for k, path in enumerate(paths)]))


def _found(client: Client, placed: list[Future], evals: Sequence[tuple[str, pl.DataFrame]],
           settings: DecontaminateSpec) -> Future | None:
    """The matches (``decontaminate.matches``), on every worker; None when there is nothing to match. The
    partitions are let go once their windows are looked up and their prompts taken (the caller's own list
    keeps them)."""
    if not evals or not placed:
        return None
    sources = client.gather([client.submit(_sources, p, pure=False) for p in placed])
    priority = pl.concat(sources).unique(maintain_order=True).to_list()
    if not priority:  # no records
        return None
    table = client.scatter(decontaminate.eval_table(evals, settings.ngram), broadcast=True, hash=False)
    by_ngram = [client.submit(decontaminate.ngram_matches, p, table, pure=False) for p in placed]
    prompts = [client.submit(decontaminate.near_columns, p, pure=False) for p in placed]
    wait(by_ngram + prompts)
    placed.clear()
    near = duplicates_partitioned(client, prompts, decontaminate.near_settings(settings), priority,
                                  decontaminate.eval_references(evals))
    del prompts
    found = decontaminate.matches(pl.concat(client.gather(by_ngram)), near, settings)
    return client.scatter(found, broadcast=True, hash=False)


def rejects_writing_kept(records: pl.DataFrame, found: pl.DataFrame | None, path: Path) -> pl.DataFrame:
    """The partition's reject rows; its other records written to ``path``."""
    if found is None:
        stage_store.write(records, path)
        return no_rejects()
    stage_store.write(records.filter(~pl.col("id").is_in(found["id"].implode())), path)
    return decontaminate.rejects(records, found)


def _sources(records: pl.DataFrame) -> pl.Series:
    return records["source"].unique(maintain_order=True)
