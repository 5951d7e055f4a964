"""The build: run every stage over a mix's sources, reconcile the ledger, and write the output folder.

Per-record stages run chunk by chunk (``process_chunk``: ingest -> validate types -> normalize -> validate
content), so only one chunk of raw rows is in memory at a time; global stages (dedup, decontamination, split,
mixture, tokenization) run on the concatenated result. This module orchestrates and holds no stage logic; the
Prefect flow (flows/build_flow.py) runs the same stage functions as tasks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import logging
import multiprocessing
import os
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl

import pipeline
from pipeline import (
    decontaminate,
    dedup,
    ingest,
    language,
    ledger,
    memory_report,
    mixture,
    normalize,
    pii,
    profile,
    quality,
    report_html,
    report_markdown,
    tokenize,
    file_units,
    validate,
)
from pipeline.config import Mix, ResolvedReference, ResolvedSource
from pipeline.io import heap, output_folder, readers, signature_index, writers
from pipeline.io.readers import Chunk
from pipeline.io.tokenizer import load_tokenizer, tokenizer_source
from pipeline.quarantine import (
    EARLY_REJECT_SCHEMA,
    REJECT_SCHEMA,
    STAGE_REJECT_SCHEMA,
    with_originals,
)
from schemas.manifest import InputFile, Manifest
from schemas.mix import MixSpec
from schemas.report import (
    BuildReport,
    DedupReport,
    DuplicateExample,
    MixtureReport,
    MixtureSource,
    MixtureTask,
    PiiReport,
    RuleCount,
    SourceSummary,
    SplitReport,
    StageCounts,
    TokenReport,
    TokenStats,
)

log = logging.getLogger(__name__)

STAGES = ("ingest", "validate", "language", "quality", "pii", "dedup", "decontaminate", "mixture", "tokenize")  # in order; a record rejected by one never reaches the next
RECORD_SCHEMA: dict[str, pl.DataType] = {  # a validated record, as the per-record stages leave it
    "id": pl.String(), "source": pl.String(), "task": pl.String(), "instruction": pl.String(),
    "input": pl.String(), "output": pl.String(), "system": pl.String(),
    "history": validate.HISTORY, "origin": pl.String(),
}
OUTPUT_SCHEMA: dict[str, pl.DataType] = {**RECORD_SCHEMA, "lang": pl.String(), "lang_score": pl.Float64()}
ROW_SCHEMA = {**OUTPUT_SCHEMA, "repeat": pl.UInt16()}  # a row of train.parquet: repeat 0 is a record's first copy
OUTPUT_COLUMNS = tuple(OUTPUT_SCHEMA)
PACKAGES = ("instruct-pipeline", "polars", "pyarrow", "pydantic", "datasets", "orjson", "pyyaml")

PARALLEL_MIN_BYTES = 32 << 20
ProgressCallback = Callable[[str, int, bool], None]  # (source, records just processed, a file finished)


@dataclass
class ChunkResult:
    source: str
    format: str
    n_input: int
    kept: pl.DataFrame
    rejected: pl.DataFrame
    repairs: Counter[tuple[str, str]]


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


def process_chunk(chunk: Chunk | file_units.Merged, spec: MixSpec) -> ChunkResult:
    """All per-record stages over one chunk (or several read as one); rejects carry the raw text of their row."""
    merged = chunk if isinstance(chunk, file_units.Merged) else file_units.Merged(chunk, [chunk], np.zeros(1, int))
    chunk = merged.chunk
    fmt, adapted = ingest.records_from_chunk(chunk)
    name = chunk.source.spec.name
    n_input = len(adapted.records) + len(adapted.rejects)
    invalid = validate.check_types(adapted.records)
    frame = validate.records_frame(adapted.records, adapted.positions, adapted.subs, skip=invalid,
                                   may_have_history=adapted.may_have_history)
    frame, input_rejects, filled = validate.fill_missing_input(frame, spec.validate_.require_input_key)
    frame, fixes = normalize.normalize(file_units.identify(frame, merged), spec.normalize)
    kept, content_rejects = validate.check_content(frame)
    early = pl.concat([
        pl.DataFrame([(pos, None, ingest.STAGE, reason, detail) for pos, reason, detail in adapted.rejects],
                     schema=EARLY_REJECT_SCHEMA, orient="row"),
        pl.DataFrame([(adapted.positions[i], adapted.subs[i], validate.STAGE, reason, detail)
                      for i, (reason, detail) in invalid.items()], schema=EARLY_REJECT_SCHEMA, orient="row"),
        input_rejects,
    ])
    rejected = pl.concat([file_units.identify(early, merged).select(STAGE_REJECT_SCHEMA.keys()), content_rejects])
    originals = [chunk.batch.original(p) for p in rejected["_pos"]]
    rejected = rejected.drop("_pos").with_columns(pl.Series("original", originals, dtype=pl.String))
    repairs = Counter({(name, fix): n for fix, n in adapted.repairs.items()})
    repairs.update(fixes)
    if filled:
        repairs[(name, "missing_input")] += filled
    return ChunkResult(name, fmt, n_input, kept.select(RECORD_SCHEMA.keys()), rejected, repairs)


@dataclass(frozen=True)
class WorkUnit:
    """Files of one source (``files``; empty for a whole dataset): the unit of parallel work and of the flow's
    task cache. A file of 1 MiB or more is a unit of its own; consecutive smaller files share one
    (``file_units.file_groups``), so the per-unit cost (the record filters, a flow task) is paid per ~64 files."""

    source: ResolvedSource
    files: tuple[Path, ...]
    root: Path
    spec: MixSpec


def work_units(mix: Mix) -> list[WorkUnit]:
    return [WorkUnit(source, files, mix.root, mix.spec) for source in mix.sources
            for files in (file_units.file_groups(source.files, source.base) if source.files else [()])]


def process_unit(unit: WorkUnit) -> list[ChunkResult]:
    source = unit.source
    if unit.files:
        source = dataclasses.replace(source, files=unit.files)
    return [process_chunk(merged, unit.spec) for merged in file_units.merge(readers.iter_chunks(source, unit.root))]


_worker_detections: dict[Path | None, language.DetectionCache] = {}  # per worker process: read once


def _shard_to_files(unit: WorkUnit, folder: str, number: int,
                    cache: Path | None) -> tuple[Shard, Path, Path, pl.DataFrame]:
    """``shard_unit`` in a worker process. Its frames go back as Arrow IPC files (a third of the cost of
    pickling them through the pipe), with the language detections it added to the cache it read."""
    if cache not in _worker_detections:
        _worker_detections[cache] = language.DetectionCache(cache, journal=True)
    detections = _worker_detections[cache]
    result = shard(unit, process_unit(unit), detections)
    kept, rejected = Path(folder) / f"{number:06d}-kept.arrow", Path(folder) / f"{number:06d}-rejected.arrow"
    result.kept.write_ipc(kept, compression="uncompressed")
    result.rejected.write_ipc(rejected, compression="uncompressed")
    emptied = dataclasses.replace(result, kept=result.kept.clear(), rejected=result.rejected.clear())
    return emptied, kept, rejected, detections.take_journal()


def iter_shards(mix: Mix, workers: int, progress: ProgressCallback | None = None,
                detections: language.DetectionCache | None = None) -> Iterator[Shard]:
    """Shards in input order, computed by this process and ``workers - 1`` spawned ones.

    This process claims units from the front of the list and the workers from the back, one at a time each,
    so they meet wherever the work splits evenly, whatever the file sizes and however long the workers take
    to start (~1 s of imports). A worker gets its next unit only when it finishes one, so no unit waits in a
    queue that this process could have taken it from. Workers read the language cache this process reads and
    send back what they detected, which joins ``detections``."""
    units = work_units(mix)

    def done(part: Shard) -> Shard:
        if progress:
            progress(part.source, part.n_input, True)
        return part

    if workers <= 1 or len(units) <= 1:
        for unit in units:
            yield done(shard(unit, process_unit(unit), detections))
        return
    claims = _Claims(len(units))
    futures: dict[int, Future[tuple[Shard, Path, Path, pl.DataFrame]]] = {}
    context = multiprocessing.get_context("spawn")  # polars' thread pool does not survive fork
    cache = detections.path if detections is not None else None
    with tempfile.TemporaryDirectory(prefix="instruct-pipeline-") as folder, ProcessPoolExecutor(
        max_workers=min(workers - 1, len(units) - 1), mp_context=context
    ) as pool:

        def submit_next(_: object = None) -> None:
            with claims.lock:  # claim and submit at once: a unit claimed is always in ``futures``
                index = claims.take_back()
                if index is None:
                    return
                futures[index] = pool.submit(_shard_to_files, units[index], folder, index, cache)
            futures[index].add_done_callback(submit_next)  # outside the lock: it may run at once

        for _ in range(min(workers - 1, len(units) - 1)):
            submit_next()
        while (index := claims.front()) is not None:
            yield done(shard(units[index], process_unit(units[index]), detections))
        for index in sorted(futures):
            part, kept, rejected, detected = futures[index].result()
            if detections is not None:
                detections.learn(detected)
            yield done(dataclasses.replace(part, kept=pl.read_ipc(kept), rejected=pl.read_ipc(rejected)))


class _Claims:
    """Unclaimed unit indices [first, end): taken from the front by this process, from the back by workers."""

    def __init__(self, n: int) -> None:
        self.first, self.end, self.lock = 0, n, threading.Lock()

    def front(self) -> int | None:
        with self.lock:
            if self.first == self.end:
                return None
            self.first += 1
            return self.first - 1

    def take_back(self) -> int | None:
        """Call with ``lock`` held."""
        if self.first == self.end:
            return None
        self.end -= 1
        return self.end


def default_workers(mix: Mix) -> int:
    """All cores for inputs big enough to pay for starting processes (~1 s each), else one."""
    size = sum(p.stat().st_size for s in mix.sources for p in s.files)
    return (os.cpu_count() or 1) if size > PARALLEL_MIN_BYTES else 1


@dataclass
class Shard:
    """One work unit (a file, or a whole dataset) after every per-record stage: ingest, validate, normalize,
    language, quality and PII. Shards are independent of each other; the global stages start from their union."""

    source: str
    formats: set[str]
    n_input: int
    kept: pl.DataFrame  # OUTPUT_SCHEMA
    rejected: pl.DataFrame  # REJECT_SCHEMA
    repairs: Counter[tuple[str, str]]
    pii: Counter[str]


def filter_records(records: pl.DataFrame, unit: WorkUnit,
                   detections: language.DetectionCache | None = None) -> tuple[pl.DataFrame, pl.DataFrame, Counter[str]]:
    """Language, quality and PII over a unit's validated records: (kept, rejected rows, PII found by type)."""
    spec, name = unit.spec, unit.source.spec.name
    wanted = unit.source.spec.languages if unit.source.spec.languages is not None else spec.filters.languages
    kept, language_rejects = language.language_filter(records, {name: wanted}, detections)
    checked = kept
    kept, quality_rejects = quality.quality_filter(kept, spec.quality)
    kept, pii_rejects, pii_found = pii.find_pii(kept, spec.pii)
    rejected = pl.concat([with_originals(records, language_rejects),
                          with_originals(checked, pl.concat([quality_rejects, pii_rejects]))])
    return kept.select(OUTPUT_COLUMNS), rejected, Counter(pii_found)


