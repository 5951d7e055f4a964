"""The forgetting report: its per-group losses equal a direct computation with the model's own loss, example by
example; forgetting and learning are the differences the README defines; max_forgetting stops a run and keeps
the best weights; ``pipeline eval`` reports loss and perplexity per task and per file."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch", reason="the trainer needs the train extra (torch)")
peft = pytest.importorskip("peft", reason="the trainer needs the train extra (peft)")

import polars as pl  # noqa: E402
from datasets import load_from_disk  # noqa: E402
from transformers import AutoTokenizer, LlamaForCausalLM  # noqa: E402

from schemas.mix import MixSpec, TrainSpec  # noqa: E402
from trainer import run  # noqa: E402
from trainer.evaluation import GENERAL, TASK, GroupLoss, held_out_eval_set  # noqa: E402
from trainer.forgetting import Monitor  # noqa: E402

SETTINGS = dict(method="lora", learning_rate=1e-2, micro_batch_size=4, gradient_accumulation=1, max_steps=8,
                eval_steps=4, gradient_checkpointing=False, warmup_ratio=0.0, lora_dropout=0.0)


def _direct(model, examples):
    """Token-weighted mean of ``model(input_ids, labels).loss`` over ``examples``, one example per call."""
    nll, tokens = 0.0, 0
    with torch.no_grad():
        for ids, labels in examples:
            counted = sum(1 for label in labels[1:] if label != -100)
            loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]), use_cache=False).loss
            nll, tokens = nll + float(loss) * counted, tokens + counted
    return nll / tokens


def _eval_split_by_group(build):
    """The eval split's examples per task, cut from the packed rows by ``seq_lengths`` and named by
    ``tokenized/record_ids.parquet`` (its lines for a row, in order)."""
    task_of = dict(pl.read_parquet(build / "eval.parquet").select("id", "task").iter_rows())
    names = pl.read_parquet(build / "tokenized" / "record_ids.parquet").filter(pl.col("split") == "eval")
    ids_of = dict(names.group_by("row", maintain_order=True).agg("id").iter_rows())
    groups: dict[str, list] = {}
    for number, row in enumerate(load_from_disk(str(build / "tokenized"))["eval"]):
        offset = 0
        for example_id, length in zip(ids_of[number], row["seq_lengths"], strict=True):
            ids, labels = row["input_ids"][offset:offset + length], row["labels"][offset:offset + length]
            groups.setdefault(task_of[example_id], []).append((ids, labels))
            offset += length
    return groups


@pytest.fixture(scope="module")
def trained(tiny_llama, trainer_build, tmp_path_factory):
    out = tmp_path_factory.mktemp("forgetting") / "run"
    settings = TrainSpec(**SETTINGS, retention_eval=["general/held_out.json"])
    return run.train(trainer_build, settings, str(tiny_llama), out)


def test_group_losses_equal_a_direct_computation(trained, tiny_llama, trainer_build, llama_tokenizer):
    report = json.loads((trained.output / "metrics.json").read_text())["forgetting"]
    assert report["kinds"] == {"general": GENERAL, "summarize": TASK, "zh_qa": TASK, "retention:held_out": GENERAL}
    spec = MixSpec.model_validate(json.loads((trainer_build / "manifest.json").read_text())["spec"])
    retention = held_out_eval_set(TrainSpec(retention_eval=["general/held_out.json"]), trainer_build, spec,
                                  llama_tokenizer, trainer_build.parent.parent / "data")
    assert len(retention.examples) == 16 and "1 of 17 record(s) left out" in retention.notes[0]
    groups = _eval_split_by_group(trainer_build) | {
        "retention:held_out": [(e.input_ids, e.labels) for e in retention.examples]}
    base = LlamaForCausalLM.from_pretrained(tiny_llama).eval()
    tuned = peft.PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(tiny_llama), trained.output / "adapter")
    for group, examples in groups.items():
        assert report["groups"][group][0] == pytest.approx(_direct(base, examples), rel=1e-5), group
        assert report["groups"][group][-1] == pytest.approx(_direct(tuned.eval(), examples), rel=1e-5), group


def test_forgetting_and_learning_are_the_defined_differences(trained):
    report = json.loads((trained.output / "metrics.json").read_text())["forgetting"]
    assert report["general_groups"] == ["retention:held_out"]  # the retention sets, when there are any
    assert report["task_groups"] == ["summarize", "zh_qa"]
    points = trained.monitor.points
    first, last = points[0].losses, points[-1].losses
    general = last["retention:held_out"].loss - first["retention:held_out"].loss
    tasks = [sum(p[g].nll for g in ("summarize", "zh_qa")) / sum(p[g].tokens for g in ("summarize", "zh_qa"))
             for p in (first, last)]
    summary = report["summary"]
    assert summary["forgetting"][-1] == pytest.approx(general)
    assert summary["forgetting_relative"][-1] == pytest.approx(general / first["retention:held_out"].loss)
    assert summary["forgetting_of_headroom"][-1] is None  # a random base is within 0.1 nats of ln 32000
    assert summary["learning"][-1] == pytest.approx(tasks[0] - tasks[1]) and summary["learning"][-1] > 0
    markdown = (trained.output / "report.md").read_text()
    assert "| retention:held_out | general | 16 |" in markdown and "nats on retention:held_out" in markdown
    assert "<svg" in (trained.output / "report.html").read_text()


def test_max_forgetting_stops_and_keeps_the_best_weights(tiny_llama, trainer_build, tmp_path):
    """Full fine-tuning at a learning rate of 1 wrecks the model at once: the first evaluation is over the limit,
    so the run stops there and keeps the best evaluated weights, the base model's (step 0)."""
    settings = TrainSpec(**{**SETTINGS, "method": "full", "learning_rate": 1.0, "eval_steps": 2}, max_forgetting=0.01)
    result = run.train(trainer_build, settings, str(tiny_llama), tmp_path / "run")
    monitor = result.monitor
    assert (monitor.stopped_at, monitor.best_step) == (2, 0) and result.steps[-1] == 2
    assert monitor.points[-1].summary["forgetting_relative"] > 0.01
    kept = LlamaForCausalLM.from_pretrained(tmp_path / "run" / "model").state_dict()
    base = LlamaForCausalLM.from_pretrained(tiny_llama).state_dict()
    assert all(torch.equal(kept[name], base[name]) for name in base)
    assert "stopped at step 2" in (tmp_path / "run" / "report.md").read_text()
    assert not (tmp_path / "run" / "best").exists()


