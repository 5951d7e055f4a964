"""Tokenize-stage throughput against the raw fast tokenizer, and packing time at 1M examples.

    python bench/tokenize_bench.py [--tokenizer ../shared/tokenizers/llama-2]

In one run, on the 52,002 Alpaca records of ../shared/data/alpaca-en (after ingest and validation):
(a) `tokenizer.backend_tokenizer.encode_batch` on each record's fully rendered Alpaca text (prompt + answer),
    and the ids taken out of its encodings;
(b) the tokenize stage (templating, segment tokenization, labels, cutoff) plus writing tokenized/ to disk;
then (c) packing 1,000,000 examples (the real lengths, repeated) into 1024-token rows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import polars as pl
import yaml
from transformers import AutoTokenizer

from pipeline import build, tokenize
from pipeline.config import load_mix
from pipeline.io import token_files
from pipeline.templates import ALPACA_SYSTEM, ALPACA_SYSTEM_WITH_INPUT
from schemas.mix import FiltersSpec, TokenizeSpec

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"


def rendered(row: dict) -> str:
    if row["input"]:
        return (f"{ALPACA_SYSTEM_WITH_INPUT}\n\n### Instruction:\n{row['instruction']}\n\n### Input:\n{row['input']}"
                f"\n\n### Response:\n{row['output']}")
    return f"{ALPACA_SYSTEM}\n\n### Instruction:\n{row['instruction']}\n\n### Response:\n{row['output']}"


def best(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", default=str(SHARED / "tokenizers" / "llama-2"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        mix = Path(tmp) / "mix.yaml"
        mix.write_text(yaml.safe_dump({"name": "tok", "tokenize": {"enabled": False}, "sources": [
            {"name": "alpaca", "path": str(SHARED / "data" / "alpaca-en" / "*.json")}]}))
        frame = build.run(load_mix(mix), workers=1).train
        texts = [rendered(r) for r in frame.select("instruction", "input", "output").to_dicts()]
        raw_s, encodings = best(lambda: [e.ids for e in tokenizer.backend_tokenizer.encode_batch(
            texts, add_special_tokens=False)], args.repeat)  # ids taken out too: a stage must have them
        raw_tokens = sum(len(ids) for ids in encodings) + 2 * len(texts)  # + BOS and EOS, as the stage adds

        def stage() -> pl.DataFrame:
            result = tokenize.tokenize(frame, tokenizer, TokenizeSpec(cutoff_len=2048), FiltersSpec())
            rows = result.examples.select("id", "input_ids", tokenize.attention_mask(pl.col("input_ids")), "labels")
            split = token_files.SplitWriter(Path(tmp) / "train.arrow")
            split.write(rows.drop("id"))
            split.close(rows.drop("id").head(0))
            token_files.place({"train": [Path(tmp) / "train.arrow"]}, Path(tmp) / "tokenized", fingerprint="bench")
            return result.examples

        stage_s, examples = best(stage, args.repeat)
        stage_tokens = int(examples["n_tokens"].sum())  # type: ignore[index]
        fits = examples.filter(pl.col("n_tokens") <= 1024).select("input_ids", "labels", "n_tokens")  # type: ignore[union-attr]
        big = pl.concat([fits] * (1_000_000 // fits.height + 1)).head(1_000_000)
        big = big.with_columns(pl.Series("id", [str(i) for i in range(big.height)]))
        pack_s, packed = best(lambda: tokenize.pack(big, 1024), 1)
    print(f"| step | records | tokens | seconds (best of {args.repeat}) | tokens/s | ratio to raw |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| raw `backend_tokenizer.encode_batch` on rendered texts | {len(texts):,} | {raw_tokens:,} | "
          f"{raw_s:.2f} | {raw_tokens / raw_s:,.0f} | 1.00 |")
    print(f"| tokenize stage + write tokenized/ | {examples.height:,} | {stage_tokens:,} | {stage_s:.2f} | "  # type: ignore[union-attr]
          f"{stage_tokens / stage_s:,.0f} | {(stage_tokens / stage_s) / (raw_tokens / raw_s):.2f} |")
    efficiency = int(big["n_tokens"].sum()) / (packed.height * 1024)  # type: ignore[union-attr]
    print(f"| pack (first-fit decreasing, 1024) | 1,000,000 | {int(big['n_tokens'].sum()):,} | {pack_s:.2f} | "
          f"{int(big['n_tokens'].sum()) / pack_s:,.0f} | rows {packed.height:,}, {efficiency:.1%} full |")  # type: ignore[union-attr]


if __name__ == "__main__":
    main()
