"""The build's direct runner and its global stages: the per-record chain over every work unit (``records``,
spread by ``io/workers``), then dedup, decontamination, split, mixture and tokenization over their union, in
that order, and the assembly of the result: the fates of every record (checked by the ledger; ``fates``), the
report (``stage_reports`` and the report modules) and what ``writer.write`` puts in the output folder.

Contract: ``run(mix)`` -> ``BuildResult`` in memory, nothing written but the language cache; each global stage
takes the records the previous one kept and returns what it keeps and what it rejects, and ``finish`` lets each
stage's input go once the next has it. The Prefect flow (flows/build_flow.py) runs the same functions as tasks.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipeline import (
    decontaminate,
    dedup,
    fates,
    language,
    ledger,
    memory_report,
    mixture,
    pii,
    profile,
    quality,
    stage_reports,
    tokenize,
    writer,
)
from pipeline.config import Mix
from pipeline.io import heap
from pipeline.io import workers as workers_pool
from pipeline.io.tokenizer import load_tokenizer, tokenizer_source
from pipeline.io.workers import ProgressCallback
from pipeline.quarantine import REJECT_SCHEMA, with_originals
from pipeline.records import OUTPUT_SCHEMA, Shard, load_eval_prompts, load_reference
from schemas.mix import MixSpec
from schemas.report import (
    BuildReport,
    DedupReport,
    MixtureReport,
    MixtureSource,
    MixtureTask,
    PiiReport,
    TokenReport,
)

log = logging.getLogger(__name__)


@dataclass
class BuildResult:
    mix: Mix
    train: pl.DataFrame
    eval: pl.DataFrame
    rejected: pl.DataFrame
    duplicates: pl.DataFrame
    report: BuildReport
    tokenized: dict[str, pl.DataFrame]  # rows of tokenized/ per split; empty when tokenize is off
    signatures: pl.DataFrame | None = None  # id, signature of every kept record: the dedup index


def needed_tokenizer(spec: MixSpec, tokenizer: Any = None) -> Any:
    """The tokenizer the build needs (None when tokenize is off), loaded before any data is read."""
    if spec.tokenize.enabled and tokenizer is None:
        return load_tokenizer(spec.tokenize.tokenizer)
    return tokenizer


def run(mix: Mix, progress: ProgressCallback | None = None, workers: int | None = None,
        tokenizer: Any = None, cache: Path | None = None) -> BuildResult:
    """Build in memory, calling the stages directly: every stage, the ledger check and the report; nothing is
    written but the caches in ``cache`` (``cache_folder(mix)`` for ``pipeline build``; none by default). The
    tokenizer is loaded first (unless given), so a missing one stops the build before any data is read.
    flows/build_flow.py runs the same functions as Prefect tasks."""
    tokenizer = needed_tokenizer(mix.spec, tokenizer)
    return finish(mix, read(mix, progress, workers, cache), tokenizer)


def read(mix: Mix, progress: ProgressCallback | None = None, workers: int | None = None,
         cache: Path | None = None) -> list[Shard]:
    """Every per-record stage over every work unit, in input order (the worker pool): what the global stages
    start from, and all that ``pipeline validate`` runs."""
    detections = language.DetectionCache(cache / LANGUAGE_CACHE if cache else None)
    count = workers_pool.default_workers(mix) if workers is None else workers
    shards = list(workers_pool.iter_shards(mix, count, progress, detections))
    detections.save()
    return shards


@dataclass
class Deduplicated:
    kept: pl.DataFrame
    duplicates: pl.DataFrame
    report: DedupReport | None
    signatures: pl.DataFrame | None  # id, signature of every kept record


def dedup_stage(records: pl.DataFrame, mix: Mix) -> Deduplicated:
    """Exact and near dedup over the union of the shards, against the mix's references."""
    spec = mix.spec
    if not (spec.dedup.exact or spec.dedup.near):
        return Deduplicated(records, pl.DataFrame(schema=dedup.DUPLICATE_SCHEMA), None, None)
    references = [load_reference(ref, mix) for ref in mix.references]
    deduped = dedup.deduplicate(records, spec.dedup, [s.spec.name for s in mix.sources], references)
    heap.trim()
    signatures = None
    if deduped.signatures is not None:
        signatures = pl.DataFrame({"id": deduped.kept["id"], "signature": deduped.signatures})
    report = stage_reports.dedup_report(spec, deduped, references)
    return Deduplicated(deduped.kept, deduped.duplicates, report, signatures)


