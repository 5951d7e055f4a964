"""Decontamination at scale: does any clean record go to a hash collision? (issue #16, item 6)

    .venv/bin/python bench/scale/make_corpus.py --records 1000000 --parts 32     # once: bench/work/scale/1m/
    .venv/bin/python bench/decontam_collisions.py --records 1000000 --evals 20000

1. The scale corpus of bench/scale (its mix.yaml, decontamination and tokenization off) goes through the build's
   per-record stages and dedup (``iter_shards``, ``build.union``, ``plan.dedup_stage``): the records that
   reach decontamination in a real build.
2. An eval suite of ``--evals`` prompts, written to bench/work/decontam/<N>/evals/:
   - real eval prompts from ../shared/data: MT-Bench, self-instruct's user-oriented set (both leaked into the
     corpus by make_corpus's DEFECTS), self-instruct's seed tasks, LLaMA-Factory's identity and self_cognition;
   - ``planted.jsonl``: ``--planted`` prompts that each embed a 13-token window of a known record (between random
     words), and ``--short`` prompts equal (once case is folded) to a known record's prompt of under 13 tokens;
   - ``synthetic.jsonl``: the rest, random English words and Han characters from the corpus pools' vocabulary,
     15-60 tokens each: they share no real window with the corpus, only chances of hash collisions.
3. ``plan.decontaminate_stage`` with that suite, timed; then every removed record is checked on real text in
   plain Python: a "shares a 13-token window" record must share a token window (or, under 13 tokens, equal the
   token list) with the eval prompt its detail names; a "near-duplicate" record must have a true Jaccard (over
   ``minhash.shingles`` strings, the dedup key text) >= the threshold with it, or reach it through other removed
   records that are near-duplicates of one another (dedup's clusters are connected components).
4. For comparison, the old n-gram look-up (32-bit window hashes, no confirmation; ``old_ngram_matches``, a copy
   of pipeline/decontaminate.py before the fix) over the same records and suite, checked the same way.

Prints and writes bench/work/decontam/<N>/results.json: removed, confirmed, unconfirmed (must be 0), per path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("INSTRUCT_PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data"))
sys.path.insert(0, str(ROOT))

from pipeline import build, decontaminate, dedup, language, minhash, plan, validate  # noqa: E402
from pipeline.config import load_mix  # noqa: E402
from pipeline.io.workers import iter_shards
from pipeline.records import load_eval_prompts

REAL_EVALS = ("fastchat/mt_bench_questions.jsonl", "self-instruct/user_oriented_instructions.jsonl",
              "self-instruct/seed_tasks.jsonl", "llama-factory/identity.json", "llama-factory/self_cognition.json")
DETAIL = re.compile(r"^(?P<how>.*) of (?P<eval_id>\S+) in (?P<set>\S+)$")


def prompt() -> pl.Expr:
    """A record's prompt as decontamination reads it: instruction, a newline, input."""
    return pl.concat_str("instruction", "input", separator="\n")


def label(records: int) -> str:
    return f"{records // 1_000_000}m" if records % 1_000_000 == 0 else f"{records // 1000}k"


def write_mix(corpus: Path, against: Sequence[str], name: str) -> Path:
    spec = yaml.safe_load((corpus / "mix.yaml").read_text(encoding="utf-8"))
    spec["decontaminate"] = {**spec.get("decontaminate", {}), "against": list(against)}
    spec["tokenize"] = {"enabled": False}
    spec["output"] = {"dir": f"../../decontam/{corpus.name}/out"}
    path = corpus / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def vocabulary() -> tuple[list[str], list[str]]:
    """English words and Han characters of the corpus pools (Alpaca en / zh instructions)."""
    words: set[str] = set()
    han: set[str] = set()
    for path in sorted((SHARED / "alpaca-en").glob("*.json"))[:4]:
        for row in json.loads(path.read_text(encoding="utf-8")):
            words.update(t for t in minhash.tokens(row["instruction"]) if t.isascii() and t.isalpha())
    for path in sorted((SHARED / "alpaca-zh").glob("zh-data-part-*.json")):
        for row in json.loads(path.read_text(encoding="utf-8")):
            han.update(c for c in row["instruction"] if "\u4e00" <= c <= "\u9fff")
    return sorted(words), sorted(han)


def filler(rng: random.Random, words: list[str], han: list[str], size: int) -> str:
    if rng.random() < 0.3:
        return "".join(rng.choice(han) for _ in range(size))
    return " ".join(rng.choice(words) for _ in range(size)).capitalize()


