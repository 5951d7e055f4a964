"""Held-out loss per group: the build's eval split per task (general sources in their own group), general
retention sets and task held-out sets, or any readable dataset (``pipeline eval``).

Contract: an ``EvalSet`` is a list of ``Example``s, each in a named group, and each group's kind (``task`` or
``general``). ``group_losses`` runs a model over it and returns, per group, the summed cross-entropy of its
labelled tokens and their count: the loss of a group is their ratio (nats per answer token), the same number
``model(...).loss`` gives on one example, taken over all of the group's tokens at once.

A dataset read here goes through the build's own per-record stages (``process_chunk``) and template, so
it is rendered exactly as the training data was; a retention set also loses every record that leaks into the
train split (the build's decontamination rules, run with the train prompts as the eval set), so a general
held-out loss never measures what was trained on (a task held-out set likewise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipeline import decontaminate, tokenize
from pipeline.config import Mix, resolve_reference
from pipeline.io import split_files
from pipeline.io.writers import RECORD_IDS
from pipeline.records import load_reference
from schemas.mix import MixSpec, TrainSpec
from trainer.batches import Example, example_losses, examples_of

TASK, GENERAL = "task", "general"


@dataclass
class EvalSet:
    examples: list[Example] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)  # group -> TASK or GENERAL, in first-seen order
    notes: list[str] = field(default_factory=list)  # what was left out, and why

    def __add__(self, other: EvalSet) -> EvalSet:
        return EvalSet(self.examples + other.examples, self.kinds | other.kinds, self.notes + other.notes)


@dataclass(frozen=True)
class GroupLoss:
    nll: float  # summed over the group's labelled tokens
    tokens: int
    examples: int

    @property
    def loss(self) -> float:
        return self.nll / self.tokens if self.tokens else math.nan

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss) if self.tokens else math.nan


def build_eval_set(build: Path, spec: MixSpec, dataset: Any) -> EvalSet:
    """The build's tokenized eval split, each example grouped by its task (its record id from
    ``tokenized/record_ids.parquet``); sources marked ``general: true`` form the group of their task label, of
    kind general."""
    if "eval" not in dataset or not len(dataset["eval"]):
        return EvalSet()
    general = {source.name for source in spec.sources if source.general}
    records = pl.read_parquet(split_files.paths(build, "eval"), columns=["id", "source", "task"])
    group_of = dict(zip(records["id"].to_list(), records["task"].to_list(), strict=True))
    kind_of = {task: GENERAL if source in general else TASK
               for source, task in records.select("source", "task").iter_rows()}
    out = EvalSet()
    for row, ids in zip(dataset["eval"], row_ids(build, "eval", dataset["eval"]), strict=True):
        for example_id, (input_ids, labels) in zip(ids, examples_of(row), strict=True):
            group = group_of[example_id]
            out.examples.append(Example(input_ids, labels, group))
            out.kinds.setdefault(group, kind_of[group])
    out.kinds = dict(sorted(out.kinds.items()))
    return out


def row_ids(build: Path, split: str, rows: Any) -> list[list[str]]:
    """The record ids of each row of ``tokenized/<split>`` (a packed row's in order), from
    ``tokenized/record_ids.parquet``; a build written before that file carries them as columns (``id``, ``ids``)."""
    path = build / "tokenized" / RECORD_IDS
    if not path.is_file():
        return [row["ids"] if "ids" in row else [row["id"]] for row in rows]
    lines = pl.read_parquet(path).filter(pl.col("split") == split)
    out: list[list[str]] = [[] for _ in range(len(rows))]
    for row, record in lines.select("row", "id").iter_rows():
        out[row].append(record)
    return out


def read_records(path: str, spec: MixSpec, root: Path) -> tuple[str, pl.DataFrame]:
    """A file, folder or earlier build's records through the build's per-record stages: (its name, records)."""
    reference = resolve_reference(path, path, root)
    mix = Mix(spec=spec, path=root / "mix.yaml", sources=())
    return reference.label, load_reference(reference, mix).records


def records_eval_set(records: pl.DataFrame, spec: MixSpec, tokenizer: Any, group: str | None = None,
                     kind: str = TASK) -> EvalSet:
    """``records`` rendered with the build's template and tokenized (unpacked), grouped by ``group`` if given,
    else by their task."""
    settings = spec.tokenize.model_copy(update={"packing": False})
    result = tokenize.tokenize(records, tokenizer, settings, spec.filters)
    out = EvalSet()
    if result.rejected.height:
        out.notes.append(f"{group or 'records'}: {result.rejected.height} record(s) left out by the token limits")
    for task, input_ids, labels in result.examples.select("task", "input_ids", "labels").iter_rows():
        name = group or task
        out.examples.append(Example(input_ids, labels, name))
        out.kinds.setdefault(name, kind)
    return out


def held_out_eval_set(settings: TrainSpec, build: Path, spec: MixSpec, tokenizer: Any, root: Path) -> EvalSet:
    """``train.task_eval`` as task groups ``task:<name>``, then ``train.retention_eval`` as general groups
    ``retention:<name>``, each without the records that leak into the build's train split."""
    sets = [(path, "task", TASK) for path in settings.task_eval]
    sets += [(path, "retention", GENERAL) for path in settings.retention_eval]
    if not sets:
        return EvalSet()
    train_prompts = pl.read_parquet(split_files.paths(build, "train"),
                                    columns=["id", "instruction", "input"]).unique("id")
    out = EvalSet()
    for path, prefix, kind in sets:
        name, records = read_records(path, spec, root)
        leaks = decontaminate.contaminated(records, [("train", train_prompts)], spec.decontaminate)
        if leaks.height:
            records = records.join(leaks.select("id"), on="id", how="anti", maintain_order="left")
            out.notes.append(f"{prefix}:{name}: {leaks.height} of {records.height + leaks.height} record(s) left "
                             "out: they overlap the train split")
        out += records_eval_set(records, spec, tokenizer, f"{prefix}:{name}", kind)
    return out


def group_losses(model: Any, eval_set: EvalSet, max_tokens: int) -> dict[str, GroupLoss]:
    """Per group (in ``eval_set.kinds`` order), the summed loss of its answer tokens, their count and examples."""
    sums: dict[str, list[float]] = {group: [0.0, 0, 0] for group in eval_set.kinds}
    losses = example_losses(model, eval_set.examples, max_tokens)
    for example, (nll, tokens) in zip(eval_set.examples, losses, strict=True):
        totals = sums[example.group]
        totals[0] += nll
        totals[1] += tokens
        totals[2] += 1
    return {group: GroupLoss(nll, int(tokens), int(n)) for group, (nll, tokens, n) in sums.items()}


def mean_loss(losses: dict[str, GroupLoss], groups: list[str]) -> float:
    """The token-weighted loss over ``groups`` together."""
    tokens = sum(losses[g].tokens for g in groups)
    return sum(losses[g].nll for g in groups) / tokens if tokens else math.nan