def shard(unit: WorkUnit, results: list[ChunkResult], detections: language.DetectionCache | None = None) -> Shard:
    """A unit's chunk results (from ``process_unit``) through the record filters."""
    name = unit.source.spec.name
    validated = pl.concat([r.kept for r in results]) if results else pl.DataFrame(schema=RECORD_SCHEMA)
    kept, rejected, pii_found = filter_records(validated, unit, detections)
    repairs: Counter[tuple[str, str]] = Counter()
    for result in results:
        repairs.update(result.repairs)
    rejected = pl.concat([pl.DataFrame(schema=REJECT_SCHEMA), *(r.rejected for r in results), rejected])
    if unit.spec.pii.redact_rejected:  # here, so no stage file of a flow holds the PII either
        rejected = pii.redact_rejected(rejected, unit.spec.pii)
    return Shard(source=name, formats={r.format for r in results}, n_input=sum(r.n_input for r in results),
                 kept=kept, rejected=rejected, repairs=repairs, pii=pii_found)


def shard_unit(unit: WorkUnit) -> Shard:
    """Every per-record stage over one unit: the task that flows/ maps over the input."""
    return shard(unit, process_unit(unit))


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
    detections = language.DetectionCache(cache / LANGUAGE_CACHE if cache else None)
    shards = list(iter_shards(mix, default_workers(mix) if workers is None else workers, progress, detections))
    detections.save()
    return finish(mix, shards, tokenizer)


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
    return Deduplicated(deduped.kept, deduped.duplicates, _dedup_report(spec, deduped, references), signatures)


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
    warnings = split_warnings(spec, pool.height, eval_.height)
    if warnings and spec.mixture.strict:
        raise mixture.MixtureError("split guard failed (mixture.strict: true):\n  " + "\n  ".join(warnings))
    for warning in warnings:
        log.warning("split: %s", warning)
    return pool, eval_


