"""The Dask side of the flow (flows/dask_runner.py) on real local clusters: partitioned dedup on corpora with no
near pair and with an empty shard, the LocalCluster's per-worker memory limit, spilling and environment, and
``--worker-memory``'s parsing. The flow itself on Dask is in tests/test_flows.py."""

from __future__ import annotations

import os
from pathlib import Path

import dask
import distributed
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows import dask_runner
from flows.partitioned_dedup import deduplicate_partitioned
from pipeline import dedup, validate
from schemas.mix import DedupSpec


def _records(prefix: str, n: int) -> pl.DataFrame:
    """Records that share words but are no near duplicates of each other (no LSH candidate at all)."""
    return pl.DataFrame({
        "id": [f"{prefix}#{k}" for k in range(n)], "source": ["s"] * n,
        "instruction": [f"Explain fact {prefix} number {k} about {k * 17}." for k in range(n)], "input": [""] * n,
        "output": [f"Fact {k} of {prefix}: {k * 31} is odd." for k in range(n)],
    }, schema={c: pl.String for c in ("id", "source", "instruction", "input", "output")}).with_columns(
        history=pl.lit(None, validate.HISTORY))


@pytest.mark.parametrize("settings", [DedupSpec(), DedupSpec(exact=False), DedupSpec(near=False)],
                         ids=["exact+near", "near", "exact"])
def test_partitioned_dedup_without_near_pairs_and_with_an_empty_shard(settings: DedupSpec) -> None:
    """A build whose records have no near pair at all failed on Dask (clusters of no pair: numpy's max of an
    empty array); a shard whose records were all rejected is an empty partition."""
    partitions = [_records("a", 10), _records("e", 0), _records("b", 10),
                  _records("a", 3).with_columns(pl.col("id") + "-copy")]  # exact copies of a's first three
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c, \
            distributed.Client(c) as client:
        got = deduplicate_partitioned(client, partitions, settings, ["s"])
    want = dedup.deduplicate(pl.concat(partitions), settings, ["s"])
    assert_frame_equal(got.kept, want.kept)
    assert_frame_equal(got.duplicates, want.duplicates)
    assert got.stats == want.stats
    # the copies are removed as exact ones, or (near only) are the only near pairs
    assert (want.stats["exact_removed"], want.stats.get("verified_pairs")) == {
        (True, True): (3, 0), (False, True): (0, 3), (True, False): (3, None)}[settings.exact, settings.near]


def test_worker_memory_parses_sizes_and_names_what_a_size_looks_like() -> None:
    assert dask_runner.worker_memory("4GB") == 4_000_000_000
    assert dask_runner.worker_memory("512MiB") == 512 << 20
    for bad in ("lots", "", "4 GQ"):
        with pytest.raises(ValueError, match="is not a memory size; give one like 4GB"):
            dask_runner.worker_memory(bad)
    for small in ("-1GB", "0", "4", "300MB"):  # "4" is 4 bytes to Dask
        with pytest.raises(ValueError, match="less than a worker process needs .512 MiB at least.; give a size"):
            dask_runner.worker_memory(small)


def _worker_view(dask_worker: distributed.Worker) -> dict[str, object]:
    assert dask_worker.memory_manager.memory_pause_fraction == dask.config.get("distributed.worker.memory.pause")
    return {"pause": dask.config.get("distributed.worker.memory.pause"),
            "spill": dask.config.get("distributed.worker.memory.spill"),
            "terminate": dask.config.get("distributed.worker.memory.terminate"),
            "spills_to": type(dask_worker.data).__name__, "directory": dask_worker.local_directory,
            "malloc_trim": os.environ.get("MALLOC_TRIM_THRESHOLD_")}


def test_the_local_cluster_caps_each_worker_and_spills_under_the_state_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("INSTRUCT_PIPELINE_STATE", str(tmp_path / "state"))
    with dask_runner.task_runner(None, 2, dask_runner.worker_memory("600MiB")) as runner:
        client = runner.client
        workers = client.scheduler_info()["workers"].values()
        assert [w["memory_limit"] for w in workers] == [600 << 20] * 2
        seen = list(client.run(_worker_view).values())
        # a worker its nanny restarts (past the limit) manages memory the same way: before the nannies got the
        # settings as their own config, a restarted worker paused at 80% (a 3M build's log showed it)
        client.restart_workers(list(client.scheduler_info()["workers"]))
        seen += list(client.run(_worker_view).values())
    assert len(seen) == 4
    for view in seen:
        assert (view["pause"], view["spill"], view["terminate"]) == (False, 0.55, 0.95)
        assert view["spills_to"] == "SpillBuffer"
        assert Path(str(view["directory"])).is_relative_to(tmp_path / "state" / "dask")
        assert view["malloc_trim"] == "65536"  # Dask's own, kept (bench/scale/DASK.md)


