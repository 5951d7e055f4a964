"""Prompt templates: every record of a frame becomes rows of segments, each a piece of text or a special token,
marked as prompt (masked from the loss) or answer (trained), computed with polars expressions a batch at a time.

Segments are tokenized separately and their ids concatenated, so the boundary between a prompt and its answer
never merges into one token and the first token of an answer is never masked. A ``GLUED`` segment directly
follows a special token in the rendered text and is tokenized without SentencePiece's leading "▁", as the
tokenizer does on the whole string (LLaMA-2 chat's ``<s>[INST]``); a ``CONSTANT`` one is the same for many
records and is tokenized once.

A template is a table of rules over a record's exchanges (the history's (user, assistant) turns, then the
record's own prompt and answer): each rule is a segment's text, kind and whether it is trained, and which
exchanges have it (``first``: the first exchange only). ``segments`` applies them; ``render`` does it for one
record (the trainer's prompt).

The ``llamafactory-*`` templates are LLaMA-Factory's ``alpaca`` and ``llama2`` token for token (its
``src/llamafactory/data/template.py`` at ff6d4d12ee): LLaMA-Factory tokenizes every slot of its template on its
own (``tokenizer.encode(part, add_special_tokens=False)``), so each part gets a leading "▁" of its own, and
its labels train each whole assistant slot. Records with ``tools`` or tool-call turns are outside that parity
(LLaMA-Factory renders them with its tool formatter; the readers fold them into the system prompt).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import IntEnum
from functools import cache
from typing import Any, NamedTuple

import polars as pl

from pipeline.validate import HISTORY


class Special:
    BOS = "<bos>"
    EOS = "<eos>"


class Kind(IntEnum):
    TEXT = 0  # tokenized on its own
    GLUED = 1  # tokenized as if after a special token: no leading "▁"
    CONSTANT = 2  # the same for many records: tokenized once and its ids reused
    BOS = 3
    EOS = 4


class Segment(NamedTuple):
    """One segment of one record (``render``'s answer)."""

    text: str  # or Special.BOS / Special.EOS
    trained: bool
    glue: bool = False
    constant: bool = False


class Rule(NamedTuple):
    """A segment of each exchange that ``when`` selects (every exchange by default)."""

    text: pl.Expr
    kind: Kind | pl.Expr
    trained: pl.Expr | bool
    when: pl.Expr | None = None


class Template(NamedTuple):
    last_user: pl.Expr  # the record's own prompt, from its instruction and input
    rules: Callable[[str | None], list[Rule]]  # from the mix's default system prompt


ALPACA_SYSTEM = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
)
ALPACA_SYSTEM_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
)
# LLaMA-Factory's alpaca template: its default system, and what its assistant slot adds after the answer.
LLAMAFACTORY_ALPACA_SYSTEM = f"{ALPACA_SYSTEM}\n\n"
LLAMAFACTORY_ANSWER_TAIL = "\n\n"

# the exchange frame's columns (``exchanges``)
USER, ANSWER, FIRST, TRAINED = pl.col("user"), pl.col("answer"), pl.col("first"), pl.col("trained")
RECORD_SYSTEM, INPUT, INSTRUCTION = pl.col("record_system"), pl.col("input"), pl.col("instruction")
BOS, EOS = pl.lit(Special.BOS), pl.lit(Special.EOS)


def text(*parts: str | pl.Expr) -> pl.Expr:
    """Strings and string expressions end to end."""
    return pl.concat_str([pl.lit(p) if isinstance(p, str) else p for p in parts])


@cache
def python_whitespace() -> str:
    """Every character ``str.strip()`` strips (polars' own set leaves out a few, e.g. U+001C..U+001F)."""
    return "".join(c for c in map(chr, range(0x110000)) if c.isspace())


def system_or(default: str | pl.Expr | None) -> pl.Expr:
    """The record's system prompt, else ``default`` (``record["system"] or default``; "" for none)."""
    fallback = default if isinstance(default, pl.Expr) else pl.lit(default or "")
    return pl.when(RECORD_SYSTEM != "").then(RECORD_SYSTEM).otherwise(fallback)


def alpaca_user() -> pl.Expr:
    return pl.when(INPUT != "").then(text(INSTRUCTION, "\n\n### Input:\n", INPUT)).otherwise(INSTRUCTION)


def turns_user() -> pl.Expr:
    """Instruction and input joined by a blank line (the input left out when empty)."""
    return pl.when(INPUT != "").then(text(INSTRUCTION, "\n\n", INPUT)).otherwise(INSTRUCTION)