def split_warnings(spec: MixSpec, train: int, eval_: int) -> list[str]:
    """The split guard: train (distinct records) empty, or smaller than eval."""
    if train >= eval_:
        return []
    setting = f"split.eval: {spec.split.eval:g}"
    if not train:
        return [f"{setting} puts all {eval_:,} records in eval: train is empty"]
    return [f"{setting} leaves {train:,} records in train, fewer than the {eval_:,} in eval"]


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
class Tokenized:
    train: pl.DataFrame
    eval: pl.DataFrame
    rows: dict[str, pl.DataFrame]  # rows of tokenized/ per split; empty when tokenize is off
    rejected: pl.DataFrame
    report: TokenReport | None


def tokenize_stage(train: pl.DataFrame, eval_: pl.DataFrame, tokenizer: Any, spec: MixSpec) -> Tokenized:
    eval_ = eval_.with_columns(repeat=pl.lit(0, pl.UInt16))
    if not spec.tokenize.enabled:
        return Tokenized(train, eval_, {}, pl.DataFrame(schema=REJECT_SCHEMA), None)
    tokenized = Tokenized(*tokenize_splits(train, eval_, tokenizer, spec))
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


STAGE_RANK = {stage: k for k, stage in enumerate(STAGES)}


def assemble(mix: Mix, shards: list[Shard], deduped: Deduplicated, leaks: pl.DataFrame, mixed: Mixed,
             tokenized: Tokenized) -> BuildResult:
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
    all_rejected = all_rejected.sort(pl.col("stage").replace_strict(STAGE_RANK, default=len(STAGES)),
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
        spec_hash=spec_hash(spec),
        totals={"input": sum(inputs.values()), "train": train.height, "eval": eval_.height,
                "rejected": all_rejected.height, "duplicates": duplicates.height, "sampled_out": sampled_out.height,
                "repeats": train.filter(pl.col("repeat") > 0).height},
        sources=[_source_summary(s, inputs, train, all_rejected, duplicates, repairs, formats) for s in mix.sources],
        funnel=funnel(inputs, removed),
        ledger=ledger_rows,
        dedup=deduped.report,
        quality=_rule_counts(all_rejected, quality.STAGE),
        pii=PiiReport(action=spec.pii.action, found=dict(sorted(pii_found.items()))),
        decontamination=_rule_counts(all_rejected, decontaminate.STAGE),
        split=_split_report(spec, train, eval_),
        mixture=mixed.report,
        advice=mixture.base_model_advice(train.height, train["task"].n_unique(), _general_share(train, mix)),
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
        general_share_achieved=round(int(targets.filter(pl.col("general"))["achieved"].sum()) / total, 4) if total else 0.0,
        tasks=[MixtureTask(task=t, target=tg, achieved=a, share=round(a / total, 4) if total else 0.0)
               for t, tg, a in tasks.iter_rows()],
        sources=[MixtureSource(**row) for row in by_source.iter_rows(named=True)],
        warnings=warnings,
    )
    return train, left_out, report


