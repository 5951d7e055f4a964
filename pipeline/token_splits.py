"""The tokenize stage's work on both splits: every record through the template, masks, cutoff and packing, and
the rows of tokenized/ streamed to their files as they are made (pipeline/io/token_files.py), shard by shard.

Contract: ``tokenize_splits(train, eval_, tokenizer, spec, folder)`` -> ``Outcome``: kept is train without the
records tokenization rejected (too long, too few or many tokens), output ``eval`` the same for eval; each split's
shard files (``token_files.shard_path``) are written in ``folder`` (``Outcome.files``) and outputs
``tokenized/train`` and ``tokenized/eval`` index their rows: ``id`` and ``n_tokens`` per row, or a packed row's
``ids`` and ``seq_lengths`` (record_ids.parquet and the report's profile come from them). Each record is
tokenized once: its repeats (mixture upsampling) reuse its example, and train reuses ``tokenized`` (a mixture in
tokens made it) when given.

Shards (``shard_rows``): a split arrives in mixture.sample's order, first copies then repeats. Shard k holds
first copies k x ``tokenize.shard_records`` up to the next shard's, in order, then their repeats, in order; a
split has at least one shard. The shards are independent (packing fills rows within a shard), so ``run`` may
tokenize them anywhere (the Dask runner: one task per shard, flows/dask_runner.py) and the files are the same;
kept follows the shards' order, so train.parquet's rows are tokenized/'s (unpacked: row for row). With a split
under ``shard_records`` records (one shard) the order is the mixture's.

Memory: a shard's rows are copied out of the split; without packing its token lists are held a batch at a time,
plus those of the records it repeats (written after its first copies); packing places a shard's examples by
first-fit-decreasing, so it holds all of them until the rows are written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipeline import collector, tokenize
from pipeline.io import token_files
from pipeline.io.tokenizer import tokenizer_source
from pipeline.report.stages import token_stats
from pipeline.stage import Outcome, without
from schemas.mix import MixSpec, TokenizeSpec
from schemas.report import TokenReport

SPLITS = ("train", "eval")
REPEAT_SLICE = 10_000  # repeats whose rows are gathered and written at a time


@dataclass
class TokenShard:
    """What tokenizing one shard leaves besides its file: nothing as large as a token list."""

    index: pl.DataFrame  # per row of the file: id, n_tokens; packed: ids, seq_lengths
    examples: pl.DataFrame  # per record tokenized: id, source, task, n_tokens, truncated
    rejected: pl.DataFrame
    tokens: int  # in the rows written, repeats included


@dataclass(frozen=True)
class ShardJob:
    split: str
    number: int
    rows: np.ndarray  # the shard's rows of its split's frame, in order
    path: Path  # its file


ShardRunner = Callable[[Sequence[ShardJob]], list[TokenShard]]


def tokenize_splits(train: pl.DataFrame, eval_: pl.DataFrame, tokenizer: Any, spec: MixSpec, folder: Path,
                    tokenized: pl.DataFrame | None = None, run: ShardRunner | None = None) -> Outcome:
    """Both splits tokenized into ``folder``, shard by shard: by ``run`` (each job's shard tokenized by
    ``tokenize_shard``, results in the jobs' order), in this process by default (see the module's contract)."""
    settings = spec.tokenize
    folder.mkdir(parents=True, exist_ok=True)
    frames = dict(zip(SPLITS, (train, eval_), strict=True))
    jobs = [ShardJob(name, k, rows, token_files.shard_path(folder, name, k))
            for name in SPLITS for k, rows in enumerate(shard_rows(frames[name], settings.shard_records))]

    def here(jobs: Sequence[ShardJob]) -> list[TokenShard]:
        return [tokenize_shard(take(frames[job.split], job.rows), tokenizer, spec, job.path,
                               tokenized if job.split == "train" else None) for job in jobs]

    done = (run or here)(jobs)
    shards = {name: [shard for job, shard in zip(jobs, done, strict=True) if job.split == name] for name in SPLITS}
    rejected = pl.concat([shard.rejected for name in SPLITS for shard in shards[name]])
    kept = {name: _kept(frames[name], [job.rows for job in jobs if job.split == name], rejected) for name in SPLITS}
    index = {name: pl.concat([shard.index for shard in shards[name]]) for name in SPLITS}
    tokens = {name: sum(shard.tokens for shard in shards[name]) for name in SPLITS}
    examples = pl.concat([shard.examples for name in SPLITS for shard in shards[name]])
    train_rows = index["train"].height
    report = TokenReport(
        tokenizer=tokenizer_source(settings.tokenizer), template=settings.template, cutoff_len=settings.cutoff_len,
        packing=settings.packing, train_tokens=tokens["train"], eval_tokens=tokens["eval"], train_rows=train_rows,
        packing_efficiency=(round(tokens["train"] / (train_rows * settings.cutoff_len), 4)
                            if settings.packing and train_rows else None),
        by_task=token_stats(examples, rejected, "task"),
        by_source=token_stats(examples, rejected, "source"),
    )
    outputs = {"eval": kept["eval"]} | {f"tokenized/{name}": index[name] for name in SPLITS}
    return Outcome(kept["train"], rejected, report, outputs, files=folder)


def shard_rows(frame: pl.DataFrame, size: int) -> list[np.ndarray]:
    """The rows of each shard of ``frame`` (a split: first copies, then repeats), as the module says."""
    firsts = frame.select("id", "repeat").filter(pl.col("repeat") == 0).select(
        "id", shard=pl.int_range(pl.len(), dtype=pl.Int64) // size)
    numbered = frame.select("id").with_row_index("row").join(firsts, on="id", how="left", maintain_order="left")
    if numbered["shard"].null_count():
        raise ValueError("tokenize: a repeated record has no first copy in its split")
    shard = numbered["shard"].to_numpy()
    count = max(1, -(-firsts.height // size))
    order = np.argsort(shard, kind="stable")  # the split's order within each shard: first copies, then repeats
    return np.split(order, np.searchsorted(shard[order], np.arange(1, count)))


def take(frame: pl.DataFrame, rows: np.ndarray) -> pl.DataFrame:
    """``frame``'s ``rows`` in order (``frame`` itself when they are all of its rows in order: no copy)."""
    if len(rows) == frame.height and np.array_equal(rows, np.arange(frame.height)):
        return frame
    return frame[rows]


