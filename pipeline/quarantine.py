"""The shapes of rejected rows, shared by every stage: one row per quarantined record, with its reason."""

from __future__ import annotations

import polars as pl

# What ingest and the type check produce, before a record has its identity columns (see ingest.identify).
EARLY_REJECT_SCHEMA: dict[str, pl.DataType] = {
    "_pos": pl.Int64(), "_sub": pl.Int64(), "stage": pl.String(), "reason": pl.String(), "detail": pl.String(),
}
# What a stage over the frame returns for each record it rejects; ``_pos`` points at the record's raw item in
# its chunk, and the chunk runner swaps it for the record's original text.
STAGE_REJECT_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(), "source": pl.String(), "stage": pl.String(), "reason": pl.String(),
    "detail": pl.String(), "origin": pl.String(), "_pos": pl.Int64(),
}
# A row of rejected.parquet.
REJECT_SCHEMA: dict[str, pl.DataType] = {
    **{k: v for k, v in STAGE_REJECT_SCHEMA.items() if k != "_pos"},
    "original": pl.String(),
}
