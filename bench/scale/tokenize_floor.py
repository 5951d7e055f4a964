"""How far the tokenize stage is from the raw tokenizer on the scale corpus's own records (issue #9, phase 1).

    .venv/bin/python bench/scale/tokenize_floor.py --records 1000000 --sample 50000

Takes ``--sample`` first copies (repeat 0) from the train.parquet of a finished scale build and times, one after
the other on the same records: the whole ``tokenize.tokenize`` call; its Python steps alone
(``templates.segments``, ``_assemble``, ``_table``, with the cyclic collector paused as in the stage); and the raw
fast tokenizer (``backend_tokenizer.encode_batch``) on the segment texts the stage encodes, and on the rendered
texts whole.
The raw encoding is the floor of the stage; the Python steps compete with it for the 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("INSTRUCT_PIPELINE_TOKENIZER", str(ROOT.parent / "shared" / "tokenizers" / "llama-2"))

import polars as pl
from make_corpus import label
from make_short_corpus import short_name

from pipeline import chat_format, collector, templates, tokenize
from pipeline.config import load_mix
from pipeline.io import split_files
from pipeline.io.tokenizer import load_tokenizer

WORK = ROOT / "bench" / "work" / "scale"


CPU: dict[str, float] = {}  # CPU seconds of this process (every thread: the tokenizer's Rust threads too), by step


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    started, cpu = time.perf_counter(), time.process_time()
    value = fn(*args)
    CPU[getattr(fn, "__name__", "step")] = round(time.process_time() - cpu, 2)
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=50_000)
    parser.add_argument("--corpus", choices=("scale", "short"), default="scale",
                        help="scale: make_corpus.py's (<label>/); short: make_short_corpus.py's (short-<label>/)")
    args = parser.parse_args()
    name = label(args.records) if args.corpus == "scale" else short_name(args.records)
    mix = load_mix(WORK / name / "mix.yaml")
    spec = mix.spec.tokenize
    train = chat_format.read_records(split_files.paths(mix.out_dir, "train"))
    frame = train.filter(pl.col("repeat") == 0).head(args.sample)
    tokenizer = load_tokenizer(spec.tokenizer)
    backend = tokenizer.backend_tokenizer
    load = os.getloadavg()

    result, stage_s = timed(tokenize.tokenize, frame, tokenizer, spec, mix.spec.filters)
    n_tokens = int(result.examples["n_tokens"].sum())

    with collector.paused():  # as the stage runs
        segments, render_s = timed(templates.segments, frame, spec.template, spec.system, spec.mask_history)
        constants: dict[str, list[int]] = {}
        encoded, encode_segments_s = timed(tokenize._encode_segments, segments, tokenizer, constants)
        flat, assemble_s = timed(tokenize._assemble, segments, frame.height, encoded, constants, tokenizer,
                                 spec.train_on_prompt)
        _, table_s = timed(tokenize._table, frame, flat, spec.cutoff_len)
    whole = templates.prompt_texts(frame, spec.template, spec.system, spec.mask_history).to_list()
    _, raw_whole_s = timed(backend.encode_batch, whole, False)
    out = {
        "sample": frame.height, "tokens": n_tokens, "loadavg_before": [round(x, 2) for x in load],
        "stage_s": round(stage_s, 2), "stage_tokens_per_s": round(n_tokens / stage_s),
        "python_steps_s": {"segments": round(render_s, 2), "assemble": round(assemble_s, 2),
                           "table": round(table_s, 2)},
        "raw_encode_segments_s": round(encode_segments_s, 2),
        "raw_encode_whole_texts_s": round(raw_whole_s, 2),
        "raw_tokens_per_s": round(n_tokens / raw_whole_s),
        "stage_over_raw": round(raw_whole_s / stage_s, 2),
        "cpu_s": {"stage": CPU.get("tokenize"), "raw_encode_whole_texts": CPU.get("encode_batch"),
                  "raw_encode_segments": CPU.get("_encode_segments")},
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(out, indent=2))
    (WORK / f"tokenize-floor-{name}.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
