"""Prompt templates: a record becomes a list of segments, each a piece of text or a special token, marked as
prompt (masked from the loss) or answer (trained).

Segments are tokenized separately and their ids concatenated, so the boundary between a prompt and its answer
never merges into one token and the first token of an answer is never masked. A text segment marked ``glue``
directly follows a special token in the rendered text and is tokenized without SentencePiece's leading "▁",
as the tokenizer does on the whole string (LLaMA-2 chat's ``<s>[INST]``).

The ``llamafactory-*`` templates are LLaMA-Factory's ``alpaca`` and ``llama2`` token for token (its
``src/llamafactory/data/template.py`` at ff6d4d12ee): LLaMA-Factory tokenizes every slot of its template on its
own (``tokenizer.encode(part, add_special_tokens=False)``), so each part gets a leading "▁" of its own, and
its labels train each whole assistant slot. Records with ``tools`` or tool-call turns are outside that parity
(LLaMA-Factory renders them with its tool formatter; the readers fold them into the system prompt).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple


class Special:
    BOS = "<bos>"
    EOS = "<eos>"


class Segment(NamedTuple):  # a NamedTuple: a record makes ~6 of these, and a frozen dataclass is ~3x slower
    text: str  # or Special.BOS / Special.EOS
    trained: bool
    glue: bool = False
    constant: bool = False  # the same for many records: tokenized once and its ids reused


ALPACA_SYSTEM = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
)
ALPACA_SYSTEM_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
)


def turns(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(user, assistant) exchanges: the history, then instruction (+ input) and output."""
    user = record["instruction"]
    if record["input"]:
        user = f"{user}\n\n{record['input']}"
    return [(t["user"], t["assistant"]) for t in record["history"] or ()] + [(user, record["output"])]


def alpaca(record: Mapping[str, Any], system: str | None, mask_history: bool) -> list[Segment]:
    """Stanford Alpaca's prompt; history turns as earlier Instruction/Response pairs (as LLaMA-Factory)."""
    has_input = bool(record["input"])
    preamble = record["system"] or system or (ALPACA_SYSTEM_WITH_INPUT if has_input else ALPACA_SYSTEM)
    history = [(t["user"], t["assistant"]) for t in record["history"] or ()]
    last_user = f"{record['instruction']}\n\n### Input:\n{record['input']}" if has_input else record["instruction"]
    exchanges = history + [(last_user, record["output"])]
    segments = [Segment(Special.BOS, False)]
    for k, (user, answer) in enumerate(exchanges):
        trained = k == len(exchanges) - 1 or not mask_history
        if k == 0:
            # The preamble is split off at a newline, which LLaMA-2 never merges with its neighbours, so the
            # two parts tokenize as the whole does when the rest is glued (no "▁" of its own after the "\n").
            segments.append(Segment(f"{preamble}\n\n### Instruction:\n", False, constant=True))
            prompt = Segment(f"{user}\n\n### Response:\n", False, glue=True)
        else:  # a later prompt follows the previous answer's </s> directly: glued as well
            prompt = Segment(f"\n\n### Instruction:\n{user}\n\n### Response:\n", False, glue=True)
        segments += [prompt, Segment(answer, trained), Segment(Special.EOS, trained)]
    return segments


def llama2_chat(record: Mapping[str, Any], system: str | None, mask_history: bool) -> list[Segment]:
    """Meta's LLaMA-2 chat format, token for token as the official chat template of Llama-2-*-chat-hf:
    ``<s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST] {answer} </s>`` per exchange."""
    return _llama2(turns(record), record["system"] or system, mask_history, whole_string=True)


