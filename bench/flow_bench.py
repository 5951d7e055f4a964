"""Prefect's cost and the flow cache, measured as a user sees them: wall time of `pipeline build` processes.

1. The demo mix, cold (a fresh state folder: no cached task results), three ways: the stages called directly
   (`--runner direct`), the flow with Prefect's temporary server (no PREFECT_API_URL: what a first-time user
   gets), and the flow against a running server (`prefect server start`, as the README recommends).
2. The full Alpaca (52,002 records, tokenized with the LLaMA-2 tokenizer) against the running server: a cold
   build, an unchanged re-run, and a re-run after adding one small file; the direct build for reference.

    .venv/bin/python bench/flow_bench.py            # writes bench/work/flow/results.json, prints a table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows import server as prefect_server  # noqa: E402

WORK = ROOT / "bench" / "work" / "flow"
PIPELINE = str(Path(sys.executable).with_name("pipeline"))


def timed_build(mix: Path, state: Path, api_url: str | None, *extra: str) -> float:
    env = {**os.environ, "INSTRUCT_PIPELINE_STATE": str(state)}
    env.pop("PREFECT_API_URL", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    start = time.perf_counter()
    done = subprocess.run([PIPELINE, "build", "--mix", str(mix), *extra], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"pipeline build failed: {done.stderr[-3000:]}")
    return elapsed


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alpaca", type=Path, default=ROOT.parent / "shared" / "data" / "alpaca-en")
    args = parser.parse_args()
    os.environ.setdefault("INSTRUCT_PIPELINE_TOKENIZER", str(ROOT.parent / "shared" / "tokenizers" / "llama-2"))
    fresh(WORK)
    server = prefect_server.start(WORK / "prefect-server")
    results: dict[str, float] = {}
    try:
        shutil.copytree(ROOT / "data", WORK / "demo", ignore=shutil.ignore_patterns("out"))
        demo = WORK / "demo" / "mix.yaml"
        for name, api, extra in (("demo cold, direct", None, ("--runner", "direct")),
                                 ("demo cold, flow, temporary server", None, ()),
                                 ("demo cold, flow, running server", server.api_url, ())):
            shutil.rmtree(WORK / "demo" / "out", ignore_errors=True)
            results[name] = timed_build(demo, fresh(WORK / "state"), api, *extra)
            print(f"{name}: {results[name]:.2f} s", flush=True)

        parts = fresh(WORK / "alpaca")
        for path in sorted(args.alpaca.glob("*.json")):
            shutil.copy(path, parts / path.name)
        mix = WORK / "alpaca.yaml"
        mix.write_text(f"name: alpaca\nsources:\n  - name: alpaca\n    path: {parts}/*.json\n"
                       f"output:\n  dir: {WORK}/out\n"
                       "tokenize:\n  enabled: true\n", encoding="utf-8")
        state = fresh(WORK / "state")
        for name in ("alpaca 52k cold, flow, running server", "alpaca 52k unchanged re-run"):
            results[name] = timed_build(mix, state, server.api_url)
            print(f"{name}: {results[name]:.2f} s", flush=True)
        (parts / "zz-new.json").write_text(json.dumps([{"instruction": f"New task {k}?", "input": "",
                                                         "output": f"New answer {k}."} for k in range(100)]))
        results["alpaca 52k + one new file"] = timed_build(mix, state, server.api_url)
        print(f"alpaca 52k + one new file: {results['alpaca 52k + one new file']:.2f} s", flush=True)
        (parts / "zz-new.json").unlink()
        shutil.rmtree(WORK / "out", ignore_errors=True)
        results["alpaca 52k cold, direct"] = timed_build(mix, fresh(WORK / "state-direct"), None, "--runner", "direct")
        print(f"alpaca 52k cold, direct: {results['alpaca 52k cold, direct']:.2f} s", flush=True)
    finally:
        server.stop()
    ratio = results["alpaca 52k unchanged re-run"] / results["alpaca 52k cold, flow, running server"]
    summary = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
               "seconds": {k: round(v, 2) for k, v in results.items()}, "rerun_over_cold": round(ratio, 4)}
    (WORK / "results.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
