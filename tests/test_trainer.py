"""The trainer on CPU: a tiny LLaMA built from a config (the real LLaMA-2 vocabulary) and a packed build of the
sample data. qlora, lora and full train a few steps, lower the held-out loss, save, reload and generate; a run
killed with SIGKILL resumes to the same adapter, byte for byte; a 2-process gloo run (torchrun) trains and saves
once; command-line options override train:."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the trainer needs the train extra (torch)")
peft = pytest.importorskip("peft", reason="the trainer needs the train extra (peft)")

from transformers import AutoTokenizer, LlamaForCausalLM  # noqa: E402

from schemas.mix import TrainSpec  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from trainer import model as loading  # noqa: E402
from trainer import run  # noqa: E402

SETTINGS = dict(learning_rate=1e-2, micro_batch_size=4, gradient_accumulation=1, max_steps=12, eval_steps=6,
                gradient_checkpointing=False, warmup_ratio=0.0, lora_dropout=0.0)
PIPELINE = [sys.executable, "-c", "from pipeline.cli import app; app()"]


@pytest.mark.parametrize("method", ["qlora", "lora", "full"])
def test_training_lowers_the_held_out_loss_and_saves_what_reloads(method, tiny_llama, trainer_build, tmp_path):
    out = tmp_path / method
    result = run.train(trainer_build, TrainSpec(method=method, **SETTINGS), str(tiny_llama), out)
    base, last = result.monitor.points[0], result.monitor.points[-1]
    assert [p.step for p in result.monitor.points] == [0, 6, 12] and result.eval_steps == [0, 6, 12]
    assert last.summary["loss"] < base.summary["loss"] - 0.05, (base.summary, last.summary)
    assert len(result.steps) == 12 and all(rate and rate > 0 for rate in result.tokens_per_s)
    weights = "model" if method == "full" else "adapter"
    assert {weights, "tokenizer", "checkpoints", "metrics.json", "loss.svg", "groups.svg", "report.md",
            "report.html", "train_config.json"} <= {p.name for p in out.iterdir()}
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-12", "checkpoint-6"]
    config = json.loads((out / "train_config.json").read_text())
    assert config["settings"]["method"] == method and config["memory_estimate_gb"]["total"] > 0
    assert config["attn_implementation"] == "sdpa" and config["world_size"] == 1
    if method == "full":
        model = LlamaForCausalLM.from_pretrained(out / "model")
        tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer")
        ids = tokenizer(loading.prompt_text(trainer_build, "Name a primary color."), return_tensors="pt")
        assert model.generate(**ids, max_new_tokens=4, do_sample=False).shape[1] > ids["input_ids"].shape[1]
        return
    reloaded = peft.PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(tiny_llama), out / "adapter")
    assert any("lora_A" in name for name, _ in reloaded.named_parameters())
    assert isinstance(loading.generate(out / "adapter", "Name a primary color.", max_new_tokens=5), str)


def test_merge_writes_a_plain_model(tiny_llama, trainer_build, tmp_path):
    out = tmp_path / "run"
    run.train(trainer_build, TrainSpec(method="lora", **{**SETTINGS, "max_steps": 2}), str(tiny_llama), out)
    model = LlamaForCausalLM.from_pretrained(loading.merge(out / "adapter", tmp_path / "merged"))
    assert not any("lora" in name for name, _ in model.named_parameters())


def _train_command(build: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return [*PIPELINE, "train", "--build", str(build), "--base-model", str(model), "--output", str(out),
            "--method", "lora", "--learning-rate", "0.01", "--micro-batch-size", "4", "--max-steps", "8",
            "--eval-steps", "4", "--save-steps", "2", "--lora-dropout", "0.1", *extra]


def test_a_killed_run_resumes_to_the_same_adapter_byte_for_byte(cli, tiny_llama, trainer_build, tmp_path):
    """SIGKILL once the step-4 checkpoint is complete, then --resume: the adapter equals an uninterrupted run's
    (LoRA dropout on, so the restored RNG state matters as much as the data order)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    whole = subprocess.run(_train_command(trainer_build, tiny_llama, tmp_path / "whole"), env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = subprocess.Popen(_train_command(trainer_build, tiny_llama, tmp_path / "killed"), env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed" / "checkpoints" / "checkpoint-4" / "trainer_state.json"
    deadline = time.monotonic() + 240
    while not state.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert state.exists() and not (tmp_path / "killed" / "adapter").exists(), "killed before the end"
    refused = cli(*_train_command(trainer_build, tiny_llama, tmp_path / "killed")[len(PIPELINE):])  # no 3rd process
    assert refused.exit_code == 2 and "pass --resume" in refused.output
    resumed = subprocess.run([*_train_command(trainer_build, tiny_llama, tmp_path / "killed"), "--resume"], env=env,
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    config = json.loads((tmp_path / "killed" / "train_config.json").read_text())
    assert config["resumed_from"].endswith(("checkpoint-4", "checkpoint-6"))
    assert ((tmp_path / "killed" / "adapter" / "adapter_model.safetensors").read_bytes()
            == (tmp_path / "whole" / "adapter" / "adapter_model.safetensors").read_bytes())
    metrics = [json.loads((tmp_path / name / "metrics.json").read_text())["forgetting"] for name in ("whole", "killed")]
    assert metrics[0]["groups"] == metrics[1]["groups"]  # the base evaluation survived the kill


def test_two_processes_on_gloo_train_and_save_once(tiny_llama, trainer_build, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
               str(Path(sys.executable).parent / "pipeline"), "train", "--build", str(trainer_build), "--base-model",
               str(tiny_llama), "--output", str(out), "--method", "lora", "--max-steps", "3", "--eval-steps", "3",
               "--micro-batch-size", "2"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    config = json.loads((out / "train_config.json").read_text())
    assert config["world_size"] == 2 and config["steps"] == 3
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert done.stderr.count("trained 3 steps") == 1  # rank 0 reports; rank 1 trains in silence


def test_options_override_the_train_section(cli, tiny_llama, trainer_build, tmp_path):
    out = tmp_path / "cli"
    result = cli("train", "--build", str(trainer_build), "--base-model", str(tiny_llama), "--output", str(out),
                 "--method", "lora", "--max-steps", "2", "--eval-steps", "1", "--lora-r", "4", "--learning-rate",
                 "0.005", "--max-forgetting", "0.5")
    assert result.exit_code == 0, result.output
    settings = json.loads((out / "train_config.json").read_text())["settings"]
    assert (settings["lora_r"], settings["learning_rate"], settings["max_steps"], settings["max_forgetting"]) == (
        4, 0.005, 2, 0.5)
    assert settings["retention_eval"] == ["general/held_out.json"]  # from the mix's train: section
    assert "held-out loss per group" in result.output and "retention:held_out" in result.output
    bad = cli("train", "--build", str(trainer_build), "--base-model", str(tiny_llama), "--output",
              str(tmp_path / "bad"), "--method", "adapter")
    assert bad.exit_code == 2 and "method" in bad.output and "'qlora', 'lora' or 'full'" in bad.output


def test_train_without_the_extra_says_what_to_install(monkeypatch, cli, tmp_path):
    monkeypatch.setitem(sys.modules, "trainer.run", None)
    result = cli("train", "--build", str(tmp_path))
    assert result.exit_code == 2 and "'train' extra" in result.output
