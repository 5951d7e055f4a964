"""The whole build against the raw LLaMA-2 tokenizer on the same texts, in one run (issue #19, item 4).

    .venv/bin/python bench/scale/build_vs_tokenizer.py --records 1000000
    .venv/bin/python bench/scale/build_vs_tokenizer.py --records 1000000 --corpus short

First ``pipeline build --runner direct`` of the corpus (run.py's cli mode: wall time, peak RSS of the process
tree, CPU seconds; cold language cache), then, in this process, the raw fast tokenizer
(``backend_tokenizer.encode_batch``, both cores, batches of 2,000 as the stage encodes) on every text the build
tokenized: each first copy (``repeat == 0``) of train.parquet and eval.parquet rendered with the build's
template, special tokens left out (the floor ``tokenize_floor.py`` times on a sample). ``build_over_raw`` is
the build's wall time over the raw tokenizer's; the issue's target is <= 1.5. When an earlier build's output is
there with the same texts, the raw tokenizer also runs before the build (``raw_tokenizer_before_build``): the
VM's speed drifts within minutes (bench/RESULTS.md, sessions 12-13), and the two raw runs bracket the build.
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
from run import WORK, code_state, prepare, run_cli

from pipeline import chat_format, templates, tokenize
from pipeline.config import load_mix
from pipeline.io import split_files
from pipeline.io.tokenizer import load_tokenizer

BATCH = tokenize.BATCH


def raw_tokenizer_seconds(out: Path, template: str, system: str | None, mask_history: bool,
                          tokenizer_name: str) -> tuple[float, float, int, int]:
    """(wall s, CPU s, texts, tokens) of the raw tokenizer on every first copy of train and eval."""
    frames = [chat_format.read_records(split_files.paths(out, split)).filter(pl.col("repeat") == 0)
              for split in ("train", "eval")]
    frame = pl.concat(frames, how="diagonal_relaxed")
    texts = templates.prompt_texts(frame, template, system, mask_history).to_list()
    backend = load_tokenizer(tokenizer_name).backend_tokenizer
    tokens = 0
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(texts), BATCH):
        tokens += sum(len(e.ids) for e in backend.encode_batch(texts[start:start + BATCH], add_special_tokens=False))
    return time.perf_counter() - started, time.process_time() - cpu, len(texts), tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--corpus", choices=("scale", "short"), default="scale")
    args = parser.parse_args()
    name = label(args.records) if args.corpus == "scale" else short_name(args.records)
    mix_path = WORK / name / "mix.yaml"
    prepare(mix_path, warm=False)
    mix = load_mix(mix_path)
    spec = mix.spec.tokenize

    def raw() -> dict[str, Any]:
        wall, cpu, texts, tokens = raw_tokenizer_seconds(mix.out_dir, spec.template, spec.system,
                                                         spec.mask_history, spec.tokenizer)
        return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "texts": texts, "tokens": tokens}

    # the raw tokenizer also before the build, on an earlier build's texts when there is one: the VM's speed
    # drifts within minutes, and a ratio with a raw run on each side of the build shows how much
    before = raw() if split_files.paths(mix.out_dir, "train") else None
    load = os.getloadavg()
    build = run_cli(mix_path, "direct", None)
    if build["returncode"] != 0:
        raise SystemExit(build["output_tail"])
    after = raw()
    result = {
        "corpus": name, "code": code_state(), "loadavg_before": [round(x, 2) for x in load],
        "build": {k: v for k, v in build.items() if k != "output_tail"},
        "raw_tokenizer": after,
        "build_over_raw": round(build["wall_s"] / after["wall_s"], 2),
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    if before is not None and before["tokens"] == after["tokens"]:  # the same texts: the same outputs
        result["raw_tokenizer_before_build"] = before
        result["build_over_raw_before_build"] = round(build["wall_s"] / before["wall_s"], 2)
    print(json.dumps(result, indent=2))
    commit = result["code"].get("commit", "unknown")
    (WORK / f"build-vs-tokenizer-{name}-{commit}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
