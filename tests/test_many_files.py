"""Many small files (issue #16): a build of one-record files is the build of one file holding those records,
small files share work units whose cuts survive adding a file, and the language cache holds each text once
whatever the lookups (a parallel rebuild used to crash on a cache holding a key twice)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from pipeline import build, file_units, language
from pipeline.config import load_mix
from pipeline.io.workers import iter_shards
from pipeline.records import load_reference, work_units
from tests.conftest import write_json

MANY_ID = re.compile(r"alpaca/0*(\d+)\.json#0")


def _records(shared_data: Path) -> list[Any]:
    """300 real items: Alpaca records with empty outputs, placeholder inputs and exact duplicates among them,
    Chinese ones (rejected by ``languages: [en]``) and three items that fail ingest or validation."""
    alpaca = orjson.loads((shared_data / "alpaca-en" / "alpaca_data-00000-03252.json").read_bytes())
    chinese = orjson.loads((shared_data / "alpaca-zh" / "alpaca_zh-00000-03252.json").read_bytes())
    items = [*alpaca[:280], alpaca[284], alpaca[1223], alpaca[2823], alpaca[2827], *alpaca[:5], *chinese[:3],
             {"instruction": "Only an instruction"}, "not an object", {"instruction": 5, "input": "", "output": "x"},
             *alpaca[290:295]]
    assert len(items) == 300 and not alpaca[284]["output"] and alpaca[2823]["input"] == "N/A"
    return items


def _same_ids(value: Any) -> Any:
    """``value`` with the ids of the one-record files (alpaca/0123.json#0) written as the one file's (alpaca#123)."""
    if isinstance(value, str):
        return MANY_ID.sub(r"alpaca#\1", value)
    if isinstance(value, list):
        return [_same_ids(v) for v in value]
    if isinstance(value, dict):
        return {k: _same_ids(v) for k, v in value.items()}
    return value


def _rows(frame: pl.DataFrame, any_order: bool = False) -> list[dict[str, Any]]:
    """The rows without origins (file:line), with the one file's ids; sorted by id when the order depends on
    how the records were chunked (a chunk's early rejects come before its content rejects)."""
    rows = _same_ids(frame.drop("origin", strict=False).to_dicts())
    return sorted(rows, key=lambda row: row["id"]) if any_order else rows


def _report(result: build.BuildResult) -> dict[str, Any]:
    report = _same_ids(result.report.model_dump(mode="json"))
    for source in report["sources"]:
        source.pop("files")
    report.pop("spec_hash")
    return report


def test_many_one_record_files_build_what_one_file_of_them_builds(shared_data, tmp_path, write_mix):
    items = _records(shared_data)
    for k, item in enumerate(items):
        write_json(tmp_path / "parts" / f"{k:04d}.json", [item])
    write_json(tmp_path / "one.json", items)
    settings = {"name": "many", "filters": {"languages": ["en"]}}
    many = build.run(load_mix(write_mix({**settings, "sources": [
        {"name": "alpaca", "path": "parts/*.json", "format": "alpaca"}]}, "many.yaml")))
    one = build.run(load_mix(write_mix({**settings, "sources": [
        {"name": "alpaca", "path": "one.json", "format": "alpaca"}]}, "one.yaml")))

    assert many.report.totals["input"] == 300 and many.report.sources[0].files == 300
    reasons = set(one.rejected["reason"].to_list())
    assert {"language:zh", "not_an_object"} <= reasons and one.duplicates.height >= 5  # the items did their job
    assert _rows(many.train) == _rows(one.train)
    assert _rows(many.rejected, any_order=True) == _rows(one.rejected, any_order=True)
    assert _rows(many.duplicates, any_order=True) == _rows(one.duplicates, any_order=True)
    assert _report(many) == _report(one)


def _small_files(folder: Path, n: int) -> list[Path]:
    return [write_json(folder / f"{k:05d}.json", [{"instruction": f"Task {k}?", "input": "", "output": "Yes."}])
            for k in range(n)]


def test_small_files_share_units_cut_by_name_so_adding_a_file_changes_only_its_unit(tmp_path):
    files = tuple(_small_files(tmp_path, 1000))
    groups = file_units.file_groups(files, tmp_path)
    assert [p for group in groups for p in group] == list(files)  # every file once, in order
    assert 5 < len(groups) < 60  # about 1000 / UNIT_CUT, not 1000

    added = write_json(tmp_path / "00500x.json", [{"instruction": "New?", "input": "", "output": "Yes."}])
    regrouped = file_units.file_groups(tuple(sorted((*files, added))), tmp_path)
    changed = set(regrouped) - set(groups)
    assert len(changed) == 1 and added in next(iter(changed))  # only the unit the new file joined
    assert len(set(groups) - set(regrouped)) == 1


def test_a_big_file_is_a_unit_of_its_own(tmp_path, monkeypatch):
    files = _small_files(tmp_path, 6)
    write_json(files[3], [{"instruction": "A longer task " * 100, "input": "", "output": "Yes."}])
    monkeypatch.setattr(file_units, "SMALL_FILE_BYTES", files[3].stat().st_size)
    monkeypatch.setattr(file_units, "UNIT_CUT", 1 << 40)  # no name cuts: only the size rule
    monkeypatch.setattr(file_units, "FEW_FILES", 0)
    assert file_units.file_groups(tuple(files), tmp_path) == [tuple(files[:3]), (files[3],), tuple(files[4:])]


class CountingCache(language.DetectionCache):
    """The real cache, counting the lookups made through it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def detect(self, texts: pl.Series) -> pl.DataFrame:
        self.calls.append(len(texts))
        return super().detect(texts)


def test_detections_are_looked_up_in_bulk_once_per_unit_not_per_file(tmp_path, write_mix):
    _small_files(tmp_path / "parts", 500)
    mix = load_mix(write_mix({"name": "many", "sources": [{"name": "a", "path": "parts/*.json"}]}))
    units = work_units(mix)
    cache = CountingCache()
    shards = list(iter_shards(mix, 1, detections=cache))
    assert sum(s.n_input for s in shards) == 500 and len(units) < 50
    assert len(cache.calls) == len(units)  # all English: one lookup of the unit's texts, no second pass
    assert sum(cache.calls) == 500 and cache.size == 500


def _texts(shared_data: Path, n: int) -> pl.Series:
    records = orjson.loads((shared_data / "alpaca-en" / "alpaca_data-00000-03252.json").read_bytes())
    return pl.Series([r["instruction"] for r in records[:n]])


def test_cache_answers_as_detect_across_merges_and_holds_each_text_once(shared_data, tmp_path, monkeypatch):
    monkeypatch.setattr(language, "TAIL_ROWS", 16)  # many merges of the recent detections into the sorted part
    texts = _texts(shared_data, 300)
    expected = language.detect(texts)
    cache = language.DetectionCache(tmp_path / "cache.parquet")
    for start in range(0, 300, 7):  # small lookups, each overlapping the one before
        part = texts.slice(max(start - 3, 0), 10)
        assert cache.detect(part).equals(expected.slice(max(start - 3, 0), 10))
    assert cache.detect(texts).equals(expected)
    assert cache.size == texts.n_unique()
    cache.save()
    saved = pl.read_parquet(tmp_path / "cache.parquet")
    assert saved.height == saved["key"].n_unique() == texts.n_unique()
    assert language.DetectionCache(tmp_path / "cache.parquet").detect(texts.reverse()).equals(expected.reverse())


def test_learning_known_detections_adds_nothing_and_duplicate_keys_on_disk_are_read_once(shared_data, tmp_path):
    texts = _texts(shared_data, 40)
    cache = language.DetectionCache(tmp_path / "cache.parquet", journal=True)
    cache.detect(texts)
    detected = cache.take_journal()
    assert detected.height == texts.n_unique() and cache.take_journal().height == 0
    cache.learn(detected)  # a worker sending back what this process detected too
    assert cache.size == texts.n_unique()
    cache.save()
    doubled = pl.concat([detected, detected])  # a cache file as the previous learn() could write it
    doubled.write_parquet(tmp_path / "cache.parquet")
    assert language.DetectionCache(tmp_path / "cache.parquet").detect(texts).height == len(texts)


def test_a_parallel_rebuild_reads_the_cache_it_wrote(tmp_path, write_mix):
    """Two processes detect the same text (a record repeated across files); the cache must hold it once, or
    the next build's lookup returns two rows for one record."""
    shared = {"instruction": "Give three tips for staying healthy.", "input": "",
              "output": "Eat well, sleep enough and exercise."}
    for k in range(3):
        write_json(tmp_path / "parts" / f"{k}.json",
                   [shared, {"instruction": f"Write a sentence about {k}.", "input": "", "output": f"{k} is small."}])
    mix = load_mix(write_mix({"name": "dup", "sources": [{"name": "a", "path": "parts/*.json"}]}))
    assert len(work_units(mix)) == 3  # a few files: one unit each, so both processes work
    cache = tmp_path / "cache"
    first = build.run(mix, workers=2, cache=cache)
    again = build.run(mix, workers=2, cache=cache)
    assert again.train.equals(first.train) and first.train.height == 4
    saved = pl.read_parquet(cache / build.LANGUAGE_CACHE)
    assert saved.height == saved["key"].n_unique()



def test_a_reference_of_many_small_files_reads_as_one_file_of_them(shared_data, tmp_path, write_mix):
    items = _records(shared_data)[:120]
    for k, item in enumerate(items):
        write_json(tmp_path / "parts" / f"{k:04d}.json", [item])
    write_json(tmp_path / "one.json", items)
    mix = load_mix(write_mix({"name": "ref", "sources": [{"name": "alpaca", "path": "one.json"}],
                              "dedup": {"against": ["parts/*.json", "one.json"]}}))
    many, one = (load_reference(ref, mix).records for ref in mix.references)
    assert many.height == one.height == 120
    many = many.with_columns(id=pl.col("id").str.extract(r"/0*(\d+)\.json#0$"))
    one = one.with_columns(id=pl.col("id").str.extract(r"#(\d+)$"))
    assert many.drop("origin", "source", "task").equals(one.drop("origin", "source", "task"))
