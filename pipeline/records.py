"""The per-record chain: every record-level stage over a chunk of one source (``process_chunk``: ingest ->
validate types -> normalize -> validate content) and over a work unit's records (``shard``: language ->
quality -> PII), and the reading of a reference dataset or an earlier build through the same chain.

Contract: a chunk or unit goes in; ``kept`` records (``RECORD_SCHEMA``, then ``OUTPUT_SCHEMA`` after the
filters) and ``rejected`` rows (``QUARANTINE_SCHEMA``, each with its stage, reason and the raw text of its row) come
out; nothing is dropped silently. Units are independent of each other: the worker pool (``io/workers``) and
the Prefect flow run them in any order and the build concatenates them in input order.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipeline import chat_format, dedup, file_units, ingest, language, normalize, pii, quality, validate
from pipeline.config import Mix, ResolvedReference, ResolvedSource
from pipeline.io import readers, signature_index, split_files
from pipeline.io.readers import Chunk
from pipeline.stage import QUARANTINE_SCHEMA, REJECT_SCHEMA, with_originals
from schemas.mix import MixSpec

log = logging.getLogger(__name__)


RECORD_SCHEMA: dict[str, pl.DataType] = {  # a validated record, as the per-record stages leave it
    "id": pl.String(), "source": pl.String(), "task": pl.String(), "instruction": pl.String(),
    "input": pl.String(), "output": pl.String(), "system": pl.String(),
    "history": validate.HISTORY, "origin": pl.String(),
}


OUTPUT_SCHEMA: dict[str, pl.DataType] = {**RECORD_SCHEMA, "lang": pl.String(), "lang_score": pl.Float64()}


ROW_SCHEMA = {**OUTPUT_SCHEMA, "repeat": pl.UInt16()}  # a row of train.parquet: repeat 0 is a record's first copy


OUTPUT_COLUMNS = tuple(OUTPUT_SCHEMA)


@dataclass
class ChunkResult:
    source: str
    format: str
    n_input: int
    kept: pl.DataFrame
    rejected: pl.DataFrame
    repairs: Counter[tuple[str, str]]


def process_chunk(chunk: Chunk | file_units.Merged, spec: MixSpec) -> ChunkResult:
    """All per-record stages over one chunk (or several read as one); rejects carry the raw text of their row."""
    merged = chunk if isinstance(chunk, file_units.Merged) else file_units.Merged(chunk, [chunk], np.zeros(1, int))
    chunk = merged.chunk
    fmt, adapted = ingest.records_from_chunk(chunk)
    name = chunk.source.spec.name
    n_input = len(adapted.records) + len(adapted.rejects)
    invalid = validate.check_types(adapted.records)
    frame = file_units.assign_ids(validate.records_frame(adapted.records, adapted.positions, adapted.subs,
                                                         skip=invalid, may_have_history=adapted.may_have_history),
                                  merged)
    filled = validate.fill_missing_input(frame, spec.validate_.require_input_key)
    normalized = normalize.normalize(filled.kept, spec.normalize)
    checked = validate.check_content(normalized.kept)
    unparsed = file_units.assign_ids(pl.DataFrame(  # rejected before they were records: ingest, the type check
        [(pos, None, ingest.STAGE, reason, detail) for pos, reason, detail in adapted.rejects]
        + [(adapted.positions[i], adapted.subs[i], validate.STAGE, reason, detail)
           for i, (reason, detail) in invalid.items()],
        schema=_UNPARSED_SCHEMA, orient="row"), merged)
    rejected = pl.concat([unparsed.select(REJECT_SCHEMA.keys()), filled.rejected, checked.rejected])
    positions = pl.concat([unparsed.select("id", "_pos"), frame.select("id", "_pos")])
    at = rejected.select("id").join(positions, on="id", how="left", maintain_order="left")["_pos"]
    originals = pl.Series("original", [chunk.batch.original(p) for p in at], dtype=pl.String)
    repairs = Counter({(name, fix): n for fix, n in adapted.repairs.items()})
    repairs.update(normalized.stats)
    if filled.stats:
        repairs[(name, "missing_input")] += filled.stats
    return ChunkResult(name, fmt, n_input, checked.kept.select(RECORD_SCHEMA.keys()),
                       rejected.with_columns(originals), repairs)


_UNPARSED_SCHEMA = {"_pos": pl.Int64(), "_sub": pl.Int64(), "stage": pl.String(), "reason": pl.String(),
                    "detail": pl.String()}


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


@dataclass
class Shard:
    """One work unit (a file, or a whole dataset) after every per-record stage: ingest, validate, normalize,
    language, quality and PII. Shards are independent of each other; the global stages start from their union."""

    source: str
    formats: set[str]
    n_input: int
    kept: pl.DataFrame  # OUTPUT_SCHEMA
    rejected: pl.DataFrame  # QUARANTINE_SCHEMA
    repairs: Counter[tuple[str, str]]
    pii: Counter[str]


def filter_records(records: pl.DataFrame, unit: WorkUnit,
                   detections: language.DetectionCache | None = None,
                   ) -> tuple[pl.DataFrame, pl.DataFrame, Counter[str]]:
    """Language, quality and PII over a unit's validated records: (kept, quarantined rows, PII found by type)."""
    spec, name = unit.spec, unit.source.spec.name
    wanted = unit.source.spec.languages if unit.source.spec.languages is not None else spec.filters.languages
    languages = language.language_filter(records, {name: wanted}, detections)
    qualities = quality.quality_filter(languages.kept, spec.quality)
    found = pii.find_pii(qualities.kept, spec.pii)
    rejected = pl.concat([with_originals(languages.rejected, records),
                          with_originals(pl.concat([qualities.rejected, found.rejected]), languages.kept)])
    return found.kept.select(OUTPUT_COLUMNS), rejected, Counter(found.stats)


