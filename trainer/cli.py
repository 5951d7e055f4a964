"""The training commands of ``pipeline``: ``train``, ``generate`` and ``eval`` (``pipeline.cli`` loads them on use).

Importing this module needs only the curation install: torch, peft and bitsandbytes (the ``train`` extra) are
imported when a command runs, which otherwise exits with what to install. They print through pipeline/terminal.py
(``--quiet``: the final line only). Ctrl-C or SIGTERM stops ``train`` within a second with exit 130
(pipeline/stopping.py), and what the run had not finished writing goes: a checkpoint without its
trainer_state.json (written last), and the adapter (``model/`` for full fine-tuning), tokenizer and reports it was
writing at the end; complete checkpoints, ``best/`` and the evaluations so far stay for ``--resume``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from pipeline import stopping, terminal
from pipeline.config import ConfigError, format_validation_error
from schemas.mix import MixSpec, TrainSpec

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)  # read by pipeline.cli's command group
# what a run makes as it trains (kept when it is stopped: --resume continues from them); the rest of the output
# folder is written at the end, and what of it a stopped run made is removed
RESUMABLE = ("checkpoints", "best", "forgetting_state.json")

# --option -> the train: field it overrides; the mix's train: section gives the defaults
OVERRIDES = ("method", "learning_rate", "epochs", "max_steps", "micro_batch_size", "gradient_accumulation",
             "lora_r", "lora_alpha", "lora_dropout", "eval_steps", "save_steps", "seed", "max_forgetting",
             "retention_eval", "task_eval", "report_to", "attn_implementation")


def _error(message: str, code: int = 2) -> typer.Exit:
    terminal.error(message)
    return typer.Exit(code)


def _module(name: str) -> ModuleType:
    """A trainer module, or a clear exit when the train extra (torch, peft, bitsandbytes) is not installed."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        raise _error(f"training needs the 'train' extra ({err.name} is missing): pip install torch (your CUDA "
                     "build, or torch==2.13.0 for CPU) and then pip install 'instruct-pipeline[train]'") from None


def settings_with(base: TrainSpec, overrides: dict[str, Any]) -> TrainSpec:
    """``base`` with the options given on the command line, validated like the mix's train: section."""
    given = {k: v for k, v in overrides.items() if v is not None and v != []}
    try:
        return TrainSpec.model_validate(base.model_dump() | given)
    except ValidationError as err:
        raise ConfigError(format_validation_error(Path("command line"), err)) from None


@app.command()
def train(build: Path = typer.Option(..., "--build", "-b", help="A build's output folder (out/<name>)."),
          base_model: str | None = typer.Option(None, "--base-model", help="Hub id or local folder; default: "
                                                "train.base_model of the build's mix"),
          output: Path | None = typer.Option(None, "--output", "-o", help="Default: <build>/train/"),
          resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in the output."),
          method: str | None = typer.Option(None, "--method", help="qlora, lora or full"),
          learning_rate: float | None = typer.Option(None, "--learning-rate", "--lr"),
          epochs: float | None = typer.Option(None, "--epochs"),
          max_steps: int | None = typer.Option(None, "--max-steps"),
          micro_batch_size: int | None = typer.Option(None, "--micro-batch-size"),
          gradient_accumulation: int | None = typer.Option(None, "--gradient-accumulation"),
          lora_r: int | None = typer.Option(None, "--lora-r"),
          lora_alpha: int | None = typer.Option(None, "--lora-alpha"),
          lora_dropout: float | None = typer.Option(None, "--lora-dropout"),
          eval_steps: int | None = typer.Option(None, "--eval-steps"),
          save_steps: int | None = typer.Option(None, "--save-steps"),
          seed: int | None = typer.Option(None, "--seed"),
          max_forgetting: float | None = typer.Option(None, "--max-forgetting", help="e.g. 0.05: stop when the "
                                                      "general loss rises 5% over the base model's"),
          retention_eval: list[str] = typer.Option([], "--retention-eval", help="A general held-out set (repeat "
                                                   "for several); replaces train.retention_eval"),
          task_eval: list[str] = typer.Option([], "--task-eval", help="A task held-out set (repeatable); replaces "
                                              "train.task_eval"),
          report_to: list[str] = typer.Option([], "--report-to", help="tensorboard, wandb, ... (repeatable)"),
          attn_implementation: str | None = typer.Option(None, "--attn-implementation")) -> None:
    """Fine-tune a model on a build's tokenized data (QLoRA by default), with a forgetting report; the mix's
    train: section gives the defaults, the options override them."""
    options = locals()
    run = _module("trainer.run")
    manifest = json.loads((build / "manifest.json").read_text())
    spec = MixSpec.model_validate(manifest["spec"])
    try:
        settings = settings_with(spec.train, {name: options[name] for name in OVERRIDES})
    except ConfigError as err:
        raise _error(str(err)) from None
    model = base_model or settings.base_model
    if model is None:
        raise _error("no base model: pass --base-model or set train.base_model in mix.yaml")
    target = output or build / "train"
    try:
        with _stopped_cleanly(target), _quiet_prints():
            result = run.train(build, settings, model, target, seed=settings.seed if settings.seed is not None
                               else spec.seed, resume=resume)
    except run.TrainError as err:
        raise _error(str(err)) from None
    if not result.steps or int(os.environ.get("RANK", "0")) != 0:
        return
    report = _module("trainer.report")
    table = Table(title="held-out loss per group (base model vs last evaluation)")
    for column in report.HEADER:
        table.add_column(column, justify="left" if column in ("group", "kind") else "right")
    for row in report.forgetting_rows(result.monitor):
        table.add_row(*row)
    if result.monitor.points:
        terminal.say(table)
        terminal.say(report.verdict(result.monitor), markup=False)
    terminal.result(f"trained {result.steps[-1]} steps: loss {result.loss[0]:.4f} -> {result.loss[-1]:.4f}; "
                    f"wrote {target}")


