"""Partitioned dedup on a 3-worker Dask cluster equals the single-process dedup, record for record.

The corpus: 20,000 real Alpaca records in two sources and six partitions, with exact copies (case and
punctuation changed), near copies (words swapped or dropped; families of four, and one of forty, whose LSH
buckets outgrow ``near_dups.SMALL_BUCKET``), answers of different lengths to one prompt and one-word records
planted across partitions, plus two reference sets (an earlier build with its signature index,
and a plain dataset). For each setting that changes the path (default, key prompt, across_sources off, verify
signature, exact only, near only) the kept records, duplicates.parquet rows, signatures, fingerprints and stats
must be identical.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import distributed
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows.partitioned_dedup import deduplicate_partitioned
from pipeline import dedup, validate
from schemas.mix import DedupSpec

PRIORITY = ["a", "b"]
RECORDS = 20_000


def frame(rows: list[dict[str, str]], source: str, prefix: str) -> pl.DataFrame:
    return pl.DataFrame({
        "id": [f"{prefix}#{k}" for k in range(len(rows))], "source": source,
        "instruction": [r["instruction"] for r in rows], "input": [r["input"] for r in rows],
        "output": [r["output"] for r in rows],
    }).with_columns(history=pl.lit(None, validate.HISTORY))


def edited(row: dict[str, str], rng: random.Random) -> dict[str, str]:
    """A near copy: two words of the output swapped and one dropped (or a prefix on a short one)."""
    words = row["output"].split()
    if len(words) < 12:
        return {**row, "instruction": "Please " + row["instruction"]}
    k = rng.randrange(len(words) - 2)
    words[k], words[k + 1] = words[k + 1], words[k]
    del words[rng.randrange(len(words))]
    return {**row, "output": " ".join(words)}


@pytest.fixture(scope="module")
def corpus(shared_data) -> tuple[list[pl.DataFrame], list[dedup.Reference]]:
    files = sorted((shared_data / "alpaca-en").glob("*.json"))
    rows = [r for path in files[:8] for r in json.loads(path.read_text())][:RECORDS + 400]
    base, spare = rows[:RECORDS], rows[RECORDS:]
    rng = random.Random(0)
    planted = [rng.randrange(RECORDS // 2) for _ in range(600)]
    a = base[:12_000] + [{**base[k], "output": base[k]["output"].upper().replace(".", " !")} for k in planted[:150]]
    families = [edited(base[k], rng) for k in planted[550:600] for _ in range(4)]  # a record with 2+ candidates
    long = max(range(1_000), key=lambda k: len(base[k]["output"]))  # 40 copies: LSH buckets over SMALL_BUCKET
    big = [{**base[long], "output": base[long]["output"] + f" (variant {k})"} for k in range(40)]
    b = (base[12_000:] + [edited(base[k], rng) for k in planted[150:450]]
         + [{**base[k], "output": base[k]["output"] + " In short: yes."} for k in planted[450:550]]
         + [{"instruction": w, "input": "", "output": ""} for w in ("Yes.", "yes", "No", "Paris", "42", "No!")])
    rng.shuffle(families)
    a[3_000:3_000] = families[:100] + big[:20]
    b[4_000:4_000] = families[100:] + big[20:]
    records = [frame(a, "a", "a"), frame(b, "b", "b")]
    partitions = [part for source in records for part in _slices(source, 3)]
    earlier = frame(base[:200] + spare[:200], "a", "v1")  # an earlier build, with its signature index
    signatures = dedup.deduplicate(earlier, DedupSpec(), ["a"]).signatures
    assert signatures is not None and len(signatures) == earlier.height
    evals = frame([edited(r, rng) for r in base[5_000:5_100]] + base[6_000:6_050] + spare[200:300], "eval", "eval")
    return partitions, [dedup.Reference("out/v1", earlier, signatures), dedup.Reference("eval.jsonl", evals)]


def _slices(records: pl.DataFrame, count: int) -> Iterator[pl.DataFrame]:
    size = -(-records.height // count)
    return (records.slice(start, size) for start in range(0, records.height, size))


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    with distributed.LocalCluster(n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None,
                                  memory_limit=0) as cluster, distributed.Client(cluster) as client:
        yield client


def assert_same(ours: dedup.DedupResult, expected: dedup.DedupResult) -> None:
    assert_frame_equal(ours.kept, expected.kept)
    assert_frame_equal(ours.duplicates, expected.duplicates)
    assert ours.stats == expected.stats
    for mine, theirs in ((ours.signatures, expected.signatures), (ours.fingerprints, expected.fingerprints)):
        assert (mine is None) == (theirs is None)
    if ours.signatures is not None and expected.signatures is not None:
        assert ours.signatures.dtype == expected.signatures.dtype
        assert np.array_equal(ours.signatures, expected.signatures)
    if ours.fingerprints is not None and expected.fingerprints is not None:
        assert_frame_equal(ours.fingerprints, expected.fingerprints)


SETTINGS = {
    "default": {},
    "key prompt": {"key": "prompt"},
    "within sources": {"across_sources": False},
    "verify signature": {"verify": "signature"},
    "exact only": {"near": False},
    "near only": {"exact": False},
}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_partitioned_equals_single_process(client, corpus, name):
    partitions, references = corpus
    settings = DedupSpec(**SETTINGS[name])  # type: ignore[arg-type]
    expected = dedup.deduplicate(pl.concat(partitions), settings, PRIORITY, references)
    ours = deduplicate_partitioned(client, partitions, settings, PRIORITY, references)
    assert_same(ours, expected)
    kinds = set(expected.duplicates["kind"])
    assert kinds == ({"exact"} if not settings.near else {"near"} if not settings.exact else {"exact", "near"})
    assert expected.duplicates.height > 300  # the planted copies are found: the comparison is not vacuous
    # the eval set's source is "eval", which no record has: within sources it is never compared
    assert set(expected.duplicates["kept_in"]) == {"build", "out/v1"} | ({"eval.jsonl"} if settings.across_sources
                                                                         else set())


@pytest.mark.parametrize("name", ["default", "within sources"])
def test_more_shuffle_buckets_than_workers_give_the_same_result(client, corpus, name, monkeypatch):
    """A large build shuffles into one bucket per ``BUCKET_RECORDS`` records (several per worker), so no bucket's
    task holds a worker's whole share of the band entries; the result does not depend on the bucket count."""
    from flows import partitioned_dedup

    partitions, references = corpus
    settings = DedupSpec(**SETTINGS[name])  # type: ignore[arg-type]
    total = sum(p.height for p in partitions) + sum(r.records.height for r in references)
    monkeypatch.setattr(partitioned_dedup, "BUCKET_RECORDS", total // 7 + 1)  # 7 buckets on 3 workers
    buckets, find = [], partitioned_dedup._find

    def counted(*args: Any) -> Any:
        found = find(*args)
        buckets.append(found.cluster.buckets)
        return found

    monkeypatch.setattr(partitioned_dedup, "_find", counted)
    expected = dedup.deduplicate(pl.concat(partitions), settings, PRIORITY, references)
    assert_same(deduplicate_partitioned(client, partitions, settings, PRIORITY, references), expected)
    assert buckets == [7]


def test_partitions_already_on_the_workers(client, corpus):
    """The flow's case: partitions as futures where the shards were computed; no references."""
    partitions, _ = corpus
    futures = client.scatter(partitions, hash=False)
    settings = DedupSpec()
    expected = dedup.deduplicate(pl.concat(partitions), settings, PRIORITY)
    assert_same(deduplicate_partitioned(client, futures, settings, PRIORITY), expected)
    cross = expected.duplicates.filter(pl.col("source") != pl.col("kept_source"))
    assert cross.height > 100  # copies across sources and partitions


def _dedup_in_a_task(partitions: list[distributed.Future], settings: DedupSpec) -> dedup.DedupResult:
    with distributed.worker_client() as client:  # secedes: the worker's one thread is free for the pinned tasks
        return deduplicate_partitioned(client, partitions, settings, PRIORITY)


def test_from_a_task_on_a_worker(client, corpus):
    """The flow's dedup stage is itself a task on a worker of one thread: it must not block its own worker."""
    partitions, _ = corpus
    futures = client.scatter(partitions[:2] + [partitions[0].clear()] + partitions[2:], hash=False)
    settings = DedupSpec(key="prompt")
    result = client.submit(_dedup_in_a_task, futures, settings, pure=False).result(timeout=120)
    assert_same(result, dedup.deduplicate(pl.concat(partitions), settings, PRIORITY))


def test_no_partitions_is_an_error(client):
    with pytest.raises(ValueError, match="at least one partition"):
        deduplicate_partitioned(client, [], DedupSpec(), PRIORITY)
