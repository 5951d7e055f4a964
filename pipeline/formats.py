"""Map source rows of a known format to canonical record fields (types are checked later, in validate).

``adapt_batch`` takes a batch of parsed rows, the source's field map (canonical name -> the source's key) and
the key aliases found for the batch, and returns the records they hold (one per row for Alpaca and chat formats,
one per instance for self-instruct), each with the position of its row, plus the rows it could not read as the
format, each with a reason code. Repairs that lose nothing (``history: ""`` read as no history, tool specs
folded into the system prompt, a field read under an alias) are counted. Records may share objects with the
rows: nothing here or downstream mutates them, since a rejected row is quarantined exactly as it was read.

Key aliases (``ALIASES``, applied by ``format: auto`` to Alpaca-like rows only): ``find_aliases`` reads them off
one row's keys, as format detection does, so a chunk is read with one mapping. For each canonical field the row
lacks and the source's ``columns`` does not map, the table's keys present in the row (and not named by
``columns``) are looked up: exactly one is read as the field; two or more make the field ambiguous, and every
row of the chunk is rejected as ``ambiguous_field:<field>`` naming them (no guess: the keys often mean different
things, e.g. LLaMA-Factory's ``query`` is the input, not the instruction). An explicit ``columns`` entry always
wins, and a present canonical key is never replaced.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.io.items import json_text

Record = dict[str, Any]
RowAdapter = Callable[[Mapping[str, Any]], list[Record]]


class FormatError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass
class Adapted:
    """Records of a batch in canonical shape, and the rows that could not be read as the format."""

    records: list[Record] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # the row each record came from
    subs: list[int | None] = field(default_factory=list)  # instance number of a self-instruct row, else None
    rejects: list[tuple[int, str, str]] = field(default_factory=list)  # (row position, reason, detail)
    repairs: Counter[str] = field(default_factory=Counter)
    may_have_history: bool = True  # False only when no record can hold history (saves a pass over them)


# Speaker names seen in ShareGPT, OpenAI and LLaMA-Factory data -> the canonical side of the exchange.
# Tool calls are the assistant's move and tool results the user's, so tool-use chats still alternate.
ROLES: dict[str, str] = {
    "human": "user", "user": "user", "observation": "user", "tool": "user", "function": "user",
    "gpt": "assistant", "assistant": "assistant", "model": "assistant", "bing": "assistant",
    "chatgpt": "assistant", "bard": "assistant", "function_call": "assistant",
    "system": "system",
}
ALPACA_FIELDS = ("instruction", "input", "output", "system", "history")

# canonical field -> the keys read for it, under format: auto, when an Alpaca-like row lacks it (GPTeacher's
# response, Dolly's context and response, question/answer and prompt/completion sets)
ALIASES: dict[str, tuple[str, ...]] = {
    "instruction": ("prompt", "query", "question"),
    "input": ("context",),
    "output": ("response", "completion", "answer", "target"),
}
AMBIGUOUS_HINT = ": name the one to read in the source's columns"  # then "(<field>: <first key>)"
ALIAS_REPAIR = "alias:"  # repairs "alias:<field>=<key>": records whose field was read under an alias


@dataclass(frozen=True)
class Aliases:
    """The aliases a chunk is read with: (field, key) pairs, and the fields more than one key could be."""

    mapped: tuple[tuple[str, str], ...] = ()
    ambiguous: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __str__(self) -> str:
        return " ".join([f"{f}={k}" for f, k in self.mapped] + [f"{f}={'|'.join(k)}" for f, k in self.ambiguous])


NO_ALIASES = Aliases()


def find_aliases(row: Mapping[str, Any], columns: Mapping[str, str]) -> Aliases:
    """The aliases of ``ALIASES`` that a row's keys call for (see the module docstring)."""
    named = set(columns.values())
    mapped, ambiguous = [], []
    for field_name, keys in ALIASES.items():
        if field_name in columns or field_name in row:
            continue
        present = tuple(k for k in keys if k in row and k not in named)
        if len(present) == 1:
            mapped.append((field_name, present[0]))
        elif present:
            ambiguous.append((field_name, present))
    return Aliases(tuple(mapped), tuple(ambiguous)) if mapped or ambiguous else NO_ALIASES


def alias_repair(field_name: str, key: str) -> str:
    return f"{ALIAS_REPAIR}{field_name}={key}"


def parse_alias_repair(repair: str) -> tuple[str, str] | None:
    """(field, key) of an ``alias_repair`` name; None for any other repair."""
    if not repair.startswith(ALIAS_REPAIR):
        return None
    field_name, _, key = repair.removeprefix(ALIAS_REPAIR).partition("=")
    return field_name, key


