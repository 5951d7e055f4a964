"""The forgetting report: how much general ability a run costs, next to what it learns.

Contract: ``Monitor`` takes the per-group held-out losses of the base model (before the first step) and of the
model at every eval step, and derives, against the base:

- **forgetting** = general loss now - general loss of the base (nats per answer token; > 0 is forgetting);
  also as a share of the base (``forgetting_relative``) and of the base's headroom, its distance to an
  untrained model's loss ln(vocabulary size) (``forgetting_of_headroom``: 1.0 means all that pretraining
  taught about the general sets is gone; not given for a base within 0.1 nats of it);
- **learning** = task loss of the base - task loss now (> 0 is learning), over every task group: the eval
  split's and the ``task:`` groups of ``train.task_eval``.

The general loss is taken over the ``retention:`` groups (``train.retention_eval``, never trained on) when there
are any, else over the eval split's general sources; the task loss over the eval split's other groups; each
group's loss is token-weighted. With ``max_forgetting``, a run stops at the first evaluation whose
``forgetting_relative`` exceeds it, and the weights kept are those of the evaluation with the lowest task loss
within the limit (the base itself if none was).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from trainer.evaluation import GENERAL, GroupLoss, mean_loss

RETENTION = "retention:"
MIN_HEADROOM = 0.1  # nats: a base this close to ln(vocabulary) has learned nothing to forget (share: NaN)


@dataclass
class Point:
    step: int
    losses: dict[str, GroupLoss]
    summary: dict[str, float]


@dataclass
class Monitor:
    kinds: dict[str, str]
    vocab_size: int
    max_forgetting: float | None = None
    points: list[Point] = field(default_factory=list)
    stopped_at: int | None = None  # the step whose evaluation exceeded max_forgetting
    best_step: int | None = None  # the step whose weights are kept under max_forgetting

    @property
    def general_groups(self) -> list[str]:
        retention = [g for g in self.kinds if g.startswith(RETENTION)]
        return retention or [g for g, kind in self.kinds.items() if kind == GENERAL]

    @property
    def task_groups(self) -> list[str]:
        return [g for g, kind in self.kinds.items() if kind != GENERAL]

    @property
    def base(self) -> Point | None:
        return self.points[0] if self.points else None

    def summary(self, losses: dict[str, GroupLoss]) -> dict[str, float]:
        """Overall, general and task loss now; forgetting and learning against the base (NaN without one)."""
        base = self.base.losses if self.base else losses
        general, tasks = self.general_groups, self.task_groups
        base_general, now_general = mean_loss(base, general), mean_loss(losses, general)
        rise = now_general - base_general
        headroom = math.log(self.vocab_size) - base_general
        return {
            "loss": mean_loss(losses, list(self.kinds)),
            "general_loss": now_general,
            "task_loss": mean_loss(losses, tasks),
            "forgetting": rise,
            "forgetting_relative": rise / base_general if base_general else math.nan,
            "forgetting_of_headroom": rise / headroom if headroom > MIN_HEADROOM else math.nan,
            "learning": mean_loss(base, tasks) - mean_loss(losses, tasks),
        }

    def record(self, step: int, losses: dict[str, GroupLoss]) -> Point:
        """Add an evaluation (the first one is the base); say whether it is the best so far or over the limit."""
        point = Point(step, losses, self.summary(losses))
        self.points.append(point)
        within = self.max_forgetting is None or not point.summary["forgetting_relative"] > self.max_forgetting
        if within and (self.best_step is None or _better(point, self._point(self.best_step))):
            self.best_step = step
        if not within and self.stopped_at is None:
            self.stopped_at = step
        return point

    def _point(self, step: int) -> Point:
        return next(p for p in self.points if p.step == step)

    def is_best(self, step: int) -> bool:
        return self.best_step == step

    def metrics(self, point: Point, prefix: str = "eval") -> dict[str, float]:
        """What the Trainer logs at an evaluation: ``eval_loss`` and the summary, plus each group's loss."""
        out = {f"{prefix}_{name}": value for name, value in point.summary.items()}
        out |= {f"{prefix}_loss/{group}": loss.loss for group, loss in point.losses.items()}
        return out

    def table(self) -> list[dict[str, Any]]:
        """One row per group: its kind, size, base loss, last loss, change (nats and % of base)."""
        if not self.points:
            return []
        base, last = self.points[0].losses, self.points[-1].losses
        rows = []
        for group, kind in self.kinds.items():
            before, after = base[group].loss, last[group].loss
            rows.append({"group": group, "kind": kind, "examples": last[group].examples,
                         "tokens": last[group].tokens, "base_loss": before, "loss": after,
                         "change": after - before,
                         "change_relative": (after - before) / before if before else math.nan})
        return rows

    def as_dict(self) -> dict[str, Any]:
        """The whole report for metrics.json."""
        return {
            "kinds": self.kinds, "general_groups": self.general_groups, "task_groups": self.task_groups,
            "vocab_size": self.vocab_size, "untrained_loss": math.log(self.vocab_size),
            "max_forgetting": self.max_forgetting, "stopped_at": self.stopped_at, "best_step": self.best_step,
            "steps": [p.step for p in self.points],
            "groups": {g: [p.losses[g].loss for p in self.points] for g in self.kinds},
            "summary": {name: [p.summary[name] for p in self.points] for name in (self.points[0].summary
                                                                                  if self.points else {})},
            "table": self.table(),
        }


def _better(point: Point, best: Point) -> bool:
    """Lower task loss wins; with no task group, lower overall loss."""
    key = "task_loss" if not math.isnan(point.summary["task_loss"]) else "loss"
    return point.summary[key] < best.summary[key]
