"""The compact QLoRA trainer: a build's ``tokenized/`` dataset -> a LoRA adapter, on transformers + peft +
bitsandbytes, in one readable loop.

Contract: ``train(build, settings, base_model, output)`` fine-tunes ``base_model`` on the build's train split
(eval loss on its eval split every ``eval_steps``), and writes to ``output``: ``adapter/`` (peft), the tokenizer,
``train_config.json`` (settings, build, base model, memory estimate, measured peak on CUDA), ``metrics.json``
(loss, learning rate and eval loss per step) and ``loss.svg``. ``generate`` renders the build's template around a
prompt and completes it with the base model plus an adapter; ``merge`` folds an adapter into the base weights.

Methods: ``qlora`` loads the base in 4-bit NF4 with double quantization (bf16 compute on GPUs that have it, fp16
on older ones, fp32 on CPU) and trains LoRA adapters; ``lora`` the same on a 16-bit (CPU: 32-bit) base; ``full``
trains every weight. Batches pad on the right with the pad token (LLaMA has none: the EOS token is used), labels
with -100; packed rows keep their ``position_ids``, which restart at 0 for each example.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    get_cosine_schedule_with_warmup,
)

from pipeline.memory import MemoryEstimate, estimate
from schemas.mix import TrainSpec

IGNORE = -100


class TrainError(RuntimeError):
    """A training run that cannot start (no base model, no room on the GPU); the message says what to do."""


def collate(rows: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors: input_ids with ``pad_id``, labels with -100, attention_mask 0 on padding, and
    position_ids (a packed row's own, restarting per example; else 0..n-1)."""
    width = max(len(r["input_ids"]) for r in rows)

    def pad(values: list[int], fill: int) -> list[int]:
        return list(values) + [fill] * (width - len(values))

    batch = {
        "input_ids": torch.tensor([pad(r["input_ids"], pad_id) for r in rows]),
        "labels": torch.tensor([pad(r["labels"], IGNORE) for r in rows]),
        "attention_mask": torch.tensor([pad([1] * len(r["input_ids"]), 0) for r in rows]),
    }
    positions = [r.get("position_ids") or list(range(len(r["input_ids"]))) for r in rows]
    batch["position_ids"] = torch.tensor([pad(p, 0) for p in positions])
    return batch


def _dtype() -> torch.dtype:
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load_model(base_model: str, settings: TrainSpec) -> Any:
    """The base model (4-bit for qlora) with LoRA adapters attached (none for full fine-tuning)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    dtype = _dtype()
    kwargs: dict[str, Any] = {"dtype": dtype}
    if settings.method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype)
    if torch.cuda.is_available():
        kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(base_model, **kwargs)
    if settings.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=settings.gradient_checkpointing)
    elif settings.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if settings.gradient_checkpointing:
        model.config.use_cache = False
    if settings.method == "full":
        return model
    lora = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                      target_modules=settings.target_modules, task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


@dataclass
class Metrics:
    steps: list[int]
    loss: list[float]
    learning_rate: list[float]
    eval_steps: list[int]
    eval_loss: list[float]


def _mean_loss(model: Any, rows: Any, batch_size: int, pad_id: int, device: torch.device) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = {k: v.to(device) for k, v in collate(rows[start:start + batch_size], pad_id).items()}
            total += float(model(**batch).loss) * min(batch_size, len(rows) - start)
            count += min(batch_size, len(rows) - start)
    model.train()
    return total / max(count, 1)


def train(build: Path, settings: TrainSpec, base_model: str, output: Path, seed: int = 0) -> Metrics:
    """Fine-tune ``base_model`` on ``build``'s tokenized train split; write the adapter and the logs."""
    from datasets import load_from_disk

    dataset = load_from_disk(str(build / "tokenized"))
    manifest = json.loads((build / "manifest.json").read_text())
    tokenizer_source = json.loads((build / "report.json").read_text())["tokens"]["tokenizer"]
    config = AutoConfig.from_pretrained(base_model)
    train_rows = [dict(r) for r in dataset["train"]]
    eval_rows = [dict(r) for r in dataset["eval"]] if "eval" in dataset else []
    if not train_rows:
        raise TrainError(f"{build}: the tokenized train split is empty")
    seq_len = max(len(r["input_ids"]) for r in train_rows)
    memory = estimate(config, settings, seq_len)
    print(memory.summary())
    if torch.cuda.is_available() and memory.total > torch.cuda.mem_get_info()[0]:
        free = torch.cuda.mem_get_info()[0] / 2**30
        raise TrainError(f"the estimate ({memory.total_gb:.1f} GB) exceeds the free GPU memory ({free:.1f} GB): "
                         "use method qlora, a smaller micro_batch_size, gradient_checkpointing or a shorter cutoff")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    model = load_model(base_model, settings)
    device = next(model.parameters()).device
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    pad_id = pad_token_id(tokenizer)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=0.0)
    per_step = settings.micro_batch_size * settings.gradient_accumulation
    steps = settings.max_steps or max(1, math.ceil(settings.epochs * len(train_rows) / per_step))
    schedule = get_cosine_schedule_with_warmup(optimizer, int(settings.warmup_ratio * steps), steps)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    order = np.random.default_rng(seed).permutation(len(train_rows))
    metrics, cursor, started = Metrics([], [], [], [], []), 0, time.perf_counter()
    model.train()
    for step in range(1, steps + 1):
        losses = []
        for _ in range(settings.gradient_accumulation):
            if cursor + settings.micro_batch_size > len(order):
                order, cursor = np.random.default_rng(seed + step).permutation(len(train_rows)), 0
            rows = [train_rows[i] for i in order[cursor:cursor + settings.micro_batch_size]]
            cursor += settings.micro_batch_size
            batch = {k: v.to(device) for k, v in collate(rows, pad_id).items()}
            loss = model(**batch).loss / settings.gradient_accumulation
            loss.backward()
            losses.append(float(loss.detach()) * settings.gradient_accumulation)
        torch.nn.utils.clip_grad_norm_(trainable, settings.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        metrics.steps.append(step)
        metrics.loss.append(sum(losses) / len(losses))
        metrics.learning_rate.append(schedule.get_last_lr()[0])
        if eval_rows and (step % settings.eval_steps == 0 or step == steps):
            metrics.eval_steps.append(step)
            metrics.eval_loss.append(_mean_loss(model, eval_rows, settings.micro_batch_size, pad_id, device))
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output / ("model" if settings.method == "full" else "adapter"))
    tokenizer.save_pretrained(output / "tokenizer")
    (output / "metrics.json").write_text(json.dumps(asdict(metrics), indent=2))
    (output / "loss.svg").write_text(loss_svg(metrics))
    (output / "train_config.json").write_text(json.dumps({
        "settings": settings.model_dump(mode="json"), "base_model": base_model, "build": str(build),
        "build_spec_hash": manifest["spec_hash"], "template": manifest["spec"]["tokenize"]["template"],
        "tokenizer": tokenizer_source, "seed": seed, "steps": steps, "seconds": round(time.perf_counter() - started, 1),
        "memory_estimate_gb": memory.as_dict(), "measured_peak_gb": peak,
    }, indent=2))
    return metrics


