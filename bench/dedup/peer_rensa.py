"""Peer (c): rensa (Rust MinHash from PyPI): one ``RMinHash`` per record, ``RMinHashLSH`` query-then-insert with
the candidates checked against the threshold by estimated Jaccard, keep the first record of each group.

    bench/.venv-peers/bin/python bench/dedup/peer_rensa.py --corpus CORPUS --threshold 0.8 --out removed.parquet
    ... --api deduplicator     # rensa's README "Keep unique documents" class, RMinHashDeduplicator, instead

Shingles as a typical user writes them, like the datasketch peer: ``text.split()`` word 5-grams joined by a space
(a text of fewer than five words is one shingle); rensa's README feeds ``text.split()`` tokens to ``update``.
``RMinHashLSH`` needs ``num_bands`` dividing ``num_perm``: it is the divisor minimizing datasketch's weighted
false-positive + false-negative area for the threshold (8 bands x 16 rows at 0.8, 16 x 8 at 0.7, for 128
permutations). A record is removed when one of its LSH candidates already indexed has estimated Jaccard >=
threshold (what rensa's README says ``RMinHashDeduplicator`` does; on the 62,002-record corpus both APIs remove
the same records), and otherwise inserted. Seed 42 as in the README.
Prints {"seconds": dedup wall time (after reading the corpus, before writing), "docs": N}.
"""

from __future__ import annotations

import time

from rensa import RMinHash, RMinHashDeduplicator, RMinHashLSH
from runner import arguments, finish, read_corpus, word_shingles
from scipy.integrate import quad

SEED = 42


def num_bands(threshold: float, num_perm: int) -> int:
    """The band count (a divisor of num_perm) minimizing 0.5 * FP area + 0.5 * FN area of the LSH S-curve."""
    def error(b: int) -> float:
        r = num_perm // b
        fp = quad(lambda s: 1 - (1 - s ** r) ** b, 0.0, threshold)[0]
        fn = quad(lambda s: (1 - s ** r) ** b, threshold, 1.0)[0]
        return 0.5 * fp + 0.5 * fn
    return min((b for b in range(1, num_perm + 1) if num_perm % b == 0), key=error)


def dedup_lsh(ids: list[str], texts: list[str], threshold: float, num_perm: int) -> list[str]:
    """Query-then-insert over RMinHashLSH; a candidate counts when its estimated Jaccard reaches threshold."""
    lsh = RMinHashLSH(threshold=threshold, num_perm=num_perm, num_bands=num_bands(threshold, num_perm))
    kept: list[RMinHash] = []  # the LSH keys are positions in this list
    removed = []
    for key, text in zip(ids, texts, strict=True):
        minhash = RMinHash(num_perm=num_perm, seed=SEED)
        minhash.update(word_shingles(text))
        if any(minhash.jaccard(kept[c]) >= threshold for c in lsh.query(minhash)):
            removed.append(key)
        else:
            lsh.insert(len(kept), minhash)
            kept.append(minhash)
    return removed


def dedup_deduplicator(ids: list[str], texts: list[str], threshold: float, num_perm: int) -> list[str]:
    """rensa's own streaming deduplicator (LSH + similarity check), default bands."""
    deduplicator = RMinHashDeduplicator(threshold=threshold, num_perm=num_perm, use_lsh=True, seed=SEED)
    keep = deduplicator.add_pairs((key, word_shingles(text)) for key, text in zip(ids, texts, strict=True))
    return [key for key, kept in zip(ids, keep, strict=True) if not kept]


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--api", choices=("lsh", "deduplicator"), default="lsh")
    args = parser.parse_args()
    ids, texts = read_corpus(args.corpus)
    started = time.perf_counter()
    run = dedup_lsh if args.api == "lsh" else dedup_deduplicator
    removed = run(ids, texts, args.threshold, args.num_perm)
    seconds = time.perf_counter() - started
    finish(removed, args.out, seconds, len(ids))


if __name__ == "__main__":
    main()
