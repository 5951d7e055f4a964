"""Where every record went: the stage order, the funnel per stage and per source, the per-source summaries and
the per-rule counts of the report, all from the frames of rejected, duplicate and kept records.
"""

from __future__ import annotations

from collections import Counter

import polars as pl

from pipeline.config import ResolvedSource
from schemas.report import RuleCount, SourceSummary, StageCounts

# in order; a record rejected by one never reaches the next
STAGES = ("ingest", "validate", "language", "quality", "pii", "dedup", "decontaminate", "mixture", "tokenize")


STAGE_RANK = {stage: k for k, stage in enumerate(STAGES)}


def funnel(inputs: Counter[str], removed: pl.DataFrame) -> list[StageCounts]:
    """Records in, kept and removed (rejected or duplicate, by reason) at each stage, for all sources and each one."""
    reasons = removed.group_by("stage", "source", "reason").len()
    table: dict[tuple[str, str], dict[str, int]] = {}
    for stage, source, reason, n in reasons.iter_rows():
        table.setdefault((stage, source), {})[reason] = n
    rows: list[StageCounts] = []
    for scope in [None, *inputs]:
        remaining = sum(inputs.values()) if scope is None else inputs[scope]
        for stage in STAGES:
            stage_reasons: Counter[str] = Counter()
            for (st, src), counts in table.items():
                if st == stage and (scope is None or src == scope):
                    stage_reasons.update(counts)
            n_rejected = sum(stage_reasons.values())
            rows.append(StageCounts(stage=stage, source=scope, input=remaining, kept=remaining - n_rejected,
                                    rejected=n_rejected, reasons=dict(sorted(stage_reasons.items()))))
            remaining -= n_rejected
    return rows


def source_summary(source: ResolvedSource, inputs: Counter[str], train: pl.DataFrame, rejected: pl.DataFrame,
                    duplicates: pl.DataFrame, repairs: Counter[tuple[str, str]],
                    formats: dict[str, set[str]]) -> SourceSummary:
    name = source.spec.name
    mine = rejected.filter(pl.col("source") == name)
    reasons = dict(sorted(Counter(mine["reason"].to_list()).items()))
    return SourceSummary(
        name=name, task=source.spec.task_label, general=source.spec.general,
        format="+".join(sorted(formats[name])) or source.spec.format,
        files=len(source.files) or 1, input=inputs[name],
        kept=int((train["source"] == name).sum()), rejected=mine.height,
        duplicates=int((duplicates["source"] == name).sum()), reasons=reasons,
        repairs=dict(sorted((fix, n) for (src, fix), n in repairs.items() if src == name)),
    )


def rule_counts(rejected: pl.DataFrame, stage: str) -> dict[str, RuleCount]:
    """Records quarantined by a stage, per reason, with up to three example ids."""
    mine = rejected.filter(pl.col("stage") == stage).group_by("reason").agg(pl.len(), pl.col("id").head(3))
    return {reason: RuleCount(count=n, examples=ids) for reason, n, ids in mine.sort("reason").iter_rows()}
