"""Decontamination's n-gram windows: matched by a 64-bit hash, confirmed on the real tokens (issue #16)."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import polars as pl
import pytest

from pipeline import decontaminate, dedup, minhash, validate
from schemas.mix import DecontaminateSpec, DedupSpec

# Two different 13-token windows whose 32-bit shingle hashes (minhash.shingle_sets, which decontamination
# used to look windows up by) are equal: found by a birthday search over the 400,000 windows of a seeded
# random text (random.Random(16), words w0..w199 and a few English ones).
EVAL_WINDOW = "happy paper w5 w1 music w176 w68 w111 w194 w78 w119 w157 w169"
CLEAN_WINDOW = "w33 w112 w174 w10 w169 w85 w67 w42 w140 w142 w46 w68 w168"
# Two different 5-token texts (one shingle each at dedup's ngram 5) whose 32-bit shingle hashes are equal.
SHORT_EVAL, SHORT_CLEAN = "w34 w134 w255 w174 w129", "w149 w291 w102 w70 w285"


def frame(prompts: list[str], source: str = "s") -> pl.DataFrame:
    return pl.DataFrame({
        "id": [f"{source}#{k}" for k in range(len(prompts))], "source": source, "instruction": prompts,
        "input": "", "output": "An answer.", "origin": [f"f:{k + 1}" for k in range(len(prompts))],
    }).with_columns(history=pl.lit(None, validate.HISTORY))


def evals(prompts: list[str], name: str = "bench") -> list[tuple[str, pl.DataFrame]]:
    return [(name, pl.DataFrame({"id": [f"{name}#{k}" for k in range(len(prompts))], "instruction": prompts,
                                 "input": ""}))]


def test_the_windows_collide_under_the_old_32_bit_hash():
    old = minhash.shingle_sets(pl.Series([EVAL_WINDOW, CLEAN_WINDOW, SHORT_EVAL, SHORT_CLEAN]), 13).hashes
    assert minhash.tokens(EVAL_WINDOW) != minhash.tokens(CLEAN_WINDOW) and old[0] == old[1]
    short = minhash.shingle_sets(pl.Series([SHORT_EVAL, SHORT_CLEAN]), 5).hashes
    assert minhash.tokens(SHORT_EVAL) != minhash.tokens(SHORT_CLEAN) and short[0] == short[1]


def test_a_32_bit_window_collision_does_not_remove_a_clean_record():
    """The old code quarantined s#0 (its only window's 32-bit hash equals the eval prompt's); it shares no token
    window with it. s#1 really contains the eval window and stays contaminated."""
    records = frame([f"Please do this: {CLEAN_WINDOW}.", f"Copied: {EVAL_WINDOW}, thanks."])
    found = decontaminate.contaminated(records, evals([EVAL_WINDOW]), DecontaminateSpec())
    assert found["id"].to_list() == ["s#1"]
    assert found["detail"][0] == "shares a 13-token window of bench#0 in bench"


def test_a_32_bit_collision_of_short_prompts_is_not_a_near_duplicate():
    """Texts of at most ``ngram`` tokens are one shingle: a collision of its 32-bit hash made the old near-dup
    verification measure a Jaccard of 1.0, in dedup and in decontamination. Exact fingerprints decide them now."""
    records = frame([SHORT_CLEAN, "W34 w134, w255 w174 w129!"])
    found = decontaminate.contaminated(records, evals([SHORT_EVAL]), DecontaminateSpec())
    assert found["id"].to_list() == ["s#1"]  # the same tokens as the eval prompt: a real near-duplicate
    deduped = dedup.deduplicate(frame([SHORT_EVAL, SHORT_CLEAN]).drop("origin"), DedupSpec(key="prompt", exact=False),
                                ["s"])
    assert deduped.duplicates.is_empty() and deduped.kept.height == 2
    same = dedup.deduplicate(frame([SHORT_EVAL, SHORT_EVAL.upper()]).drop("origin"),
                             DedupSpec(key="prompt", exact=False), ["s"])
    assert same.duplicates.select("id", "kind", "similarity").rows() == [("s#1", "near", 1.0)]


