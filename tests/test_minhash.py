"""MinHash signatures: identical to datasketch's for the same shingles and seed; tokens by script."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasketch import MinHash

from pipeline import minhash
from pipeline.minhash import shingle_hash, shingles, signatures


def datasketch_signature(text: str, n: int, num_perm: int, seed: int) -> np.ndarray:
    m = MinHash(num_perm=num_perm, seed=seed, hashfunc=shingle_hash)
    m.update_batch([s.encode() for s in shingles(text, n)])
    return m.hashvalues


@pytest.mark.parametrize("n, num_perm, seed", [(5, 128, 1), (3, 64, 42)])
def test_signatures_equal_datasketch_on_real_records(shared_data, n, num_perm, seed, monkeypatch):
    monkeypatch.setattr(minhash, "SHINGLES_PER_PASS", 997)  # many passes, records across pass boundaries
    en = json.loads((shared_data / "alpaca-en" / "alpaca_data-00000-03252.json").read_text())[:150]
    zh = json.loads((shared_data / "alpaca-zh" / "zh-data-part-00.json").read_text())[:150]
    texts = [f"{r['instruction']}\n{r['input']}\n{r['output']}" for r in en + zh] + ["", "Hi", "¡¿?!"]
    ours = signatures(texts, n, num_perm, seed)
    for row, text in zip(ours, texts, strict=True):
        assert np.array_equal(row, datasketch_signature(text, n, num_perm, seed)), text


def test_tokens_and_shingles_by_script():
    assert shingles("The cat, the HAT!", 2) == ["the cat", "cat the", "the hat"]
    assert shingles("把这句话翻译成英文", 5) == ["把 这 句 话 翻", "这 句 话 翻 译", "句 话 翻 译 成",
                                                "话 翻 译 成 英", "翻 译 成 英 文"]
    assert minhash.tokens("用Python写一个函数") == ["用", "python", "写", "一", "个", "函", "数"]
    assert minhash.tokens("don't stop-words_ok") == ["don", "t", "stop", "words_ok"]
    assert shingles("Hi there", 5) == ["hi there"]  # shorter than n: one shingle, not none
    assert shingles("", 5) == [""]


def test_short_texts_do_not_collapse_into_one_signature():
    rows = {tuple(r) for r in signatures(["Yes.", "No.", "Maybe", "Paris", "42"])}
    assert len(rows) == 5


def test_shingle_hash_depends_on_token_order():
    assert shingle_hash(b"a b c") != shingle_hash(b"c b a")
    assert shingle_hash(b"ab c") != shingle_hash(b"a bc")


def test_estimated_jaccard_tracks_true_jaccard():
    base = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "and", "keeps", "running",
            "through", "the", "quiet", "green", "field"]
    edited = base.copy()
    edited[7] = "sleepy"
    a, b = set(shingles(" ".join(base), 5)), set(shingles(" ".join(edited), 5))
    true = len(a & b) / len(a | b)
    sig = signatures([" ".join(base), " ".join(edited)], num_perm=256)
    assert abs(float((sig[0] == sig[1]).mean()) - true) < 0.1