def eval_suite(records: pl.DataFrame, folder: Path, total: int, planted: int, short: int, seed: int) -> list[str]:
    """Write planted.jsonl and synthetic.jsonl (Alpaca rows, empty outputs); return every eval set's path."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    words, han = vocabulary()
    real = [str(SHARED / name) for name in REAL_EVALS]
    real_count = sum(load_eval_count(path) for path in real)
    tokens = minhash.token_series(records.select(prompt()).to_series())
    lengths = tokens.list.len().to_numpy()
    long_rows = np.flatnonzero(lengths >= 13)
    short_rows = np.flatnonzero((lengths >= 1) & (lengths < 13))
    rows = []
    for k in sorted(rng.sample(range(len(long_rows)), planted)):
        units = tokens[int(long_rows[k])].to_list()
        at = rng.randrange(len(units) - 12)
        window = " ".join(units[at:at + 13])
        rows.append({"instruction": f"{filler(rng, words, han, rng.randint(3, 10))} {window} "
                                    f"{filler(rng, words, han, rng.randint(0, 10))}", "input": "", "output": ""})
    for k in sorted(rng.sample(range(len(short_rows)), short)):
        record = records.row(int(short_rows[k]), named=True)
        rows.append({"instruction": record["instruction"].upper(), "input": record["input"], "output": ""})
    write_jsonl(folder / "planted.jsonl", rows)
    synthetic = [{"instruction": filler(rng, words, han, rng.randint(15, 60)), "input": "", "output": ""}
                 for _ in range(total - real_count - len(rows))]
    write_jsonl(folder / "synthetic.jsonl", synthetic)
    return [*real, str(folder / "planted.jsonl"), str(folder / "synthetic.jsonl")]


def load_eval_count(path: str) -> int:
    text = Path(path).read_text(encoding="utf-8")
    return len(json.loads(text)) if path.endswith(".json") else sum(1 for line in text.splitlines() if line.strip())


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def old_ngram_matches(records: pl.DataFrame, evals: Sequence[tuple[str, pl.DataFrame]], n: int) -> pl.DataFrame:
    """pipeline/decontaminate.py's look-up before issue #16: 32-bit window hashes, hits not confirmed."""
    names = [name for name, _ in evals]
    owners = pl.concat([frame.select(pl.lit(k).alias("set"), "id") for k, (_, frame) in enumerate(evals)])
    eval_sets = minhash.shingle_sets(pl.concat([frame.select(prompt()).to_series() for _, frame in evals]), n)
    eval_owner = np.repeat(np.arange(len(eval_sets)), eval_sets.counts)
    order = np.argsort(eval_sets.hashes, kind="stable")
    table, table_owner = eval_sets.hashes[order], eval_owner[order]
    mine = minhash.shingle_sets(records.select(prompt()).to_series(), n)
    record = np.repeat(np.arange(len(mine)), mine.counts)
    at = np.minimum(np.searchsorted(table, mine.hashes), max(len(table) - 1, 0))
    hit = (table[at] == mine.hashes) if len(table) else np.zeros(len(mine.hashes), dtype=bool)
    first_record, first = np.unique(record[hit], return_index=True)
    matched = table_owner[at[hit][first]]
    found = owners[matched.tolist()] if len(matched) else owners.clear()
    return pl.DataFrame({"id": records["id"].gather(first_record.tolist())}).with_columns(
        set=found["set"].replace_strict(dict(enumerate(names)), return_dtype=pl.String), eval_id=found["id"])


def windows_of(text: str, n: int) -> set[tuple[str, ...]]:
    units = minhash.tokens(text)
    return {tuple(units)} if len(units) < n else {tuple(units[i:i + n]) for i in range(len(units) - n + 1)}


def jaccard(a: str, b: str, n: int) -> float:
    x, y = set(minhash.shingles(a, n)), set(minhash.shingles(b, n))
    return len(x & y) / len(x | y)


