"""MinHash signatures for near-duplicate detection, vectorized over many records and bit-identical to
datasketch's ``MinHash`` (its default ``affine32`` scheme), so signatures interoperate with datasketch's LSH.

Tokens: the text is case-folded; a run of word characters is one token, except that each character of a
script written without spaces (Han, Kana, Thai, Lao, Khmer, Myanmar) is a token of its own. Punctuation is
dropped (left inside word tokens it costs recall). So English gets word n-grams and Chinese character
n-grams, and a Chinese record that quotes an English term gets both, without a per-record mode switch.

Shingles: every n consecutive tokens; a text with fewer than n tokens is one shingle of all of them, never none
(an empty signature would make every short text a "duplicate" of every other). A shingle's 32-bit hash
combines the xxh32 hashes of its tokens (``shingle_hash``), so each distinct token is hashed once per batch and
the n-grams are combined in numpy instead of being built as strings.

Signatures: datasketch 2.x mixes each shingle hash with the MurmurHash3 finalizer and permutes it as
``a_k * h + b_k mod 2**32``; the signature is the minimum over the shingles for each k. The (a, b) pairs are drawn
as datasketch draws them (tested against it). ``MinHash(num_perm, seed, hashfunc=shingle_hash)`` updated with
``shingles(text, n)``
gives the same signature as ``signatures([text], n, num_perm, seed)``.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import overload

import numpy as np
import polars as pl
import regex
import xxhash

# Scripts written without spaces between words: each character is a token.
UNSPACED = "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Word characters by Unicode category, spelled out so that polars' Rust regex and Python's ``regex`` (V1 set
# operations) agree on every character (their ``\w`` differ, e.g. on "²").
TOKEN_PATTERN = f"[{UNSPACED}]|[[\\p{{L}}\\p{{M}}\\p{{N}}\\p{{Pc}}]--[{UNSPACED}]]+"
_TOKEN = regex.compile(TOKEN_PATTERN, regex.V1)
SHINGLES_PER_PASS = 1 << 13  # shingles permuted per numpy pass: a 4 MB (128 x 8192) uint32 block stays in cache
TAKE_ROWS = 1 << 16  # records gathered per pass of ``ShingleSets.take``

_SEED = np.uint32(0x165667B1)
_PRIME1, _PRIME2 = np.uint32(0x9E3779B1), np.uint32(0x85EBCA77)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def shingles(text: str, n: int) -> list[str]:
    """The shingles of one text as strings (tokens joined by spaces): the reference for ``signatures``."""
    units = tokens(text)
    if len(units) <= n:
        return [" ".join(units)]
    return [" ".join(units[i:i + n]) for i in range(len(units) - n + 1)]


@overload
def _combine(h: np.uint32, token: np.uint32) -> np.uint32: ...


@overload
def _combine(h: np.ndarray, token: np.ndarray) -> np.ndarray: ...


def _combine(h: np.ndarray | np.uint32, token: np.ndarray | np.uint32) -> np.ndarray | np.uint32:
    """One xxh32-style round: folds a token hash into a shingle hash, order-sensitively."""
    x = h + token * _PRIME2
    return ((x << np.uint32(13)) | (x >> np.uint32(19))) * _PRIME1


def shingle_hash(shingle: bytes) -> int:
    """The 32-bit hash of one shingle; pass it as datasketch's ``hashfunc``."""
    h = _SEED
    with np.errstate(over="ignore"):
        for token in shingle.split(b" ") if shingle else ():
            h = _combine(h, np.uint32(xxhash.xxh32_intdigest(token)))
    return int(h)


def token_series(texts: pl.Series) -> pl.Series:
    """The tokens of each text, as a List(String) column."""
    return texts.str.to_lowercase().str.extract_all(TOKEN_PATTERN)


def token_series_expr(texts: pl.Expr) -> pl.Expr:
    return texts.str.to_lowercase().str.extract_all(TOKEN_PATTERN)


@dataclass(frozen=True)
class ShingleSets:
    """The shingle hashes of many records, flat: record i owns ``hashes[starts[i]:starts[i + 1]]``."""

    hashes: np.ndarray  # uint32
    starts: np.ndarray  # int64, one more than there are records

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.starts)

    def __len__(self) -> int:
        return len(self.starts) - 1

    def take(self, records: np.ndarray) -> ShingleSets:
        """The sets of ``records`` (indices, in any order), gathered ``TAKE_ROWS`` records at a time: the
        int64 gather index of a pass is bounded, not 8 bytes for every shingle taken (470 MB at 1M records)."""
        counts = self.counts[records]
        starts = np.concatenate(([0], np.cumsum(counts)))
        hashes = np.empty(int(starts[-1]), dtype=self.hashes.dtype)
        for first in range(0, len(records), TAKE_ROWS):
            last = min(first + TAKE_ROWS, len(records))
            n, begin = counts[first:last], starts[first]
            offset = np.arange(int(starts[last] - begin)) - np.repeat(starts[first:last] - begin, n)
            hashes[begin:starts[last]] = self.hashes[np.repeat(self.starts[records[first:last]], n) + offset]
        return ShingleSets(hashes, starts)

    @staticmethod
    def concat(parts: list[ShingleSets]) -> ShingleSets:
        """The sets of ``parts``, one after the other. Empties ``parts``: each part is let go once copied, so
        the parts and the result are not all held at once (the result's pages are touched as they are filled)."""
        if len(parts) <= 1:
            return parts.pop() if parts else ShingleSets(np.empty(0, np.uint32), np.zeros(1, np.int64))
        counts = np.concatenate([p.counts for p in parts])
        starts = np.concatenate(([0], np.cumsum(counts)))
        hashes = np.empty(int(starts[-1]), dtype=np.uint32)
        at = 0
        parts.reverse()
        while parts:
            part = parts.pop().hashes
            hashes[at:at + len(part)] = part
            at += len(part)
        return ShingleSets(hashes, starts)


