"""Tokenize: render each record with a template, tokenize its segments, build prompt-masked labels, cut or
drop what is too long, and optionally pack examples into rows of ``cutoff_len``.

Contract, for every record kept: ``input_ids`` starts with the template's BOS (``llamafactory-alpaca`` has
none, as LLaMA-Factory's); every answer is followed by EOS; ``labels`` equal ``input_ids`` on the answer
segments (answer tokens and their EOS, and ``llamafactory-alpaca``'s "\n\n" after it) and are -100 elsewhere
(everywhere but BOS with ``train_on_prompt``; history answers are masked too with ``mask_history``). A record
longer than ``cutoff_len`` is quarantined as ``too_long`` (``overflow: drop``) or cut to it (``truncate``; if no
answer token survives it is quarantined all the same); ``filters.min_tokens`` / ``max_tokens`` quarantine as
``too_few_tokens`` / ``too_many_tokens`` on the uncut length.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import polars as pl

from pipeline import collector, templates
from pipeline.packing import first_fit_decreasing
from pipeline.stage import REJECT_SCHEMA, first_rule
from pipeline.templates import Kind, chat_messages
from schemas.mix import FiltersSpec, TokenizeSpec

STAGE = "tokenize"
IGNORE = -100
BATCH = 2_000  # records per encode call; 10k held 5x the result in transient encodings, for no speed gain
TOKEN_COLUMNS = {"id": pl.String(), "source": pl.String(), "task": pl.String(),
                 "input_ids": pl.List(pl.Int32()), "labels": pl.List(pl.Int32()),
                 "n_tokens": pl.Int64(), "truncated": pl.Boolean()}


# a reject of this stage: REJECT_SCHEMA and the record's task (the token statistics count rejects by task)
REJECT_COLUMNS = {"id": pl.String(), "source": pl.String(), "task": pl.String(),
                  **{k: v for k, v in REJECT_SCHEMA.items() if k not in ("id", "source")}}


@dataclass
class Tokenized:
    examples: pl.DataFrame  # TOKEN_COLUMNS, one row per record kept
    rejected: pl.DataFrame  # REJECT_COLUMNS


@collector.paused()
def tokenize(frame: pl.DataFrame, tokenizer: Any, spec: TokenizeSpec, filters: FiltersSpec) -> Tokenized:
    """Every record of ``frame`` (see ``batches``), in one result, with Python's cyclic collector paused
    (pipeline/collector.py)."""
    parts = list(batches(frame, tokenizer, spec, filters))
    if not parts:
        return Tokenized(pl.DataFrame(schema=TOKEN_COLUMNS), pl.DataFrame(schema=REJECT_COLUMNS))
    return Tokenized(pl.concat([p.examples for p in parts]), pl.concat([p.rejected for p in parts]))


def batches(frame: pl.DataFrame, tokenizer: Any, spec: TokenizeSpec, filters: FiltersSpec) -> Iterator[Tokenized]:
    """The records of ``frame`` ``BATCH`` at a time, in order: render -> encode -> assemble -> length rules. The
    encoding of one batch (Rust, without the GIL) runs in a thread while this one renders the next batch and
    assembles the previous."""
    for batch, table in _tables(frame, tokenizer, spec):
        yield _apply_limits(batch, table, spec, filters)


def _tables(frame: pl.DataFrame, tokenizer: Any, spec: TokenizeSpec) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    slices = [frame.slice(start, BATCH) for start in range(0, frame.height, BATCH)]
    if spec.template == "chat_template":
        for b in slices:
            ids = [_chat_template_ids(messages, tokenizer, spec) for messages in chat_messages(b, spec.system)]
            yield b, _table(b, _flatten(ids), spec.cutoff_len)
        return
    constants: dict[str, list[int]] = {}
    with ThreadPoolExecutor(max_workers=1) as encoder:
        pending = None
        for batch in [*slices, None]:
            upcoming = None
            if batch is not None:
                parts = templates.segments(batch, spec.template, spec.system, spec.mask_history)
                upcoming = (batch, parts, encoder.submit(_encode_segments, parts, tokenizer, constants))
            if pending is not None:
                done, done_parts, encoded = pending
                flat = _assemble(done_parts, done.height, encoded.result(), constants, tokenizer,
                                 spec.train_on_prompt)
                yield done, _table(done, flat, spec.cutoff_len)
            pending = upcoming


@dataclass
class _Flat:
    """A batch's token ids end to end, whether each is trained, and where each record starts."""

    ids: np.ndarray  # int32
    trained: np.ndarray  # bool
    offsets: np.ndarray  # int32: one more than the records


