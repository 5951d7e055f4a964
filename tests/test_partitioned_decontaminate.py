"""Partitioned decontamination on a 3-worker Dask cluster equals the single-process one, reject for reject.

The corpus: 6,000 real Alpaca records in two sources and five partitions, and two eval sets of real prompts.
Planted across partitions: records whose prompt is an eval prompt, records that quote a 13-word window of one
inside a longer prompt, near copies of short eval prompts (a word added), and copies of those copies, which
reach the eval prompt only through the first copy's cluster (often in another partition).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import distributed
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows.partitioned_decontaminate import contaminated_partitioned
from pipeline import decontaminate, validate
from schemas.mix import DecontaminateSpec

RECORDS = 6_000


def _frame(rows: list[dict[str, str]], source: str) -> pl.DataFrame:
    return pl.DataFrame({
        "id": [f"{source}#{k}" for k in range(len(rows))], "source": source,
        "origin": [f"{source}.jsonl:{k + 1}" for k in range(len(rows))],
        "instruction": [r["instruction"] for r in rows], "input": [r["input"] for r in rows],
        "output": [r["output"] for r in rows],
    }).with_columns(history=pl.lit(None, validate.HISTORY))


@pytest.fixture(scope="module")
def corpus(shared_data) -> tuple[list[pl.DataFrame], list[tuple[str, pl.DataFrame]]]:
    files = sorted((shared_data / "alpaca-en").glob("*.json"))
    rows = [r for path in files[:4] for r in json.loads(path.read_text())]
    rng = random.Random(1)
    base, rest = rows[:RECORDS], rows[RECORDS:]
    long = [r for r in rest if len(r["instruction"].split()) >= 16][:60]
    short = [r for r in rest if 8 <= len(r["instruction"].split()) <= 10 and not r["input"]][:60]
    evals = {"mmlu-ish": long[:30] + short[:30], "bench-ish": long[30:] + short[30:]}
    planted = []
    for k, row in enumerate(long):
        if k % 2:  # the eval prompt itself
            planted.append({**row, "output": "An answer."})
        else:  # a 13-word window of it inside a longer prompt
            window = " ".join(row["instruction"].split()[:13])
            planted.append({"instruction": f"Consider this: {window} and explain.", "input": "", "output": "Ok."})
    for row in short:  # shorter than 13 words: only near dedup can match these. A near copy (Jaccard 6/7), and
        # a copy of the copy (6/8 with the eval prompt, 7/8 with the first copy: reached through its cluster)
        planted.append({**row, "instruction": row["instruction"] + " please", "output": "Near."})
        planted.append({**row, "instruction": row["instruction"] + " please now", "output": "Nearer."})
    rng.shuffle(planted)
    a = base[:3_500] + planted[:90]
    b = base[3_500:] + planted[90:]
    rng.shuffle(a)
    rng.shuffle(b)
    records = [_frame(a, "a"), _frame(b, "b")]
    partitions = [records[0].slice(0, 1_200), records[0].slice(1_200, 1_200), records[0].slice(2_400),
                  records[1].slice(0, 1_300), records[1].slice(1_300)]
    eval_frames = [(name, pl.DataFrame({"id": [f"{name}#{k}" for k in range(len(prompts))],
                                        "instruction": [r["instruction"] for r in prompts],
                                        "input": [r["input"] for r in prompts]}))
                   for name, prompts in evals.items()]
    return partitions, eval_frames


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    with distributed.LocalCluster(n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None,
                                  memory_limit=0) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.mark.parametrize("settings, windows, near", [
    (DecontaminateSpec(), 55, 100),
    (DecontaminateSpec(threshold=0.6, ngram=8), 150, 0),  # the short prompts' copies share 8-word windows
], ids=["default", "looser"])
def test_partitioned_equals_single_process(client, corpus, settings, windows, near):
    partitions, evals = corpus
    expected = decontaminate.contaminated(pl.concat(partitions), evals, settings)
    futures = client.scatter(partitions, hash=False)
    assert_frame_equal(contaminated_partitioned(client, futures, evals, settings), expected)
    details = expected["detail"]  # what was found: the comparison is not vacuous
    assert details.str.starts_with("shares a").sum() >= windows
    assert details.str.starts_with("near-duplicate").sum() >= near
    assert set(expected["reason"]) == {"contaminated:mmlu-ish", "contaminated:bench-ish"}


def test_no_eval_sets_or_no_records(client, corpus):
    partitions, evals = corpus
    assert contaminated_partitioned(client, partitions, [], DecontaminateSpec()).height == 0
    empty = [partitions[0].clear(), partitions[1].clear()]
    assert contaminated_partitioned(client, empty, evals, DecontaminateSpec()).height == 0
