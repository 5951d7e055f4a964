"""The flow's report and write tasks alone, over the stage folders a Dask build left (issue #19, item 3).

    .venv/bin/python bench/scale/report_write.py --state /tmp/dask-tasks-XXXX --records 3000000 [--page-budget 1GB]

``bench/scale/dask_tasks.py`` leaves its state folder (stage folders and Prefect's persisted handles) in /tmp; at
the same commit, the cache keys of the corpus's mix name the same handles, so the report task's body
(``build_flow.report_task.fn``) and the write task's (``writer.write``) run here in one process, as on a worker,
and RSS is sampled every 0.05 s: the peak of each step, and how much of the RSS at its end was file pages (stage
files read memory-mapped). ``--page-budget`` lets go of mapped pages past that many bytes, as a capped worker does
with a quarter of its limit (flows/mapped_pages.py); without it, pages stay as on an uncapped worker. The output
goes to a temporary folder, removed after. Prints one JSON line per step.
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

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dask_tasks import stored_handle
from make_corpus import label

MB = 1 << 20


class Peaks:
    """The process's RSS, sampled on a thread: the peak since the last ``step``."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.started = time.time()
        threading.Thread(target=self._poll, daemon=True).start()

    def _poll(self) -> None:
        while True:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.05)

    def step(self, name: str) -> dict[str, Any]:
        now = self.process.memory_info()
        row = {"step": name, "at_s": round(time.time() - self.started, 1), "peak_mb": max(self.peak, now.rss) // MB,
               "rss_mb": now.rss // MB, "file_pages_mb": now.shared // MB}
        self.peak = now.rss
        print(json.dumps(row), flush=True)
        return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", type=Path, required=True, help="a dask_tasks.py run's state folder")
    parser.add_argument("--records", type=int, default=3_000_000)
    parser.add_argument("--page-budget", default=None, help="e.g. 1GB: let go of mapped pages past this")
    args = parser.parse_args()
    os.environ["INSTRUCT_PIPELINE_STATE"] = str(args.state)
    os.environ.setdefault("INSTRUCT_PIPELINE_TOKENIZER", str(ROOT.parent / "shared" / "tokenizers" / "llama-2"))
    from dask.utils import parse_bytes

    from flows import build_flow, mapped_pages, stage_store
    from flows.keys import build_keys
    from pipeline import plan, writer
    from pipeline.config import load_mix

    peaks = Peaks()
    mix = load_mix(ROOT / "bench" / "work" / "scale" / label(args.records) / "mix.yaml")
    keys = build_keys(mix)

    shards = [stored_handle(args.state, key) for key in keys.units]
    stages = {stage.name: stored_handle(args.state, keys.stages[stage.name]) for stage in plan.STAGES}
    if args.page_budget:
        mapped_pages.keep_under(parse_bytes(args.page_budget))
    rows = [peaks.step("handles")]
    report = build_flow.report_task.fn(mix, shards, stages, stage_store.folder_for(args.state / "stages",
                                                                                   mix.spec.name, None))
    rows.append(peaks.step("report task"))
    result = stage_store.get(report)
    out = Path(tempfile.mkdtemp(prefix="report-write-"))
    try:
        writer.write(result, out / "build")
        rows.append(peaks.step("write task"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
        stage_store.remove(report)
    print(json.dumps({"records": args.records, "page_budget": args.page_budget, "steps": rows}))


if __name__ == "__main__":
    main()
