"""The global stages, in order: a table that the direct runner (``build.finish``) and the Prefect flow
(flows/build_flow.py) both walk, so the order lives here and a new stage is one row.

Contract: each stage is ``run(records, context) -> Outcome`` (pipeline/stage.py) over the records the stage
before it kept (the first: the union of the per-record chain's output), with ``context`` holding the build and
the named ``outputs`` of earlier stages it ``reads``. ``run_stage`` is how both runners call one: it quarantines
the rejects (the record's JSON from the frames the stage saw, PII redacted under ``pii.redact_rejected``), so
no stage folder of a flow holds more than rejected.parquet will. A row also says which sections of the spec and
which files besides the sources its result depends on: the flow's cache key of the stage (flows/keys.py).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipeline import decontaminate, dedup, mixture, pii, tokenize
from pipeline.config import Mix
from pipeline.io import heap
from pipeline.records import load_eval_prompts, load_reference
from pipeline.report.stages import dedup_report, split_warnings
from pipeline.stage import QUARANTINE_SCHEMA, Outcome, kept_all, no_rejects, split_off, with_originals
from pipeline.token_splits import ShardRunner, take, tokenize_splits
from schemas.mix import MixSpec
from schemas.report import MixtureReport, MixtureSource, MixtureTask

log = logging.getLogger(__name__)


@dataclass
class Context:
    mix: Mix
    tokenizer: Any = None  # loaded before any data is read; None when tokenize is off
    inputs: dict[str, pl.DataFrame] = field(default_factory=dict)  # the earlier outputs a stage reads, by name
    scratch: Path | None = None  # where a stage may write the files of its outcome (tokenize: tokenized/'s rows)
    shards: ShardRunner | None = None  # where tokenize's shards run (None: here, in turn; Dask: on the workers)


@dataclass(frozen=True)
class Stage:
    name: str  # as in the report, rejected.parquet's ``stage`` and the flow's task
    run: Callable[[pl.DataFrame, Context], Outcome]
    reads: tuple[str, ...] = ()  # outputs of earlier stages it needs besides the records
    settings: tuple[str, ...] = ()  # the sections of the spec its result depends on
    files: tuple[str, ...] = ()  # what else it reads: "references", "evals", "tokenizer"
    # When the stage only picks, orders and repeats its records, the columns it picks them by under these settings
    # (a runner that keeps the records elsewhere gives it those alone; its frames then name each record's row)
    picks_by: Callable[[MixSpec], tuple[str, ...]] | None = None


def dedup_stage(records: pl.DataFrame, context: Context) -> Outcome:
    """Exact and near dedup over the union of the shards, against the mix's references (``dedup_outcome`` says
    what it returns; the Dask runner reaches the same outcome with flows/partitioned_dedup.py)."""
    mix = context.mix
    spec = mix.spec
    if not (spec.dedup.exact or spec.dedup.near):
        return Outcome(records, no_rejects(), None, {"duplicates": pl.DataFrame(schema=dedup.DUPLICATE_SCHEMA)})
    references = [load_reference(ref, mix) for ref in mix.references]
    deduped = dedup.deduplicate(records, spec.dedup, [s.spec.name for s in mix.sources], references)
    heap.trim()
    return dedup_outcome(deduped, spec, references)


def dedup_outcome(deduped: dedup.DedupResult, spec: MixSpec, references: list[dedup.Reference]) -> Outcome:
    """Kept: the records dedup kept. Outputs: the ``duplicates`` (each with the record it duplicates), with near
    dedup the ``signatures`` of the kept, with ``key: record`` their ``fingerprints`` (the exact keys the split
    report checks)."""
    outputs = {"duplicates": deduped.duplicates,
               **kept_outputs(deduped.kept, deduped.signatures, deduped.fingerprints)}
    report = dedup_report(spec, deduped.duplicates, deduped.stats, references)
    return Outcome(deduped.kept, no_rejects(), report, outputs)


def kept_outputs(kept: pl.DataFrame, signatures: np.ndarray | None,
                 fingerprints: pl.DataFrame | None) -> dict[str, pl.DataFrame]:
    """The dedup stage's outputs that go with its kept records, by id: ``signatures`` (near dedup on) and
    ``fingerprints`` (``key: record``)."""
    outputs = {}
    if signatures is not None:
        outputs["signatures"] = pl.DataFrame({"id": kept["id"], "signature": signatures})
    if fingerprints is not None:
        outputs["fingerprints"] = pl.concat([kept.select("id"), fingerprints], how="horizontal")
    return outputs


def decontaminate_stage(records: pl.DataFrame, context: Context) -> Outcome:
    """Records whose prompt leaks a prompt of an eval set are rejected."""
    mix = context.mix
    if not mix.evals:
        return kept_all(records)
    rejected = decontaminate.contaminated(records, eval_sets(mix), mix.spec.decontaminate)
    # A filter shares the records' buffers; split_off's anti join copies every column (1 GB and 2 s at 1M).
    return Outcome(records.filter(~pl.col("id").is_in(rejected["id"].implode())), rejected, None)


def eval_sets(mix: Mix) -> list[tuple[str, pl.DataFrame]]:
    """The eval sets to decontaminate against, by label, as their prompts."""
    return [(ref.label, load_eval_prompts(ref, mix)) for ref in mix.evals]


def split_stage(records: pl.DataFrame, context: Context) -> Outcome:
    """Kept: the train pool; output ``eval``: the eval records, stratified by task, before any upsampling. A
    split that leaves train empty or smaller than eval is logged as a warning, or stops the build (MixtureError)
    under ``mixture.strict``."""
    spec = context.mix.spec
    if not spec.split.eval:
        return Outcome(records, no_rejects(), None, {"eval": records.clear()})
    pool, eval_ = mixture.split_eval(records, spec.split.eval, _seed(spec.split.seed, spec))
    warnings = split_warnings(spec, pool.height, eval_.height)
    if warnings and spec.mixture.strict:
        raise mixture.MixtureError("split guard failed (mixture.strict: true):\n  " + "\n  ".join(warnings))
    for warning in warnings:
        log.warning("split: %s", warning)
    return Outcome(pool, no_rejects(), None, {"eval": eval_})


def mixture_stage(pool: pl.DataFrame, context: Context) -> Outcome:
    """Kept: train rows (``repeat`` numbers a record's copies, 0 the first); output ``sampled_out``. With a
    mixture in tokens, the pool is tokenized first: the records the tokenize stage would reject are rejected
    here, so the mixture counts what trains, and output ``examples`` (the tokenized records of train) spares
    the tokenize stage a second pass."""
    mix = context.mix
    if not mix.spec.mixture.active:
        return Outcome(pool.with_columns(repeat=pl.lit(0, pl.UInt16)), no_rejects(), None,
                       {"sampled_out": pool.clear()})
    if mix.spec.mixture.unit != "tokens":
        train, sampled_out, report = mix_pool(pool, mix, None)
        return Outcome(train, no_rejects(), report, {"sampled_out": sampled_out})
    counted = tokenize.tokenize(pool, context.tokenizer, mix.spec.tokenize, mix.spec.filters)
    kept = split_off(pool, counted.rejected)
    tokens = kept.kept.select("id").join(counted.examples.select("id", "n_tokens"), on="id", how="left",
                                         maintain_order="left")["n_tokens"].cast(pl.Int64)
    train, sampled_out, report = mix_pool(kept.kept, mix, tokens)
    examples = counted.examples.join(train.select("id"), on="id", how="semi", maintain_order="left")
    return Outcome(train, kept.rejected, report, {"sampled_out": sampled_out, "examples": examples})


def tokenize_stage(train: pl.DataFrame, context: Context) -> Outcome:
    """Both splits through the template, masks, cutoff and packing (pipeline/token_splits.py): kept is train,
    output ``eval`` the eval records kept, ``tokenized/train`` and ``tokenized/eval`` the index of the rows of
    tokenized/, whose files are written under the context's scratch folder (none when tokenize is off)."""
    spec = context.mix.spec
    eval_ = eval_rows(context.inputs["eval"])
    if not spec.tokenize.enabled:
        return Outcome(train, no_rejects(), None, {"eval": eval_})
    if context.scratch is None:
        raise ValueError("the tokenize stage writes tokenized/ as it goes: give its Context a scratch folder")
    outcome = tokenize_splits(train, eval_, context.tokenizer, spec, context.scratch / "tokenized",
                              context.inputs.get("examples"), context.shards)
    heap.trim()
    return outcome


def eval_rows(eval_: pl.DataFrame) -> pl.DataFrame:
    """The split stage's eval records as rows of the eval split (no repeats)."""
    return eval_.with_columns(repeat=pl.lit(0, pl.UInt16))


def _seed(seed: int | None, spec: MixSpec) -> int:
    return spec.seed if seed is None else seed


def mix_pool(pool: pl.DataFrame, mix: Mix, tokens: pl.Series | None) -> tuple[
        pl.DataFrame, pl.DataFrame, MixtureReport]:
    """The mixture over the train pool: train rows (with repeats), the records sampled out, and the report."""
    settings = mix.spec.mixture
    infos = [mixture.SourceInfo(s.spec.name, s.spec.task_label, s.spec.general) for s in mix.sources]
    weights = tokens if tokens is not None else pl.Series(np.ones(pool.height, dtype=np.int64))
    sizes = pool.select("source").with_columns(n=weights).group_by("source").agg(pl.col("n").sum())
    available = {s.name: 0 for s in infos} | dict(sizes.iter_rows())
    targets = mixture.plan(infos, available, settings)
    warnings = mixture.guards(targets, settings, settings.unit)
    for warning in warnings:
        log.warning("mixture: %s", warning)
    seed = _seed(settings.seed, mix.spec)
    train, left_out = mixture.sample(pool, targets, seed, settings.sampling == "diverse", tokens)
    counted = train.join(pool.select("id").with_columns(_n=weights), on="id", how="left", maintain_order="left")
    rows = counted.group_by("source").agg(pl.len().alias("rows"), (pl.col("repeat").max() + 1).alias("copies"),
                                          pl.col("_n").sum().alias("_actual"))
    by_source = targets.join(rows, on="source", how="left", maintain_order="left").with_columns(
        pl.col("rows").fill_null(0), pl.col("copies").fill_null(0),
        achieved=pl.col("_actual").fill_null(0).cast(pl.Int64),  # in tokens: whole records, up to the target
    ).drop("_actual")
    targets = by_source.select(targets.columns)
    total = int(targets["achieved"].sum())
    tasks = targets.group_by("task", maintain_order=True).agg(pl.col("target", "achieved").sum())
    report = MixtureReport(
        unit=settings.unit, size=int(targets["target"].sum()), achieved=total, seed=seed,
        sampling=settings.sampling, max_repeats=settings.max_repeats, general_share=settings.general_share,
        general_share_achieved=(round(int(targets.filter(pl.col("general"))["achieved"].sum()) / total, 4)
                                if total else 0.0),
        tasks=[MixtureTask(task=t, target=tg, achieved=a, share=round(a / total, 4) if total else 0.0)
               for t, tg, a in tasks.iter_rows()],
        sources=[MixtureSource(**row) for row in by_source.iter_rows(named=True)],
        warnings=warnings,
    )
    return train, left_out, report


STAGES: tuple[Stage, ...] = (
    Stage(dedup.STAGE, dedup_stage, settings=("dedup",), files=("references",)),
    Stage(decontaminate.STAGE, decontaminate_stage, settings=("decontaminate",), files=("evals",)),
    Stage("split", split_stage, settings=("split", "seed"), picks_by=lambda spec: ("id", "task")),
    Stage(mixture.STAGE, mixture_stage, settings=("mixture", "tokenize", "filters", "seed"), files=("tokenizer",),
          picks_by=lambda spec: ("id", "source", "instruction") if spec.mixture.unit != "tokens" else ()),
    Stage(tokenize.STAGE, tokenize_stage, reads=("eval", "examples"), settings=("tokenize", "filters"),
          files=("tokenizer",)),
)


ROW = "_row"  # each record's row, in the records a picking stage is run over (``picking_input``)


def picking_input(records: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """What a stage that picks records (``Stage.picks_by``) needs of ``records``: ``columns`` and each one's row."""
    return records.select(*columns).with_row_index(ROW)


def picked_rows(records: pl.DataFrame, picked: pl.DataFrame) -> pl.DataFrame:
    """The whole ``records`` that a frame made by a picking stage over ``picking_input(records)`` names (``ROW``),
    in its order, with the columns the stage added (the mixture's ``repeat``)."""
    chosen = take(records, picked[ROW].to_numpy())
    return pl.concat([chosen, picked.drop(ROW, *records.columns, strict=False)], how="horizontal")


def run_stage(stage: Stage, records: pl.DataFrame, context: Context) -> Outcome:
    """``stage`` over ``records``, its rejects quarantined from the frames it saw."""
    return quarantined(stage.run(records, context), records, context)


def quarantined(outcome: Outcome, records: pl.DataFrame, context: Context) -> Outcome:
    """``outcome`` with its rejects as quarantine rows, their originals from the frames its stage saw (``records``
    and the records among the stage's inputs)."""
    if not outcome.rejected.height:
        return dataclasses.replace(outcome, rejected=pl.DataFrame(schema=QUARANTINE_SCHEMA))
    seen = [frame for frame in context.inputs.values() if "instruction" in frame.columns]  # records, not tokens
    rejected = with_originals(outcome.rejected, records, *seen)
    settings = context.mix.spec.pii
    if settings.redact_rejected:
        rejected = pii.redact_rejected(rejected, settings)
    return dataclasses.replace(outcome, rejected=rejected)


def stage(name: str) -> Stage:
    return next(row for row in STAGES if row.name == name)


def output_of(outcomes: dict[str, Outcome], name: str) -> pl.DataFrame:
    """The output ``name`` of the latest stage (in ``outcomes``, in plan order) that made one."""
    return next(o.outputs[name] for o in reversed(outcomes.values()) if name in o.outputs)


def inputs(outcomes: dict[str, Outcome], stage: Stage) -> dict[str, pl.DataFrame]:
    """The outputs of earlier stages that ``stage`` reads, those that were made (``examples`` is optional)."""
    return {name: output_of(outcomes, name) for name in stage.reads
            if any(name in o.outputs for o in outcomes.values())}
