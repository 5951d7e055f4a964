"""Tokenization with the real LLaMA-2 tokenizer: exact ids and labels per template, masking, cutoff, token
filters, packing, the tokenized/ dataset, and agreement with the official LLaMA-2 chat template."""

from __future__ import annotations

import copy
import gc
import json

import datasets
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import build, templates, tokenize, writer
from pipeline.config import load_mix
from pipeline.io.tokenizer import ENV, TokenizerError, load_tokenizer
from pipeline.packing import first_fit_decreasing
from pipeline.records import OUTPUT_SCHEMA
from pipeline.templates import ALPACA_SYSTEM, ALPACA_SYSTEM_WITH_INPUT
from schemas.mix import FiltersSpec, TokenizeSpec
from tests.conftest import write_jsonl

# The chat template of meta-llama/Llama-2-7b-chat-hf (tokenizer_config.json), as published with the model.
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}"
    "{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)


def record(instruction="Name a prime.", input="", output="7", system=None, history=()):
    return {"id": "s#0", "source": "s", "task": "t", "origin": "x:1", "instruction": instruction, "input": input,
            "output": output, "system": system, "history": [{"user": u, "assistant": a} for u, a in history]}


RECORDS = {
    "english": record(),
    "chinese": record(instruction="把这句话翻译成英文。", input="你好，世界", output="Hello, world."),
    "with_input": record(instruction="Sum the numbers.", input="2, 3", output="5"),
    "history": record(instruction="And Italy?", output="Rome.", history=[("Capital of France?", "Paris.")]),
    "system": record(instruction="Capital of Spain?", output="Madrid.", system="Answer in one word."),
    "zh_history_system": record(instruction="那意大利呢？", output="罗马。", system="用中文回答。",
                                history=[("法国的首都是哪里？", "巴黎。")]),
}


def tokenized(records, tokenizer, **settings):
    frame = pl.DataFrame(records, schema=OUTPUT_SCHEMA)
    spec = TokenizeSpec(**settings)
    return tokenize.tokenize(frame, tokenizer, spec, FiltersSpec())


def one(rec, tokenizer, **settings):
    result = tokenized([rec], tokenizer, **settings)
    [row] = result.examples.to_dicts()
    return row["input_ids"], row["labels"]


def trained_text(ids, labels, tokenizer):
    """The trained stretches of a sequence, decoded one by one."""
    pieces, current = [], []
    for token, label in zip(ids, labels, strict=True):
        if label == -100:
            if current:
                pieces.append(tokenizer.decode(current))
                current = []
        else:
            assert label == token
            current.append(token)
    return pieces + ([tokenizer.decode(current)] if current else [])


def test_alpaca_golden_ids(llama_tokenizer):
    ids, labels = one(RECORDS["english"], llama_tokenizer)
    prompt = f"{ALPACA_SYSTEM}\n\n### Instruction:\nName a prime.\n\n### Response:\n"
    expected_prompt = llama_tokenizer(prompt).input_ids  # BOS + the prompt, as a plain tokenizer call gives it
    assert ids == expected_prompt + [29871, 29955, 2]  # "▁", "7", "</s>"
    assert labels == [-100] * len(expected_prompt) + [29871, 29955, 2]
    assert expected_prompt[:6] == [1, 13866, 338, 385, 15278, 393]  # <s> ▁Below ▁is ▁an ▁instruction ▁that


def test_alpaca_history_prompts_follow_eos_without_a_space(llama_tokenizer):
    ids, labels = one(RECORDS["history"], llama_tokenizer)
    after_first_eos = ids[ids.index(2) + 1:]
    assert after_first_eos[:2] == [13, 13]  # "\n\n### Instruction", as the whole string tokenizes after </s>
    whole = llama_tokenizer("x</s>\n\n### Instruction:\nAnd Italy?", add_special_tokens=False).input_ids
    assert after_first_eos[: len(whole) - 2] == whole[2:]