def _general_share(train: pl.DataFrame, mix: Mix) -> float | None:
    general = [s.spec.name for s in mix.sources if s.spec.general]
    if not general or not train.height:
        return None
    return int(train["source"].is_in(general).sum()) / train.height


def _split_report(spec: MixSpec, train: pl.DataFrame, eval_: pl.DataFrame) -> SplitReport | None:
    """The split and the proof that no record, repeat or (exact / near) duplicate is on both sides."""
    if not spec.split.eval:
        return None
    shared = train.select("id").unique().join(eval_.select("id"), on="id", how="semi").height
    # repeats have their first copy's key, so train's keys are the same set with or without them
    shared_keys = dedup.exact_fingerprints(eval_).unique().join(
        dedup.exact_fingerprints(train).unique(), on=["key_a", "key_b"], how="semi").height
    near = spec.dedup.near
    train_records = int((train["repeat"] == 0).sum())
    warnings = "".join(f"warning: {w}. " for w in split_warnings(spec, train_records, eval_.height))
    return SplitReport(
        eval_setting=spec.split.eval, eval=eval_.height, train_records=train_records,
        by_task=dict(sorted(Counter(eval_["task"].to_list()).items())),
        shared_ids=shared, shared_exact_keys=shared_keys,
        near_duplicates_across=(0 if near else None),
        note=warnings + (
            f"near dedup (Jaccard >= {spec.dedup.threshold}) ran over all records before the split, so no "
            "near-duplicate pair at that threshold can straddle it; repeats are drawn after the split, "
            "from train only" if near else
            "near dedup is off: near-duplicates across the split are not checked; repeats are drawn after "
            "the split, from train only"),
    )


