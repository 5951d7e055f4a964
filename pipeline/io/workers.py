"""The worker pool of the direct runner: per-record work units spread over this process and spawned ones,
the results back in input order.

Contract: ``iter_shards(mix, workers)`` yields one ``records.Shard`` per work unit, in input order, whatever
the number of workers; with one worker everything runs in this process.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import polars as pl

from pipeline import language
from pipeline.config import Mix
from pipeline.records import Shard, WorkUnit, process_unit, shard, work_units

PARALLEL_MIN_BYTES = 32 << 20


ProgressCallback = Callable[[str, int, bool], None]  # (source, records just processed, a file finished)


_worker_detections: dict[Path | None, language.DetectionCache] = {}  # per worker process: read once


def _shard_to_files(unit: WorkUnit, folder: str, number: int,
                    cache: Path | None) -> tuple[Shard, Path, Path, pl.DataFrame]:
    """``shard_unit`` in a worker process. Its frames go back as Arrow IPC files (a third of the cost of
    pickling them through the pipe), with the language detections it added to the cache it read."""
    if cache not in _worker_detections:
        _worker_detections[cache] = language.DetectionCache(cache, journal=True)
    detections = _worker_detections[cache]
    result = shard(unit, process_unit(unit), detections)
    kept, rejected = Path(folder) / f"{number:06d}-kept.arrow", Path(folder) / f"{number:06d}-rejected.arrow"
    result.kept.write_ipc(kept, compression="uncompressed")
    result.rejected.write_ipc(rejected, compression="uncompressed")
    emptied = dataclasses.replace(result, kept=result.kept.clear(), rejected=result.rejected.clear())
    return emptied, kept, rejected, detections.take_journal()


def iter_shards(mix: Mix, workers: int, progress: ProgressCallback | None = None,
                detections: language.DetectionCache | None = None) -> Iterator[Shard]:
    """Shards in input order, computed by this process and ``workers - 1`` spawned ones.

    This process claims units from the front of the list and the workers from the back, one at a time each,
    so they meet wherever the work splits evenly, whatever the file sizes and however long the workers take
    to start (~1 s of imports). A worker gets its next unit only when it finishes one, so no unit waits in a
    queue that this process could have taken it from. Workers read the language cache this process reads and
    send back what they detected, which joins ``detections``."""
    units = work_units(mix)

    def done(part: Shard) -> Shard:
        if progress:
            progress(part.source, part.n_input, True)
        return part

    if workers <= 1 or len(units) <= 1:
        for unit in units:
            yield done(shard(unit, process_unit(unit), detections))
        return
    claims = _Claims(len(units))
    futures: dict[int, Future[tuple[Shard, Path, Path, pl.DataFrame]]] = {}
    context = multiprocessing.get_context("spawn")  # polars' thread pool does not survive fork
    cache = detections.path if detections is not None else None
    with tempfile.TemporaryDirectory(prefix="instruct-pipeline-") as folder, ProcessPoolExecutor(
        max_workers=min(workers - 1, len(units) - 1), mp_context=context
    ) as pool:

        def submit_next(_: object = None) -> None:
            with claims.lock:  # claim and submit at once: a unit claimed is always in ``futures``
                index = claims.take_back()
                if index is None:
                    return
                futures[index] = pool.submit(_shard_to_files, units[index], folder, index, cache)
            futures[index].add_done_callback(submit_next)  # outside the lock: it may run at once

        for _ in range(min(workers - 1, len(units) - 1)):
            submit_next()
        while (index := claims.front()) is not None:
            yield done(shard(units[index], process_unit(units[index]), detections))
        for index in sorted(futures):
            part, kept, rejected, detected = futures[index].result()
            if detections is not None:
                detections.learn(detected)
            yield done(dataclasses.replace(part, kept=pl.read_ipc(kept), rejected=pl.read_ipc(rejected)))


class _Claims:
    """Unclaimed unit indices [first, end): taken from the front by this process, from the back by workers."""

    def __init__(self, n: int) -> None:
        self.first, self.end, self.lock = 0, n, threading.Lock()

    def front(self) -> int | None:
        with self.lock:
            if self.first == self.end:
                return None
            self.first += 1
            return self.first - 1

    def take_back(self) -> int | None:
        """Call with ``lock`` held."""
        if self.first == self.end:
            return None
        self.end -= 1
        return self.end


def default_workers(mix: Mix) -> int:
    """All cores for inputs big enough to pay for starting processes (~1 s each), else one."""
    size = sum(p.stat().st_size for s in mix.sources for p in s.files)
    return (os.cpu_count() or 1) if size > PARALLEL_MIN_BYTES else 1
