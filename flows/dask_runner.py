"""What the build flow does differently on Dask: the cluster ``--runner dask`` runs on, and the dedup stage over
the shards where they are.

Contract:
- ``task_runner(address, workers, worker_memory)``: prefect-dask's ``DaskTaskRunner`` on the cluster at
  ``address`` (its own workers, limits and environment apply), else on a ``LocalCluster`` of ``workers``
  processes of one thread each. ``worker_memory`` (bytes) caps each local worker with Dask's memory manager
  (``WORKER_MEMORY``: spill to disk, never pause, restart a worker past 95%), spilling under
  ``<state folder>/dask``; None: no cap, nothing spills (Dask's own default, RAM / workers, pauses the worker
  that tokenizes a large build at 80% of its share with nothing it could spill to free it).
- ``worker_memory(text)``: the bytes of ``--worker-memory`` ("4GB", "512MiB", as ``dask.utils.parse_bytes``
  reads them), or ValueError saying what a size looks like.
- ``partitioned_dedup(handles, mix, scratch)``: what ``plan.run_stage`` returns for the dedup stage over the
  union of the shards behind ``handles``, computed by flows/partitioned_dedup.py from inside a running task: each
  shard's records are read by a task of their own (``shard_records``) on some worker and stay there, and the
  worker writes the records it keeps (with their signatures and fingerprints) into ``scratch``; it returns the
  Outcome without those frames and their files, for ``stage_store.put``. The task that calls it holds what
  partitioned_dedup's client holds (ranks, ids, duplicates), never the records.
- ``run_stage(stage, records, context, previous, earlier)``: a global stage whose task runs on the cluster,
  with the files its workers wrote: the decontamination by partition (flows/partitioned_decontaminate.py), each
  partition a slice of the records behind ``previous`` read on a worker, which writes the records it keeps into
  the task's scratch folder; a stage that only picks records (``plan.Stage.picks_by``: the split, the mixture
  in records) over the columns it picks by, the rows it picked then written by the workers (``picked``); the
  tokenization with ``plan.Context.shards``: one task per shard of tokenized/
  (pipeline/token_splits.py), each reading its rows memory-mapped from the stage folders (the mixture's train,
  the split's eval) and writing its file, so the workers tokenize side by side and the stage's task gets back
  the shards' index rows and counts.
- ``split_writer(report)``: the write task's writer of train and eval with ``output.shard_rows``, a task per file
  (pipeline/io/split_files.py), each reading its rows memory-mapped from the report task's folder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask
import distributed
import numpy as np
import polars as pl
from dask.utils import parse_bytes

from flows import dask_sizes, stage_store, state_folder
from flows.partitioned_decontaminate import decontaminate_written
from flows.partitioned_dedup import deduplicate_written
from flows.stage_store import StageHandle
from pipeline import decontaminate, plan, token_splits, tokenize, writer
from pipeline.config import Mix
from pipeline.io.split_files import SplitShard
from pipeline.records import load_reference
from pipeline.report.stages import dedup_report
from pipeline.stage import QUARANTINE_SCHEMA, Outcome
from pipeline.token_splits import ShardJob, ShardRunner, TokenShard
from schemas.mix import MixSpec

dask_sizes.register(TokenShard, decontaminate.EvalTable)

# Dask's defaults are target 0.6, spill 0.7, pause 0.8, terminate 0.95 of the worker's limit.
WORKER_MEMORY: dict[str, Any] = {
    # from 45% (Dask's count of its stored results) or 55% (the process's RSS) of the limit, stored task results
    # go to disk: the partitioned dedup's partitions and buckets are such results. Below Dask's 60% / 70%, for
    # the memory a task allocates on top of them: a worker of the capped 3M build went from 2,990 MB to past 95%
    # (3,624) within a second in the decontamination's near search; rerun alone (bench/scale/one_stage.py) that
    # stage's largest worker peaked at 3,297 and 3,340 MB with 60% / 70%, 2,998 with 45% / 55%, in the same time
    "distributed.worker.memory.target": 0.45,
    "distributed.worker.memory.spill": 0.55,
    # never pause: a paused worker starts no task until its RSS is below 80% again, and the memory of a build's
    # big tasks (tokenize: the token lists) is the task's own, not a stored result that spilling could free, and
    # stays with the process after the task (allocator arenas): paused once, such a worker never starts another
    # task, and a build whose workers are all paused waits forever
    "distributed.worker.memory.pause": False,
    # the limit is a limit: a worker past 95% is restarted by its nanny, its task retried elsewhere, and a task
    # that kills a worker every time fails the build (Dask's KilledWorker, after allowed-failures: 3)
    "distributed.worker.memory.terminate": 0.95,
}
PARTITION_ROWS = 100_000  # records per partition of the stages that run by partition (decontamination)
# on Dask the tokenize stage's shards are tasks that read their records themselves (``tokenize_shard``): the
# stage only needs what orders train into shards and what leaves out its rejects
TOKENIZE_PICKS_BY = ("id", "repeat")
SMALLEST_WORKER = 512 << 20  # a Dask worker that has imported the flow holds ~210 MB before any task


def worker_memory(text: str) -> int:
    """``--worker-memory``'s bytes; ValueError for anything that is not a size of at least ``SMALLEST_WORKER``
    (a plain number is bytes, as Dask reads it: "4" would be 4 bytes)."""
    try:
        if not text.strip():  # parse_bytes("") is 1
            raise ValueError(text)
        size = parse_bytes(text)
    except (ValueError, TypeError):
        raise ValueError(f"{text!r} is not a memory size; give one like 4GB or 4GiB") from None
    if size < SMALLEST_WORKER:
        raise ValueError(f"{text!r} is {size:,} bytes, less than a worker process needs ({SMALLEST_WORKER >> 20} MiB "
                         "at least); give a size like 4GB or 4GiB")
    return size


def local_cluster(**kwargs: Any) -> distributed.LocalCluster:
    """A LocalCluster whose workers, with a ``memory_limit``, manage memory by ``WORKER_MEMORY``: each nanny gets
    the settings as its own ``config``, which it hands to every worker it starts, a restarted one too (the nanny
    also copies the global configuration when it is created, but only its top level: the nested settings that
    ``dask.config.set`` changed go back to Dask's defaults when the ``with`` ends, so a worker restarted after a
    kill paused at 80%).

    The workers keep Dask's MALLOC_TRIM_THRESHOLD_=65536 (``distributed.nanny.pre-spawn-environ``). Without it
    the partitioned dedup alone took 25% less worker CPU, but a whole 100k build only 2-8% less CPU, for 8% more
    memory in the largest worker and 11% in the process tree (bench/scale/DASK.md): memory is what a capped worker
    runs out of."""
    if not kwargs.get("memory_limit"):
        return distributed.LocalCluster(**kwargs)
    with dask.config.set(WORKER_MEMORY):  # the nannies' own terminate threshold, read when they are created
        return distributed.LocalCluster(**kwargs, config=dict(WORKER_MEMORY))


def task_runner(address: str | None, workers: int | None, memory: int | None) -> Any:
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    spill = state_folder() / "dask"
    spill.mkdir(parents=True, exist_ok=True)
    return DaskTaskRunner(cluster_class=local_cluster, cluster_kwargs={
        "n_workers": workers or 2, "threads_per_worker": 1, "processes": True, "dashboard_address": None,
        "memory_limit": memory or 0, "local_directory": str(spill)})


def shard_records(handle: StageHandle) -> pl.DataFrame:
    """The records a shard or a stage kept (memory-mapped from its folder)."""
    return stage_store.get(handle, without=("rejected",)).kept


def partitioned_dedup(handles: list[StageHandle], mix: Mix, scratch: Path) -> tuple[Outcome, dict[str, list[Path]]]:
    spec = mix.spec
    references = [load_reference(ref, mix) for ref in mix.references]
    with distributed.worker_client() as client:  # secedes this task's thread: its worker runs other tasks
        partitions = [client.submit(shard_records, handle, pure=False) for handle in handles]
        deduped = deduplicate_written(client, partitions, spec.dedup, [s.spec.name for s in mix.sources],
                                      references, scratch)
        del partitions
    written = {name if name == "kept" else f"outputs/{name}": files for name, files in deduped.files.items()}
    outputs = {"duplicates": deduped.duplicates, **{name: pl.DataFrame() for name in deduped.files if name != "kept"}}
    report = dedup_report(spec, deduped.duplicates, deduped.stats, references)
    return Outcome(pl.DataFrame(), pl.DataFrame(schema=QUARANTINE_SCHEMA), report, outputs), written


def run_stage(stage: plan.Stage, records: pl.DataFrame, context: plan.Context, previous: StageHandle,
              earlier: dict[str, StageHandle]) -> tuple[Outcome, dict[str, list[Path]]]:
    """``plan.run_stage`` for a global stage whose task runs on the cluster, over ``records`` (memory-mapped from
    the folder of ``previous``), and the files its workers wrote (``stage_store.put``'s ``written``): the
    decontamination by partition, a stage that picks records over the columns it picks by, the tokenize stage's
    shards as tasks of their own; any other stage here."""
    if stage.name == decontaminate.STAGE and context.mix.evals:
        rejected, kept = decontaminated(previous, records.height, context)
        return plan.quarantined(Outcome(pl.DataFrame(), rejected), records, context), {"kept": kept}
    columns = stage.picks_by(context.mix.spec) if stage.picks_by else ()
    if stage.name == tokenize.STAGE:  # the shards' tasks read their records: the stage orders and filters train
        context = dataclasses.replace(context, shards=tokenize_shards(previous, earlier, context.mix.spec,
                                                                      context.tokenizer))
        columns = TOKENIZE_PICKS_BY
    if columns:
        return picked(stage, records, context, previous, columns)
    return plan.run_stage(stage, records, context), {}


def decontaminated(previous: StageHandle, height: int, context: plan.Context) -> tuple[pl.DataFrame, list[Path]]:
    """The reject rows of ``decontaminate.contaminated`` over the records behind ``previous`` (``height`` of
    them), by flows/partitioned_decontaminate.py, and the files of the records it keeps: each partition
    (``PARTITION_ROWS`` records, at least one per worker) is read memory-mapped by a task on some worker,
    decontaminated there, and its kept records written by that worker into the task's scratch folder."""
    assert context.scratch is not None
    mix = context.mix
    with distributed.worker_client() as client:
        count = max(len(client.scheduler_info()["workers"]), -(-height // PARTITION_ROWS))
        bounds = [(int(rows[0]), len(rows)) for rows in np.array_split(np.arange(height), count) if len(rows)]
        paths = [context.scratch / f"kept-{k:05d}.arrow" for k in range(len(bounds))]

        def read(k: int) -> distributed.Future:
            return client.submit(records_slice, previous, *bounds[k], pure=False)

        rejected = decontaminate_written(client, read, plan.eval_sets(mix), mix.spec.decontaminate, paths)
    return rejected, paths


def picked(stage: plan.Stage, records: pl.DataFrame, context: plan.Context, previous: StageHandle,
           columns: tuple[str, ...]) -> tuple[Outcome, dict[str, list[Path]]]:
    """A stage that picks its records (``plan.Stage.picks_by``; the tokenize stage with its shards as tasks) run
    over ``plan.picking_input``, its rejects quarantined from ``records``; then each frame of its outcome that
    names rows is written by the workers, ``PARTITION_ROWS`` rows a task: those rows of the records behind
    ``previous`` (memory-mapped there), with the columns the stage added (``plan.picked_rows``)."""
    assert context.scratch is not None
    outcome = plan.quarantined(stage.run(plan.picking_input(records, columns), context), records, context)
    frames = {"kept": outcome.kept} | {f"outputs/{name}": frame for name, frame in outcome.outputs.items()
                                      if plan.ROW in frame.columns}
    written: dict[str, list[Path]] = {}
    with distributed.worker_client() as client:
        for place, frame in frames.items():
            names = frame.drop(*records.columns, strict=False)  # the rows and what the stage added
            chunks = np.array_split(np.arange(frame.height), max(1, -(-frame.height // PARTITION_ROWS)))
            paths = [context.scratch / f"{place.replace('/', '-')}-{k:05d}.arrow" for k in range(len(chunks))]
            client.gather([client.submit(rows_written, previous, names[at], path, pure=False)
                           for at, path in zip(chunks, paths, strict=True)])
            written[place] = paths
    return outcome, written  # ``put`` writes the workers' files in place of the frames that name rows


def rows_written(previous: StageHandle, picked: pl.DataFrame, path: Path) -> Path:
    """The records behind ``previous`` that ``picked`` names (``plan.picked_rows``), written to ``path``."""
    return stage_store.write(plan.picked_rows(shard_records(previous), picked), path)


def records_slice(handle: StageHandle, start: int, length: int) -> pl.DataFrame:
    """Rows of the records a stage kept (memory-mapped from its folder)."""
    return shard_records(handle).slice(start, length)


def split_writer(report: StageHandle) -> writer.SplitWriter:
    """The files of train and eval (``output.shard_rows``: pipeline/io/split_files.py), each written by a task on
    the cluster that reads its rows memory-mapped from the report task's folder."""
    def write_all(jobs: list[tuple[SplitShard, Path]]) -> None:
        with distributed.worker_client() as client:
            client.gather([client.submit(split_shard, report, shard, path, pure=False) for shard, path in jobs])

    return write_all


def split_shard(report: StageHandle, shard: SplitShard, path: Path) -> None:
    result = stage_store.get(report)
    writer.write_split_shard(getattr(result, shard.split), shard, path, result.mix.spec.output)


def tokenize_shards(previous: StageHandle, earlier: dict[str, StageHandle], spec: MixSpec,
                    tokenizer: Any) -> ShardRunner:
    """The tokenize stage's shards, each a task on the cluster (see the module's contract)."""
    def run(jobs: Sequence[ShardJob]) -> list[TokenShard]:
        with distributed.worker_client() as client:
            tokenizer_data = client.scatter(tokenizer, broadcast=True)  # sent once to each worker, not per shard
            futures = [client.submit(tokenize_shard, previous, earlier, job, spec, tokenizer_data, pure=False)
                       for job in jobs]
            return list(client.gather(futures))

    return run


def tokenize_shard(previous: StageHandle, earlier: dict[str, StageHandle], job: ShardJob, spec: MixSpec,
                   tokenizer: Any) -> TokenShard:
    """One shard tokenized where this task runs, its rows read from the stage folders (memory-mapped)."""
    inputs = stage_store.stage_inputs(earlier, plan.stage(tokenize.STAGE))
    if job.split == "train":
        frame, given = shard_records(previous), inputs.get("examples")
    else:
        frame, given = plan.eval_rows(inputs["eval"]), None
    return token_splits.tokenize_shard(token_splits.take(frame, job.rows), tokenizer, spec, job.path, given)