def _rule_counts(rejected: pl.DataFrame, stage: str) -> dict[str, RuleCount]:
    """Records quarantined by a stage, per reason, with up to three example ids."""
    mine = rejected.filter(pl.col("stage") == stage).group_by("reason").agg(pl.len(), pl.col("id").head(3))
    return {reason: RuleCount(count=n, examples=ids) for reason, n, ids in mine.sort("reason").iter_rows()}


def build_records(folder: Path, columns: Iterable[str]) -> pl.DataFrame:
    """An earlier build's kept records, train then eval, as written to its output folder."""
    return pl.concat([pl.read_parquet(folder / name).select(columns)
                      for name in ("train.parquet", "eval.parquet") if (folder / name).is_file()])


def load_eval_prompts(ref: ResolvedReference, mix: Mix) -> pl.DataFrame:
    """The prompts of an eval set (id, instruction, input), read without requiring answers."""
    if ref.build is not None:
        return build_records(ref.build, ("id", "instruction", "input"))
    assert ref.source is not None
    frames = []
    for chunk in readers.iter_chunks(ref.source, mix.root):
        _, adapted = ingest.records_from_chunk(chunk)
        frame = pl.DataFrame({
            "_pos": adapted.positions, "_sub": adapted.subs,
            "instruction": [r.get("instruction") if isinstance(r.get("instruction"), str) else "" for r in adapted.records],
            "input": [r.get("input") if isinstance(r.get("input"), str) else "" for r in adapted.records],
        }, schema={"_pos": pl.Int64, "_sub": pl.Int64, "instruction": pl.String, "input": pl.String})
        frames.append(ingest.identify(frame, chunk).select("id", "instruction", "input"))
    return pl.concat(frames) if frames else pl.DataFrame(schema={"id": pl.String, "instruction": pl.String,
                                                                 "input": pl.String})


def load_reference(ref: ResolvedReference, mix: Mix) -> dedup.Reference:
    """An earlier build's kept records (with its signature index when compatible), or a dataset's valid records
    read through the same per-record stages as a source."""
    if ref.build is not None:
        records = build_records(ref.build, RECORD_SCHEMA.keys())
        index = signature_index.read(ref.build, mix.spec.dedup)
        signatures = None
        if index is not None and index.height == records.height:
            aligned = records.select("id").join(index, on="id", how="left", maintain_order="left")["signature"]
            signatures = None if aligned.null_count() else aligned.to_numpy()
        return dedup.Reference(ref.name, records, signatures)
    assert ref.source is not None
    merged = file_units.merge(readers.iter_chunks(ref.source, mix.root))
    chunks = [process_chunk(part, mix.spec) for part in merged]
    unusable = sum(c.rejected.height for c in chunks)
    if unusable:
        log.warning("dedup.against %s: %d record(s) are invalid and cannot be compared", ref.name, unusable)
    return dedup.Reference(ref.name, pl.concat([c.kept for c in chunks]))


def _dedup_report(spec: MixSpec, result: dedup.DedupResult, references: list[dedup.Reference]) -> DedupReport:
    settings, duplicates, stats = spec.dedup, result.duplicates, result.stats
    in_build = duplicates.filter(pl.col("kept_in") == dedup.THIS_BUILD)
    closest = duplicates.filter(pl.col("kind") == "near").sort("similarity", "id").head(5)
    return DedupReport(
        exact=settings.exact, near=settings.near, key=settings.key, across_sources=settings.across_sources,
        threshold=settings.threshold, ngram=settings.ngram, num_perm=settings.num_perm,
        bands=stats.get("bands"), rows=stats.get("rows"), verify=settings.verify,  # type: ignore[arg-type]
        references=[r.name for r in references], reference_records=sum(r.records.height for r in references),
        exact_removed=int(stats.get("exact_removed") or 0), near_removed=int(stats.get("near_removed") or 0),
        candidate_pairs=stats.get("candidate_pairs"), verified_pairs=stats.get("verified_pairs"),  # type: ignore[arg-type]
        clusters=stats.get("clusters"), largest_cluster=stats.get("largest_cluster"),  # type: ignore[arg-type]
        by_source=dict(sorted(Counter(duplicates["source"].to_list()).items())),
        cross_source=in_build.filter(pl.col("kept_source") != pl.col("source")).height,
        against_references=duplicates.height - in_build.height,
        examples=[DuplicateExample(**row) for row in closest.select(
            "id", "kept_id", "kept_in", "kind", "similarity").iter_rows(named=True)],
    )


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
        by_task=_token_stats(all_examples, all_rejects, "task"),
        by_source=_token_stats(all_examples, all_rejects, "source"),
    )
    return kept["train"], kept["eval"], rows, with_originals(pl.concat([train, eval_]), all_rejects), report


