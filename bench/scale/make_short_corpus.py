"""Make the short-record scale corpus of issue #19 item 4: N short Alpaca-like records (~80 LLaMA-2 tokens of
text each), about 45% of them exact or near duplicates, and the mix.yaml to build it.

    .venv/bin/python bench/scale/make_short_corpus.py --records 100000     # -> bench/work/scale/short-100k/
    .venv/bin/python bench/scale/make_short_corpus.py --records 1000000    # -> bench/work/scale/short-1m/

Where ``make_corpus.py`` (the issue #9 corpus) spends its time in long texts (tokenization is over half of that
build), this one is the other end: many short records, where the per-record stages (reading, validation,
normalization, language, quality, PII) and dedup dominate. It reuses make_corpus's pools, text edits, defects and
file layouts; what differs is here:

    source      share  format (files)                                pool
    general_en  0.65   Alpaca JSON lists (indent 2), every 3rd part   alpaca-en + alpaca_en_demo, records of at
                       JSONL                                          most SHORT_CHARS["en"] characters
    zh_alpaca   0.35   Alpaca JSON lists (indent 2 / 4 / one line),   alpaca-zh, zh-misc, alpaca_zh_demo, records
                       lenient (one part ends ",\\n]")                of at most SHORT_CHARS["zh"] characters

Kinds (``KINDS``): 28% ``exact_dup`` (an earlier base record of this or, for 20%, the other source, verbatim or
with case / punctuation / spacing changed), 17% ``near_dup`` (an edited copy at true Jaccard 0.80-0.95 of an
earlier record: make_corpus.near_copy), the rest ``base`` (the pool's next record, a variant once the pool is
used up: make_corpus.insert_noise). The defects of make_corpus.DEFECTS are injected at their rates.

Deterministic for ``--seed``: a record is a pure function of (seed, source, slot).
"""

from __future__ import annotations

import functools
import json
import os
import random
import sys
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_corpus import (
    SHARED,
    Row,
    SourcePlan,
    fold_change,
    inject,
    insert_noise,
    is_chinese,
    jaccard,
    label,
    map_texts,
    near_copy,
    part_ranges,
    pick_defect,
    pools,
    row_text,
    serialize,
    slot_rng,
    vocabulary,
)
from make_corpus import (
    main as corpus_main,
)

SOURCES: tuple[SourcePlan, ...] = (
    SourcePlan("general_en", "general", 0.65, "alpaca", ("indent2", "indent2", "jsonl"), False, general=True),
    SourcePlan("zh_alpaca", "zh_qa", 0.35, "alpaca", ("indent2", "indent4", "oneline"), True),
)
PLANS = {s.name: s for s in SOURCES}
KINDS: tuple[tuple[str, float], ...] = (("exact_dup", 0.28), ("near_dup", 0.17))
CROSS_SOURCE_DUP = 0.2
FAMILY_STRIDE = 7
SHORT_CHARS = {"en": 420, "zh": 150}  # a record's instruction + input + output, at most (~80 tokens on average)
PARTS = 16
TRAILING_COMMA_PART = 1


def short_name(records: int) -> str:
    return f"short-{label(records)}"


@cache
def short_pool(seed: int, source: str) -> tuple[Row, ...]:
    """make_corpus's pool of ``source`` (seeded order), only its short records with a string output."""
    def short(row: Row) -> bool:
        text = row_text(row, "alpaca")
        return isinstance(row.get("output"), str) and len(text) <= SHORT_CHARS["zh" if is_chinese(text) else "en"]
    return tuple(r for r in pools(seed)[source] if short(r))


def counts(records: int) -> dict[str, int]:
    first = round(records * SOURCES[0].share)
    return {SOURCES[0].name: first, SOURCES[1].name: records - first}


def slot_kind(seed: int, source: str, slot: int) -> str:
    u = slot_rng(seed, source, slot, "short-kind").random()
    for name, rate in KINDS:
        if u < rate:
            return name if slot > FAMILY_STRIDE else "base"
        u -= rate
    return "base"


