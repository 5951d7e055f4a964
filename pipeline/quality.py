"""Heuristic quality filters: a table of named rules, each a reason code with its setting in mix.yaml.

Contract: ``quality_filter(records, settings)`` returns an ``Outcome`` (pipeline/stage.py); a record breaking several
rules is rejected once, under the first rule of ``RULES`` it breaks, with every broken rule in ``detail``. A rule
whose setting is null or false is off. The defaults are on where the field agrees they help (alpaca-cleaned's
fixes, LLaMA-Factory and data-juicer filters): refusals, unfilled placeholders, instructions that need content
a text model cannot see, outputs that echo the prompt, degenerate repetition, mojibake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from pipeline import dedup, minhash
from pipeline.stage import Outcome, first_rule, kept_all, split_off
from schemas.mix import QualitySpec

STAGE = "quality"

REFUSALS = (
    r"as an ai(?: language)? model", r"as a language model", r"i(?:'m| am) (?:just )?an ai\b",
    r"i(?:'m| am) sorry,? but i (?:can(?:not|'t)|am unable|won't)",
    (r"i (?:cannot|can't|am unable to) (?:fulfill|comply|assist with|provide|help with) (?:this|that|your)"),
    r"作为一个(?:ai|人工智能)(?:语言模型)?", r"作为一个语言模型", r"(?:抱歉|对不起)，?我(?:无法|不能)",
)
UNSEEN = (  # asks to read, watch or open something the record does not contain
    (r"\b(?:describe|analy[sz]e|look at|watch|listen to|open|visit|view|click|check out|summari[sz]e|read)\s+"
     r"(?:the |this |that |these |following |attached |given |provided |above |below )*"
     r"(?:image|photo|picture|video|audio|recording|link|url|website|web ?page|attachment|attached file|chart"
     r"|graph)s?\b"),
    r"\b(?:in|from) the (?:attached|linked|above|following) (?:image|photo|picture|video|file|chart|graph)\b",
    r"(?:看|观看|查看|打开|描述)(?:这|该|以下|下面)?(?:张|个|段|部)?(?:图片|照片|视频|链接|网页|附件)",
)
# Template slots nobody filled. Case matters: <NAME> is a slot, <name> and <html> are text. Letter templates'
# "[Your Name]" are left alone: for a letter without a sender that is what a good answer writes.
PLACEHOLDERS = r"\{\{\s*\w+\s*\}\}|<[A-Z][A-Z0-9_]{2,}>|(?i:<no ?(?:input|output)>)"
MOJIBAKE = r"Ã[\x80-\xbf]|â€|Â[\xa0-\xbf]|ï¿½|\ufffd"


def _any(patterns: tuple[str, ...]) -> str:
    return "(?i)(?:" + "|".join(patterns) + ")"


def repeated_ngram_ratio(texts: pl.Series, n: int = 3) -> np.ndarray:
    """1 - distinct / all word n-grams of each text (0 for texts of fewer than n + 10 tokens)."""
    sets = minhash.shingle_sets(texts, n)
    owner = np.repeat(np.arange(len(sets), dtype=np.uint64), sets.counts)
    keys = np.sort((owner << np.uint64(32)) | sets.hashes.astype(np.uint64))  # np.unique hashes: 10x slower
    first = np.concatenate(([True], keys[1:] != keys[:-1]))
    distinct = np.bincount((keys[first] >> np.uint64(32)).astype(np.int64), minlength=len(sets))
    ratio = 1 - distinct / np.maximum(sets.counts, 1)
    return np.where(sets.counts >= 10, ratio, 0.0)


def echoes(records: pl.DataFrame) -> pl.Series:
    """Outputs equal to their instruction once case, punctuation and spaces are folded. Only pairs of similar
    length are tokenized (folding never changes a length by more than half)."""
    length = pl.col("output").str.len_chars(), pl.col("instruction").str.len_chars()
    close = records.select((length[0] - length[1]).abs() <= length[1] // 2 + 2).to_series()
    candidates = records.filter(close)
    same = candidates.select(dedup.exact_key(pl.col("output")) == dedup.exact_key(pl.col("instruction"))).to_series()
    found = pl.Series(np.zeros(records.height, dtype=bool))
    rows = np.flatnonzero(close.to_numpy())[same.to_numpy()]
    return found.scatter(rows, True) if len(rows) else found


@dataclass(frozen=True)
class Rule:
    reason: str
    setting: str  # the QualitySpec field; null / false turns the rule off
    check: Callable[[pl.DataFrame, Any], pl.Series]  # (records, setting) -> True where the rule is broken


RULES: tuple[Rule, ...] = (
    Rule("short_output", "min_output_chars",
         lambda f, n: f["output"].str.strip_chars().str.len_chars() < n),
    Rule("too_long_chars", "max_chars",
         lambda f, n: (f["instruction"].str.len_chars() + f["input"].str.len_chars()
                       + f["output"].str.len_chars()) > n),
    Rule("refusal", "refusals", lambda f, _: f["output"].str.contains(_any(REFUSALS))),
    Rule("unfilled_placeholder", "placeholders",
         lambda f, _: f.select(pl.any_horizontal(pl.col(c).str.contains(PLACEHOLDERS)
                                                 for c in ("instruction", "input", "output"))).to_series()),
    Rule("needs_unseen_content", "unseen_content",
         lambda f, _: f.select(pl.concat_str("instruction", "input", separator="\n")
                               .str.contains(_any(UNSEEN))).to_series()),
    Rule("echoes_prompt", "echo", lambda f, _: echoes(f)),
    Rule("repetitive_output", "max_repeated_ngram_ratio",
         lambda f, limit: pl.Series(repeated_ngram_ratio(f["output"]) > limit)),
    Rule("mojibake", "mojibake",
         lambda f, _: f.select(pl.any_horizontal(pl.col(c).str.contains(MOJIBAKE)
                                                 for c in ("instruction", "input", "output"))).to_series()),
)


def quality_filter(records: pl.DataFrame, settings: QualitySpec) -> Outcome:
    """The records that break no rule; each one that does is rejected under the first rule it breaks."""
    broken = {}
    for rule in RULES:
        value = getattr(settings, rule.setting)
        if value is None or value is False or not records.height:
            continue
        broken[rule.reason] = rule.check(records, value).fill_null(False).alias(rule.reason)
    if not broken:
        return kept_all(records)
    flags = pl.DataFrame(list(broken.values()))
    first = first_rule([(r, pl.col(r)) for r in broken])
    every = pl.concat_str([pl.when(pl.col(r)).then(pl.lit(r)) for r in broken], separator=", ", ignore_nulls=True)
    marked = pl.concat([records.select("id", "source", "origin"), flags.select(reason=first, detail=every)],
                       how="horizontal")
    rejected = marked.filter(pl.col("reason").is_not_null()).select(
        "id", "source", pl.lit(STAGE).alias("stage"), "reason", ("rules broken: " + pl.col("detail")).alias("detail"),
        "origin")
    return split_off(records, rejected)
