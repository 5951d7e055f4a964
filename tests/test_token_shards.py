"""tokenized/ in shards (pipeline/token_splits.py): a build whose splits are cut into shards of
``tokenize.shard_records`` records has the records, the examples and the tokens of the same build in one shard;
only the layout differs (Hub-style files, and train in shard order)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from conftest import write_jsonl

from pipeline import build, token_splits, writer
from pipeline.config import load_mix


def test_a_shard_holds_its_first_copies_then_their_repeats() -> None:
    frame = pl.DataFrame({"id": ["a", "b", "c", "d", "e", "b", "e", "a", "b"],
                          "repeat": [0, 0, 0, 0, 0, 1, 1, 1, 2]})
    shards = [frame["id"][rows].to_list() for rows in token_splits.shard_rows(frame, 2)]
    assert shards == [["a", "b", "b", "a", "b"], ["c", "d"], ["e", "e"]]
    assert [len(r) for r in token_splits.shard_rows(frame, 5)] == [9]
    assert token_splits.shard_rows(frame, 5)[0].tolist() == list(range(9))  # one shard: the mixture's order
    assert [len(r) for r in token_splits.shard_rows(frame.clear(), 5)] == [0]  # an empty split: one empty shard
    with pytest.raises(ValueError, match="no first copy"):
        token_splits.shard_rows(frame.filter(pl.col("id") != "a").vstack(frame.filter(pl.col("id") == "a")[1:]), 2)


def _build(tmp_path: Path, write_mix: Any, tokenizer: Any, name: str, shard_records: int, packing: bool) -> Path:
    mix = load_mix(write_mix({
        "name": name, "sources": [{"name": "a", "path": "a.jsonl"}], "dedup": {"near": False},
        "split": {"eval": 0.25}, "mixture": {"size": 100, "max_repeats": 3},
        "tokenize": {"enabled": True, "cutoff_len": 96, "overflow": "drop", "packing": packing,
                     "shard_records": shard_records},
    }, name=f"{name}.yaml"))
    return writer.write(build.run(mix, tokenizer=tokenizer))


def _examples(folder: Path) -> dict[str, Counter[tuple[str, tuple[int, ...], tuple[int, ...]]]]:
    """Every example of each split of tokenized/: (record id, input_ids, labels), unpacked from its row."""
    from datasets import load_from_disk

    loaded = load_from_disk(str(folder / "tokenized"))
    ids = pl.read_parquet(folder / "tokenized" / "record_ids.parquet")
    found = {}
    for split in ("train", "eval"):
        names = iter(ids.filter(pl.col("split") == split)["id"].to_list())
        examples: Counter[tuple[str, tuple[int, ...], tuple[int, ...]]] = Counter()
        for row in loaded[split]:
            lengths = row.get("seq_lengths") or [len(row["input_ids"])]
            cuts = np.cumsum([0, *lengths])
            for start, end in zip(cuts[:-1], cuts[1:], strict=True):
                examples[next(names), tuple(row["input_ids"][start:end]), tuple(row["labels"][start:end])] += 1
        assert next(names, None) is None
        found[split] = examples
    return found


@pytest.mark.parametrize("packing", [False, True])
def test_shards_hold_the_examples_and_tokens_of_one_shard(tmp_path, write_mix, llama_tokenizer, packing):
    write_jsonl(tmp_path / "a.jsonl", [{"instruction": f"Question {k}?", "input": "",
                                        "output": " ".join(f"w{k}x{j}" for j in range(40 if k % 10 == 9 else k % 6))}
                                       for k in range(60)])  # every tenth too long for cutoff_len 96: rejected
    one = _build(tmp_path, write_mix, llama_tokenizer, "one", 100_000, packing)
    many = _build(tmp_path, write_mix, llama_tokenizer, "many", 7, packing)

    assert sorted(p.name for p in (one / "tokenized" / "train").glob("*.arrow")) == ["data-00000-of-00001.arrow"]
    files = sorted(p.name for p in (many / "tokenized" / "train").glob("*.arrow"))
    assert len(files) > 2 and files == [f"data-{k:05d}-of-{len(files):05d}.arrow" for k in range(len(files))]
    assert _examples(one) == _examples(many)
    for name in ("rejected.parquet", "eval.parquet"):
        assert pl.read_parquet(one / name).equals(pl.read_parquet(many / name))
    trains = [pl.read_parquet(folder / "train.parquet") for folder in (one, many)]
    assert trains[0]["repeat"].max() > 0  # repeats, each in its first copy's shard
    assert trains[0].sort("id", "repeat").equals(trains[1].sort("id", "repeat"))
    tokens = [json.loads((folder / "report.json").read_text())["tokens"] for folder in (one, many)]
    assert tokens[0]["train_tokens"] == tokens[1]["train_tokens"] > 0
    assert tokens[0]["eval_tokens"] == tokens[1]["eval_tokens"] > 0
    assert tokens[0]["by_source"] == tokens[1]["by_source"]
    if not packing:  # train.parquet's rows are tokenized/'s, row for row, in either layout
        for folder, train in zip((one, many), trains, strict=True):
            ids = pl.read_parquet(folder / "tokenized" / "record_ids.parquet").filter(pl.col("split") == "train")
            assert ids["id"].equals(train["id"])
