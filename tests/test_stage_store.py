"""The flow's stage store: a task's output goes to files and comes back equal, its handle stays small."""

from __future__ import annotations

import pickle
import random
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from flows import mapped_pages, stage_store
from pipeline.config import load_mix
from pipeline.records import OUTPUT_SCHEMA, shard_unit, work_units
from tests.conftest import write_jsonl


def test_a_shard_round_trips_and_its_handle_holds_no_records(tmp_path: Path, write_mix) -> None:
    write_jsonl(tmp_path / "a.jsonl", [{"instruction": f"Explain fact number {k} about {k * 17}.", "input": "",
                                        "output": f"Fact {k}: {k * 31} is odd."} for k in range(199)]
                + [{"instruction": "", "output": "x"}])
    mix = load_mix(write_mix({"name": "t", "sources": [{"name": "a", "path": "a.jsonl"}]}))
    shard = shard_unit(work_units(mix)[0])
    assert shard.kept.height == 199 and shard.rejected.height == 1

    handle = stage_store.put(shard, tmp_path / "stages" / "key")
    assert stage_store.complete(Path(handle.folder)) and len(pickle.dumps(handle)) < 2_000
    back = stage_store.get(handle)
    assert back.kept.equals(shard.kept) and back.rejected.equals(shard.rejected)
    assert back.kept.schema == shard.kept.schema == pl.Schema(OUTPUT_SCHEMA)
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


def test_output_bytes_do_not_depend_on_how_frames_are_laid_out(tmp_path: Path) -> None:
    """The same rows, laid out as the direct build has them (several chunks), gathered by a join, or read back
    from a stage file (one memory-mapped chunk), must give the same bytes: polars' Parquet writer paged nested
    columns by chunk, and Arrow's IPC writer lays out a slice of a larger list array differently. Both failed
    here before the writers copied each row group / batch contiguously."""
    from datasets import load_from_disk

    from pipeline.io import writers

    rng = random.Random(0)
    n = 5_000
    rows = pl.DataFrame({
        "id": [f"r{k}" for k in range(n)],
        "history": [[{"user": str(k), "assistant": "b" * (k % 7)}] if k % 3 else None for k in range(n)],
        "input_ids": [[rng.randrange(32_000) for _ in range(rng.randrange(20, 600))] for _ in range(n)],
    }, schema_overrides={"input_ids": pl.List(pl.Int32)})
    rows = rows.with_columns(attention_mask=pl.lit(1, dtype=pl.Int8).repeat_by(pl.col("input_ids").list.len()))
    _dataset_dict(rows, tmp_path / "first")
    chunked = pl.concat([rows.select("id", "history"), pl.from_arrow(  # one chunk per 1,000-row batch
        load_from_disk(str(tmp_path / "first"))["train"].data.table)],
        how="horizontal").with_columns(pl.col("input_ids").cast(pl.List(pl.Int32)),
                                       pl.col("attention_mask").cast(pl.List(pl.Int8)))
    assert chunked.n_chunks("all")[-1] == 5 and chunked.equals(rows)
    chunked.write_ipc(tmp_path / "stage.arrow", compression="uncompressed")
    layouts = {"chunked": chunked, "stage": pl.read_ipc(tmp_path / "stage.arrow"),
               "joined": chunked.select("id").join(chunked, on="id", how="left", maintain_order="left")}
    for name, frame in layouts.items():
        writers.write_parquet(frame, tmp_path / f"{name}.parquet", "zstd", 1)
        _dataset_dict(frame.select("input_ids", "attention_mask"), tmp_path / name)
    arrow = "train/data-00000-of-00001.arrow"
    for name in layouts:
        assert (tmp_path / f"{name}.parquet").read_bytes() == (tmp_path / "chunked.parquet").read_bytes(), name
        assert (tmp_path / name / arrow).read_bytes() == (tmp_path / "chunked" / arrow).read_bytes(), name
    assert pl.read_parquet(tmp_path / "stage.parquet").equals(rows)
    writers.write_parquet(rows.head(0), tmp_path / "empty.parquet")
    assert pl.read_parquet(tmp_path / "empty.parquet").schema == rows.schema