def _token_stats(examples: pl.DataFrame, rejects: pl.DataFrame, by: str) -> list[TokenStats]:
    stats = tokenize.token_stats(examples, rejects, by)
    return [TokenStats(key=row[by], **{k: v for k, v in row.items() if k != by}) for row in stats.iter_rows(named=True)]


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


def _source_summary(source: ResolvedSource, inputs: Counter[str], train: pl.DataFrame, rejected: pl.DataFrame,
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


def spec_hash(spec: MixSpec) -> str:
    canonical = orjson.dumps(spec.model_dump(mode="json", by_alias=True), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def input_files(mix: Mix) -> list[InputFile]:
    found = []
    for source in mix.sources:
        if source.kind == "hub":
            ref = f"{source.spec.hub}@{source.spec.revision or 'default'}"
            found.append(InputFile(source=source.spec.name, path=ref, bytes=None, sha256=None))
            continue
        files = source.files or tuple(sorted(p for p in source.folder.rglob("*") if p.is_file()))  # type: ignore[union-attr]
        for path in files:
            found.append(InputFile(source=source.spec.name, path=readers.display_path(path, mix.root),
                                   bytes=path.stat().st_size, sha256=writers.sha256_file(path)))
    return found


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = pipeline.__version__ if name == "instruct-pipeline" else "not installed"
    return versions


def write(result: BuildResult, target: Path | None = None, build_key: str | None = None) -> Path:
    """Write the output folder (atomically; default ``mix.out_dir``) and return its path. ``build_key``, the
    flow's content hash of everything the build read, goes into the manifest so an unchanged re-run can stop."""
    mix, spec = result.mix, result.mix.spec
    target = target or mix.out_dir
    if result.train.height == 0:
        raise output_folder.EmptyBuildError(result.report, target)
    with output_folder.atomic_folder(target) as tmp:
        compression, level = spec.output.compression, spec.output.compression_level
        writers.write_parquet(result.train, tmp / "train.parquet", compression, level)
        writers.write_parquet(result.eval, tmp / "eval.parquet", compression, level)
        writers.write_parquet(result.rejected, tmp / "rejected.parquet", compression, level)
        writers.write_parquet(result.duplicates, tmp / "duplicates.parquet", compression, level)
        if result.signatures is not None:
            signature_index.write(tmp / signature_index.FOLDER, result.signatures["id"],
                                  result.signatures["signature"].to_numpy(), spec.dedup, compression)
        writers.write_json(result.report.model_dump(mode="json"), tmp / "report.json")
        (tmp / "report.md").write_text(report_markdown.render(result.report), encoding="utf-8")
        (tmp / "report.html").write_text(report_html.render(result.report), encoding="utf-8")
        if result.tokenized:
            writers.write_dataset_dict(result.tokenized, tmp / "tokenized", fingerprint=result.report.spec_hash)
        files = [p for p in sorted(tmp.rglob("*")) if p.is_file()]
        manifest = Manifest(
            name=spec.name, seed=spec.seed, spec=spec.model_dump(mode="json", by_alias=True),
            spec_hash=result.report.spec_hash, inputs=input_files(mix), packages=package_versions(),
            counts=result.report.totals, mix_file=str(mix.path.resolve()), build_key=build_key,
            outputs={p.relative_to(tmp).as_posix(): writers.sha256_file(p) for p in files},
            output_bytes={p.relative_to(tmp).as_posix(): p.stat().st_size for p in files},
        )
        writers.write_json(manifest.model_dump(mode="json"), tmp / "manifest.json")  # last: marks completion
    return target
