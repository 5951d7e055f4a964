"""Ingest: turn a chunk of raw items into candidate records of the canonical shape, one adapter per format.

Contract: every item of the chunk yields either records or exactly one reject (``malformed_json``,
``not_an_object``, or a ``FormatError`` reason). Records and rejects point back at their item by position
(``_pos``, and ``_sub``, the instance number of a self-instruct row); ``assign_ids`` then gives them their columns
``id``, ``source``, ``task`` and ``origin`` in one vectorized step. Ids are stable for a spec:
``<source>#<n>`` for a single file, ``<source>/<file>#<n>`` for a glob or folder, ``.<k>`` appended for the
k-th instance of a self-instruct row.
"""

from __future__ import annotations

import polars as pl

from pipeline.formats import Adapted, FormatError, adapt_batch, detect_format
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


def records_from_chunk(chunk: Chunk) -> tuple[str, Adapted]:
    """The chunk's format and its adapted records and rejects."""
    fmt = chunk_format(chunk)
    return fmt, adapt_batch(fmt, chunk.batch.values, chunk.batch.bad, chunk.source.spec.columns)


def assign_ids(frame: pl.DataFrame, chunk: Chunk) -> pl.DataFrame:
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
