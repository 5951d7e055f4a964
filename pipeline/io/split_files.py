"""The files that hold a build's train and eval records: ``<split>.parquet``, or with ``output.shard_rows``
Hub-style shards ``<split>-00000-of-00003.parquet`` of that many rows each (the last one fewer), in row order,
at least one file per split even when it is empty (as ``datasets``' ``push_to_hub`` names them).

Contract: ``shards(split, rows, shard_rows)`` -> the files a split of ``rows`` rows is written as;
``paths(folder, split)`` -> the files of ``split`` in a build folder, in row order, whichever layout it has
(none: the split was never written); ``pattern(split, shard_rows)`` -> those files as a dataset card's
``data_files`` glob.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SplitShard:
    split: str  # train or eval
    name: str  # the file's name in the build folder
    start: int  # its first row in the split
    rows: int


def shards(split: str, rows: int, shard_rows: int | None) -> list[SplitShard]:
    if shard_rows is None:
        return [SplitShard(split, f"{split}.parquet", 0, rows)]
    count = max(1, -(-rows // shard_rows))
    return [SplitShard(split, f"{split}-{k:05d}-of-{count:05d}.parquet", k * shard_rows,
                       min(shard_rows, rows - k * shard_rows)) for k in range(count)]


def paths(folder: Path, split: str) -> list[Path]:
    single = folder / f"{split}.parquet"
    if single.is_file():
        return [single]
    found = [(int(path.name[len(split) + 1:].split("-", 1)[0]), path)
             for path in folder.glob(f"{split}-[0-9]*-of-[0-9]*.parquet")]
    return [path for _, path in sorted(found)]


def pattern(split: str, shard_rows: int | None) -> str:
    return f"{split}.parquet" if shard_rows is None else f"{split}-*.parquet"