def check(removed: pl.DataFrame, records: pl.DataFrame, evals: pl.DataFrame, ngram: int, threshold: float,
          near_ngram: int) -> dict[str, Any]:
    """Confirm each removed record (id, how, eval_id) on real text; counts per path, and the unconfirmed ids."""
    texts = records.select("id", prompt().alias("prompt"), dedup.key_text("prompt").alias("key"))
    eval_texts = evals.with_columns(history=pl.lit(None, validate.HISTORY)).select(
        pl.col("id").alias("eval_id"), prompt().alias("eval_prompt"), dedup.key_text("prompt").alias("eval_key"))
    rows = removed.join(texts, on="id", how="left").join(eval_texts, on="eval_id", how="left")
    result: dict[str, Any] = {"removed": rows.height}
    near_groups: dict[str, list[dict[str, Any]]] = {}
    window_ok = window_bad = 0
    unconfirmed: list[str] = []
    for row in rows.iter_rows(named=True):
        if row["how"].startswith("shares"):
            if windows_of(row["prompt"], ngram) & windows_of(row["eval_prompt"], ngram):
                window_ok += 1
            else:
                window_bad += 1
                unconfirmed.append(row["id"])
        else:
            near_groups.setdefault(row["eval_id"], []).append(row)
    direct = chained = near_bad = 0
    for group in near_groups.values():
        linked = {k for k, r in enumerate(group) if jaccard(r["key"], r["eval_key"], near_ngram) >= threshold}
        direct, first = direct + len(linked), len(linked)
        frontier = set(linked)
        while frontier:  # removed records reaching the eval prompt through verified near-duplicate pairs
            frontier = {k for k, r in enumerate(group) if k not in linked and any(
                jaccard(r["key"], group[j]["key"], near_ngram) >= threshold for j in frontier)}
            linked |= frontier
        chained += len(linked) - first
        near_bad += len(group) - len(linked)
        unconfirmed += [r["id"] for k, r in enumerate(group) if k not in linked]
    result.update({
        "window": window_ok + window_bad, "window_confirmed": window_ok, "window_unconfirmed": window_bad,
        "near": direct + chained + near_bad, "near_confirmed_direct": direct, "near_confirmed_through_chain": chained,
        "near_unconfirmed": near_bad, "confirmed": window_ok + direct + chained, "unconfirmed": len(unconfirmed),
        "unconfirmed_examples": unconfirmed[:10],
    })
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--evals", type=int, default=20_000, help="eval prompts in all")
    parser.add_argument("--planted", type=int, default=2_000, help="eval prompts embedding a record's window")
    parser.add_argument("--short", type=int, default=500, help="eval prompts equal to a record's short prompt")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("INSTRUCT_PIPELINE_TOKENIZER", str(ROOT.parent / "shared" / "tokenizers" / "llama-2"))
    corpus = ROOT / "bench" / "work" / "scale" / label(args.records)
    if not (corpus / "mix.yaml").is_file():
        sys.exit(f"{corpus / 'mix.yaml'}: no corpus; run bench/scale/make_corpus.py --records {args.records} first")
    work = ROOT / "bench" / "work" / "decontam" / label(args.records)
    timings: dict[str, float] = {}

    start = time.perf_counter()
    mix = load_mix(write_mix(corpus, [], "mix-decontam-base.yaml"))
    detections = language.DetectionCache(work / "language-cache.parquet")
    shards = list(iter_shards(mix, args.workers, None, detections))
    detections.save()
    records = build.union(shards)
    del shards
    timings["shards_s"] = time.perf_counter() - start
    start = time.perf_counter()
    records = plan.dedup_stage(records, plan.Context(mix)).kept
    timings["dedup_s"] = time.perf_counter() - start
    print(f"{records.height:,} records reach decontamination", flush=True)

    against = eval_suite(records, work / "evals", args.evals, args.planted, args.short, args.seed)
    mix = load_mix(write_mix(corpus, against, "mix-decontam.yaml"))
    eval_frames = [(ref.label, load_eval_prompts(ref, mix)) for ref in mix.evals]
    suite = pl.concat([frame for _, frame in eval_frames])
    start = time.perf_counter()
    leaks = plan.decontaminate_stage(records, plan.Context(mix)).rejected
    timings["decontaminate_s"] = time.perf_counter() - start
    settings = mix.spec.decontaminate
    removed = leaks.select("id", pl.col("detail").str.extract(DETAIL.pattern, 1).alias("how"),
                           pl.col("detail").str.extract(DETAIL.pattern, 2).alias("eval_id"))
    new = check(removed, records, suite, settings.ngram, settings.threshold, mix.spec.dedup.ngram)
    start = time.perf_counter()
    decontaminate.ngram_matches(records, decontaminate.eval_table(eval_frames, settings.ngram))
    timings["new_ngram_lookup_s"] = time.perf_counter() - start
    start = time.perf_counter()
    old_hits = old_ngram_matches(records, eval_frames, settings.ngram).select(
        "id", pl.lit("shares a window").alias("how"), "eval_id")
    timings["old_ngram_lookup_s"] = time.perf_counter() - start
    old = check(old_hits, records, suite, settings.ngram, settings.threshold, mix.spec.dedup.ngram)
    results = {
        "records_in": records.height, "records_kept": records.height - leaks.height, "eval_prompts": suite.height,
        "eval_sets": {name: frame.height for name, frame in eval_frames},
        "new": new, "old_32bit_ngram_lookup": old, "timings": {k: round(v, 1) for k, v in timings.items()},
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "command": " ".join(sys.argv),
    }
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
