"""Template parity: ``llamafactory-alpaca`` / ``llamafactory-llama2`` against LLaMA-Factory's ``alpaca`` /
``llama2``, and ``alpaca`` against axolotl's ``alpaca``, token for token (input_ids and labels) with the real
LLaMA-2 tokenizer on real records from ../shared/data.

Neither tool is installed here (LLaMA-Factory's template module imports torchaudio and its multimodal stack), so
each one's published definition is encoded below as test data and its encoding algorithm re-implemented:
- LLaMA-Factory, hiyouga/LLaMA-Factory @ ff6d4d12eeb035d6ce06805a5733dd7b29f2ac30 (the commit the demo data in
  ../shared/data comes from): src/llamafactory/data/template.py (``register_template`` of "alpaca" and "llama2",
  ``Template._encode``, ``Llama2Template._encode``, ``_convert_elements_to_ids``), formatter.py
  (``StringFormatter.apply``), converter.py (``AlpacaDatasetConverter``, ``SharegptDatasetConverter``) and
  processor/supervised.py (``SupervisedDatasetProcessor._encode_data_example``).
- axolotl 0.19.0 (the PyPI wheel): axolotl/prompters.py (``AlpacaPrompter``, instruct style) and
  axolotl/prompt_tokenizers.py (``InstructionPromptTokenizingStrategy.tokenize_prompt``, ``_tokenize``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipeline import tokenize
from pipeline.formats import adapt_batch
from pipeline.records import OUTPUT_SCHEMA
from schemas.mix import FiltersSpec, TokenizeSpec

IGNORE = -100
BOS, EOS = frozenset({"bos_token"}), frozenset({"eos_token"})  # LLaMA-Factory's special-token slots
Slots = tuple[str | frozenset[str], ...]


@dataclass(frozen=True)
class LlamaFactoryTemplate:
    """The fields of LLaMA-Factory's ``Template`` that its ``alpaca`` and ``llama2`` use (no tools, no prefix)."""

    format_user: Slots
    format_assistant: Slots
    format_system: Slots
    default_system: str
    fuse_system: bool  # Llama2Template: the formatted system is prepended to the first user message


# register_template(name="alpaca", ...): format_system is left to the default user formatter ("{{content}}");
# efficient_eos=False, replace_eos=False, no stop words.
LLAMAFACTORY_ALPACA = LlamaFactoryTemplate(
    format_user=("### Instruction:\n{{content}}\n\n### Response:\n",),
    format_assistant=("{{content}}", EOS, "\n\n"),
    format_system=("{{content}}",),
    default_system=(
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    ),
    fuse_system=False,
)
# register_template(name="llama2", ..., template_class=Llama2Template): the assistant formatter is the default
# ["{{content}}", {"eos_token"}] (efficient_eos=False); no default system.
LLAMAFACTORY_LLAMA2 = LlamaFactoryTemplate(
    format_user=(BOS, "[INST] {{content}} [/INST]"),
    format_assistant=("{{content}}", EOS),
    format_system=("<<SYS>>\n{{content}}\n<</SYS>>\n\n",),
    default_system="",
    fuse_system=True,
)
LLAMAFACTORY = {"llamafactory-alpaca": LLAMAFACTORY_ALPACA, "llamafactory-llama2": LLAMAFACTORY_LLAMA2}

# axolotl's AlpacaPrompter, prompt_style "instruct": system_format "{system}\n\n" and the two turn formats.
AXOLOTL_SYSTEM = ("Below is an instruction that describes a task, paired with an input that provides further "
                  "context. Write a response that appropriately completes the request.")
AXOLOTL_SYSTEM_NO_INPUT = ("Below is an instruction that describes a task. Write a response that appropriately "
                           "completes the request.")
AXOLOTL_TURN = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
AXOLOTL_TURN_NO_INPUT = "### Instruction:\n{instruction}\n\n### Response:\n"

Message = dict[str, str]


# --- LLaMA-Factory's algorithm, re-implemented -------------------------------------------------------------------

