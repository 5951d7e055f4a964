"""tokenized/ as TRL, LLaMA-Factory and axolotl read it, as is: each test follows what that trainer's source does
with a pre-tokenized dataset (file and function in its docstring; TRL 1.16, LLaMA-Factory 0.9.5, axolotl 0.19)
on an unpacked build and on a packed one (``trainer_build``), and checks the batches it would train on: shapes,
padding, labels, and that the examples of a packed row keep to themselves.

TRL runs for real when it is installed (the dev extra installs it on Python 3.11+); LLaMA-Factory and axolotl
pull in pinned versions of torch, transformers and datasets, so their loading and collating steps are
reproduced here with the transformers pieces they call."""

from __future__ import annotations

import inspect
from itertools import accumulate

import pytest
import yaml

torch = pytest.importorskip("torch", reason="the collators need the train extra (torch)")

import datasets  # noqa: E402
import polars as pl  # noqa: E402
from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq  # noqa: E402

from pipeline import build, writer  # noqa: E402
from pipeline.config import load_mix  # noqa: E402
from pipeline.io.writers import RECORD_IDS  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from trainer.batches import IGNORE, flatten  # noqa: E402

PACKED_COLUMNS = ["input_ids", "attention_mask", "labels", "position_ids", "seq_lengths"]
UNPACKED_COLUMNS = ["input_ids", "attention_mask", "labels"]


@pytest.fixture(scope="module")
def unpacked_build(tmp_path_factory, llama_tokenizer):
    """The demo data (data/mix.yaml) with a 15% eval split, unpacked."""
    root = tmp_path_factory.mktemp("unpacked-build")
    for folder in ("general", "tasks"):
        (root / "data" / folder).mkdir(parents=True)
        for path in (ROOT / "data" / folder).iterdir():
            (root / "data" / folder / path.name).write_bytes(path.read_bytes())
    spec = yaml.safe_load((ROOT / "data" / "mix.yaml").read_text())
    spec["split"] = {"eval": 0.15}
    spec["tokenize"].update(cutoff_len=256, overflow="truncate", packing=False)
    (root / "data" / "mix.yaml").write_text(yaml.safe_dump(spec))
    return writer.write(build.run(load_mix(root / "data" / "mix.yaml"), tokenizer=llama_tokenizer))


def _splits(folder):
    return datasets.load_from_disk(str(folder / "tokenized"))


def _rows(split, count=None):
    return [dict(row) for row in (split if count is None else split.select(range(count)))]


def _packed_rows(folder, count):
    rows = [r for r in _rows(_splits(folder)["train"]) if len(r["seq_lengths"]) > 1][:count]
    assert len(rows) == count, "the packed build has rows of several examples"
    return rows


def _bounds(row):
    return list(accumulate(row["seq_lengths"], initial=0))


def _assert_examples_keep_to_themselves(model, batch, rows, **extra):
    """Every example's logits in the trainer's batch equal its logits alone (the examples of ``rows`` in order)."""
    with torch.no_grad():
        packed = model(**batch, **extra, use_cache=False).logits[0]
        offset = 0
        for row in rows:
            for a, b in zip(_bounds(row), _bounds(row)[1:], strict=False):
                alone = model(input_ids=torch.tensor([row["input_ids"][a:b]]), use_cache=False).logits[0]
                assert float((packed[offset:offset + b - a] - alone).abs().max()) <= 1e-4
                offset += b - a


def test_every_split_has_only_the_columns_trainers_collate(unpacked_build, trainer_build, tmp_path):
    """No string column (LLaMA-Factory's collator got the record ids and failed with "too many dimensions
    'str'"), eval also as validation, and the record ids in tokenized/record_ids.parquet, which ``load_dataset``
    on the folder leaves out as ``load_from_disk`` does."""
    for folder, columns in ((unpacked_build, UNPACKED_COLUMNS), (trainer_build, PACKED_COLUMNS)):
        splits = _splits(folder)
        assert list(splits) == ["train", "eval", "validation"]
        generic = datasets.load_dataset(str(folder / "tokenized"), cache_dir=str(tmp_path / folder.name))
        assert {name: split.column_names for name, split in generic.items()} == {
            "train": columns, "validation": columns, "test": columns}  # eval/ is "test" to load_dataset
        assert splits["validation"].data.table.equals(splits["eval"].data.table)
        for split in splits.values():
            assert split.column_names == columns
            assert all(str(feature.feature.dtype).startswith("int") for feature in split.features.values())
        ids = pl.read_parquet(folder / "tokenized" / RECORD_IDS)
        for name, split in splits.items():
            rows = _rows(split)
            per_row = ids.filter(pl.col("split") == name).group_by("row", maintain_order=True).len()
            assert per_row["row"].to_list() == list(range(len(rows)))
            assert per_row["len"].to_list() == [len(r.get("seq_lengths", [0])) for r in rows]


