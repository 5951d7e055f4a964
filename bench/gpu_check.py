"""GPU check for the trainer (issues #8, #18), in one run on one CUDA GPU:

1. **packed attention**: a small random LLaMA in fp32 and bf16; for every example of a flattened packed batch,
   the largest |logit packed - logit alone|, on each attention implementation the GPU runs (sdpa, eager,
   flex_attention, and flash_attention_2 when the flash_attn package is there);
2. **QLoRA on a LLaMA-2-7B-shaped model** (random weights: none can be downloaded): ``steps`` optimizer steps
   at ``seq_len`` tokens through the trainer's own path (``trainer.model.load_model``: 4-bit NF4, double
   quantization, bf16 compute, LoRA r=16 on q/k/v/o, gradient checkpointing; ``trainer.batches.flatten`` as the
   collator; ``transformers.Trainer`` with ``trainer.arguments``), printing tokens/s and the peak GPU memory next to the
   estimate of ``pipeline.memory``.

    python3 bench/gpu_check.py [--steps 20] [--seq-len 1024] [--micro-batch 4] [--method qlora]
    python3 bench/gpu_check.py --tiny --method lora --steps 2 --seq-len 64   # the script itself, on a CPU

Prints one JSON line per check. See bench/gpu_check.sh for the set-up on a GPU machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Trainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline import memory
from schemas.mix import TrainSpec
from trainer.arguments import arguments
from trainer.batches import examples_of, flatten
from trainer.model import load_model

LLAMA2_7B = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                        num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                        rms_norm_eps=1e-5)
SMALL = LlamaConfig(vocab_size=32000, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                    num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=2048)


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def packed_attention() -> dict[str, object]:
    """Max |packed - alone| logit difference per attention implementation and dtype (fp32 and bf16)."""
    generator = torch.Generator().manual_seed(0)
    lengths = [37, 120, 5, 300, 64, 211]
    examples = [torch.randint(3, 32000, (n,), generator=generator).tolist() for n in lengths]
    rows = [{"input_ids": sum(examples[:3], []), "labels": sum(examples[:3], []),
             "position_ids": [p for e in examples[:3] for p in range(len(e))]},
            {"input_ids": sum(examples[3:], []), "labels": sum(examples[3:], []),
             "position_ids": [p for e in examples[3:] for p in range(len(e))]}]
    batch = {k: v.to(DEVICE) for k, v in flatten(rows).items()}
    implementations = ["sdpa", "eager", "flex_attention"]
    if importlib.util.find_spec("flash_attn") is not None:
        implementations.append("flash_attention_2")
    results: dict[str, object] = {"examples": len(lengths), "tokens": sum(lengths)}
    for dtype in (torch.float32, torch.bfloat16):
        torch.manual_seed(0)
        base = LlamaForCausalLM(SMALL).to(DEVICE, dtype).eval()
        base.config.use_cache = False
        for implementation in implementations:
            if implementation == "flash_attention_2" and dtype == torch.float32:
                continue
            try:
                base.set_attn_implementation(implementation)
                with torch.no_grad():
                    packed = base(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0].float()
                    worst, offset = 0.0, 0
                    for row in rows:
                        for ids, _ in examples_of(row):
                            alone = base(input_ids=torch.tensor([ids], device=DEVICE)).logits[0].float()
                            worst = max(worst, float((packed[offset:offset + len(ids)] - alone).abs().max()))
                            offset += len(ids)
                results[f"{implementation}/{str(dtype).removeprefix('torch.')}"] = worst
                if implementation == "sdpa":  # what the same batch gives with one causal mask over each row
                    with torch.no_grad():
                        leaked = base(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                                      attention_mask=torch.ones_like(batch["input_ids"])).logits[0].float()
                    name = f"leak_reference/{str(dtype).removeprefix('torch.')}"
                    results[name] = float((leaked - packed).abs().max())
            except Exception as err:  # report what does not run on this GPU instead of stopping the check
                results[f"{implementation}/{str(dtype).removeprefix('torch.')}"] = f"{type(err).__name__}: {err}"[:200]
    return results


def training(args: argparse.Namespace) -> dict[str, object]:
    """QLoRA (or LoRA) steps on the 7B shape through transformers.Trainer with the trainer's own pieces."""
    settings = TrainSpec(method=args.method, micro_batch_size=args.micro_batch, gradient_accumulation=1,
                         max_steps=args.steps, learning_rate=1e-4, gradient_checkpointing=True, warmup_ratio=0.0,
                         eval_steps=args.steps, save_steps=10 * args.steps)
    shape = SMALL if args.tiny else LLAMA2_7B
    estimate = memory.estimate(shape, settings, args.seq_len)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llama7b-") as folder:
        torch.set_default_dtype(torch.bfloat16)
        with torch.device(DEVICE):
            model = LlamaForCausalLM(shape)
        model.save_pretrained(folder)
        del model
        torch.set_default_dtype(torch.float32)
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
        prepared = time.perf_counter() - started
        model = load_model(folder, settings)
    loaded = time.perf_counter() - started
    generator = torch.Generator().manual_seed(0)
    rows = torch.randint(3, 32000, (args.steps * args.micro_batch, args.seq_len), generator=generator).tolist()
    dataset = [{"input_ids": row, "labels": row} for row in rows]  # Trainer takes any sized sequence of rows
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as output:
        trainer = Trainer(model=model, args=arguments(settings, Path(output), 0, evaluate=False),
                          train_dataset=dataset, data_collator=flatten)
        result = trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    seconds = result.metrics["train_runtime"]
    return {
        "device": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu", "model": "tiny" if args.tiny else
        "llama-2-7b shape", "method": args.method, "steps": args.steps,
        "seq_len": args.seq_len, "micro_batch": args.micro_batch,
        "tokens_per_s": round(args.steps * args.micro_batch * args.seq_len / seconds),
        "peak_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if DEVICE == "cuda" else None,
        "estimate_gb": estimate.as_dict(),
        "attn_implementation": model.config._attn_implementation,
        "loss_first_last": [round(losses[0], 3), round(losses[-1], 3)],
        "seconds": {"make_model": round(prepared, 1), "load_4bit": round(loaded - prepared, 1),
                    "train": round(seconds, 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--method", choices=("qlora", "lora"), default="qlora")
    parser.add_argument("--skip-packed", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="a small model, CPU allowed: checks the script itself")
    args = parser.parse_args()
    assert torch.cuda.is_available() or args.tiny, "this check needs a CUDA GPU (or --tiny)"
    import peft
    import transformers

    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}
    if not args.skip_packed:
        print(json.dumps({"check": "packed_attention", **packed_attention(), "versions": versions}), flush=True)
    print(json.dumps({"check": "training", **training(args), "versions": versions}), flush=True)


if __name__ == "__main__":
    main()