def _dataset_dict(rows: pl.DataFrame, target: Path) -> None:
    """tokenized/ as a build writes it, with one split of ``rows`` (their token columns)."""
    from pipeline.io import token_files

    staged = target.with_name(f"{target.name}.arrow")
    writer = token_files.SplitWriter(staged)
    writer.write(rows.select("input_ids", "attention_mask"))
    writer.close(rows.head(0))
    token_files.place({"train": [staged]}, target, "0" * 64)


def test_the_files_a_stage_wrote_move_into_its_folder(tmp_path: Path) -> None:
    from pipeline.stage import Outcome, no_rejects

    folder = tmp_path / "stages" / "build" / "key"
    with stage_store.scratch(folder) as scratch:
        (scratch / "tokenized").mkdir()
        (scratch / "tokenized" / "train.arrow").write_bytes(b"rows")
        handle = stage_store.put(Outcome(pl.DataFrame({"id": ["a"]}), no_rejects(), files=scratch / "tokenized"),
                                 folder)
        assert scratch.is_dir() and not (scratch / "tokenized").exists()
    assert not scratch.exists()  # the scratch folder goes with the task
    outcome = stage_store.get(handle)
    assert outcome.files == folder / stage_store.FILES
    assert (outcome.files / "train.arrow").read_bytes() == b"rows"
    assert sorted(p.name for p in folder.parent.iterdir()) == ["key"]


def test_frames_the_workers_wrote_move_in_and_read_back_as_one(tmp_path: Path) -> None:
    """A partitioned stage's workers write their parts of a frame (``write``); ``put`` moves them in by where they
    go (a field, or ``outputs/<name>``), ``get`` reads them back as their concatenation in order, ``rows`` counts
    them from the files' metadata, and ``without`` gives the schema."""
    from pipeline.stage import Outcome, no_rejects

    records = pl.DataFrame({"id": [f"r{k}" for k in range(10)], "text": [f"text {k}" * k for k in range(10)]})
    folder = tmp_path / "stages" / "build" / "key"
    with stage_store.scratch(folder) as scratch:
        kept = [stage_store.write(records.slice(start, 4), scratch / f"kept-{start}.arrow") for start in (0, 4, 8)]
        ids = [stage_store.write(records.select("id").slice(start, 5), scratch / f"ids-{start}.arrow")
               for start in (0, 5)]
        outcome = Outcome(pl.DataFrame(), no_rejects(), None, {"ids": pl.DataFrame(), "other": records.head(2)})
        handle = stage_store.put(outcome, folder, {"kept": kept, "outputs/ids": ids})
        assert not any(path.exists() for path in (*kept, *ids))  # moved, not copied
        with pytest.raises(KeyError, match="no output 'missing'"):
            stage_store.put(outcome, tmp_path / "other", {"outputs/missing": []})
    back = stage_store.get(handle)
    assert back.kept.equals(records) and back.outputs["ids"].equals(records.select("id"))
    assert back.outputs["other"].equals(records.head(2)) and back.kept.n_chunks() == 3
    assert stage_store.rows(handle, "kept") == 10
    lean = stage_store.get(handle, without=("kept",))
    assert lean.kept.height == 0 and lean.kept.schema == records.schema