def _apply(slots: Slots, **values: str) -> list[str | frozenset[str]]:
    """StringFormatter.apply: each placeholder of each string slot replaced once, in keyword order."""
    out: list[str | frozenset[str]] = []
    for slot in slots:
        if isinstance(slot, str):
            for name, value in values.items():
                slot = slot.replace("{{" + name + "}}", value, 1)
        out.append(slot)
    return out


def _to_ids(tokenizer: Any, elements: list[str | frozenset[str]]) -> list[int]:
    """Template._convert_elements_to_ids: every non-empty string tokenized on its own."""
    ids: list[int] = []
    for element in elements:
        if isinstance(element, str):
            if element:
                ids += tokenizer.encode(element, add_special_tokens=False)
        elif "bos_token" in element:
            ids.append(tokenizer.bos_token_id)
        elif "eos_token" in element:
            ids.append(tokenizer.eos_token_id)
    return ids


def _encode(template: LlamaFactoryTemplate, tokenizer: Any, messages: list[Message], system: str,
            default_system: str | None) -> list[list[int]]:
    """Template._encode and Llama2Template._encode (``default_system``: the ``--default_system`` argument)."""
    system = system or (template.default_system if default_system is None else default_system)
    encoded = []
    for i, message in enumerate(messages):
        elements: list[str | frozenset[str]] = []
        system_text = ""
        if i == 0 and system:
            if template.fuse_system:
                system_text = str(_apply(template.format_system, content=system)[0])
            else:
                elements += _apply(template.format_system, content=system)
        if message["role"] == "user" and template.fuse_system:
            elements += _apply(template.format_user, content=system_text + message["content"])
        elif message["role"] == "user":
            elements += _apply(template.format_user, content=message["content"], idx=str(i // 2))
        else:
            elements += _apply(template.format_assistant, content=message["content"])
        encoded.append(_to_ids(tokenizer, elements))
    return encoded


def llamafactory_supervised(template: LlamaFactoryTemplate, tokenizer: Any, messages: list[Message], system: str,
                            default_system: str | None = None, mask_history: bool = False,
                            train_on_prompt: bool = False) -> tuple[list[int], list[int]]:
    """SupervisedDatasetProcessor._encode_data_example for text-only records within cutoff_len: prompts masked
    (trained as they are with train_on_prompt), each whole assistant slot trained (with mask_history only the
    last one)."""
    encoded = _encode(template, tokenizer, messages, system, default_system)
    pairs = [(encoded[i], encoded[i + 1]) for i in range(0, len(encoded), 2)]
    if mask_history:
        pairs = pairs[::-1]
    input_ids: list[int] = []
    labels: list[int] = []
    for turn, (source, target) in enumerate(pairs):
        source_label = source if train_on_prompt else [IGNORE] * len(source)
        target_label = [IGNORE] * len(target) if mask_history and turn != 0 else target
        if mask_history:
            input_ids, labels = source + target + input_ids, source_label + target_label + labels
        else:
            input_ids, labels = input_ids + source + target, labels + source_label + target_label
    return input_ids, labels


def llamafactory_alpaca_row(row: dict[str, Any]) -> tuple[list[Message], str]:
    """AlpacaDatasetConverter (prompt=instruction, query=input, response=output, history, system)."""
    messages = []
    if isinstance(row.get("history"), list):
        for old_prompt, old_response in row["history"]:
            messages += [{"role": "user", "content": old_prompt}, {"role": "assistant", "content": old_response}]
    query = [row[key] for key in ("instruction", "input") if row.get(key)]
    messages += [{"role": "user", "content": "\n".join(query)}, {"role": "assistant", "content": row["output"]}]
    return messages, row.get("system") or ""


def llamafactory_sharegpt_row(row: dict[str, Any]) -> tuple[list[Message], str]:
    """SharegptDatasetConverter with the default tags (human, gpt, system): a leading system turn is the system."""
    turns = row["conversations"]
    system = ""
    if turns and turns[0]["from"] == "system":
        system, turns = turns[0]["value"], turns[1:]
    roles = {"human": "user", "gpt": "assistant"}
    return [{"role": roles[t["from"]], "content": t["value"]} for t in turns], system


# --- axolotl's algorithm, re-implemented -------------------------------------------------------------------------

def axolotl_alpaca(tokenizer: Any, row: dict[str, Any]) -> tuple[list[int], list[int]]:
    """InstructionPromptTokenizingStrategy.tokenize_prompt with AlpacaPrompter and train_on_inputs False: the
    prompt tokenized whole (with BOS), the response on its own (its BOS stripped, EOS appended)."""
    if row.get("input"):
        prompt = f"{AXOLOTL_SYSTEM}\n\n" + AXOLOTL_TURN.format(instruction=row["instruction"], input=row["input"])
    else:
        prompt = f"{AXOLOTL_SYSTEM_NO_INPUT}\n\n" + AXOLOTL_TURN_NO_INPUT.format(instruction=row["instruction"])
    prompt_ids = tokenizer(prompt).input_ids
    response = tokenizer(row["output"]).input_ids
    if response[-1] != tokenizer.eos_token_id:
        response.append(tokenizer.eos_token_id)
    if response[0] == tokenizer.bos_token_id:
        response = response[1:]
    return prompt_ids + response, [IGNORE] * len(prompt_ids) + response


# --- our side ----------------------------------------------------------------------------------------------------

def ours(rows: list[dict[str, Any]], fmt: str, tokenizer: Any, **settings: Any) -> list[tuple[list[int], list[int]]]:
    """The rows read by our format adapter and tokenized by the tokenize stage: (input_ids, labels) per row."""
    adapted = adapt_batch(fmt, rows, {}, {})
    assert not adapted.rejects and len(adapted.records) == len(rows)
    records = [{"id": f"s#{k}", "source": "s", "task": "t", "origin": f"x:{k}", "instruction": r["instruction"],
                "input": r.get("input") or "", "output": r["output"], "system": r.get("system"),
                "history": r.get("history") or [], "lang": None, "lang_score": None}
               for k, r in enumerate(adapted.records)]
    frame = pl.DataFrame(records, schema=OUTPUT_SCHEMA)
    result = tokenize.tokenize(frame, tokenizer, TokenizeSpec(cutoff_len=32_768, **settings), FiltersSpec())
    assert result.rejected.height == 0 and not result.examples["truncated"].any()
    return list(zip(result.examples["input_ids"].to_list(), result.examples["labels"].to_list(), strict=True))


def _load(shared_data: Path, name: str) -> list[dict[str, Any]]:
    return json.loads((shared_data / name).read_text(encoding="utf-8"))


def alpaca_en(shared_data: Path) -> list[dict[str, Any]]:
    """300 Stanford Alpaca records: 156 with an input, 144 without."""
    return _load(shared_data, "alpaca-en/alpaca_data-00000-03252.json")[:300]


def with_history(shared_data: Path) -> list[dict[str, Any]]:
    """Every LIMA and OASST (Chinese) record with history (29 + 390), and 100 LIMA records without."""
    lima = _load(shared_data, "llama-factory/lima.json")
    oaast = _load(shared_data, "llama-factory/oaast_sft_zh.json")
    return [r for r in lima if r["history"]] + [r for r in oaast if r["history"]] + lima[:100]


def chats_with_system(shared_data: Path) -> list[dict[str, Any]]:
    """150 FastChat ShareGPT conversations (multi-turn), every other one given a leading system turn."""
    systems = ["You are a helpful assistant.", "Answer briefly.\nBe polite."]
    rows = _load(shared_data, "fastchat/dummy_conversation.json")[:150]
    return [{"conversations": ([{"from": "system", "value": systems[k % 4 // 2]}] if k % 2 else [])
             + row["conversations"]} for k, row in enumerate(rows)]


CASES: dict[str, tuple[Callable[[Path], list[dict[str, Any]]], str]] = {
    "alpaca-en": (alpaca_en, "alpaca"),
    "lima+oaast history": (with_history, "alpaca"),
    "fastchat sharegpt + system": (chats_with_system, "sharegpt"),
}
LLAMAFACTORY_ROWS = {"alpaca": llamafactory_alpaca_row, "sharegpt": llamafactory_sharegpt_row}


@pytest.mark.parametrize("mask_history", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("template", sorted(LLAMAFACTORY))
def test_llamafactory_templates_are_token_identical(shared_data, llama_tokenizer, template, case, mask_history):
    rows_of, fmt = CASES[case]
    rows = rows_of(shared_data)
    got = ours(rows, fmt, llama_tokenizer, template=template, mask_history=mask_history)
    for row, (ids, labels) in zip(rows, got, strict=True):
        messages, system = LLAMAFACTORY_ROWS[fmt](row)
        expected = llamafactory_supervised(LLAMAFACTORY[template], llama_tokenizer, messages, system,
                                           mask_history=mask_history)
        assert (ids, labels) == expected, row


@pytest.mark.parametrize("template", sorted(LLAMAFACTORY))
def test_llamafactory_default_system_argument_is_tokenize_system(shared_data, llama_tokenizer, template):
    """``tokenize.system`` plays LLaMA-Factory's ``--default_system``: used where a record has no system; an
    empty one removes alpaca's preamble."""
    rows = chats_with_system(shared_data)[:40]
    for default in ("You are a pirate.", ""):
        got = ours(rows, "sharegpt", llama_tokenizer, template=template, system=default)
        for row, pair in zip(rows, got, strict=True):
            messages, system = llamafactory_sharegpt_row(row)
            assert pair == llamafactory_supervised(LLAMAFACTORY[template], llama_tokenizer, messages, system, default)


@pytest.mark.parametrize("template", sorted(LLAMAFACTORY))
def test_train_on_prompt_differs_from_llamafactory_only_on_bos_labels(shared_data, llama_tokenizer, template):
    """LLaMA-Factory's train_on_prompt trains the prompt ids as they are, <s> included; our tokenize stage keeps
    <s> masked. The ids are the same, and so are the labels but for each <s> (one per turn in llama2)."""
    rows = with_history(shared_data)[:100]
    got = ours(rows, "alpaca", llama_tokenizer, template=template, train_on_prompt=True)
    bos = llama_tokenizer.bos_token_id
    for row, (ids, labels) in zip(rows, got, strict=True):
        expected_ids, expected_labels = llamafactory_supervised(LLAMAFACTORY[template], llama_tokenizer,
                                                                *llamafactory_alpaca_row(row), train_on_prompt=True)
        assert ids == expected_ids
        pairs = zip(ids, expected_labels, strict=True)
        assert labels == [IGNORE if token == bos else label for token, label in pairs]
        assert ids.count(bos) == (len(row["history"]) + 1 if template == "llamafactory-llama2" else 0)


def test_llamafactory_alpaca_golden_ids(llama_tokenizer):
    """No BOS; "▁###" opens the prompt part; the trained answer slot is "▁7", "</s>", "▁", "\\n", "\\n"."""
    [(ids, labels)] = ours([{"instruction": "Name a prime.", "input": "", "output": "7"}], "alpaca",
                           llama_tokenizer, template="llamafactory-alpaca")
    preamble = llama_tokenizer.encode(LLAMAFACTORY_ALPACA.default_system, add_special_tokens=False)
    assert ids[:3] == [13866, 338, 385] and preamble[-2:] == [13, 13]  # ▁Below ▁is ▁an ... \n \n
    assert ids[len(preamble)] == 835  # ▁###
    assert ids[-6:] == labels[-6:] == [29871, 29955, 2, 29871, 13, 13]  # ▁ 7 </s> ▁ \n \n
    assert labels[: len(ids) - 6] == [IGNORE] * (len(ids) - 6)


def test_llamafactory_llama2_golden_ids(llama_tokenizer):
    """"▁[INST]" after <s>, the system fused into the first message, no "▁" before </s>."""
    [(ids, labels)] = ours([{"instruction": "Capital of Spain?", "input": "", "output": "Madrid.",
                             "system": "Answer in one word."}], "alpaca", llama_tokenizer,
                           template="llamafactory-llama2")
    assert ids[:8] == [1, 518, 25580, 29962, 3532, 14816, 29903, 6778]  # <s> ▁[ INST ] ▁<< SY S >>
    answer = llama_tokenizer.encode("Madrid.", add_special_tokens=False)
    assert ids[-len(answer) - 1:] == labels[-len(answer) - 1:] == answer + [2]
    assert ids[-len(answer) - 2] == 29962 and labels.count(IGNORE) == len(ids) - len(answer) - 1  # ] of [/INST]


def _clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows without input whose texts carry no leading or trailing white space (our llama2-chat strips them)."""
    def texts(row: dict[str, Any]) -> list[str]:
        return [row["instruction"], row["output"], *(t for pair in row.get("history") or [] for t in pair)]
    return [r for r in rows if not r.get("input") and all(t == t.strip() for t in texts(r))]


def test_llama2_chat_differs_from_llamafactory_llama2_in_two_tokens_per_turn(shared_data, llama_tokenizer):
    """On stripped texts, Meta's format (ours) has "[" (29961) after each <s> where LLaMA-Factory has "▁["
    (518), and a "▁" (29871) before each </s> that LLaMA-Factory lacks; every other token is the same."""
    rows = _clean(with_history(shared_data) + alpaca_en(shared_data))
    assert len(rows) > 400
    meta = ours(rows, "alpaca", llama_tokenizer, template="llama2-chat")
    factory = ours(rows, "alpaca", llama_tokenizer, template="llamafactory-llama2")
    for (ids, labels), expected in zip(meta, factory, strict=True):
        opens = [i + 1 for i, token in enumerate(ids) if token == 1]
        drop = {i - 1 for i, token in enumerate(ids) if token == 2}
        assert all(ids[i] == 29961 for i in opens) and all(ids[i] == 29871 for i in drop)
        ids = [518 if i in opens else t for i, t in enumerate(ids)]
        assert ([t for i, t in enumerate(ids) if i not in drop],
                [t for i, t in enumerate(labels) if i not in drop]) == expected


def test_alpaca_differs_from_llamafactory_alpaca_as_documented(shared_data, llama_tokenizer):
    """Without input, system or history: LLaMA-Factory has no <s>, "▁###" (835) where ours has "##" "#"
    (2277, 29937) after the preamble, and a trained "▁\\n\\n" (29871, 13, 13) after </s>."""
    rows = [r for r in alpaca_en(shared_data) if not r["input"]]
    assert len(rows) == 144
    for (ids, labels), expected in zip(ours(rows, "alpaca", llama_tokenizer),
                                       ours(rows, "alpaca", llama_tokenizer, template="llamafactory-alpaca"),
                                       strict=True):
        at = ids.index(2277)
        assert ids[0] == 1 and ids[at + 1] == 29937 and ids[-1] == 2
        tail = [29871, 13, 13]
        assert (ids[1:at] + [835] + ids[at + 2:] + tail, labels[1:at] + [IGNORE] + labels[at + 2:] + tail) == expected


def test_alpaca_is_token_identical_to_axolotl_alpaca(shared_data, llama_tokenizer):
    """Records without a system prompt or history, with and without input (empty outputs aside: axolotl gives
    them no EOS)."""
    rows = [r for r in alpaca_en(shared_data) if r["output"]]
    assert sum(bool(r["input"]) for r in rows) > 100 and sum(not r["input"] for r in rows) > 100
    for row, pair in zip(rows, ours(rows, "alpaca", llama_tokenizer), strict=True):
        assert pair == axolotl_alpaca(llama_tokenizer, row), row
