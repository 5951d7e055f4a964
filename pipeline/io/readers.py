"""Read a resolved source as chunks of items, file by file: JSON, JSONL, Parquet, CSV, HF datasets.

Columnar files are read in record batches and rows become plain dicts, so every format adapter sees the same
kind of row whatever the file type. A chunk never spans two files, and the reader never holds more than one
chunk of parsed rows plus its own buffer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from pipeline.config import ResolvedSource
from pipeline.io.json_stream import ItemBatch, iter_json_batches

if TYPE_CHECKING:
    import datasets

CHUNK_RECORDS = 50_000


@dataclass(frozen=True)
class Chunk:
    """Consecutive items of one file (or dataset) of a source."""

    source: ResolvedSource
    file_key: str  # names the file in record ids ("" for a single-file source)
    display: str  # how origins name the file: a path relative to the mix folder, or the dataset
    batch: ItemBatch
    line_kind: str  # "line" for text files, "row" for columnar ones


def iter_chunks(source: ResolvedSource, root: Path, chunk_size: int = CHUNK_RECORDS) -> Iterator[Chunk]:
    """All items of a source in order, in chunks of at most ``chunk_size``."""
    if source.kind == "files":
        for path in source.files:
            file_key = path.relative_to(source.base).as_posix() if source.base else ""
            line_kind = "line" if path.suffix in (".json", ".jsonl") else "row"
            for batch in _file_batches(path, source.spec.lenient, chunk_size):
                yield Chunk(source, file_key, display_path(path, root), batch, line_kind)
        return
    dataset = _load_dataset(source)
    # a hub source is named by its id; the only other kind read here, hf_folder, always has its folder
    label = source.spec.hub or display_path(cast(Path, source.folder), root)
    rows = (b.to_pylist() for b in dataset.data.to_batches(max_chunksize=10_000))
    for batch in _row_batches(rows, chunk_size):
        yield Chunk(source, "", f"{label}[{source.spec.split}]", batch, "row")


def _file_batches(path: Path, lenient: bool, chunk_size: int) -> Iterator[ItemBatch]:
    if path.suffix in (".json", ".jsonl"):
        return iter_json_batches(path, lenient, chunk_size)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return _row_batches((b.to_pylist() for b in pq.ParquetFile(path).iter_batches(batch_size=10_000)), chunk_size)
    if path.suffix == ".csv":
        import polars as pl

        # Every cell a string, as written; an empty cell is "" (csv.writer and pandas write "" as nothing).
        frame = pl.read_csv(path, infer_schema=False, empty_string_is_null=False)
        return _row_batches((s.to_dicts() for s in frame.iter_slices(10_000)), chunk_size)
    raise ValueError(f"{path}: unsupported file type")


def _row_batches(row_lists: Iterable[list[dict]], chunk_size: int) -> Iterator[ItemBatch]:
    batch = ItemBatch(0)
    for rows in row_lists:
        for row in rows:
            batch.values.append(row)
            batch.lines.append(batch.first_index + len(batch.values))
            if len(batch.values) == chunk_size:
                yield batch
                batch = ItemBatch(batch.first_index + chunk_size)
    if batch.values:
        yield batch


def _load_dataset(source: ResolvedSource) -> datasets.Dataset:
    import datasets

    spec = source.spec
    if source.kind == "hf_folder":
        loaded = datasets.load_from_disk(str(source.folder))
        if isinstance(loaded, datasets.DatasetDict):
            if spec.split not in loaded:
                raise ValueError(
                    f"source {spec.name}: split '{spec.split}' not in {source.folder}; it has {sorted(loaded)}"
                )
            return loaded[spec.split]
        return loaded
    return datasets.load_dataset(spec.hub, split=spec.split, revision=spec.revision)


def display_path(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:
        return path.as_posix()
