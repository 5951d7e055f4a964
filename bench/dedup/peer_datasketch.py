"""Peer (a): the plain datasketch script a user would write: one ``MinHash`` per record, ``MinHashLSH``
query-then-insert, keep the first record of each group of near-duplicates in corpus order.

    bench/.venv-peers/bin/python bench/dedup/peer_datasketch.py --corpus CORPUS --threshold 0.8 --out removed.parquet

Shingles are what a typical user writes: ``text.split()`` (whitespace only: no case folding, punctuation left
on the words) and word 5-grams joined by a space, each fed to ``MinHash.update`` as UTF-8 bytes. A text of
fewer than five words is one shingle (the whole text), so it never gets an empty signature. ``MinHashLSH`` picks
its bands and rows for the threshold itself (datasketch's optimal (b, r); 9 x 13 at 0.8, 14 x 9 at 0.7 for 128
permutations) and a query hit counts as a duplicate without checking the estimated Jaccard, as in datasketch's
documentation. Prints {"seconds": dedup wall time (after reading the corpus, before writing), "docs": N}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import polars as pl
from datasketch import MinHash, MinHashLSH


def read_corpus(corpus: Path) -> tuple[list[str], list[str]]:
    """(ids, texts), text = instruction + "\\n" + input + "\\n" + output."""
    frame = pl.read_parquet(corpus, columns=["id", "instruction", "input", "output"])
    text = pl.concat_str([pl.col(c).fill_null("") for c in ("instruction", "input", "output")], separator="\n")
    return frame["id"].to_list(), frame.select(text.alias("text"))["text"].to_list()


def word_shingles(text: str, n: int = 5) -> list[str]:
    words = text.split()
    return [" ".join(words[i:i + n]) for i in range(max(1, len(words) - n + 1))]


def dedup(ids: list[str], texts: list[str], threshold: float, num_perm: int) -> list[str]:
    """Ids of the records to remove (every record that hits an earlier one in the LSH index)."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    removed = []
    for key, text in zip(ids, texts):
        minhash = MinHash(num_perm=num_perm)
        for shingle in word_shingles(text):
            minhash.update(shingle.encode("utf8"))
        if lsh.query(minhash):
            removed.append(key)
        else:
            lsh.insert(key, minhash)
    return removed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--num-perm", type=int, default=128)
    args = parser.parse_args()
    ids, texts = read_corpus(args.corpus)
    started = time.perf_counter()
    removed = dedup(ids, texts, args.threshold, args.num_perm)
    seconds = time.perf_counter() - started
    pl.DataFrame({"id": removed}, schema={"id": pl.String}).write_parquet(args.out)
    print(json.dumps({"seconds": round(seconds, 2), "docs": len(ids), "removed": len(removed)}))


if __name__ == "__main__":
    main()
