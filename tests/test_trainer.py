"""The QLoRA trainer on CPU: a tiny LLaMA built from a config (the real LLaMA-2 vocabulary size) and a build of
the sample data; qlora and lora run a few steps, the loss falls, eval loss is logged, the adapter reloads and
generates."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch", reason="the trainer needs the train extra (torch)")
peft = pytest.importorskip("peft", reason="the trainer needs the train extra (peft)")

from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from pipeline import build  # noqa: E402
from pipeline.config import load_mix  # noqa: E402
from schemas.mix import TrainSpec  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from trainer import qlora  # noqa: E402

TINY = LlamaConfig(vocab_size=32000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(TINY).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def sample_build(tmp_path_factory, llama_tokenizer) -> Path:
    """The demo data built with a 10% eval split and 256-token cutoff."""
    root = tmp_path_factory.mktemp("build")
    shutil.copytree(ROOT / "data", root / "data", ignore=shutil.ignore_patterns("*.py", "*.md"))
    mix = root / "data" / "mix.yaml"
    spec = yaml.safe_load(mix.read_text())
    spec["split"] = {"eval": 0.1}
    spec["tokenize"]["cutoff_len"] = 256
    spec["tokenize"]["overflow"] = "truncate"
    mix.write_text(yaml.safe_dump(spec))
    loaded = load_mix(mix)
    return build.write(build.run(loaded, tokenizer=llama_tokenizer))


SETTINGS = dict(learning_rate=2e-2, micro_batch_size=4, gradient_accumulation=1, max_steps=12, eval_steps=6,
                gradient_checkpointing=False, warmup_ratio=0.0, lora_dropout=0.0)


@pytest.mark.parametrize("method", ["qlora", "lora"])
def test_training_lowers_the_loss_and_saves_a_reloadable_adapter(method, tiny_llama, sample_build, tmp_path):
    out = tmp_path / method
    metrics = qlora.train(sample_build, TrainSpec(method=method, **SETTINGS), str(tiny_llama), out)
    first, last = sum(metrics.loss[:3]) / 3, sum(metrics.loss[-3:]) / 3
    assert last < first - 0.02, metrics.loss  # a random tiny model: ln(32000) = 10.37 to start
    assert metrics.eval_steps == [6, 12] and all(v > 0 for v in metrics.eval_loss)
    assert sorted(p.name for p in out.iterdir()) == ["adapter", "loss.svg", "metrics.json", "tokenizer",
                                                     "train_config.json"]
    config = json.loads((out / "train_config.json").read_text())
    assert config["settings"]["method"] == method and config["memory_estimate_gb"]["total"] > 0
    reloaded = peft.PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(tiny_llama), out / "adapter")
    assert any("lora_A" in name for name, _ in reloaded.named_parameters())
    completion = qlora.generate(out / "adapter", "Name a primary color.", max_new_tokens=5)
    assert isinstance(completion, str)


def test_merge_writes_a_plain_model(tiny_llama, sample_build, tmp_path):
    out = tmp_path / "run"
    qlora.train(sample_build, TrainSpec(method="lora", **{**SETTINGS, "max_steps": 2}), str(tiny_llama), out)
    merged = qlora.merge(out / "adapter", tmp_path / "merged")
    model = LlamaForCausalLM.from_pretrained(merged)
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_collate_pads_right_and_masks_labels():
    rows = [{"input_ids": [1, 5, 6], "labels": [-100, 5, 6]},
            {"input_ids": [1, 7, 8, 9, 2], "labels": [-100, -100, 8, 9, 2], "position_ids": [0, 1, 0, 1, 2]}]
    batch = qlora.collate(rows, pad_id=2)
    assert batch["input_ids"].tolist() == [[1, 5, 6, 2, 2], [1, 7, 8, 9, 2]]
    assert batch["labels"].tolist() == [[-100, 5, 6, -100, -100], [-100, -100, 8, 9, 2]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 0], [0, 1, 0, 1, 2]]  # packed rows keep theirs


def test_train_without_the_extra_says_what_to_install(monkeypatch, cli, tmp_path):
    monkeypatch.setitem(sys.modules, "trainer.qlora", None)
    result = cli("train", "--build", str(tmp_path))
    assert result.exit_code == 2 and "'train' extra" in result.output
