"""Write a build's output folder atomically and deterministically.

Everything goes to a hidden temporary folder beside the target, and only a complete folder is renamed into
place, so a crash leaves either the previous build or nothing, never a half-build that looks complete.
Parquet files are written with fixed settings, JSON with sorted keys: the same frames give the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import polars as pl


@contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces ``target``, on failure it is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def write_parquet(frame: pl.DataFrame, path: Path, compression: str = "zstd", level: int | None = None) -> None:
    frame.write_parquet(path, compression=compression, compression_level=level,  # type: ignore[arg-type]
                        statistics=True, row_group_size=100_000)


def write_json(data: Any, path: Path) -> None:
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def write_dataset_dict(splits: dict[str, pl.DataFrame], path: Path, fingerprint: str) -> None:
    """Save the splits as an HF ``DatasetDict`` (``datasets.load_from_disk`` reads it). Fingerprints are fixed
    (from the spec hash) and lists and strings use the plain Arrow types trainers expect, so the same frames
    give the same bytes."""
    import datasets
    import pyarrow as pa
    from datasets.table import InMemoryTable

    datasets.disable_progress_bars()
    built = {}
    for name, frame in splits.items():
        table = frame.to_arrow()
        table = table.cast(pa.schema([pa.field(f.name, _plain(f.type)) for f in table.schema]))
        built[name] = datasets.Dataset(InMemoryTable(table), fingerprint=f"{fingerprint[:16]}-{name}")
    # one shard per split: with none, an empty split is written without a file and cannot be loaded back
    datasets.DatasetDict(built).save_to_disk(str(path), num_shards={name: 1 for name in built})


def _plain(arrow_type):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    if pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return pa.string()
    if pa.types.is_large_list(arrow_type) or pa.types.is_list(arrow_type):
        return pa.list_(_plain(arrow_type.value_type))
    return arrow_type
