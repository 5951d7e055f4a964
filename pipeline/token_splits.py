"""The tokenize stage's work on both splits: every record through the template, masks, cutoff and packing, and
the rows of tokenized/ streamed to their files as they are made (pipeline/io/token_files.py).

Contract: ``tokenize_splits(train, eval_, tokenizer, spec, folder)`` -> ``Outcome``: kept is train without the
records tokenization rejected (too long, too few or many tokens), output ``eval`` the same for eval; the split
files ``train.arrow`` and ``eval.arrow`` are written in ``folder`` (``Outcome.files``) and outputs
``tokenized/train`` and ``tokenized/eval`` index their rows: ``id`` and ``n_tokens`` per row, or a packed row's
``ids`` and ``seq_lengths`` (record_ids.parquet and the report's profile come from them). Each record is
tokenized once: its repeats (mixture upsampling) reuse its example, and train reuses ``tokenized`` (a mixture in
tokens made it) when given.

Memory: without packing, a split's token lists are held a batch at a time, plus those of the records the
mixture repeats (written again after every first copy, in mixture.sample's order); packing places examples by
first-fit-decreasing over the whole split, so it holds all of them until the rows are written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from pipeline import tokenize
from pipeline.io import token_files
from pipeline.io.tokenizer import tokenizer_source
from pipeline.report.stages import token_stats
from pipeline.stage import Outcome, without
from schemas.mix import MixSpec, TokenizeSpec
from schemas.report import TokenReport

SPLITS = ("train", "eval")
REPEAT_SLICE = 10_000  # repeats whose rows are gathered and written at a time


@dataclass
class _Split:
    kept: pl.DataFrame  # the split's rows without the rejected records
    index: pl.DataFrame  # per row of tokenized/: id, n_tokens; packed: ids, seq_lengths
    examples: pl.DataFrame  # per record tokenized: id, source, task, n_tokens, truncated (no lists)
    rejected: pl.DataFrame
    tokens: int  # in the rows written, repeats included


def tokenize_splits(train: pl.DataFrame, eval_: pl.DataFrame, tokenizer: Any, spec: MixSpec, folder: Path,
                    tokenized: pl.DataFrame | None = None) -> Outcome:
    """Both splits tokenized into ``folder`` (see the module's contract)."""
    settings = spec.tokenize
    folder.mkdir(parents=True, exist_ok=True)
    done: dict[str, _Split] = {}
    for name, frame in zip(SPLITS, (train, eval_), strict=True):
        firsts = frame.filter(pl.col("repeat") == 0)
        if name == "train" and tokenized is not None:
            parts: Iterable[tokenize.Tokenized] = _given(firsts, tokenized)
        else:
            parts = tokenize.batches(firsts, tokenizer, settings, spec.filters)
        done[name] = _write_split(parts, frame, settings, folder / f"{name}.arrow")
    examples = pl.concat([s.examples for s in done.values()])
    rejected = pl.concat([s.rejected for s in done.values()])
    train_rows, train_tokens = done["train"].index.height, done["train"].tokens
    report = TokenReport(
        tokenizer=tokenizer_source(settings.tokenizer), template=settings.template, cutoff_len=settings.cutoff_len,
        packing=settings.packing, train_tokens=train_tokens, eval_tokens=done["eval"].tokens, train_rows=train_rows,
        packing_efficiency=(round(train_tokens / (train_rows * settings.cutoff_len), 4)
                            if settings.packing and train_rows else None),
        by_task=token_stats(examples, rejected, "task"),
        by_source=token_stats(examples, rejected, "source"),
    )
    outputs = {"eval": done["eval"].kept} | {f"tokenized/{name}": done[name].index for name in SPLITS}
    return Outcome(done["train"].kept, rejected, report, outputs, files=folder)


def _given(firsts: pl.DataFrame, tokenized: pl.DataFrame) -> Iterator[tokenize.Tokenized]:
    """The examples a mixture in tokens already made, in the order of ``firsts``, as batches."""
    ordered = firsts.select("id").join(tokenized, on="id", how="left", maintain_order="left")
    none = pl.DataFrame(schema=tokenize.REJECT_COLUMNS)
    for start in range(0, ordered.height, tokenize.BATCH):
        yield tokenize.Tokenized(ordered.slice(start, tokenize.BATCH), none)


def _write_split(parts: Iterable[tokenize.Tokenized], frame: pl.DataFrame, settings: TokenizeSpec,
                 path: Path) -> _Split:
    """The split's rows to ``path`` as its examples arrive: first copies in order, then the repeats."""
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
        raise AssertionError("tokenize: split rows are not first copies then repeats (mixture.sample's order)")
    writer.close(_no_rows(settings.packing))
    tokens = int(all_examples["n_tokens"].sum()) + int(again["n_tokens"].sum())
    return _Split(kept, index, all_examples, all_rejects, tokens)


def _rows(examples: pl.DataFrame) -> pl.DataFrame:
    """Unpacked rows of tokenized/: one example each."""
    return examples.select("input_ids", tokenize.attention_mask(pl.col("input_ids")), "labels")


def _no_rows(packing: bool) -> pl.DataFrame:
    """The columns of a split's rows, for a split that got none."""
    none = pl.DataFrame(schema=tokenize.TOKEN_COLUMNS)
    return tokenize.pack(none, 1).drop("ids") if packing else _rows(none)


_EXAMPLE_COLUMNS = {k: v for k, v in tokenize.TOKEN_COLUMNS.items() if k not in ("input_ids", "labels")}
