"""Mixture and split over 1,000,000 records: the time of ``split_eval`` + ``plan`` + ``sample`` (issue #4's
goal: under 5 seconds on this 2-core machine), in the build's own functions.

    .venv/bin/python bench/mixture_bench.py [--records 1000000] [--repeat 3]

The pool is the 52,002 Alpaca records of ../shared/data/alpaca-en repeated under 8 sources and 6 tasks (two
general sources), with ids, sources, tasks and instructions as a build's pool has them. The mixture asks for
600,000 records with a 30% general share, task weights, max_repeats 3 (two tasks are upsampled, the rest
downsampled) and diverse sampling; the split takes 1% as eval. Prints one JSON line per run and the median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import polars as pl

from pipeline import mixture
from schemas.mix import MixtureSpec

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca-en"
SOURCES = [  # name, task, general, share of the pool
    ("general_a", "general", True, 0.30), ("general_b", "general", True, 0.10),
    ("code", "code", False, 0.20), ("math", "math", False, 0.15), ("qa", "qa", False, 0.15),
    ("summaries", "summaries", False, 0.06), ("translation", "translation", False, 0.03),
    ("extraction", "extraction", False, 0.01),
]


def make_pool(records: int) -> pl.DataFrame:
    alpaca = pl.concat([pl.read_json(p) for p in sorted(SHARED.glob("*.json"))]).select("instruction")
    repeated = pl.concat([alpaca] * (records // alpaca.height + 1)).head(records)
    counts = mixture.largest_remainder(records, [share for *_, share in SOURCES])
    source = pl.Series([name for (name, *_), n in zip(SOURCES, counts, strict=True) for _ in range(n)])
    task = pl.Series([t for (_, t, *_), n in zip(SOURCES, counts, strict=True) for _ in range(n)])
    return repeated.with_columns(source=source, task=task).with_columns(
        id=pl.col("source") + "#" + pl.int_range(pl.len()).over("source").cast(pl.String)
    ).select("id", "source", "task", "instruction")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    pool = make_pool(args.records)
    infos = [mixture.SourceInfo(name, task, general) for name, task, general, _ in SOURCES]
    spec = MixtureSpec(size=600_000, general_share=0.3, max_repeats=3, sampling="diverse",
                       weights={"code": 3, "math": 2, "qa": 2, "summaries": 1, "translation": 1, "extraction": 1})
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        train_pool, eval_ = mixture.split_eval(pool, 0.01, 0)
        available = dict(train_pool.group_by("source").len().iter_rows())
        targets = mixture.plan(infos, available, spec)
        rows, left_out = mixture.sample(train_pool, targets, 0, diverse=True)
        seconds = time.perf_counter() - start
        times.append(seconds)
        print(json.dumps({"records": pool.height, "eval": eval_.height, "train_rows": rows.height,
                          "sampled_out": left_out.height, "seconds": round(seconds, 3)}))
    print(json.dumps({"median_seconds": round(statistics.median(times), 3),
                      "targets": targets.select("source", "available", "target", "achieved").rows()}))


if __name__ == "__main__":
    main()
