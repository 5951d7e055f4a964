"""The retention experiment's results: read each run's forgetting report (metrics.json), tabulate forgetting and
task loss per general share over the seeds, judge the acceptance goals of issue #21, and write RESULTS.md and
retention.svg. Called by run.py; ``python bench/retention/run.py --report-only`` reruns it alone.

Per run: F = general held-out loss after - before (nats; > 0 is forgetting), T = task held-out loss after.
Seeds are paired: the cut of forgetting at share s is 1 - F(s) / F(0) within each seed.
"""

from __future__ import annotations

import json
import math
import statistics
from itertools import pairwise
from pathlib import Path
from typing import Any

GENERAL, TASK = "retention:general_heldout", "task:task_heldout"


def read_run(folder: Path) -> dict[str, float] | None:
    path = folder / "metrics.json"
    if not path.is_file():
        return None
    groups = json.loads(path.read_text())["forgetting"]["groups"]
    return {"general_base": groups[GENERAL][0], "general": groups[GENERAL][-1], "task_base": groups[TASK][0],
            "task": groups[TASK][-1], "F": groups[GENERAL][-1] - groups[GENERAL][0]}


def _stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def collect(work: Path, plan: list[dict[str, Any]]) -> dict[tuple[str, str, float], dict[int, dict[str, float]]]:
    """(method, data, share) -> seed -> the run's numbers."""
    out: dict[tuple[str, str, float], dict[int, dict[str, float]]] = {}
    for run in plan:
        numbers = read_run(work / "runs" / f"{run['build']}-{run['method']}-seed{run['seed']}")
        if numbers is not None:
            out.setdefault((run["method"], run["data"], run["share"]), {})[run["seed"]] = numbers
    return out


def _fmt(s: dict[str, float], digits: int = 3) -> str:
    return f"{s['mean']:+.{digits}f} ± {s['sd']:.{digits}f}" if s["n"] > 1 else f"{s['mean']:+.{digits}f}"


def table(cells: dict, method: str) -> tuple[list[str], dict[float, dict[str, Any]]]:
    """Markdown rows for one method on the curated builds, and the numbers behind them per share."""
    shares = sorted(share for m, data, share in cells if m == method and data == "curated")
    base = cells.get((method, "curated", 0.0), {})
    rows, numbers = [], {}
    for share in shares:
        runs = cells[(method, "curated", share)]
        seeds = sorted(runs)
        f = _stats([runs[s]["F"] for s in seeds])
        t = _stats([runs[s]["task"] for s in seeds])
        cut = _stats([1 - runs[s]["F"] / base[s]["F"] for s in seeds if s in base and base[s]["F"]]) if base else None
        t_rel = _stats([runs[s]["task"] / base[s]["task"] - 1 for s in seeds if s in base]) if base else None
        numbers[share] = {"F": f, "T": t, "cut": cut, "T_rel": t_rel, "seeds": seeds,
                          "F_each": [runs[s]["F"] for s in seeds], "cut_each": [
                              1 - runs[s]["F"] / base[s]["F"] for s in seeds if s in base and base[s]["F"]]}
        cut_text = "-" if cut is None or share == 0 else f"{100 * cut['mean']:.0f}%"
        t_text = "-" if t_rel is None or share == 0 else f"{100 * t_rel['mean']:+.1f}%"
        rows.append(f"| {method} | {share:.1f} | {len(seeds)} | {_fmt(f)} | {f['min']:+.3f} .. {f['max']:+.3f} | "
                    f"{cut_text} | {_fmt(t)} | {t_text} |")
    return rows, numbers


