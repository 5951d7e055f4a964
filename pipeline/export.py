"""``pipeline export``: a finished build as the files, and the config snippet, another trainer reads as is.

Contract: ``export(build, target, out)`` reads the build's train and eval records (train's rows as written:
the mixture's repeats are rows too) and writes into ``out`` (default ``<build>-<target>`` beside the build) one
of the layouts of ``TARGETS``; it returns the files written. A folder that is not a finished build (no
manifest.json) and an ``out`` that holds anything but an earlier export are ``ExportError``s naming them, before
anything is written; nothing is reshaped silently: every layout carries the system prompt and every
turn, and the prompt of the last turn is ``instruction\\ninput`` as LLaMA-Factory joins them.

- ``llama-factory``: ``<name>_train.parquet`` / ``_eval.parquet`` in its alpaca format (``history`` as
  ``[[query, response], ...]``, ``system``), ``dataset_info.json`` naming the columns, and ``llamafactory.yaml``
  with ``dataset``, ``eval_dataset``, ``dataset_dir``, ``cutoff_len`` and the template that matches ours;
- ``axolotl``: the records with ``messages`` and ``axolotl.yaml``: ``datasets`` / ``test_datasets`` of type
  ``chat_template`` over them, and (commented) the build's ``tokenized/`` as a pre-tokenized set;
- ``trl``: a ``datasets`` folder of ``messages`` (``load_from_disk``) and ``train_trl.py``, a minimal
  SFTTrainer script;
- ``sharegpt``: ``<name>_train.json``: ``conversations`` of ``{from: human|gpt, value}`` and ``system``;
- ``alpaca-json``: ``<name>_train.json``: instruction, input, output, system, history pairs.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import polars as pl
import yaml

from pipeline import chat_format
from pipeline.io import output_folder, split_files
from schemas.mix import MixSpec

ALPACA_COLUMNS = ("instruction", "input", "output", "system", "history")
# our tokenize.template -> (LLaMA-Factory's template, how its tokens compare; tests/test_templates.py)
LLAMA_FACTORY_TEMPLATES: dict[str, tuple[str, str]] = {
    "llamafactory-alpaca": ("alpaca", "is token-identical to ours (tested)"),
    "llamafactory-llama2": ("llama2", "is token-identical to ours (tested)"),
    "alpaca": ("alpaca", "differs from ours (no BOS, one newline before the input, a trained \\n\\n after EOS); "
                         "build with tokenize.template: llamafactory-alpaca for parity"),
    "llama2-chat": ("llama2", "differs from ours (its parts are tokenized apart); build with tokenize.template: "
                              "llamafactory-llama2 for parity"),
    "chat_template": ("default", "is not ours: ours renders the tokenizer's own chat template; pick the "
                                 "LLaMA-Factory template of that model"),
}


class ExportError(ValueError):
    pass


@dataclass(frozen=True)
class Build:
    folder: Path
    spec: MixSpec
    splits: dict[str, pl.DataFrame]  # train, and eval when it has records: rows as train/eval.parquet hold them


def read_build(folder: Path) -> Build:
    if not output_folder.is_build(folder):
        raise ExportError(f"{folder}: not a finished build (no manifest.json); run `pipeline build` first")
    spec = MixSpec.model_validate(orjson.loads((folder / output_folder.MANIFEST).read_bytes())["spec"])
    splits = {}
    for split in ("train", "eval"):
        paths = split_files.paths(folder, split)
        frame = pl.read_parquet(paths) if paths else pl.DataFrame()
        if frame.height and "messages" not in frame.columns:  # written before messages, with history as structs
            frame = chat_format.for_files(frame)
        if frame.height:
            splits[split] = frame
    return Build(folder.resolve(), spec, splits)


def _files(build: Build, out: Path, suffix: str, write: Callable[[pl.DataFrame, Path], object]) -> dict[str, Path]:
    written = {}
    for split, frame in build.splits.items():
        path = out / f"{build.spec.name}_{split}{suffix}"
        write(frame, path)
        written[split] = path
    return written


def _parquet(columns: tuple[str, ...]) -> Callable[[pl.DataFrame, Path], object]:
    return lambda frame, path: frame.select(columns).write_parquet(path)


def _json(rows: Callable[[pl.DataFrame], pl.DataFrame]) -> Callable[[pl.DataFrame, Path], object]:
    return lambda frame, path: path.write_bytes(orjson.dumps(rows(frame).to_dicts(), option=orjson.OPT_INDENT_2))


def _yaml(data: dict[str, object], path: Path, header: str) -> None:
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def llama_factory(build: Build, out: Path) -> list[Path]:
    files = _files(build, out, ".parquet", _parquet(ALPACA_COLUMNS))
    columns = {"prompt": "instruction", "query": "input", "response": "output", "system": "system",
               "history": "history"}
    names = {split: build.spec.name if split == "train" else f"{build.spec.name}_{split}" for split in files}
    info = {names[split]: {"file_name": path.name, "formatting": "alpaca", "columns": columns}
            for split, path in files.items()}
    (out / "dataset_info.json").write_bytes(orjson.dumps(info, option=orjson.OPT_INDENT_2) + b"\n")
    template, parity = LLAMA_FACTORY_TEMPLATES[build.spec.tokenize.template]
    config: dict[str, object] = {"dataset": names["train"], "dataset_dir": str(out.resolve()),
                                 "template": template, "cutoff_len": build.spec.tokenize.cutoff_len}
    if "eval" in names:
        config["eval_dataset"] = names["eval"]
    header = (f"# LLaMA-Factory data settings for {build.folder} (pipeline export); merge into your train config.\n"
              f"# template: ours is {build.spec.tokenize.template!r}; LLaMA-Factory's {template!r} {parity}.\n"
              f"# Pre-tokenized instead (skips LLaMA-Factory's tokenization): tokenized_path: "
              f"{build.folder / 'tokenized'}\n" + (
                  "#   the build is packed: with tokenized_path set neat_packing: true, flash_attn: fa2 and batch "
                  "size 1 (see the README's tokenized/ table)\n" if build.spec.tokenize.packing else ""))
    _yaml(config, out / "llamafactory.yaml", header)
    return [*files.values(), out / "dataset_info.json", out / "llamafactory.yaml"]


def axolotl(build: Build, out: Path) -> list[Path]:
    files = _files(build, out, ".parquet", _parquet(("messages", *ALPACA_COLUMNS)))

    def entry(path: Path) -> dict[str, object]:
        return {"path": str(path.resolve()), "ds_type": "parquet", "split": "train", "type": "chat_template",
                "field_messages": "messages", "message_property_mappings": {"role": "role", "content": "content"},
                "roles_to_train": ["assistant"]}

    config: dict[str, object] = {"datasets": [entry(files["train"])]}
    if "eval" in files:
        config["test_datasets"] = [entry(files["eval"])]
    tokenized = build.folder / "tokenized"
    packed = ("; the build is packed, so a row's examples would attend to each other: build with tokenize.packing "
              "off and use sample_packing") if build.spec.tokenize.packing else ""
    header = (f"# axolotl datasets for {build.folder} (pipeline export); merge into your config and set "
              f"chat_template for your model.\n# Pre-tokenized instead (no type: axolotl uses input_ids, "
              f"attention_mask, labels as they are{packed}):\n"
              f"#   datasets:\n#     - path: {tokenized}\n#       split: train\n"
              f"#   test_datasets:\n#     - path: {tokenized}\n#       split: validation\n")
    _yaml(config, out / "axolotl.yaml", header)
    return [*files.values(), out / "axolotl.yaml"]


TRL_SCRIPT = '''"""Minimal TRL SFT run on {name} (written by pipeline export). The records are conversations
(``messages``), which SFTTrainer renders with the tokenizer's chat template (a base LLaMA-2 tokenizer has none:
use a chat model's, or set one). It trains on every token; to train on the answers only, as the build's
tokenized/ labels do, set assistant_only_loss=True with a chat template that marks assistant turns, or train on
tokenized/ itself: train_dataset=load_from_disk({tokenized!r})["train"] (its labels are masked already), with
SFTConfig(padding_free=True, max_length=None) when the build is packed."""
from datasets import load_from_disk
from trl import SFTConfig, SFTTrainer

data = load_from_disk({dataset!r})
trainer = SFTTrainer(
    model={model!r},
    train_dataset=data["train"],
    eval_dataset=data["eval"] if "eval" in data else None,
    args=SFTConfig(output_dir="trl-out", max_length={cutoff}),
)
trainer.train()
'''


def trl(build: Build, out: Path) -> list[Path]:
    import datasets

    folder = out / "dataset"
    splits = {split: datasets.Dataset.from_polars(frame.select("messages")) for split, frame in build.splits.items()}
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    script = out / "train_trl.py"
    script.write_text(TRL_SCRIPT.format(name=build.spec.name, dataset=str(folder.resolve()),
                                        tokenized=str(build.folder / "tokenized"),
                                        model=build.spec.train.base_model or "meta-llama/Llama-2-7b-hf",
                                        cutoff=build.spec.tokenize.cutoff_len), encoding="utf-8")
    return [folder, script]


def _sharegpt_rows(frame: pl.DataFrame) -> pl.DataFrame:
    records = frame.with_columns(chat_format.history_structs(pl.col("history")).alias("history"))
    conversations = chat_format.messages(records.with_columns(system=pl.lit("")), ("system", "human", "gpt"),
                                         ("from", "value"))
    return frame.select(conversations.alias("conversations"), pl.col("system").fill_null(""))


def sharegpt(build: Build, out: Path) -> list[Path]:
    return list(_files(build, out, ".json", _json(_sharegpt_rows)).values())


def alpaca_json(build: Build, out: Path) -> list[Path]:
    return list(_files(build, out, ".json", _json(lambda frame: frame.select(ALPACA_COLUMNS))).values())


TARGETS: dict[str, Callable[[Build, Path], list[Path]]] = {
    "llama-factory": llama_factory, "axolotl": axolotl, "trl": trl, "sharegpt": sharegpt, "alpaca-json": alpaca_json,
}


MARKER = ".pipeline-export"  # in every export folder: what may be replaced by the next export


def export(folder: Path, target: str, out: Path | None = None) -> list[Path]:
    if target not in TARGETS:
        raise ExportError(f"--to {target}: unknown target; use one of {', '.join(TARGETS)}")
    build = read_build(folder)
    out = out or folder.parent / f"{folder.name}-{target}"
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise ExportError(f"{out}: exists and is not an export of pipeline; give an empty or new --out")
        shutil.rmtree(out)  # an earlier export (it has the marker): replaced whole
    elif out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(f"{target} export of {build.folder}\n", encoding="utf-8")
    return TARGETS[target](build, out)