def test_packed_rows_number_their_examples_in_the_attention_mask(trainer_build):
    for row in _rows(_splits(trainer_build)["train"]):
        bounds = _bounds(row)
        assert bounds[-1] == len(row["input_ids"]) == len(row["labels"]) == len(row["position_ids"])
        for number, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False), start=1):
            assert row["attention_mask"][a:b] == [number] * (b - a)
            assert row["position_ids"][a:b] == list(range(b - a))
            assert row["labels"][a] == IGNORE  # BOS: no example is trained to predict its neighbour's first token


# --- TRL ---------------------------------------------------------------------------------------------------------

def _trl_collator(**settings):
    pytest.importorskip("trl", reason="trl is not installed (the dev extra installs it on Python 3.11+)")
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(**settings)


TRL_COLUMNS = ("input_ids", "labels", "seq_lengths")  # SFTTrainer._set_signature_columns_if_needed


def test_trl_padding_free_batches_equal_ours(trainer_build, unpacked_build, tiny_llama):
    """``trl/trainer/sft_trainer.py``: ``SFTTrainer._prepare_dataset`` treats a dataset with ``input_ids`` as
    processed (no tokenization; a ``labels`` column is used as is; ``padding_free`` without ``packing`` needs
    ``max_length=None``), ``_set_signature_columns_if_needed`` keeps input_ids, labels and seq_lengths, and
    ``DataCollatorForLanguageModeling.torch_call`` with ``padding_free=True`` lays the rows end to end with
    position_ids rebuilt from ``seq_lengths`` (``get_position_ids_from_packed_seq_lengths``; a row without
    it is one sequence) and -100 on each sequence's first label. On both builds that is our own trainer's
    batch, token for token, and a tiny LLaMA keeps every packed example to itself on it."""
    collator = _trl_collator(pad_token_id=0, padding_free=True)
    for rows in (_packed_rows(trainer_build, 3), _rows(_splits(unpacked_build)["train"], 5)):
        batch = collator([{k: v for k, v in row.items() if k in TRL_COLUMNS} for row in rows])
        ours = flatten(rows)
        for key in ("input_ids", "labels", "position_ids"):
            assert batch[key].tolist() == ours[key].tolist(), key
        lengths = [n for row in rows for n in row.get("seq_lengths", [len(row["input_ids"])])]
        assert batch["cu_seq_lens_q"].tolist() == list(accumulate(lengths, initial=0))
    one = _packed_rows(trainer_build, 1)
    batch = collator([{k: v for k, v in one[0].items() if k in TRL_COLUMNS}])
    assert (batch["seq_idx"][0] + 1).tolist() == one[0]["attention_mask"]  # the same per-token example index
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    rows = _packed_rows(trainer_build, 2)
    batch = collator([{k: v for k, v in row.items() if k in TRL_COLUMNS} for row in rows])
    _assert_examples_keep_to_themselves(model, {"input_ids": batch["input_ids"],
                                                "position_ids": batch["position_ids"]}, rows)


def test_trl_padded_batches_of_an_unpacked_build(unpacked_build):
    """``DataCollatorForLanguageModeling.torch_call`` without padding_free: right-padded input_ids, labels
    (-100 on padding) and an attention mask of its own (ones on tokens)."""
    rows = _rows(_splits(unpacked_build)["train"], 4)
    batch = _trl_collator(pad_token_id=0)([{k: v for k, v in row.items() if k in TRL_COLUMNS} for row in rows])
    width = max(len(row["input_ids"]) for row in rows)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (4, width)
    for k, row in enumerate(rows):
        n = len(row["input_ids"])
        assert batch["labels"][k].tolist() == row["labels"] + [IGNORE] * (width - n)
        assert batch["attention_mask"][k].tolist() == [1] * n + [0] * (width - n)


# --- LLaMA-Factory -----------------------------------------------------------------------------------------------

def _llama_factory_collator(tokenizer):
    """What ``llamafactory/train/sft/workflow.py: run_sft`` builds for training, minus its multimodal steps:
    ``SFTDataCollatorWith4DAttentionMask`` (``data/collator.py``) calls transformers' ``DataCollatorForSeq2Seq``
    with ``pad_to_multiple_of=8`` and ``label_pad_token_id=-100``, after popping images, videos, audios and
    packing_params; a tokenizer without a pad token gets its EOS (``data/template.py: fix_special_tokens``)."""
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    return DataCollatorForSeq2Seq(tokenizer, pad_to_multiple_of=8, label_pad_token_id=IGNORE)


