"""Write a build's files deterministically: Parquet with fixed settings, JSON with sorted keys, Arrow batches of
a fixed size copied contiguously (tokenized/, token_files.py), so the same frames give the same bytes. (The
folder they go into, and how it replaces the previous build, is ``output_folder``'s.)
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import polars as pl

if TYPE_CHECKING:
    import pyarrow as pa

ROW_GROUP = 100_000
PYARROW_CODECS = {"uncompressed": "none"}  # mix.yaml's names (polars') where pyarrow's differ


def write_parquet(frame: pl.DataFrame, path: Path, compression: str = "zstd", level: int | None = None,
                  statistics: bool = True, columns: Callable[[pl.DataFrame], pl.DataFrame] | None = None) -> None:
    """One row group per ``ROW_GROUP`` rows, each written from one contiguous copy of its rows, so the bytes
    depend on the rows alone, never on how the frame happens to be chunked in memory (the same train split
    computed in this process or read back from the flow's stage files is chunked differently, and Parquet
    pages follow chunks). Only one row group's rows are copied at a time, and ``columns`` (the file's columns
    made from the frame's, e.g. train.parquet's ``messages``) is applied one row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    codec = PYARROW_CODECS.get(compression, compression)
    if codec == "none" or not pa.Codec.supports_compression_level(codec):
        level = None  # mix.yaml's compression_level applies to the codecs that have levels (zstd)
    shape = columns or (lambda rows: rows)
    schema = shape(frame.head(0)).to_arrow().schema
    with pq.ParquetWriter(path, schema, compression=codec, compression_level=level,
                          write_statistics=statistics) as writer:
        for start in range(0, frame.height, ROW_GROUP):
            for table in contiguous_batches(shape(frame.slice(start, ROW_GROUP)), ROW_GROUP, schema):
                writer.write_table(table, row_group_size=ROW_GROUP)


def write_json(data: Any, path: Path) -> None:
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


def sha256_file(path: Path) -> str:
    # read in blocks, not hashlib.file_digest: that is Python 3.11+, and the project supports 3.10
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def input_sha256(path: Path) -> str:
    """``sha256_file`` of an input, computed once per process while its size, mtime and inode stay the same: a
    flow build reads every input's digest for its cache keys (in the CLI's unchanged-output check, then in the
    flow) and for the manifest, and hashing a large corpus thrice cost more than its per-record stages."""
    stat = path.stat()
    return _input_digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)


@functools.lru_cache(maxsize=1 << 16)
def _input_digest(path: str, size: int, mtime_ns: int, inode: int) -> str:
    return sha256_file(Path(path))


RECORD_IDS = "record_ids.parquet"  # in tokenized/, beside the splits: (split, row) -> the record ids of that row
def record_ids(splits: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """``split``, ``row`` (its index in that split) and ``id``: one line per example of every split, in row order,
    and within a packed row in the order of its ``seq_lengths``, so a row's ids are its lines in order."""
    parts = [pl.DataFrame(schema={"split": pl.String(), "row": pl.Int64(), "id": pl.String()})]
    for name, frame in splits.items():
        row = pl.int_range(pl.len(), dtype=pl.Int64).alias("row")
        if "ids" in frame.columns:
            part = frame.select(row, pl.col("ids").alias("id")).explode("id")
        elif "id" in frame.columns:
            part = frame.select(row, "id")
        else:
            continue
        parts.append(part.select(pl.lit(name, dtype=pl.String()).alias("split"), "row", pl.col("id").cast(pl.String)))
    return pl.concat(parts)


def contiguous_batches(frame: pl.DataFrame, rows: int, schema: pa.Schema) -> Iterator[pa.Table]:
    """Arrow tables of ``rows`` rows each (the last shorter) cast to ``schema``, every column a fresh contiguous
    copy (``concat_arrays`` copies even a single chunk), one batch at a time: what a writer gets then depends on
    the rows alone, not on how the frame's arrays are chunked, sliced or shared (Parquet pages follow chunks;
    Arrow's IPC writer lays out a slice of a larger list array differently from a contiguous one)."""
    import pyarrow as pa

    for start in range(0, frame.height, rows):
        batch = frame.slice(start, rows).to_arrow().cast(schema)
        yield pa.table([pa.concat_arrays(column.chunks) for column in batch.columns], schema=schema)