def test_without_worker_memory_the_local_workers_are_uncapped(tmp_path: Path, monkeypatch) -> None:
    """Dask's default limit (RAM / workers) would pause the worker that tokenizes a large build."""
    monkeypatch.setenv("INSTRUCT_PIPELINE_STATE", str(tmp_path / "state"))
    with dask_runner.task_runner(None, 1, None) as runner:
        client = runner.client
        assert [w["memory_limit"] for w in client.scheduler_info()["workers"].values()] == [0]
        view = next(iter(client.run(_worker_view).values()))
    assert view["spills_to"] == "dict"


def _spilled(dask_worker: distributed.Worker) -> int:
    return len(dask_worker.data.slow)  # type: ignore[attr-defined]


def test_a_capped_worker_counts_what_it_stores_by_its_real_size_and_spills_it(tmp_path: Path) -> None:
    """Dask counted a polars frame, and each dataclass of arrays the partitioned dedup stores, as 56 bytes: a
    capped worker spilled none of it and was restarted when it filled up (the 3M build on 4 GB workers).
    flows/dask_sizes.py gives their real sizes; a worker past its size target (here 30% of 1 GB; RSS-based
    spilling off, so only the counted sizes spill) moves stored frames to disk."""
    import numpy as np
    from dask.sizeof import sizeof

    from flows import dedup_parts
    from pipeline import minhash

    records = _records("a", 2000)
    part = dedup_parts.prepare(records, None, dedup_parts.PartSpec(0, ("s",)), DedupSpec())
    assert part.sets is not None and isinstance(part.sets, minhash.ShingleSets)
    arrays = part.sets.hashes.nbytes + part.sets.starts.nbytes + part.keys.estimated_size()
    assert sizeof(records) == records.estimated_size() > 100_000
    assert sizeof(part) >= arrays + records.estimated_size() + part.meta.estimated_size()
    entries = dedup_parts.BandEntries(0, np.zeros(1000, np.int16), np.zeros(1000, np.uint64), np.zeros(1000, np.int64))
    assert sizeof(entries) >= 18_000

    def stored_frame(megabytes: int, seed: int, sized: bool) -> pl.DataFrame:  # sent by value: no module import
        if sized:
            import flows.dask_sizes  # noqa: F401  (what a worker running a build task has imported)
        return pl.DataFrame({"x": np.random.default_rng(seed).random(megabytes << 17)})  # 8 bytes a value

    config = {**dask_runner.WORKER_MEMORY, "distributed.worker.memory.target": 0.3,
              "distributed.worker.memory.spill": False}
    for sized in (False, True):
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                      memory_limit="1GB", local_directory=str(tmp_path), config=config) as cluster, \
                distributed.Client(cluster) as client:
            futures = [client.submit(stored_frame, 50, k, sized, pure=False) for k in range(8)]  # 400 MB > 300 MB
            distributed.wait(futures)
            spilled = next(iter(client.run(_spilled).values()))
            assert (spilled >= 2) if sized else (spilled == 0)  # unsized: 8 x 56 bytes, nothing to spill
            assert client.submit(lambda frame: frame.height, futures[0]).result() == 50 << 17  # back from disk


def _read_mapped(path: str) -> tuple[int, int, int]:
    """Resident file pages before mapping ``path``, right after reading all of it, and a moment later."""
    import time

    from flows import mapped_pages, stage_store

    before = mapped_pages.resident_file_bytes() or 0
    frame = stage_store.mapped(Path(path))
    frame["x"].sum()
    read = mapped_pages.resident_file_bytes() or 0
    time.sleep(0.5)
    return before, read, mapped_pages.resident_file_bytes() or 0


@pytest.mark.skipif(not Path("/proc/self/statm").is_file(), reason="needs /proc/self/statm (Linux)")
def test_a_capped_worker_lets_go_of_the_stage_file_pages_it_has_read(tmp_path: Path) -> None:
    """The report and write tasks of a 3M build read whole stage files once: their pages filled the worker's
    RSS past a 4 GB limit (4.0 of 4.3 GB). On a capped worker the pages stage files keep resident are let go
    past ``MAPPED_SHARE`` of its limit (here 256 MB of 1 GB); an uncapped worker keeps them."""
    import numpy as np

    from flows import stage_store

    path = stage_store.write(pl.DataFrame({"x": np.random.default_rng(0).random(50 << 20)}), tmp_path / "f.arrow")
    seen = {}
    for limit in ("1GiB", 0):
        with dask_runner.local_cluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                       memory_limit=limit, local_directory=str(tmp_path)) as cluster, \
                distributed.Client(cluster) as client:
            seen[limit] = client.submit(_read_mapped, str(path), pure=False).result()
    before, _, after = seen["1GiB"]
    assert after - before < 256 << 20  # 400 MB read
    before, read, after = seen[0]
    assert read - before >= 380 << 20 and after - before >= 380 << 20