def test_a_frame_passed_on_unchanged_is_linked_not_written_again(tmp_path: Path) -> None:
    """The report task's train is the tokenize stage's: ``linked`` hard-links its files, ``put`` moves the links
    in and writes no copy; removing the report's folder leaves the stage's files."""
    from pipeline.stage import Outcome, no_rejects

    records = pl.DataFrame({"id": [f"r{k}" for k in range(6)], "text": ["x" * k for k in range(6)]})
    root = tmp_path / "stages" / "build"
    with stage_store.scratch(root / "stage") as scratch:
        parts = [stage_store.write(records.slice(start, 3), scratch / f"p{start}.arrow") for start in (0, 3)]
        stage = stage_store.put(Outcome(pl.DataFrame(), no_rejects()), root / "stage", {"kept": parts})
    with stage_store.scratch(root / "report") as scratch:
        passed_on = (stage_store.get(stage).kept, records.head(2))
        report = stage_store.put(Outcome(*passed_on, None), root / "report",
                                 {"kept": stage_store.linked(stage, "kept", scratch)})
    assert stage_store.get(report).kept.equals(records)
    assert stage_store.get(report).rejected.equals(records.head(2))  # the other frames are written as before
    stage_files = [Path(stage.folder) / name for name in stage.skeleton.kept.names]
    report_files = [Path(report.folder) / name for name in report.skeleton.kept.names]
    assert [p.stat().st_ino for p in report_files] == [p.stat().st_ino for p in stage_files]
    stage_store.remove(report)
    assert stage_store.get(stage).kept.equals(records)


@pytest.mark.skipif(mapped_pages.resident_file_bytes() is None, reason="needs /proc/self/statm (Linux)")
def test_the_pages_a_mapped_frame_has_read_can_be_let_go_and_its_data_stays(tmp_path: Path) -> None:
    """A mapped file's pages, once read, count in the process's RSS (a Dask nanny restarts a worker by it);
    ``release`` drops them and the frame reads the same bytes again."""
    import numpy as np

    values = np.random.default_rng(0).random(8 << 20)  # 64 MiB
    path = stage_store.write(pl.DataFrame({"x": values}), tmp_path / "frame.arrow")
    before = _resident()
    frame = stage_store.mapped(path)
    total = frame["x"].sum()  # reads every page
    assert _resident() - before >= 48 << 20
    assert mapped_pages.release() >= 64 << 20
    assert _resident() - before < 16 << 20
    assert frame["x"].sum() == total and np.array_equal(frame["x"].to_numpy(), values)
    del frame
    assert mapped_pages.release() == 0  # the mapping went with its frame


def _resident() -> int:
    resident = mapped_pages.resident_file_bytes()
    assert resident is not None
    return resident


def test_a_stage_task_run_again_over_its_complete_folder_returns_its_handle(tmp_path: Path, write_mix,
                                                                            monkeypatch) -> None:
    """When a Dask worker dies, the results it held are recomputed: a finished stage task ran again, and since
    the flow had told it to refresh its cache (its folder was missing when it was submitted) it computed the
    whole stage a second time (a capped 3M build redid its 230-second dedup). The folder keeps its handle."""
    from flows import build_flow
    from pipeline import plan

    write_jsonl(tmp_path / "a.jsonl", [{"instruction": f"Explain fact number {k} about {k * 17}.", "input": "",
                                        "output": f"Fact {k}: {k * 31} is odd."} for k in range(30)])
    mix = load_mix(write_mix({"name": "t", "sources": [{"name": "a", "path": "a.jsonl"}]}))
    root = tmp_path / "stages" / "t"
    shard = build_flow.shard_task.fn(work_units(mix)[0], "k0", root / "k0")
    assert stage_store.finished(root / "k1") is None
    first = build_flow.stage_task.fn("dedup", [shard], None, {}, mix, None, "k1", root / "k1")
    assert stage_store.finished(root / "k1") == first

    def computed(*args: object) -> None:
        raise AssertionError("a finished stage was computed again")

    monkeypatch.setattr(plan, "run_stage", computed)
    monkeypatch.setattr(build_flow, "shard_unit", computed)
    assert build_flow.stage_task.fn("dedup", [shard], None, {}, mix, None, "k1", root / "k1") == first
    assert build_flow.shard_task.fn(work_units(mix)[0], "k0", root / "k0") == shard
    (root / "k0" / stage_store.HANDLE).write_bytes(b"not a pickle")  # another version's, say: not trusted
    assert stage_store.finished(root / "k0") is None
    stage_store.remove(first)
    with pytest.raises(AssertionError, match="computed again"):
        build_flow.stage_task.fn("dedup", [shard], None, {}, mix, None, "k1", root / "k1")
