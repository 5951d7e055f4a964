"""The report sections of the global stages, built from their results: dedup (counts, clusters, the closest
pairs), split (sizes per task and the proof that nothing straddles it), the general share of train, and token
statistics per task and per source.

Contract: pure functions of what the stages returned (their frames and stats) and the spec; nothing is read from
disk or written.
"""

from __future__ import annotations

from collections import Counter

import polars as pl

from pipeline import dedup, tokenize
from pipeline.config import Mix
from schemas.mix import MixSpec
from schemas.report import DedupReport, DuplicateExample, SplitReport, TokenStats


def split_warnings(spec: MixSpec, train: int, eval_: int) -> list[str]:
    """The split guard: train (distinct records) empty, or smaller than eval."""
    if train >= eval_:
        return []
    setting = f"split.eval: {spec.split.eval:g}"
    if not train:
        return [f"{setting} puts all {eval_:,} records in eval: train is empty"]
    return [f"{setting} leaves {train:,} records in train, fewer than the {eval_:,} in eval"]


def general_share(train: pl.DataFrame, mix: Mix) -> float | None:
    general = [s.spec.name for s in mix.sources if s.spec.general]
    if not general or not train.height:
        return None
    return int(train["source"].is_in(general).sum()) / train.height


def split_report(spec: MixSpec, train: pl.DataFrame, eval_: pl.DataFrame,
                 fingerprints: pl.DataFrame | None = None) -> SplitReport | None:
    """The split and the proof that no record, repeat or (exact / near) duplicate is on both sides. The exact
    keys are dedup's (``fingerprints``: id, key_a, key_b) when it computed them, else computed here."""
    if not spec.split.eval:
        return None
    shared = train.select("id").unique().join(eval_.select("id"), on="id", how="semi").height
    # repeats have their first copy's key, so train's keys are the same set with or without them
    shared_keys = _keys(eval_, fingerprints).unique().join(
        _keys(train, fingerprints).unique(), on=["key_a", "key_b"], how="semi").height
    near = spec.dedup.near
    train_records = int((train["repeat"] == 0).sum())
    warnings = "".join(f"warning: {w}. " for w in split_warnings(spec, train_records, eval_.height))
    return SplitReport(
        eval_setting=spec.split.eval, eval=eval_.height, train_records=train_records,
        by_task=dict(sorted(Counter(eval_["task"].to_list()).items())),
        shared_ids=shared, shared_exact_keys=shared_keys,
        near_duplicates_across=(0 if near else None),
        note=warnings + (
            f"near dedup (Jaccard >= {spec.dedup.threshold}) ran over all records before the split, so no "
            "near-duplicate pair at that threshold can straddle it; repeats are drawn after the split, "
            "from train only" if near else
            "near dedup is off: near-duplicates across the split are not checked; repeats are drawn after "
            "the split, from train only"),
    )


def _keys(records: pl.DataFrame, fingerprints: pl.DataFrame | None) -> pl.DataFrame:
    if fingerprints is None:
        return dedup.exact_fingerprints(records)
    return records.select("id").join(fingerprints, on="id", how="left", maintain_order="left").drop("id")


def dedup_report(spec: MixSpec, duplicates: pl.DataFrame, stats: dict[str, int | float | None],
                 references: list[dedup.Reference]) -> DedupReport:
    settings = spec.dedup
    in_build = duplicates.filter(pl.col("kept_in") == dedup.THIS_BUILD)
    closest = duplicates.filter(pl.col("kind") == "near").sort("similarity", "id").head(5)
    return DedupReport(
        exact=settings.exact, near=settings.near, key=settings.key, across_sources=settings.across_sources,
        threshold=settings.threshold, ngram=settings.ngram, num_perm=settings.num_perm,
        bands=stats.get("bands"), rows=stats.get("rows"), verify=settings.verify,
        references=[r.name for r in references], reference_records=sum(r.records.height for r in references),
        exact_removed=int(stats.get("exact_removed") or 0), near_removed=int(stats.get("near_removed") or 0),
        candidate_pairs=stats.get("candidate_pairs"), verified_pairs=stats.get("verified_pairs"),
        clusters=stats.get("clusters"), largest_cluster=stats.get("largest_cluster"),
        by_source=dict(sorted(Counter(duplicates["source"].to_list()).items())),
        cross_source=in_build.filter(pl.col("kept_source") != pl.col("source")).height,
        against_references=duplicates.height - in_build.height,
        examples=[DuplicateExample(**row) for row in closest.select(
            "id", "kept_id", "kept_in", "kind", "similarity").iter_rows(named=True)],
    )


def token_stats(examples: pl.DataFrame, rejects: pl.DataFrame, by: str) -> list[TokenStats]:
    stats = tokenize.token_stats(examples, rejects, by)
    return [TokenStats(key=row[by], **{k: v for k, v in row.items() if k != by}) for row in stats.iter_rows(named=True)]