@collector.paused()
def tokenize_shard(frame: pl.DataFrame, tokenizer: Any, spec: MixSpec, path: Path,
                   tokenized: pl.DataFrame | None = None) -> TokenShard:
    """The rows of one shard (first copies, then their repeats) tokenized and written to ``path``, with Python's
    cyclic collector paused (pipeline/collector.py)."""
    firsts = frame.filter(pl.col("repeat") == 0)
    if tokenized is not None:
        parts: Iterable[tokenize.Tokenized] = _given(firsts, tokenized)
    else:
        parts = tokenize.batches(firsts, tokenizer, spec.tokenize, spec.filters)
    return _write_split(parts, frame, spec.tokenize, path)


def _kept(frame: pl.DataFrame, rows: list[np.ndarray], rejected: pl.DataFrame) -> pl.DataFrame:
    """The split's rows in its shards' order, without the rejected records."""
    order = np.concatenate(rows)
    if rejected.height:
        keep = (~frame["id"].is_in(rejected["id"].implode())).to_numpy()
        order = order[keep[order]]
    return take(frame, order)


def _given(firsts: pl.DataFrame, tokenized: pl.DataFrame) -> Iterator[tokenize.Tokenized]:
    """The examples a mixture in tokens already made, in the order of ``firsts``, as batches."""
    ordered = firsts.select("id").join(tokenized, on="id", how="left", maintain_order="left")
    none = pl.DataFrame(schema=tokenize.REJECT_COLUMNS)
    for start in range(0, ordered.height, tokenize.BATCH):
        yield tokenize.Tokenized(ordered.slice(start, tokenize.BATCH), none)


def _write_split(parts: Iterable[tokenize.Tokenized], frame: pl.DataFrame, settings: TokenizeSpec,
                 path: Path) -> TokenShard:
    """The shard's rows to ``path`` as its examples arrive: first copies in order, then the repeats."""
    repeated = frame.filter(pl.col("repeat") > 0).select("id").unique()
    writer = token_files.SplitWriter(path)
    examples, rejects, held = [], [], []
    for part in parts:
        examples.append(part.examples.select("id", "source", "task", "n_tokens", "truncated"))
        rejects.append(part.rejected)
        if settings.packing:
            held.append(part.examples)
            continue
        writer.write(_rows(part.examples))
        if repeated.height:
            held.append(part.examples.join(repeated, on="id", how="semi"))
    all_examples = pl.concat(examples) if examples else pl.DataFrame(schema=_EXAMPLE_COLUMNS)
    all_rejects = pl.concat(rejects) if rejects else pl.DataFrame(schema=tokenize.REJECT_COLUMNS)
    kept = without(frame, all_rejects)
    pool = pl.concat(held, rechunk=False) if held else pl.DataFrame(schema=tokenize.TOKEN_COLUMNS)
    repeats = kept.filter(pl.col("repeat") > 0).select("id")
    if settings.packing:
        again = repeats.join(pool, on="id", how="left", maintain_order="left")
        packed = tokenize.pack(pl.concat([pool, again], rechunk=False), settings.cutoff_len)
        writer.write(packed.drop("ids"))
        index = packed.select("ids", "seq_lengths")
        again = again.select("id", "n_tokens")
    else:  # the repeats' rows a slice at a time: a copy of all their lists at once was the stage's peak
        written = []
        for start in range(0, repeats.height, REPEAT_SLICE):
            rows = repeats.slice(start, REPEAT_SLICE).join(pool, on="id", how="left", maintain_order="left")
            writer.write(_rows(rows))
            written.append(rows.select("id", "n_tokens"))
        again = pl.concat(written) if written else pl.DataFrame(schema={"id": pl.String(), "n_tokens": pl.Int64()})
        index = pl.concat([all_examples.select("id", "n_tokens"), again])
    if not pl.concat([all_examples["id"], again["id"]]).equals(kept["id"]):
        raise AssertionError("tokenize: shard rows are not first copies then repeats (mixture.sample's order)")
    writer.close(_no_rows(settings.packing))
    tokens = int(all_examples["n_tokens"].sum()) + int(again["n_tokens"].sum())
    return TokenShard(index, all_examples, all_rejects, tokens)


def _rows(examples: pl.DataFrame) -> pl.DataFrame:
    """Unpacked rows of tokenized/: one example each."""
    return examples.select("input_ids", tokenize.attention_mask(pl.col("input_ids")), "labels")


def _no_rows(packing: bool) -> pl.DataFrame:
    """The columns of a split's rows, for a split that got none."""
    none = pl.DataFrame(schema=tokenize.TOKEN_COLUMNS)
    return tokenize.pack(none, 1).drop("ids") if packing else _rows(none)


_EXAMPLE_COLUMNS = {k: v for k, v in tokenize.TOKEN_COLUMNS.items() if k not in ("input_ids", "labels")}