def _table(batch: pl.DataFrame, flat: _Flat, cut: int) -> pl.DataFrame:
    """TOKEN_COLUMNS plus ``n_full``, the length before the cutoff; labels are ids where trained, else -100."""
    import pyarrow as pa  # here, not at module level: a build without tokenization never loads it

    ids = pl.Series(flat.ids)
    labels = pl.select(pl.when(pl.Series(flat.trained)).then(ids).otherwise(pl.lit(IGNORE, dtype=pl.Int32))).to_series()
    starts = pa.array(flat.offsets, type=pa.int32())
    full = pl.Series(np.diff(flat.offsets), dtype=pl.Int64)
    over = bool((full > cut).any())

    def as_lists(values: pl.Series) -> pl.Series:
        lists = pl.Series(pl.from_arrow(pa.ListArray.from_arrays(starts, values.to_arrow())))
        return lists.list.head(cut) if over else lists  # head copies every list: only when one is too long

    return batch.select("id", "source", "task").with_columns(
        as_lists(ids).alias("input_ids"),
        as_lists(labels).alias("labels"),
        full.clip(upper_bound=cut).alias("n_tokens"),
        (full > cut).alias("truncated"),
        full.alias("n_full"),
    )


def _flatten(sequences: Sequence[tuple[list[int], list[int]]]) -> _Flat:
    lengths = [len(ids) for ids, _ in sequences]
    total = sum(lengths)
    return _Flat(np.fromiter(chain.from_iterable(ids for ids, _ in sequences), dtype=np.int32, count=total),
                 np.fromiter(chain.from_iterable(labels for _, labels in sequences), dtype=np.int32, count=total)
                 != IGNORE,
                 np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))


def _encode_segments(parts: pl.DataFrame, tokenizer: Any,
                     constants: dict[str, list[int]]) -> tuple[list[list[int]], list[list[int]]]:
    """Ids of every text segment of a batch (``templates.segments``): one batched fast-tokenizer call per kind
    (plain, glued); constant segments are tokenized once into ``constants`` and looked up by ``_assemble``."""
    backend = tokenizer.backend_tokenizer
    kind, texts = parts["kind"], parts["text"]
    for text in texts.filter(kind == Kind.CONSTANT).unique().to_list():
        if text not in constants:
            constants[text] = backend.encode(text, add_special_tokens=False).ids
    plain = texts.filter(kind == Kind.TEXT).to_list()
    glued = (tokenizer.bos_token + texts.filter(kind == Kind.GLUED)).to_list()
    # the ids of encode_batch without the character offsets, which nothing here reads: ~30% less CPU
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)  # tokenizers >= 0.20.0
    return ([e.ids for e in encode(plain, add_special_tokens=False)],
            [e.ids[1:] for e in encode(glued, add_special_tokens=False)])


