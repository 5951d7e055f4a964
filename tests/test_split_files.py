"""Train and eval as Hub-style shards (``output.shard_rows``): the files, and every reader of a build folder."""

from __future__ import annotations

from pathlib import Path

import datasets
import polars as pl
import yaml

from pipeline import build, export, versions, writer
from pipeline.config import load_mix
from pipeline.io import split_files
from pipeline.records import build_records
from tests.conftest import write_jsonl


def test_a_split_is_cut_into_shards_of_shard_rows_named_as_the_hub_names_them(tmp_path: Path) -> None:
    cut = split_files.shards("train", 25, 10)
    assert [(s.name, s.start, s.rows) for s in cut] == [
        ("train-00000-of-00003.parquet", 0, 10), ("train-00001-of-00003.parquet", 10, 10),
        ("train-00002-of-00003.parquet", 20, 5)]
    assert [(s.name, s.rows) for s in split_files.shards("eval", 0, 10)] == [("eval-00000-of-00001.parquet", 0)]
    assert [(s.name, s.rows) for s in split_files.shards("train", 25, None)] == [("train.parquet", 25)]
    for name in ("train-00010-of-00011.parquet", "train-00002-of-00011.parquet", "eval-00000-of-00001.parquet",
                 "train-notes.parquet"):
        (tmp_path / name).touch()
    assert [p.name for p in split_files.paths(tmp_path, "train")] == [
        "train-00002-of-00011.parquet", "train-00010-of-00011.parquet"]  # in row order, nothing else
    assert split_files.paths(tmp_path, "rejected") == []
    (tmp_path / "train.parquet").touch()
    assert [p.name for p in split_files.paths(tmp_path, "train")] == ["train.parquet"]
    assert (split_files.pattern("train", 10), split_files.pattern("train", None)) == ("train-*.parquet",
                                                                                      "train.parquet")


def test_a_build_in_shards_holds_the_rows_of_one_file_and_reads_back_everywhere(tmp_path: Path, write_mix) -> None:
    write_jsonl(tmp_path / "a.jsonl", [{"instruction": f"Explain fact number {k} about {k * 17}.", "input": "",
                                        "output": f"Fact {k}: {k * 31} is odd."} for k in range(60)])
    spec = {"name": "t", "sources": [{"name": "a", "path": "a.jsonl"}], "split": {"eval": 0.2},
            "dedup": {"exact": True, "near": True}}
    whole = writer.write(build.run(load_mix(write_mix(spec))), tmp_path / "whole")
    spec["output"] = {"dir": "out", "shard_rows": 20}
    sharded_mix = load_mix(write_mix(spec, "sharded.yaml"))
    sharded = writer.write(build.run(sharded_mix), tmp_path / "sharded")

    assert sorted(p.name for p in sharded.glob("*.parquet")) == [
        "duplicates.parquet", "eval-00000-of-00001.parquet", "rejected.parquet",
        "train-00000-of-00003.parquet", "train-00001-of-00003.parquet", "train-00002-of-00003.parquet"]
    assert [pl.read_parquet(p).height for p in split_files.paths(sharded, "train")] == [20, 20, 8]
    for split in ("train", "eval"):
        assert pl.read_parquet(split_files.paths(sharded, split)).equals(pl.read_parquet(whole / f"{split}.parquet"))
    # the readers of a build folder: export, versions, a build folder as a reference, the dataset card
    exported = export.read_build(sharded)
    assert exported.splits["train"].equals(export.read_build(whole).splits["train"])
    assert versions.read_records(sharded).equals(versions.read_records(whole))
    assert build_records(sharded, ["id"]).equals(build_records(whole, ["id"])) and build_records(sharded, ["id"]).height
    against = {**spec, "name": "u", "dedup": {"exact": True, "near": True, "against": ["sharded"]}}
    assert load_mix(write_mix(against, "against.yaml")).references[0].build == sharded.resolve()
    card = yaml.safe_load((sharded / "README.md").read_text(encoding="utf-8").split("---")[1])
    assert card["configs"][0]["data_files"] == [{"split": "train", "path": "train-*.parquet"},
                                                {"split": "eval", "path": "eval-*.parquet"}]
    loaded = datasets.load_dataset(str(sharded), cache_dir=str(tmp_path / "cache"))  # through the card
    assert {split: loaded[split].num_rows for split in loaded} == {"train": 48, "eval": 12}
    assert loaded["train"]["id"] == pl.read_parquet(whole / "train.parquet")["id"].to_list()