def checks(lora: dict[float, dict], full: dict[float, dict], cells: dict, minutes: float | None) -> list[str]:
    """The acceptance goals of issue #21, each with the measured numbers and a verdict."""
    out = []

    def line(ok: bool, text: str) -> None:
        out.append(f"- {'**met**' if ok else '**not met**'}: {text}")

    if 0.0 in lora:
        f0 = lora[0.0]["F"]
        spread = f0["max"] - f0["min"]
        if f0["n"] > 1:
            line(f0["mean"] >= 0.10 and f0["mean"] >= 5 * spread,
                 f"task-only training raises the general held-out loss by {f0['mean']:.3f} nats (goal >= 0.10) and by "
                 f"{f0['mean'] / spread if spread else math.inf:.1f}x its seed-to-seed range {spread:.3f} (goal >= 5x)")
        else:
            line(f0["mean"] >= 0.10, f"task-only training raises the general held-out loss by {f0['mean']:.3f} nats "
                 "(goal >= 0.10; the seed-to-seed spread needs more than one seed)")
    if 0.3 in lora and 0.0 in lora:
        cuts, t_rel = lora[0.3]["cut_each"], lora[0.3]["T_rel"]["mean"]
        line(all(c >= 0.9 for c in cuts) and t_rel <= 0.05,
             f"share 0.3 cuts forgetting by {', '.join(f'{100 * c:.0f}%' for c in cuts)} (seeds; goal >= 90% in each) "
             f"at a task loss {100 * t_rel:+.1f}% from task-only (goal within 5%, fallback 10%: "
             f"{'met' if t_rel <= 0.10 else 'not met'})")
    means = [lora[s]["F"]["mean"] for s in sorted(lora)]
    if len(means) == 4:
        cut1 = lora[0.1]["cut"]["mean"] if lora[0.1]["cut"] else 0.0
        line(all(a > b for a, b in pairwise(means)) and cut1 >= 0.6,
             f"forgetting over shares 0, 0.1, 0.3, 0.5: {', '.join(f'{m:+.3f}' for m in means)} (goal: falling); "
             f"0.1 alone cuts it by {100 * cut1:.0f}% (goal >= 60%)")
    if len(full) == 4 and 0.0 in lora:
        f_full = [full[s]["F"]["mean"] for s in sorted(full)]
        line(all(a > b for a, b in pairwise(f_full)),
             f"full fine-tuning forgets {', '.join(f'{m:+.3f}' for m in f_full)} over the same shares (goal: the same "
             f"ordering); task-only it forgets {f_full[0] / lora[0.0]['F']['mean']:.1f}x what LoRA does")
    curated, raw = cells.get(("lora", "curated", 0.3), {}), cells.get(("lora", "raw", 0.3), {})
    if curated and raw:
        seeds = sorted(set(curated) & set(raw))
        diffs = {key: statistics.fmean(raw[s][key] - curated[s][key] for s in seeds) for key in ("general", "task")}
        line(all(d >= 0 for d in diffs.values()),
             f"at share 0.3 and the same budget, the raw build ends {diffs['general']:+.3f} nats on the clean general "
             f"set and {diffs['task']:+.3f} on the clean task set against the curated build (goal: >= 0, the curated "
             "build as good or better)")
    if minutes is not None:
        line(minutes <= 60, f"the whole experiment took {minutes:.0f} minutes (goal <= 60 on 2 cores for the cpu "
             "scale)")
    return out


def svg(lora: dict[float, dict], full: dict[float, dict], width: int = 760, height: int = 300) -> str:
    """Two panels: forgetting F and task loss T against the general share; LoRA seeds as dots, means as lines."""
    series = {"LoRA: mean of the seeds (dots: each seed)": (lora, "#1f77b4"), "full fine-tuning (one seed)": (full,
                                                                                                          "#d62728")}
    top, bottom = 30, height - 90
    panels = []
    for index, (key, title) in enumerate((("F", "forgetting: general held-out loss rise (nats)"),
                                          ("T", "task held-out loss (nats)"))):
        left, span_x = 60 + index * width // 2, width // 2 - 100
        values = [v for data, _ in series.values() for cell in data.values()
                  for v in (cell["F_each"] if key == "F" else [cell["T"]["min"], cell["T"]["max"]])] or [0.0]
        low, high = min(values + ([0.0] if key == "F" else [])), max(values)
        span = (high - low) or 1.0

        def xy(share: float, value: float, left: int = left, span_x: int = span_x, low: float = low,
               span: float = span) -> tuple[float, float]:
            return left + span_x * share / 0.5, bottom - (bottom - top) * (value - low) / span

        parts = [f'<text x="{left - 40}" y="16">{title}</text>',
                 f'<line x1="{left}" y1="{bottom}" x2="{left + span_x}" y2="{bottom}" stroke="#999"/>',
                 f'<text x="{left + span_x // 2 - 30}" y="{bottom + 34}">general share</text>']
        parts += [f'<text x="{xy(s, low)[0] - 8:.1f}" y="{bottom + 16}">{s:g}</text>' for s in (0.0, 0.1, 0.3, 0.5)]
        parts += [f'<text x="{left - 45}" y="{xy(0, v)[1] + 4:.1f}">{v:.2f}</text>' for v in (low, high)]
        for data, color in series.values():
            points = [xy(s, data[s][key]["mean"]) for s in sorted(data)]
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                         + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + '"/>')
            if key == "F":
                parts += [f'<circle cx="{xy(s, v)[0]:.1f}" cy="{xy(s, v)[1]:.1f}" r="2.5" fill="{color}"/>'
                          for s in sorted(data) for v in data[s]["F_each"]]
        panels.append("".join(parts))
    legend = "".join(f'<line x1="{60 + 360 * i}" y1="{height - 14}" x2="{85 + 360 * i}" y2="{height - 14}" '
                     f'stroke="{color}" stroke-width="2"/><text x="{92 + 360 * i}" y="{height - 10}">{name}</text>'
                     for i, (name, (_, color)) in enumerate(series.items()))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
            f'font-size="11"><rect width="100%" height="100%" fill="white"/>{"".join(panels)}{legend}</svg>\n')


