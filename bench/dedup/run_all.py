"""Side-by-side near-duplicate benchmark: every method at every threshold on one corpus, scored against exact
ground truth.

    .venv/bin/python bench/dedup/run_all.py                                  # 52,002 + 10,000 copies, all methods
    .venv/bin/python bench/dedup/run_all.py --methods datasketch,rensa --thresholds 0.8
    .venv/bin/python bench/dedup/run_all.py --scale 1000000 --methods ours,rensa

Builds (or reuses) the corpus (make_corpus.py) and its ground-truth pairs (ground_truth.py, cached beside the
corpus under bench/work/dedup/), then runs each method's runner as a subprocess with the common CLI
``RUNNER --corpus C --threshold T --out removed.parquet --num-perm N``: ``ours`` is bench/dedup/ours.py under
the project's .venv (skipped with a message while it does not exist), the peers run under bench/.venv-peers
(see requirements-peers.txt). For each run it measures the subprocess wall time and its peak RSS (the sum over
the process tree, polled every 50 ms with psutil, so forked workers count), reads the runner's own dedup
seconds from its JSON stdout line, and scores the removed ids at J >= threshold (evaluate.py). Prints a
markdown table and writes it, with the corpus and ground-truth details, to bench/dedup/results.json.
Runner logs (stderr) and removed-id files go to bench/work/dedup/runs/.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import ground_truth
import make_corpus
from evaluate import score

MAIN_PYTHON = ROOT / ".venv" / "bin" / "python"
PEERS_PYTHON = ROOT / "bench" / ".venv-peers" / "bin" / "python"
RUNS = make_corpus.WORK / "runs"
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Method:
    name: str
    python: Path
    script: Path


METHODS = {
    "ours": Method("ours", MAIN_PYTHON, HERE / "ours.py"),
    "datasketch": Method("datasketch", PEERS_PYTHON, HERE / "peer_datasketch.py"),
    "datatrove": Method("datatrove", PEERS_PYTHON, HERE / "peer_datatrove.py"),
    "rensa": Method("rensa", PEERS_PYTHON, HERE / "peer_rensa.py"),
}


def tree_rss(process: psutil.Process) -> int:
    """Resident memory of a process and all its descendants, in bytes (0 for those already gone)."""
    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_measured(command: list[str], log: Path) -> tuple[int, float, int, str]:
    """Run ``command``; return (exit code, wall seconds, peak tree RSS bytes, stdout). stderr goes to ``log``."""
    stdout_path = log.with_suffix(".stdout")
    with log.open("w") as err, stdout_path.open("w") as out:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, cwd=ROOT)
        process = psutil.Process(child.pid)
        peak = 0
        while child.poll() is None:
            peak = max(peak, tree_rss(process))
            time.sleep(POLL_SECONDS)
        wall = time.perf_counter() - started
    return child.returncode, wall, peak, stdout_path.read_text()


def last_json_line(stdout: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}


def run_method(method: Method, corpus: Path, threshold: float, num_perm: int, pairs: pl.DataFrame) -> dict | None:
    """One runner at one threshold, measured and scored (None when it failed)."""
    RUNS.mkdir(parents=True, exist_ok=True)
    out = RUNS / f"{corpus.stem}.{method.name}.t{threshold}.parquet"
    log = out.with_suffix(".log")
    command = [str(method.python), str(method.script), "--corpus", str(corpus), "--threshold", str(threshold),
               "--out", str(out), "--num-perm", str(num_perm)]
    print(f"[run] {method.name} t={threshold}: {' '.join(command)}", file=sys.stderr, flush=True)
    out.unlink(missing_ok=True)
    code, wall, peak, stdout = run_measured(command, log)
    if code != 0 or not out.exists():
        print(f"[run] {method.name} t={threshold} failed (exit {code}); see {log}", file=sys.stderr)
        return None
    reported = last_json_line(stdout)
    removed = pl.read_parquet(out)["id"].to_list()
    scores = score(removed, pairs, threshold)
    docs = int(reported.get("docs", 0))
    seconds = float(reported.get("seconds", wall))
    row = {"method": method.name, "threshold": threshold, "docs": docs, "seconds": round(seconds, 2),
           "wall_seconds": round(wall, 2), "docs_per_second": round(docs / seconds) if seconds else None,
           "peak_rss_mb": round(peak / 2**20), **{k: (round(v, 4) if isinstance(v, float) else v)
                                                  for k, v in scores.items()},
           "runner": {k: v for k, v in reported.items() if k not in ("seconds", "docs", "removed")}}
    print(f"[run] {method.name} t={threshold}: {seconds:.1f} s (wall {wall:.1f} s), removed {len(removed)}, "
          f"P {scores['precision']:.3f} R {scores['recall']:.3f} F1 {scores['f1']:.3f}", file=sys.stderr,
          flush=True)
    return row


def markdown_table(rows: list[dict]) -> str:
    header = ("| method | J >= | docs | dedup s | wall s | docs/s | peak RSS MB | removed | precision | recall | F1 |\n"
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [header]
    for r in rows:
        lines.append(f"| {r['method']} | {r['threshold']} | {r['docs']:,} | {r['seconds']:.1f} | "
                     f"{r['wall_seconds']:.1f} | {r['docs_per_second'] or 0:,} | {r['peak_rss_mb']:,} | "
                     f"{r['removed']:,} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {', '.join(METHODS)}")
    parser.add_argument("--thresholds", default="0.8,0.7")
    parser.add_argument("--copies", type=int, default=10_000)
    parser.add_argument("--scale", type=int, default=None, help="total records (overrides --copies)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--corpus", type=Path, default=None, help="use this corpus parquet instead of building one")
    parser.add_argument("--json", type=Path, default=HERE / "results.json")
    args = parser.parse_args()

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; known: {list(METHODS)}")
    thresholds = [float(t) for t in args.thresholds.split(",")]

    copies = args.copies if args.scale is None else args.scale - 52_002
    corpus = args.corpus or make_corpus.default_path(copies, args.seed)
    if not corpus.exists():
        print(f"[corpus] building {corpus}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        make_corpus.build_corpus(corpus, copies, args.seed, copy_of_copy=0.2 if args.scale is not None else 0.0)
        print(f"[corpus] built in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    pairs, truth = ground_truth.load_pairs(corpus)
    print(f"[truth] {json.dumps(truth)}", file=sys.stderr, flush=True)

    rows = []
    for name in methods:
        method = METHODS[name]
        if not method.script.exists():
            print(f"[skip] {name}: {method.script.relative_to(ROOT)} does not exist yet", file=sys.stderr)
            continue
        if not method.python.exists():
            print(f"[skip] {name}: no interpreter at {method.python} (see requirements-peers.txt)", file=sys.stderr)
            continue
        for threshold in thresholds:
            row = run_method(method, corpus, threshold, args.num_perm, pairs)
            if row:
                rows.append(row)

    table = markdown_table(rows)
    print(table)
    truth_at = {str(t): int((pairs["jaccard"] >= t).sum()) for t in thresholds}
    args.json.write_text(json.dumps({
        "corpus": str(corpus.relative_to(ROOT)) if corpus.is_relative_to(ROOT) else str(corpus),
        "records": truth.get("docs"), "ground_truth": truth, "pairs_at_threshold": truth_at,
        "machine": {"cpus": psutil.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                    "python": platform.python_version()},
        "rss": "peak sum of RSS over the runner's process tree, polled every 50 ms",
        "rows": rows, "table": table}, indent=2) + "\n")
    print(f"[done] wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