def test_monitor_keeps_the_lowest_task_loss_within_the_limit():
    monitor = Monitor({"task": TASK, "general": GENERAL}, vocab_size=32000, max_forgetting=0.1)

    def losses(task, general):
        return {"task": GroupLoss(task * 10, 10, 1), "general": GroupLoss(general * 10, 10, 1)}

    for step, task, general in ((0, 3.0, 2.0), (10, 2.5, 2.1), (20, 2.2, 2.15), (30, 2.0, 2.3)):
        monitor.record(step, losses(task, general))
    assert monitor.stopped_at == 30 and monitor.best_step == 20  # 2.3 is 15% over 2.0; 2.15 is within 10%
    assert monitor.points[2].summary["learning"] == pytest.approx(0.8)
    assert monitor.points[2].summary["forgetting"] == pytest.approx(0.15)
    assert monitor.points[2].summary["forgetting_of_headroom"] == pytest.approx(0.15 / (math.log(32000) - 2.0))


def test_pipeline_eval_reports_each_task_and_file(cli, tiny_llama, trainer_build, tmp_path, llama_tokenizer):
    table = tmp_path / "eval.json"
    data = trainer_build.parent.parent / "data"
    result = cli("eval", "--model", str(tiny_llama), "--build", str(trainer_build), "--json", str(table),
                 str(data / "general" / "held_out.json"), str(trainer_build))
    assert result.exit_code == 0, result.output
    rows = json.loads(table.read_text())
    assert [(r["file"], r["task"]) for r in rows][:1] == [("held_out", "held_out")]
    assert {r["task"] for r in rows if r["file"] == trainer_build.name} == {"general", "summarize", "zh_qa",
                                                                            "(all)"}
    one = rows[0]
    assert one["examples"] == 17 and one["perplexity"] == pytest.approx(math.exp(one["loss"]))
    spec = MixSpec.model_validate(json.loads((trainer_build / "manifest.json").read_text())["spec"])
    from trainer.evaluation import read_records, records_eval_set

    _, records = read_records(str(data / "general" / "held_out.json"), spec, data)
    examples = records_eval_set(records, spec, AutoTokenizer.from_pretrained(
        json.loads((trainer_build / "report.json").read_text())["tokens"]["tokenizer"])).examples
    direct = _direct(LlamaForCausalLM.from_pretrained(tiny_llama).eval(), [(e.input_ids, e.labels) for e in examples])
    assert one["loss"] == pytest.approx(direct, rel=1e-5)


def test_task_eval_sets_are_task_groups_of_the_report(tiny_llama, trainer_build, tmp_path):
    held_out = tmp_path / "zh_held_out.json"
    held_out.write_text(json.dumps([{"instruction": f"请用一句话解释第{i}个编程概念。", "input": "",
                                     "output": f"第{i}个编程概念是一种组织代码的方法。"} for i in range(6)],
                                   ensure_ascii=False))
    settings = TrainSpec(**{**SETTINGS, "max_steps": 2, "eval_steps": 2}, task_eval=[str(held_out)])
    result = run.train(trainer_build, settings, str(tiny_llama), tmp_path / "run")
    assert result.monitor.kinds["task:zh_held_out"] == TASK
    assert "task:zh_held_out" in result.monitor.task_groups
    assert result.monitor.points[-1].losses["task:zh_held_out"].examples == 6