def _assemble(parts: pl.DataFrame, records: int, encoded: tuple[list[list[int]], list[list[int]]],
              constants: dict[str, list[int]], tokenizer: Any, train_on_prompt: bool) -> _Flat:
    """The batch's ids, end to end, and which are trained: answers and their EOS, or all but BOS. The pieces
    (plain ids, glued ids, constants, BOS, EOS) are put in the segments' order by one index."""
    plain, glued = encoded
    known = list(constants)
    pieces = [*plain, *glued, *(constants[t] for t in known), [tokenizer.bos_token_id], [tokenizer.eos_token_id]]
    kind = pl.col("kind")
    first = {Kind.TEXT: 0, Kind.GLUED: len(plain), Kind.CONSTANT: len(plain) + len(glued),
             Kind.BOS: len(pieces) - 2, Kind.EOS: len(pieces) - 1}  # each kind's first piece
    within = (pl.when(kind == Kind.CONSTANT).then(pl.col("text").replace_strict(known, list(range(len(known))),
                                                                                 default=0, return_dtype=pl.Int64))
              .when(kind.is_in([Kind.TEXT, Kind.GLUED])).then(pl.int_range(pl.len(), dtype=pl.Int64).over(kind))
              .otherwise(0))
    start = kind.replace_strict([int(k) for k in first], list(first.values()), return_dtype=pl.Int64)
    which = parts.select(start + within).to_series().to_list()
    ordered = [pieces[k] for k in which]
    lengths = np.fromiter(map(len, ordered), dtype=np.int64, count=len(ordered))
    ids = np.fromiter(chain.from_iterable(ordered), dtype=np.int32, count=int(lengths.sum()))
    trained_segments = parts["trained"].to_numpy()
    if train_on_prompt:
        trained_segments = trained_segments | (parts["kind"] != Kind.BOS).to_numpy()
    per_record = np.bincount(parts["row"].to_numpy(), weights=lengths, minlength=records).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(per_record)]).astype(np.int32)
    return _Flat(ids, np.repeat(trained_segments, lengths), offsets)


def _chat_template_ids(messages: list[dict[str, str]], tokenizer: Any,
                       spec: TokenizeSpec) -> tuple[list[int], list[int]]:
    """The tokenizer's own chat template; each assistant turn is found as the difference between the
    rendering that ends with it and the prompt before it (which must be a prefix, as in every sane template)."""
    if not tokenizer.chat_template:
        raise ValueError("tokenize.template is chat_template, but the tokenizer has no chat template")
    ids = _ids(tokenizer.apply_chat_template(messages, tokenize=True))
    labels = list(ids) if spec.train_on_prompt else [IGNORE] * len(ids)
    answers = [k for k, m in enumerate(messages) if m["role"] == "assistant"]
    for n, k in enumerate(answers):
        if spec.mask_history and n < len(answers) - 1:
            continue
        prompt = _ids(tokenizer.apply_chat_template(messages[:k], tokenize=True, add_generation_prompt=True))
        end = len(_ids(tokenizer.apply_chat_template(messages[: k + 1], tokenize=True)))
        if ids[: len(prompt)] != prompt:
            raise ValueError("the chat template's prompt is not a prefix of the conversation: cannot mask it")
        labels[len(prompt):end] = ids[len(prompt):end]
    return ids, labels


def _ids(rendered: Any) -> list[int]:
    return list(rendered["input_ids"] if isinstance(rendered, dict) or hasattr(rendered, "keys") else rendered)


def _apply_limits(frame: pl.DataFrame, examples: pl.DataFrame, spec: TokenizeSpec, filters: FiltersSpec) -> Tokenized:
    """Quarantine by token length; the rules are checked in order and the first that holds is the reason."""
    n, cut = pl.col("n_full"), spec.cutoff_len
    no_answer_left = pl.col("labels").list.eval(pl.element() != IGNORE).list.any().not_()
    rules: list[tuple[str, pl.Expr, pl.Expr]] = []
    if filters.min_tokens is not None:
        rules.append(("too_few_tokens", n < filters.min_tokens,
                      pl.format("{} tokens < filters.min_tokens {}", n, pl.lit(filters.min_tokens))))
    if filters.max_tokens is not None:
        rules.append(("too_many_tokens", n > filters.max_tokens,
                      pl.format("{} tokens > filters.max_tokens {}", n, pl.lit(filters.max_tokens))))
    too_long = (n > cut) if spec.overflow == "drop" else no_answer_left
    rules.append(("too_long", too_long, pl.format("{} tokens > tokenize.cutoff_len {}", n, pl.lit(cut))))
    reason = first_rule([(name, cond) for name, cond, _ in rules])
    detail = pl.coalesce([pl.when(cond).then(text) for _, cond, text in rules])
    flags = examples.select("id", reason.alias("reason"), detail.alias("detail"))
    dropped = flags.filter(pl.col("reason").is_not_null())
    kept = examples.select(TOKEN_COLUMNS.keys())
    if dropped.height:  # a filter copies every kept list: only when something goes
        kept = kept.filter(flags["reason"].is_null())
    rejected = dropped.select("id", "reason", "detail").join(
        frame.select("id", "source", "task", "origin"), on="id", how="left", maintain_order="left"
    ).select("id", "source", "task", pl.lit(STAGE).alias("stage"), "reason", "detail", "origin")
    return Tokenized(kept, rejected)


