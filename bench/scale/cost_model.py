"""The cost model of bench/scale/SCALING.md (issue #19, item 5): what each part of a Dask build holds per record,
measured on a real corpus with the build's own functions, and the build's time per record, from the 1M and 3M
runs; extrapolated to 100M records on 16 and 64 workers.

    .venv/bin/python bench/scale/cost_model.py [--records 100000] [--at 100000000] [--workers 16 64]

Bytes per record (``--records``: the scale corpus bench/work/scale/<label>/, after the per-record stages, as the
dedup stage receives it): the records themselves (Arrow, every column), the dedup partition's key fingerprints,
shingle sets and MinHash signatures (flows/dedup_parts.py's ``prepare`` and ``survivors``), the LSH band entries
and exact-dedup entries one record sends through the shuffle (``band_entries``, ``exact_entries``), the candidate
pairs it makes (``dedup.deduplicate``'s counters x the 16 bytes of a pair), the partitioned dedup client's
ranks (``dedup.rank_columns`` + ``in_rank_order``, with the home/local columns the client adds), the columns the
split and the mixture pick by (``plan.picking_input``), and the tokenize stage's (id, repeat, _row). Time: the
serial sort of the dedup client's ranks, measured on the corpus's rank columns tiled to ``--sort-rows``.

Seconds and CPU-seconds per stage come from the runs already recorded (``--direct`` JSONs of ``run.py --mode
stages``, ``--dask`` JSONs of ``dask_tasks.py``). Writes bench/work/scale/cost-model.json and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_corpus import label

WORK = ROOT / "bench" / "work" / "scale"
GB = 1e9


def records_of(name: str) -> tuple[Any, pl.DataFrame]:
    """The corpus's mix and its records after the per-record stages (the dedup stage's input)."""
    from pipeline import build
    from pipeline.config import load_mix
    from pipeline.records import shard_unit, work_units

    mix = load_mix(WORK / name / "mix.yaml")
    return mix, build.union([shard_unit(unit) for unit in work_units(mix)])


def bytes_per_record(mix: Any, records: pl.DataFrame) -> dict[str, float]:
    from flows import dedup_parts
    from pipeline import dedup, near_dups, plan

    settings = mix.spec.dedup
    n = records.height
    priority = tuple(s.spec.name for s in mix.sources)
    part = dedup_parts.prepare(records, None, dedup_parts.PartSpec(0, priority), settings)
    assert part.sets is not None
    rows = np.arange(n, dtype=np.int64)
    part = dedup_parts.ranked(part, rows, None)
    survivors = dedup_parts.survivors(part, np.empty(0, np.int64), settings)
    bands, band_rows = near_dups.banding(settings)
    entries = dedup_parts.band_entries(survivors, bands, band_rows, 1)[0]
    exact = dedup_parts.exact_entries(part, 1)[0]
    universe = dedup.in_rank_order([dedup.rank_columns(records, settings, dedup.source_priority(priority))])
    universe = universe.with_columns(home=pl.lit(0, pl.Int32), local=pl.int_range(pl.len(), dtype=pl.Int64))
    found = dedup.deduplicate(records, settings, list(priority))
    pairs = int(found.stats.get("candidate_pairs") or 0)
    thin_split = plan.picking_input(records, ("id", "task"))
    thin_mix = plan.picking_input(records, ("id", "source", "instruction"))
    thin_tokenize = plan.picking_input(records.with_columns(repeat=pl.lit(0, pl.UInt16)), ("id", "repeat"))
    return {
        "records (Arrow, all columns)": records.estimated_size() / n,
        "dedup: fingerprints": part.keys.estimated_size() / n,
        "dedup: shingle sets": (part.sets.hashes.nbytes + part.sets.starts.nbytes) / n,
        "dedup: signatures": survivors.signatures.nbytes / n,
        "shuffle: band entries": (entries.band.nbytes + entries.hash.nbytes + entries.row.nbytes) / n,
        "shuffle: exact entries": exact.estimated_size() / n,
        "shuffle: candidate pairs": pairs * 16 / n,
        "client: dedup ranks": universe.estimated_size() / n,
        "client: split columns": thin_split.estimated_size() / n,
        "client: mixture columns": thin_mix.estimated_size() / n,
        "client: tokenize columns": thin_tokenize.estimated_size() / n,
        "_candidate_pairs_per_record": pairs / n,
        "_duplicates_per_record": found.duplicates.height / n,
    }


def rank_sort_seconds(mix: Any, records: pl.DataFrame, rows: int) -> float:
    """Seconds of the dedup client's one serial sort (``dedup.in_rank_order``) over ``rows`` records' ranks."""
    from pipeline import dedup

    meta = dedup.rank_columns(records, mix.spec.dedup, dedup.source_priority([s.spec.name for s in mix.sources]))
    copies = -(-rows // meta.height)
    tiled = [meta.with_columns(pl.col("_order") + k * meta.height) for k in range(copies)]
    started = time.perf_counter()
    dedup.in_rank_order(tiled)
    return time.perf_counter() - started


def stage_costs(direct: list[Path], dask: list[Path]) -> dict[str, Any]:
    out: dict[str, Any] = {"direct": {}, "dask": {}}
    for path in direct:
        run = json.loads(path.read_text())
        records = run["totals"]["input"]
        out["direct"][path.name] = {"records": records, "wall_s": run["wall_s"], "peak_mb": run["peak_rss_mb"],
                                    "stages": {s["stage"]: {k: s.get(k) for k in ("seconds", "cpu_s", "peak_tree_mb")}
                                               for s in run["stages"]}}
    for path in dask:
        run = json.loads(path.read_text())
        peaks: dict[str, int] = {}
        for task in run["tasks"]:
            peaks[task["task"]] = max(peaks.get(task["task"], 0), task["rss_peak_mb"])
        out["dask"][path.name] = {"records": run["records"], "workers": run["workers"],
                                  "worker_memory": run["worker_memory"], "seconds": run["seconds"],
                                  "error": run["error"], "peak_mb_by_task": peaks}
    return out


def extrapolate(per_record: dict[str, float], at: int, workers: list[int]) -> list[dict[str, Any]]:
    """What one worker and the one client hold at ``at`` records, and what crosses the network."""
    rows = []
    partition = ("records (Arrow, all columns)", "dedup: fingerprints", "dedup: shingle sets", "dedup: signatures")
    for w in workers:
        share = at / w
        held = {k: per_record[k] * share / GB for k in partition}
        rows.append({
            "workers": w,
            "worker: partitions during dedup (GB)": round(sum(held.values()), 2),
            "worker: of which records (GB)": round(held["records (Arrow, all columns)"], 2),
            "worker: band bucket share (GB)": round(per_record["shuffle: band entries"] * share / GB, 2),
            "client: dedup ranks (GB)": round(per_record["client: dedup ranks"] * at / GB, 2),
            "client: mixture columns (GB)": round(per_record["client: mixture columns"] * at / GB, 2),
            "shuffle: band entries, total (GB)": round(per_record["shuffle: band entries"] * at / GB, 1),
            "shuffle: exact entries, total (GB)": round(per_record["shuffle: exact entries"] * at / GB, 1),
            "shuffle: candidate pairs, total (GB)": round(per_record["shuffle: candidate pairs"] * at / GB, 1),
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000, help="the corpus to measure bytes per record on")
    parser.add_argument("--at", type=int, default=100_000_000, help="records to extrapolate to")
    parser.add_argument("--workers", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--sort-rows", type=int, default=3_000_000)
    parser.add_argument("--direct", type=Path, nargs="*", default=[])
    parser.add_argument("--dask", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    os.environ.setdefault("INSTRUCT_PIPELINE_TOKENIZER", str(ROOT.parent / "shared" / "tokenizers" / "llama-2"))
    mix, records = records_of(label(args.records))
    per_record = bytes_per_record(mix, records)
    sort_s = rank_sort_seconds(mix, records, args.sort_rows)
    result = {"measured_on": args.records, "records_after_per_record_stages": records.height,
              "bytes_per_record": {k: round(v, 1) for k, v in per_record.items()},
              "rank_sort": {"rows": args.sort_rows, "seconds": round(sort_s, 2)},
              "at": args.at, "extrapolated": extrapolate(per_record, args.at, args.workers),
              "runs": stage_costs(args.direct, args.dask)}
    (WORK / "cost-model.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