def shingle_sets(texts: pl.Series, n: int) -> ShingleSets:
    return shingle_sets_of_tokens(token_series(texts), n)


def shingle_sets_of_tokens(token_lists: pl.Series, n: int) -> ShingleSets:
    """Every record's shingle hashes (with repeats, in text order). Each distinct token is hashed once."""
    lengths = token_lists.list.len().fill_null(0).to_numpy().astype(np.int64)
    # A category namespace per thread: casting in parallel into one global namespace contends on its lock.
    codes = token_lists.explode().drop_nulls().cast(pl.Categorical(pl.Categories(f"tokens-{threading.get_ident()}")))
    distinct = codes.unique()
    top = distinct.to_physical().max()  # the largest token code; None when there are no tokens
    lookup = np.zeros((top if isinstance(top, int) else 0) + 1, dtype=np.uint32)
    lookup[distinct.to_physical().to_numpy()] = np.fromiter(
        (xxhash.xxh32_intdigest(t.encode()) for t in distinct.cast(pl.String).to_list()),
        dtype=np.uint32, count=len(distinct))
    token_hashes = np.concatenate((lookup[codes.to_physical().to_numpy()], np.zeros(n, dtype=np.uint32)))

    per_record = np.maximum(lengths - n + 1, 1)
    starts = np.concatenate(([0], np.cumsum(per_record)))
    total = len(token_hashes) - n
    with np.errstate(over="ignore"):
        window = np.full(total, _SEED, dtype=np.uint32)  # the n tokens from each position on, across records
        for k in range(n):
            window = _combine(window, token_hashes[k:total + k])
    position = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    # A record's shingles are the windows at positions 0 .. L - n, in order; a record shorter than n keeps one
    # slot (its position 0), overwritten below. A record without tokens has no position: it needs a scatter.
    keep = position <= np.repeat(np.maximum(lengths - n, 0), lengths)
    if (lengths > 0).all():
        hashes = window[keep]
    else:
        hashes = np.empty(int(starts[-1]), dtype=np.uint32)
        record = np.repeat(np.arange(len(lengths)), lengths)
        hashes[starts[record[keep]] + position[keep]] = window[keep]
    short = np.flatnonzero(lengths < n)  # one shingle of all their tokens (none: the seed alone)
    if len(short):
        first = (np.cumsum(lengths) - lengths)[short]
        h = np.full(len(short), _SEED, dtype=np.uint32)
        with np.errstate(over="ignore"):
            for k in range(n - 1):
                h = np.where(k < lengths[short], _combine(h, token_hashes[np.minimum(first + k, total)]), h)
        hashes[starts[short]] = h
    return ShingleSets(hashes, starts)


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 (a, b) pairs for ``MinHash(num_perm, seed)``, drawn the way it draws them."""
    generator = np.random.RandomState(seed)
    a = generator.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = generator.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def signatures_of(sets: ShingleSets, num_perm: int = 128, seed: int = 1, threads: int | None = None) -> np.ndarray:
    """One row of ``num_perm`` uint32 minima per record, computed in passes of ``SHINGLES_PER_PASS`` shingles
    on ``threads`` threads (numpy releases the GIL, so they use every core)."""
    a, b = permutations(num_perm, seed)
    starts = sets.starts
    if (np.diff(starts) == 0).any():
        raise ValueError("every record needs at least one shingle")
    out = np.empty((len(sets), num_perm), dtype=np.uint32)
    passes, record = [], 0
    while record < len(sets):
        last = int(np.searchsorted(starts, starts[record] + SHINGLES_PER_PASS, side="right")) - 1
        last = max(last, record + 1)  # one record always fits, however many shingles it has
        passes.append((record, last))
        record = last

    def permute(span: tuple[int, int]) -> None:
        first, last = span
        with np.errstate(over="ignore"):
            mixed = _fmix32(sets.hashes[starts[first]:starts[last]])  # a pass's own: no copy of every hash
            block = a[:, None] * mixed[None, :]  # uint32: the wraparound is the mod 2**32
            block += b[:, None]
        out[first:last] = np.minimum.reduceat(block, starts[first:last] - starts[first], axis=1).T

    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:
        list(pool.map(permute, passes))
    return out


def signatures(texts: pl.Series | list[str], n: int = 5, num_perm: int = 128, seed: int = 1) -> np.ndarray:
    return signatures_of(shingle_sets(pl.Series(texts, dtype=pl.String), n), num_perm, seed)
