"""GPU memory estimate for fine-tuning a LLaMA-shaped model: pure arithmetic on the model's shape, no torch.

Contract: ``estimate(shape, settings, seq_len)`` and ``model_shape(model)`` read nothing but their arguments (and
a local config.json ``model_shape`` is pointed at). The build report (``report/memory.py``), ``pipeline estimate``
and the trainer (which checks the estimate against the free GPU memory before it loads a model) all use them.

Assumptions, stated because they decide the numbers:
- mixed precision with AdamW: a trained weight keeps an fp32 copy (4 bytes), an fp32 gradient (4) and two fp32
  moments (8); full fine-tuning also holds the 16-bit working copy (2): 18 bytes a parameter. Frozen weights
  cost 2 bytes (16-bit) or ~0.52 (4-bit NF4 with double quantization: 4 bits plus 64-element block scales
  quantized again); embeddings and the LM head stay 16-bit under QLoRA, as bitsandbytes leaves them;
- activations per layer and token: ~34 x hidden + 5 x heads x seq_len bytes (Korthikanti et al. 2022, 16-bit,
  no recomputation); with gradient checkpointing only each layer's input (2 x hidden bytes) is kept, plus one
  layer's full activations during its recomputation; plus the logits (4 bytes x vocab per token, fp32);
- 20% on top for the CUDA context, the allocator's fragmentation and temporary buffers.

Calibrated against the field's rules of thumb at micro-batch 1 and 1024 tokens (tests/test_memory.py): 16-bit
full fine-tuning ~160 / 320 / 600 / 1200 GB and 4-bit QLoRA ~6 / 12 / 24 / 48 GB for 7B / 13B / 30B / 65B.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.mix import TrainSpec

GB = 2**30
OVERHEAD = 0.20


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    trainable: int
    weights: float  # bytes
    gradients: float
    optimizer: float
    activations: float
    overhead: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.overhead

    @property
    def total_gb(self) -> float:
        return self.total / GB

    def as_dict(self) -> dict[str, float]:
        parts = ("weights", "gradients", "optimizer", "activations", "overhead")
        return {**{p: round(getattr(self, p) / GB, 2) for p in parts}, "total": round(self.total_gb, 2)}

    def summary(self) -> str:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in self.as_dict().items() if k != "total")
        return (f"memory estimate: {self.total_gb:.1f} GB ({parts} GB) for {self.parameters / 1e9:.2f}B parameters, "
                f"{self.trainable / 1e6:.1f}M trained")


def _shape(config: Any) -> dict[str, int]:
    hidden = config.hidden_size
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    return {"hidden": hidden, "heads": heads, "kv_dim": kv * (hidden // heads), "inner": config.intermediate_size,
            "layers": config.num_hidden_layers, "vocab": config.vocab_size}


def lora_parameters(config: Any, settings: TrainSpec) -> int:
    s = _shape(config)
    sizes = {"q_proj": (s["hidden"], s["hidden"]), "k_proj": (s["hidden"], s["kv_dim"]),
             "v_proj": (s["hidden"], s["kv_dim"]), "o_proj": (s["hidden"], s["hidden"]),
             "gate_proj": (s["hidden"], s["inner"]), "up_proj": (s["hidden"], s["inner"]),
             "down_proj": (s["inner"], s["hidden"])}
    targets = list(sizes) if settings.target_modules == "all-linear" else settings.target_modules
    return s["layers"] * sum(settings.lora_r * sum(sizes[t]) for t in targets if t in sizes)


def estimate(config: Any, settings: TrainSpec, seq_len: int) -> MemoryEstimate:
    s = _shape(config)
    per_layer = 2 * s["hidden"] * s["hidden"] + 2 * s["hidden"] * s["kv_dim"] + 3 * s["hidden"] * s["inner"]
    embeddings = 2 * s["vocab"] * s["hidden"]  # input embeddings and an untied LM head
    body = s["layers"] * per_layer
    total = body + embeddings
    if settings.method == "full":
        trainable, frozen_bytes = total, 0.0
    else:
        trainable = lora_parameters(config, settings)
        frozen_bytes = (body * 0.52 + embeddings * 2) if settings.method == "qlora" else total * 2.0
    weights = frozen_bytes + trainable * (6.0 if settings.method == "full" else 4.0)
    gradients = trainable * 4.0
    optimizer = trainable * 8.0
    tokens = settings.micro_batch_size * seq_len
    full_layer = 34 * s["hidden"] + 5 * s["heads"] * seq_len
    if settings.gradient_checkpointing:
        activations = tokens * (s["layers"] * 2 * s["hidden"] + full_layer)
    else:
        activations = tokens * s["layers"] * full_layer
    activations += tokens * s["vocab"] * 4
    base = weights + gradients + optimizer + activations
    return MemoryEstimate(total, trainable, weights, gradients, optimizer, activations, base * OVERHEAD)


# LLaMA-1 shapes (hidden, intermediate, layers, heads): the sizes the rules of thumb are quoted for.
LLAMA_SIZES: dict[str, tuple[int, int, int, int]] = {
    "7B": (4096, 11008, 32, 32), "13B": (5120, 13824, 40, 40), "30B": (6656, 17920, 60, 52),
    "65B": (8192, 22016, 80, 64),
}


@dataclass(frozen=True)
class Shape:
    """A LLaMA-shaped model's dimensions (what ``estimate`` reads from a transformers config)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int | None = None
    vocab_size: int = 32000


def model_shape(model: str) -> Any:
    """``7B`` / ``13B`` / ``30B`` / ``65B``, a parameter count (``6.7e9``, ``20B``), or a config.json path."""
    if model.upper() in LLAMA_SIZES:
        h, i, layers, heads = LLAMA_SIZES[model.upper()]
        return Shape(h, i, layers, heads)
    path = Path(model)
    if path.suffix == ".json" or path.is_dir():
        import json

        config = json.loads((path / "config.json" if path.is_dir() else path).read_text())
        return Shape(config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"],
                     config["num_attention_heads"], config.get("num_key_value_heads"), config.get("vocab_size", 32000))
    count = float(model[:-1]) * 1e9 if model.upper().endswith("B") else float(model)
    # The nearest LLaMA shape, with the hidden size scaled so the parameter count matches (12.3 h^2 per layer).
    name = min(LLAMA_SIZES, key=lambda k: abs(float(k[:-1]) * 1e9 - count))
    h, i, layers, heads = LLAMA_SIZES[name]
    hidden = int(round((count / (layers * 12.3)) ** 0.5 / 128) * 128) or 128
    return Shape(hidden, int(hidden * i / h), layers, max(1, hidden // 128))

