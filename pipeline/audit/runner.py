"""`pipeline audit`, the whole audit: read (``reading``), measure (``measures``), judge (``rules``), write.

Contract: ``run(paths, tokenizer, progress, root, columns)`` is ``measure`` and then the verdicts, as an
``AuditReport``; ``measure`` reads the files (with ``columns``, as ``reading.resolve``) and runs every
measurement (tokenizing in a thread beside the rest) into a ``Measured``; ``write(report, folder, formats)``
writes audit.html / audit.md / audit.json (``FORMATS``) into the folder and returns the paths written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl

from pipeline import language, normalize
from pipeline.audit.measures import (
    INSTRUCTION_DEDUP,
    RECORD_DEDUP,
    Measured,
    content_hits,
    duplicate_view,
    field_stats,
    input_values,
    pii_hits,
    quality_hits,
    rule_count,
    token_lengths,
)
from pipeline.audit.reading import AuditSource, Progress, Readout, audit_spec, read, resolve
from pipeline.audit.rules import findings, verdicts
from pipeline.io import writers
from pipeline.report import html, markdown, profile
from schemas.audit import AuditFile, AuditReport, DuplicateView
from schemas.mix import NormalizeSpec
from schemas.report import DatasetProfile, RuleCount


def _measure_records(records: pl.DataFrame, priority: list[str], stage: Callable[[str], None]) -> tuple[
        pl.DataFrame, dict[str, RuleCount], dict[str, RuleCount], tuple[DuplicateView, pl.DataFrame],
        tuple[DuplicateView, pl.DataFrame]]:
    """Language (added as ``lang``), quality and PII hits, and both duplicate views of the readable records."""
    found = language.detect_cached(records.select(
        pl.concat_str([pl.col("instruction"), pl.col("output")], separator="\n")).to_series())
    records = records.with_columns(found["lang"], found["lang_score"])
    stage("quality, PII")
    quality_found, pii_found = quality_hits(records), pii_hits(records)
    stage("duplicates")
    by_record = duplicate_view(records, RECORD_DEDUP, priority)
    by_instruction = duplicate_view(records.with_columns(pl.lit("").alias("input"), pl.lit("").alias("output")),
                                    INSTRUCTION_DEDUP, priority)
    return records, quality_found, pii_found, by_record, by_instruction


def run(paths: Sequence[str], tokenizer: Any = None, progress: Progress | None = None,
        root: Path | None = None, columns: Mapping[str, str] | None = None) -> AuditReport:
    """Audit the datasets at ``paths`` (relative to ``root``, the working folder by default), each file read with
    ``columns`` (canonical field -> key, as ``resolve``); ``tokenizer`` (the LLaMA-2 tokenizer) gives the token
    lengths, which are left out without it."""
    measured = measure(paths, tokenizer, progress, root or Path.cwd(), columns)
    report = measured.report
    report.verdicts = verdicts(findings(measured), report.totals["items"])
    return report


def measure(paths: Sequence[str], tokenizer: Any, progress: Progress | None, root: Path,
            columns: Mapping[str, str] | None = None) -> Measured:
    """Every measurement of the audit: read, then language, quality, PII, duplicates, tokens and the profile."""
    sources = resolve(paths, root, columns)
    readout = read(sources, audit_spec(sources), root, progress)
    stage: Callable[[str], None] = progress.stage if progress else (lambda _: None)
    records, rejected = readout.records, readout.rejected
    inputs = input_values(records, rejected)
    placeholder = normalize.placeholder_mask(inputs["input"], NormalizeSpec().placeholder_inputs)
    inputs = inputs.with_columns(placeholder=placeholder, empty=(inputs["input"] == "") & ~placeholder)
    records = records.with_columns(  # what a build's normalize does with them
        pl.when(placeholder.head(records.height)).then(pl.lit("")).otherwise(pl.col("input")).alias("input"))
    repairs = Counter({fix: n for (_, fix), n in readout.repairs.items()})
    repairs["placeholder_input"] += int(placeholder.sum())

    # Tokenizing is the longest step, and the tokenizer's Rust code runs without the GIL: in a thread beside
    # language detection, the rules and dedup it keeps a second core busy (34 s instead of 45 s for alpaca-en).
    with ThreadPoolExecutor(max_workers=1) as background:
        tokens_future = background.submit(token_lengths, records, tokenizer) if tokenizer is not None else None
        stage("language, tokens" if tokens_future else "language")
        measured = _measure_records(records, [s.source.spec.name for s in sources], stage)
        stage("tokens")
        tokens = tokens_future.result() if tokens_future else None
    records, quality_found, pii_found, (record_view, record_dups), (instruction_view, instruction_dups) = measured
    stage("profile")
    note = ("LLaMA-2 tokens of each record as an Alpaca-template training example (BOS, prompt, answer, EOS), "
            "uncut" if tokens is not None else "no tokenizer: token lengths left out")
    dataset = profile.dataset_profile(records, tokens, note)
    files = audit_files(sources, readout, records, inputs, dataset, record_dups)
    schema_problems = {reason: rule_count(group["id"]) for (reason,), group in
                       rejected.sort("reason").group_by("reason", maintain_order=True)}
    report = AuditReport(
        paths=list(paths), tokenizer=getattr(tokenizer, "name_or_path", None) if tokenizer is not None else None,
        totals={"files": len(files), "items": sum(readout.items.values()), "records": records.height,
                "rejected": rejected.height, "exact_duplicates": record_view.exact,
                "near_duplicates": record_view.near, "cross_file_duplicates": record_view.cross_file},
        verdicts=[], files=files, schema_problems=schema_problems, repairs=dict(sorted(repairs.items())),
        fields=field_stats(records, rejected, inputs, repairs),
        duplicates=record_view, instruction_duplicates=instruction_view, quality=quality_found, pii=pii_found,
        content=content_hits(records, tokens), profile=dataset,
    )
    return Measured(report, records, record_dups, instruction_dups, rejected)


def audit_files(sources: Sequence[AuditSource], readout: Readout, records: pl.DataFrame, inputs: pl.DataFrame,
                dataset: DatasetProfile, record_dups: pl.DataFrame) -> list[AuditFile]:
    """What each file holds and what is wrong with it, in the order read."""
    def per_source(frame: pl.DataFrame) -> dict[str, int]:
        return dict(frame.group_by("source").len().iter_rows())

    readable, duplicated = per_source(records), per_source(record_dups)
    languages = {mix.key: mix.languages for mix in dataset.languages_by_source}
    rejects: dict[str, dict[str, int]] = {}
    for source, reason, n in readout.rejected.group_by("source", "reason").len().sort("reason").iter_rows():
        rejects.setdefault(source, {})[reason] = n
    repairs: dict[str, Counter[str]] = {s.source.spec.name: Counter() for s in sources}
    for (source, fix), n in readout.repairs.items():
        repairs[source][fix] += n
    for source, n in per_source(inputs.filter("placeholder")).items():
        repairs[source]["placeholder_input"] += n
    return [AuditFile(
        file=s.file, dataset=s.dataset, source=(name := s.source.spec.name),
        format="+".join(sorted(readout.formats[name])) or "none", items=readout.items[name],
        records=readable.get(name, 0), rejected=rejects.get(name, {}), repairs=dict(sorted(repairs[name].items())),
        problem=readout.problems.get(name), languages=languages.get(name, {}), duplicates=duplicated.get(name, 0),
    ) for s in sources]


FORMATS = ("html", "md", "json")


def write(report: AuditReport, folder: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """audit.html / audit.md / audit.json into ``folder`` (created); the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    renderers: dict[str, Callable[[Path], object]] = {  # what a renderer returns is not used
        "html": lambda path: path.write_text(html.render(report), encoding="utf-8"),
        "md": lambda path: path.write_text(markdown.render(report), encoding="utf-8"),
        "json": lambda path: writers.write_json(report.model_dump(mode="json"), path),
    }
    written = []
    for fmt in dict.fromkeys(formats):
        path = folder / f"audit.{fmt}"
        renderers[fmt](path)
        written.append(path)
    return written