def llamafactory_user() -> pl.Expr:
    """As LLaMA-Factory's Alpaca converter: instruction and input joined by one newline, either left out when
    empty."""
    both = (INSTRUCTION != "") & (INPUT != "")
    return pl.when(both).then(text(INSTRUCTION, "\n", INPUT)).when(INPUT != "").then(INPUT).otherwise(INSTRUCTION)


def alpaca(system: str | None) -> list[Rule]:
    """Stanford Alpaca's prompt; history turns as earlier Instruction/Response pairs (as LLaMA-Factory). The
    preamble is split off at a newline, which LLaMA-2 never merges with its neighbours, so the two parts tokenize
    as the whole does when the rest is glued (no "▁" of its own after the "\\n"); a later prompt follows the
    previous answer's </s> directly: glued as well."""
    default = pl.lit(system) if system else (
        pl.when(INPUT != "").then(pl.lit(ALPACA_SYSTEM_WITH_INPUT)).otherwise(pl.lit(ALPACA_SYSTEM)))
    prompt = pl.when(FIRST).then(text(USER, "\n\n### Response:\n")).otherwise(
        text("\n\n### Instruction:\n", USER, "\n\n### Response:\n"))
    return [
        Rule(BOS, Kind.BOS, False, when=FIRST),
        Rule(text(system_or(default), "\n\n### Instruction:\n"), Kind.CONSTANT, False, when=FIRST),
        Rule(prompt, Kind.GLUED, False),
        Rule(ANSWER, Kind.TEXT, TRAINED),
        Rule(EOS, Kind.EOS, TRAINED),
    ]


def llama2_chat(system: str | None) -> list[Rule]:
    """Meta's LLaMA-2 chat format, token for token as the official chat template of Llama-2-*-chat-hf:
    ``<s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST] {answer} </s>`` per exchange (user and answer
    stripped, the prompt glued to ``<s>``, the answer as `` {answer} ``)."""
    return _llama2(system, whole_string=True)


def llamafactory_llama2(system: str | None) -> list[Rule]:
    """LLaMA-Factory's ``llama2``: per exchange ``<s>`` ``[INST] {user} [/INST]`` and the trained ``{answer}</s>``,
    the system (no default) fused into the first user message as ``<<SYS>>\\n{system}\\n<</SYS>>\\n\\n``; nothing
    is stripped and each part is tokenized on its own ("▁[INST]" after ``<s>``, no "▁" before ``</s>``)."""
    return _llama2(system, whole_string=False)


def _llama2(system: str | None, whole_string: bool) -> list[Rule]:
    prompt = system_or(system)
    user = pl.when(FIRST & (prompt != "")).then(text("<<SYS>>\n", prompt, "\n<</SYS>>\n\n", USER)).otherwise(USER)
    answer = ANSWER
    if whole_string:
        user = user.str.strip_chars(python_whitespace())
        answer = text(" ", ANSWER.str.strip_chars(python_whitespace()), " ")
    return [
        Rule(BOS, Kind.BOS, False),
        Rule(text("[INST] ", user, " [/INST]"), Kind.GLUED if whole_string else Kind.TEXT, False),
        Rule(answer, Kind.TEXT, TRAINED),
        Rule(EOS, Kind.EOS, TRAINED),
    ]


def llamafactory_alpaca(system: str | None) -> list[Rule]:
    """LLaMA-Factory's ``alpaca``: no BOS; ``{system}`` (default: the Alpaca preamble and "\\n\\n"; a record's own
    system replaces it whole, with no separator), then per exchange ``### Instruction:\\n{user}\\n\\n### Response:\\n``
    and the trained ``{answer}</s>\\n\\n``. Each part is tokenized on its own, as LLaMA-Factory does."""
    prompt = system_or(LLAMAFACTORY_ALPACA_SYSTEM if system is None else system)
    own = pl.when(RECORD_SYSTEM != "").then(pl.lit(Kind.TEXT.value)).otherwise(pl.lit(Kind.CONSTANT.value))
    return [
        Rule(prompt, own, False, when=FIRST & (prompt != "")),
        Rule(text("### Instruction:\n", USER, "\n\n### Response:\n"), Kind.TEXT, False),
        Rule(ANSWER, Kind.TEXT, TRAINED),
        Rule(EOS, Kind.EOS, TRAINED),
        Rule(pl.lit(LLAMAFACTORY_ANSWER_TAIL), Kind.CONSTANT, TRAINED),
    ]


