"""Read a resolved source as chunks of ``RawItem``s, file by file: JSON, JSONL, Parquet, CSV, HF datasets.

Columnar files are read in record batches and rows become plain dicts, so every format adapter sees the same
kind of row whatever the file type. A chunk never spans two files, and the reader never holds more than one
chunk of parsed rows plus the reader's own buffer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from pipeline.config import ResolvedSource
from pipeline.io.json_stream import RawItem, iter_json_items

CHUNK_RECORDS = 50_000


@dataclass(frozen=True)
class Chunk:
    """Consecutive items of one file (or dataset) of a source."""

    source: ResolvedSource
    file_key: str  # names the file in record ids ("" for a single-file source)
    display: str  # how origins name the file: a path relative to the mix folder, or the dataset
    items: list[RawItem]
    line_kind: str  # "line" for text files, "row" for columnar ones


def iter_chunks(source: ResolvedSource, root: Path, chunk_size: int = CHUNK_RECORDS) -> Iterator[Chunk]:
    """All items of a source in order, in chunks of at most ``chunk_size``."""
    if source.kind == "files":
        for path in source.files:
            file_key = path.relative_to(source.base).as_posix() if source.base else ""
            items, line_kind = _file_items(path, source.spec.lenient)
            for batch in _batched(items, chunk_size):
                yield Chunk(source, file_key, _display(path, root), batch, line_kind)
        return
    dataset = _load_dataset(source)
    label = source.spec.hub or _display(source.folder, root)  # type: ignore[arg-type]
    for batch in _batched(_dataset_items(dataset), chunk_size):
        yield Chunk(source, "", f"{label}[{source.spec.split}]", batch, "row")


def _file_items(path: Path, lenient: bool) -> tuple[Iterator[RawItem], str]:
    if path.suffix in (".json", ".jsonl"):
        return iter_json_items(path, lenient), "line"
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return _table_items(b.to_pylist() for b in pq.ParquetFile(path).iter_batches(batch_size=10_000)), "row"
    if path.suffix == ".csv":
        import polars as pl

        frame = pl.read_csv(path, infer_schema=False)  # every cell a string, as written
        return _table_items(s.to_dicts() for s in frame.iter_slices(10_000)), "row"
    raise ValueError(f"{path}: unsupported file type")


def _table_items(batches: Iterable[list[dict]]) -> Iterator[RawItem]:
    index = 0
    for rows in batches:
        for row in rows:
            yield RawItem(index, index + 1, row, None)
            index += 1


def _load_dataset(source: ResolvedSource):  # type: ignore[no-untyped-def]
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


def _dataset_items(dataset) -> Iterator[RawItem]:  # type: ignore[no-untyped-def]
    return _table_items(b.to_pylist() for b in dataset.data.to_batches(max_chunksize=10_000))


def _batched(items: Iterator[RawItem], size: int) -> Iterator[list[RawItem]]:
    while batch := list(islice(items, size)):
        yield batch


def _display(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:
        return path.as_posix()