def test_a_hash_collision_in_the_table_does_not_hide_a_match():
    """Every eval window with the record window's hash is tried: forcing all hashes equal, the record's window
    is still found in the second eval prompt, and the first (other tokens) is not reported."""
    vocabulary = pl.Enum(["a", "b", "c", "d"])
    table = decontaminate.windows(minhash.token_series(pl.Series(["a b c", "c d a"])), vocabulary, 3)
    mine = decontaminate.windows(minhash.token_series(pl.Series(["c d a", "b b b"])), vocabulary, 3)
    table = dataclasses.replace(table, hash=np.zeros_like(table.hash))
    mine = dataclasses.replace(mine, hash=np.zeros_like(mine.hash))
    hit, there = decontaminate.shared_windows(mine, table, np.argsort(table.hash, kind="stable"))
    assert hit.tolist() == [0] and table.owner[there].tolist() == [1]


def _reference(records: list[str], eval_prompts: list[str], n: int) -> dict[str, str]:
    """Record id -> eval id of the first window (in text order) that is a window of an eval prompt (the first
    such eval prompt), from token lists in plain Python."""
    def shingles(text: str) -> list[tuple[str, ...]]:
        units = minhash.tokens(text)
        return [tuple(units)] if len(units) < n else [tuple(units[i:i + n]) for i in range(len(units) - n + 1)]

    first_owner: dict[tuple[str, ...], int] = {}
    for k, text in enumerate(eval_prompts):
        for window in shingles(text):
            first_owner.setdefault(window, k)
    found = {}
    for k, text in enumerate(records):
        owners = [first_owner[w] for w in shingles(text) if w in first_owner]
        if owners:
            found[f"s#{k}"] = f"bench#{owners[0]}"
    return found


@pytest.mark.parametrize("slice_rows", [1 << 15, 7])
def test_matches_equal_plain_python_on_random_text(monkeypatch, slice_rows):
    """A small vocabulary makes many real shared windows (and tokens unknown to the evals, short prompts,
    prompts without tokens and CJK characters); the result is exactly the token-level reference, sliced or not."""
    monkeypatch.setattr(decontaminate, "SLICE_ROWS", slice_rows)
    rng = random.Random(3)
    vocab = ["alpha", "beta", "gamma", "delta", "天", "地"]

    def text(words: list[str]) -> str:
        return " ".join(rng.choice(words) for _ in range(rng.choice([0, 1, 2, 3, 4, 5, 8, 12])))

    eval_prompts = [text(vocab) for _ in range(40)]
    records = [text(vocab + ["omega", "zeta"]) + rng.choice(["", " ?", "!"]) for _ in range(300)]
    found = decontaminate.ngram_matches(frame(records), decontaminate.eval_table(evals(eval_prompts), 3))
    expected = _reference(records, eval_prompts, 3)
    assert dict(zip(found["id"], found["eval_id"], strict=True)) == expected
    assert found["id"].to_list() == sorted(expected, key=lambda i: int(i.split("#")[1]))
    assert set(found["set"]) <= {"bench"} and 50 < len(expected) < 300


def test_matches_name_the_eval_set_and_handle_empty_evals():
    sets = evals(["one two three four", "x y z"], "first") + evals(["five six seven eight"], "second")
    found = decontaminate.ngram_matches(frame(["Zero five six seven", "one two three!", "nothing"]),
                                         decontaminate.eval_table(sets, 3))
    assert found.rows() == [("s#0", "second", "second#0"), ("s#1", "first", "first#0")]
    empty = decontaminate.ngram_matches(frame(["one two three"]), decontaminate.eval_table(evals([]), 3))
    assert empty.is_empty() and empty.columns == ["id", "set", "eval_id"]