def adapt_batch(fmt: str, values: list[Any], bad: Mapping[int, tuple[str, str]], columns: Mapping[str, str],
                aliases: Aliases = NO_ALIASES) -> Adapted:
    """Records of every row of a batch; unparsable rows (``bad``) and non-objects are rejected here, and so is
    every row when ``aliases`` has an ambiguous field."""
    out = Adapted()
    if aliases.ambiguous:
        _ambiguous_rows(values, bad, aliases, out)
        return out
    mapped = [(field_name, key) for field_name, key in aliases.mapped if field_name not in columns]  # columns win
    if mapped:
        columns = {**dict(mapped), **columns}
        for field_name, key in mapped:
            out.repairs[alias_repair(field_name, key)] = sum(1 for row in values if type(row) is dict and key in row)
    if fmt == "alpaca":
        _alpaca_rows(values, bad, columns, out)
        return out
    adapt = ADAPTERS[fmt](columns)
    for pos, row in enumerate(values):
        if type(row) is not dict:
            out.rejects.append(_not_a_row(pos, row, bad))
            continue
        try:
            records = adapt(row)
        except FormatError as err:
            out.rejects.append((pos, err.reason, err.detail))
            continue
        for record in records:
            out.repairs.update(record.pop("repairs", ()))
            out.subs.append(record.pop("_sub", None))
            out.records.append(record)
            out.positions.append(pos)
    return out


def _alpaca_rows(values: list[Any], bad: Mapping[int, tuple[str, str]], columns: Mapping[str, str],
                 out: Adapted) -> None:
    """The hot path: rows already in canonical shape are used as they are; rows under other keys (``columns``,
    aliases: GPTeacher's ``response``) are picked and renamed into a new dict. Only rows with a ``system`` or
    ``history`` key are (also) copied, to drop empty values and turn LLaMA-Factory's [[q, a], ...] pairs into
    turns."""
    records, positions = out.records, out.positions
    keys = [(f, columns.get(f, f)) for f in ALPACA_FIELDS]
    renamed = any(f != key for f, key in keys)
    tidied = False
    for pos, row in enumerate(values):
        if type(row) is not dict:
            out.rejects.append(_not_a_row(pos, row, bad))
            continue
        if renamed:
            row = {f: row[key] for f, key in keys if key in row}
        if "history" in row or "system" in row:
            row, tidied = _tidy_alpaca(row, out.repairs), True
        records.append(row)
        positions.append(pos)
    out.subs = [None] * len(records)
    out.may_have_history = tidied


def _ambiguous_rows(values: list[Any], bad: Mapping[int, tuple[str, str]], aliases: Aliases, out: Adapted) -> None:
    reason = f"ambiguous_field:{aliases.ambiguous[0][0]}"
    detail = "; ".join(f"keys {' and '.join(repr(k) for k in keys)} could each be the {field_name}{AMBIGUOUS_HINT}"
                       f" ({field_name}: {keys[0]})" for field_name, keys in aliases.ambiguous)
    out.rejects = [_not_a_row(pos, row, bad) if type(row) is not dict else (pos, reason, detail)
                   for pos, row in enumerate(values)]


def _tidy_alpaca(row: Mapping[str, Any], repairs: Counter[str]) -> Record:
    record = dict(row)
    if record.get("system", "") in (None, ""):
        record.pop("system", None)
    if "history" in record:
        history = record["history"]
        if history is None or history == "" or history == []:
            if history == "":
                repairs["empty_history_string"] += 1
            del record["history"]
        elif isinstance(history, list) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in history):
            record["history"] = [{"user": p[0], "assistant": p[1]} for p in history]
    return record


def _not_a_row(pos: int, row: Any, bad: Mapping[int, tuple[str, str]]) -> tuple[int, str, str]:
    if pos in bad:
        return pos, "malformed_json", bad[pos][1]
    return pos, "not_an_object", f"expected a JSON object, got {'null' if row is None else type(row).__name__}"


def sharegpt(columns: Mapping[str, str]) -> RowAdapter:
    key = columns.get("conversations", "conversations")
    return lambda row: [_from_turns(row, key, columns)]


def openai(columns: Mapping[str, str]) -> RowAdapter:
    key = columns.get("messages", "messages")
    return lambda row: [_from_turns(row, key, columns)]


