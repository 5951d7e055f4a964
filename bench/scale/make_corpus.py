"""Make the end-to-end scale corpus of issue #9: N instruction records in many files, and the mix.yaml to build it.

    .venv/bin/python bench/scale/make_corpus.py --records 100000            # -> bench/work/scale/100k/
    .venv/bin/python bench/scale/make_corpus.py --records 1000000 --parts 32

What it produces (deterministic for ``--seed``; the same N and seed give byte-identical files):

    bench/work/scale/<N>/corpus/<source>/part-NN.json[l]   the records, split over ``--parts`` files
    bench/work/scale/<N>/mix.yaml                          every stage on (see ``mix_yaml``)
    bench/work/scale/<N>/corpus.json                       what was generated: records per source, kind, defect

Five sources, each filled from real records of ../shared/data (``POOLS``), in the formats the readers support:

    source         share  format (files)                           pool (real records it draws from)
    general_en     0.45   Alpaca JSON lists (indent 2), every 4th   alpaca-en (52,002) + LLaMA-Factory alpaca_en_demo
                          part JSONL
    zh_alpaca      0.30   Alpaca JSON lists, three layouts          alpaca-zh (hikariming, incl. its untranslated
                          (indent 2 / 4 / one line), lenient        English files; carbonz0 minus hikariming's exact
                                                                    copies), zh-misc, alpaca_zh_demo
    chat_sharegpt  0.12   ShareGPT JSONL, lenient                   fastchat dummy, glaive tool calls (en, zh), and
                                                                    2-3 turn chats composed of Alpaca records
    chat_openai    0.08   OpenAI messages JSONL, lenient            v1_sft_demo, composed chats (some with a system)
    longform       0.05   Alpaca JSONL with history, lenient        lima, oaast_sft_zh

Every record of a source is one of three kinds (``KINDS``): ``base`` (the next record of the source's pool, in a
seeded order; once the pool is used up, further rounds give *variants*: random words of the pool's own
vocabulary, or Han characters for Chinese text, inserted at ~8% of the positions of every text longer than 3
words, and the sentences of some outputs shuffled; variants of one record are ~0.3-0.6 Jaccard apart, so 1M
records are not 20 copies of Alpaca), ``exact_dup`` (an earlier record of this or another Alpaca-format source,
verbatim or with only case / punctuation / spacing changed) or ``near_dup`` (an edited copy of an earlier record:
word swaps and deletions chosen for a true Jaccard of 0.80-0.95 over word 5-grams / Han character 5-grams).
Defects of the real data come with the real records (60% empty inputs, ~0.5% placeholder inputs, ~0.05% empty
outputs, untranslated English in the Chinese sets, missing ``input`` keys and ``history: ""`` in zh-misc,
``{{name}}`` placeholders, refusals, over-long LIMA answers), and variants keep them (short texts are never
changed). On top of those, ``DEFECTS`` injects what the pools lack, at the rates listed there: PII (e-mail, phone),
eval prompts leaked from MT-Bench and self-instruct's user-oriented set, control characters, CR LF, outer white
space, wrong types, mojibake, and malformed JSON lines / a trailing comma in lenient sources.

A record is a pure function of (seed, source, slot), so a duplicate is made by recomputing its target's slot,
and files are written one at a time (memory stays at the pools plus one part).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("INSTRUCT_PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data"))
WORK = ROOT / "bench" / "work" / "scale"

Row = dict[str, Any]  # one row as written: Alpaca, ShareGPT or OpenAI shape
TextFn = Callable[[str], str]


# --------------------------------------------------------------------------------------------------- the plan

@dataclass(frozen=True)
class SourcePlan:
    name: str
    task: str
    share: float  # of all N records
    fmt: str  # alpaca | sharegpt | openai: the row shape
    layouts: tuple[str, ...]  # per part, cycled: indent2 | indent4 | oneline | jsonl
    lenient: bool
    general: bool = False
    languages: tuple[str, ...] | None = None


SOURCES: tuple[SourcePlan, ...] = (
    SourcePlan("general_en", "general", 0.45, "alpaca", ("indent2", "indent2", "indent2", "jsonl"), False,
               general=True),
    SourcePlan("zh_alpaca", "zh_qa", 0.30, "alpaca", ("indent2", "indent4", "oneline"), True, languages=("zh",)),
    SourcePlan("chat_sharegpt", "chat", 0.12, "sharegpt", ("jsonl",), True),
    SourcePlan("chat_openai", "chat", 0.08, "openai", ("jsonl",), True),
    SourcePlan("longform", "longform", 0.05, "alpaca", ("jsonl",), True),
)
ALPACA_SOURCES = tuple(s.name for s in SOURCES if s.fmt == "alpaca")

# kind of each record: (name, rate); the rest are ``base`` records
KINDS: tuple[tuple[str, float], ...] = (
    ("exact_dup", 0.025),  # a few %, like the real sets (fastchat dummy 7%, code_questions 12%, alpaca-en <1%)
    ("near_dup", 0.04),
)
CROSS_SOURCE_DUP = 0.2  # share of exact dups taken from another Alpaca-format source
FAMILY_STRIDE = 25  # near-dups copy slots that are multiples of this: families of 1 + Poisson(1) records

# injected defects: (name, rate per record, applies to formats); at most one per record, drawn in this order
DEFECTS: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("pii_email", 0.003, ("alpaca", "sharegpt", "openai")),
    ("pii_phone", 0.003, ("alpaca", "sharegpt", "openai")),
    ("eval_leak", 0.0003, ("alpaca", "sharegpt", "openai")),
    ("control_chars", 0.001, ("alpaca", "sharegpt", "openai")),
    ("crlf", 0.002, ("alpaca", "sharegpt", "openai")),
    ("outer_space", 0.005, ("alpaca", "sharegpt", "openai")),
    ("wrong_type", 0.00005, ("alpaca",)),
    ("mojibake", 0.0001, ("alpaca", "sharegpt", "openai")),
    ("malformed_line", 0.0001, ("jsonl",)),  # only in lenient JSONL parts: the line is cut short
)
TRAILING_COMMA_PART = 1  # this part of the lenient JSON-list source ends in ",\n]" (like alpaca_zh-09407-12345.json)

VARIANT_INSERT_RATE = 0.08  # inserted words (or Han characters) per position in a variant's texts
VARIANT_SHUFFLE = 0.3  # chance a variant's multi-sentence output has its sentences shuffled
NEAR_DUP_JACCARD = (0.80, 0.95)
EDGE_WORDS = {False: ("indeed", "too", "overall", "really", "then", "as well"), True: ("的", "了", "呢", "吧", "啊")}
SHORT_WORDS = 3  # texts of at most this many words (placeholders, "N/A", names) are never changed

EMAIL_LINES = ("Contact me at {email} for details.", "Send the report to {email}.")
PHONE_LINES = ("Call {phone} if you have questions.", "My number is {phone}.")
ZH_PHONE_LINES = ("如有问题请拨打{phone}。", "我的电话是{phone}。")
SYSTEMS = ("You are a helpful assistant.", "You are a concise assistant. Answer briefly.",
           "你是一个乐于助人的助手。")


# --------------------------------------------------------------------------------------------------- pools

def _read_json(path: Path) -> list[Row]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(re.sub(r",\s*\]\s*$", "]", text))  # alpaca_zh-09407-12345.json: trailing comma


def _alpaca_key(row: Row) -> tuple[str, str, str]:
    return (str(row.get("instruction")), str(row.get("input")), str(row.get("output")))


def _zh_alpaca_pool() -> list[Row]:
    hikariming = [r for p in sorted((SHARED / "alpaca-zh").glob("alpaca_zh-*.json")) for r in _read_json(p)]
    seen = {_alpaca_key(r) for r in hikariming}
    carbonz0 = [r for p in sorted((SHARED / "alpaca-zh").glob("zh-data-part-*.json")) for r in _read_json(p)
                if _alpaca_key(r) not in seen]  # 14,351 are hikariming's records: keep one copy
    misc = [r for p in sorted((SHARED / "zh-misc").glob("*.json")) for r in _read_json(p)]
    return hikariming + carbonz0 + misc + _read_json(SHARED / "llama-factory" / "alpaca_zh_demo.json")


def _chat_turns(rows: list[Row], rng: random.Random) -> list[list[tuple[str, str]]]:
    """Composed chats: 1-3 consecutive Alpaca records (with an output) as user / assistant exchanges."""
    usable = [r for r in rows if isinstance(r.get("output"), str) and r["output"].strip()]
    chats, k = [], 0
    while k < len(usable):
        n = rng.choice((1, 2, 2, 3))
        turns = []
        for r in usable[k:k + n]:
            user = r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else "")
            turns += [("user", user), ("assistant", r["output"])]
        chats.append(turns)
        k += n
    return chats


def _sharegpt_row(turns: list[tuple[str, str]], system: str | None = None) -> Row:
    row: Row = {"conversations": [{"from": "human" if role == "user" else "gpt", "value": text}
                                  for role, text in turns]}
    if system:
        row["system"] = system
    return row


def _openai_row(turns: list[tuple[str, str]], system: str | None = None) -> Row:
    messages = [{"role": "system", "content": system}] if system else []
    return {"messages": messages + [{"role": role, "content": text} for role, text in turns]}


@cache
def pools(seed: int) -> dict[str, list[Row]]:
    """The real records each source draws from, in their source's row shape (order fixed by ``seed``)."""
    rng = random.Random(f"{seed}/pools")
    lf = SHARED / "llama-factory"
    alpaca_en = [r for p in sorted((SHARED / "alpaca-en").glob("*.json")) for r in _read_json(p)]
    zh = _zh_alpaca_pool()
    sample_en = rng.sample(alpaca_en, 12_000)
    sample_zh = rng.sample(zh, 6_000)
    sharegpt = (_read_json(SHARED / "fastchat" / "dummy_conversation.json")
                + _read_json(lf / "glaive_toolcall_en_demo.json") + _read_json(lf / "glaive_toolcall_zh_demo.json")
                + [_sharegpt_row(t) for t in _chat_turns(sample_en[:6_000] + sample_zh[:3_000], rng)])
    openai = _read_json(lf / "v1_sft_demo.jsonl") + [
        _openai_row(t, rng.choice(SYSTEMS) if rng.random() < 0.3 else None)
        for t in _chat_turns(sample_en[6_000:] + sample_zh[3_000:], rng)]
    result = {
        "general_en": alpaca_en + _read_json(lf / "alpaca_en_demo.json"),
        "zh_alpaca": zh,
        "chat_sharegpt": sharegpt,
        "chat_openai": openai,
        "longform": _read_json(lf / "lima.json") + _read_json(lf / "oaast_sft_zh.json"),
    }
    for name, rows in result.items():
        random.Random(f"{seed}/order/{name}").shuffle(rows)
    return result


