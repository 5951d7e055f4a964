"""The fate ledger: every input record ends with exactly one fate, and the fates add up to the inputs.

``reconcile`` takes the frame of fates (``fates.fate_table``: ``id``, ``source`` and ``fate`` of every record:
kept, rejected, duplicate, sampled_out), counts them per source against the number of records each source fed
in and raises ``LedgerError`` when a record was lost, counted twice, or appeared from nowhere.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from schemas.report import LedgerRow

FATES = ("kept", "rejected", "duplicate", "sampled_out")


class LedgerError(AssertionError):
    """The build lost or duplicated records: a bug, never a data problem."""


def reconcile(inputs: Mapping[str, int], everyone: pl.DataFrame) -> list[LedgerRow]:
    unknown = set(everyone["fate"].unique()) - set(FATES)
    if unknown:
        raise ValueError(f"unknown fates {sorted(unknown)}")
    if everyone["id"].n_unique() != everyone.height:
        repeated = everyone.filter(pl.col("id").is_duplicated())
        sample = repeated.sort("id").head(4).rows()
        raise LedgerError(f"{repeated['id'].n_unique()} record(s) have more than one fate, e.g. {sample}")
    counts = everyone.group_by("source", "fate").len()
    by_source = {(s, f): n for s, f, n in counts.iter_rows()}
    rows = []
    for source in sorted(set(inputs) | set(counts["source"].to_list())):
        tally = {fate: by_source.get((source, fate), 0) for fate in FATES}
        n_input = inputs.get(source, 0)
        rows.append(LedgerRow(source=source, input=n_input, **tally, balanced=sum(tally.values()) == n_input))
    broken = [r for r in rows if not r.balanced]
    if broken:
        raise LedgerError("fates do not add up to the inputs: " + "; ".join(
            f"{r.source}: input {r.input} != " + " + ".join(f"{f} {getattr(r, f)}" for f in FATES) for r in broken
        ))
    return rows
