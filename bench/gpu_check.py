"""GPU check for the trainer (issue #8): QLoRA on a LLaMA-2-7B-shaped model with random weights (no weights can
be downloaded), 20 optimizer steps at 1024 tokens, printing tokens/s and the peak GPU memory next to the
estimate. Runs in ~3 minutes on one H100/H200; see bench/gpu_check.sh for the set-up there.

    python3 bench/gpu_check.py [--steps 20] [--seq-len 1024] [--micro-batch 4] [--method qlora]

The model is initialized on the GPU in bf16, saved to a temporary folder and loaded back through the same
``trainer.qlora.load_model`` that ``pipeline train`` uses (4-bit NF4, double quantization, bf16 compute, LoRA
r=16 on q/k/v/o, gradient checkpointing). Batches are random token ids through ``trainer.qlora.collate``.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline import memory
from schemas.mix import TrainSpec
from trainer import qlora

LLAMA2_7B = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                        num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                        rms_norm_eps=1e-5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--method", choices=("qlora", "lora"), default="qlora")
    args = parser.parse_args()
    assert torch.cuda.is_available(), "this check needs a CUDA GPU"
    settings = TrainSpec(method=args.method, micro_batch_size=args.micro_batch, gradient_accumulation=1,
                         max_steps=args.steps, learning_rate=1e-4, gradient_checkpointing=True)
    estimate = memory.estimate(LLAMA2_7B, settings, args.seq_len)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llama7b-") as folder:
        torch.set_default_dtype(torch.bfloat16)
        with torch.device("cuda"):
            model = LlamaForCausalLM(LLAMA2_7B)
        model.save_pretrained(folder)
        del model
        torch.set_default_dtype(torch.float32)
        torch.cuda.empty_cache()
        prepared = time.perf_counter() - started
        model = qlora.load_model(folder, settings)
    loaded = time.perf_counter() - started
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate)
    generator = torch.Generator().manual_seed(0)
    torch.cuda.reset_peak_memory_stats()
    losses, tokens = [], 0
    torch.cuda.synchronize()
    train_start = time.perf_counter()
    for _ in range(args.steps):
        ids = torch.randint(3, 32000, (args.micro_batch, args.seq_len), generator=generator).tolist()
        rows = [{"input_ids": r, "labels": r} for r in ids]
        batch = {k: v.cuda() for k, v in qlora.collate(rows, pad_id=2).items()}
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, settings.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
        tokens += args.micro_batch * args.seq_len
    torch.cuda.synchronize()
    seconds = time.perf_counter() - train_start
    print(json.dumps({
        "device": torch.cuda.get_device_name(0), "method": args.method, "steps": args.steps,
        "seq_len": args.seq_len, "micro_batch": args.micro_batch, "tokens_per_s": round(tokens / seconds),
        "peak_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2), "estimate_gb": estimate.as_dict(),
        "loss_first_last": [round(losses[0], 3), round(losses[-1], 3)],
        "seconds": {"make_model": round(prepared, 1), "load_4bit": round(loaded - prepared, 1),
                    "train": round(seconds, 1)},
        "versions": {"torch": torch.__version__},
    }))


if __name__ == "__main__":
    main()
