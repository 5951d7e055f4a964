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
from typing import Generic, TypeVar

import polars as pl

from pipeline import language
from pipeline.config import Mix
from pipeline.records import Shard, WorkUnit, process_unit, shard, work_units

PARALLEL_MIN_BYTES = 32 << 20
T = TypeVar("T")


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
    """Shards in input order, computed by this process and ``workers - 1`` spawned ones, the units shared as
    ``Spread`` says. Workers read the language cache this process reads and send back what they detected, which
    joins ``detections``."""
    units = work_units(mix)

    def done(part: Shard) -> Shard:
        if progress:
            progress(part.source, part.n_input, True)
        return part

    if workers <= 1 or len(units) <= 1:
        for unit in units:
            yield done(shard(unit, process_unit(unit), detections))
        return
    context = multiprocessing.get_context("spawn")  # polars' thread pool does not survive fork
    cache = detections.path if detections is not None else None
    others = min(workers - 1, len(units) - 1)
    with tempfile.TemporaryDirectory(prefix="instruct-pipeline-") as folder, ProcessPoolExecutor(
        max_workers=others, mp_context=context
    ) as pool:
        spread = Spread(len(units), lambda index: pool.submit(_shard_to_files, units[index], folder, index, cache),
                        others)
        for index in spread.front():
            yield done(shard(units[index], process_unit(units[index]), detections))
        for _, future in spread.submitted():
            part, kept, rejected, detected = future.result()
            if detections is not None:
                detections.learn(detected)
            yield done(dataclasses.replace(part, kept=pl.read_ipc(kept), rejected=pl.read_ipc(rejected)))


class Spread(Generic[T]):
    """Items 0 .. count - 1 shared between this process and ``remote`` others: this process takes them from the
    front (``front``), the others from the back (``submit`` hands item i to the pool), one at a time each, so
    they meet wherever the work splits evenly, whatever the items' sizes and however long the others take to
    start (~1 s of imports). Another process gets its next item only when it finishes one, so no item waits in
    a queue that this process could have taken it from."""

    def __init__(self, count: int, submit: Callable[[int], Future[T]], remote: int) -> None:
        self.first, self.end, self.lock = 0, count, threading.Lock()
        self.submit, self.futures = submit, dict[int, Future[T]]()
        for _ in range(min(remote, count)):
            self._submit_next()

    def _submit_next(self, _: object = None) -> None:
        with self.lock:  # claim and submit at once: an item claimed is always in ``futures``
            if self.first == self.end:
                return
            self.end -= 1
            index = self.end
            try:
                self.futures[index] = self.submit(index)
            except Exception as error:  # raised where the result is read, not lost in a callback thread; this
                self.futures[index] = Future()  # process takes the items that slot would have had
                self.futures[index].set_exception(error)
                return
        self.futures[index].add_done_callback(self._submit_next)  # outside the lock: it may run at once

    def front(self) -> Iterator[int]:
        """The items this process takes, in order, each claimed when the previous one is done."""
        while True:
            with self.lock:
                if self.first == self.end:
                    return
                self.first += 1
                index = self.first - 1
            yield index

    def submitted(self) -> list[tuple[int, Future[T]]]:
        """The items the other processes took, in order (once ``front`` is exhausted, no more are submitted)."""
        return sorted(self.futures.items(), key=lambda item: item[0])


def default_workers(mix: Mix) -> int:
    """All cores for inputs big enough to pay for starting processes (~1 s each), else one."""
    size = sum(p.stat().st_size for s in mix.sources for p in s.files)
    return (os.cpu_count() or 1) if size > PARALLEL_MIN_BYTES else 1
