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
