"""Print the Markdown tables of FINDINGS.md from the result files run.py wrote.

    .venv/bin/python bench/scale/table.py results-100k-stages-ffc150b.json results-300k-stages-5dfbb97-dirty.json ...

Arguments are file names under bench/work/scale/ (or paths). ``stages`` results give the per-stage table (seconds /
peak MB of the process tree during the stage) and this process's sub-timers; ``cli`` results the end-to-end rows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

WORK = Path(__file__).resolve().parents[2] / "bench" / "work" / "scale"


def load(name: str) -> dict[str, Any]:
    path = Path(name) if Path(name).is_file() else WORK / name
    result: dict[str, Any] = json.loads(path.read_text())
    result["file"] = path.name
    return result


def column(result: dict[str, Any]) -> str:
    code = result["code"]["commit"] + ("*" if result["code"]["dirty"] else "")
    return f"{result['label']} {result['mode']}{'+profile' if 'profile' in result['file'] else ''} @{code}"


def cli_rows(results: list[dict[str, Any]]) -> None:
    print("| N | runner | code | wall s | peak RSS MB | CPU user+sys s | machine CPU busy s (of 2 x wall) "
          "| load 1-min before → after |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for r in results:
        cpu = r["cpu_s"]["user"] + r["cpu_s"]["system"]
        code = r["code"]["commit"] + ("*" if r["code"]["dirty"] else "")
        print(f"| {r['label']} | {r['runner']} | {code} | {r['wall_s']:.1f} | {r['peak_rss_mb']:,} | {cpu:.0f} | "
              f"{r['machine_cpu_busy_s']:.0f} ({2 * r['wall_s']:.0f}) | "
              f"{r['before']['loadavg'][0]} → {r['after']['loadavg'][0]} |")


def stage_rows(results: list[dict[str, Any]]) -> None:
    names = list(dict.fromkeys(s["stage"] for r in results for s in r["stages"]))
    print("| stage | " + " | ".join(column(r) for r in results) + " |")
    print("|---|" + "---:|" * len(results))
    for name in names:
        cells = []
        for r in results:
            found = [s for s in r["stages"] if s["stage"] == name]
            cells.append(f"{found[0]['seconds']:.1f} s / {found[0]['peak_tree_mb']:,} MB" if found else "")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| **total** | " + " | ".join(f"**{r['wall_s']:.1f} s / {r['peak_rss_mb']:,} MB**" for r in results) + " |")
    print("| load 1-min before → after | " + " | ".join(
        f"{r['before']['loadavg'][0]} → {r['after']['loadavg'][0]}" for r in results) + " |")
    timers = sorted({k for r in results for k in r["sub_timers_s"]})
    for k in timers:
        print(f"| {k} | " + " | ".join(f"{r['sub_timers_s'].get(k, 0):.1f} s" for r in results) + " |")


def main() -> None:
    results = [load(name) for name in sys.argv[1:]]
    cli = [r for r in results if r["mode"] == "cli"]
    stages = [r for r in results if r["mode"] == "stages"]
    if cli:
        cli_rows(cli)
        print()
    if stages:
        stage_rows(stages)


if __name__ == "__main__":
    main()
