"""Every container format (JSON, JSONL, Parquet, CSV, HF save_to_disk, a Hub-style dataset folder) reads the
same records into the same canonical rows."""

from __future__ import annotations

import datasets
import polars as pl
import pytest

from pipeline import build
from pipeline.config import load_mix
from tests.conftest import write_json, write_jsonl

ROWS = [
    {"instruction": "Translate to French: cat", "input": "", "output": "chat"},
    {"instruction": "Sum the numbers.", "input": "2, 3", "output": "5"},
    {"instruction": "把这句话翻译成英文。", "input": "你好", "output": "Hello"},
]
CANONICAL = ["instruction", "input", "output"]


def _train(write_mix, source: dict) -> pl.DataFrame:
    result = build.run(load_mix(write_mix({"name": "t", "sources": [{"name": "s", **source}]})))
    assert result.report.ledger[0].balanced
    return result.train


@pytest.fixture
def expected(tmp_path, write_mix) -> pl.DataFrame:
    return _train(write_mix, {"path": str(write_json(tmp_path / "rows.json", ROWS))}).select(CANONICAL)


def test_jsonl(tmp_path, write_mix, expected):
    write_jsonl(tmp_path / "rows.jsonl", ROWS)
    train = _train(write_mix, {"path": "rows.jsonl"})
    assert train.select(CANONICAL).equals(expected)
    assert train["origin"].to_list() == ["rows.jsonl:1", "rows.jsonl:2", "rows.jsonl:3"]


def test_parquet(tmp_path, write_mix, expected):
    pl.DataFrame(ROWS).write_parquet(tmp_path / "rows.parquet")
    train = _train(write_mix, {"path": "rows.parquet"})
    assert train.select(CANONICAL).equals(expected)
    assert train["origin"].to_list() == ["rows.parquet:row 1", "rows.parquet:row 2", "rows.parquet:row 3"]


def test_csv(tmp_path, write_mix, expected):
    pl.DataFrame(ROWS).write_csv(tmp_path / "rows.csv")
    assert _train(write_mix, {"path": "rows.csv"}).select(CANONICAL).equals(expected)


def test_hf_save_to_disk_folder_and_split(tmp_path, write_mix, expected):
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS),
                          "test": datasets.Dataset.from_list(ROWS[:1])}).save_to_disk(str(tmp_path / "ds"))
    assert _train(write_mix, {"path": "ds"}).select(CANONICAL).equals(expected)
    assert _train(write_mix, {"path": "ds", "split": "test"}).select(CANONICAL).equals(expected.head(1))
    with pytest.raises(ValueError, match=r"split 'dev' not in .*; it has \['test', 'train'\]"):
        _train(write_mix, {"path": "ds", "split": "dev"})


def test_hub_id_loads_through_datasets(tmp_path, write_mix, expected):
    """`hub:` goes through datasets.load_dataset like LLaMA-Factory's hf_hub_url; offline, a local dataset
    repository folder stands in for the Hub id (the same code path resolves both)."""
    write_jsonl(tmp_path / "repo" / "data" / "train.jsonl", ROWS)
    train = _train(write_mix, {"hub": str(tmp_path / "repo"), "split": "train"})
    assert train.select(CANONICAL).equals(expected)
    assert train["id"].to_list() == ["s#0", "s#1", "s#2"]


def test_glob_of_files_names_each_file_in_ids(tmp_path, write_mix):
    write_jsonl(tmp_path / "d" / "a.jsonl", ROWS[:2])
    write_json(tmp_path / "d" / "b.json", ROWS[2:])
    train = _train(write_mix, {"path": "d/*.json*"})
    assert train["id"].to_list() == ["s/a.jsonl#0", "s/a.jsonl#1", "s/b.json#0"]


def _write_csv(path, rows: list[dict]) -> None:
    """A plain CSV as csv.writer (and pandas) write it: an empty string is an empty cell, not a quoted ""."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CANONICAL)
        writer.writerows([r[k] for k in CANONICAL] for r in rows)


def test_csv_empty_cells_are_empty_strings(tmp_path, write_mix, expected):
    _write_csv(tmp_path / "rows.csv", ROWS)
    assert '"",' not in (tmp_path / "rows.csv").read_text() and ",," in (tmp_path / "rows.csv").read_text()
    assert _train(write_mix, {"path": "rows.csv"}).select(CANONICAL).equals(expected)


def test_real_alpaca_rows_written_by_csv_writer_all_pass(tmp_path, write_mix, shared_data):
    """2,000 real Alpaca rows: 1,119 have an empty input, which a plain CSV writes as an empty cell; every one
    of them must read as "" (the README: every cell is a string), in a build and in an audit alike."""
    import json

    from pipeline import audit

    rows = json.loads((shared_data / "alpaca-en" / "alpaca_data-00000-03252.json").read_text(encoding="utf-8"))
    rows = [{k: r.get(k, "") for k in CANONICAL} for r in rows[:2000]]
    assert sum(r["input"] == "" for r in rows) == 1119
    _write_csv(tmp_path / "alpaca.csv", rows)
    result = build.run(load_mix(write_mix({"name": "t", "sources": [{"name": "s", "path": "alpaca.csv"}],
                                           "dedup": {"near": False}})))
    reasons = result.rejected["reason"].to_list()
    assert not [r for r in reasons if r.startswith("wrong_type")], sorted(set(reasons))
    assert result.report.totals["input"] == 2000 and result.report.ledger[0].balanced
    sources = audit.resolve(["alpaca.csv"], tmp_path)
    readout = audit.read(sources, audit.audit_spec(sources), tmp_path)
    assert readout.records.height + readout.rejected.height == 2000
    assert set(readout.rejected["reason"]) == {"empty_output"}  # 4 real empty outputs, not wrong types
