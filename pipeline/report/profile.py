"""The dataset profile: what a set of records is (languages, lengths, instruction diversity, composition).

Contract: pure functions of a polars frame of canonical records (``instruction``, ``input``, ``output``,
``history``, ``source``, ``task``, and ``lang`` when known) and, optionally, the token length of each example;
they read and summarize, never filter. Shared by `pipeline audit` (every record read) and the build report
(the train split as written, repeats included: what the model will see). Every measure is a polars expression
or a numpy reduction over whole columns; only the bigram measures read a sample (``BIGRAM_SAMPLE``), so a
million-record build costs about a second more.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from pipeline import minhash
from schemas.report import (
    DatasetProfile,
    Distribution,
    Diversity,
    GroupCount,
    LanguageMix,
    LengthProfile,
)

CHAR_EDGES = (0, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)  # histogram bins: powers of two, last one open
TOKEN_EDGES = (0, 32, 64, 128, 256, 512, 1024, 2048, 4096)
TOP_LEADING_WORDS = 15
BIGRAM_SAMPLE = 20_000  # a fixed sample size keeps the entropy of two datasets comparable
SEED = 0
# The request word of an instruction: the first word of space-delimited text, or the first two Han characters
# (a Chinese instruction has no spaces; "写一" / "生成" / "给出" is what "Write" / "Generate" / "Give" is).
LEADING_WORD = r"^[^\p{L}\p{N}]*(\p{Han}{1,2}|[[\p{L}\p{N}]--\p{Han}]+)"
NO_LEADING_WORD = "(none)"
FOLDED_ENDS = " \t\n.?!:;。？！：；"  # outer characters ignored when counting distinct instructions


def prompt_chars() -> pl.Expr:
    """Characters of a record's earlier turns, instruction and input."""
    turns = pl.col("history").list.eval(
        pl.element().struct.field("user").str.len_chars() + pl.element().struct.field("assistant").str.len_chars()
    ).list.sum().fill_null(0)
    return pl.col("instruction").str.len_chars() + pl.col("input").str.len_chars() + turns


def distribution(values: pl.Series, edges: Sequence[int]) -> Distribution:
    """Count, mean, percentiles (nearest rank) and a histogram over ``edges`` of non-negative lengths."""
    lengths = values.drop_nulls().cast(pl.Int64)
    if lengths.is_empty():
        return Distribution(count=0, mean=0.0, p50=0, p90=0, p95=0, p99=0, max=0, edges=list(edges),
                            counts=[0] * len(edges))
    bins = np.searchsorted(np.asarray(edges), lengths.to_numpy(), side="right") - 1
    quantile = {p: int(lengths.quantile(p / 100, "nearest")) for p in (50, 90, 95, 99)}
    return Distribution(count=lengths.len(), mean=round(float(lengths.mean()), 1),
                        p50=quantile[50], p90=quantile[90], p95=quantile[95], p99=quantile[99],
                        max=int(lengths.max()), edges=list(edges),
                        counts=np.bincount(bins, minlength=len(edges)).tolist())


def lengths(records: pl.DataFrame, tokens: pl.Series | None, tokens_note: str) -> LengthProfile:
    chars = records.select(prompt_chars().alias("prompt"), pl.col("output").str.len_chars().alias("output"))
    return LengthProfile(prompt_chars=distribution(chars["prompt"], CHAR_EDGES),
                         output_chars=distribution(chars["output"], CHAR_EDGES),
                         tokens=distribution(tokens, TOKEN_EDGES) if tokens is not None else None,
                         tokens_note=tokens_note)


def counts(records: pl.DataFrame, column: str | pl.Expr, limit: int | None = None) -> list[GroupCount]:
    """Records per value of ``column``, most frequent first (ties by value)."""
    key = pl.col(column) if isinstance(column, str) else column
    grouped = records.select(key.cast(pl.String).fill_null("").alias("key")).group_by("key").len()
    grouped = grouped.sort(["len", "key"], descending=[True, False])
    total = max(records.height, 1)
    return [GroupCount(key=k, records=n, share=round(n / total, 4))
            for k, n in grouped.head(limit if limit is not None else grouped.height).iter_rows()]