def self_instruct(columns: Mapping[str, str]) -> RowAdapter:
    instruction_key = columns.get("instruction", "instruction")

    def adapt(row: Mapping[str, Any]) -> list[Record]:
        instances = row.get("instances")
        if not isinstance(instances, list) or not instances:
            raise FormatError("missing_field:instances", "self-instruct row has no list of instances")
        records = []
        for k, instance in enumerate(instances):
            if not isinstance(instance, dict):
                raise FormatError("wrong_type:instances", "an instance is not an object with input and output")
            record: Record = {"instruction": row.get(instruction_key), "_sub": k}
            record.update({f: instance[f] for f in ("input", "output") if f in instance})
            records.append(record)
        return records

    return adapt


def mt_bench(columns: Mapping[str, str]) -> RowAdapter:
    """MT-Bench questions: prompts without answers. The first turn is the instruction; there is no output."""
    key = columns.get("instruction", "turns")

    def adapt(row: Mapping[str, Any]) -> list[Record]:
        turns = row.get(key)
        if not isinstance(turns, list) or not turns:
            raise FormatError("missing_field:turns", "MT-Bench row has no list of turns")
        return [{"instruction": turns[0], "input": ""}]

    return adapt


# format name -> adapter factory, called once per chunk with the source's field map (Alpaca rows are read in
# bulk by _alpaca_rows instead).
ADAPTERS: dict[str, Callable[[Mapping[str, str]], RowAdapter]] = {
    "sharegpt": sharegpt,
    "openai": openai,
    "self_instruct": self_instruct,
    "mt_bench": mt_bench,
}

# Detection looks at the keys of a file's first row, in this order; Alpaca is the fallback.
DETECTION_KEYS: tuple[tuple[str, str], ...] = (
    ("conversations", "sharegpt"),
    ("messages", "openai"),
    ("instances", "self_instruct"),
    ("turns", "mt_bench"),
)


def detect_format(row: Any, columns: Mapping[str, str]) -> str:
    if not isinstance(row, Mapping):
        raise FormatError("not_an_object", f"expected a JSON object per record, got {type(row).__name__}")
    for key, fmt in DETECTION_KEYS:
        if columns.get(key, key) in row:
            return fmt
    return "alpaca"


def _from_turns(row: Mapping[str, Any], key: str, columns: Mapping[str, str]) -> Record:
    turns = row.get(key)
    if not isinstance(turns, list):
        raise FormatError(f"missing_field:{key}", f"'{key}' is missing or not a list of turns")
    system = row.get(columns.get("system", "system")) or None
    repairs: list[str] = []
    exchange: list[tuple[str, Any]] = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, Mapping):
            raise FormatError("bad_conversation:turn_not_object", f"turn {i} is not an object")
        speaker = turn.get("from", turn.get("role"))
        role = ROLES.get(str(speaker).lower())
        if role is None:
            raise FormatError("bad_conversation:unknown_role", f"turn {i}: unknown speaker {speaker!r}")
        content = _content_text(turn.get("value", turn.get("content")), i)
        if role == "system":
            if exchange:
                raise FormatError("bad_conversation:late_system", f"turn {i}: system turn after the chat began")
            system = content
            continue
        expected = "user" if len(exchange) % 2 == 0 else "assistant"
        if role != expected:
            raise FormatError("bad_conversation:not_alternating", f"turn {i}: {role} turn where {expected} was due")
        exchange.append((role, content))
    if not exchange:
        raise FormatError("bad_conversation:empty", "the conversation has no user or assistant turns")
    if len(exchange) % 2:
        raise FormatError("bad_conversation:no_answer", "the last turn is the user's: there is no answer to learn")
    tools = row.get("tools")
    if tools:
        tools_text = tools if isinstance(tools, str) else json_text(tools)  # any depth (orjson stops at 254)
        system = f"{system}\n\nTools:\n{tools_text}" if system else f"Tools:\n{tools_text}"
        repairs.append("tools_in_system")
    record: Record = {
        "instruction": exchange[-2][1],
        "input": "",
        "output": exchange[-1][1],
        "repairs": repairs,
    }
    if system is not None and system != "":
        record["system"] = system
    if len(exchange) > 2:
        record["history"] = [
            {"user": exchange[j][1], "assistant": exchange[j + 1][1]} for j in range(0, len(exchange) - 2, 2)
        ]
    return record


def _content_text(content: Any, turn: int) -> Any:
    """OpenAI-style content may be a list of parts; text parts are joined, any other part is an error."""
    if not isinstance(content, list):
        return content
    texts = []
    for part in content:
        if not isinstance(part, Mapping) or part.get("type", "text") != "text":
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise FormatError("unsupported_content", f"turn {turn}: content part of type {kind!r} is not text")
        texts.append(part.get("text", part.get("value")))
    if not all(isinstance(t, str) for t in texts):
        return texts  # left for validation to report as a wrong type
    return "\n".join(texts)