def _llama_factory_module(folder):
    """``llamafactory/data/loader.py: get_dataset`` with ``tokenized_path``: ``load_from_disk``, then
    ``data/data_utils.py: get_dataset_module``: train_dataset is "train", eval_dataset "validation"; every
    column reaches the collator (``hparams/parser.py: get_train_args`` sets ``remove_unused_columns=False``)."""
    loaded = _splits(folder)
    return {"train_dataset": loaded["train"], "eval_dataset": loaded["validation"]}


def test_llama_factory_reads_an_unpacked_build(unpacked_build, llama_tokenizer):
    """Batches of 4 from train and validation: every column padded to a multiple of 8, labels -100 on padding,
    the attention mask 0 on padding."""
    collator = _llama_factory_collator(llama_tokenizer)
    module = _llama_factory_module(unpacked_build)
    assert len(module["eval_dataset"]) > 0
    for split in module.values():
        rows = _rows(split, 4)
        batch = collator([dict(row) for row in rows])
        assert set(batch) == {"input_ids", "attention_mask", "labels"}
        width = batch["input_ids"].shape[1]
        assert width % 8 == 0 and batch["labels"].shape == batch["attention_mask"].shape == (4, width)
        for k, row in enumerate(rows):
            n = len(row["input_ids"])
            assert batch["input_ids"][k, :n].tolist() == row["input_ids"]
            assert batch["labels"][k].tolist() == row["labels"] + [IGNORE] * (width - n)
            assert batch["attention_mask"][k].tolist() == [1] * n + [0] * (width - n)


def test_llama_factory_neat_packing_keeps_packed_examples_apart(trainer_build, llama_tokenizer, tiny_llama):
    """A packed build with ``neat_packing: true``, ``flash_attn: fa2``, batch size 1: ``data/collator.py:
    SFTDataCollatorWith4DAttentionMask.__call__`` pads the row (input_ids, attention_mask, labels; position_ids
    and seq_lengths are left as they are), ``_unpad_packed_features`` keeps the positions whose attention_mask
    is not 0 (our example numbers start at 1), then drops the mask: transformers finds the examples from the
    restarting position_ids (flash attention's varlen path; on a CPU, SDPA's block-diagonal mask). Every
    example's logits equal its logits alone, and the model takes the extra ``seq_lengths`` as is. Its 4D mask
    for SDPA or eager attention (``prepare_4d_attention_mask``) compares the example numbers: the same blocks as
    seq_lengths give, but that path keeps the padding, which position_ids lack (the next test)."""
    collator = _llama_factory_collator(llama_tokenizer)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    for row in _packed_rows(trainer_build, 2):
        batch = collator([dict(row)])
        n = len(row["input_ids"])
        assert batch["input_ids"].shape[1] % 8 == 0 and batch["position_ids"].shape == (1, n)
        kept = (batch["attention_mask"][0] != 0).nonzero().flatten()
        assert kept.tolist() == list(range(n))  # the padding, and nothing else, goes
        features = {key: batch[key].index_select(1, kept) for key in ("input_ids", "labels")}
        features |= {"position_ids": batch["position_ids"], "seq_lengths": batch["seq_lengths"]}
        assert features["labels"][0].tolist() == row["labels"]
        _assert_examples_keep_to_themselves(model, {"input_ids": features["input_ids"],
                                                    "position_ids": features["position_ids"]}, [row],
                                            seq_lengths=features["seq_lengths"])
        numbers = torch.tensor(row["attention_mask"])
        block = (numbers[:, None] == numbers[None, :]) & (numbers != 0) & torch.ones(n, n, dtype=torch.bool).tril()
        expected = torch.zeros(n, n, dtype=torch.bool)
        for a, b in zip(_bounds(row), _bounds(row)[1:], strict=False):
            expected[a:b, a:b] = torch.ones(b - a, b - a, dtype=torch.bool).tril()
        assert torch.equal(block, expected)


def test_llama_factory_cannot_batch_packed_rows(trainer_build, llama_tokenizer):
    """Why the README asks LLaMA-Factory for batch size 1 and flash attention on a packed build: transformers'
    DataCollatorForSeq2Seq pads only input_ids, attention_mask and labels, so rows with different numbers of
    examples (seq_lengths) or tokens (position_ids) cannot be stacked, and it stops with an error rather than
    train on something else; at batch size 1 on SDPA or eager attention, position_ids stay shorter than the
    padded input_ids and the model stops at the rotary embedding."""
    row = next(r for r in _packed_rows(trainer_build, 4) if len(r["input_ids"]) % 8)
    batch = _llama_factory_collator(llama_tokenizer)([dict(row)])
    assert batch["position_ids"].shape[1] < batch["input_ids"].shape[1]
    rows = _packed_rows(trainer_build, 2)
    assert len(rows[0]["input_ids"]) != len(rows[1]["input_ids"])
    with pytest.raises(ValueError, match="Unable to create tensor"):
        _llama_factory_collator(llama_tokenizer)([dict(row) for row in rows])