@contextlib.contextmanager
def _stopped_cleanly(output: Path) -> Iterator[None]:
    """Ctrl-C and SIGTERM: exit 130 within a second, without what the run had not finished writing."""
    before = {p.name for p in output.iterdir()} if output.is_dir() else set()

    def unfinished(pids: list[int]) -> None:
        checkpoints = (output / "checkpoints").glob("checkpoint-*")
        half_saved = [p for p in checkpoints if not (p / "trainer_state.json").is_file()]
        made_at_the_end = [p for p in output.glob("*") if p.name not in before and p.name not in RESUMABLE]
        for path in half_saved + made_at_the_end:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

    with stopping.on_signals(f"training stopped; {output}: complete checkpoints kept (--resume continues)",
                             unfinished):
        yield


@contextlib.contextmanager
def _quiet_prints() -> Iterator[None]:
    """Under --quiet, the trainer's own lines (the memory estimate, notes, each evaluation) go nowhere."""
    if not terminal.quiet:
        yield
        return
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        yield


@app.command()
def generate(adapter: Path = typer.Option(..., "--adapter", "-a", help="The adapter/ folder pipeline train wrote."),
             prompt: str = typer.Option(..., "--prompt", "-p"),
             max_new_tokens: int = typer.Option(64, "--max-new-tokens"),
             merge_to: Path | None = typer.Option(None, "--merge-to",
                                                  help="Also save base + adapter merged here.")) -> None:
    """Complete a prompt with the base model plus an adapter, in the build's template."""
    model = _module("trainer.model")
    print(model.generate(adapter, prompt, max_new_tokens))
    if merge_to is not None:
        terminal.result(f"merged into {model.merge(adapter, merge_to)}")


@app.command("eval")
def evaluate(data: list[str] = typer.Argument(..., help="Files, folders or builds, in any format a source can "
                                              "have."),
             model_name: str | None = typer.Option(None, "--model", "-m", help="Hub id or folder; default: the "
                                                   "adapter's base model"),
             adapter: Path | None = typer.Option(None, "--adapter", "-a", help="An adapter/ folder to attach."),
             build: Path | None = typer.Option(None, "--build", "-b", help="Render with this build's template and "
                                               "tokenizer (default: the adapter's build)."),
             template: str = typer.Option("alpaca", "--template", help="Without an adapter or build."),
             tokenizer_name: str | None = typer.Option(None, "--tokenizer", help="Without an adapter or build; "
                                                       "default: the model's."),
             max_tokens: int = typer.Option(8192, "--max-tokens", help="Tokens per forward pass."),
             json_out: Path | None = typer.Option(None, "--json", help="Also write the table here.")) -> None:
    """Loss and perplexity of a model (with an adapter) per task and per file of any readable datasets."""
    evaluation, loading = _module("trainer.evaluation"), _module("trainer.model")
    from transformers import AutoTokenizer

    if adapter is not None:
        config = loading.run_config(adapter)
        build = build or Path(config["build"])
        model_name = model_name or config["base_model"]
    if model_name is None:
        raise _error("no model: pass --model (or --adapter, whose base model is used)")
    if build is not None:
        spec = MixSpec.model_validate(json.loads((build / "manifest.json").read_text())["spec"])
        tokenizer_name = tokenizer_name or json.loads((build / "report.json").read_text())["tokens"]["tokenizer"]
    else:
        spec = MixSpec.model_validate({"name": "eval", "sources": [{"name": "eval", "path": "."}],
                                       "tokenize": {"template": template, "tokenizer": tokenizer_name or model_name}})
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_name or model_name)
    loaded = loading.load_for_inference(model_name, adapter)
    rows = []
    for path in data:
        try:
            name, records = evaluation.read_records(path, spec, Path.cwd())
        except ConfigError as err:
            raise _error(str(err)) from None
        eval_set = evaluation.records_eval_set(records, spec, tokenizer)
        losses = evaluation.group_losses(loaded, eval_set, max_tokens)
        for task, loss in losses.items():
            rows.append({"file": name, "task": task, "examples": loss.examples, "tokens": loss.tokens,
                         "loss": loss.loss, "perplexity": loss.perplexity})
        if len(losses) > 1:
            total = evaluation.GroupLoss(sum(v.nll for v in losses.values()), sum(v.tokens for v in losses.values()),
                                         sum(v.examples for v in losses.values()))
            rows.append({"file": name, "task": "(all)", "examples": total.examples, "tokens": total.tokens,
                         "loss": total.loss, "perplexity": total.perplexity})
    _print_eval(rows, model_name, adapter)
    if json_out is not None:
        json_out.write_text(json.dumps([{k: (None if isinstance(v, float) and math.isnan(v) else v)
                                         for k, v in row.items()} for row in rows], indent=2))


def _print_eval(rows: list[dict[str, Any]], model_name: str, adapter: Path | None) -> None:
    table = Table(title=f"{model_name}" + (f" + {adapter}" if adapter else ""))
    for column in ("file", "task", "examples", "tokens", "loss", "perplexity"):
        table.add_column(column, justify="left" if column in ("file", "task") else "right")
    for row in rows:
        table.add_row(row["file"], row["task"], f"{row['examples']:,}", f"{row['tokens']:,}", f"{row['loss']:.4f}",
                      f"{row['perplexity']:,.2f}")
    Console().print(table)
