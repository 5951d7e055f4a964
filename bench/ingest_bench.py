"""Ingest + normalize + validate throughput and peak memory of `pipeline validate` / `pipeline build`.

    python bench/ingest_bench.py                 # the 52,002 Alpaca records and 1,000,000 made by repeating them
    python bench/ingest_bench.py --repeat 1 --sizes 52k

Each run is a fresh process: `pipeline validate` (read, normalize, validate; nothing written), `pipeline build`
(the same plus writing the output folder), both with interpreter start-up, imports and worker start-up
included, and `build.run()` timed inside an already started interpreter (the stages alone). Peak memory is the
largest sum of RSS over the process and its workers, sampled every 100 ms (sampling every 20 ms cost
the measured run ~10% on 2 cores). Prints a Markdown table for
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
SHARED = HERE.parent.parent / "shared" / "data"
PIPELINE = Path(sys.executable).parent / "pipeline"
IN_PROCESS = """
import sys, time
from pipeline import build
from pipeline.config import load_mix
mix = load_mix(sys.argv[1])
start = time.perf_counter()
build.run(mix)
print(time.perf_counter() - start)
"""


def corpus(size: str) -> tuple[str, int]:
    """(source path glob, record count) of a benchmark corpus, made on first use."""
    if size == "52k":
        return str(SHARED / "alpaca-en" / "*.json"), 52_002
    folder = WORK / "alpaca-1m"
    if len(list(folder.glob("*.json"))) != 20:
        subprocess.run([sys.executable, str(HERE / "make_corpus.py"), "--records", "1000000", "--files", "20",
                        "--out", str(folder)], check=True)
    return str(folder / "*.json"), 1_000_000


def measure(command: list[str]) -> tuple[float, int]:
    """Wall seconds (or what the command prints, when it prints a number) and peak RSS bytes of the command's
    whole process tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parent, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{command} failed:\n{proc.stderr.read().decode()}")  # type: ignore[union-attr]
    printed = proc.stdout.read().decode().strip()  # type: ignore[union-attr]
    return (float(printed) if printed else elapsed), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["52k", "1m"], choices=["52k", "1m"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="default: the pipeline's own choice")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB; python {platform.python_version()}\n")
    print("| corpus | input MB | command | wall s (median of %d) | records/s | peak RSS MB | peak / input |"
          % args.repeat)
    print("|---|---:|---|---:|---:|---:|---:|")
    for size in args.sizes:
        pattern, records = corpus(size)
        mix = WORK / f"bench-{size}.yaml"
        mix.write_text(yaml.safe_dump({"name": f"bench-{size}", "sources": [{"name": "alpaca", "path": pattern}],
                                       "tokenize": {"enabled": False},  # measured in tokenize_bench.py
                                       "output": {"dir": str(WORK / "out")}}))
        input_bytes = sum(p.stat().st_size for p in Path(pattern).parent.glob(Path(pattern).name))
        commands = {
            "`pipeline validate`": [str(PIPELINE), "validate", "--mix", str(mix)],
            "`pipeline build`": [str(PIPELINE), "build", "--mix", str(mix)],
            "`build.run()` in process": [sys.executable, "-c", IN_PROCESS, str(mix)],
        }
        for label, command in commands.items():
            if args.workers and label.startswith("`pipeline"):
                command += ["--workers", str(args.workers)]
            runs = [measure(command) for _ in range(args.repeat)]
            wall = statistics.median(r[0] for r in runs)
            peak = max(r[1] for r in runs)
            print(f"| {size} | {input_bytes / 1e6:.0f} | {label} | {wall:.2f} | {records / wall:,.0f} | "
                  f"{peak / 1e6:.0f} | {peak / input_bytes:.2f} |", flush=True)


if __name__ == "__main__":
    main()
