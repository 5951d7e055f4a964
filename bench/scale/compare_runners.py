"""Issue #9's check that the Dask runner writes what the direct build writes, at scale.

    .venv/bin/python bench/scale/compare_runners.py --records 1000000 [--direct-output FOLDER] [--worker-memory 4GB]

Builds the corpus's mix with `pipeline build --runner dask --workers 2` (a LocalCluster of 2 worker processes,
a local Prefect server started for the run, a fresh Prefect state so every task computes) after setting the
direct build's output aside (``--direct-output`` names an existing one; else it is built first with
`--runner direct`), then compares every output file's sha256. manifest.json differs only in ``build_key``
(the flow records its cache key; the direct runner has none), which is compared with that field removed.
``--direct-output`` may name bench/work/scale/<label>/out-direct, where the previous run set the direct build
aside: it is then compared again, not rebuilt (same code only). ``--worker-memory`` passes the option on to the
Dask build; ``--shard-rows N`` builds a copy of the mix with ``output.shard_rows: N`` both ways (train and eval
as Hub-style shards, a Dask task each). Writes bench/work/scale/compare-<label>.json with the load average
before and after.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import MB, Sampler, code_state

from flows import server as prefect_server

WORK = ROOT / "bench" / "work" / "scale"
PIPELINE = str(Path(sys.executable).with_name("pipeline"))
LABELS = {100_000: "100k", 300_000: "300k", 1_000_000: "1m", 3_000_000: "3m"}


def hashes(folder: Path) -> dict[str, str]:
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == "manifest.json":
            manifest = json.loads(data)
            manifest.pop("build_key", None)
            data = json.dumps(manifest, sort_keys=True).encode()
        found[path.relative_to(folder).as_posix()] = hashlib.sha256(data).hexdigest()
    return found


def build(mix: Path, env: dict[str, str], *options: str) -> tuple[float, dict[str, int]]:
    """Wall seconds, and the peak RSS (MB) of the build's process tree (the CLI, and the Dask nanny and worker
    processes it starts; not the Prefect server) and of its largest single process (each task's worker and memory:
    dask_tasks.py)."""
    start = time.perf_counter()
    child = subprocess.Popen([PIPELINE, "build", "--mix", str(mix), *options], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    sampler = Sampler(child.pid)
    sampler.start()
    _, stderr = child.communicate()
    sampler.finish()
    if child.returncode:
        raise RuntimeError(stderr[-4000:])
    peaks = {"tree": round(sampler.peak / MB), "largest_process": round(sampler.largest / MB)}
    return time.perf_counter() - start, peaks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000, choices=sorted(LABELS))
    parser.add_argument("--direct-output", type=Path, default=None)
    parser.add_argument("--worker-memory", default=None, help="e.g. 4GB: the Dask workers' memory limit")
    parser.add_argument("--shard-rows", type=int, default=None, help="output.shard_rows for both builds")
    args = parser.parse_args()
    load_before = os.getloadavg()
    label = LABELS[args.records]
    mix = WORK / label / "mix.yaml"
    if args.shard_rows:  # a copy of the mix beside it (its paths stay relative to the same folder)
        spec = yaml.safe_load(mix.read_text(encoding="utf-8"))
        spec.setdefault("output", {})["shard_rows"] = args.shard_rows
        mix = mix.with_name("mix-shard-rows.yaml")
        mix.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
    out = WORK / label / "out" / f"scale-{label}"
    env = {**os.environ, "INSTRUCT_PIPELINE_TOKENIZER": os.environ.get(
        "INSTRUCT_PIPELINE_TOKENIZER", str(ROOT.parent / "shared" / "tokenizers" / "llama-2"))}
    env.pop("PREFECT_API_URL", None)
    direct = WORK / label / "out-direct"
    reuse = args.direct_output is not None and args.direct_output.resolve() == direct.resolve()
    if not reuse:
        shutil.rmtree(direct, ignore_errors=True)
    seconds: dict[str, float] = {}
    peak_mb: dict[str, dict[str, int]] = {}
    if args.direct_output is None:
        shutil.rmtree(out.parent / ".cache", ignore_errors=True)
        seconds["direct"], peak_mb["direct"] = build(mix, env, "--runner", "direct")
        args.direct_output = out
    if reuse:
        shutil.rmtree(out, ignore_errors=True)  # the previous Dask build's: else "unchanged: nothing to do"
    else:
        shutil.move(str(args.direct_output), direct)
    memory = ["--worker-memory", args.worker_memory] if args.worker_memory else []
    with tempfile.TemporaryDirectory(prefix="scale-state-") as state:
        server = prefect_server.start(Path(state) / "server")
        try:
            flow_env = {**env, "PREFECT_API_URL": server.api_url, "INSTRUCT_PIPELINE_STATE": state}
            seconds["dask"], peak_mb["dask"] = build(mix, flow_env,
                                                     "--runner", "dask", "--workers", "2", *memory)
        finally:
            server.stop()
    ours, theirs = hashes(direct), hashes(out)
    differing = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    result = {"records": args.records, "files": len(ours), "identical": not differing, "differing": differing,
              "seconds": {k: round(v, 1) for k, v in seconds.items()}, "peak_rss_mb": peak_mb,
              "worker_memory": args.worker_memory, "shard_rows": args.shard_rows, "code": code_state(),
              "loadavg_before": load_before,
              "loadavg_after": os.getloadavg()}
    (WORK / f"compare-{label}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