def test_alpaca_with_input_uses_the_input_preamble(llama_tokenizer):
    ids, labels = one(RECORDS["with_input"], llama_tokenizer)
    prompt = f"{ALPACA_SYSTEM_WITH_INPUT}\n\n### Instruction:\nSum the numbers.\n\n### Input:\n2, 3\n\n### Response:\n"
    assert ids[: labels.index(next(label for label in labels if label != -100))] == llama_tokenizer(prompt).input_ids
    assert trained_text(ids, labels, llama_tokenizer) == ["5</s>"]


@pytest.mark.parametrize("template", ["alpaca", "llama2-chat"])
@pytest.mark.parametrize("name", sorted(RECORDS))
def test_trained_tokens_decode_to_the_answers_and_eos(llama_tokenizer, template, name):
    rec = RECORDS[name]
    ids, labels = one(rec, llama_tokenizer, template=template)
    answers = [t["assistant"] for t in rec["history"]] + [rec["output"]]
    end = " </s>" if template == "llama2-chat" else "</s>"  # the official LLaMA-2 chat format: "{answer} </s>"
    assert trained_text(ids, labels, llama_tokenizer) == [f"{a}{end}" for a in answers]
    assert ids[0] == 1 and ids[-1] == 2
    first_answer = labels.index(next(label for label in labels if label != -100))
    assert ids[first_answer - 1] != -100 and labels[first_answer] == ids[first_answer]  # first token trained
    masked = one(rec, llama_tokenizer, template=template, mask_history=True)
    assert trained_text(*masked, llama_tokenizer) == [f"{rec['output']}{end}"]


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_llama2_chat_equals_the_official_chat_template(llama_tokenizer, name):
    tokenizer = copy.deepcopy(llama_tokenizer)
    tokenizer.chat_template = LLAMA2_CHAT_TEMPLATE
    rec = RECORDS[name]
    ids, labels = one(rec, tokenizer, template="llama2-chat")
    official, official_labels = one(rec, tokenizer, template="chat_template")
    assert ids == official and labels == official_labels


def test_llama2_chat_golden_ids(llama_tokenizer):
    ids, labels = one(RECORDS["system"], llama_tokenizer, template="llama2-chat")
    head = [1, 29961, 25580, 29962, 3532, 14816, 29903, 6778, 13]  # <s> [ INST ] ▁<< SY S >> \n
    assert ids[:9] == head
    answer = ids[labels.index(next(label for label in labels if label != -100)):]
    assert answer == llama_tokenizer.encode(" Madrid. ", add_special_tokens=False) + [2]


def test_train_on_prompt_trains_everything_but_bos(llama_tokenizer):
    ids, labels = one(RECORDS["history"], llama_tokenizer, train_on_prompt=True)
    assert labels == [-100] + ids[1:]


def test_chat_template_needs_one(llama_tokenizer):
    with pytest.raises(ValueError, match="the tokenizer has no chat template"):
        one(RECORDS["english"], llama_tokenizer, template="chat_template")


def test_cutoff_drop_and_truncate(llama_tokenizer):
    long = {**record(output="word " * 200), "id": "s#1"}
    result = tokenized([RECORDS["english"], long], llama_tokenizer, cutoff_len=64)
    assert result.examples["id"].to_list() == ["s#0"]
    [reject] = result.rejected.to_dicts()
    assert reject["reason"] == "too_long" and reject["detail"].endswith("tokens > tokenize.cutoff_len 64")
    cut = tokenized([long], llama_tokenizer, cutoff_len=64, overflow="truncate")
    [row] = cut.examples.to_dicts()
    assert len(row["input_ids"]) == len(row["labels"]) == 64 and row["truncated"] and row["n_tokens"] == 64
    prompt_only = tokenized([record(instruction="word " * 200)], llama_tokenizer, cutoff_len=64, overflow="truncate")
    assert prompt_only.rejected["reason"].to_list() == ["too_long"]  # no answer token survives the cut


