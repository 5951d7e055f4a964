"""Many small files: wall time and peak RSS of `pipeline validate` and `pipeline build --runner direct` over N
one-record Alpaca files (real Stanford Alpaca records, one per file, in a glob source), issue #16.

Each run is a fresh process on a fresh output folder (so a fresh language cache: every text is detected).
Peak RSS is the CLI process's own (``wait4``); inputs this small run on one process (``default_workers``).
``--flow N`` also times the default runner (the Prefect flow on threads, one task per file, a temporary
Prefect server, a fresh state folder) at N files.

    .venv/bin/python bench/many_files.py                          # 250 1000 2000 10000
    .venv/bin/python bench/many_files.py --files 250 1000 --flow 1000 --label after
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work" / "many_files"
PIPELINE = str(Path(sys.executable).with_name("pipeline"))
ALPACA = ROOT.parent / "shared" / "data" / "alpaca-en"


def alpaca_records(n: int, folder: Path = ALPACA) -> list[dict[str, str]]:
    """The first ``n`` records of the Stanford Alpaca files, in file order."""
    records: list[dict[str, str]] = []
    for path in sorted(folder.glob("alpaca_data-*.json")):
        records.extend(orjson.loads(path.read_bytes()))
        if len(records) >= n:
            return records[:n]
    raise ValueError(f"{folder} holds only {len(records)} records, {n} asked")


def write_corpus(n: int, folder: Path) -> Path:
    """``n`` files of one record each under ``folder``/parts and a mix.yaml reading them by a glob; returns the mix."""
    shutil.rmtree(folder, ignore_errors=True)
    parts = folder / "parts"
    parts.mkdir(parents=True)
    for k, record in enumerate(alpaca_records(n)):
        (parts / f"{k:06d}.json").write_bytes(orjson.dumps([record]))
    mix = folder / "mix.yaml"
    mix.write_text(f"name: many{n}\nsources:\n  - name: alpaca\n    path: {parts}/*.json\n    format: alpaca\n"
                   f"output:\n  dir: {folder}/out\n", encoding="utf-8")
    return mix


def timed(args: list[str], env: dict[str, str], timeout: float) -> tuple[float | None, float | None]:
    """(wall seconds, peak RSS in MB) of one CLI process; (None, None) past ``timeout``."""
    log = tempfile.TemporaryFile()  # not a pipe: a flow logs more than a pipe holds, and would wait on it
    start = time.perf_counter()
    process = subprocess.Popen([PIPELINE, *args], env=env, stdout=subprocess.DEVNULL, stderr=log)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            process.kill()
            os.wait4(process.pid, 0)
            return None, None
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        log.seek(0)
        raise RuntimeError(f"pipeline {' '.join(args)} failed: {log.read().decode()[-3000:]}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, nargs="*", default=[250, 1000, 2000, 10000])
    parser.add_argument("--flow", type=int, nargs="*", default=[], help="also time the default (flow) runner here")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds a run may take (then: did not finish)")
    parser.add_argument("--only", choices=["validate", "build direct"], help="time only this command at --files")
    parser.add_argument("--code", type=Path, help="a copy of the project to run instead (put first on PYTHONPATH)")
    parser.add_argument("--label", default="run", help="name of the results file: bench/work/many_files/<label>.json")
    args = parser.parse_args()
    env = {**os.environ, "INSTRUCT_PIPELINE_TOKENIZER": os.environ.get(
        "INSTRUCT_PIPELINE_TOKENIZER", str(ROOT.parent / "shared" / "tokenizers" / "llama-2"))}
    env.pop("PREFECT_API_URL", None)  # the flow runs against Prefect's temporary server
    if args.code:
        env["PYTHONPATH"] = str(args.code.resolve())
    rows = []
    for n in sorted(set(args.files) | set(args.flow)):
        folder = WORK / f"{args.label}-n{n}"
        mix = write_corpus(n, folder)
        runs: list[tuple[str, list[str]]] = []
        if n in args.files:
            runs += [("validate", ["validate", "--mix", str(mix)]),
                     ("build direct", ["build", "--mix", str(mix), "--runner", "direct"])]
        runs = [run for run in runs if args.only in (None, run[0])]
        if n in args.flow:
            runs.append(("build flow", ["build", "--mix", str(mix)]))
        for name, command in runs:
            shutil.rmtree(folder / "out", ignore_errors=True)
            state = folder / "state"
            shutil.rmtree(state, ignore_errors=True)
            seconds, rss = timed(command, {**env, "INSTRUCT_PIPELINE_STATE": str(state)}, args.timeout)
            rows.append({"files": n, "command": name, "seconds": None if seconds is None else round(seconds, 2),
                         "peak_rss_mb": None if rss is None else round(rss)})
            shown = "did not finish" if seconds is None else f"{seconds:.1f} s, {rss:,.0f} MB"
            print(f"{n:>6} files  {name:<13} {shown}", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
    summary = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
               "rows": rows}
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / f"{args.label}.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
