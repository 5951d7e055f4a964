"""Map one source row of a known format to canonical record fields (types are checked later, in validate).

Each adapter is made for a source's field map (canonical name -> the source's key), takes a parsed row and
returns the records the row holds: one for Alpaca and chat formats, one per instance for self-instruct (with
``_sub`` = the instance number). A row whose shape
cannot be read as the format raises ``FormatError`` with a reason code; the record is quarantined with it.
Repairs that lose nothing (an absent ``input`` filled with "", ``history: ""`` read as no history) are listed
in the record's ``repairs`` so the report can count them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

Record = dict[str, Any]
Adapter = Callable[[Mapping[str, Any]], list[Record]]


class FormatError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


# Speaker names seen in ShareGPT, OpenAI and LLaMA-Factory data -> the canonical side of the exchange.
# Tool calls are the assistant's move and tool results the user's, so tool-use chats still alternate.
ROLES: dict[str, str] = {
    "human": "user", "user": "user", "observation": "user", "tool": "user", "function": "user",
    "gpt": "assistant", "assistant": "assistant", "model": "assistant", "bing": "assistant",
    "chatgpt": "assistant", "bard": "assistant", "function_call": "assistant",
    "system": "system",
}


def alpaca(columns: Mapping[str, str]) -> Adapter:
    keys = [(field, columns.get(field, field)) for field in ("instruction", "input", "output", "system", "history")]
    renamed = any(field != key for field, key in keys)

    def adapt(row: Mapping[str, Any]) -> list[Record]:
        # A plain copy keeps the source's other keys too; they are ignored downstream and cost less than a pick.
        record: Record = {field: row[key] for field, key in keys if key in row} if renamed else dict(row)
        repairs: list[str] = []
        if "input" not in record:
            record["input"] = ""
            repairs.append("missing_input")
        if "system" in record and record["system"] in (None, ""):
            del record["system"]
        if "history" in record:
            history = record["history"]
            if history is None or history == "" or history == []:
                if history == "":
                    repairs.append("empty_history_string")
                del record["history"]
            elif isinstance(history, list) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in history):
                record["history"] = [{"user": p[0], "assistant": p[1]} for p in history]
        record["repairs"] = repairs
        return [record]

    return adapt


def sharegpt(columns: Mapping[str, str]) -> Adapter:
    key = columns.get("conversations", "conversations")
    return lambda row: [_from_turns(row, key, columns)]


def openai(columns: Mapping[str, str]) -> Adapter:
    key = columns.get("messages", "messages")
    return lambda row: [_from_turns(row, key, columns)]


def self_instruct(columns: Mapping[str, str]) -> Adapter:
    instruction_key = columns.get("instruction", "instruction")

    def adapt(row: Mapping[str, Any]) -> list[Record]:
        instances = row.get("instances")
        if not isinstance(instances, list) or not instances:
            raise FormatError("missing_field:instances", "self-instruct row has no list of instances")
        records = []
        for k, instance in enumerate(instances):
            if not isinstance(instance, dict):
                raise FormatError("wrong_type:instances", "an instance is not an object with input and output")
            record: Record = {"instruction": row.get(instruction_key), "repairs": [], "_sub": k}
            record.update({f: instance[f] for f in ("input", "output") if f in instance})
            records.append(record)
        return records

    return adapt


def mt_bench(columns: Mapping[str, str]) -> Adapter:
    """MT-Bench questions: prompts without answers. The first turn is the instruction; there is no output."""
    key = columns.get("instruction", "turns")

    def adapt(row: Mapping[str, Any]) -> list[Record]:
        turns = row.get(key)
        if not isinstance(turns, list) or not turns:
            raise FormatError("missing_field:turns", "MT-Bench row has no list of turns")
        return [{"instruction": turns[0], "input": "", "repairs": []}]

    return adapt


# format name -> adapter factory, called once per chunk with the source's field map.
ADAPTERS: dict[str, Callable[[Mapping[str, str]], Adapter]] = {
    "alpaca": alpaca,
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
        tools_text = tools if isinstance(tools, str) else orjson.dumps(tools).decode()
        system = f"{system}\n\nTools:\n{tools_text}" if system else f"Tools:\n{tools_text}"
        repairs.append("tools_in_system")
    record: Record = {
        "instruction": exchange[-2][1],
        "input": "",
        "output": exchange[-1][1],
        "repairs": repairs,
    }
    if system is not None:
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
