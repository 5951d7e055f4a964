"""What a training run writes about itself: ``train_config.json``, ``metrics.json``, ``loss.svg`` and the
forgetting report as ``report.md`` and ``report.html`` (a per-group table and a chart of each group's held-out
loss over the steps), and the lines printed while it runs.
"""

from __future__ import annotations

import html
import json
import math
from typing import TYPE_CHECKING, Any

from trainer.forgetting import Monitor, Point

if TYPE_CHECKING:
    from trainer.run import Run

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _signed(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.{digits}f}"


def evaluation_line(monitor: Monitor, point: Point) -> str:
    """One line per evaluation: overall, task and general loss, with learning and forgetting against the base."""
    s = point.summary
    if point is monitor.base:
        return (f"step {point.step} (base model): loss {s['loss']:.4f}, task {s['task_loss']:.4f}, "
                f"general {s['general_loss']:.4f}")
    return (f"step {point.step}: loss {s['loss']:.4f}, task {s['task_loss']:.4f} (learning "
            f"{_signed(s['learning'])}), general {s['general_loss']:.4f} (forgetting {_signed(s['forgetting'])}, "
            f"{_signed(100 * s['forgetting_relative'], 1)}% of base)")


def forgetting_rows(monitor: Monitor) -> list[list[str]]:
    """The per-group table: group, kind, examples, answer tokens, base loss, loss now, change, % of base."""
    return [[r["group"], r["kind"], f"{r['examples']:,}", f"{r['tokens']:,}", f"{r['base_loss']:.4f}",
             f"{r['loss']:.4f}", _signed(r["change"], 4), _signed(100 * r["change_relative"], 1) + "%"]
            for r in monitor.table()]


HEADER = ["group", "kind", "examples", "tokens", "base loss", "loss", "change", "change %"]


def verdict(monitor: Monitor) -> str:
    """The run in one sentence: learning, forgetting, and whether max_forgetting stopped it."""
    if len(monitor.points) < 2:
        return "no evaluation after the base model (no eval split or retention set)"
    s, step = monitor.points[-1].summary, monitor.points[-1].step
    headroom = "" if math.isnan(s["forgetting_of_headroom"]) else (
        f", {_signed(100 * s['forgetting_of_headroom'], 1)}% of its headroom to an untrained model's "
        f"ln {monitor.vocab_size} = {math.log(monitor.vocab_size):.2f}")
    text = (f"after step {step}: learning {_signed(s['learning'])} nats on the tasks, forgetting "
            f"{_signed(s['forgetting'])} nats on {', '.join(monitor.general_groups) or 'no general group'} "
            f"({_signed(100 * s['forgetting_relative'], 1)}% of the base{headroom})")
    if monitor.stopped_at is not None:
        text += (f"; stopped at step {monitor.stopped_at}: forgetting over train.max_forgetting "
                 f"{monitor.max_forgetting:.0%}; kept the weights of step {monitor.best_step}")
    return text


def markdown(monitor: Monitor) -> str:
    lines = ["# Training report", "", verdict(monitor), "", "## Held-out loss per group (base model vs last "
             "evaluation)", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in forgetting_rows(monitor)]
    lines += ["", "Charts: loss.svg (training loss), groups.svg (held-out loss per group over steps).", ""]
    return "\n".join(lines)


def page(monitor: Monitor, loss_chart: str, groups_chart: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in forgetting_rows(monitor))
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Training report</title><style>"
            "body{font-family:sans-serif;max-width:960px;margin:2em auto}td,th{padding:2px 8px;text-align:right}"
            "td:first-child,th:first-child{text-align:left}</style></head><body><h1>Training report</h1>"
            f"<p>{html.escape(verdict(monitor))}</p><h2>Held-out loss per group</h2><table><tr>{head}</tr>{body}"
            f"</table><h2>Held-out loss over steps</h2>{groups_chart}<h2>Training loss</h2>{loss_chart}"
            "</body></html>\n")


def line_chart(series: dict[str, tuple[list[int], list[float]]], title: str, width: int = 640,
               height: int = 240) -> str:
    """Lines (one per series, with dots) as a small self-contained SVG with a legend."""
    values = [v for _, ys in series.values() for v in ys if not math.isnan(v)] or [0.0]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    last = max([max(xs) for xs, _ in series.values() if xs] + [1])

    def point(step: int, value: float) -> tuple[float, float]:
        return 40 + (width - 200) * step / last, 20 + (height - 50) * (high - value) / span

    parts = []
    for (_, (xs, ys)), color in zip(series.items(), COLORS * 8, strict=False):
        coords = [point(x, y) for x, y in zip(xs, ys, strict=True) if not math.isnan(y)]
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="'
                     + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords) + '"/>')
        if len(coords) <= 50:
            parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>' for x, y in coords]
    legend = [f'<text x="{width - 150}" y="{30 + 14 * i}" fill="{color}">{html.escape(name)}</text>'
              for i, (name, color) in enumerate(zip(series, COLORS * 8, strict=False))]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
            f'font-size="11">{"".join(parts)}{"".join(legend)}<text x="40" y="14">{html.escape(title)}: '
            f'{high:.3f} (top) to {low:.3f} (bottom)</text><text x="40" y="{height - 8}">step 0 to {last}</text>'
            "</svg>\n")


def loss_svg(run: Run) -> str:
    """The training loss per step, and the eval loss at each evaluation."""
    return line_chart({"train loss": (run.steps, run.loss), "eval loss": (run.eval_steps, run.eval_loss)}, "loss")


def groups_svg(monitor: Monitor) -> str:
    steps = [p.step for p in monitor.points]
    return line_chart({g: (steps, [p.losses[g].loss for p in monitor.points]) for g in monitor.kinds},
                      "held-out loss per group")


def _plain(value: Any) -> Any:
    """JSON for metrics: NaN as null."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def write_run(run: Run, config: dict[str, Any], pad_id: int) -> None:
    """Write train_config.json, metrics.json, loss.svg, groups.svg, report.md and report.html into the output."""
    out = run.output
    (out / "train_config.json").write_text(json.dumps(_plain({**config, "pad_token_id": pad_id}), indent=2))
    metrics = {"steps": run.steps, "loss": run.loss, "learning_rate": run.learning_rate,
               "tokens_per_s": run.tokens_per_s, "eval_steps": run.eval_steps, "eval_loss": run.eval_loss,
               "forgetting": run.monitor.as_dict()}
    (out / "metrics.json").write_text(json.dumps(_plain(metrics), indent=2))
    loss_chart, groups_chart = loss_svg(run), groups_svg(run.monitor)
    (out / "loss.svg").write_text(loss_chart)
    (out / "groups.svg").write_text(groups_chart)
    (out / "report.md").write_text(markdown(run.monitor))
    (out / "report.html").write_text(page(run.monitor, loss_chart, groups_chart))
