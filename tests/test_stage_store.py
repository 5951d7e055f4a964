"""The flow's stage store: a task's output goes to files and comes back equal, its handle stays small."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from flows import stage_store
from pipeline import build
from pipeline.config import load_mix
from tests.conftest import write_jsonl


def test_a_shard_round_trips_and_its_handle_holds_no_records(tmp_path: Path, write_mix) -> None:
    write_jsonl(tmp_path / "a.jsonl", [{"instruction": f"Explain fact number {k} about {k * 17}.", "input": "",
                                        "output": f"Fact {k}: {k * 31} is odd."} for k in range(199)]
                + [{"instruction": "", "output": "x"}])
    mix = load_mix(write_mix({"name": "t", "sources": [{"name": "a", "path": "a.jsonl"}]}))
    shard = build.shard_unit(build.work_units(mix)[0])
    assert shard.kept.height == 199 and shard.rejected.height == 1

    handle = stage_store.put(shard, tmp_path / "stages" / "key")
    assert stage_store.complete(Path(handle.folder)) and len(pickle.dumps(handle)) < 2_000
    back = stage_store.get(handle)
    assert back.kept.equals(shard.kept) and back.rejected.equals(shard.rejected)
    assert back.kept.schema == shard.kept.schema == pl.Schema(build.OUTPUT_SCHEMA)
    assert (back.source, back.n_input, back.repairs, back.pii) == ("a", 200, shard.repairs, shard.pii)

    lean = stage_store.get(handle, without=("kept",))  # what the report reads: the schema, not the records
    assert lean.kept.height == 0 and lean.kept.schema == shard.kept.schema and lean.rejected.height == 1


def test_nested_values_replace_and_prune(tmp_path: Path) -> None:
    frame = pl.DataFrame({"id": ["a", "b"], "n": [1, 2]})
    value = (frame, {"rows": frame.head(1), "count": Counter(x=2)}, [frame.tail(1)], None)
    root = tmp_path / "stages"
    folder = stage_store.folder_for(root, "demo", "k1")
    first = stage_store.put(value, folder)
    second = stage_store.put(value, folder)  # a refreshed cache: the same key again replaces the folder
    got = stage_store.get(second)
    assert got[0].equals(frame) and got[1]["rows"].equals(frame.head(1)) and got[1]["count"] == Counter(x=2)
    assert got[2][0].equals(frame.tail(1)) and got[3] is None and first.folder == second.folder
    assert sorted(p.name for p in (root / "demo").iterdir()) == ["k1"]  # no temporary folders left behind

    other = stage_store.put(frame, stage_store.folder_for(root, "demo", None))
    assert Path(other.folder).name.startswith("run-")
    stage_store.prune(root, "demo", ["k1", None])
    assert sorted(p.name for p in (root / "demo").iterdir()) == ["k1"]
    stage_store.remove(second)
    with pytest.raises(FileNotFoundError, match="missing; run the build again"):
        stage_store.get(second)


def test_output_bytes_do_not_depend_on_how_frames_are_chunked(tmp_path: Path) -> None:
    """A frame read back from a stage file is one chunk; the same frame computed in memory is several. The
    outputs must be the same bytes either way (polars' own Parquet writer paged nested columns by chunk)."""
    from pipeline.io import writers

    whole = pl.DataFrame({
        "id": [f"r{k}" for k in range(250_000)],
        "history": [[{"user": str(k), "assistant": "b" * (k % 7)}] if k % 3 else None for k in range(250_000)],
        "input_ids": [[k, k + 1, k % 5] for k in range(250_000)],
    })
    pieces = pl.concat([whole.slice(0, 12_345), whole.slice(12_345, 100_000), whole.slice(112_345)], rechunk=False)
    assert pieces.n_chunks() == 3 and whole.n_chunks() == 1
    for name, frame in (("whole", whole), ("pieces", pieces)):
        writers.write_parquet(frame, tmp_path / f"{name}.parquet", "zstd", 1)
        writers.write_dataset_dict({"train": frame.select("id", "input_ids")}, tmp_path / name, "0" * 64)
    assert (tmp_path / "whole.parquet").read_bytes() == (tmp_path / "pieces.parquet").read_bytes()
    arrow = "train/data-00000-of-00001.arrow"
    assert (tmp_path / "whole" / arrow).read_bytes() == (tmp_path / "pieces" / arrow).read_bytes()
    assert pl.read_parquet(tmp_path / "pieces.parquet").equals(whole)
    writers.write_parquet(whole.head(0), tmp_path / "empty.parquet")
    assert pl.read_parquet(tmp_path / "empty.parquet").schema == whole.schema
