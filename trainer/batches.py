"""Batches without padding and without attention across examples.

A batch is every example of its rows laid end to end in one row of shape ``[1, tokens]`` (transformers'
padding-free layout), with ``position_ids`` restarting at 0 where each example starts and no attention mask.
From those restarts transformers keeps each example to itself on every attention implementation: flash-attention
2 runs its variable-length kernel, and SDPA, eager and flex attention get a block-diagonal causal mask. A packed
row of ``tokenized/`` (its ``seq_lengths`` give each example's length, and its ``position_ids`` already restart
per example) and a row of one example go through the same path; a row's ``attention_mask`` (in a packed row,
each token's example number, for LLaMA-Factory's ``neat_packing``) is not read. The first label of every
example is -100, so no example is trained to predict the next one's first token. Nothing is padded, so no
compute is spent on padding either.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise
from typing import Any

import torch

IGNORE = -100


@dataclass(frozen=True)
class Example:
    """One example of a row: its token ids, labels, and the group (task or held-out set) it is evaluated in."""

    input_ids: list[int]
    labels: list[int]
    group: str = ""


def starts(row: dict[str, Any]) -> list[int]:
    """Where each example of a row starts: from its ``seq_lengths`` (a packed row of tokenized/), else where its
    ``position_ids`` restart, else only at 0."""
    lengths = row.get("seq_lengths")
    if lengths:
        return list(accumulate(lengths[:-1], initial=0))
    positions = row.get("position_ids")
    if not positions:
        return [0]
    return [i for i, p in enumerate(positions) if i == 0 or p != positions[i - 1] + 1]


def examples_of(row: dict[str, Any]) -> list[tuple[list[int], list[int]]]:
    """A row's examples, each as (input_ids, labels)."""
    bounds = [*starts(row), len(row["input_ids"])]
    return [(row["input_ids"][a:b], row["labels"][a:b]) for a, b in pairwise(bounds)]


def flatten(rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """``rows`` (dicts with input_ids, labels and optionally position_ids) as one padding-free batch: the data
    collator given to ``transformers.Trainer``."""
    input_ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for row in rows:
        for ids, example_labels in examples_of(row):
            input_ids += ids
            labels += [IGNORE, *example_labels[1:]]
            positions += range(len(ids))
    return {"input_ids": torch.tensor([input_ids]), "labels": torch.tensor([labels]),
            "position_ids": torch.tensor([positions])}


def token_batches(examples: Sequence[Example], max_tokens: int) -> Iterator[list[int]]:
    """Indices of ``examples`` in consecutive groups of at most ``max_tokens`` tokens (one example at least)."""
    batch: list[int] = []
    size = 0
    for index, example in enumerate(examples):
        if batch and size + len(example.input_ids) > max_tokens:
            yield batch
            batch, size = [], 0
        batch.append(index)
        size += len(example.input_ids)
    if batch:
        yield batch


def example_losses(model: Any, examples: Sequence[Example], max_tokens: int) -> list[tuple[float, int]]:
    """For each example, the summed cross-entropy (nats) of its labelled tokens and their count, in fp32."""
    device = next(model.parameters()).device
    out: list[tuple[float, int]] = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in token_batches(examples, max_tokens):
            rows = [{"input_ids": examples[i].input_ids, "labels": examples[i].labels} for i in batch]
            inputs = {k: v.to(device) for k, v in flatten(rows).items()}
            labels = inputs.pop("labels")[0, 1:]
            logits = model(**inputs, use_cache=False).logits[0, :-1].float()
            losses = torch.nn.functional.cross_entropy(logits, labels.clamp(min=0), reduction="none")
            counted = labels != IGNORE
            lengths = torch.tensor([len(examples[i].input_ids) for i in batch], device=device)
            owner = torch.repeat_interleave(torch.arange(len(batch), device=device), lengths)[1:]
            sums = torch.zeros(len(batch), device=device).index_add_(0, owner, losses * counted)
            counts = torch.zeros(len(batch), device=device, dtype=torch.long).index_add_(0, owner, counted.long())
            out += [(float(s), int(c)) for s, c in zip(sums.tolist(), counts.tolist(), strict=True)]
    model.train(was_training)
    return out