def decontaminate_stage(records: pl.DataFrame, mix: Mix) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(records without eval-set leakage, rejected rows for the leaks)."""
    if not mix.evals:
        return records, pl.DataFrame(schema=REJECT_SCHEMA)
    leaks = decontaminate.contaminated(records, [(ref.label, load_eval_prompts(ref, mix)) for ref in mix.evals],
                                       mix.spec.decontaminate)
    return (records.join(leaks.select("id"), on="id", how="anti", maintain_order="left"),
            with_originals(records, leaks))


def split_stage(records: pl.DataFrame, spec: MixSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(train pool, eval records): stratified by task, before any upsampling. A split that leaves train empty
    or smaller than eval is logged as a warning, or stops the build (MixtureError) under ``mixture.strict``."""
    if not spec.split.eval:
        return records, records.clear()
    pool, eval_ = mixture.split_eval(records, spec.split.eval, _seed(spec.split.seed, spec))
    warnings = stage_reports.split_warnings(spec, pool.height, eval_.height)
    if warnings and spec.mixture.strict:
        raise mixture.MixtureError("split guard failed (mixture.strict: true):\n  " + "\n  ".join(warnings))
    for warning in warnings:
        log.warning("split: %s", warning)
    return pool, eval_


@dataclass
class Mixed:
    train: pl.DataFrame  # ROW_SCHEMA: repeats as rows
    sampled_out: pl.DataFrame
    rejected: pl.DataFrame  # records a token-unit mixture found too long or short
    report: MixtureReport | None


def mixture_stage(pool: pl.DataFrame, mix: Mix, tokenizer: Any) -> Mixed:
    if not mix.spec.mixture.active:
        return Mixed(pool.with_columns(repeat=pl.lit(0, pl.UInt16)), pool.clear(), pl.DataFrame(schema=REJECT_SCHEMA),
                     None)
    pool, tokens, early_rejects = _token_counts(pool, tokenizer, mix.spec)
    train, sampled_out, report = mix_pool(pool, mix, tokens)
    return Mixed(train, sampled_out, early_rejects, report)


@dataclass
class TokenizedSplits:
    train: pl.DataFrame
    eval: pl.DataFrame
    rows: dict[str, pl.DataFrame]  # rows of tokenized/ per split; empty when tokenize is off
    rejected: pl.DataFrame
    report: TokenReport | None


def tokenize_stage(train: pl.DataFrame, eval_: pl.DataFrame, tokenizer: Any, spec: MixSpec) -> TokenizedSplits:
    eval_ = eval_.with_columns(repeat=pl.lit(0, pl.UInt16))
    if not spec.tokenize.enabled:
        return TokenizedSplits(train, eval_, {}, pl.DataFrame(schema=REJECT_SCHEMA), None)
    tokenized = TokenizedSplits(*tokenize_splits(train, eval_, tokenizer, spec))
    heap.trim()
    return tokenized


def union(shards: list[Shard]) -> pl.DataFrame:
    """The records every shard kept, in input order: where the global stages start."""
    return pl.concat([s.kept for s in shards]) if shards else pl.DataFrame(schema=OUTPUT_SCHEMA)


def finish(mix: Mix, shards: list[Shard], tokenizer: Any) -> BuildResult:
    """The global stages over the shards, in order, then the ledger and the report. Each stage's input is let
    go once the next has it (the shards in ``shards`` lose their ``kept`` frames), so a million records are
    held about twice at the peak, not once per stage."""
    records = union(shards)
    shards[:] = [dataclasses.replace(s, kept=s.kept.clear()) for s in shards]
    deduped = dedup_stage(records, mix)
    del records
    clean, leaks = decontaminate_stage(deduped.kept, mix)
    deduped = dataclasses.replace(deduped, kept=deduped.kept.clear())
    pool, eval_ = split_stage(clean, mix.spec)
    del clean
    mixed = mixture_stage(pool, mix, tokenizer)
    del pool
    tokenized = tokenize_stage(mixed.train, eval_, tokenizer, mix.spec)
    return assemble(mix, shards, deduped, leaks, dataclasses.replace(mixed, train=mixed.train.clear()), tokenized)


