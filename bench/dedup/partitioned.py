"""Partitioned dedup (flows/partitioned_dedup.py) on a local Dask cluster against the single-process dedup: are
the results identical, and what do they cost in time and memory?

    .venv/bin/python bench/dedup/partitioned.py                               # bench/dedup's 62,002 records
    .venv/bin/python bench/dedup/partitioned.py --scale bench/work/scale/1m   # the 1M scale corpus's shards
    .venv/bin/python bench/dedup/partitioned.py --workers 3 --partitions 12

Partitions: bench/dedup's corpus (make_corpus.py, built if missing) as one source of canonical records (as
ours.py reads it) cut into ``--partitions`` contiguous parts; or, with ``--scale``, the kept records of every
work unit of that folder's mix.yaml after the per-record stages (``records.shard_unit``, run once on a process
pool and cached), which is what the flow's dedup stage starts from, with the mix's dedup settings and source
order. The parts are written to bench/work/dedup/partitioned-<label>/.

Single process: a child process runs ``dedup.deduplicate`` on the concatenation; its dedup seconds are its own
timer, its peak RSS is polled every 50 ms (psutil). Partitioned: a LocalCluster of ``--workers`` processes (one
thread each, no memory limit) in this process; every worker reads its parts from disk first (the flow's shards
live on the workers), then ``deduplicate_partitioned`` is timed. Peak RSS is polled every 50 ms for each worker
process and for this process (the client, which gathers the result). Then every output is compared: kept
records (ids and row hashes), duplicates rows, signatures, fingerprints, stats. Prints one JSON object and
writes it to bench/work/dedup/partitioned-<label>-<malloc trim>.json. ``--malloc-trim off`` starts the workers
without Dask's MALLOC_TRIM_THRESHOLD_=65536 (see bench/RESULTS.md: it costs this workload ~50% more CPU).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import make_corpus

from pipeline import dedup, validate
from pipeline.config import load_mix
from pipeline.records import shard_unit, work_units
from schemas.mix import DedupSpec

POLL_SECONDS = 0.05
MB = 2**20


def corpus_parts(folder: Path, partitions: int) -> dict[str, Any]:
    """bench/dedup's corpus as canonical records of one source, in ``partitions`` contiguous parts."""
    corpus = make_corpus.WORK / "corpus-62002-seed0.parquet"
    if not corpus.exists():
        subprocess.run([sys.executable, str(HERE / "make_corpus.py")], check=True)
    records = pl.read_parquet(corpus, columns=["id", "instruction", "input", "output"]).with_columns(
        pl.col("input").fill_null(""), source=pl.lit("corpus"), history=pl.lit(None, validate.HISTORY))
    size = -(-records.height // partitions)
    for k, start in enumerate(range(0, records.height, size)):
        records.slice(start, size).write_parquet(folder / f"part-{k:04d}.parquet")
    return {"priority": ["corpus"], "dedup": DedupSpec().model_dump()}


def scale_parts(folder: Path, scale: Path) -> dict[str, Any]:
    """The kept records of every work unit of ``scale``/mix.yaml after the per-record stages."""
    mix = load_mix(scale / "mix.yaml")
    units = work_units(mix)
    with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        for k, shard in enumerate(pool.map(shard_unit, units)):
            shard.kept.write_parquet(folder / f"part-{k:04d}.parquet")
    return {"priority": [s.spec.name for s in mix.sources], "dedup": mix.spec.dedup.model_dump()}


def prepared(label: str, make: Any) -> tuple[list[Path], list[str], DedupSpec]:
    folder = make_corpus.WORK / f"partitioned-{label}"
    spec = folder / "spec.json"
    if not spec.exists():
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        settings = make(folder)
        print(f"[parts] {label}: written in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        spec.write_text(json.dumps(settings))
    settings = json.loads(spec.read_text())
    return sorted(folder.glob("part-*.parquet")), settings["priority"], DedupSpec(**settings["dedup"])


def write_result(result: dedup.DedupResult, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    result.kept.select("id", row_hash=result.kept.hash_rows()).write_parquet(out / "kept.parquet")
    result.duplicates.write_parquet(out / "duplicates.parquet")
    if result.signatures is not None:
        np.save(out / "signatures.npy", result.signatures)
    if result.fingerprints is not None:
        result.fingerprints.write_parquet(out / "fingerprints.parquet")
    (out / "stats.json").write_text(json.dumps(result.stats))


def differences(one: Path, other: Path) -> list[str]:
    """The outputs that differ between two written results (none: identical)."""
    found = []
    for name in ("kept.parquet", "duplicates.parquet", "fingerprints.parquet"):
        if (one / name).exists() != (other / name).exists() or (
                (one / name).exists() and not pl.read_parquet(one / name).equals(pl.read_parquet(other / name))):
            found.append(name)
    if (one / "signatures.npy").exists() != (other / "signatures.npy").exists() or (
            (one / "signatures.npy").exists()
            and not np.array_equal(np.load(one / "signatures.npy"), np.load(other / "signatures.npy"))):
        found.append("signatures.npy")
    if json.loads((one / "stats.json").read_text()) != json.loads((other / "stats.json").read_text()):
        found.append("stats.json")
    return found


def single(paths: list[Path], priority: list[str], settings: DedupSpec, out: Path) -> None:
    """The child process: dedup.deduplicate on the concatenation; prints its seconds."""
    records = pl.concat([pl.read_parquet(p) for p in paths])
    me = psutil.Process()
    started, cpu = time.perf_counter(), cpu_seconds(me)
    result = dedup.deduplicate(records, settings, priority)
    seconds, cpu = time.perf_counter() - started, cpu_seconds(me) - cpu
    write_result(result, out)
    print(json.dumps({"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 1), "records": records.height,
                      **result.stats}))


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


class Peaks:
    """Peak RSS of some processes (each alone: the workers are this process's children), polled in a thread."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak = dict.fromkeys(pids, 0)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self.done.is_set():
            for name, process in self.processes.items():
                try:
                    self.peak[name] = max(self.peak[name], process.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
            time.sleep(POLL_SECONDS)

    def __enter__(self) -> Peaks:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        self.thread.join()


def run_single(paths: list[Path], out: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--single", str(out), *map(str, paths)]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    with Peaks({"single": child.pid}) as peaks:
        stdout, _ = child.communicate()
    if child.returncode:
        raise SystemExit(f"the single-process run failed (exit {child.returncode})")
    report = json.loads(stdout.strip().splitlines()[-1])
    return {"seconds": report.pop("seconds"), "cpu_seconds": report.pop("cpu_seconds"),
            "wall_seconds": round(time.perf_counter() - started, 1), "peak_rss_mb": round(peaks.peak["single"] / MB),
            "stats": report}


def run_partitioned(paths: list[Path], priority: list[str], settings: DedupSpec, workers: int, malloc_trim: str,
                    out: Path) -> dict[str, Any]:
    import dask
    from distributed import Client, LocalCluster

    from flows.partitioned_dedup import deduplicate_partitioned

    if malloc_trim == "off":  # Dask sets MALLOC_TRIM_THRESHOLD_=65536 in its workers unless told not to
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    started = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit=0) as cluster, Client(cluster) as client:
        cluster_seconds = time.perf_counter() - started
        pids = client.run(os.getpid)
        addresses = sorted(pids)
        parts = [client.submit(pl.read_parquet, path, workers=[addresses[k % workers]], pure=False)
                 for k, path in enumerate(paths)]
        client.gather(parts)
        before = {address: psutil.Process(pid).memory_info().rss for address, pid in pids.items()}
        processes = [psutil.Process(pid) for pid in (*pids.values(), os.getpid())]
        cpu = [cpu_seconds(process) for process in processes]
        with Peaks({**pids, "client": os.getpid()}) as peaks:
            started = time.perf_counter()
            result = deduplicate_partitioned(client, parts, settings, priority)
            seconds = time.perf_counter() - started
        cpu = [cpu_seconds(process) - used for process, used in zip(processes, cpu, strict=True)]
        write_result(result, out)
    workers_peak = {address: peaks.peak[address] for address in addresses}
    return {"seconds": round(seconds, 2), "malloc_trim": malloc_trim,
            "cluster_start_seconds": round(cluster_seconds, 1),
            "worker_cpu_seconds": [round(c, 1) for c in cpu[:-1]], "client_cpu_seconds": round(cpu[-1], 1),
            "largest_worker_peak_rss_mb": round(max(workers_peak.values()) / MB),
            "worker_peak_rss_mb": [round(v / MB) for v in workers_peak.values()],
            "worker_rss_before_mb": [round(before[a] / MB) for a in addresses],
            "client_peak_rss_mb": round(peaks.peak["client"] / MB)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=Path, help="a bench/scale folder with its mix.yaml")
    parser.add_argument("--partitions", type=int, default=8, help="parts of bench/dedup's corpus (not with --scale)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--malloc-trim", choices=("dask", "off"), default="dask",
                        help="dask: Dask's worker environment (MALLOC_TRIM_THRESHOLD_=65536); off: glibc's default")
    parser.add_argument("--skip-single", action="store_true", help="reuse the last single-process result")
    parser.add_argument("--single", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        spec = json.loads((args.paths[0].parent / "spec.json").read_text())
        single(args.paths, spec["priority"], DedupSpec(**spec["dedup"]), args.single)
        return
    if args.scale:
        label = f"scale-{args.scale.resolve().name}"
        paths, priority, settings = prepared(label, lambda folder: scale_parts(folder, args.scale.resolve()))
    else:
        label = f"corpus-{args.partitions}"
        paths, priority, settings = prepared(label, lambda folder: corpus_parts(folder, args.partitions))
    outputs = make_corpus.WORK / f"partitioned-{label}" / "results"
    measured = outputs / "single.json"
    if args.skip_single and measured.exists():
        one = json.loads(measured.read_text())
    else:
        one = run_single(paths, outputs / "single")
        measured.write_text(json.dumps(one))
    print(f"[single] {one['seconds']} s, peak {one['peak_rss_mb']} MB", file=sys.stderr, flush=True)
    other = run_partitioned(paths, priority, settings, args.workers, args.malloc_trim, outputs / "partitioned")
    print(f"[partitioned] {other['seconds']} s, largest worker {other['largest_worker_peak_rss_mb']} MB",
          file=sys.stderr, flush=True)
    differ = differences(outputs / "single", outputs / "partitioned")
    report = {"label": label, "parts": len(paths), "workers": args.workers, "cpus": os.cpu_count(),
              "identical": not differ, "differences": differ, "single": one, "partitioned": other}
    (make_corpus.WORK / f"partitioned-{label}-{args.malloc_trim}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))
    if differ:
        raise SystemExit(f"partitioned and single-process results differ: {differ}")


if __name__ == "__main__":
    main()
