"""The shapes of rejected rows, shared by every stage: one row per quarantined record, with its reason."""

from __future__ import annotations

import polars as pl

# What ingest and the type check produce, before a record has its identity columns (see ingest.assign_ids).
EARLY_REJECT_SCHEMA: dict[str, pl.DataType] = {
    "_pos": pl.Int64(), "_sub": pl.Int64(), "stage": pl.String(), "reason": pl.String(), "detail": pl.String(),
}
# What a stage over the frame returns for each record it rejects; ``_pos`` points at the record's raw item in
# its chunk, and the chunk runner swaps it for the record's original text.
STAGE_REJECT_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(), "source": pl.String(), "stage": pl.String(), "reason": pl.String(),
    "detail": pl.String(), "origin": pl.String(), "_pos": pl.Int64(),
}
# What a stage over all validated records (language, quality, PII, decontamination, tokenize) returns for each
# record it rejects; ``with_originals`` adds the record itself.
RECORD_REJECT_SCHEMA: dict[str, pl.DataType] = {k: v for k, v in STAGE_REJECT_SCHEMA.items() if k != "_pos"}
# A row of rejected.parquet.
REJECT_SCHEMA: dict[str, pl.DataType] = {**RECORD_REJECT_SCHEMA, "original": pl.String()}


def no_rejects() -> pl.DataFrame:
    return pl.DataFrame(schema=RECORD_REJECT_SCHEMA)


def with_originals(records: pl.DataFrame, rejects: pl.DataFrame) -> pl.DataFrame:
    """Rows of rejected.parquet for a stage's ``rejects`` among ``records``; ``original`` is the canonical record
    as JSON (encoded for the rejects only, not for every record)."""
    originals = records.join(rejects.select("id"), on="id", how="semi").unique("id", maintain_order=True).select(
        "id", pl.struct("instruction", "input", "output", "system", "history").struct.json_encode().alias("original"))
    quarantined = rejects.drop("task", strict=False).join(originals, on="id", how="left", maintain_order="left")
    return quarantined.select(REJECT_SCHEMA.keys())
