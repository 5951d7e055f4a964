"""What each task of a Dask build holds, worker by worker (issue #19, items 3 and 5).

    .venv/bin/python bench/scale/dask_tasks.py --records 1000000 [--worker-memory 4GB] [--workers 2]

Starts the runner's own local cluster (``flows.dask_runner.local_cluster``: one thread per worker, and with
``--worker-memory`` Dask's memory manager as ``pipeline build --worker-memory`` sets it), a Prefect server and a
fresh state folder, and builds the corpus's mix (bench/work/scale/<label>/mix.yaml, its output removed first) on
the cluster, as ``--dask-address`` does. A worker plugin polls its worker's RSS every 0.1 s and records, for
every task the worker runs, its start and end, the RSS when it started and the peak while it ran (a stage task
that waits for the tasks it submitted, seceded, shares its worker with them: their peaks are inside its
interval). The records go to files as they are made, so a worker that Dask's nanny kills at its limit leaves
what it ran and what it was running then (``killed``: each dead worker process's last view, RSS and the running
tasks' peaks). Writes bench/work/scale/dask-tasks-<label>[-<memory>].json; prints one line per task (the flow's
global stages are ``stage_task`` 1-5 in the order they started).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from distributed.diagnostics.plugin import WorkerPlugin

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_corpus import label

WORK = ROOT / "bench" / "work" / "scale"
MB = 1 << 20


class TaskMemory(WorkerPlugin):
    """Per task run on this worker: (key, start, end, RSS at start, peak RSS while it ran), in MB, appended to
    ``<folder>/tasks-<pid>.jsonl`` as each task ends; the tasks running now, with their peaks so far, rewritten
    to ``<folder>/running-<pid>.json`` every second. Both survive a worker its nanny kills, so the tasks that
    were running when it passed the limit are known."""

    name = "task-memory"

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def setup(self, worker: Any) -> None:
        self.process = psutil.Process()
        self.address = worker.address
        self.running: dict[str, tuple[float, int, int]] = {}  # key -> (start, rss at start, peak so far)
        self.log = Path(self.folder) / f"tasks-{self.process.pid}.jsonl"
        self.now = Path(self.folder) / f"running-{self.process.pid}.json"
        self.lock = threading.Lock()
        threading.Thread(target=self._poll, daemon=True).start()

    def _poll(self) -> None:
        ticks = 0
        while True:
            rss = self.process.memory_info().rss
            with self.lock:
                for key, (start, first, peak) in self.running.items():
                    self.running[key] = (start, first, max(peak, rss))
                if ticks % 10 == 0:
                    self.now.write_text(json.dumps({"worker": self.address, "time": time.time(), "rss_mb": rss // MB,
                                                    "running": {k: v[2] // MB for k, v in self.running.items()}}))
            ticks += 1
            time.sleep(0.1)

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        rss = self.process.memory_info().rss
        with self.lock:
            if finish == "executing":
                self.running[str(key)] = (time.time(), rss, rss)
            elif start in ("executing", "long-running") and finish != "long-running" and str(key) in self.running:
                began, first, peak = self.running.pop(str(key))
                row = (str(key), self.address, began, time.time(), first // MB, max(peak, rss) // MB)
                with self.log.open("a") as out:
                    out.write(json.dumps(row) + "\n")


def stored_handle(state: Path, key: str) -> Any:
    """The handle a cached task of a run returned, as Prefect persisted it under the run's state folder (by cache
    key): how one_stage.py and report_write.py find a finished run's stage folders."""
    import base64

    import cloudpickle

    stored = json.loads((state / "prefect" / "storage" / key).read_text())
    return cloudpickle.loads(base64.b64decode(stored["result"]))


def _finished(folder: Path) -> list[tuple[str, str, float, float, int, int]]:
    return [tuple(json.loads(line)) for path in sorted(folder.glob("tasks-*.jsonl"))  # type: ignore[misc]
            for line in path.read_text().splitlines()]


def _killed(folder: Path, end: float) -> list[dict[str, Any]]:
    """What each worker process that stopped reporting before the end was running (a worker its nanny killed)."""
    seen = [json.loads(path.read_text()) for path in sorted(folder.glob("running-*.json"))]
    return [view for view in seen if view["time"] < end - 5]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-memory", default=None, help="e.g. 4GB: each worker's limit")
    args = parser.parse_args()
    name = label(args.records)
    state = Path(tempfile.mkdtemp(prefix="dask-tasks-"))
    os.environ["INSTRUCT_PIPELINE_STATE"] = str(state)
    os.environ.setdefault("INSTRUCT_PIPELINE_TOKENIZER", str(ROOT.parent / "shared" / "tokenizers" / "llama-2"))
    from distributed import Client
    from distributed.utils import key_split

    from flows import dask_runner
    from flows import server as prefect_server

    shutil.rmtree(WORK / name / "out" / f"scale-{name}", ignore_errors=True)  # else "unchanged: nothing to do"
    server = prefect_server.start(state / "server")
    os.environ["PREFECT_API_URL"] = server.api_url
    memory = dask_runner.worker_memory(args.worker_memory) if args.worker_memory else 0
    logs_folder = state / "task-memory"
    logs_folder.mkdir()
    started, error = time.time(), None
    try:
        with dask_runner.local_cluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, memory_limit=memory,
                                       local_directory=str(state / "dask")) as cluster, Client(cluster) as client:
            client.register_plugin(TaskMemory(str(logs_folder)))
            from flows.build_flow import with_runner

            try:
                with_runner("dask", dask_address=cluster.scheduler_address)(str(WORK / name / "mix.yaml"))
            except Exception as err:  # a capped worker killed three times: what ran until then is the result
                error = f"{type(err).__name__}: {str(err)[:300]}"
            ended = time.time()
    finally:
        server.stop()
    tasks = sorted(_finished(logs_folder), key=lambda t: t[2])
    killed = _killed(logs_folder, ended)
    stage_number = 0
    rows = []
    for key, worker, began, end, first, peak in tasks:
        task = key_split(key)
        if task == "stage_task":
            stage_number += 1
            task = f"stage_task {stage_number}"
        rows.append({"task": task, "worker": worker.rsplit(":", 1)[-1], "start_s": round(began - started, 1),
                     "seconds": round(end - began, 1), "rss_start_mb": first, "rss_peak_mb": peak})
    result = {"records": args.records, "workers": args.workers, "worker_memory": args.worker_memory,
              "seconds": round(time.time() - started, 1), "error": error, "tasks": rows,
              "killed": [{"worker": view["worker"], "at_s": round(view["time"] - started, 1), "rss_mb": view["rss_mb"],
                          "running": {key_split(k): mb for k, mb in view["running"].items()}} for view in killed]}
    suffix = f"-{args.worker_memory}" if args.worker_memory else ""
    (WORK / f"dask-tasks-{name}{suffix}.json").write_text(json.dumps(result, indent=1))
    for row in rows:
        if row["seconds"] >= 1 or row["rss_peak_mb"] >= 1024:
            print(json.dumps(row))
    print(json.dumps({k: v for k, v in result.items() if k != "tasks"}))


if __name__ == "__main__":
    main()