# --- axolotl -----------------------------------------------------------------------------------------------------

def _axolotl_split(folder, split):
    """``axolotl/utils/data/shared.py: _load_from_local_path``: a directory is ``load_from_disk``-ed;
    ``utils/data/sft.py: _load_and_process_single_dataset`` takes the dataset's ``split:`` from the DatasetDict;
    ``utils/data/wrappers.py: _is_dataset_already_tokenized``: input_ids, attention_mask and labels mean the rows
    are used as they are (no ``type``)."""
    dataset = _splits(folder)[split]
    assert {"input_ids", "attention_mask", "labels"} <= set(dataset.features)
    return dataset


def _axolotl_collate(tokenizer, rows, multiple=64):
    """``axolotl/utils/collators/batching.py: DataCollatorForSeq2Seq.__call__`` (``core/builders/causal.py``
    gives it ``pad_to_multiple_of=64``): labels padded with -100 and position_ids with a range, to the longest
    row rounded up to the multiple, then ``tokenizer.pad`` for the rest."""
    width = -(-max(len(row["input_ids"]) for row in rows) // multiple) * multiple
    features = []
    for row in rows:
        extra = width - len(row["input_ids"])
        feature = dict(row, labels=row["labels"] + [IGNORE] * extra)
        if "position_ids" in row:
            feature["position_ids"] = row["position_ids"] + list(range(extra))
        features.append(feature)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    return tokenizer.pad(features, padding=True, pad_to_multiple_of=multiple, return_tensors="pt")


def _forward_columns(model_class):
    """What transformers' Trainer keeps with ``remove_unused_columns`` (axolotl's default): the arguments of the
    model's forward, and the label names."""
    return set(inspect.signature(model_class.forward).parameters) | {"labels", "label_ids", "label"}


def test_axolotl_reads_an_unpacked_build_and_packs_it_itself(unpacked_build, llama_tokenizer):
    """Without sample_packing: padded batches of whole rows. With ``sample_packing: true``,
    ``utils/trainer.py: process_datasets_for_packing`` keeps rows with a trained token (all of ours) and gives
    each row ``position_ids`` 0..n-1 (``add_position_ids``), and ``utils/collators/batching.py:
    V2BatchSamplerDataCollatorForSeq2Seq`` lays a bin's rows end to end, numbering them in the attention mask:
    the position_ids our trainer gives the same rows, and our packed rows' numbering."""
    from transformers import LlamaForCausalLM

    train = _axolotl_split(unpacked_build, "train")
    assert set(train.column_names) <= _forward_columns(LlamaForCausalLM)
    rows = _rows(train, 4)
    assert all(any(label != IGNORE for label in row["labels"]) for row in rows)
    batch = _axolotl_collate(llama_tokenizer, rows)
    width = batch["input_ids"].shape[1]
    assert width % 64 == 0 and batch["labels"].shape == batch["attention_mask"].shape == (4, width)
    for k, row in enumerate(rows):
        n = len(row["input_ids"])
        assert batch["labels"][k].tolist() == row["labels"] + [IGNORE] * (width - n)
        assert batch["attention_mask"][k].tolist() == [1] * n + [0] * (width - n)
    binned = {"input_ids": [t for row in rows for t in row["input_ids"]],
              "attention_mask": [k + 1 for k, row in enumerate(rows) for _ in row["input_ids"]],
              "position_ids": [p for row in rows for p in range(len(row["input_ids"]))]}
    assert binned["position_ids"] == flatten(rows)["position_ids"][0].tolist()
    assert binned["input_ids"] == flatten(rows)["input_ids"][0].tolist()


def test_axolotl_reads_a_packed_build(trainer_build, llama_tokenizer):
    """A packed build: Trainer's column removal drops seq_lengths (not an argument of the model's forward) and
    keeps position_ids, which axolotl's collator pads with a range (padding starts a sequence of its own,
    labels -100); the rows batch whole, every example's position_ids restarting at 0."""
    from transformers import LlamaForCausalLM

    train = _axolotl_split(trainer_build, "train")
    kept = [column for column in train.column_names if column in _forward_columns(LlamaForCausalLM)]
    assert kept == ["input_ids", "attention_mask", "labels", "position_ids"]
    rows = _packed_rows(trainer_build, 3)
    batch = _axolotl_collate(llama_tokenizer, [{k: row[k] for k in kept} for row in rows])
    width = batch["input_ids"].shape[1]
    assert batch["position_ids"].shape == batch["labels"].shape == (3, width)
    for k, row in enumerate(rows):
        n = len(row["input_ids"])
        assert batch["position_ids"][k].tolist() == row["position_ids"] + list(range(width - n))
        assert batch["labels"][k].tolist() == row["labels"] + [IGNORE] * (width - n)
        assert batch["attention_mask"][k, :n].tolist() == row["attention_mask"]
