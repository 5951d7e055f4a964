"""The build's direct runner: the per-record chain over every work unit (``records``, spread by ``io/workers``),
then the global stages of ``plan.STAGES`` (dedup, decontamination, split, mixture, tokenization) over their union,
in order, and the assembly of the result: the fates of every record (checked by the ledger; ``fates``), the
report (the ``report`` package) and what ``writer.write`` puts in the output folder.

Contract: ``run(mix)`` -> ``BuildResult`` in memory, nothing written but the language cache; each global stage
takes the records the previous one kept and returns an ``Outcome`` (pipeline/stage.py), and ``finish`` lets
each stage's input go once it has run. The Prefect flow (flows/build_flow.py) walks the same plan as tasks.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from pipeline import (
    decontaminate,
    dedup,
    fates,
    language,
    ledger,
    mixture,
    plan,
    quality,
    tokenize,
    writer,
)
from pipeline.config import Mix
from pipeline.io import token_files
from pipeline.io import workers as workers_pool
from pipeline.io.tokenizer import check_template, load_tokenizer, tokenizer_source
from pipeline.io.workers import ProgressCallback
from pipeline.records import OUTPUT_SCHEMA, Shard
from pipeline.report import profile, stages
from pipeline.report.memory import memory_report
from pipeline.stage import Outcome
from pipeline.steps import READ, REPORT, SILENT, StageProgress
from schemas.mix import MixSpec
from schemas.report import BuildReport, PiiReport

log = logging.getLogger(__name__)


@dataclass
class BuildResult:
    mix: Mix
    train: pl.DataFrame
    eval: pl.DataFrame
    rejected: pl.DataFrame
    duplicates: pl.DataFrame
    report: BuildReport
    tokenized: dict[str, pl.DataFrame]  # the index of tokenized/'s rows per split; empty when tokenize is off
    signatures: pl.DataFrame | None = None  # id, signature of every record dedup kept: the dedup index's rows
    files: Path | None = None  # the shard files of tokenized/'s splits, written by the tokenize stage
    scratch: Any = None  # the temporary folder that holds ``files`` in a direct build: removed with the result

    def token_rows(self, split: str) -> pl.DataFrame:
        """The rows of tokenized/ of ``split`` (read from its file), without their record ids."""
        if self.files is None:
            raise ValueError("this build has no tokenized/: tokenize is off")
        return pl.concat([token_files.read(path) for path in token_files.shard_paths(self.files, split)])


def needed_tokenizer(spec: MixSpec, tokenizer: Any = None) -> Any:
    """The tokenizer the build needs (None when tokenize is off), loaded and checked against the template before
    any data is read."""
    if not spec.tokenize.enabled:
        return tokenizer
    tokenizer = load_tokenizer(spec.tokenize.tokenizer) if tokenizer is None else tokenizer
    check_template(tokenizer, spec.tokenize.template, tokenizer_source(spec.tokenize.tokenizer))
    return tokenizer


def run(mix: Mix, progress: ProgressCallback | None = None, workers: int | None = None,
        tokenizer: Any = None, cache: Path | None = None, stages: StageProgress = SILENT) -> BuildResult:
    """Build in memory, calling the stages directly: every stage, the ledger check and the report; nothing is
    written but the caches in ``cache`` (``cache_folder(mix)`` for ``pipeline build``; none by default). The
    tokenizer is loaded first (unless given), so a missing one stops the build before any data is read.
    flows/build_flow.py runs the same functions as Prefect tasks. ``progress`` is told of every work unit read,
    ``stages`` of every step's start and end."""
    tokenizer = needed_tokenizer(mix.spec, tokenizer)
    return finish(mix, read(mix, progress, workers, cache, stages), tokenizer, stages, cache)


def read(mix: Mix, progress: ProgressCallback | None = None, workers: int | None = None,
         cache: Path | None = None, stages: StageProgress = SILENT) -> list[Shard]:
    """Every per-record stage over every work unit, in input order (the worker pool): what the global stages
    start from, and all that ``pipeline validate`` runs."""
    stages.started(READ)
    detections = language.DetectionCache(cache / LANGUAGE_CACHE if cache else None)
    count = workers_pool.default_workers(mix) if workers is None else workers
    shards = list(workers_pool.iter_shards(mix, count, progress, detections))
    detections.save()
    stages.finished(READ, sum(s.n_input for s in shards), sum(s.kept.height for s in shards))
    return shards


def union(shards: list[Shard]) -> pl.DataFrame:
    """The records every shard kept, in input order: where the global stages start."""
    return pl.concat([s.kept for s in shards]) if shards else pl.DataFrame(schema=OUTPUT_SCHEMA)


