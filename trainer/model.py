"""Loading models for training and inference: the base model (4-bit NF4 for ``qlora``) with LoRA adapters, the
attention implementation, and the adapter's own prompt rendering, completion and merge.

``qlora`` loads the base in 4-bit NF4 with double quantization (bf16 compute on GPUs that have it, fp16 on older
ones, fp32 on CPU) and trains LoRA adapters; ``lora`` the same on a 16-bit (CPU: 32-bit) base; ``full`` trains
every weight. Under ``torchrun`` / ``accelerate launch`` each process loads its copy on its own GPU
(``LOCAL_RANK``).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any, cast

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from schemas.mix import TrainSpec


def compute_dtype(method: str = "lora") -> torch.dtype:
    """bf16 on GPUs that have it; fp16 on older GPUs (fp32 weights for full fine-tuning, which fp16 cannot
    update); fp32 on CPU."""
    if not torch.cuda.is_available():
        return torch.float32
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32 if method == "full" else torch.float16


def attention_implementation(settings: TrainSpec) -> str:
    """The attention kernel: the setting, else flash-attention 2 where it is installed on a GPU, else SDPA.
    Every one of them keeps packed examples apart (see ``trainer.batches``)."""
    if settings.attn_implementation:
        return settings.attn_implementation
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def load_model(base_model: str, settings: TrainSpec) -> Any:
    """The base model (4-bit for qlora) with LoRA adapters attached (none for full fine-tuning), its cache off:
    training and evaluation never reuse keys and values, and a cache would hide packed rows from the mask."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    dtype = compute_dtype(settings.method)
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": attention_implementation(settings)}
    if settings.method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype)
    if torch.cuda.is_available():
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    model = AutoModelForCausalLM.from_pretrained(base_model, **kwargs)
    model.config.use_cache = False
    if settings.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=settings.gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    elif settings.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if settings.method != "full":
            model.enable_input_require_grads()
    if settings.method == "full":
        return model
    lora = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                      target_modules=settings.target_modules, task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def pad_token_id(tokenizer: Any) -> int:
    """The tokenizer's pad token, or its EOS token for LLaMA, which has none."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def prompt_text(build: Path, prompt: str) -> str:
    """The build's template rendered around ``prompt`` up to where the answer starts."""
    from pipeline.templates import Special, render

    spec = json.loads((build / "manifest.json").read_text())["spec"]["tokenize"]
    record = {"instruction": prompt, "input": "", "output": "", "system": None, "history": None}
    segments = render(record, spec["template"], spec.get("system"), False)
    return "".join(s.text for s in segments if not s.trained and s.text not in (Special.BOS, Special.EOS))


def load_for_inference(model: str | Path, adapter: Path | None = None) -> Any:
    """``model`` in the compute dtype, with ``adapter`` attached when given, in eval mode."""
    loaded = AutoModelForCausalLM.from_pretrained(model, dtype=compute_dtype(),
                                                  device_map={"": 0} if torch.cuda.is_available() else None)
    if adapter is None:
        return loaded.eval()
    from peft import PeftModel

    return PeftModel.from_pretrained(loaded, adapter).eval()


def run_config(adapter: Path) -> dict[str, Any]:
    """The train_config.json that ``pipeline train`` wrote beside ``adapter``."""
    return json.loads((adapter.parent / "train_config.json").read_text())


def generate(adapter: Path, prompt: str, max_new_tokens: int = 64) -> str:
    """Complete ``prompt`` (rendered with the build's template) with the base model plus ``adapter``."""
    config = run_config(adapter)
    model = load_for_inference(config["base_model"], adapter)
    tokenizer = AutoTokenizer.from_pretrained(adapter.parent / "tokenizer")
    ids = tokenizer(prompt_text(Path(config["build"]), prompt), return_tensors="pt").to(model.device)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=pad_token_id(tokenizer))
    # one sequence (a 1-D tensor of ids) decodes to one string; decode returns a list only for a batch
    return cast(str, tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))


def merge(adapter: Path, output: Path) -> Path:
    """The base model with ``adapter`` folded into its weights, saved (with the tokenizer) to ``output``."""
    model = load_for_inference(run_config(adapter)["base_model"], adapter)
    model.merge_and_unload().save_pretrained(output)
    AutoTokenizer.from_pretrained(adapter.parent / "tokenizer").save_pretrained(output)
    return output
