"""The mapping of the mix's ``train:`` section to ``transformers.TrainingArguments``: the one place where our
settings meet the library's loop.

Logging every step (the progress bar and ``metrics.json`` read it), evaluation every ``eval_steps`` (the
forgetting monitor's), a checkpoint every ``save_steps`` (default: every ``eval_steps``) in ``checkpoints/``,
cosine decay after a linear warmup, no weight decay, bf16 mixed precision on GPUs that have it (fp16 on older
ones), the rows given to the collator whole (``remove_unused_columns=False``), and gloo for several CPU
processes under ``torchrun``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import TrainingArguments

from schemas.mix import TrainSpec
from trainer.model import compute_dtype


def arguments(settings: TrainSpec, output: Path, seed: int, evaluate: bool) -> TrainingArguments:
    """``train:`` as the library's TrainingArguments."""
    cuda = torch.cuda.is_available()
    bf16 = cuda and compute_dtype(settings.method) == torch.bfloat16
    return TrainingArguments(
        output_dir=str(output / "checkpoints"), seed=seed, data_seed=seed,
        per_device_train_batch_size=settings.micro_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation,
        learning_rate=settings.learning_rate, weight_decay=0.0, max_grad_norm=settings.max_grad_norm,
        num_train_epochs=settings.epochs, max_steps=settings.max_steps or -1,
        lr_scheduler_type="cosine", warmup_steps=settings.warmup_ratio,
        logging_steps=1, include_num_input_tokens_seen="all", report_to=settings.report_to or "none",
        eval_strategy="steps" if evaluate else "no", eval_steps=settings.eval_steps,
        save_strategy="steps", save_steps=settings.save_steps or settings.eval_steps,
        save_total_limit=settings.save_total_limit,
        bf16=bf16, fp16=cuda and not bf16 and settings.method != "full", use_cpu=not cuda,
        remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=True,
        ddp_find_unused_parameters=False,
        ddp_backend="gloo" if not cuda and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
    )
