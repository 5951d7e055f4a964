"""tokenized/ streamed to disk (pipeline/io/token_files.py) is the folder datasets' own save_to_disk writes for the
same rows, byte for byte, however the rows arrive."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest

from pipeline.io import token_files


def _rows(n: int, seed: int = 0) -> pl.DataFrame:
    rng = random.Random(seed)
    ids = pl.Series("input_ids", [[rng.randrange(32_000) for _ in range(rng.randrange(1, 300))] for _ in range(n)],
                    dtype=pl.List(pl.Int32))
    return pl.DataFrame([ids]).with_columns(
        attention_mask=pl.lit(1, dtype=pl.Int8).repeat_by(pl.col("input_ids").list.len()),
        labels=pl.col("input_ids").list.eval(pl.when(pl.element() % 3 == 0).then(-100).otherwise(pl.element())),
    )


def _save_to_disk(splits: dict[str, pl.DataFrame], target: Path, fingerprint: str, train_shards: int = 1) -> None:
    """datasets' save_to_disk of the same rows (eval also as validation), each split staged first as an Arrow file
    of contiguous batches of save_to_disk's size (the writer of the builds before tokenized/ was streamed; a
    slice of one large table is laid out differently by Arrow's IPC writer)."""
    import datasets
    import pyarrow as pa
    from datasets.table import MemoryMappedTable

    from pipeline.io import writers

    built = {}
    for name, frame in splits.items():
        schema = pa.schema([pa.field(f.name, token_files.plain(f.type)) for f in frame.head(0).to_arrow().schema])
        staged = target.parent / f"{target.name}-{name}.arrow"
        with pa.OSFile(str(staged), "wb") as sink, pa.ipc.new_stream(sink, schema) as stream:
            for table in writers.contiguous_batches(frame, datasets.config.DEFAULT_MAX_BATCH_SIZE, schema):
                stream.write_table(table)
        table = MemoryMappedTable.from_file(str(staged))
        built[name] = datasets.Dataset(table, fingerprint=f"{fingerprint[:16]}-{name}")
    built["validation"] = datasets.Dataset(built["eval"].data, fingerprint=f"{fingerprint[:16]}-validation")
    datasets.DatasetDict(built).save_to_disk(str(target), num_shards={name: 1 for name in built} | {
        "train": train_shards})


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("pieces", [[2_500], [1, 999, 1, 1_499], [700] * 3 + [400], [2_000, 500]])
def test_streamed_splits_are_the_bytes_save_to_disk_writes(tmp_path: Path, pieces: list[int]) -> None:
    train, eval_ = _rows(sum(pieces)), _rows(7, seed=1)
    _save_to_disk({"train": train, "eval": eval_}, tmp_path / "reference", "f" * 64)

    files = {}
    for name, frame, sizes in (("train", train, pieces), ("eval", eval_, [7])):
        writer = token_files.SplitWriter(tmp_path / f"{name}.arrow")
        start = 0
        for size in sizes:
            writer.write(frame.slice(start, size))
            start += size
        assert writer.close(frame.head(0)) == frame.height
        files[name] = [tmp_path / f"{name}.arrow"]
    token_files.place(files, tmp_path / "streamed", "f" * 64)

    assert _files(tmp_path / "streamed") == _files(tmp_path / "reference")
    assert token_files.read(files["train"][0]).equals(train)


def test_a_split_without_rows_is_written_and_loads(tmp_path: Path) -> None:
    from datasets import load_from_disk

    writer = token_files.SplitWriter(tmp_path / "eval.arrow")
    assert writer.close(_rows(3).head(0)) == 0
    train = token_files.SplitWriter(tmp_path / "train.arrow")
    train.write(_rows(3))
    train.close(_rows(0))
    token_files.place({"train": [tmp_path / "train.arrow"], "eval": [tmp_path / "eval.arrow"]}, tmp_path / "out",
                      "0" * 64)
    loaded = load_from_disk(str(tmp_path / "out"))
    assert (loaded["train"].num_rows, loaded["eval"].num_rows, loaded["validation"].num_rows) == (3, 0, 0)
    assert loaded["eval"].column_names == ["input_ids", "attention_mask", "labels"]


def test_a_split_in_shards_is_the_folder_save_to_disk_writes_with_as_many_shards(tmp_path: Path) -> None:
    """Shards of save_to_disk's contiguous sizes (2,500 rows in 3: 834, 833, 833) give its JSON files and its
    rows; the data files differ in the padding after a buffer only (save_to_disk writes a slice of its table, with
    the bytes that follow the slice as padding)."""
    from datasets import load_from_disk

    train, eval_ = _rows(2_500), _rows(7, seed=1)
    _save_to_disk({"train": train, "eval": eval_}, tmp_path / "reference", "f" * 64, train_shards=3)

    shards, start = [], 0
    for number, size in enumerate((834, 833, 833)):
        shards.append(token_files.shard_path(tmp_path, "train", number))
        writer = token_files.SplitWriter(shards[-1])
        writer.write(train.slice(start, size))
        writer.close(train.head(0))
        start += size
    writer = token_files.SplitWriter(tmp_path / "eval.arrow")
    writer.write(eval_)
    writer.close(eval_.head(0))
    assert token_files.shard_paths(tmp_path, "train") == shards
    token_files.place({"train": shards, "eval": [tmp_path / "eval.arrow"]}, tmp_path / "streamed", "f" * 64)

    streamed, reference = _files(tmp_path / "streamed"), _files(tmp_path / "reference")
    assert streamed.keys() == reference.keys()
    assert [name for name in streamed if name.startswith("train/data-")] == [
        f"train/data-0000{k}-of-00003.arrow" for k in range(3)]
    assert {k: v for k, v in streamed.items() if k.endswith(".json")} == {
        k: v for k, v in reference.items() if k.endswith(".json")}
    loaded = [load_from_disk(str(tmp_path / name)) for name in ("streamed", "reference")]
    for split in ("train", "eval", "validation"):
        assert loaded[0][split].data.table.equals(loaded[1][split].data.table)
    assert pl.concat([token_files.read(path) for path in shards]).equals(train)
