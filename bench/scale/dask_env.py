"""The whole flow build on the Dask runner with and without Dask's MALLOC_TRIM_THRESHOLD_ in the workers (#19).

    .venv/bin/python bench/scale/dask_env.py --records 100000 [--rounds 2] [--workers 2]

Dask's nanny starts every worker with MALLOC_TRIM_THRESHOLD_=65536 (``distributed.nanny.pre-spawn-environ``),
which turns off glibc's dynamic mmap threshold. Each round builds the corpus's mix (bench/scale/make_corpus.py)
twice with `pipeline build --runner dask --workers N`, alternating:

- ``trim``: MALLOC_TRIM_THRESHOLD_=65536 in the build's environment (the workers get it whatever
  flows/dask_runner.py configures: they inherit the CLI's environment; the CLI process has it too);
- ``off``: a Dask config file (DASK_CONFIG) that removes it from the nannies' pre-spawn environment, and no
  variable in the environment.

Every build gets a fresh state folder (INSTRUCT_PIPELINE_STATE: no cached task, no stage folder), no language
cache and no earlier output, against one local Prefect server started for the bench. Measured per build: wall
seconds, the peak RSS of the CLI's process tree (the CLI, the Dask workers; not the Prefect server) and of its
largest process (a worker), user + system CPU seconds of the tree (rusage of the waited-for children), and the
load average.
Writes bench/work/scale/dask-env-<label>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_corpus import label
from run import TOKENIZER, code_state, run_cli

from flows import server as prefect_server

WORK = ROOT / "bench" / "work" / "scale"
UNSET = "distributed:\n  nanny:\n    pre-spawn-environ:\n      MALLOC_TRIM_THRESHOLD_: null\n"


def variant_env(name: str, base: dict[str, str], scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    if name == "trim":
        return {**env, "MALLOC_TRIM_THRESHOLD_": "65536"}
    folder = scratch / "dask-config"
    folder.mkdir(exist_ok=True)
    (folder / "malloc.yaml").write_text(UNSET)
    return {**env, "DASK_CONFIG": str(folder)}


def one_build(mix: Path, env: dict[str, str], workers: int) -> dict[str, Any]:
    from pipeline import build
    from pipeline.config import load_mix

    loaded = load_mix(mix)
    shutil.rmtree(build.cache_folder(loaded), ignore_errors=True)  # every text's language detected again
    shutil.rmtree(loaded.out_dir, ignore_errors=True)  # else "unchanged: nothing to do"
    load = os.getloadavg()
    build = run_cli(mix, "dask", workers, env)
    if build["returncode"]:
        raise RuntimeError(build["output_tail"])
    return {"wall_s": round(build["wall_s"], 1), "tree_peak_mb": build["peak_rss_mb"],
            "largest_process_mb": build["largest_process_mb"],
            "cpu_s": round(build["cpu_s"]["user"] + build["cpu_s"]["system"], 1),
            "loadavg_before": [round(x, 2) for x in load], "loadavg_after": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    name = label(args.records)
    mix = WORK / name / "mix.yaml"
    base = {**os.environ, "INSTRUCT_PIPELINE_TOKENIZER": os.environ.get("INSTRUCT_PIPELINE_TOKENIZER", str(TOKENIZER))}
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="dask-env-") as scratch:
        server = prefect_server.start(Path(scratch) / "server")
        try:
            for round_ in range(args.rounds):
                for variant in ("trim", "off") if round_ % 2 == 0 else ("off", "trim"):
                    state = Path(scratch) / f"state-{round_}-{variant}"
                    env = {**variant_env(variant, base, Path(scratch)), "PREFECT_API_URL": server.api_url,
                           "INSTRUCT_PIPELINE_STATE": str(state)}
                    result = {"round": round_, "variant": variant, **one_build(mix, env, args.workers)}
                    print(json.dumps(result), flush=True)
                    runs.append(result)
                    shutil.rmtree(state, ignore_errors=True)
        finally:
            server.stop()
    out = WORK / f"dask-env-{name}.json"
    out.write_text(json.dumps({"records": args.records, "workers": args.workers, "code": code_state(), "runs": runs},
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