def test_token_filters(llama_tokenizer):
    frame = pl.DataFrame([RECORDS["english"], record(output="word " * 50)], schema=OUTPUT_SCHEMA)
    frame = frame.with_columns(pl.Series("id", ["a", "b"]))
    short = len(one(RECORDS["english"], llama_tokenizer)[0])
    long = len(one(record(output="word " * 50), llama_tokenizer)[0])
    filters = FiltersSpec(min_tokens=short + 1, max_tokens=long - 1)
    result = tokenize.tokenize(frame, llama_tokenizer, TokenizeSpec(), filters)
    assert result.rejected.select("id", "reason").rows() == [("a", "too_few_tokens"), ("b", "too_many_tokens")]


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 64), max_size=60), capacity=st.sampled_from([64, 100]))
def test_first_fit_decreasing_is_first_fit(lengths, capacity):
    rows = first_fit_decreasing(lengths, capacity)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    free: list[int] = []  # replay: each example must sit in the first row that had room for it
    placed = {i: r for r, row in enumerate(rows) for i in row}
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        first = next((r for r, room in enumerate(free) if room >= lengths[i]), len(free))
        assert placed[i] == first
        if first == len(free):
            free.append(capacity)
        free[first] -= lengths[i]


def test_packing_keeps_examples_whole_and_apart(llama_tokenizer):
    records = [{**r, "id": f"r{i}"} for i, r in enumerate(RECORDS.values())]
    examples = tokenized(records, llama_tokenizer).examples
    packed = tokenize.pack(examples, 256)
    by_id = {r["id"]: r for r in examples.to_dicts()}
    assert sorted(i for ids in packed["ids"] for i in ids) == sorted(by_id)
    assert any(len(row) > 1 for row in packed["ids"])
    for row in packed.to_dicts():
        assert sum(row["seq_lengths"]) == len(row["input_ids"]) == len(row["position_ids"]) <= 256
        assert len(row["attention_mask"]) == len(row["labels"]) == len(row["input_ids"])
        start = 0
        for number, (rid, n) in enumerate(zip(row["ids"], row["seq_lengths"], strict=True), start=1):
            assert row["position_ids"][start:start + n] == list(range(n))
            assert row["attention_mask"][start:start + n] == [number] * n  # the example's number in its row
            assert row["input_ids"][start:start + n] == by_id[rid]["input_ids"]
            assert row["labels"][start:start + n] == by_id[rid]["labels"]
            start += n


def test_build_writes_a_dataset_a_dataloader_can_iterate(tmp_path, write_mix, llama_tokenizer):
    torch = pytest.importorskip("torch")
    write_jsonl(tmp_path / "rows.jsonl", [
        {"instruction": r["instruction"], "input": r["input"], "output": r["output"]} for r in RECORDS.values()])
    for packing in (False, True):
        mix = write_mix({"name": f"t{packing}", "sources": [{"name": "s", "path": "rows.jsonl"}],
                         "tokenize": {"template": "alpaca", "cutoff_len": 128, "packing": packing}})
        result = build.run(load_mix(mix), tokenizer=llama_tokenizer)
        out = writer.write(result)
        loaded = datasets.load_from_disk(str(out / "tokenized"))
        assert list(loaded) == ["train", "eval", "validation"]
        assert loaded["validation"].data.table.equals(loaded["eval"].data.table)
        columns = ["input_ids", "attention_mask", "labels"] + (["position_ids", "seq_lengths"] if packing else [])
        assert all(split.column_names == columns for split in loaded.values())  # no string column
        assert result.report.tokens.train_tokens == sum(len(x) for x in loaded["train"]["input_ids"])
        # the record ids of every row, outside the columns: (split, row) -> ids, a packed row's in order
        ids = pl.read_parquet(out / "tokenized" / "record_ids.parquet")
        for split in ("train", "eval", "validation"):
            frame = result.tokenized["eval" if split == "validation" else split]
            per_row = frame["ids"].to_list() if packing else [[i] for i in frame["id"]]
            mine = ids.filter(pl.col("split") == split).group_by("row", maintain_order=True).agg("id")
            assert mine["row"].to_list() == list(range(frame.height)) and mine["id"].to_list() == per_row, split
        train_ids = ids.filter(pl.col("split") == "train")["id"]
        assert sorted(set(train_ids)) == sorted(set(pl.read_parquet(out / "train.parquet")["id"]))
        assert "tokenized/record_ids.parquet" in json.loads((out / "manifest.json").read_text())["outputs"]

        def collate(rows):
            width = max(len(r["input_ids"]) for r in rows)
            def pad(seq, value):
                return seq + [value] * (width - len(seq))

            return {key: torch.tensor([pad(r[key], value) for r in rows])
                    for key, value in (("input_ids", 0), ("attention_mask", 0), ("labels", -100))}

        loader = torch.utils.data.DataLoader(loaded["train"], batch_size=4, collate_fn=collate)
        batches = list(loader)
        assert sum(b["input_ids"].shape[0] for b in batches) == loaded["train"].num_rows
        assert all((b["labels"] != -100).any() for b in batches)
    assert result.report.tokens.packing_efficiency is not None