def base_slot(seed: int, source: str, upper: int, stride: int, rng: random.Random) -> int:
    slot = 0
    for _ in range(20):
        slot = stride * rng.randrange(max(1, upper // stride))
        if slot_kind(seed, source, slot) == "base":
            break
    return slot


def base_record(seed: int, source: str, slot: int) -> Row:
    """The slot's pool record in round 0, a variant (make_corpus.insert_noise) in later rounds."""
    pool = short_pool(seed, source)
    round_, position = divmod(slot, len(pool))
    if round_ == 0:
        return pool[position]
    rng = slot_rng(seed, source, slot, "variant")
    words, chars = vocabulary(seed)
    forced = {"first": True}

    def vary(text: str) -> str:
        force, forced["first"] = forced["first"], False
        return insert_noise(text, rng, words, chars, force)

    return map_texts(pool[position], "alpaca", vary)


def record(seed: int, sizes: dict[str, int], source: str, slot: int, stats: Counter[str]) -> Row:
    kind = slot_kind(seed, source, slot)
    rng = slot_rng(seed, source, slot, "dup")
    if kind == "exact_dup":
        target = source if rng.random() >= CROSS_SOURCE_DUP else rng.choice([s.name for s in SOURCES])
        stats[f"{source}:exact_dup" + (":cross_source" if target != source else "")] += 1
        return fold_change(base_record(seed, target, base_slot(seed, target, min(slot, sizes[target]), 1, rng)),
                           "alpaca", rng)
    if kind == "near_dup":
        original = base_record(seed, source, base_slot(seed, source, slot, FAMILY_STRIDE, rng))
        copy = near_copy(original, "alpaca", rng)
        if copy is not None:
            stats[f"{source}:near_dup"] += 1
            stats["near_dup_jaccard_sum_x1000"] += round(1000 * jaccard(row_text(original, "alpaca"),
                                                                        row_text(copy, "alpaca")))
            return copy
        stats[f"{source}:near_dup_too_short"] += 1
    stats[f"{source}:base" + (":variant" if slot >= len(short_pool(seed, source)) else "")] += 1
    return base_record(seed, source, slot)


def write_part(seed: int, sizes: dict[str, int], plan: SourcePlan, number: int, span: tuple[int, int],
               folder: Path, stats: Counter[str]) -> Path:
    layout = plan.layouts[number % len(plan.layouts)]
    path = folder / plan.name / f"part-{number:02d}.{'jsonl' if layout == 'jsonl' else 'json'}"
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{seed}/short/{plan.name}/part{number}/defects")

    def rows() -> Iterator[tuple[Row, bool]]:
        for slot in range(*span):
            row: Any = record(seed, sizes, plan.name, slot, stats)
            defect = pick_defect(rng, plan, layout == "jsonl")
            if defect and defect != "malformed_line":
                row = inject(row, plan.fmt, defect, rng)
            if defect:
                stats[f"defect:{defect}"] += 1
            yield row, defect == "malformed_line"

    trailing = plan.lenient and layout != "jsonl" and number == TRAILING_COMMA_PART
    with path.open("wb") as fh:
        for data in serialize(rows(), layout, trailing):
            fh.write(data)
    return path


def write_corpus(records: int, parts: int, seed: int, target: Path) -> dict[str, Any]:
    sizes = counts(records)
    stats: Counter[str] = Counter()
    files = []
    for plan in SOURCES:
        n_parts = max(1, round(parts * sizes[plan.name] / records))
        for number, span in enumerate(part_ranges(sizes[plan.name], n_parts)):
            files.append(write_part(seed, sizes, plan, number, span, target / "corpus", stats).relative_to(target))
    near = sum(v for k, v in stats.items() if k.endswith(":near_dup"))
    summary = {
        "records": records, "seed": seed, "sources": sizes,
        "pool_sizes": {s.name: len(short_pool(seed, s.name)) for s in SOURCES},
        "files": [str(f) for f in files],
        "bytes": sum((target / f).stat().st_size for f in files),
        "kinds": {k: v for k, v in sorted(stats.items()) if not k.startswith(("defect:", "near_dup_jaccard"))},
        "defects": {k.split(":", 1)[1]: v for k, v in sorted(stats.items()) if k.startswith("defect:")},
        "near_dup_mean_jaccard": round(stats["near_dup_jaccard_sum_x1000"] / near / 1000, 3) if near else None,
    }
    (target / "corpus.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def mix_yaml(records: int, target: Path) -> str:
    """Every stage on, as make_corpus.mix_yaml: languages en + zh, quality defaults, PII redacted, exact and near
    dedup, decontamination against MT-Bench and self-instruct's user-oriented prompts, a 1% eval split, a mixture,
    LLaMA-2 tokenization without packing."""
    rel = functools.partial(os.path.relpath, start=target)
    lines = [f"# bench/scale/make_short_corpus.py --records {records}: issue #19's short-record build",
             f"name: scale-{short_name(records)}", "seed: 0", "sources:"]
    for plan in SOURCES:
        extra = ", general: true" if plan.general else ""
        extra += ", lenient: true" if plan.lenient else ""
        lines.append(f"  - {{name: {plan.name}, path: corpus/{plan.name}, task: {plan.task}{extra}}}")
    lines += [
        "filters:", "  languages: [en, zh]",
        "quality: {}                    # every rule at its default",
        "pii:", "  action: redact",
        "dedup:", "  exact: true", "  near: true", "  threshold: 0.8",
        "decontaminate:", "  against:",
        f"    - {rel(SHARED / 'fastchat' / 'mt_bench_questions.jsonl')}",
        f"    - {rel(SHARED / 'self-instruct' / 'user_oriented_instructions.jsonl')}",
        "split:", "  eval: 0.01",
        "mixture:", "  general_share: 0.6", "  weights: {zh_qa: 1}", "  max_repeats: 2", "  sampling: diverse",
        "tokenize:", "  enabled: true",
        "  tokenizer: NousResearch/Llama-2-7b-hf   # INSTRUCT_PIPELINE_TOKENIZER=../shared/tokenizers/llama-2 offline",
        "  template: alpaca", "  cutoff_len: 2048", "  packing: false",
        "output:", "  dir: out",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    corpus_main(__doc__, short_name, PARTS, write_corpus, mix_yaml)
