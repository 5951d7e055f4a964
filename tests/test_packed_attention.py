"""Packed rows keep their examples apart: for every example of a packed batch, its logits equal its logits alone,
on every attention implementation that runs on a CPU, through the model the trainer loads (LoRA attached)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the trainer needs the train extra (torch)")

from datasets import load_from_disk  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from schemas.mix import TrainSpec  # noqa: E402
from trainer.batches import IGNORE, examples_of, flatten  # noqa: E402
from trainer.model import load_model  # noqa: E402


def _packed_rows(build, count):
    rows = [dict(r) for r in load_from_disk(str(build / "tokenized"))["train"]]
    packed = [r for r in rows if len(r["seq_lengths"]) > 1][:count]
    assert len(packed) == count, "the sample build packs several examples per row"
    return packed


def _worst_difference(model, rows):
    """The largest |logit(example in the packed batch) - logit(example alone)| over every example of ``rows``."""
    batch = flatten(rows)
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        worst, offset = 0.0, 0
        for row in rows:
            for ids, _ in examples_of(row):
                alone = model(input_ids=torch.tensor([ids])).logits[0]
                worst = max(worst, float((packed[offset:offset + len(ids)] - alone).abs().max()))
                offset += len(ids)
    assert offset == batch["input_ids"].shape[1]
    return worst


@pytest.mark.parametrize("implementation", ["sdpa", "eager", "flex_attention"])
def test_every_packed_example_sees_only_itself(implementation, tiny_llama, trainer_build):
    rows = _packed_rows(trainer_build, 2)
    model = load_model(str(tiny_llama), TrainSpec(method="lora", attn_implementation=implementation,
                                                  gradient_checkpointing=False, lora_dropout=0.0)).eval()
    assert model.config._attn_implementation == implementation
    assert sum(len(r["seq_lengths"]) for r in rows) >= 4
    assert _worst_difference(model, rows) <= 1e-4


def test_without_the_restarts_examples_would_attend_to_each_other(tiny_llama, trainer_build):
    """The check above can fail: one causal mask over the whole row (what a row-wide attention mask of ones
    gives, as the trainer did before) moves the later examples' logits far more than 1e-4."""
    rows = _packed_rows(trainer_build, 1)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    batch = flatten(rows)
    ids = examples_of(rows[0])[1][0]
    start = len(examples_of(rows[0])[0][0])
    with torch.no_grad():
        leaked = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                       attention_mask=torch.ones_like(batch["input_ids"]), use_cache=False).logits[0]
        alone = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
    assert float((leaked[start:start + len(ids)] - alone).abs().max()) > 1e-2


def test_flatten_lays_examples_end_to_end_and_never_trains_across_them():
    rows = [{"input_ids": [1, 5, 6], "labels": [-100, 5, 6]},
            {"input_ids": [1, 7, 8, 1, 9], "labels": [1, 7, 8, 1, 9], "position_ids": [0, 1, 2, 0, 1]}]
    batch = flatten(rows)
    assert batch["input_ids"].tolist() == [[1, 5, 6, 1, 7, 8, 1, 9]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 2, 0, 1]]
    assert batch["labels"].tolist() == [[IGNORE, 5, 6, IGNORE, 7, 8, IGNORE, 9]]  # each example's first label
    assert "attention_mask" not in batch  # a mask would switch off transformers' packed-sequence detection
