"""Normalize: clean every text field of the records; nothing is rejected here.

Contract: an ``Outcome`` (pipeline/stage.py) with the same rows and cleaned text, no rejects, and as stats a count of
repairs per (source, repair):
- ``newlines``: CR LF and lone CR become LF;
- ``control_chars``: C0/C1 control characters other than tab and newline removed, and the invisible
  zero-width space, word joiner and BOM;
- ``unicode_normalized``: text changed by Unicode normalization (``normalize.unicode_form``, NFC by default);
- ``whitespace_trimmed``: leading or trailing white space removed;
- ``placeholder_input``: an input such as "<noinput>", "No input", "N/A" made empty.
Inner white space is left alone: code and Markdown answers depend on it.

Speed: vectorized scans find the strings holding non-ASCII text or ASCII control characters; only those go
through the Python clean-up (CPython's ``unicodedata`` is ~10x faster than polars'
``str.normalize`` on Chinese text thanks to its quick check), everything else is only trimmed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import polars as pl

from pipeline.stage import Outcome, kept_all
from schemas.mix import NormalizeSpec

CONTROL_CHARS = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u2060\ufeff]"
ASCII_CONTROL = "[\x00-\x08\x0b-\x1f\x7f]"  # includes CR; with non-ASCII text, what needs more than trimming
TEXT_COLUMNS = ("instruction", "input", "output", "system")
FIXES = ("newlines", "control_chars", "unicode_normalized", "whitespace_trimmed", "placeholder_input")


def text_cleaner(spec: NormalizeSpec) -> Callable[[str], tuple[str, int]]:
    """A function from text to (clean text, bit mask of the fixes applied: bit i is FIXES[i]); no trimming."""
    control = re.compile(CONTROL_CHARS)
    form = spec.unicode_form

    def clean(text: str) -> tuple[str, int]:
        mask = 0
        if "\r" in text:
            text, mask = text.replace("\r\n", "\n").replace("\r", "\n"), 1
        if spec.strip_control_chars:
            stripped = control.sub("", text)
            if stripped != text:
                text, mask = stripped, mask | 2
        if form != "none" and not text.isascii():
            normal = unicodedata.normalize(form, text)
            if normal != text:
                text, mask = normal, mask | 4
        return text, mask

    return clean


def placeholder_mask(inputs: pl.Series, placeholders: list[str]) -> pl.Series:
    """Inputs that are a placeholder once case-folded with everything but letters and digits removed."""
    folded_forms = [p.lower() for p in placeholders]
    longest = 4 * max((len(p) for p in folded_forms), default=0) + 8  # room for brackets, spaces, punctuation
    mask = pl.Series("placeholder", [False] * len(inputs), dtype=pl.Boolean)
    short = ((inputs.str.len_bytes() > 0) & (inputs.str.len_bytes() <= longest)).fill_null(False).arg_true()
    if short.len():
        folded = inputs.gather(short).str.to_lowercase().str.replace_all(r"[^\p{L}\p{N}]", "")
        mask = mask.scatter(short.filter(folded.is_in(folded_forms)), True)
    return mask


def normalize(frame: pl.DataFrame, spec: NormalizeSpec) -> Outcome:
    clean = text_cleaner(spec)
    not_plain = frame.select(
        ((pl.col(c).str.len_bytes() != pl.col(c).str.len_chars()) | pl.col(c).str.contains(ASCII_CONTROL))
        .fill_null(False) for c in TEXT_COLUMNS
    )
    bits = [0] * frame.height
    cleaned_columns = []
    for name in TEXT_COLUMNS:
        positions = not_plain[name].arg_true()
        if not positions.len():
            continue
        cleaned, fixes = zip(*(clean(text) for text in frame[name].gather(positions).to_list()), strict=True)
        cleaned_columns.append(frame[name].scatter(positions, list(cleaned)))
        for position, fix in zip(positions.to_list(), fixes, strict=True):
            bits[position] |= fix
    frame = frame.with_columns(cleaned_columns)
    trimmed = pl.any_horizontal(
        (pl.col(c).str.strip_chars().str.len_bytes() != pl.col(c).str.len_bytes()).fill_null(False)
        for c in TEXT_COLUMNS
    )
    frame = frame.with_columns(  # every expression here sees the columns before trimming
        *(pl.col(c).str.strip_chars() for c in TEXT_COLUMNS),
        (pl.Series(bits, dtype=pl.Int64) | trimmed.cast(pl.Int64) * 8).alias("_fixes"),
    )
    if frame["history"].list.len().sum():
        frame = frame.with_columns(pl.col("history").list.eval(pl.struct(
            *[pl.element().struct.field(side).map_elements(lambda t: clean(t)[0].strip(), return_dtype=pl.String)
              .alias(side) for side in ("user", "assistant")]
        )))
    is_placeholder = placeholder_mask(frame["input"], spec.placeholder_inputs)
    frame = frame.with_columns(
        pl.col("_fixes") | is_placeholder.cast(pl.Int64) * 16,
        pl.when(is_placeholder).then(pl.lit("")).otherwise(pl.col("input")).alias("input"),
    )
    counts = frame.group_by("source", maintain_order=True).agg(
        [((pl.col("_fixes") & (1 << i)) != 0).sum().alias(fix) for i, fix in enumerate(FIXES)]
    )
    repairs = {
        (row["source"], fix): int(row[fix])
        for row in counts.iter_rows(named=True)
        for fix in FIXES
        if row[fix]
    }
    return kept_all(frame.drop("_fixes"), repairs)