def shard(unit: WorkUnit, results: list[ChunkResult], detections: language.DetectionCache | None = None) -> Shard:
    """A unit's chunk results (from ``process_unit``) through the record filters."""
    name = unit.source.spec.name
    validated = pl.concat([r.kept for r in results]) if results else pl.DataFrame(schema=RECORD_SCHEMA)
    kept, rejected, pii_found = filter_records(validated, unit, detections)
    repairs: Counter[tuple[str, str]] = Counter()
    for result in results:
        repairs.update(result.repairs)
    rejected = pl.concat([pl.DataFrame(schema=QUARANTINE_SCHEMA), *(r.rejected for r in results), rejected])
    if unit.spec.pii.redact_rejected:  # here, so no stage file of a flow holds the PII either
        rejected = pii.redact_rejected(rejected, unit.spec.pii)
    return Shard(source=name, formats={r.format for r in results}, n_input=sum(r.n_input for r in results),
                 kept=kept, rejected=rejected, repairs=repairs, pii=pii_found)


def shard_unit(unit: WorkUnit) -> Shard:
    """Every per-record stage over one unit: the task that flows/ maps over the input."""
    return shard(unit, process_unit(unit))


def build_records(folder: Path, columns: Iterable[str]) -> pl.DataFrame:
    """An earlier build's kept records, train then eval, as written to its output folder."""
    return pl.concat([chat_format.read_records(paths, columns)
                      for split in ("train", "eval") if (paths := split_files.paths(folder, split))])


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
            "instruction": [r.get("instruction") if isinstance(r.get("instruction"), str) else ""
                            for r in adapted.records],
            "input": [r.get("input") if isinstance(r.get("input"), str) else "" for r in adapted.records],
        }, schema={"_pos": pl.Int64, "_sub": pl.Int64, "instruction": pl.String, "input": pl.String})
        frames.append(ingest.assign_ids(frame, chunk).select("id", "instruction", "input"))
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