def pack(examples: pl.DataFrame, capacity: int) -> pl.DataFrame:
    """Rows of whole examples (first-fit-decreasing), each in the columns every trainer reads as is:

    - ``input_ids`` and ``labels``: the examples end to end;
    - ``attention_mask``: each token's example within the row, numbered from 1 (LLaMA-Factory's ``neat_packing``
      layout, whose 4D block-diagonal mask compares these numbers, and axolotl's multipack one; 0 would be
      padding). transformers reads a 2D mask as booleans, so any other reader sees ones;
    - ``position_ids``: restarting at 0 for each example (transformers' packed-sequence detection, flash
      attention's variable-length path, LLaMA-Factory's ``neat_packing`` on flash attention, our trainer);
    - ``seq_lengths``: each example's length in order (TRL's padding-free collator derives ``position_ids``
      from it; what varlen attention needs);
    - ``ids``: the record ids in order, which ``writers.write_dataset_dict`` moves to ``record_ids.parquet``
      (no trainer collates a list of strings)."""
    rows = first_fit_decreasing(examples["n_tokens"].to_list(), capacity)
    order = [i for row in rows for i in row]
    row_of = [r for r, row in enumerate(rows) for _ in row]
    number = [k + 1 for row in rows for k in range(len(row))]
    placed = examples[order].with_columns(pl.Series("_row", row_of, dtype=pl.Int64),
                                          pl.Series("_number", number, dtype=pl.Int32))
    placed = placed.with_columns(pl.int_ranges(0, pl.col("n_tokens"), dtype=pl.Int32).alias("position_ids"),
                                 pl.col("_number").repeat_by(pl.col("n_tokens")).alias("attention_mask"))
    packed = placed.group_by("_row", maintain_order=True).agg(
        pl.col("id").alias("ids"),
        pl.col("input_ids").explode(),
        pl.col("attention_mask").explode(),
        pl.col("labels").explode(),
        pl.col("position_ids").explode(),
        pl.col("n_tokens").cast(pl.Int32).alias("seq_lengths"),
    )
    return packed.select("ids", "input_ids", "attention_mask", "labels", "position_ids", "seq_lengths")


def attention_mask(input_ids: pl.Expr) -> pl.Expr:
    """An unpacked row's mask: all ones, as long as each row (built from the lengths: no temporary list of the
    ids' width)."""
    return pl.lit(1, dtype=pl.Int8).repeat_by(input_ids.list.len()).alias("attention_mask")


def token_stats(examples: pl.DataFrame, rejected: pl.DataFrame, by: str) -> pl.DataFrame:
    """Per ``by`` (task or source): count, mean, p50, p95 and max length, truncated and dropped."""
    stats = examples.group_by(by).agg(
        pl.len().alias("count"), pl.col("n_tokens").mean().alias("mean"),
        pl.col("n_tokens").quantile(0.5, "nearest").alias("p50"),
        pl.col("n_tokens").quantile(0.95, "nearest").alias("p95"),
        pl.col("n_tokens").max().alias("max"), pl.col("truncated").sum().alias("truncated"),
    )
    dropped = rejected.group_by(by).agg(pl.len().alias("dropped"))
    return stats.join(dropped, on=by, how="full", coalesce=True).fill_null(0).sort(by)
