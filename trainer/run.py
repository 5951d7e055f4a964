"""``pipeline train``: a build's ``tokenized/`` dataset -> a LoRA adapter (or a fully fine-tuned model), on
``transformers.Trainer``.

Contract: ``train(build, settings, base_model, output)`` fine-tunes ``base_model`` on the build's train split and
writes to ``output``: ``adapter/`` (peft; ``model/`` for full fine-tuning), ``tokenizer/``, ``checkpoints/``
(every ``save_steps``, the newest ``save_total_limit`` kept), ``train_config.json``, ``metrics.json`` (loss,
learning rate, tokens/s per step; the forgetting report), ``loss.svg`` and ``report.md`` / ``report.html``.

What is ours: the model loading (``trainer.model``), the padding-free collator that keeps packed examples apart
(``trainer.batches``), the mapping of ``train:`` to ``TrainingArguments``, and the evaluation, which measures
held-out loss per task and per general set before the first step and at every eval step (``trainer.forgetting``).
The loop, logging (``report_to``), checkpointing and resume (RNG states and data order included), mixed
precision and data parallelism (``torchrun`` / ``accelerate launch``) are the library's.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoTokenizer, Trainer, TrainerCallback, set_seed
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from pipeline.memory import estimate
from schemas.mix import MixSpec, TrainSpec
from trainer import report
from trainer.arguments import arguments
from trainer.batches import flatten
from trainer.evaluation import (
    EvalSet,
    GroupLoss,
    build_eval_set,
    group_losses,
    held_out_eval_set,
)
from trainer.forgetting import Monitor, Point
from trainer.model import load_model, pad_token_id

STATE = "forgetting_state.json"  # the evaluations so far, beside checkpoints/: a resumed run keeps its base


class TrainError(RuntimeError):
    """A training run that cannot start (no base model, no room on the GPU, checkpoints in the way); the message
    says what to do."""


@dataclass
class Run:
    """What a finished run reports: per-step logs and the forgetting monitor."""

    steps: list[int]
    loss: list[float]
    learning_rate: list[float]
    eval_steps: list[int]
    eval_loss: list[float]
    tokens_per_s: list[float | None]
    monitor: Monitor
    output: Path


class EvaluatingTrainer(Trainer):
    """A Trainer whose evaluation is the forgetting monitor's: loss per group of ``eval_set``."""

    def __init__(self, *args: Any, eval_set: EvalSet, monitor: Monitor, output: Path, max_tokens: int,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.eval_set, self.monitor, self.output, self.max_tokens = eval_set, monitor, output, max_tokens

    def evaluate(self, eval_dataset: Any = None, ignore_keys: Any = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
        point = self.monitor.record(self.state.global_step, group_losses(self.model, self.eval_set, self.max_tokens))
        metrics = self.monitor.metrics(point, metric_key_prefix)
        self.log(metrics)
        if self.monitor.max_forgetting is not None and self.monitor.is_best(point.step):
            self.save_model(str(self.output / "best"))
        if self.monitor.stopped_at is not None:
            self.control.should_training_stop = True
        if self.is_world_process_zero():
            save_state(self.monitor, self.output / STATE)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


class Progress(TrainerCallback):
    """A progress bar with loss, learning rate and tokens/s; one line per evaluation."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor, self.bar, self.last = monitor, None, (0.0, 0)
        self.tokens_per_s: dict[int, float] = {}  # step -> training tokens per second since the last log

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from tqdm.auto import tqdm

        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", dynamic_ncols=True)
            self.last = (time.perf_counter(), state.num_input_tokens_seen)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if self.bar is None or not logs or "loss" not in logs:
            return
        now, seen = time.perf_counter(), state.num_input_tokens_seen
        rate = (seen - self.last[1]) / max(now - self.last[0], 1e-9)
        self.last = (now, seen)
        self.tokens_per_s[state.global_step] = round(rate, 1)
        self.bar.set_postfix(loss=f"{logs['loss']:.4f}", lr=f"{logs.get('learning_rate', 0):.2e}",
                             tok_s=f"{rate:,.0f}", refresh=False)
        self.bar.update(state.global_step - self.bar.n)

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
        if self.bar is not None and self.monitor.points:
            self.bar.write(report.evaluation_line(self.monitor, self.monitor.points[-1]))
            self.last = (time.perf_counter(), state.num_input_tokens_seen)  # tokens/s counts training time only

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()


def save_state(monitor: Monitor, path: Path) -> None:
    points = [{"step": p.step, "losses": {g: [v.nll, v.tokens, v.examples] for g, v in p.losses.items()}}
              for p in monitor.points]
    path.write_text(json.dumps({"points": points, "best_step": monitor.best_step}))


def load_state(monitor: Monitor, path: Path, upto: int) -> None:
    """The evaluations of an interrupted run up to its checkpoint's step (later ones are made again)."""
    if not path.is_file():
        return
    for point in json.loads(path.read_text())["points"]:
        if point["step"] <= upto:
            monitor.record(point["step"], {g: GroupLoss(*v) for g, v in point["losses"].items()})


def _checkpoint(output: Path, resume: bool) -> str | None:
    """The newest complete checkpoint (its trainer_state.json is written last) to resume from; a newer one that
    a kill left half-written is removed first."""
    folder = output / "checkpoints"
    found = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[1])) if folder.is_dir() else []
    while found and not (found[-1] / "trainer_state.json").is_file():
        if resume:
            print(f"note: {found[-1]} is incomplete (the run was stopped while writing it): removed")
            shutil.rmtree(found.pop())
        else:
            found.pop()
    if resume and not found:
        raise TrainError(f"--resume: {folder} holds no complete checkpoint to resume from")
    if not resume and found:
        raise TrainError(f"{output} holds checkpoints of an earlier run: pass --resume to continue it, or "
                         "choose another --output")
    return str(found[-1]) if resume else None


