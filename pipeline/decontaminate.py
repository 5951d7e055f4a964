"""Evaluation-set decontamination: training records whose prompt leaks an evaluation prompt are quarantined.

Contract: ``contaminated(records, evals, settings)`` returns quarantined rows (reason ``contaminated:<eval set>``,
detail naming the matched eval id and how it matched). A record's prompt is its instruction + input; it is
contaminated when
- it shares a ``ngram``-token window with an eval prompt (13 by default: words, or characters of CJK text, the
  same tokens as dedup; a prompt shorter than that matches an eval prompt equal to it), or
- it is a near-duplicate of an eval prompt (MinHash LSH + true Jaccard >= ``threshold``, the dedup machinery
  with the eval sets as references).
The eval sets are read as prompts only (an eval set has no answers, or answers the build must not see).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from pipeline import dedup, minhash, validate
from pipeline.quarantine import no_rejects
from schemas.mix import DecontaminateSpec, DedupSpec

STAGE = "decontaminate"


def _prompts(frame: pl.DataFrame) -> pl.Series:
    return frame.select(pl.concat_str("instruction", "input", separator="\n")).to_series()


def ngram_matches(records: pl.DataFrame, evals: Sequence[tuple[str, pl.DataFrame]], n: int) -> pl.DataFrame:
    """(id, eval set, eval id) of the first eval prompt sharing an n-gram window with each matching record."""
    names = [name for name, _ in evals]
    owners = pl.concat([frame.select(pl.lit(k).alias("set"), "id") for k, (_, frame) in enumerate(evals)])
    eval_sets = minhash.shingle_sets(pl.concat([_prompts(frame) for _, frame in evals]), n)
    eval_owner = np.repeat(np.arange(len(eval_sets)), eval_sets.counts)
    order = np.argsort(eval_sets.hashes, kind="stable")
    table, table_owner = eval_sets.hashes[order], eval_owner[order]
    mine = minhash.shingle_sets(_prompts(records), n)
    record = np.repeat(np.arange(len(mine)), mine.counts)
    at = np.minimum(np.searchsorted(table, mine.hashes), max(len(table) - 1, 0))
    hit = (table[at] == mine.hashes) if len(table) else np.zeros(len(mine.hashes), dtype=bool)
    first_record, first = np.unique(record[hit], return_index=True)
    matched = table_owner[at[hit][first]]
    found = owners[matched.tolist()] if len(matched) else owners.clear()
    return pl.DataFrame({"id": records["id"].gather(first_record.tolist())}).with_columns(
        set=found["set"].replace_strict(dict(enumerate(names)), return_dtype=pl.String), eval_id=found["id"])


def contaminated(records: pl.DataFrame, evals: Sequence[tuple[str, pl.DataFrame]],
                 settings: DecontaminateSpec) -> pl.DataFrame:
    """Quarantined rows (id, source, stage, reason, detail, origin) for the records leaking an eval prompt."""
    if not evals or not records.height:
        return no_rejects()
    by_ngram = ngram_matches(records, evals, settings.ngram).with_columns(
        how=pl.lit(f"shares a {settings.ngram}-token window"))
    references = [dedup.Reference(name, frame.with_columns(source=pl.lit(name), output=pl.lit(""),
                                                           history=pl.lit(None, validate.HISTORY)))
                  for name, frame in evals]
    near = dedup.deduplicate(records.select("id", "source", "instruction", "input", "output", "history"),
                             DedupSpec(key="prompt", threshold=settings.threshold),
                             records["source"].unique(maintain_order=True).to_list(), references).duplicates
    by_near = near.filter(pl.col("kept_in") != dedup.THIS_BUILD).select(
        "id", pl.col("kept_in").alias("set"), pl.col("kept_id").alias("eval_id"),
        pl.format("near-duplicate (Jaccard {})", pl.col("similarity").round(3)).alias("how"))
    found = pl.concat([by_ngram, by_near]).unique("id", keep="first", maintain_order=True)
    return records.select("id", "source", "origin").join(found, on="id", how="inner", maintain_order="left").select(
        "id", "source", pl.lit(STAGE).alias("stage"), ("contaminated:" + pl.col("set")).alias("reason"),
        pl.format("{} of {} in {}", "how", "eval_id", "set").alias("detail"), "origin")
