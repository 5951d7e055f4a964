"""Evaluation-set decontamination: training records whose prompt leaks an evaluation prompt are quarantined.

Contract: ``contaminated(records, evals, settings)`` returns quarantined rows (reason ``contaminated:<eval set>``,
detail naming the matched eval id and how it matched). A record's prompt is its instruction + input; it is
contaminated when
- it shares a ``ngram``-token window with an eval prompt (13 by default: words, or characters of CJK text, the
  same tokens as dedup; a prompt shorter than that matches an eval prompt equal to it), or
- it is a near-duplicate of an eval prompt (MinHash LSH + true Jaccard >= ``threshold``, the dedup machinery
  with the eval sets as references).
The eval sets are read as prompts only (an eval set has no answers, or answers the build must not see).
Windows are looked up by a 64-bit hash and every hit is confirmed on the tokens themselves, so a hash collision
never quarantines a clean record (a 32-bit look-up did: tests/test_decontaminate.py has such a pair). Two
prompts of one shingle each (at most dedup's ``ngram`` tokens) are near-duplicates only when equal once folded;
longer ones by their Jaccard over 32-bit shingle hashes, where a collision adds at most 1 / |union| (dedup).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from pipeline import dedup, minhash, validate
from pipeline.stage import no_rejects
from schemas.mix import DecontaminateSpec, DedupSpec

STAGE = "decontaminate"
SLICE_ROWS = 1 << 15  # records whose token lists are held at once
_SEED64 = np.uint64(0x27D4EB2F165667C5)
_PRIME64_1, _PRIME64_2 = np.uint64(0x9E3779B185EBCA87), np.uint64(0xC2B2AE3D27D4EB4F)


def _prompts(frame: pl.DataFrame) -> pl.Series:
    return frame.select(pl.concat_str("instruction", "input", separator="\n")).to_series()


@dataclass(frozen=True)
class Windows:
    """The shingles of many prompts as windows into their flat token codes: window w is the tokens
    ``codes[start[w]:start[w] + size[w]]`` of prompt ``owner[w]``, with a 64-bit ``hash`` of them."""

    codes: np.ndarray  # int64: every prompt's token codes one after the other, then n pad codes of -1
    start: np.ndarray  # int64
    size: np.ndarray  # int64: n, or all the tokens of a prompt shorter than n
    owner: np.ndarray  # int64
    hash: np.ndarray  # uint64


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A bijective 64-bit mix: distinct token codes get distinct, well spread keys."""
    with np.errstate(over="ignore"):
        x = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def windows(tokens: pl.Series, vocabulary: pl.Enum, n: int) -> Windows:
    """Every prompt's n-token windows (a prompt of fewer than n tokens is one window of all of them) from its
    tokens (List(String), ``minhash.token_series``). Tokens become codes of ``vocabulary`` (an exact
    dictionary; a token outside it is ``len(vocabulary)``), and a window's hash is xxh64 rounds over the
    64-bit keys of its codes."""
    lengths = tokens.list.len().fill_null(0).to_numpy().astype(np.int64)
    unknown = len(vocabulary.categories)
    token_codes = tokens.explode().drop_nulls().cast(vocabulary, strict=False).to_physical().cast(pl.Int64)
    codes = np.concatenate((token_codes.fill_null(unknown).to_numpy(), np.full(n, -1, dtype=np.int64)))
    per_prompt = np.maximum(lengths - n + 1, 1)
    owner = np.repeat(np.arange(len(lengths), dtype=np.int64), per_prompt)
    offset = np.arange(len(owner), dtype=np.int64) - np.repeat(np.cumsum(per_prompt) - per_prompt, per_prompt)
    start = (np.cumsum(lengths) - lengths)[owner] + offset
    size = np.minimum(lengths[owner], n)
    keys = _splitmix64(codes)
    h = np.full(len(owner), _SEED64, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            x = h + keys[start + k] * _PRIME64_2
            h = np.where(k < size, ((x << np.uint64(31)) | (x >> np.uint64(33))) * _PRIME64_1, h)
    return Windows(codes, start, size, owner, h)


def same_tokens(mine: Windows, at: np.ndarray, theirs: Windows, there: np.ndarray) -> np.ndarray:
    """Whether window ``at[k]`` of ``mine`` holds exactly the tokens of window ``there[k]`` of ``theirs``."""
    size = mine.size[at]
    equal = size == theirs.size[there]
    for k in range(int(size.max(initial=0))):
        equal &= (k >= size) | (mine.codes[mine.start[at] + k] == theirs.codes[theirs.start[there] + k])
    return equal


def shared_windows(mine: Windows, table: Windows, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(window of ``mine``, window of ``table``) for each window of ``mine`` whose very tokens are a window of
    ``table`` (``order`` sorts ``table`` by hash, stably). Every table window with the same hash is tried until
    one holds the same tokens, so a collision neither makes a match nor hides one."""
    sorted_hashes = table.hash[order]
    at = np.searchsorted(sorted_hashes, mine.hash)
    pending = np.flatnonzero(at < len(sorted_hashes))
    hits, matched = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    while len(pending := pending[sorted_hashes[at[pending]] == mine.hash[pending]]):
        there = order[at[pending]]
        confirmed = same_tokens(mine, pending, table, there)
        hits.append(pending[confirmed])
        matched.append(there[confirmed])
        pending = pending[~confirmed]
        at[pending] += 1
        pending = pending[at[pending] < len(sorted_hashes)]
    return np.concatenate(hits), np.concatenate(matched)


@dataclass(frozen=True)
class EvalTable:
    """The eval prompts' windows, sorted for look-up: what every slice of records is matched against."""

    n: int  # the window, in tokens
    names: list[str]  # the eval sets, in order
    owners: pl.DataFrame  # (set, id) of each eval prompt
    vocabulary: pl.Enum  # their tokens: an exact dictionary of codes
    windows: Windows
    order: np.ndarray  # the windows by hash


def eval_table(evals: Sequence[tuple[str, pl.DataFrame]], n: int) -> EvalTable:
    owners = pl.concat([frame.select(pl.lit(k).alias("set"), "id") for k, (_, frame) in enumerate(evals)])
    eval_tokens = minhash.token_series(pl.concat([_prompts(frame) for _, frame in evals]))
    vocabulary = pl.Enum(eval_tokens.explode().drop_nulls().unique(maintain_order=True))
    table = windows(eval_tokens, vocabulary, n)
    return EvalTable(n, [name for name, _ in evals], owners, vocabulary, table,
                     np.argsort(table.hash, kind="stable"))


def ngram_matches(records: pl.DataFrame, table: EvalTable) -> pl.DataFrame:
    """(id, eval set, eval id) of the first eval prompt sharing an n-token window with each matching record
    (``table``: the eval sets' ``eval_table``). A record's match depends on the record alone, so the records may
    come in any slices.

    Windows are looked up by a 64-bit hash and every hit is confirmed on the tokens themselves (tokens are
    compared as codes of the eval prompts' vocabulary, an exact dictionary), so a record is reported if and
    only if it truly shares a window: a hash collision can neither add a match nor hide one. Records are
    handled ``SLICE_ROWS`` at a time, which bounds the memory of their token lists."""
    found = []
    for first in range(0, records.height, SLICE_ROWS):
        part = records.slice(first, SLICE_ROWS)
        mine = windows(minhash.token_series(_prompts(part)), table.vocabulary, table.n)
        hit, eval_window = shared_windows(mine, table.windows, table.order)
        by_window = np.argsort(hit, kind="stable")  # a record's first window in text order names its eval prompt
        record, first_hit = np.unique(mine.owner[hit[by_window]], return_index=True)
        prompts = table.windows.owner[eval_window[by_window][first_hit]]
        found.append(pl.DataFrame({"id": part["id"].gather(record.tolist()),
                                   "_eval": pl.Series(prompts, dtype=pl.Int64)}))
    hits_frame = pl.concat(found) if found else pl.DataFrame(schema={"id": pl.String, "_eval": pl.Int64})
    eval_of = table.owners.with_row_index("_eval").with_columns(pl.col("_eval").cast(pl.Int64))
    return hits_frame.join(eval_of, on="_eval", how="left", maintain_order="left").select(
        "id", pl.col("set").replace_strict(dict(enumerate(table.names)), return_dtype=pl.String), eval_id="id_right")


def contaminated(records: pl.DataFrame, evals: Sequence[tuple[str, pl.DataFrame]],
                 settings: DecontaminateSpec) -> pl.DataFrame:
    """Quarantined rows (id, source, stage, reason, detail, origin) for the records leaking an eval prompt."""
    if not evals or not records.height:
        return no_rejects()
    near = dedup.duplicates_of(near_columns(records), near_settings(settings),
                               records["source"].unique(maintain_order=True).to_list(), eval_references(evals))
    return rejects(records, matches(ngram_matches(records, eval_table(evals, settings.ngram)), near, settings))


def near_columns(records: pl.DataFrame) -> pl.DataFrame:
    """What the near-duplicate search reads of the records."""
    return records.select("id", "source", "instruction", "input", "output", "history")


def near_settings(settings: DecontaminateSpec) -> DedupSpec:
    """Dedup's settings for near-duplicates of eval prompts: prompts only, at the stage's threshold."""
    return DedupSpec(key="prompt", threshold=settings.threshold)


def eval_references(evals: Sequence[tuple[str, pl.DataFrame]]) -> list[dedup.Reference]:
    """The eval sets as dedup references (prompts without answers: they rank before any record)."""
    return [dedup.Reference(name, frame.with_columns(source=pl.lit(name), output=pl.lit(""),
                                                     history=pl.lit(None, validate.HISTORY)))
            for name, frame in evals]


def matches(by_ngram: pl.DataFrame, near: pl.DataFrame, settings: DecontaminateSpec) -> pl.DataFrame:
    """(id, set, eval_id, how) of every contaminated record, from its n-gram match (first) or its near-duplicate
    row (``near``: the rows of duplicates.parquet that dedup with the eval references gives)."""
    by_ngram = by_ngram.with_columns(how=pl.lit(f"shares a {settings.ngram}-token window"))
    by_near = near.filter(pl.col("kept_in") != dedup.THIS_BUILD).select(
        "id", pl.col("kept_in").alias("set"), pl.col("kept_id").alias("eval_id"),
        pl.format("near-duplicate (Jaccard {})", pl.col("similarity").round(3)).alias("how"))
    return pl.concat([by_ngram, by_near]).unique("id", keep="first", maintain_order=True)


def rejects(records: pl.DataFrame, found: pl.DataFrame) -> pl.DataFrame:
    """The reject rows of the ``records`` that ``found`` (``matches``) names, in the records' order."""
    return records.select("id", "source", "origin").join(found, on="id", how="inner", maintain_order="left").select(
        "id", "source", pl.lit(STAGE).alias("stage"), ("contaminated:" + pl.col("set")).alias("reason"),
        pl.format("{} of {} in {}", "how", "eval_id", "set").alias("detail"), "origin")
