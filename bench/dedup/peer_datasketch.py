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

import time

from datasketch import MinHash, MinHashLSH
from runner import arguments, finish, read_corpus, word_shingles


def dedup(ids: list[str], texts: list[str], threshold: float, num_perm: int) -> list[str]:
    """Ids of the records to remove (every record that hits an earlier one in the LSH index)."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    removed = []
    for key, text in zip(ids, texts, strict=True):
        minhash = MinHash(num_perm=num_perm)
        for shingle in word_shingles(text):
            minhash.update(shingle.encode("utf8"))
        if lsh.query(minhash):
            removed.append(key)
        else:
            lsh.insert(key, minhash)
    return removed


def main() -> None:
    parser = arguments(__doc__)
    args = parser.parse_args()
    ids, texts = read_corpus(args.corpus)
    started = time.perf_counter()
    removed = dedup(ids, texts, args.threshold, args.num_perm)
    seconds = time.perf_counter() - started
    finish(removed, args.out, seconds, len(ids))


if __name__ == "__main__":
    main()