def loss_svg(metrics: Metrics, width: int = 640, height: int = 240) -> str:
    """The loss curve (and eval loss as dots) as a small self-contained SVG."""
    values = metrics.loss + metrics.eval_loss
    low, high = min(values), max(values)
    span, last = (high - low) or 1.0, max(metrics.steps[-1], 1)

    def point(step: int, value: float) -> str:
        return f"{40 + (width - 60) * step / last:.1f},{20 + (height - 50) * (high - value) / span:.1f}"

    line = " ".join(point(s, v) for s, v in zip(metrics.steps, metrics.loss))
    dots = "".join(f'<circle cx="{point(s, v).split(",")[0]}" cy="{point(s, v).split(",")[1]}" r="3" fill="#d62728"/>'
                   for s, v in zip(metrics.eval_steps, metrics.eval_loss))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
            f'font-size="11"><polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{line}"/>{dots}'
            f'<text x="40" y="14">loss {high:.3f} (top) to {low:.3f} (bottom); red: eval loss</text>'
            f'<text x="40" y="{height - 8}">step 0 to {last}</text></svg>\n')


def prompt_text(build: Path, prompt: str) -> str:
    """The build's template rendered around ``prompt`` up to where the answer starts."""
    from pipeline.templates import TEMPLATES, Special

    spec = json.loads((build / "manifest.json").read_text())["spec"]["tokenize"]
    record = {"instruction": prompt, "input": "", "output": "", "system": None, "history": None}
    segments = TEMPLATES[spec["template"]](record, spec.get("system"), False)
    return "".join(s.text for s in segments if not s.trained and s.text not in (Special.BOS, Special.EOS))


def pad_token_id(tokenizer: Any) -> int:
    """The tokenizer's pad token, or its EOS token for LLaMA, which has none."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _with_adapter(adapter: Path) -> tuple[Any, dict[str, Any]]:
    """The base model named in the run's train_config.json with ``adapter`` attached, and that config."""
    from peft import PeftModel

    config = json.loads((adapter.parent / "train_config.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(config["base_model"], dtype=_dtype())
    return PeftModel.from_pretrained(model, adapter), config


def generate(adapter: Path, prompt: str, max_new_tokens: int = 64) -> str:
    """Complete ``prompt`` (rendered with the build's template) with the base model plus ``adapter``."""
    model, config = _with_adapter(adapter)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(adapter.parent / "tokenizer")
    ids = tokenizer(prompt_text(Path(config["build"]), prompt), return_tensors="pt").to(model.device)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=pad_token_id(tokenizer))
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def merge(adapter: Path, output: Path) -> Path:
    """The base model with ``adapter`` folded into its weights, saved (with the tokenizer) to ``output``."""
    model, _ = _with_adapter(adapter)
    model.merge_and_unload().save_pretrained(output)
    AutoTokenizer.from_pretrained(adapter.parent / "tokenizer").save_pretrained(output)
    return output


__all__ = ["MemoryEstimate", "TrainError", "collate", "generate", "load_model", "merge", "train"]
