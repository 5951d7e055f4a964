"""The fast tokenizer's two batch calls side by side on the scale corpus's texts (issue #19, item 4):
``encode_batch`` (ids and character offsets) against ``encode_batch_fast`` (ids only, what the tokenize stage
calls), alternating in one process, both cores, batches of the stage's size; and whether their ids are equal.

    .venv/bin/python bench/scale/encode_calls.py --records 1000000 --texts 40000 --rounds 2

Reads the first ``--texts`` rows of a finished scale build's train (instruction + "\\n" + output).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("INSTRUCT_PIPELINE_TOKENIZER", str(ROOT.parent / "shared" / "tokenizers" / "llama-2"))

import polars as pl
from make_corpus import WORK, label

from pipeline import tokenize
from pipeline.config import load_mix
from pipeline.io import split_files
from pipeline.io.tokenizer import load_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--texts", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    mix = load_mix(WORK / label(args.records) / "mix.yaml")
    frame = pl.read_parquet(split_files.paths(mix.out_dir, "train")[0], n_rows=args.texts)
    texts = [f"{a}\n{b}" for a, b in zip(frame["instruction"], frame["output"], strict=True)]
    backend = load_tokenizer(mix.spec.tokenize.tokenizer).backend_tokenizer
    runs: dict[str, list[dict[str, float]]] = {"encode_batch": [], "encode_batch_fast": []}
    ids: dict[str, list[list[int]]] = {}
    for _ in range(args.rounds):
        for name in runs:
            call = getattr(backend, name)
            started, cpu = time.perf_counter(), time.process_time()
            ids[name] = [e.ids for s in range(0, len(texts), tokenize.BATCH)
                         for e in call(texts[s:s + tokenize.BATCH], add_special_tokens=False)]
            runs[name].append({"wall_s": round(time.perf_counter() - started, 2),
                               "cpu_s": round(time.process_time() - cpu, 2)})
    result = {"texts": len(texts), "tokens": sum(map(len, ids["encode_batch"])), "runs": runs,
              "same_ids": ids["encode_batch"] == ids["encode_batch_fast"], "loadavg": os.getloadavg()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
