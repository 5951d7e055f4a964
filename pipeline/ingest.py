"""Ingest: turn a chunk of raw items into candidate records of the canonical shape, one adapter per format.

Contract: every item of the chunk yields either records or exactly one reject (``malformed_json``,
``not_an_object``, or a ``FormatError`` reason). Records and rejects point back at their item with ``_pos``
(and ``_sub``, the instance number of a self-instruct row); ``identify`` then gives them their columns
``id``, ``source``, ``task`` and ``origin`` in one vectorized step. Ids are stable for a spec:
``<source>#<n>`` for a single file, ``<source>/<file>#<n>`` for a glob or folder, ``.<k>`` appended for the
k-th instance of a self-instruct row.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from pipeline.formats import ADAPTERS, FormatError, detect_format
from pipeline.io.readers import Chunk

STAGE = "ingest"


def chunk_format(chunk: Chunk) -> str:
    """The source's format, or the one its first parsed row shows when the source says ``auto``."""
    spec = chunk.source.spec
    if spec.format != "auto":
        return spec.format
    first = next((v for v in chunk.batch.values if v is not None), None)
    try:
        return detect_format(first, spec.columns) if first is not None else "alpaca"
    except FormatError:
        return "alpaca"  # the per-row check rejects the non-objects one by one


def records_from_chunk(chunk: Chunk) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """The chunk's format, its records and its rejects."""
    fmt = chunk_format(chunk)
    adapt = ADAPTERS[fmt](chunk.source.spec.columns)
    records: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    bad = chunk.batch.bad
    for pos, value in enumerate(chunk.batch.values):
        if not isinstance(value, dict):
            if pos in bad:
                rejects.append(_reject(pos, "malformed_json", bad[pos][1]))
            else:
                rejects.append(_reject(pos, "not_an_object", f"expected a JSON object, got {type(value).__name__}"))
            continue
        try:
            mapped = adapt(value)
        except FormatError as err:
            rejects.append(_reject(pos, err.reason, err.detail))
            continue
        for record in mapped:
            record["_pos"] = pos
        records.extend(mapped)
    return fmt, records, rejects


def _reject(pos: int, reason: str, detail: str) -> dict[str, Any]:
    return {"_pos": pos, "_sub": None, "stage": STAGE, "reason": reason, "detail": detail}


def identify(frame: pl.DataFrame, chunk: Chunk) -> pl.DataFrame:
    """Add ``id``, ``source``, ``task`` and ``origin`` (file:line) from each row's ``_pos`` and ``_sub``."""
    spec = chunk.source.spec
    prefix = f"{spec.name}/{chunk.file_key}#" if chunk.file_key else f"{spec.name}#"
    where = f"{chunk.display}:" if chunk.line_kind == "line" else f"{chunk.display}:row "
    index = frame["_pos"] + chunk.batch.first_index
    line = pl.Series(chunk.batch.lines, dtype=pl.Int64).gather(frame["_pos"])
    sub = pl.col("_sub")
    return frame.with_columns(
        pl.concat_str(
            pl.lit(prefix), index.cast(pl.String),
            pl.when(sub.is_null()).then(pl.lit("")).otherwise(pl.lit(".") + sub.cast(pl.String)),
        ).alias("id"),
        pl.lit(spec.name).alias("source"),
        pl.lit(spec.task_label).alias("task"),
        (pl.lit(where) + line.cast(pl.String)).alias("origin"),
    )
