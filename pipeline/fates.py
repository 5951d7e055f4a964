"""Where every record went: one frame of fates (``fate_table``: a row per input record), and from it the funnel
per stage and per source, the per-source summaries, the per-rule counts and the totals of the report; the
ledger (``ledger.reconcile``) checks the same frame against the inputs.
"""

from __future__ import annotations

from collections import Counter

import polars as pl

from pipeline.config import ResolvedSource
from pipeline.formats import parse_alias_repair
from schemas.report import RuleCount, SourceSummary, StageCounts

# in order; a record rejected by one never reaches the next
STAGES = ("ingest", "validate", "language", "quality", "pii", "dedup", "decontaminate", "mixture", "tokenize")


STAGE_RANK = {stage: k for k, stage in enumerate(STAGES)}
FATE_SCHEMA = {"id": pl.String(), "source": pl.String(), "fate": pl.String(), "stage": pl.String(),
               "reason": pl.String()}


def fate_table(train: pl.DataFrame, eval_: pl.DataFrame, rejected: pl.DataFrame, duplicates: pl.DataFrame,
               sampled_out: pl.DataFrame) -> pl.DataFrame:
    """One row per input record (FATE_SCHEMA): kept (a train record's first copy, or eval), rejected (with its
    stage and reason), duplicate (``<kind>_duplicate`` at dedup) or sampled_out (at the mixture)."""
    def fate(frame: pl.DataFrame, name: str, stage: pl.Expr, reason: pl.Expr) -> pl.DataFrame:
        return frame.select("id", "source", pl.lit(name).alias("fate"), stage.alias("stage"), reason.alias("reason"))

    none = pl.lit(None, pl.String)
    return pl.concat([
        fate(train.filter(pl.col("repeat") == 0), "kept", none, none),
        fate(eval_, "kept", none, none),
        fate(rejected, "rejected", pl.col("stage"), pl.col("reason")),
        fate(duplicates, "duplicate", pl.lit("dedup"), pl.col("kind") + "_duplicate"),
        fate(sampled_out, "sampled_out", pl.lit("mixture"), pl.lit("sampled_out")),
    ])


def totals(fates: pl.DataFrame, train: pl.DataFrame, eval_: pl.DataFrame) -> dict[str, int]:
    """The report's totals (``input``: every record has one fate, which the ledger has checked)."""
    count = dict(fates.group_by("fate").len().iter_rows())
    return {"input": fates.height, "train": train.height, "eval": eval_.height,
            "rejected": count.get("rejected", 0), "duplicates": count.get("duplicate", 0),
            "sampled_out": count.get("sampled_out", 0), "repeats": train.filter(pl.col("repeat") > 0).height}


def funnel(inputs: Counter[str], fates: pl.DataFrame) -> list[StageCounts]:
    """Records in, kept and removed (rejected, duplicate or sampled out, by reason) at each stage, for all sources
    and each one."""
    reasons = fates.filter(pl.col("fate") != "kept").group_by("stage", "source", "reason").len()
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


def source_summary(source: ResolvedSource, inputs: Counter[str], train: pl.DataFrame, fates: pl.DataFrame,
                   repairs: Counter[tuple[str, str]], formats: dict[str, set[str]]) -> SourceSummary:
    """``kept`` counts a source's rows of train (repeats too); ``aliases`` are read off the alias repairs."""
    name = source.spec.name
    theirs = fates.filter(pl.col("source") == name)
    mine = theirs.filter(pl.col("fate") == "rejected")
    reasons = dict(sorted(Counter(mine["reason"].to_list()).items()))
    mine_repairs = {fix: n for (src, fix), n in repairs.items() if src == name}
    aliases: dict[str, set[str]] = {}
    for field, key in filter(None, map(parse_alias_repair, mine_repairs)):
        aliases.setdefault(field, set()).add(key)
    return SourceSummary(
        name=name, task=source.spec.task_label, general=source.spec.general,
        format="+".join(sorted(formats[name])) or source.spec.format,
        files=len(source.files) or 1, input=inputs[name],
        kept=int((train["source"] == name).sum()), rejected=mine.height,
        duplicates=int((theirs["fate"] == "duplicate").sum()), reasons=reasons,
        repairs=dict(sorted(mine_repairs.items())),
        aliases={field: "+".join(sorted(keys)) for field, keys in sorted(aliases.items())},
    )


def rule_counts(fates: pl.DataFrame, stage: str) -> dict[str, RuleCount]:
    """Records quarantined by a stage, per reason, with up to three example ids."""
    mine = fates.filter((pl.col("fate") == "rejected") & (pl.col("stage") == stage))
    mine = mine.group_by("reason").agg(pl.len(), pl.col("id").head(3))
    return {reason: RuleCount(count=n, examples=ids) for reason, n, ids in mine.sort("reason").iter_rows()}