def test_missing_tokenizer_stops_before_reading(tmp_path, write_mix, monkeypatch, flow_cli):
    monkeypatch.setenv(ENV, str(tmp_path / "no-such-tokenizer"))
    with pytest.raises(TokenizerError, match="set INSTRUCT_PIPELINE_TOKENIZER=/path/to/that/folder"):
        load_tokenizer("whatever")
    write_jsonl(tmp_path / "rows.jsonl", [{"instruction": "a", "input": "", "output": "b"}])
    mix = write_mix({"name": "t", "sources": [{"name": "s", "path": "rows.jsonl"}], "tokenize": {}})
    result = flow_cli("build", "--mix", str(mix))
    assert result.exit_code == 2 and "cannot load the tokenizer" in result.output


def test_alpaca_prompts_of_real_records_equal_a_plain_tokenizer_call(llama_tokenizer, shared_data):
    """The Alpaca preamble is tokenized once and the rest of the prompt glued after its newline: on real
    English and Chinese records, with and without input, the prompt ids equal tokenizing the whole prompt, and
    the answer's those of tokenizing the answer (the stage encodes without offsets, a faster call)."""
    import json

    rows = json.loads((shared_data / "alpaca-en" / "alpaca_data-00000-03252.json").read_text())[::3]
    rows += json.loads((shared_data / "alpaca-zh" / "zh-data-part-00.json").read_text())[::10]
    records = [{**record(r["instruction"].strip() or "x", r["input"].strip(), r["output"].strip() or "y"),
                "id": f"r{i}"} for i, r in enumerate(rows)]
    examples = tokenized(records, llama_tokenizer, cutoff_len=4096).examples
    assert examples.height == len(records) > 2000
    for rec, row in zip(records, examples.to_dicts(), strict=True):
        preamble = ALPACA_SYSTEM_WITH_INPUT if rec["input"] else ALPACA_SYSTEM
        user = f"{rec['instruction']}\n\n### Input:\n{rec['input']}" if rec["input"] else rec["instruction"]
        prompt = llama_tokenizer(f"{preamble}\n\n### Instruction:\n{user}\n\n### Response:\n").input_ids
        assert row["input_ids"][: len(prompt)] == prompt and row["labels"][len(prompt) - 1] == -100
        assert row["labels"][len(prompt)] != -100
        answer = llama_tokenizer(rec["output"], add_special_tokens=False).input_ids  # the stage: encode_batch_fast
        assert row["input_ids"][len(prompt):] == [*answer, llama_tokenizer.eos_token_id]


@pytest.mark.parametrize("template", ["alpaca", "llama2-chat", "llamafactory-alpaca", "llamafactory-llama2"])
def test_a_batch_renders_each_record_as_it_renders_alone(template):
    """Templates are rules applied to a whole batch (its exchanges sorted and joined): each record's segments,
    in order, are those it gets alone, whatever its neighbours' history and system."""
    names = sorted(RECORDS) * 2
    frame = pl.DataFrame([RECORDS[name] for name in names], schema=OUTPUT_SCHEMA)
    batch = templates.segments(frame, template, "Be brief.", mask_history=True)
    assert batch["row"].unique().to_list() == list(range(len(names)))
    for row, name in enumerate(names):
        mine = batch.filter(pl.col("row") == row)
        alone = templates.render(RECORDS[name], template, "Be brief.", mask_history=True)
        assert [(s.text, s.trained, s.glue, s.constant) for s in alone] == [
            (t, trained, kind == templates.Kind.GLUED, kind == templates.Kind.CONSTANT)
            for t, trained, kind in mine.select("text", "trained", "kind").iter_rows()]
        assert alone[-1].trained and sum(s.text == templates.Special.EOS for s in alone) == 1 + len(
            RECORDS[name]["history"])


