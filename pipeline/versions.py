"""Versioned outputs for scheduled builds: ``<output.dir>/<name>/<version>/`` plus a ``latest`` link, and what
changed between two versions.

Contract: ``new_version`` names a folder by the UTC time (``20261128T030000Z``, sortable, unique per second);
``point_latest`` swaps the ``latest`` symlink atomically (a reader sees the old or the new version, never none);
``changes(previous, train, eval)`` compares records by id: added (new id), removed (id gone), changed (same id,
different instruction / input / output / system / history), per source and per task.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from pipeline import chat_format
from pipeline.io import split_files
from schemas.changes import ChangeCounts, ChangeReport

LATEST = "latest"
CONTENT = ("instruction", "input", "output", "system", "history")


def new_version(root: Path, now: datetime | None = None) -> Path:
    """A folder name that sorts by time and is not taken (a second build in the same second gets a suffix)."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    candidate, k = root / stamp, 1
    while candidate.exists():
        candidate, k = root / f"{stamp}-{k}", k + 1
    return candidate


def latest(root: Path) -> Path | None:
    link = root / LATEST
    return link.resolve() if link.is_symlink() and link.resolve().is_dir() else None


def point_latest(root: Path, version: Path) -> None:
    tmp = root / f".{LATEST}.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(version.name, target_is_directory=True)
    tmp.replace(root / LATEST)


def _records(train: pl.DataFrame, eval_: pl.DataFrame) -> pl.DataFrame:
    """One row per record (repeats dropped) with a fingerprint of its content."""
    rows = pl.concat([train.filter(pl.col("repeat") == 0).select("id", "source", "task", *CONTENT),
                      eval_.select("id", "source", "task", *CONTENT)])
    content = pl.concat_str([pl.col(c).cast(pl.String) if c != "history" else pl.col(c).list.eval(
        pl.element().cast(pl.String)).list.join("\x1e") for c in CONTENT], separator="\x1f", ignore_nulls=True)
    return rows.select("id", "source", "task", content.hash(seed=0).alias("content"))  # both sides hashed here


def read_records(folder: Path) -> pl.DataFrame:
    frames = {name: chat_format.read_records(split_files.paths(folder, name)) for name in ("train", "eval")}
    return _records(frames["train"], frames["eval"])


def changes(previous: Path | None, train: pl.DataFrame, eval_: pl.DataFrame) -> ChangeReport:
    """What this build's records are against the ``previous`` version's (everything added when there is none)."""
    now = _records(train, eval_)
    before = read_records(previous) if previous is not None else now.clear()
    both = now.join(before, on="id", how="full", suffix="_before", coalesce=True).with_columns(
        pl.coalesce("source", "source_before").alias("source"), pl.coalesce("task", "task_before").alias("task"),
        pl.when(pl.col("content_before").is_null()).then(pl.lit("added"))
        .when(pl.col("content").is_null()).then(pl.lit("removed"))
        .when(pl.col("content") != pl.col("content_before")).then(pl.lit("changed"))
        .otherwise(pl.lit("unchanged")).alias("change"),
    )

    def counts(by: str) -> list[ChangeCounts]:
        table = both.group_by(by, "change").len().pivot("change", index=by, values="len").fill_null(0).sort(by)
        return [ChangeCounts(key=row[by], **{k: int(row.get(k, 0)) for k in ChangeCounts.KINDS})
                for row in table.iter_rows(named=True)]

    total = dict(both.group_by("change").len().iter_rows())
    return ChangeReport(previous=previous.name if previous is not None else None,
                        **{k: int(total.get(k, 0)) for k in ChangeCounts.KINDS},
                        by_source=counts("source"), by_task=counts("task"))
