"""Small files in bulk: work units of many files, and their chunks read as one (issue #16).

Every work unit costs a fixed amount whatever its size (a pass of the record filters, a lookup in the language
cache, a task of the flow), and so does every chunk (a dozen polars operations from ingest to the content
checks). Ten thousand one-record files were ten thousand of each; here consecutive small files share a unit
(``file_groups``), and a unit's chunks of the same format are read as one (``merge``), with each record's id
and origin still those of its own file (``assign_ids``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import xxhash

from pipeline import ingest
from pipeline.io.json_stream import ItemBatch
from pipeline.io.readers import CHUNK_RECORDS, Chunk

SMALL_FILE_BYTES = 1 << 20  # a file under this size may share its unit with its neighbours
UNIT_BYTES = 8 << 20  # the most bytes of small files in one unit
UNIT_CUT = 64  # a unit of small files also ends after a file whose name hashes to 0 modulo this
FEW_FILES = 64  # a source of at most this many files keeps one unit per file


def file_groups(files: tuple[Path, ...], base: Path | None) -> list[tuple[Path, ...]]:
    """``files`` in order, cut into work units: a file of ``SMALL_FILE_BYTES`` or more alone, smaller ones in
    runs of about ``UNIT_CUT`` files and at most ``UNIT_BYTES``. A run is cut after a file whose name hashes to
    0 modulo ``UNIT_CUT`` (not at fixed counts), so adding or removing a file changes only its own unit (and,
    where a size cut moves, the units up to the next name cut): the flow's other cached units stay valid. A
    source of at most ``FEW_FILES`` files has one unit per file (what it has to lose in per-unit costs is
    small), so crossing that count regroups the source once."""
    if len(files) <= FEW_FILES:
        return [(path,) for path in files]
    groups: list[tuple[Path, ...]] = []
    group: list[Path] = []
    size = 0
    for path in files:
        n = path.stat().st_size
        if group and (n >= SMALL_FILE_BYTES or size + n > UNIT_BYTES):
            groups.append(tuple(group))
            group, size = [], 0
        group.append(path)
        size += n
        name = path.relative_to(base).as_posix() if base else path.name
        if n >= SMALL_FILE_BYTES or xxhash.xxh3_64_intdigest(name.encode()) % UNIT_CUT == 0:
            groups.append(tuple(group))
            group, size = [], 0
    return groups + [tuple(group)] if group else groups


@dataclass
class Merged:
    """Consecutive chunks read as one: ``chunk`` holds their items in order, part k's from ``starts[k]`` on."""

    chunk: Chunk
    parts: list[Chunk]
    starts: np.ndarray


def merge(chunks: Iterable[Chunk], limit: int = CHUNK_RECORDS) -> Iterator[Merged]:
    """Runs of consecutive chunks of one format (the source's, or the one each chunk's first row shows), of at
    most ``limit`` items in all, each as one ``Merged``. A chunk without a parsed item stays alone (its format
    is only a default)."""
    run: list[Chunk] = []
    run_format = ""
    for chunk in chunks:
        fmt = ingest.chunk_format(chunk) if any(v is not None for v in chunk.batch.values) else ""
        if run and (not fmt or fmt != run_format or sum(len(c.batch) for c in run) + len(chunk.batch) > limit):
            yield _merged(run)
            run = []
        run.append(chunk)
        run_format = fmt
        if not fmt:
            yield _merged(run)
            run = []
    if run:
        yield _merged(run)


def _merged(parts: list[Chunk]) -> Merged:
    if len(parts) == 1:
        return Merged(parts[0], parts, np.zeros(1, dtype=np.int64))
    batch = ItemBatch(0)
    starts = np.zeros(len(parts), dtype=np.int64)
    for k, part in enumerate(parts):
        starts[k] = len(batch.values)
        batch.bad.update({starts[k] + pos: bad for pos, bad in part.batch.bad.items()})
        batch.values.extend(part.batch.values)
        batch.lines.extend(part.batch.lines)
    first = parts[0]
    return Merged(Chunk(first.source, first.file_key, first.display, batch, first.line_kind), parts, starts)


def assign_ids(frame: pl.DataFrame, merged: Merged) -> pl.DataFrame:
    """``ingest.assign_ids`` of rows of the merged chunk (``_pos`` in it): each row gets the id and origin its own
    file gives it, in the order given, ``_pos`` unchanged."""
    if len(merged.parts) == 1:
        return ingest.assign_ids(frame, merged.chunk)
    part = np.searchsorted(merged.starts, frame["_pos"].to_numpy(), side="right") - 1
    frame = frame.with_columns(_row=pl.int_range(pl.len()), _part=pl.Series(part))
    pieces = []
    for piece in frame.partition_by("_part", maintain_order=True, include_key=False):
        k = int(part[piece["_row"][0]])
        start = int(merged.starts[k])
        identified = ingest.assign_ids(piece.with_columns(pl.col("_pos") - start), merged.parts[k])
        pieces.append(identified.with_columns(pl.col("_pos") + start))
    if not pieces:
        return ingest.assign_ids(frame.drop("_row", "_part"), merged.parts[0])
    return pl.concat(pieces).sort("_row").drop("_row")
