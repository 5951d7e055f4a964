"""Our records in the shapes the field's trainers read, and back.

Contract: pure expressions and functions over frames of records (``instruction``, ``input``, ``output``,
``system``, ``history`` as a list of ``{user, assistant}`` structs, the shape every stage works on):
- ``messages``: the OpenAI-style conversation (``[{role, content}]``: the system prompt when there is one, every
  earlier turn, then the prompt and the answer), what TRL's SFTTrainer, axolotl's ``chat_template`` type and
  LLaMA-Factory's ``openai``/``sharegpt`` formats read;
- ``history_pairs`` / ``history_structs``: ``history`` as ``[[query, response], ...]`` (LLaMA-Factory's alpaca
  format, how train/eval.parquet store it) and back; ``read_records`` reads either shape, so builds written
  before the pairs read as before;
- ``sharegpt``: ``conversations`` with ``from`` (human / gpt) and ``value``.

The prompt of the last turn is the instruction, then the input on the next line when there is one:
``instruction\\ninput``, as LLaMA-Factory's alpaca converter joins them, so one record gives one prompt
whichever of our files a tool reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl

HISTORY_PAIRS = pl.List(pl.List(pl.String()))
MESSAGE = pl.Struct({"role": pl.String(), "content": pl.String()})


def prompt() -> pl.Expr:
    """The user message of the last turn: the instruction, and the input on the next line when there is one."""
    has_input = pl.col("input").fill_null("") != ""
    return pl.when(has_input).then(pl.col("instruction") + "\n" + pl.col("input")).otherwise(pl.col("instruction"))


def history_pairs(history: pl.Expr) -> pl.Expr:
    return history.list.eval(pl.concat_list(pl.element().struct.field("user"),
                                            pl.element().struct.field("assistant")))


def history_structs(history: pl.Expr) -> pl.Expr:
    return history.list.eval(pl.struct(pl.element().list.get(0).alias("user"),
                                       pl.element().list.get(1).alias("assistant")))


def messages(records: pl.DataFrame, roles: tuple[str, str, str] = ("system", "user", "assistant"),
             keys: tuple[str, str] = ("role", "content")) -> pl.Series:
    """Each record's conversation, in order: system (when not empty), the history's turns, prompt, answer.
    ``roles`` and ``keys`` name the speakers and the fields (ShareGPT: human / gpt, from / value)."""
    system_role, user, assistant = roles
    role, content = keys
    rows = records.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"), "system", "history",
                          prompt().alias("_prompt"), "output")

    def part(frame: pl.DataFrame, order: pl.Expr, speaker: str, text: pl.Expr) -> pl.DataFrame:
        return frame.select("_row", order.alias("_order"), pl.lit(speaker).alias(role), text.alias(content))

    turns = rows.select("_row", "history").explode("history").filter(pl.col("history").is_not_null())
    turns = turns.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("_row").alias("_turn"))
    last = pl.lit(1 << 40, pl.Int64)  # after every earlier turn
    long = pl.concat([
        part(rows.filter(pl.col("system").fill_null("") != ""), pl.lit(0, pl.Int64), system_role, pl.col("system")),
        part(turns, 2 * pl.col("_turn") + 1, user, pl.col("history").struct.field("user")),
        part(turns, 2 * pl.col("_turn") + 2, assistant, pl.col("history").struct.field("assistant")),
        part(rows, last, user, pl.col("_prompt")),
        part(rows, last + 1, assistant, pl.col("output")),
    ]).sort("_row", "_order")
    grouped = long.group_by("_row", maintain_order=True).agg(pl.struct(role, content).alias("messages"))
    return grouped["messages"]


def for_files(records: pl.DataFrame) -> pl.DataFrame:
    """train/eval.parquet's columns: ``history`` as pairs, and ``messages`` after it."""
    if not records.height:
        return records.with_columns(pl.col("history").cast(HISTORY_PAIRS),
                                    pl.Series("messages", [], dtype=pl.List(MESSAGE)))
    return records.with_columns(history_pairs(pl.col("history")).alias("history"), messages(records))


def read_records(paths: Sequence[Path], columns: Iterable[str] | None = None) -> pl.DataFrame:
    """A build's split (its files: ``split_files.paths``) with ``history`` as the stages use it (structs),
    whichever shape the files have; ``columns`` picks columns (``messages`` is never needed to rebuild a
    record)."""
    frame = pl.read_parquet(list(paths), columns=list(columns) if columns is not None else None)
    if "history" in frame.columns and frame.schema["history"] == HISTORY_PAIRS:
        frame = frame.with_columns(history_structs(pl.col("history")).alias("history"))
    return frame
