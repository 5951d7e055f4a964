"""instruct-pipeline's dedup stage (``pipeline.dedup.deduplicate``) with the peers' CLI.

    .venv/bin/python bench/dedup/ours.py --corpus CORPUS --threshold 0.8 --out removed.parquet

The corpus becomes one source of canonical records (id, instruction, input, output) and goes through the same
function a build calls, with the build's defaults (exact + near, key: record, num_perm 128, true-Jaccard
verification) and the given threshold. Keep rule as the peers': the first of each group in corpus order (all
records come from one source, so ties fall to longer output, then corpus order: ours keeps the longer output).
Prints {"seconds": dedup wall time (after reading the corpus, before writing), "docs": N, ...stage counters}.
"""

from __future__ import annotations

import time

import polars as pl
from runner import arguments, finish

from pipeline import dedup, validate
from schemas.mix import DedupSpec


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--verify", choices=("jaccard", "signature"), default="jaccard")
    args = parser.parse_args()
    records = pl.read_parquet(args.corpus, columns=["id", "instruction", "input", "output"]).with_columns(
        pl.col("input").fill_null(""), source=pl.lit("corpus"), history=pl.lit(None, validate.HISTORY))
    settings = DedupSpec(threshold=args.threshold, num_perm=args.num_perm, verify=args.verify)
    start = time.perf_counter()
    result = dedup.deduplicate(records, settings, ["corpus"])
    seconds = time.perf_counter() - start
    finish(result.duplicates["id"].to_list(), args.out, seconds, records.height, **result.stats)


if __name__ == "__main__":
    main()
