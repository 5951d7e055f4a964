"""The memory section of a build report: ``pipeline.memory``'s estimate for the build's ``train:`` settings.

Contract: ``memory_report(train, seq_len)`` is a pure function (no torch; a local config.json is the only file
it may read). The model is ``train.base_model`` when it names a size (``7B``, ``6.7e9``), a local config.json or
model folder, or a Hub id with its size in the name (``NousResearch/Llama-2-7b-hf``: 7B); otherwise 7B, and the
report says it was assumed. The sequence length is ``tokenize.cutoff_len``: the longest row a batch can hold.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from pipeline import memory
from schemas.mix import TrainSpec
from schemas.report import MemoryMethod, MemoryReport

DEFAULT_MODEL = "7B"
METHODS = ("full", "lora", "qlora")
SIZE = re.compile(r"(?i)\d+(?:\.\d+)?b|\d+(?:\.\d+)?e\d+|\d{9,}")
SIZE_IN_NAME = re.compile(r"(?i)(?:^|[^a-z0-9.])(\d+(?:\.\d+)?)b(?![a-z0-9])")


def _config_file(model: str) -> str | None:
    path = Path(model)
    return model if path.suffix == ".json" and path.is_file() else None


def _model_folder(model: str) -> str | None:
    return model if (Path(model) / "config.json").is_file() else None


def _size(model: str) -> str | None:
    return model.upper() if SIZE.fullmatch(model) else None


def _size_in_name(model: str) -> str | None:
    found = SIZE_IN_NAME.search(model.rsplit("/", 1)[-1])
    return f"{found.group(1)}B" if found else None


# How train.base_model becomes something memory.model_shape reads, tried in order.
RESOLVERS: tuple[tuple[str, Callable[[str], str | None]], ...] = (
    ("a local config.json", _config_file),
    ("a local model folder", _model_folder),
    ("a parameter count", _size),
    ("the size in its name", _size_in_name),
)

ASSUMPTIONS = (
    "a LLaMA-shaped model (LLaMA-1 shapes for 7B / 13B / 30B / 65B; other sizes scale the nearest one)",
    ("AdamW in mixed precision: a trained parameter holds an fp32 copy, gradient and two moments (16 bytes; "
     "full fine-tuning adds its 16-bit working copy: 18)"),
    ("frozen weights: 16-bit for LoRA, 4-bit NF4 with double quantization (~0.52 bytes) for QLoRA, whose "
     "embeddings and LM head stay 16-bit"),
    ("activations after Korthikanti et al. (2022) at micro_batch_size x seq_len tokens, with gradient "
     "checkpointing when train.gradient_checkpointing is on, plus fp32 logits"),
    "20% on top for the CUDA context, allocator fragmentation and temporary buffers",
    "seq_len is tokenize.cutoff_len, the longest row; batches of shorter rows need less activation memory",
)


def resolve_model(base_model: str | None) -> tuple[str, str]:
    """(what ``model_shape`` reads, how it was found)."""
    for description, resolve in RESOLVERS:
        found = resolve(base_model) if base_model else None
        if found is not None:
            return found, f"train.base_model '{base_model}': {description}"
    why = f"train.base_model '{base_model}' names no size" if base_model else "train.base_model is not set"
    return DEFAULT_MODEL, f"{why}: {DEFAULT_MODEL} assumed"


def memory_report(train: TrainSpec, seq_len: int) -> MemoryReport:
    """Full, LoRA and QLoRA estimates, part by part, for ``train``'s batch, LoRA and checkpointing settings."""
    model, found = resolve_model(train.base_model)
    shape = memory.model_shape(model)
    methods = []
    for method in METHODS:
        parts = memory.estimate(shape, train.model_copy(update={"method": method}), seq_len)
        methods.append(MemoryMethod(method=method, parameters=parts.parameters, trainable=parts.trainable,
                                    **parts.as_dict()))
    return MemoryReport(
        model=model, model_from=found,
        seq_len=seq_len, micro_batch_size=train.micro_batch_size, lora_r=train.lora_r, lora_alpha=train.lora_alpha,
        target_modules=train.target_modules, gradient_checkpointing=train.gradient_checkpointing,
        chosen=train.method, methods=methods, assumptions=list(ASSUMPTIONS),
    )
