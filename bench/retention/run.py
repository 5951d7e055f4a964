"""Does mixing general data into task data limit forgetting? A controlled experiment anyone can rerun (issue #21).

    python bench/retention/run.py                  # the CPU scale: ~50 minutes on 2 cores, cached in bench/work
    python bench/retention/run.py --scale gpu      # a ~110M-parameter model, the same steps, on one CUDA GPU
                                                   # (bench/retention/gpu.sh: the set-up on a bare GPU machine)
    python bench/retention/run.py --report-only    # rewrite RESULTS.md and the plot from the finished runs
    python bench/retention/run.py --scale smoke --seeds 0 1 --results /tmp/r   # every step in ~5 minutes

No pretrained model can be downloaded here, so the script makes one:

1. **Data** (``../shared/data``): English Alpaca is the general data: three files pretrain the model, three
   others are the general source mixed into the task data, and 150-200 records of the last file are the general
   held-out set, never trained on. The narrow task is ``zh-misc/code_questions.json``: short Chinese questions
   and answers about Scratch programming, as far from English Alpaca as a task in ../shared/data gets (another
   language, another domain, another answer style) and the only one big enough for a budget of a few thousand
   examples (term explanations: 152, arithmetic: 500). 200 of its distinct questions are the task held-out set;
   every copy of a held-out question stays out of the pool (the file has 1,154 exact duplicates).
2. **Pretraining**, once: a LLaMA of 11M parameters (hidden 256, 4 layers, tied embeddings, the real LLaMA-2
   tokenizer) from random weights, with ``pipeline build`` (packed, ``train_on_prompt``) and ``pipeline train
   --method full`` for a fixed number of steps (~12 minutes on 2 cores). Cached in the work folder.
3. **Builds** with ``pipeline build``: general share 0, 0.1, 0.3 and 0.5 at an equal number of train tokens
   (``mixture.unit: tokens``, packed rows of 256), so every run takes the same steps over the same number of
   tokens; and a *raw* build at share 0.3: the same sources without dedup, quality, PII or language filters.
   Every build is decontaminated against both held-out sets (evaluation hygiene, not curation).
4. **Fine-tuning** with ``pipeline train``: LoRA r=16 on all linear layers, 3 seeds per share (paired: seed k
   of every share starts from the same adapter initialization and sees the same step count), one full
   fine-tuning run per share, and the raw build with the same 3 seeds. Each run's forgetting report gives the
   general held-out loss before and after (``train.retention_eval``) and the task held-out loss
   (``train.task_eval``).
5. **Results**: bench/retention/RESULTS.md (tables, the acceptance checks, commands, seeds, wall times) and
   retention.svg, written by bench/retention/results.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.retention import results  # noqa: E402

SHARED = Path(os.environ.get("INSTRUCT_PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data"))
ALPACA = sorted((SHARED / "alpaca-en").glob("alpaca_data-*.json"))
TASK_FILE = SHARED / "zh-misc" / "code_questions.json"
SHARES = (0.0, 0.1, 0.3, 0.5)
RAW_SHARE = 0.3


@dataclass(frozen=True)
class Scale:
    hidden: int
    layers: int
    heads: int
    pretrain_files: int  # English Alpaca files for pretraining
    pretrain_steps: int
    pretrain_lr: float
    pretrain_batch: int  # packed rows of 256 tokens per step
    train_tokens: int  # the mixture's size, in tokens
    micro_batch: int  # packed rows per fine-tuning step
    lora_lr: float
    full_lr: float
    held_out: int  # records in each held-out set


SCALES = {
    "cpu": Scale(hidden=256, layers=4, heads=4, pretrain_files=3, pretrain_steps=560, pretrain_lr=2e-3,
                 pretrain_batch=8, train_tokens=150_000, micro_batch=4, lora_lr=2e-3, full_lr=3e-4, held_out=150),
    "gpu": Scale(hidden=768, layers=12, heads=12, pretrain_files=8, pretrain_steps=600, pretrain_lr=6e-4,
                 pretrain_batch=32, train_tokens=600_000, micro_batch=16, lora_lr=1e-3, full_lr=1e-4, held_out=200),
    "smoke": Scale(hidden=64, layers=2, heads=1, pretrain_files=1, pretrain_steps=4, pretrain_lr=2e-3,
                   pretrain_batch=4, train_tokens=12_000, micro_batch=4, lora_lr=2e-3, full_lr=3e-4, held_out=20),
}


def pipeline(*args: str, log: Path) -> float:
    """Run the ``pipeline`` command (the real CLI, in its own process); its output goes to ``log``."""
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run([sys.executable, "-c", "from pipeline.cli import app; app()", *args], cwd=ROOT,
                              stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                  filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    if done.returncode != 0:
        sys.exit(f"pipeline {' '.join(args[:1])} failed (exit {done.returncode}): see {log}")
    return time.perf_counter() - started


def write_json(path: Path, rows: list[dict]) -> None:
    path.write_text(json.dumps(rows, ensure_ascii=False))


def prepare(data: Path, scale: Scale) -> None:
    """The general and task pools and their held-out sets (deterministic: seed 0)."""
    if (data / "task_heldout.json").is_file():
        return
    data.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    last = json.loads(ALPACA[-1].read_text())
    held = rng.sample([r for r in last if r.get("output", "").strip()], scale.held_out)
    held_prompts = {r["instruction"].strip().lower() for r in held}
    alpaca = [json.loads(p.read_text()) for p in ALPACA[:-1]]

    def unseen(rows: list[dict]) -> list[dict]:
        return [r for r in rows if r["instruction"].strip().lower() not in held_prompts]

    write_json(data / "general_heldout.json", held)
    write_json(data / "general_pretrain.json", unseen([r for f in alpaca[:scale.pretrain_files] for r in f]))
    pool_files = alpaca[scale.pretrain_files:scale.pretrain_files + 3]
    write_json(data / "general_pool.json", unseen([r for f in pool_files for r in f]))
    task = json.loads(TASK_FILE.read_text())
    questions = sorted({r["instruction"].strip() for r in task})
    held_questions = set(rng.sample(questions, scale.held_out))
    first = {}
    for row in task:
        first.setdefault(row["instruction"].strip(), row)
    write_json(data / "task_heldout.json", [first[q] for q in sorted(held_questions)])
    write_json(data / "task_pool.json", [r for r in task if r["instruction"].strip() not in held_questions])


CURATED: dict = {}  # the defaults: dedup, quality, PII, language as a user gets them
RAW = {"normalize": {"unicode_form": "none", "strip_control_chars": False, "placeholder_inputs": []},
       "quality": {"min_output_chars": None, "refusals": False, "placeholders": False, "unseen_content": False,
                   "echo": False, "max_repeated_ngram_ratio": None, "mojibake": False},
       "pii": {"action": "flag"}, "dedup": {"exact": False, "near": False}}


def mix_file(work: Path, name: str, share: float | None, scale: Scale, stages: dict) -> Path:
    """A mix.yaml in the work folder; ``share`` None: the pretraining build (general data only)."""
    if share is None:
        sources = [{"name": "general", "path": "data/general_pretrain.json", "general": True}]
        mixture, tokenize = {}, {"train_on_prompt": True}
    else:
        curated = stages is CURATED
        sources = [{"name": "general", "path": "data/general_pool.json", "task": "general", "general": True,
                    **({"languages": ["en"]} if curated else {})},
                   {"name": "code_qa", "path": "data/task_pool.json", "task": "code_qa",
                    **({"languages": ["zh"]} if curated else {})}]
        mixture, tokenize = {"unit": "tokens", "size": scale.train_tokens, "general_share": share}, {}
    spec = {"name": name, "seed": 0, "sources": sources, "mixture": mixture, **stages,
            "decontaminate": {"against": ["data/general_heldout.json", "data/task_heldout.json"]},
            "tokenize": {"template": "alpaca", "cutoff_len": 256, "overflow": "truncate", "packing": True,
                         **tokenize},
            "output": {"dir": "builds"},
            "train": {"target_modules": "all-linear", "lora_dropout": 0.0, "gradient_checkpointing": False,
                      "warmup_ratio": 0.03, "gradient_accumulation": 1,
                      "retention_eval": ["data/general_heldout.json"], "task_eval": ["data/task_heldout.json"]}}
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    return path


def pretrain(work: Path, scale: Scale, logs: Path) -> Path:
    """The base model: random weights trained on the pretraining build; cached."""
    base = work / "pretrain" / "model"
    if (base / "config.json").is_file():
        return base
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    init = work / "init"
    LlamaForCausalLM(LlamaConfig(vocab_size=32000, hidden_size=scale.hidden, num_hidden_layers=scale.layers,
                                 intermediate_size=scale.hidden * 8 // 3 // 8 * 8, num_attention_heads=scale.heads,
                                 num_key_value_heads=scale.heads, max_position_embeddings=512,
                                 tie_word_embeddings=True)).save_pretrained(init)
    pipeline("build", "--mix", str(mix_file(work, "pretrain", None, scale, CURATED)), "--runner", "direct",
             log=logs / "build-pretrain.log")
    pipeline("train", "--build", str(work / "builds" / "pretrain"), "--base-model", str(init), "--output",
             str(work / "pretrain"), "--method", "full", "--learning-rate", str(scale.pretrain_lr),
             "--micro-batch-size", str(scale.pretrain_batch), "--max-steps", str(scale.pretrain_steps),
             "--eval-steps", str(scale.pretrain_steps), "--save-steps", str(scale.pretrain_steps),
             log=logs / "train-pretrain.log")
    return base


def runs(scale: Scale, seeds: list[int]) -> list[dict]:
    """Every fine-tuning run: (build, method, seed, share)."""
    plan = [{"build": f"share-{s}", "method": "lora", "seed": seed, "share": s, "data": "curated"}
            for seed in seeds for s in SHARES]
    plan += [{"build": f"share-{s}", "method": "full", "seed": seeds[0], "share": s, "data": "curated"}
             for s in SHARES]
    plan += [{"build": f"raw-{RAW_SHARE}", "method": "lora", "seed": seed, "share": RAW_SHARE, "data": "raw"}
             for seed in seeds]
    return plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=None, help="default: bench/work/retention-<scale>")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--prepare-only", action="store_true", help="write the data split and stop (gpu.sh)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "retention",
                        help="where RESULTS.md and retention.svg go")
    args = parser.parse_args()
    scale = SCALES[args.scale]
    work = (args.work or ROOT / "bench" / "work" / f"retention-{args.scale}").resolve()
    if not TASK_FILE.is_file() and not (work / "data" / "task_heldout.json").is_file():
        sys.exit(f"the real datasets are not at {SHARED} (set INSTRUCT_PIPELINE_SHARED_DATA)")
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    timings = json.loads((work / "timings.json").read_text()) if (work / "timings.json").is_file() else {}
    plan = runs(scale, args.seeds)
    if args.prepare_only:
        prepare(work / "data", scale)
        return
    if not args.report_only:
        started = time.perf_counter()
        prepare(work / "data", scale)
        if "pretrain" not in timings:
            begun = time.perf_counter()
            pretrain(work, scale, logs)
            timings["pretrain"] = round(time.perf_counter() - begun, 1)
        builds = [*((f"share-{s}", s, CURATED) for s in SHARES), (f"raw-{RAW_SHARE}", RAW_SHARE, RAW)]
        for name, share, stages in builds:
            if not (work / "builds" / name / "manifest.json").is_file():
                mix = mix_file(work, name, share, scale, stages)
                seconds = pipeline("build", "--mix", str(mix), "--runner", "direct", log=logs / f"build-{name}.log")
                timings[f"build {name}"] = round(seconds, 1)
        steps = min(json.loads((work / "builds" / f"share-{s}" / "report.json").read_text())["tokens"]["train_rows"]
                    for s in SHARES) // scale.micro_batch
        for run in plan:
            out = work / "runs" / f"{run['build']}-{run['method']}-seed{run['seed']}"
            if (out / "metrics.json").is_file():
                continue
            lr = scale.lora_lr if run["method"] == "lora" else scale.full_lr
            timings[out.name] = round(pipeline(
                "train", "--build", str(work / "builds" / run["build"]),
                "--base-model", str(work / "pretrain" / "model"),
                "--output", str(out), "--method", run["method"], "--seed", str(run["seed"]), "--learning-rate", str(lr),
                "--micro-batch-size", str(scale.micro_batch), "--max-steps", str(steps), "--eval-steps", str(steps),
                "--save-steps", str(steps), log=logs / f"train-{out.name}.log"), 1)
            (work / "timings.json").write_text(json.dumps(timings, indent=1))
        timings["total (this invocation)"] = round(time.perf_counter() - started, 1)
        (work / "timings.json").write_text(json.dumps(timings, indent=1))
    args.results.mkdir(parents=True, exist_ok=True)
    results.write(work, plan, asdict(scale) | {"scale": args.scale, "seeds": args.seeds}, timings, args.results)


if __name__ == "__main__":
    main()
