"""One global stage of a Dask build again, alone, over the stage folders an earlier run left (issue #19, item 3).

    .venv/bin/python bench/scale/one_stage.py --state /tmp/dask-tasks-XXXX --stage decontaminate \
        --records 3000000 --worker-memory 4GB [--code-root /tmp/checkout-of-that-run]

A capped 3M build takes ~25 minutes to reach its later stages; this reruns one stage in a few. It finds the
handles of the shards and of the earlier stages by the build's cache keys, which include a hash of the pipeline's
code: give ``--code-root`` (a checkout of the commit the run was made at, e.g. ``git worktree add``) when the
pipeline has changed since. The stage task's body (``build_flow.stage_task.fn``) runs on a fresh local cluster
made as ``--worker-memory`` makes it (``dask_runner.local_cluster``), into a new folder; dask_tasks.py's worker
plugin records each task's worker and memory. Prints the tasks that ran a second or more or peaked highest,
then a summary (the largest worker, the workers that were killed and what they were running).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dask_tasks import TaskMemory, _finished, _killed, stored_handle
from make_corpus import label


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", type=Path, required=True, help="a dask_tasks.py run's state folder")
    parser.add_argument("--stage", required=True, help="a stage of plan.STAGES, e.g. decontaminate")
    parser.add_argument("--records", type=int, default=3_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-memory", default=None, help="e.g. 4GB")
    parser.add_argument("--code-root", type=Path, default=None, help="the checkout the run's keys were made with")
    args = parser.parse_args()
    os.environ["INSTRUCT_PIPELINE_STATE"] = str(args.state)
    os.environ.setdefault("INSTRUCT_PIPELINE_TOKENIZER", str(ROOT.parent / "shared" / "tokenizers" / "llama-2"))
    from distributed import Client
    from distributed.utils import key_split

    from flows import build_flow, dask_runner, keys, stage_store
    from pipeline import build, plan
    from pipeline.config import load_mix

    if args.code_root is not None:
        files = sorted(p for package in keys.PACKAGES for p in (args.code_root / package).rglob("*.py"))
        digest = keys.digest(*((p.relative_to(args.code_root).as_posix(), p.read_bytes()) for p in files))
        keys.code_digest = lambda: digest  # type: ignore[assignment]
    mix = load_mix(ROOT / "bench" / "work" / "scale" / label(args.records) / "mix.yaml")
    built = keys.build_keys(mix)

    names = [stage.name for stage in plan.STAGES]
    earlier = {name: stored_handle(args.state, built.stages[name]) for name in names[:names.index(args.stage)]}
    previous = earlier[names[names.index(args.stage) - 1]] if earlier else None
    shards = [] if earlier else [stored_handle(args.state, key) for key in built.units]
    tokenizer = build.needed_tokenizer(mix.spec)
    folder = stage_store.folder_for(args.state / "stages", mix.spec.name, None)
    logs = Path(tempfile.mkdtemp(prefix="one-stage-"))
    memory = dask_runner.worker_memory(args.worker_memory) if args.worker_memory else 0
    started = time.time()
    error = None
    with dask_runner.local_cluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, memory_limit=memory,
                                   local_directory=str(logs / "dask")) as cluster, Client(cluster) as client:
        client.register_plugin(TaskMemory(str(logs)))
        future = client.submit(build_flow.stage_task.fn, args.stage, shards, previous, earlier, mix, tokenizer,
                               None, folder, pure=False)
        try:
            stage_store.remove(future.result())
        except Exception as err:  # a worker killed three times: what ran until then is the result
            error = f"{type(err).__name__}: {str(err)[:300]}"
        ended = time.time()
    tasks = sorted(_finished(logs), key=lambda t: t[2])
    highest = sorted(t[5] for t in tasks)[-10:] if tasks else []
    for key, worker, began, end, first, peak in tasks:
        if end - began >= 1 or peak >= highest[0]:  # the long tasks and the ten highest peaks
            print(json.dumps({"task": key_split(key), "worker": worker.rsplit(":", 1)[-1],
                              "start_s": round(began - started, 1), "seconds": round(end - began, 1),
                              "rss_start_mb": first, "rss_peak_mb": peak}))
    print(json.dumps({"stage": args.stage, "records": args.records, "worker_memory": args.worker_memory,
                      "seconds": round(ended - started, 1), "error": error,
                      "largest_worker_mb": max((t[5] for t in tasks), default=0),
                      "killed": [{"at_s": round(view["time"] - started, 1), "rss_mb": view["rss_mb"],
                                  "running": {key_split(k): mb for k, mb in view["running"].items()}}
                                 for view in _killed(logs, ended)]}))
    shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