TEMPLATES: dict[str, Template] = {
    "alpaca": Template(alpaca_user(), alpaca),
    "llama2-chat": Template(turns_user(), llama2_chat),
    "llamafactory-alpaca": Template(llamafactory_user(), llamafactory_alpaca),
    "llamafactory-llama2": Template(llamafactory_user(), llamafactory_llama2),
}


def exchanges(frame: pl.DataFrame, last_user: pl.Expr, mask_history: bool) -> pl.DataFrame:
    """One row per exchange of every record, records in order, each's history first: ``row`` (the record's
    position), ``user``, ``answer``, ``first``, ``trained`` (the last exchange, or all without ``mask_history``),
    and the record's ``record_system`` ("" for none) and ``input``."""
    records = frame.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"), pl.col("system").fill_null("").alias("record_system"),
        pl.col("input").fill_null(""), pl.col("instruction").fill_null(""), "output", "history")
    own = records.select("row", last_user.alias("user"), pl.col("output").alias("answer"))
    earlier = records.select("row", "history").explode("history").drop_nulls("history").select(
        "row", pl.col("history").struct.field("user"), pl.col("history").struct.field("assistant").alias("answer"))
    return pl.concat([earlier, own]).sort("row", maintain_order=True).with_columns(
        first=pl.col("row").is_first_distinct(),
        trained=pl.col("row").is_last_distinct() | (not mask_history),
    ).join(records.select("row", "record_system", "input"), on="row", how="left", maintain_order="left")


def segments(frame: pl.DataFrame, template: str, system: str | None, mask_history: bool) -> pl.DataFrame:
    """Every segment of every record of ``frame`` (instruction, input, output, system, history) in order: ``row``
    (the record's position), ``text``, ``kind`` (a ``Kind``) and ``trained``."""
    spec = TEMPLATES[template]
    exchange_rows = exchanges(frame, spec.last_user, mask_history).with_row_index("_exchange")
    parts = []
    for position, rule in enumerate(spec.rules(system)):
        chosen = exchange_rows if rule.when is None else exchange_rows.filter(rule.when)
        parts.append(chosen.select(
            "_exchange", pl.lit(position, pl.UInt8).alias("_position"), "row", rule.text.alias("text"),
            _value(rule.kind).cast(pl.UInt8).alias("kind"), _value(rule.trained).cast(pl.Boolean).alias("trained")))
    return pl.concat(parts).sort("_exchange", "_position").drop("_exchange", "_position")


def _value(value: Kind | bool | pl.Expr) -> pl.Expr:
    return value if isinstance(value, pl.Expr) else pl.lit(int(value))


RECORD_COLUMNS = {"instruction": pl.String(), "input": pl.String(), "output": pl.String(), "system": pl.String(),
                  "history": HISTORY}


def render(record: Mapping[str, Any], template: str, system: str | None, mask_history: bool) -> list[Segment]:
    """The segments of one record (instruction, input, output, system, history as in a frame)."""
    frame = pl.DataFrame([{k: record.get(k) for k in RECORD_COLUMNS}], schema=RECORD_COLUMNS)
    rows = segments(frame, template, system, mask_history).iter_rows(named=True)
    return [Segment(r["text"], r["trained"], r["kind"] == Kind.GLUED, r["kind"] == Kind.CONSTANT) for r in rows]


def prompt_texts(frame: pl.DataFrame, template: str, system: str | None, mask_history: bool) -> pl.Series:
    """Each record rendered as one string, special tokens left out (what a plain tokenizer call would read)."""
    parts = segments(frame, template, system, mask_history).filter(pl.col("kind") < Kind.BOS)
    return parts.group_by("row", maintain_order=True).agg(pl.col("text").str.join("")).get_column("text")


def chat_messages(frame: pl.DataFrame, system: str | None) -> list[list[dict[str, str]]]:
    """Each record of ``frame`` as OpenAI-style messages (its system prompt, else ``system``, then its exchanges),
    for a tokenizer's own chat template."""
    rows = exchanges(frame, turns_user(), mask_history=False).select(
        "row", "first", "user", "answer", system_or(system).alias("system"))
    messages: list[list[dict[str, str]]] = [[] for _ in range(frame.height)]
    for row, first, user, answer, prompt in rows.iter_rows():
        if first and prompt:
            messages[row].append({"role": "system", "content": prompt})
        messages[row] += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return messages