def assemble(mix: Mix, shards: list[Shard], deduped: Deduplicated, leaks: pl.DataFrame, mixed: Mixed,
             tokenized: TokenizedSplits) -> BuildResult:
    """The fates of every record (checked by the ledger), the report, and the result to write."""
    spec = mix.spec
    train, eval_, duplicates, sampled_out = tokenized.train, tokenized.eval, deduped.duplicates, mixed.sampled_out
    inputs: Counter[str] = Counter({s.spec.name: 0 for s in mix.sources})
    repairs: Counter[tuple[str, str]] = Counter()
    pii_found: Counter[str] = Counter()
    formats: dict[str, set[str]] = {s.spec.name: set() for s in mix.sources}
    for part in shards:
        inputs[part.source] += part.n_input
        repairs.update(part.repairs)
        pii_found.update(part.pii)
        formats[part.source] |= part.formats
    later = pl.concat([leaks, mixed.rejected, tokenized.rejected])  # the shards' rows are redacted by ``shard``
    later = pii.redact_rejected(later, spec.pii) if spec.pii.redact_rejected else later
    all_rejected = pl.concat([*(s.rejected for s in shards), later])
    all_rejected = all_rejected.sort(pl.col("stage").replace_strict(fates.STAGE_RANK, default=len(fates.STAGES)),
                                     maintain_order=True)
    ledger_rows = ledger.reconcile(
        dict(inputs),
        {"kept": pl.concat([train.select("id", "source", "repeat").filter(pl.col("repeat") == 0).drop("repeat"),
                            eval_.select("id", "source")]), "rejected": all_rejected,
         "duplicate": duplicates, "sampled_out": sampled_out},
    )
    signatures = deduped.signatures
    if signatures is not None:  # the index describes the output: train then eval, as written
        final = pl.concat([train.select("id"), eval_.select("id")])
        signatures = final.join(signatures, on="id", how="left", maintain_order="left")
    removed = pl.concat([
        all_rejected.select("stage", "source", "reason"),
        duplicates.select(pl.lit(dedup.STAGE).alias("stage"), "source",
                          (pl.col("kind") + "_duplicate").alias("reason")),
        sampled_out.select(pl.lit(mixture.STAGE).alias("stage"), "source", pl.lit("sampled_out").alias("reason")),
    ])
    report = BuildReport(
        name=spec.name,
        spec_hash=writer.spec_hash(spec),
        totals={"input": sum(inputs.values()), "train": train.height, "eval": eval_.height,
                "rejected": all_rejected.height, "duplicates": duplicates.height, "sampled_out": sampled_out.height,
                "repeats": train.filter(pl.col("repeat") > 0).height},
        sources=[fates.source_summary(s, inputs, train, all_rejected, duplicates, repairs, formats)
                 for s in mix.sources],
        funnel=fates.funnel(inputs, removed),
        ledger=ledger_rows,
        dedup=deduped.report,
        quality=fates.rule_counts(all_rejected, quality.STAGE),
        pii=PiiReport(action=spec.pii.action, found=dict(sorted(pii_found.items()))),
        decontamination=fates.rule_counts(all_rejected, decontaminate.STAGE),
        split=stage_reports.split_report(spec, train, eval_),
        mixture=mixed.report,
        advice=mixture.base_model_advice(train.height, train["task"].n_unique(),
                                         stage_reports.general_share(train, mix)),
        tokens=tokenized.report,
        profile=profile.build_profile(train, tokenized.rows),
        memory=memory_report.memory_report(spec.train, spec.tokenize.cutoff_len),
    )
    return BuildResult(mix=mix, train=train, eval=eval_, rejected=all_rejected, duplicates=duplicates,
                       report=report, tokenized=tokenized.rows, signatures=signatures)


