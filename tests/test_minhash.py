"""MinHash signatures: identical to datasketch's for the same shingles and seed; shingling by script."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasketch import MinHash

from pipeline import minhash
from pipeline.minhash import shingle_hash, shingles, signatures


def datasketch_signature(shingle_set: list[str], num_perm: int, seed: int) -> np.ndarray:
    m = MinHash(num_perm=num_perm, seed=seed, hashfunc=shingle_hash)
    m.update_batch([s.encode() for s in shingle_set])
    return m.hashvalues


@pytest.mark.parametrize("num_perm, seed", [(128, 1), (64, 42)])
def test_signatures_equal_datasketch_on_real_records(shared_data, num_perm, seed, monkeypatch):
    monkeypatch.setattr(minhash, "SHINGLES_PER_PASS", 997)  # many passes, records across pass boundaries
    en = json.loads((shared_data / "alpaca-en" / "alpaca_data-00000-03252.json").read_text())[:150]
    zh = json.loads((shared_data / "alpaca-zh" / "zh-data-part-00.json").read_text())[:150]
    sets = [shingles(f"{r['instruction']} {r['input']} {r['output']}", 5) for r in en + zh]
    ours = signatures(sets, num_perm, seed)
    for row, shingle_set in zip(ours, sets):
        assert np.array_equal(row, datasketch_signature(shingle_set, num_perm, seed))


def test_shingles_by_script_and_short_texts():
    assert shingles("The cat, the HAT!", 2) == ["the cat", "cat the", "the hat"]
    assert shingles("把这句话翻译成英文", 5) == ["把这句话翻", "这句话翻译", "句话翻译成", "话翻译成英", "翻译成英文"]
    assert shingles("Hi there", 5) == ["hi there"]  # shorter than n: one shingle, not none
    assert shingles("", 5) == [""]


def test_short_texts_do_not_collapse_into_one_signature():
    sets = [shingles(t, 5) for t in ("Yes.", "No.", "Maybe", "Paris", "42")]
    rows = {tuple(r) for r in signatures(sets)}
    assert len(rows) == 5


def test_estimated_jaccard_tracks_true_jaccard():
    base = "the quick brown fox jumps over the lazy dog and keeps running through the quiet green field".split()
    edited = base.copy()
    edited[7] = "sleepy"
    a, b = shingles(" ".join(base), 5), shingles(" ".join(edited), 5)
    true = len(set(a) & set(b)) / len(set(a) | set(b))
    sig = signatures([a, b], num_perm=256)
    assert abs(float((sig[0] == sig[1]).mean()) - true) < 0.1
