"""Where the dedup and decontaminate stages' memory goes at 1M records: each stage's wall time, CPU time and
peak RSS (and the peak of each of its steps) on the cached shards of bench/scale's 1M corpus.

    .venv/bin/python bench/dedup/memory.py                          # this tree, both stages
    .venv/bin/python bench/dedup/memory.py --code /tmp/base --label base   # another code tree (git archive)
    .venv/bin/python bench/dedup/memory.py --compare base new       # are two runs' outputs identical?

Records: the kept records of every work unit of bench/work/scale/1m/mix.yaml after the per-record stages, as
bench/dedup/partitioned.py caches them (bench/work/dedup/partitioned-scale-1m/, built by it when missing),
concatenated in input order as ``build.union`` does. Then ``plan.dedup_stage`` and, over its kept records,
``plan.decontaminate_stage`` run with the mix of bench/work/scale/1m (its references, eval sets and settings),
as ``build.finish`` calls them.

Memory: VmRSS of this process polled every 20 ms by a thread (numpy and polars allocate outside Python's heap,
so tracemalloc sees none of it); the peak is kept per stage and, with ``--steps``, per step: the functions of
pipeline/dedup.py, near_dups.py and decontaminate.py are wrapped here so that the sampler knows which one runs
(the labels are measurement only; the code measured is unchanged). CPU time is this process's user + system.
Outputs (kept ids and row hashes, duplicates, signatures, fingerprints, stats, the decontaminate rejects) go to
bench/work/dedup/memory-<label>/ for ``--compare``; the numbers to memory-<label>.json beside it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MB = 2**20
POLL_SECONDS = 0.02
WORK = ROOT / "bench" / "work" / "dedup"
SHARDS = WORK / "partitioned-scale-1m"
SCALE = ROOT / "bench" / "work" / "scale" / "1m"


def vm_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Sampler:
    """Polls VmRSS; keeps the peak per label (the label is whatever step runs now)."""

    def __init__(self) -> None:
        self.label = "idle"
        self.peaks: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.timeline: list[tuple[float, str, int]] = []  # (seconds since start, label, VmRSS)
        self.started = time.perf_counter()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.done.is_set():
            self.note()
            time.sleep(POLL_SECONDS)

    def note(self) -> None:
        rss = vm_rss()
        self.timeline.append((time.perf_counter() - self.started, self.label, rss))
        self.peaks[self.label] = max(self.peaks.get(self.label, 0), rss)

    def peak(self, stage: str) -> int:
        """The peak while ``stage`` ran, in any of its steps."""
        return max(peak for label, peak in self.peaks.items() if label.split("/")[0] == stage)

    def labelled(self, name: str, function: Any) -> Any:
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            outer = self.label
            self.label = label = f"{outer.split('/')[0]}/{name}"  # the stage it runs in, then the step
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.note()
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - started
                self.label = outer
        return run


STEPS = {  # module: functions whose peak is kept apart with --steps
    "dedup": ("deduplicate", "duplicates_of", "find", "_universe", "keys_and_shingles", "exact_keepers", "_result",
              "outcomes"),
    "near_dups": ("signatures_with", "candidate_pairs", "eligible", "prefiltered", "_verified_components",
                  "similarity_to_keepers"),
    "decontaminate": ("ngram_matches",),
}


def wrap_steps(sampler: Sampler) -> None:
    import importlib
    for module_name, names in STEPS.items():
        module = importlib.import_module(f"pipeline.{module_name}")
        for name in names:
            if hasattr(module, name):
                setattr(module, name, sampler.labelled(f"{module_name}.{name}", getattr(module, name)))
    sets = importlib.import_module("pipeline.minhash").ShingleSets
    sets.take = sampler.labelled("ShingleSets.take", sets.take)


def print_timeline(timeline: list[tuple[float, str, int]], seconds: float) -> None:
    """The largest RSS in each interval of ``seconds``, with the label it was sampled under."""
    worst: dict[int, tuple[int, str]] = {}
    for at, label, rss in timeline:
        slot = int(at / seconds)
        worst[slot] = max(worst.get(slot, (0, "")), (rss, label))
    for slot, (rss, label) in sorted(worst.items()):
        print(f"{slot * seconds:8.1f} s {rss / MB:7.0f} MB  {label}", file=sys.stderr)


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def write_outputs(out: Path, dedup_outcome: Any, decontaminated: Any) -> None:
    import numpy as np
    out.mkdir(parents=True, exist_ok=True)
    kept = dedup_outcome.kept
    kept.select("id", row_hash=kept.hash_rows()).write_parquet(out / "kept.parquet")
    for name, frame in dedup_outcome.outputs.items():
        if name == "signatures":
            np.save(out / "signatures.npy", frame["signature"].to_numpy())
            frame.select("id").write_parquet(out / "signature_ids.parquet")
        else:
            frame.write_parquet(out / f"{name}.parquet")
    (out / "stats.json").write_text(dedup_outcome.stats.model_dump_json() if dedup_outcome.stats else "null")
    decontaminated.rejected.write_parquet(out / "decontaminated.parquet")
    decontaminated.kept.select("id").write_parquet(out / "decontaminate_kept.parquet")


def compare(one: Path, other: Path) -> list[str]:
    import numpy as np
    import polars as pl
    names = sorted({p.name for p in one.iterdir()} | {p.name for p in other.iterdir()})
    differ = []
    for name in names:
        a, b = one / name, other / name
        if not (a.exists() and b.exists()):
            differ.append(name)
        elif name.endswith(".parquet"):
            differ += [] if pl.read_parquet(a).equals(pl.read_parquet(b)) else [name]
        elif name.endswith(".npy"):
            x, y = np.load(a), np.load(b)
            differ += [] if x.dtype == y.dtype and np.array_equal(x, y) else [name]
        elif a.read_bytes() != b.read_bytes():
            differ.append(name)
    return differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=Path, default=ROOT, help="the code tree to import pipeline from")
    parser.add_argument("--label", default="this")
    parser.add_argument("--steps", action="store_true", help="the peak of each step too (wraps functions)")
    parser.add_argument("--timeline", type=float, metavar="SECONDS",
                        help="print the largest RSS of every SECONDS interval, with what ran")
    parser.add_argument("--no-outputs", action="store_true", help="do not write the outputs for --compare")
    parser.add_argument("--compare", nargs=2, metavar="LABEL")
    args = parser.parse_args()
    if args.compare:
        differ = compare(*(WORK / f"memory-{label}" for label in args.compare))
        print(json.dumps({"identical": not differ, "differences": differ}))
        raise SystemExit(1 if differ else 0)
    sys.path.insert(0, str(args.code.resolve()))
    import polars as pl

    from pipeline import plan
    from pipeline.config import load_mix
    from pipeline.io import heap

    assert Path(plan.__file__).resolve().is_relative_to(args.code.resolve()), plan.__file__
    if not (SHARDS / "spec.json").exists():
        raise SystemExit(f"no cached shards in {SHARDS}: run bench/dedup/partitioned.py --scale {SCALE} once")
    sampler = Sampler()
    if args.steps:
        wrap_steps(sampler)
    mix = load_mix(SCALE / "mix.yaml")
    records = pl.concat([pl.read_parquet(p) for p in sorted(SHARDS.glob("part-*.parquet"))])
    heap.trim()
    report: dict[str, Any] = {"label": args.label, "code": str(args.code), "records": records.height,
                              "loadavg_before": os.getloadavg(), "rss_records_mb": round(vm_rss() / MB)}
    outcomes = {}
    for name in ("dedup", "decontaminate"):
        stage = plan.stage(name)
        before = vm_rss()
        sampler.label = name
        started, cpu = time.perf_counter(), cpu_seconds()
        outcome = plan.run_stage(stage, records, plan.Context(mix))
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        sampler.note()
        sampler.label = f"after {name}"
        records = outcome.kept  # as build.finish: the stage's input is let go
        outcomes[name] = outcome
        report[name] = {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 1),
                        "rss_before_mb": round(before / MB), "peak_mb": round(sampler.peak(name) / MB),
                        "rss_after_mb": round(vm_rss() / MB), "kept": outcome.kept.height}
        print(f"[{args.label}] {name}: {seconds:.1f} s, {cpu:.1f} CPU s, rss {before / MB:.0f} MB -> peak "
              f"{sampler.peak(name) / MB:.0f} MB", file=sys.stderr, flush=True)
    sampler.done.set()
    report["steps"] = {label: {"peak_mb": round(peak / MB), "seconds": round(sampler.seconds.get(label, 0), 2)}
                       for label, peak in sampler.peaks.items()}
    report["loadavg_after"] = os.getloadavg()
    if args.timeline:
        print_timeline(sampler.timeline, args.timeline)
    if not args.no_outputs:
        write_outputs(WORK / f"memory-{args.label}", outcomes["dedup"], outcomes["decontaminate"])
    (WORK / f"memory-{args.label}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
