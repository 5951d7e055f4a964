"""Ingest: turn a chunk of raw items into candidate records of the canonical shape, one adapter per format.

Contract: every item of the chunk yields either records or exactly one reject (``malformed_json``,
``not_an_object``, or a ``FormatError`` reason). Records and rejects point back at their item by position
(``_pos``, and ``_sub``, the instance number of a self-instruct row); ``assign_ids`` then gives them their columns
``id``, ``source``, ``task`` and ``origin`` in one vectorized step. Ids are stable for a spec:
``<source>#<n>`` for a single file, ``<source>/<file>#<n>`` for a glob or folder, ``.<k>`` appended for the
k-th instance of a self-instruct row.

A chunk is read in one ``Layout``: its format and, under ``format: auto`` for Alpaca-like rows, the key aliases
(``formats.ALIASES``), both read off its first parsed row. Every chunk of a file is a run of that file's rows,
so a file with uniform keys is read with one mapping; chunks are merged (``file_units.merge``) only when their
``chunk_format`` keys, which name the aliases too, are equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipeline.formats import NO_ALIASES, Adapted, Aliases, FormatError, adapt_batch, detect_format, find_aliases
from pipeline.io.readers import Chunk

STAGE = "ingest"


@dataclass(frozen=True)
class Layout:
    """How a chunk's rows are read: the format, and the key aliases applied (Alpaca-like rows, format: auto)."""

    format: str
    aliases: Aliases = NO_ALIASES

    @property
    def key(self) -> str:
        """The format, then the aliases: "alpaca", "alpaca output=response", "alpaca instruction=prompt|query"."""
        return f"{self.format} {self.aliases}" if self.aliases != NO_ALIASES else self.format


def chunk_layout(chunk: Chunk) -> Layout:
    """The source's format, or the one its first parsed row shows when the source says ``auto``; under ``auto``,
    an Alpaca-like first row also decides the aliases (``formats.find_aliases``)."""
    spec = chunk.source.spec
    if spec.format != "auto":
        return Layout(spec.format)
    first = next((v for v in chunk.batch.values if v is not None), None)
    try:
        fmt = detect_format(first, spec.columns) if first is not None else "alpaca"
    except FormatError:
        return Layout("alpaca")  # the per-row check rejects the non-objects one by one
    return Layout(fmt, find_aliases(first, spec.columns) if fmt == "alpaca" and first is not None else NO_ALIASES)


def chunk_format(chunk: Chunk) -> str:
    """The chunk's ``Layout.key``: chunks with equal keys are read alike and may be merged."""
    return chunk_layout(chunk).key


def records_from_chunk(chunk: Chunk) -> tuple[str, Adapted]:
    """The chunk's format and its adapted records and rejects."""
    layout = chunk_layout(chunk)
    return layout.format, adapt_batch(layout.format, chunk.batch.values, chunk.batch.bad, chunk.source.spec.columns,
                                      layout.aliases)


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
