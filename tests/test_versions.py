"""Versioned outputs: folder names, the latest link, and what changed between two versions."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from pipeline import versions
from pipeline.records import ROW_SCHEMA


def _rows(records: list[tuple[str, str, str]]) -> pl.DataFrame:
    """train.parquet-shaped rows from (id, source, output)."""
    return pl.DataFrame(
        [{"id": i, "source": s, "task": s, "instruction": f"Do {i}.", "input": "", "output": out, "system": "",
          "history": [], "origin": "x", "lang": "en", "lang_score": 1.0, "repeat": 0} for i, s, out in records],
        schema=ROW_SCHEMA)


def test_changes_count_added_removed_changed_and_unchanged_per_source(tmp_path: Path) -> None:
    before = tmp_path / "v1"
    before.mkdir()
    _rows([("a1", "a", "one"), ("a2", "a", "two"), ("b1", "b", "three")]).write_parquet(before / "train.parquet")
    _rows([]).write_parquet(before / "eval.parquet")
    train = pl.concat([_rows([("a1", "a", "one"), ("a2", "a", "TWO"), ("a3", "a", "new")]),
                       _rows([("a1", "a", "one")]).with_columns(repeat=pl.lit(1, pl.UInt16))])  # a repeat: not a record
    report = versions.changes(before, train, _rows([]))
    assert (report.previous, report.added, report.removed, report.changed, report.unchanged) == ("v1", 1, 1, 1, 1)
    assert [(c.key, c.added, c.removed, c.changed, c.unchanged) for c in report.by_source] == [
        ("a", 1, 0, 1, 1), ("b", 0, 1, 0, 0)]


def test_versions_sort_by_time_never_collide_and_latest_follows(tmp_path: Path) -> None:
    now = datetime(2026, 11, 28, 3, 0, 0, tzinfo=timezone.utc)
    first = versions.new_version(tmp_path, now)
    first.mkdir()
    second = versions.new_version(tmp_path, now)  # the same second
    assert (first.name, second.name) == ("20261128T030000Z", "20261128T030000Z-1")
    assert versions.latest(tmp_path) is None
    versions.point_latest(tmp_path, first)
    second.mkdir()
    versions.point_latest(tmp_path, second)
    assert versions.latest(tmp_path) == second.resolve()