def finish(mix: Mix, shards: list[Shard], tokenizer: Any, stages: StageProgress = SILENT,
           scratch: Path | None = None) -> BuildResult:
    """The global stages over the shards, in the plan's order, then the ledger and the report. Each stage's
    input is let go once it has run (the shards in ``shards`` lose their ``kept`` frames, each outcome its
    ``kept`` once the next stage has it), so a million records are held about twice at the peak, not once per
    stage. Files a stage writes (tokenized/'s rows) go to a temporary folder in ``scratch`` (the system's
    by default) that lives as long as the result."""
    records = union(shards)
    shards[:] = [dataclasses.replace(s, kept=s.kept.clear()) for s in shards]
    outcomes: dict[str, Outcome] = {}
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
    folder = tempfile.TemporaryDirectory(prefix="build-", dir=scratch)
    for stage in plan.STAGES:
        stages.started(stage.name)
        context = plan.Context(mix, tokenizer, plan.inputs(outcomes, stage), Path(folder.name))
        outcome = plan.run_stage(stage, records, context)
        stages.finished(stage.name, records.height, outcome.kept.height)
        records = outcome.kept
        outcomes[stage.name] = dataclasses.replace(outcome, kept=outcome.kept.clear())
    outcomes[plan.STAGES[-1].name].kept = records
    stages.started(REPORT)
    result = dataclasses.replace(assemble(mix, shards, outcomes), scratch=folder)
    stages.finished(REPORT, result.report.totals["input"], result.train.height + result.eval.height)
    return result


def assemble(mix: Mix, shards: list[Shard], outcomes: dict[str, Outcome]) -> BuildResult:
    """The fates of every record (checked by the ledger), the report, and the result to write, from the shards
    and each global stage's outcome (the last one's ``kept``: train)."""
    spec = mix.spec
    train = outcomes[plan.STAGES[-1].name].kept
    eval_, duplicates, sampled_out = (plan.output_of(outcomes, name) for name in ("eval", "duplicates", "sampled_out"))
    inputs: Counter[str] = Counter({s.spec.name: 0 for s in mix.sources})
    repairs: Counter[tuple[str, str]] = Counter()
    pii_found: Counter[str] = Counter()
    formats: dict[str, set[str]] = {s.spec.name: set() for s in mix.sources}
    for part in shards:
        inputs[part.source] += part.n_input
        repairs.update(part.repairs)
        pii_found.update(part.pii)
        formats[part.source] |= part.formats
    all_rejected = pl.concat([*(s.rejected for s in shards), *(o.rejected for o in outcomes.values())])
    all_rejected = all_rejected.sort(pl.col("stage").replace_strict(fates.STAGE_RANK, default=len(fates.STAGES)),
                                     maintain_order=True)
    everyone = fates.fate_table(train, eval_, all_rejected, duplicates, sampled_out)
    ledger_rows = ledger.reconcile(dict(inputs), everyone)
    signatures = outcomes[dedup.STAGE].outputs.get("signatures")
    tokenized = {split: rows for name, rows in outcomes[tokenize.STAGE].outputs.items()
                 if (split := name.removeprefix("tokenized/")) != name}
    report = BuildReport(
        name=spec.name,
        spec_hash=writer.spec_hash(spec),
        totals=fates.totals(everyone, train, eval_),
        sources=[fates.source_summary(s, inputs, train, everyone, repairs, formats) for s in mix.sources],
        funnel=fates.funnel(inputs, everyone),
        ledger=ledger_rows,
        dedup=outcomes[dedup.STAGE].stats,
        quality=fates.rule_counts(everyone, quality.STAGE),
        pii=PiiReport(action=spec.pii.action, found=dict(sorted(pii_found.items()))),
        decontamination=fates.rule_counts(everyone, decontaminate.STAGE),
        split=stages.split_report(spec, train, eval_, outcomes[dedup.STAGE].outputs.get("fingerprints")),
        mixture=outcomes[mixture.STAGE].stats,
        advice=mixture.base_model_advice(train.height, train["task"].n_unique(),
                                         stages.general_share(train, mix)),
        tokens=outcomes[tokenize.STAGE].stats,
        profile=profile.build_profile(train, tokenized),
        memory=memory_report(spec.train, spec.tokenize.cutoff_len),
    )
    return BuildResult(mix=mix, train=train, eval=eval_, rejected=all_rejected, duplicates=duplicates,
                       report=report, tokenized=tokenized, signatures=signatures,
                       files=outcomes[tokenize.STAGE].files)


LANGUAGE_CACHE = f"language-v{language.VERSION}.parquet"


def cache_folder(mix: Mix) -> Path:
    """Caches shared by the builds of one output root (never part of a build's output)."""
    return mix.out_dir.parent / ".cache"
