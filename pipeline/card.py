"""The build's dataset card: README.md in the output folder, what the Hugging Face Hub shows and what
``datasets.load_dataset(<output folder>)`` reads.

Contract: ``render(report, mix)`` -> the card's text, from the report and the spec only (the same
build gives the same bytes). Its YAML metadata (written by ``huggingface_hub.DatasetCardData``, so the Hub's
own parser reads it) has the licenses the sources declare (``license:`` on a source; ``other`` when they differ,
none when no source says), the languages found in train, ``text-generation`` as task category, the size
category, and ``configs``: ``default`` with the train split (and ``eval`` when it has records: an empty split
fails ``load_dataset``) and, when there is one, ``rejected`` with the quarantine. Listing the files keeps
``load_dataset`` on the records, away from tokenized/ and anything a trainer caches beside them. The body is a
short summary drawn from the report; report.md has the rest.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import DatasetCardData

from pipeline.config import Mix
from pipeline.io import split_files
from schemas.report import BuildReport

SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"))


def size_category(records: int) -> str:
    return next((label for limit, label in SIZE_CATEGORIES if records < limit), "n>100M")


def licenses(mix: Mix) -> str | None:
    """One Hub license id for the build: the sources' when they agree, ``other`` when they differ."""
    declared = {s.spec.license for s in mix.sources if s.spec.license}
    if not declared:
        return None
    return declared.pop() if len(declared) == 1 else "other"


def metadata(report: BuildReport, mix: Mix) -> DatasetCardData:
    languages = sorted(g.key for g in report.profile.languages if g.key != "und") if report.profile else []
    shard_rows = mix.spec.output.shard_rows
    splits: list[dict[str, Any]] = [{"split": "train", "path": split_files.pattern("train", shard_rows)}]
    if report.totals["eval"]:
        splits.append({"split": "eval", "path": split_files.pattern("eval", shard_rows)})
    configs = [{"config_name": "default", "data_files": splits}]
    if report.totals["rejected"]:
        configs.append({"config_name": "rejected", "data_files": [{"split": "train", "path": "rejected.parquet"}]})
    return DatasetCardData(
        license=licenses(mix), language=languages or None, task_categories=["text-generation"],
        size_categories=[size_category(report.totals["train"])],
        tags=["instruction-tuning", "sft", "instruct-pipeline"], pretty_name=report.name, configs=configs,
    )


def render(report: BuildReport, mix: Mix) -> str:
    totals = report.totals
    rows = [f"| {s.name} | {s.task} | {s.input:,} | {s.kept:,} | {s.rejected:,} | {s.duplicates:,} | "
            f"{mix.sources[k].spec.license or 'not stated'} |" for k, s in enumerate(report.sources)]
    tokens = report.tokens
    lines = [
        "---", metadata(report, mix).to_yaml(), "---", "",
        f"# {report.name}", "",
        f"Instruction (SFT) data curated by instruct-pipeline from "
        f"{len(report.sources)} source(s): {totals['input']:,} records read, {totals['train']:,} rows of train "
        f"({totals['repeats']:,} of them repeats drawn by the mixture), {totals['eval']:,} of eval; "
        f"{totals['rejected']:,} quarantined with their reason (the `rejected` config when there are any), "
        f"{totals['duplicates']:,} duplicates removed, {totals['sampled_out']:,} left out by the mixture.", "",
        "| source | task | read | train rows | rejected | duplicates | license |", "|---|---|---|---|---|---|---|",
        *rows, "",
        "Each row has `instruction`, `input`, `output`, `system`, `history` (`[[query, response], ...]`: "
        "LLaMA-Factory's alpaca format) and `messages` (OpenAI-style `{role, content}`: TRL, axolotl's "
        "`chat_template` type), plus `id`, `source`, `task`, `origin` (file:line of the record), `lang`; train's "
        "`repeat` counts a record's copies (0 is the first).", "",
    ]
    if tokens is not None:
        lines += [f"`tokenized/` holds the same records tokenized with `{tokens.tokenizer}` (template "
                  f"`{tokens.template}`, cutoff {tokens.cutoff_len}, packing {'on' if tokens.packing else 'off'}: "
                  f"{tokens.train_tokens:,} train tokens), for `datasets.load_from_disk`.", ""]
    lines += ["report.md (and report.html, report.json) says what each stage did and why; manifest.json lists "
              "the inputs and every file with its sha256.", ""]
    return "\n".join(lines)