def language_mix(records: pl.DataFrame, by: str) -> list[LanguageMix]:
    """The languages of each group (``by``: source, file), in the order the groups first appear."""
    grouped = records.group_by(by, "lang", maintain_order=True).len()
    mixes = []
    for (key,), group in grouped.group_by(by, maintain_order=True):
        ordered = group.sort(["len", "lang"], descending=[True, False])
        languages = dict(zip(ordered["lang"].fill_null("und").to_list(), ordered["len"].to_list(), strict=True))
        total = sum(languages.values())
        top, top_n = next(iter(languages.items()))
        mixes.append(LanguageMix(key=str(key), records=total, languages=languages, top=top,
                                 top_share=round(top_n / total, 4)))
    return mixes


def leading_word() -> pl.Expr:
    return pl.col("instruction").str.extract(LEADING_WORD, 1).str.to_lowercase().fill_null(NO_LEADING_WORD)


def _sample(texts: pl.Series, size: int) -> pl.Series:
    if texts.len() <= size:
        return texts
    rows = np.sort(np.random.default_rng(SEED).choice(texts.len(), size, replace=False))
    return texts.gather(rows)


def bigram_measures(instructions: pl.Series) -> tuple[float, float]:
    """(Shannon entropy in bits, distinct / all) of the token bigrams of the instructions (``minhash``'s tokens:
    words, or characters of CJK text); an instruction of one token counts as a bigram with an empty end."""
    tokens = pl.DataFrame({"tokens": minhash.token_series(instructions)}).with_row_index("row").explode("tokens")
    bigrams = tokens.drop_nulls("tokens").select(
        pl.concat_str([pl.col("tokens"), pl.col("tokens").shift(-1).over("row").fill_null("")], separator=" ")
    ).to_series()
    if bigrams.is_empty():
        return 0.0, 0.0
    frequency = bigrams.value_counts()["count"].to_numpy() / bigrams.len()
    return round(float(-(frequency * np.log2(frequency)).sum()), 3), round(len(frequency) / bigrams.len(), 4)


def diversity(records: pl.DataFrame) -> Diversity:
    leads = counts(records, leading_word())
    sample = _sample(records["instruction"], BIGRAM_SAMPLE)
    entropy, distinct = bigram_measures(sample)
    total = max(records.height, 1)
    return Diversity(
        instructions=records.height,
        distinct_instructions=records.select(
            pl.col("instruction").str.to_lowercase().str.strip_chars(FOLDED_ENDS).n_unique()).item(),
        leading_words=len(leads), top_leading_words=leads[:TOP_LEADING_WORDS],
        top10_share=round(sum(g.records for g in leads[:10]) / total, 4),
        sample=sample.len(), bigram_entropy=entropy, distinct_bigrams=distinct,
    )


def dataset_profile(records: pl.DataFrame, tokens: pl.Series | None, tokens_note: str) -> DatasetProfile:
    """The whole profile of ``records`` (which need ``lang``); ``tokens`` holds each example's token length."""
    return DatasetProfile(
        records=records.height, languages=counts(records, "lang"),
        languages_by_source=language_mix(records, "source"),
        lengths=lengths(records, tokens, tokens_note), diversity=diversity(records),
        by_task=counts(records, "task"), by_source=counts(records, "source"),
    )


def example_lengths(tokenized: pl.DataFrame) -> pl.Series:
    """The token length of every example in the index of tokenized/'s rows: one per row (``n_tokens``), or each
    packed row's ``seq_lengths``."""
    if "seq_lengths" in tokenized.columns:
        return tokenized["seq_lengths"].explode().drop_nulls()
    return tokenized["n_tokens"]


def build_profile(train: pl.DataFrame, tokenized: dict[str, pl.DataFrame]) -> DatasetProfile:
    """The profile of a build's train split as written (repeats included); token lengths come from the tokenize
    stage's index of tokenized/train, so nothing is tokenized twice."""
    rows = tokenized.get("train")
    if rows is None:
        return dataset_profile(train, None, "tokenize is off: no token lengths")
    return dataset_profile(train, example_lengths(rows),
                           "tokens of each train example as tokenized (tokenized/train: template, BOS and EOS, "
                           "cut at tokenize.cutoff_len when overflow is truncate)")