@cache
def vocabulary(seed: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(English words, Han characters) to insert into variants: ranks 50-3,050 of the pools' own frequencies."""
    words: Counter[str] = Counter()
    chars: Counter[str] = Counter()
    for row in pools(seed)["general_en"][:20_000]:
        words.update(w.lower() for w in re.findall(r"[A-Za-z]{3,}", str(row.get("output"))))
    for row in pools(seed)["zh_alpaca"][:20_000]:
        chars.update(HAN.findall(str(row.get("output"))))
    return (tuple(w for w, _ in words.most_common(3_050)[50:]), tuple(c for c, _ in chars.most_common(2_050)[50:]))


# --------------------------------------------------------------------------------------------------- texts

HAN = re.compile(r"[\u4e00-\u9fff]")
SENTENCE = {False: re.compile(r"(?<=[.!?])\s+"), True: re.compile(r"(?<=[。！？])")}
TOKEN = re.compile(r"[\u4e00-\u9fff]|[^\W_]+|_+", re.UNICODE)  # what the pipeline's dedup shingles, roughly


def is_chinese(text: str) -> bool:
    return len(HAN.findall(text[:200])) * 3 > len(text[:200])


def map_texts(row: Row, fmt: str, fn: TextFn, which: str = "all") -> Row:
    """``row`` with ``fn`` applied to its texts: ``all``, ``prompt`` (the last user text) or ``answer`` (the last
    assistant text). Tool calls, observations and non-string values are left alone."""
    row = orjson.loads(orjson.dumps(row))  # a deep copy (rows are plain JSON)
    if fmt == "alpaca":
        keys = {"all": ("instruction", "input", "output"), "prompt": ("instruction",), "answer": ("output",)}[which]
        for key in keys:
            if isinstance(row.get(key), str):
                row[key] = fn(row[key])
        if which == "all" and isinstance(row.get("history"), list):
            row["history"] = [[fn(t) if isinstance(t, str) else t for t in turn] if isinstance(turn, list) else turn
                              for turn in row["history"]]
        return row
    turns, text_key, user, assistant = (("conversations", "value", "human", "gpt") if fmt == "sharegpt"
                                        else ("messages", "content", "user", "assistant"))
    role_key = "from" if fmt == "sharegpt" else "role"
    spoken = [t for t in row.get(turns, []) if isinstance(t, dict) and t.get(role_key) in (user, assistant)]
    if which != "all":
        wanted = user if which == "prompt" else assistant
        spoken = [t for t in spoken if t.get(role_key) == wanted][-1:]
    for turn in spoken:
        value = turn.get(text_key)
        if isinstance(value, str):
            turn[text_key] = fn(value)
        elif isinstance(value, list):  # v1_sft_demo: [{"type": "text", "value": ...}]
            for part in value:
                if isinstance(part, dict) and isinstance(part.get("value"), str):
                    part["value"] = fn(part["value"])
    return row


def insert_noise(text: str, rng: random.Random, words: tuple[str, ...], chars: tuple[str, ...],
                 force: bool = False) -> str:
    """A variant's text: vocabulary words (Han characters in Chinese text) inserted at ~8% of the positions,
    the sentences of some multi-sentence texts shuffled. Texts of <= SHORT_WORDS words are returned as they are
    unless ``force`` (one insertion)."""
    zh = is_chinese(text)
    short = len(text) <= 8 if zh else len(text.split()) <= SHORT_WORDS
    if not text or (short and not force):
        return text
    sentences = [s for s in SENTENCE[zh].split(text) if s]
    if len(sentences) >= 3 and rng.random() < VARIANT_SHUFFLE:
        rng.shuffle(sentences)
        text = ("" if zh else " ").join(sentences)
    if zh:
        spots = [m.end() for m in HAN.finditer(text)]
        pick = functools.partial(rng.choice, chars)
        glue = ""
    else:
        spots = [m.start() for m in re.finditer(" ", text)]
        pick = functools.partial(rng.choice, words)
        glue = " "
    if not spots:
        return text + (glue + pick() if force else "")
    n = max(1 if force else 0, round(len(spots) * VARIANT_INSERT_RATE * (0.5 + rng.random())))
    pieces, last = [], 0
    for at in sorted(rng.sample(spots, min(n, len(spots)))):
        pieces += [text[last:at], glue + pick()]
        last = at
    return "".join(pieces) + text[last:]


def light_edit(text: str, rng: random.Random, edits: int) -> str:
    """``edits`` word swaps (adjacent words exchanged) or deletions; Han characters count as words."""
    zh = is_chinese(text)
    parts = list(text) if zh else text.split(" ")
    for _ in range(edits):
        if len(parts) < 4:
            break
        k = rng.randrange(len(parts) - 1)
        if rng.random() < 0.5:
            parts[k], parts[k + 1] = parts[k + 1], parts[k]
        else:
            del parts[k]
    return ("" if zh else " ").join(parts)


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    tokens = [t.lower() for t in TOKEN.findall(text)]
    if len(tokens) < n:
        return {tuple(tokens)}
    return {tuple(tokens[k:k + n]) for k in range(len(tokens) - n + 1)}


def row_text(row: Row, fmt: str) -> str:
    texts: list[str] = []
    map_texts(row, fmt, lambda t: texts.append(t) or t)
    return "\n".join(texts)


def jaccard(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y) if x | y else 1.0


# --------------------------------------------------------------------------------------------------- records

@dataclass
class Corpus:
    """The layout of one corpus: how many records each source has, and where each source's slots start."""

    records: int
    seed: int
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shares = [s.share for s in SOURCES]
        exact = [self.records * w / sum(shares) for w in shares]
        counts = [int(x) for x in exact]
        for k in sorted(range(len(exact)), key=lambda k: counts[k] - exact[k])[: self.records - sum(counts)]:
            counts[k] += 1
        self.counts = {s.name: n for s, n in zip(SOURCES, counts, strict=True)}


PLANS = {s.name: s for s in SOURCES}


def slot_rng(seed: int, source: str, slot: int, purpose: str) -> random.Random:
    return random.Random(f"{seed}/{source}/{slot}/{purpose}")


def slot_kind(seed: int, source: str, slot: int) -> str:
    u = slot_rng(seed, source, slot, "kind").random()
    for name, rate in KINDS:
        if u < rate:
            return name if slot > FAMILY_STRIDE else "base"  # the first slots have nothing to copy
        u -= rate
    return "base"


def base_slot(seed: int, source: str, upper: int, stride: int, rng: random.Random) -> int:
    """A slot below ``upper`` (a multiple of ``stride``) holding a base record, so a copy has its original."""
    slot = 0
    for _ in range(20):
        slot = stride * rng.randrange(max(1, upper // stride))
        if slot_kind(seed, source, slot) == "base":
            break
    return slot


def base_record(seed: int, source: str, slot: int) -> Row:
    """The slot's pool record: as it is in round 0, a variant in later rounds."""
    pool = pools(seed)[source]
    round_, position = divmod(slot, len(pool))
    row = pool[position]
    if round_ == 0:
        return row
    rng = slot_rng(seed, source, slot, "variant")
    words, chars = vocabulary(seed)
    forced = {"first": True}

    def vary(text: str) -> str:
        force, forced["first"] = forced["first"], False
        return insert_noise(text, rng, words, chars, force)

    return map_texts(row, PLANS[source].fmt, vary)


def fold_change(row: Row, fmt: str, rng: random.Random) -> Row:
    """An exact duplicate as the dedup key sees it: case, outer punctuation or spacing changed."""
    change = rng.choice(("none", "none", "none", "case", "punct", "space"))
    fn: TextFn = {
        "none": lambda t: t,
        "case": lambda t: t.lower(),
        "punct": lambda t: t.rstrip(".!?。！？") if len(t) > 1 else t,
        "space": lambda t: t.replace(" ", "  ", 1),
    }[change]
    return map_texts(row, fmt, fn, "prompt") if change != "none" else row


def record(seed: int, corpus: Corpus, source: str, slot: int, stats: Counter[str] | None = None) -> Row:
    """The record at ``slot`` of ``source`` (before injected defects): a pure function of its arguments."""
    kind = slot_kind(seed, source, slot)
    fmt = PLANS[source].fmt
    rng = slot_rng(seed, source, slot, "dup")
    if kind == "exact_dup":
        target_source = source
        if source in ALPACA_SOURCES and rng.random() < CROSS_SOURCE_DUP:
            target_source = rng.choice(ALPACA_SOURCES)
        target = base_slot(seed, target_source, min(slot, corpus.counts[target_source]), 1, rng)
        if stats is not None:
            stats[f"{source}:exact_dup" + (":cross_source" if target_source != source else "")] += 1
        return fold_change(base_record(seed, target_source, target), fmt, rng)
    if kind == "near_dup":
        original = base_record(seed, source, base_slot(seed, source, slot, FAMILY_STRIDE, rng))
        copy = near_copy(original, fmt, rng)
        if copy is not None:
            if stats is not None:
                stats[f"{source}:near_dup"] += 1
                stats["near_dup_jaccard_sum_x1000"] += round(1000 * jaccard(row_text(original, fmt),
                                                                            row_text(copy, fmt)))
            return copy
        if stats is not None:
            stats[f"{source}:near_dup_too_short"] += 1  # a record too short to edit lightly: a base record instead
    if stats is not None:
        stats[f"{source}:base" + (":variant" if slot >= len(pools(seed)[source]) else "")] += 1
    return base_record(seed, source, slot)


def near_copy(row: Row, fmt: str, rng: random.Random) -> Row | None:
    """An edited copy with true Jaccard in NEAR_DUP_JACCARD (None for records too short to get there). Long
    records get word swaps / deletions inside their texts (each changes ~5 shingles); short ones, or when that
    misses the range, words appended to the answer (each adds one shingle), as in "..., too." copies."""
    text = row_text(row, fmt)
    n_shingles = len(shingles(text))
    if n_shingles < 8:
        return None
    low, high = NEAR_DUP_JACCARD
    for attempt in range(4):
        target = low + (high - low) * rng.random()
        changed = n_shingles * (1 - target) / (1 + target)  # shingles to change for this Jaccard
        if changed >= 5 and attempt < 2:
            per_text = max(1, round(changed / 5 / 3))
            copy = map_texts(row, fmt, lambda t, k=per_text: light_edit(t, rng, k) if len(t.split()) > SHORT_WORDS
                             or is_chinese(t) else t)
        else:
            words = max(1, round(changed))
            copy = map_texts(row, fmt, lambda t, k=words: append_words(t, rng, k), "answer")
        if low <= jaccard(text, row_text(copy, fmt)) <= high:
            return copy
    return None


def append_words(text: str, rng: random.Random, n: int) -> str:
    zh = is_chinese(text)
    return text + ("" if zh else " ") + ("" if zh else " ").join(rng.choice(EDGE_WORDS[zh]) for _ in range(n))


# --------------------------------------------------------------------------------------------------- defects

@cache
def eval_prompts() -> tuple[str, ...]:
    mt = [r["turns"][0] for r in _read_json(SHARED / "fastchat" / "mt_bench_questions.jsonl")]
    user = [r["instruction"] + (f"\n\n{r['instances'][0]['input']}" if r["instances"][0].get("input") else "")
            for r in _read_json(SHARED / "self-instruct" / "user_oriented_instructions.jsonl")]
    return tuple(mt + user)


def fake_email(rng: random.Random) -> str:
    name = rng.choice(("john", "mary", "li.wei", "zhang", "a.smith", "support", "info"))
    return f"{name}{rng.randrange(100)}@{rng.choice(('example.com', 'mail.example.org', 'qq.com', '163.com'))}"


def fake_phone(rng: random.Random, zh: bool) -> str:
    if zh:
        return f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
    return f"+1 ({rng.randrange(201, 990)}) 555-{rng.randrange(10_000):04d}"


def inject(row: Row, fmt: str, defect: str, rng: random.Random) -> Row | int | None:
    """``row`` with one defect (``wrong_type`` returns the row with a number or null as output)."""
    if defect == "pii_email":
        line = rng.choice(EMAIL_LINES).format(email=fake_email(rng))
        return map_texts(row, fmt, lambda t: f"{t}\n{line}" if t else t, "answer")
    if defect == "pii_phone":
        def add(t: str) -> str:
            zh = is_chinese(t)
            line = rng.choice(ZH_PHONE_LINES if zh else PHONE_LINES).format(phone=fake_phone(rng, zh))
            return f"{t}\n{line}" if t else t
        return map_texts(row, fmt, add, "answer")
    if defect == "eval_leak":
        prompt = rng.choice(eval_prompts())
        if rng.random() < 0.3:
            prompt = light_edit(prompt, rng, 1)
        row = map_texts(row, fmt, lambda t: prompt, "prompt")
        return {**row, "input": ""} if fmt == "alpaca" else row
    if defect == "control_chars":
        return map_texts(row, fmt, lambda t: t.replace(" ", " \u200b", 1).replace("\n", "\x07\n", 1), "answer")
    if defect == "crlf":
        return map_texts(row, fmt, lambda t: t.replace("\n", "\r\n"), "answer")
    if defect == "outer_space":
        return map_texts(row, fmt, lambda t: f"  {t} \n", "prompt")
    if defect == "wrong_type":
        return {**row, "output": rng.choice((42, None))}
    if defect == "mojibake":
        return map_texts(row, fmt, lambda t: t.replace("'", "â€™").replace("e", "Ã©", 1), "answer")
    return row


def pick_defect(rng: random.Random, plan: SourcePlan, jsonl: bool) -> str | None:
    u = rng.random()
    for name, rate, applies in DEFECTS:
        if u < rate:
            ok = (plan.fmt in applies) or (name == "malformed_line" and jsonl and plan.lenient)
            return name if ok else None
        u -= rate
    return None


# --------------------------------------------------------------------------------------------------- files

def part_ranges(n: int, parts: int) -> list[tuple[int, int]]:
    bounds = [round(n * k / parts) for k in range(parts + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(parts) if bounds[k + 1] > bounds[k]]


def parts_per_source(corpus: Corpus, parts: int) -> dict[str, int]:
    """At least one part per source, the rest in proportion to their records."""
    return {name: max(1, round(parts * n / corpus.records)) for name, n in corpus.counts.items()}


def serialize(rows: Iterator[tuple[Row, bool]], layout: str, trailing_comma: bool) -> Iterator[bytes]:
    """The file's bytes, a row at a time; (row, malformed) pairs: a malformed JSONL row is cut short."""
    option = orjson.OPT_INDENT_2 if layout in ("indent2", "indent4") else 0
    if layout == "jsonl":
        for row, malformed in rows:
            line = orjson.dumps(row)
            if malformed:  # cut at a character, not a byte: the file stays valid UTF-8
                text = line.decode()
                line = text[: max(1, len(text) // 2)].encode()
            yield line + b"\n"
        return
    first = True
    yield b"[\n" if layout != "oneline" else b"["
    for row, _ in rows:
        data = orjson.dumps(row, option=option)
        if layout == "indent2":
            data = b"  " + data.replace(b"\n", b"\n  ")
        elif layout == "indent4":  # carbonz0's layout: "{" at column 0, keys indented by 4
            data = data.replace(b'\n  "', b'\n    "')
        sep = b"" if first else (b",\n" if layout != "oneline" else b", ")
        yield sep + data
        first = False
    yield (b",\n]" if trailing_comma else b"\n]") if layout != "oneline" else (b", ]" if trailing_comma else b"]")


def write_part(seed: int, corpus: Corpus, plan: SourcePlan, number: int, span: tuple[int, int], folder: Path,
               stats: Counter[str]) -> Path:
    layout = plan.layouts[number % len(plan.layouts)]
    path = folder / plan.name / f"part-{number:02d}.{'jsonl' if layout == 'jsonl' else 'json'}"
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{seed}/{plan.name}/part{number}/defects")

    def rows() -> Iterator[tuple[Row, bool]]:
        for slot in range(*span):
            row = record(seed, corpus, plan.name, slot, stats)
            defect = pick_defect(rng, plan, layout == "jsonl")
            if defect and defect != "malformed_line":
                row = inject(row, plan.fmt, defect, rng)  # type: ignore[assignment]
            if defect:
                stats[f"defect:{defect}"] += 1
            yield row, defect == "malformed_line"

    trailing = plan.lenient and layout != "jsonl" and number == TRAILING_COMMA_PART
    stats["defect:trailing_comma_file"] += trailing
    with path.open("wb") as fh:
        for data in serialize(rows(), layout, trailing):
            fh.write(data)
    return path


def write_corpus(records: int, parts: int, seed: int, target: Path) -> dict[str, Any]:
    corpus = Corpus(records, seed)
    stats: Counter[str] = Counter()
    files = []
    per_source = parts_per_source(corpus, parts)
    for plan in SOURCES:
        for number, span in enumerate(part_ranges(corpus.counts[plan.name], per_source[plan.name])):
            files.append(write_part(seed, corpus, plan, number, span, target / "corpus", stats).relative_to(target))
    near = sum(v for k, v in stats.items() if k.endswith(":near_dup"))
    summary = {
        "records": records, "seed": seed, "sources": corpus.counts,
        "pool_sizes": {name: len(rows) for name, rows in pools(seed).items()},
        "files": [str(f) for f in files],
        "bytes": sum((target / f).stat().st_size for f in files),
        "kinds": {k: v for k, v in sorted(stats.items()) if not k.startswith(("defect:", "near_dup_jaccard"))},
        "defects": {k.split(":", 1)[1]: v for k, v in sorted(stats.items()) if k.startswith("defect:")},
        "near_dup_mean_jaccard": round(stats["near_dup_jaccard_sum_x1000"] / near / 1000, 3) if near else None,
    }
    (target / "corpus.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# --------------------------------------------------------------------------------------------------- mix.yaml

def mix_yaml(records: int, target: Path) -> str:
    """Every stage on: languages en + zh (the Chinese source zh only), quality defaults, PII redacted, exact and
    near dedup, decontamination against MT-Bench and self-instruct's user-oriented prompts, a 1% eval split, a
    mixture with a 30% general share, tokenization with the LLaMA-2 tokenizer (set INSTRUCT_PIPELINE_TOKENIZER
    to a local copy offline)."""
    rel = functools.partial(os.path.relpath, start=target)
    lines = [f"# bench/scale/make_corpus.py --records {records}: issue #9's end-to-end build",
             f"name: scale-{label(records)}",
             "seed: 0", "sources:"]
    for plan in SOURCES:
        extra = "".join([", general: true" if plan.general else "", ", lenient: true" if plan.lenient else "",
                         f", languages: [{', '.join(plan.languages)}]" if plan.languages else ""])
        fmt = "" if plan.fmt == "alpaca" else f", format: {plan.fmt}"
        lines.append(f"  - {{name: {plan.name}, path: corpus/{plan.name}, task: {plan.task}{fmt}{extra}}}")
    lines += [
        "filters:", "  languages: [en, zh]",
        "quality: {}                    # every rule at its default",
        "pii:", "  action: redact",
        "dedup:", "  exact: true", "  near: true", "  threshold: 0.8",
        "decontaminate:", "  against:",
        f"    - {rel(SHARED / 'fastchat' / 'mt_bench_questions.jsonl')}",
        f"    - {rel(SHARED / 'self-instruct' / 'user_oriented_instructions.jsonl')}",
        "split:", "  eval: 0.01",
        "mixture:", "  general_share: 0.3", "  weights: {zh_qa: 2, chat: 2, longform: 1}", "  max_repeats: 2",
        "  sampling: diverse",
        "tokenize:", "  enabled: true",
        "  tokenizer: NousResearch/Llama-2-7b-hf   # INSTRUCT_PIPELINE_TOKENIZER=../shared/tokenizers/llama-2 offline",
        "  template: alpaca", "  cutoff_len: 2048", "  packing: false",
        "output:", "  dir: out",
    ]
    return "\n".join(lines) + "\n"


def label(records: int) -> str:
    return f"{records // 1_000_000}m" if records % 1_000_000 == 0 else f"{records // 1000}k"


def main(doc: str = __doc__, name: Callable[[int], str] = label, parts: int = 24,
         write: Callable[[int, int, int, Path], dict[str, Any]] = write_corpus,
         mix: Callable[[int, Path], str] = mix_yaml) -> None:
    """The command line of a corpus generator: this one's, or make_short_corpus's with its own functions."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--parts", type=int, default=parts, help="files in all (at least one per source)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help=f"default: bench/work/scale/{name(100_000)}/ (by --records)")
    args = parser.parse_args()
    target = args.out or WORK / name(args.records)
    target.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    summary = write(args.records, args.parts, args.seed, target)
    (target / "mix.yaml").write_text(mix(args.records, target))
    print(json.dumps({k: v for k, v in summary.items() if k != "files"}, indent=2))
    print(f"wrote {len(summary['files'])} files, {summary['bytes'] / 1e6:.1f} MB, and {target / 'mix.yaml'} "
          f"in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
