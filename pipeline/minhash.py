"""MinHash signatures for near-duplicate detection, vectorized over many records and bit-identical to
datasketch's ``MinHash`` (its default ``affine32`` scheme), so signatures interoperate with datasketch's LSH.

datasketch 2.x hashes each shingle to 32 bits, mixes the hash with the MurmurHash3 finalizer, and permutes it
as ``a_k * h + b_k mod 2**32`` (odd ``a_k``); the signature is the minimum over the shingles for each k. The
(a, b) pairs are taken from datasketch itself, and each record's minima come from one numpy pass per batch
instead of one ``MinHash`` object per record. The shingle hash is xxh32 of the UTF-8 bytes: pass
``hashfunc=shingle_hash`` to datasketch to get the same signatures from it.

Shingles follow the field's defaults: word n-grams for space-delimited text, character n-grams for CJK text
(chosen per record by script), punctuation removed and case folded first (punctuation left inside word tokens
costs recall), and a text shorter than n is one shingle, never none: an empty signature would make every short
text a "duplicate" of every other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import chain

import numpy as np
import xxhash
from datasketch import MinHash

_PUNCTUATION = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
SHINGLES_PER_PASS = 1 << 18  # bounds the (shingles x num_perm) uint32 matrix of one numpy pass to 128 MB at 128


def shingle_hash(shingle: bytes) -> int:
    return xxhash.xxh32_intdigest(shingle)


def shingles(text: str, n: int) -> list[str]:
    """Word n-grams, or character n-grams when at least a third of the non-space characters are CJK."""
    folded = _SPACES.sub(" ", _PUNCTUATION.sub(" ", text.lower())).strip()
    compact = folded.replace(" ", "")
    if compact and len(_CJK.findall(compact)) * 3 >= len(compact):
        units: Sequence[str] = compact
        join = ""
    else:
        units = folded.split(" ")
        join = " "
    if len(units) <= n:
        return [join.join(units)]
    return [join.join(units[i:i + n]) for i in range(len(units) - n + 1)]


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = MinHash(num_perm=num_perm, seed=seed).permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def signatures(shingle_sets: Sequence[Sequence[str]], num_perm: int = 128, seed: int = 1) -> np.ndarray:
    """One row of ``num_perm`` uint32 minima per record (each record needs at least one shingle)."""
    a, b = permutations(num_perm, seed)
    counts = np.fromiter((len(s) for s in shingle_sets), dtype=np.int64, count=len(shingle_sets))
    if (counts == 0).any():
        raise ValueError("every record needs at least one shingle")
    hashes = np.fromiter((shingle_hash(s.encode()) for s in chain.from_iterable(shingle_sets)), dtype=np.uint32,
                         count=int(counts.sum()))
    with np.errstate(over="ignore"):
        mixed = _fmix32(hashes)
        out = np.empty((len(shingle_sets), num_perm), dtype=np.uint32)
        starts = np.concatenate(([0], np.cumsum(counts)))
        record = 0
        while record < len(shingle_sets):
            last = int(np.searchsorted(starts, starts[record] + SHINGLES_PER_PASS, side="right")) - 1
            last = max(last, record + 1)  # one record always fits, however many shingles it has
            span = mixed[starts[record]:starts[last]]
            permuted = span[:, None] * a[None, :] + b[None, :]  # uint32: the wraparound is the mod 2**32
            out[record:last] = np.minimum.reduceat(permuted, starts[record:last] - starts[record], axis=0)
            record = last
    return out