def train(build: Path, settings: TrainSpec, base_model: str, output: Path, seed: int = 0,
          resume: bool = False) -> Run:
    """Fine-tune ``base_model`` on ``build``'s tokenized train split; write the adapter, logs and report."""
    from datasets import load_from_disk

    checkpoint = _checkpoint(output, resume)
    dataset = load_from_disk(str(build / "tokenized"))
    manifest = json.loads((build / "manifest.json").read_text())
    spec = MixSpec.model_validate(manifest["spec"])
    tokenizer_source = json.loads((build / "report.json").read_text())["tokens"]["tokenizer"]
    if not len(dataset["train"]):
        raise TrainError(f"{build}: the tokenized train split is empty")
    try:
        config = AutoConfig.from_pretrained(base_model)
    except (OSError, ValueError) as err:
        raise TrainError(f"cannot load the base model '{base_model}': {str(err).splitlines()[0]} (a Hub id needs "
                         "network access or the Hugging Face cache; a local folder needs its config.json)") from None
    seq_len = max(len(ids) for ids in dataset["train"]["input_ids"])
    memory = estimate(config, settings, seq_len)
    if torch.cuda.is_available() and memory.total > torch.cuda.mem_get_info()[0]:
        free = torch.cuda.mem_get_info()[0] / 2**30
        raise TrainError(f"the estimate ({memory.total_gb:.1f} GB) exceeds the free GPU memory ({free:.1f} GB): "
                         "use method qlora, a smaller micro_batch_size, gradient_checkpointing or a shorter cutoff")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    root = Path(manifest["mix_file"]).parent if manifest.get("mix_file") else Path.cwd()
    eval_set = build_eval_set(build, spec, dataset) + held_out_eval_set(settings, build, spec, tokenizer, root)
    monitor = Monitor(eval_set.kinds, config.vocab_size, settings.max_forgetting)
    set_seed(seed)
    model = load_model(base_model, settings)
    output.mkdir(parents=True, exist_ok=True)
    progress = Progress(monitor)
    trainer = EvaluatingTrainer(
        model=model, args=arguments(settings, output, seed, bool(eval_set.examples)),
        train_dataset=dataset["train"], eval_dataset=dataset["train"].select([]), data_collator=flatten,
        callbacks=[progress], eval_set=eval_set, monitor=monitor, output=output,
        max_tokens=settings.micro_batch_size * seq_len)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if trainer.is_world_process_zero():
        print(memory.summary())
        for note in eval_set.notes:
            print(f"note: {note}")
    started = time.perf_counter()
    if checkpoint is not None:
        load_state(monitor, output / STATE, int(Path(checkpoint).name.rsplit("-", 1)[1]))
    if eval_set.examples and not monitor.points:
        trainer.evaluate()  # the base model: every later evaluation is measured against it
        if trainer.is_world_process_zero():
            print(report.evaluation_line(monitor, monitor.points[0]))
    trainer.train(resume_from_checkpoint=checkpoint)
    if eval_set.examples and monitor.stopped_at is None and monitor.points[-1].step != trainer.state.global_step:
        trainer.evaluate()  # the report's last column is the weights saved
    if trainer.is_world_process_zero():
        run = _finish(trainer, settings, output, tokenizer, progress)
        report.write_run(run, {
            "settings": settings.model_dump(mode="json"), "base_model": base_model, "build": str(build),
            "build_spec_hash": manifest["spec_hash"], "template": spec.tokenize.template,
            "tokenizer": tokenizer_source, "seed": seed, "steps": trainer.state.global_step,
            "resumed_from": checkpoint, "world_size": trainer.args.world_size,
            "seconds": round(time.perf_counter() - started, 1),
            "attn_implementation": model.config._attn_implementation, "memory_estimate_gb": memory.as_dict(),
            "measured_peak_gb": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
            "eval_notes": eval_set.notes,
        }, pad_token_id(tokenizer))
        return run
    return _logs(trainer, progress, output)


def _finish(trainer: EvaluatingTrainer, settings: TrainSpec, output: Path, tokenizer: Any, progress: Progress) -> Run:
    """Save the weights (the best evaluated ones when max_forgetting stopped the run) and the tokenizer."""
    target = output / ("model" if settings.method == "full" else "adapter")
    if progress.monitor.stopped_at is not None and (output / "best").is_dir():
        shutil.rmtree(target, ignore_errors=True)
        (output / "best").rename(target)
    else:
        trainer.save_model(str(target))
        shutil.rmtree(output / "best", ignore_errors=True)
    tokenizer.save_pretrained(output / "tokenizer")
    return _logs(trainer, progress, output)


def _logs(trainer: Trainer, progress: Progress, output: Path) -> Run:
    steps = [h for h in trainer.state.log_history if "loss" in h and "step" in h]
    # log_history is typed dict[str, float], but its "step" is the Trainer's global_step, an int already
    step_numbers = [int(h["step"]) for h in steps]
    points = progress.monitor.points
    return Run(steps=step_numbers, loss=[h["loss"] for h in steps],
               learning_rate=[h.get("learning_rate", 0.0) for h in steps],
               eval_steps=[p.step for p in points], eval_loss=[p.summary["loss"] for p in points],
               tokens_per_s=[progress.tokens_per_s.get(step) for step in step_numbers], monitor=progress.monitor,
               output=output)


__all__ = ["Point", "Run", "TrainError", "train"]