def _llama2(exchanges: list[tuple[str, str]], system_prompt: str | None, mask_history: bool,
            whole_string: bool) -> list[Segment]:
    """``<s>`` ``[INST] {user} [/INST]`` ``{answer}`` ``</s>`` per exchange, the system fused into the first user
    message. ``whole_string``: as Meta's template tokenizes the rendered text (user and answer stripped, the
    prompt glued to ``<s>``, the answer as `` {answer} ``); else each part on its own, nothing stripped
    (LLaMA-Factory's)."""
    segments = []
    for k, (user, answer) in enumerate(exchanges):
        if k == 0 and system_prompt:
            user = f"<<SYS>>\n{system_prompt}\n<</SYS>>\n\n{user}"
        if whole_string:
            user, answer = user.strip(), f" {answer.strip()} "
        trained = k == len(exchanges) - 1 or not mask_history
        segments += [
            Segment(Special.BOS, False),
            Segment(f"[INST] {user} [/INST]", False, glue=whole_string),
            Segment(answer, trained),
            Segment(Special.EOS, trained),
        ]
    return segments


# LLaMA-Factory's alpaca template: its default system, and what its assistant slot adds after the answer.
LLAMAFACTORY_ALPACA_SYSTEM = f"{ALPACA_SYSTEM}\n\n"
LLAMAFACTORY_ANSWER_TAIL = "\n\n"


def llamafactory_turns(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(user, assistant) exchanges as LLaMA-Factory's Alpaca converter makes them: instruction and input joined
    by one newline (either left out when empty)."""
    user = "\n".join(part for part in (record["instruction"], record["input"]) if part)
    return [(t["user"], t["assistant"]) for t in record["history"] or ()] + [(user, record["output"])]


def llamafactory_alpaca(record: Mapping[str, Any], system: str | None, mask_history: bool) -> list[Segment]:
    """LLaMA-Factory's ``alpaca``: no BOS; ``{system}`` (default: the Alpaca preamble and "\\n\\n"; a record's own
    system replaces it whole, with no separator), then per exchange ``### Instruction:\\n{user}\\n\\n### Response:\\n``
    and the trained ``{answer}</s>\\n\\n``. Each part is tokenized on its own, as LLaMA-Factory does."""
    system_prompt = record["system"] or (LLAMAFACTORY_ALPACA_SYSTEM if system is None else system)
    exchanges = llamafactory_turns(record)
    segments = [Segment(system_prompt, False, constant=not record["system"])] if system_prompt else []
    for k, (user, answer) in enumerate(exchanges):
        trained = k == len(exchanges) - 1 or not mask_history
        segments += [
            Segment(f"### Instruction:\n{user}\n\n### Response:\n", False),
            Segment(answer, trained),
            Segment(Special.EOS, trained),
            Segment(LLAMAFACTORY_ANSWER_TAIL, trained, constant=True),
        ]
    return segments


def llamafactory_llama2(record: Mapping[str, Any], system: str | None, mask_history: bool) -> list[Segment]:
    """LLaMA-Factory's ``llama2``: per exchange ``<s>`` ``[INST] {user} [/INST]`` and the trained ``{answer}</s>``,
    the system (no default) fused into the first user message as ``<<SYS>>\\n{system}\\n<</SYS>>\\n\\n``; nothing
    is stripped and each part is tokenized on its own ("▁[INST]" after ``<s>``, no "▁" before ``</s>``)."""
    return _llama2(llamafactory_turns(record), record["system"] or system, mask_history, whole_string=False)


TEMPLATES: dict[str, Callable[[Mapping[str, Any], str | None, bool], list[Segment]]] = {
    "alpaca": alpaca,
    "llama2-chat": llama2_chat,
    "llamafactory-alpaca": llamafactory_alpaca,
    "llamafactory-llama2": llamafactory_llama2,
}


def chat_messages(record: Mapping[str, Any], system: str | None) -> list[dict[str, str]]:
    """The record as OpenAI-style messages, for a tokenizer's own chat template."""
    messages: list[dict[str, str]] = []
    if content := record["system"] or system:
        messages.append({"role": "system", "content": content})
    for user, answer in turns(record):
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return messages
