"""The GPU memory estimate (pipeline/memory.py): pure arithmetic, so it runs without the train extra, and the
pipeline that reports it never imports the trainer."""

from __future__ import annotations

import subprocess
import sys

import pytest
from transformers import LlamaConfig

from pipeline import memory
from schemas.mix import TrainSpec
from tests.conftest import ROOT

RULES_OF_THUMB = {"7B": (6, 160), "13B": (12, 320), "30B": (24, 600), "65B": (48, 1200)}  # GB: QLoRA, full 16-bit


@pytest.mark.parametrize("size", RULES_OF_THUMB)
def test_memory_estimate_against_the_rules_of_thumb(size):
    shape = memory.model_shape(size)
    qlora_gb, full_gb = (memory.estimate(shape, TrainSpec(method=m, micro_batch_size=1), 1024).total_gb
                         for m in ("qlora", "full"))
    rule_qlora, rule_full = RULES_OF_THUMB[size]
    assert abs(qlora_gb / rule_qlora - 1) < 0.25, qlora_gb
    assert abs(full_gb / rule_full - 1) < 0.25, full_gb


def test_model_sizes_from_a_count_or_a_config(tmp_path):
    assert memory.estimate(memory.model_shape("20B"), TrainSpec(), 1024).parameters == pytest.approx(20e9, rel=0.05)
    tiny = LlamaConfig(vocab_size=32000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512)
    (tmp_path / "config.json").write_text(tiny.to_json_string())
    assert memory.model_shape(str(tmp_path / "config.json")).hidden_size == 64


def test_memory_estimate_orders_the_methods():
    llama7b = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                          num_attention_heads=32)
    sizes = {m: memory.estimate(llama7b, TrainSpec(method=m, micro_batch_size=1), 1024).total_gb
             for m in ("qlora", "lora", "full")}
    assert sizes["qlora"] < sizes["lora"] < sizes["full"]
    assert 4 < sizes["qlora"] < 10 and sizes["full"] > 100  # the field's rules of thumb: ~6 GB and ~160 GB
    assert memory.estimate(llama7b, TrainSpec(), 1024).parameters == pytest.approx(6.74e9, rel=0.01)


def test_estimate_command(cli):
    result = cli("estimate", "--model", "7B")
    assert result.exit_code == 0 and "qlora" in result.output and "6.74B" in result.output
    assert "pipeline/memory.py" in result.output


def test_a_build_never_imports_the_trainer():
    """The pipeline must not depend on the trainer: importing the build, its report and the CLI leaves
    ``trainer`` unimported (a fresh interpreter, so no other test's imports count)."""
    code = ("import sys, pipeline.build, pipeline.report.memory, pipeline.cli; "
            "print(sorted(m for m in sys.modules if m == 'trainer' or m.startswith('trainer.')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_the_estimate_needs_no_prefect_server(request, cli):
    """``cli`` is the command without a server; only ``flow_cli`` (a build that runs its flow) starts one."""
    assert "prefect_api" not in request.fixturenames
    assert cli("estimate", "--model", "13B").exit_code == 0