LANGUAGE_CACHE = f"language-v{language.VERSION}.parquet"


def cache_folder(mix: Mix) -> Path:
    """Caches shared by the builds of one output root (never part of a build's output)."""
    return mix.out_dir.parent / ".cache"


def _seed(seed: int | None, spec: MixSpec) -> int:
    return spec.seed if seed is None else seed


def _token_counts(pool: pl.DataFrame, tokenizer: Any, spec: MixSpec) -> tuple[
        pl.DataFrame, pl.Series | None, pl.DataFrame]:
    """For a mixture in tokens: each record's token count (its tokenized length), with the records the tokenize
    stage rejects taken out of the pool and quarantined now, so the mixture counts only what will train."""
    if spec.mixture.unit != "tokens":
        return pool, None, pl.DataFrame(schema=REJECT_SCHEMA)
    counted = tokenize.tokenize(pool, tokenizer, spec.tokenize, spec.filters)
    kept = pool.join(counted.rejected.select("id"), on="id", how="anti", maintain_order="left")
    tokens = kept.select("id").join(counted.examples.select("id", "n_tokens"), on="id", how="left",
                                    maintain_order="left")["n_tokens"].cast(pl.Int64)
    return kept, tokens, with_originals(pool, counted.rejected)


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


def tokenize_splits(train: pl.DataFrame, eval_: pl.DataFrame, tokenizer: Any, spec: MixSpec) -> tuple[
        pl.DataFrame, pl.DataFrame, dict[str, pl.DataFrame], pl.DataFrame, TokenReport]:
    """Tokenize both splits: the records kept, the rows of tokenized/, the rejects and the token report. Each
    record is tokenized once; its repeats (mixture upsampling) reuse the example."""
    settings = spec.tokenize
    kept, rows, examples, rejects, row_tokens = {}, {}, [], [], {}
    for name, frame in (("train", train), ("eval", eval_)):
        result = tokenize.tokenize(frame.filter(pl.col("repeat") == 0), tokenizer, settings, spec.filters)
        kept[name] = frame.join(result.rejected.select("id"), on="id", how="anti", maintain_order="left") \
            if result.rejected.height else frame  # the join copies every text column
        # mixture.sample puts first copies first, in the order tokenized: only the repeats need a copy of their lists
        again = kept[name].filter(pl.col("repeat") > 0).select("id").join(result.examples, on="id", how="left",
                                                                           maintain_order="left")
        repeated = pl.concat([result.examples, again], rechunk=False)
        if not repeated["id"].equals(kept[name]["id"]):
            raise AssertionError("tokenize: train rows are not first copies then repeats (mixture.sample's order)")
        examples.append(result.examples.select("id", "source", "task", "n_tokens", "truncated"))  # not the lists
        rejects.append(result.rejected)
        del result  # its token lists: ``repeated`` has its own copy
        row_tokens[name] = int(repeated["n_tokens"].sum())
        if settings.packing:
            rows[name] = tokenize.pack(repeated, settings.cutoff_len)
        else:
            rows[name] = repeated.select("id", "input_ids", tokenize.attention_mask(pl.col("input_ids")), "labels")
    all_examples, all_rejects = pl.concat(examples), pl.concat(rejects)
    train_tokens = row_tokens["train"]
    report = TokenReport(
        tokenizer=tokenizer_source(settings.tokenizer), template=settings.template, cutoff_len=settings.cutoff_len,
        packing=settings.packing, train_tokens=train_tokens,
        eval_tokens=row_tokens["eval"], train_rows=rows["train"].height,
        packing_efficiency=(round(train_tokens / (rows["train"].height * settings.cutoff_len), 4)
                            if settings.packing and rows["train"].height else None),
        by_task=stage_reports.token_stats(all_examples, all_rejects, "task"),
        by_source=stage_reports.token_stats(all_examples, all_rejects, "source"),
    )
    return kept["train"], kept["eval"], rows, with_originals(pl.concat([train, eval_]), all_rejects), report
