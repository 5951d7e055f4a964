"""tokenized/ written while it is made: each split's rows go to its Arrow file a batch at a time, so a build never
holds all its tokens (at 1M records they were ~1.8 GB held until the output was written, then mapped again to
copy them into the DatasetDict).

Contract: ``SplitWriter(path)`` takes rows of a split in order (``write``: frames of any size, ``input_ids``,
``attention_mask``, ``labels`` and, packed, ``position_ids`` and ``seq_lengths``; no string column) and writes
them with datasets' own ``ArrowWriter`` in batches of exactly ``datasets.config.DEFAULT_MAX_BATCH_SIZE`` rows,
each a fresh contiguous copy: the bytes ``Dataset.save_to_disk`` writes for the same rows (``save_to_disk``
copies a dataset in batches of that size; tests/test_token_files.py compares the two), whatever the sizes of the
frames handed in. A split may be written as several such files, its shards (``shard_path``: the tokenize
stage's shards, pipeline/token_splits.py). ``place(files, target, fingerprint)`` makes the DatasetDict folder
around them (its ``dataset_dict.json``, each split's ``state.json`` and ``dataset_info.json``, written by
``save_to_disk`` itself for the splits' empty twins with as many shards) and hard-links (else copies) each shard
in as the file ``save_to_disk`` named for it, Hub-style: ``data-00000-of-00003.arrow``; ``read`` reads a
split's rows back.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import polars as pl

from pipeline.io import writers

if TYPE_CHECKING:
    import pyarrow as pa

T = TypeVar("T")
ALIASES = {"eval": "validation"}  # LLaMA-Factory's tokenized_path evaluates on "validation" (or "validation_*")


class SplitWriter:
    """One split's Arrow file, written in fixed-size batches as its rows arrive (see the module's contract)."""

    def __init__(self, path: Path) -> None:
        import datasets

        self.path = path
        self.batch = datasets.config.DEFAULT_MAX_BATCH_SIZE
        self.rows = 0
        self._pending: list[pl.DataFrame] = []
        self._pending_rows = 0
        self._schema: pa.Schema | None = None
        self._writer: Any = None

    def write(self, rows: pl.DataFrame) -> None:
        if self._schema is None:
            self._open(rows)
        self._pending.append(rows)
        self._pending_rows += rows.height
        if self._pending_rows >= self.batch:
            self._flush(final=False)

    def close(self, empty: pl.DataFrame) -> int:
        """Write what is left and close the file; ``empty`` gives the columns of a split that got no rows."""
        if self._schema is None:
            self._open(empty)
        self._flush(final=True)
        self._writer.finalize()
        self._writer.close()
        return self.rows

    def _open(self, rows: pl.DataFrame) -> None:
        import pyarrow as pa
        from datasets import Features
        from datasets.arrow_writer import ArrowWriter

        self._schema = pa.schema([pa.field(f.name, plain(f.type)) for f in rows.head(0).to_arrow().schema])
        self._writer = ArrowWriter(features=Features.from_arrow_schema(self._schema), path=str(self.path),
                                   embed_local_files=True)

    def _flush(self, final: bool) -> None:
        frame = pl.concat(self._pending, rechunk=False) if self._pending else pl.DataFrame()
        whole = frame.height if final else frame.height - frame.height % self.batch
        for table in writers.contiguous_batches(frame.slice(0, whole), self.batch, self._schema):
            self._writer.write_table(table)
        self.rows += whole
        rest = frame.slice(whole)
        self._pending = [rest] if rest.height else []
        self._pending_rows = rest.height


def plain(arrow_type: pa.DataType) -> pa.DataType:
    """The Arrow type trainers expect: large strings and lists (polars' own) as plain ones."""
    import pyarrow as pa

    if pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return pa.string()
    if pa.types.is_large_list(arrow_type) or pa.types.is_list(arrow_type):
        return pa.list_(plain(arrow_type.value_type))
    return arrow_type


def shard_path(folder: Path, split: str, number: int) -> Path:
    """Where the tokenize stage writes shard ``number`` of ``split`` (``place`` gives it its Hub-style name)."""
    return folder / f"{split}-{number:05d}.arrow"


def shard_paths(folder: Path, split: str) -> list[Path]:
    """The shards of ``split`` in ``folder``, in order."""
    return sorted(folder.glob(f"{split}-[0-9][0-9][0-9][0-9][0-9].arrow"))


def place(files: Mapping[str, Sequence[Path]], target: Path, fingerprint: str) -> None:
    """The DatasetDict folder ``target`` of the split files ``files`` (by split name, each split's shards in
    order, at least one; ``eval`` also serves as ``validation`` unless that is given), which
    ``datasets.load_from_disk`` reads."""
    import datasets
    import orjson
    from datasets.table import MemoryMappedTable

    datasets.disable_progress_bars()
    splits = with_aliases(files)
    twins = {}
    for name, paths in splits.items():
        empty = MemoryMappedTable.from_file(str(paths[0])).slice(0, 0)  # the schema and its features, no rows read
        twins[name] = datasets.Dataset(empty, fingerprint=f"{fingerprint[:16]}-{name}")
    datasets.DatasetDict(twins).save_to_disk(str(target), num_shards={name: len(splits[name]) for name in twins})
    for name, paths in splits.items():
        state = orjson.loads((target / name / "state.json").read_bytes())
        for path, data_file in zip(paths, state["_data_files"], strict=True):
            _link(path, target / name / data_file["filename"])


def with_aliases(splits: Mapping[str, T]) -> dict[str, T]:
    """``splits`` and, for each split with an alias not among them, the alias (``validation``: eval's rows)."""
    return dict(splits) | {alias: splits[name] for name, alias in ALIASES.items() if name in splits
                           and alias not in splits}


def _link(source: Path, destination: Path) -> None:
    """``destination`` as a hard link to ``source`` (no copy: the flow's stage folder keeps its own), or a copy
    where links cannot be made (another file system)."""
    destination.unlink(missing_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


def read(path: Path) -> pl.DataFrame:
    """The rows of a split file that ``SplitWriter`` wrote (an Arrow stream)."""
    return pl.read_ipc_stream(path)