def write(work: Path, plan: list[dict[str, Any]], settings: dict[str, Any], timings: dict[str, float],
          folder: Path) -> None:
    cells = collect(work, plan)
    lora_rows, lora = table(cells, "lora")
    full_rows, full = table(cells, "full")
    pretrain = read_run(work / "pretrain")
    total = sum(v for k, v in timings.items() if not k.startswith("total"))
    raw = cells.get(("lora", "raw", 0.3), {})
    note = (work / "note.md").read_text().strip() if (work / "note.md").is_file() else ""
    lines = ["# Does mixing general data limit forgetting? (measured)", "",
             f"Scale `{settings['scale']}`: {json.dumps(settings)}", "", *([note, ""] if note else []),
             "## Forgetting and task loss per general share", "",
             "F: general held-out loss after - before fine-tuning (nats, > 0 is forgetting); cut: 1 - F(s)/F(0) "
             "within each seed, then averaged; T: task held-out loss after; T vs task-only: paired, averaged. "
             "Mean ± standard deviation over the seeds.", "",
             "| method | general share | seeds | F | F range | cut | T | T vs task-only |",
             "|---|---:|---:|---:|---:|---:|---:|---:|", *lora_rows, *full_rows, ""]
    first = next((runs[seed] for runs in cells.values() for seed in sorted(runs)), None)
    if first:
        lines += [f"The pretrained base, before fine-tuning: general held-out loss {first['general_base']:.3f} and "
                  f"task held-out loss {first['task_base']:.3f} nats per answer token (an untrained model: ln 32000 = "
                  f"{math.log(32000):.3f})."]
    if pretrain:
        lines += [f"Pretraining itself (its build trains on prompts too, so its held-out loss covers every token): "
                  f"general {pretrain['general_base']:.3f} -> {pretrain['general']:.3f}, task "
                  f"{pretrain['task_base']:.3f} -> {pretrain['task']:.3f} nats per token, from random weights."]
    lines.append("")
    if raw:
        curated = cells.get(("lora", "curated", 0.3), {})
        lines += ["## Curated against raw (share 0.3, LoRA, same budget and seeds)", "",
                  "| build | seeds | general held-out loss | task held-out loss |", "|---|---:|---:|---:|"]
        for name, runs in (("curated", curated), ("raw", raw)):
            if runs:
                lines.append(f"| {name} | {len(runs)} | {_fmt(_stats([r['general'] for r in runs.values()]), 4)} | "
                             f"{_fmt(_stats([r['task'] for r in runs.values()]), 4)} |")
        lines.append("")
    lines += ["## Goals of issue #21", "", *checks(lora, full, cells, total / 60 if timings else None), "",
              "## Wall time (seconds)", "", "| step | seconds |", "|---|---:|",
              *(f"| {k} | {v:,.0f} |" for k, v in timings.items()), ""]
    (folder / "RESULTS.md").write_text("\n".join(lines))
    (folder / "retention.svg").write_text(svg(lora, full))
