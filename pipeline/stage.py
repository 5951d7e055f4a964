"""The stage contract, shared by every stage of the build.

A stage takes a frame of records (with its settings, and for a global stage the build's ``plan.Context``) and
returns an ``Outcome``: the records it keeps (the columns it was given, plus any it adds), one ``REJECT_SCHEMA``
row per record it removes, and its stats (counts or its report section; None when it has none). A stage never
drops a record silently: what is not kept is rejected, or (dedup, the mixture) named in one of its
``outputs`` with its own fate. Where several rules can reject a record, the first rule in the stage's table
wins (``first_rule``) and the others go into ``detail``.

The runner quarantines a stage's rejects: ``with_originals`` adds the record itself as JSON (``original``),
which makes a row of rejected.parquet (``QUARANTINE_SCHEMA``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

# What a stage returns for each record it removes: which record (id, source, origin: file:line), which stage,
# why (a short code) and the details a person needs to judge it.
REJECT_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(), "source": pl.String(), "stage": pl.String(), "reason": pl.String(),
    "detail": pl.String(), "origin": pl.String(),
}
# A row of rejected.parquet: the reject and the record as it reached the stage (for a record that never parsed,
# the raw text of its row).
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {**REJECT_SCHEMA, "original": pl.String()}


@dataclass
class Outcome:
    kept: pl.DataFrame
    rejected: pl.DataFrame  # REJECT_SCHEMA; QUARANTINE_SCHEMA once the runner has quarantined them
    stats: Any = None
    outputs: dict[str, pl.DataFrame] = field(default_factory=dict)  # what else a global stage makes, by name
    files: Path | None = None  # a folder of files it wrote (tokenize: the rows of tokenized/, too many to hold)


def no_rejects() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECT_SCHEMA)


def kept_all(records: pl.DataFrame, stats: Any = None) -> Outcome:
    return Outcome(records, no_rejects(), stats)


def first_rule(rules: Sequence[tuple[str, pl.Expr]]) -> pl.Expr:
    """The reason of the first rule whose condition holds for a record, else null."""
    return pl.coalesce([pl.when(condition).then(pl.lit(reason)) for reason, condition in rules])


def without(records: pl.DataFrame, rejected: pl.DataFrame) -> pl.DataFrame:
    """``records`` without the ones ``rejected`` names, in their order (``records`` itself when none). A filter,
    not an anti join: it shares the kept rows' buffers where the join copied every column (1 GB at 1M)."""
    if not rejected.height:
        return records
    return records.filter(~pl.col("id").is_in(rejected["id"].implode()))


def split_off(records: pl.DataFrame, rejected: pl.DataFrame, stats: Any = None) -> Outcome:
    """The outcome of a stage that rejected ``rejected`` among ``records``."""
    return Outcome(without(records, rejected), rejected, stats)


def with_originals(rejects: pl.DataFrame, *seen: pl.DataFrame) -> pl.DataFrame:
    """Quarantine rows for a stage's ``rejects``: ``original`` is the record as JSON, from the frames the stage
    was given (``seen``; a record repeated by the mixture is encoded once), for the rejects only."""
    record = pl.struct("instruction", "input", "output", "system", "history").struct.json_encode().alias("original")
    found = [frame.join(rejects.select("id"), on="id", how="semi").select("id", record) for frame in seen]
    originals = (pl.concat(found) if len(found) > 1 else found[0]).unique("id", maintain_order=True)
    quarantined = rejects.drop("task", strict=False).join(originals, on="id", how="left", maintain_order="left")
    return quarantined.select(QUARANTINE_SCHEMA.keys())
