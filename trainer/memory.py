"""GPU memory estimate for fine-tuning a LLaMA-shaped model (first version; issue #6 grows it into a report).

Assumptions, stated because they decide the numbers:
- mixed precision with AdamW: trained weights keep an fp32 master copy and two fp32 moments (12 bytes a
  parameter) plus a 16-bit gradient (2 bytes); frozen weights cost 2 bytes (16-bit) or ~0.52 (4-bit NF4 with
  double quantization: 4 bits plus 64-element block scales quantized again); embeddings and the LM head stay
  16-bit under QLoRA, as bitsandbytes leaves them;
- activations per layer and token: ~34 x hidden + 5 x heads x seq_len bytes (Korthikanti et al. 2022, 16-bit,
  no recomputation); with gradient checkpointing only each layer's input (2 x hidden bytes) is kept, plus one
  layer's full activations during its recomputation; plus the logits (4 bytes x vocab per token, fp32);
- 10% on top for the CUDA context, the allocator's fragmentation and temporary buffers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.mix import TrainSpec

GB = 2**30
OVERHEAD = 0.10
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")


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
    weights = frozen_bytes + trainable * 2.0
    gradients = trainable * 2.0
    optimizer = trainable * 12.0
    tokens = settings.micro_batch_size * seq_len
    full_layer = 34 * s["hidden"] + 5 * s["heads"] * seq_len
    if settings.gradient_checkpointing:
        activations = tokens * (s["layers"] * 2 * s["hidden"] + full_layer)
    else:
        activations = tokens * s["layers"] * full_layer
    activations += tokens * s["vocab"] * 4
    base = weights + gradients + optimizer + activations
    return MemoryEstimate(total, trainable, weights, gradients, optimizer, activations, base * OVERHEAD)


def fits(memory: MemoryEstimate) -> bool:
    """Whether the estimate fits the free memory of the current CUDA device (True without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return True
    return memory.total <= torch.cuda.mem_get_info()[0]