def test_a_batch_gives_each_record_the_chat_messages_it_gets_alone():
    names = sorted(RECORDS) * 2
    frame = pl.DataFrame([RECORDS[name] for name in names], schema=OUTPUT_SCHEMA)
    batch = templates.chat_messages(frame, "Be brief.")
    alone = [templates.chat_messages(frame.slice(k, 1), "Be brief.")[0] for k in range(frame.height)]
    assert batch == alone
    history = batch[names.index("history")]
    assert [m["role"] for m in history] == ["system"] + ["user", "assistant"] * (1 + len(RECORDS["history"]["history"]))
    assert history[-1]["content"] == RECORDS["history"]["output"]


def test_tokenizing_pauses_the_cyclic_collector_and_restores_it(llama_tokenizer):
    """The stage's lists of ids trigger the cyclic collector hundreds of times (a quarter of its time at scale);
    tokenize() runs with it paused, gives the same examples, and leaves it as it found it."""
    frame = pl.DataFrame([{**RECORDS[name], "id": f"{name}#{k}"} for k in range(100) for name in RECORDS],
                         schema=OUTPUT_SCHEMA)
    spec, collections = TokenizeSpec(), []

    def count(phase, info):
        collections.append(info["generation"]) if phase == "start" else None

    gc.callbacks.append(count)
    try:
        unpaused = pl.concat([part.examples for part in tokenize.batches(frame, llama_tokenizer, spec, FiltersSpec())])
        assert len(collections) > 5  # without the pause, the collector runs
        collections.clear()
        paused = tokenize.tokenize(frame, llama_tokenizer, spec, FiltersSpec()).examples
        assert collections == [] and gc.isenabled()
        gc.disable()
        tokenize.tokenize(frame, llama_tokenizer, spec, FiltersSpec())
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.callbacks.remove(count)
    assert paused.equals(unpaused)


def test_records_too_long_in_train_and_eval_are_quarantined_with_their_text(tmp_path, write_mix, llama_tokenizer):
    """The tokenize stage sees two frames (train with its repeats, eval): a reject from either keeps its
    record's text, and with pii.redact_rejected the PII in it is replaced there."""
    rows = [{"instruction": f"Question {k} about item {k * 13}?", "input": "",
             "output": (f"Write to me{k}@example.com. " if k % 2 else "") + " ".join(f"w{k}x{j}" for j in range(
                 8 if k % 3 else 120))} for k in range(30)]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    mix = write_mix({"name": "t", "sources": [{"name": "s", "path": "rows.jsonl"}], "split": {"eval": 0.3},
                     "pii": {"action": "flag", "redact_rejected": True}, "dedup": {"near": False},
                     "tokenize": {"cutoff_len": 128}, "mixture": {"size": 40, "max_repeats": 2}})
    result = build.run(load_mix(mix), tokenizer=llama_tokenizer)
    too_long = result.rejected.filter(pl.col("stage") == "tokenize")
    assert set(too_long["reason"]) == {"too_long"} and too_long.height == 10
    assert too_long["original"].null_count() == 0
    by_id = {f"s#{k}": row for k, row in enumerate(rows)}
    from_eval = 9 - result.eval.height  # split.eval 0.3 of the 30 records
    assert 0 < from_eval < too_long.height  # rejects came from both frames
    for reject in too_long.iter_rows(named=True):
        original = by_id[reject["id"]]
        assert reject["original"].startswith(f'{{"instruction":"{original["instruction"]}"')
        assert "@example.com" not in reject["original"] and ("<EMAIL>" in reject["original"]) == ("@" in
                                                                                                  original["output"])
