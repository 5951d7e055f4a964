"""Hand-offs to the field's tools: the records' ``messages`` and ``history`` pairs, ``pipeline export`` for
LLaMA-Factory, axolotl, TRL, ShareGPT and Alpaca JSON, the dataset card that ``load_dataset`` and the Hub read,
and ``pipeline push`` against a local stand-in of the Hub's upload API."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import datasets
import polars as pl
import pytest
import yaml
from huggingface_hub import DatasetCard

from pipeline import build, chat_format, export, hub, writer
from pipeline.config import load_mix
from tests.conftest import write_jsonl

CHATS = [  # ShareGPT records: a system prompt, earlier turns, and one without either
    {"system": "You are a terse assistant.", "conversations": [
        {"from": "human", "value": "Name a prime."}, {"from": "gpt", "value": "Seven."},
        {"from": "human", "value": "Another one?"}, {"from": "gpt", "value": "Eleven."}]},
    {"conversations": [{"from": "human", "value": "Say hi in French."}, {"from": "gpt", "value": "Bonjour."}]},
    {"system": "Answer in one word.", "conversations": [
        {"from": "human", "value": "Sky colour?"}, {"from": "gpt", "value": "Blue."},
        {"from": "human", "value": "Grass colour?"}, {"from": "gpt", "value": "Green."},
        {"from": "human", "value": "Snow colour?"}, {"from": "gpt", "value": "White."}]},
]
ALPACA = [{"instruction": f"Add {k} and {k + 2}.", "input": "Show the sum only." if k % 2 else "",
           "output": f"{2 * k + 2}" if k != 5 else ""} for k in range(12)]  # sums#5 is quarantined: no answer


def expected_turns(chat: dict[str, Any]) -> list[tuple[str, str]]:
    return [("user" if m["from"] == "human" else "assistant", m["value"]) for m in chat["conversations"]]


@pytest.fixture
def built(tmp_path: Path, write_mix, llama_tokenizer) -> Path:
    """A build of chats (system prompts, history) and Alpaca records with inputs, tokenized and packed."""
    write_jsonl(tmp_path / "chats.jsonl", CHATS * 4)  # copies are exact duplicates: dedup keeps one
    write_jsonl(tmp_path / "sums.jsonl", ALPACA)
    mix = write_mix({"name": "handoff", "split": {"eval": 0.25}, "dedup": {"near": False},
                     "sources": [{"name": "chats", "path": "chats.jsonl", "format": "sharegpt", "license": "mit"},
                                 {"name": "sums", "path": "sums.jsonl", "license": "mit"}],
                     "tokenize": {"enabled": True, "packing": True, "cutoff_len": 256}})
    return writer.write(build.run(load_mix(mix), tokenizer=llama_tokenizer))


def records(folder: Path) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(folder / f"{split}.parquet") for split in ("train", "eval")])


def test_records_carry_messages_and_history_pairs(built: Path) -> None:
    rows = {r["id"]: r for r in records(built).to_dicts()}
    first = rows["chats#0"]
    assert first["history"] == [["Name a prime.", "Seven."]]
    assert [(m["role"], m["content"]) for m in first["messages"]] == [
        ("system", "You are a terse assistant."), *expected_turns(CHATS[0])]
    with_input = rows["sums#1"]
    assert [(m["role"], m["content"]) for m in with_input["messages"]] == [
        ("user", "Add 1 and 3.\nShow the sum only."), ("assistant", "4")]


def test_history_pairs_read_back_as_the_stages_use_them(built: Path) -> None:
    from pipeline.validate import HISTORY

    frame = chat_format.read_records([built / "train.parquet"])
    assert frame.schema["history"] == HISTORY
    again = chat_format.for_files(frame.drop("messages"))
    assert again["messages"].equals(pl.read_parquet(built / "train.parquet")["messages"])


def llama_factory_alpaca(row: dict[str, Any]) -> list[tuple[str, str]]:
    """LLaMA-Factory's AlpacaDatasetConverter (src/llamafactory/data/converter.py @ ff6d4d12e): history pairs as
    user/assistant turns, then "prompt\\nquery" and the response; the system column apart."""
    turns = []
    for old_prompt, old_response in row["history"]:  # a dict here would unpack to its keys: the old bug
        turns += [("user", old_prompt), ("assistant", old_response)]
    query = "\n".join(part for part in (row["instruction"], row["input"]) if part)
    return [("system", row["system"]), *turns, ("user", query), ("assistant", row["output"])] if row["system"] \
        else [*turns, ("user", query), ("assistant", row["output"])]


def test_export_llama_factory(built: Path) -> None:
    files = export.export(built, "llama-factory")
    out = files[0].parent
    info = json.loads((out / "dataset_info.json").read_text())
    config = yaml.safe_load((out / "llamafactory.yaml").read_text())
    assert config["dataset"] == "handoff" and config["eval_dataset"] == "handoff_eval"
    assert config["dataset_dir"] == str(out.resolve()) and config["cutoff_len"] == 256
    for name, entry in info.items():
        assert entry["formatting"] == "alpaca" and set(entry["columns"]) == {"prompt", "query", "response", "system",
                                                                              "history"}
        loaded = datasets.load_dataset("parquet", data_files=str(out / entry["file_name"]), split="train")
        for row in loaded:
            messages = pl.read_parquet(built / f"{'eval' if name.endswith('_eval') else 'train'}.parquet")
            assert llama_factory_alpaca(row) in [[(m["role"], m["content"]) for m in ms]
                                                 for ms in messages["messages"].to_list()]


def test_export_axolotl_trl_sharegpt_alpaca(built: Path) -> None:
    source = records(built)
    conversations = {tuple((m["role"], m["content"]) for m in ms) for ms in source["messages"].to_list()}

    axolotl = export.export(built, "axolotl")
    config = yaml.safe_load((axolotl[0].parent / "axolotl.yaml").read_text())
    entry = config["datasets"][0]  # axolotl docs, dataset-formats/conversation.qmd: chat_template type
    assert entry["type"] == "chat_template" and entry["field_messages"] == "messages"
    assert entry["message_property_mappings"] == {"role": "role", "content": "content"}
    loaded = datasets.load_dataset("parquet", data_files=entry["path"], split=entry["split"])
    assert {tuple((m["role"], m["content"]) for m in row["messages"]) for row in loaded} <= conversations
    assert len(config["test_datasets"]) == 1

    trl = export.export(built, "trl")
    dataset = datasets.load_from_disk(str(trl[0]))
    assert set(dataset) == {"train", "eval"} and dataset["train"].column_names == ["messages"]
    assert {tuple((m["role"], m["content"]) for m in row["messages"]) for row in dataset["train"]} <= conversations
    compile(trl[1].read_text(), str(trl[1]), "exec")  # the script is valid Python

    sharegpt = json.loads(export.export(built, "sharegpt")[0].read_text())
    for row in sharegpt:
        turns = [("user" if m["from"] == "human" else "assistant", m["value"]) for m in row["conversations"]]
        assert tuple(([("system", row["system"])] if row["system"] else []) + turns) in conversations

    alpaca = json.loads(export.export(built, "alpaca-json")[0].read_text())
    assert all(set(row) == {"instruction", "input", "output", "system", "history"} for row in alpaca)
    assert {tuple(llama_factory_alpaca(row)) for row in alpaca} <= conversations

    trl_data = pytest.importorskip("trl.data_utils", reason="TRL is in the dev extra (Python 3.11+)")
    assert all(trl_data.is_conversational(row) for row in dataset["train"])  # TRL's own check of the format


def test_export_refuses_what_is_not_a_build_or_not_an_export(built: Path, tmp_path: Path) -> None:
    with pytest.raises(export.ExportError, match="not a finished build"):
        export.export(tmp_path, "trl")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(export.ExportError, match="not an export of pipeline"):
        export.export(built, "sharegpt", mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    again = export.export(built, "sharegpt", tmp_path / "again")
    assert export.export(built, "sharegpt", tmp_path / "again") == again  # an earlier export is replaced


def test_the_card_is_what_load_dataset_and_the_hub_read(built: Path, tmp_path: Path) -> None:
    card = DatasetCard.load(built / "README.md")
    assert card.data.license == "mit" and card.data.task_categories == ["text-generation"]
    assert card.data.size_categories == ["n<1K"] and "en" in card.data.language
    (built / "tokenized" / "cache-1234.arrow").write_bytes(b"written by a trainer")
    loaded = datasets.load_dataset(str(built), cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"train", "eval"}
    assert loaded["train"].num_rows == pl.read_parquet(built / "train.parquet").height
    assert "messages" in loaded["eval"].column_names
    rejected = datasets.load_dataset(str(built), "rejected", cache_dir=str(tmp_path / "cache"))
    assert rejected["train"].num_rows == pl.read_parquet(built / "rejected.parquet").height


def test_a_build_without_eval_has_a_card_load_dataset_reads(tmp_path: Path, write_mix) -> None:
    write_jsonl(tmp_path / "sums.jsonl", ALPACA)
    mix = write_mix({"name": "noeval", "sources": [{"name": "sums", "path": "sums.jsonl"}]})
    out = writer.write(build.run(load_mix(mix)))
    card = DatasetCard.load(out / "README.md")
    assert card.data.license is None and [c["config_name"] for c in card.data.configs] == ["default", "rejected"]
    assert [s["split"] for s in card.data.configs[0]["data_files"]] == ["train"]
    assert list(datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))) == ["train"]


class StandInHub(BaseHTTPRequestHandler):
    """The endpoints huggingface_hub's create_repo and upload_folder call (every file is "regular": its bytes
    travel base64 in the commit's NDJSON); what each request carried is kept in ``received``."""

    received: dict[str, Any] = {}

    def do_POST(self) -> None:  # noqa: N802 (BaseHTTPRequestHandler's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        base = f"http://{self.headers['Host']}"
        if self.path == "/api/repos/create":
            self.received["create"] = json.loads(body)
            return self._send({"url": f"{base}/datasets/user/handoff"})
        if self.path == "/api/validate-yaml":
            self.received["card"] = json.loads(body)["content"]
            return self._send({"errors": [], "warnings": []})
        if "/preupload/" in self.path:
            files = json.loads(body)["files"]
            return self._send({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                         for f in files]})
        if "/commit/" in self.path:
            lines = [json.loads(line) for line in body.decode().splitlines() if line]
            self.received["commit"] = self.path, lines
            oid = "a" * 40
            return self._send({"commitUrl": f"{base}/datasets/user/handoff/commit/{oid}", "commitOid": oid})
        self.send_error(404)

    def _send(self, value: dict[str, Any]) -> None:
        data = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stand_in_hub() -> Iterator[str]:
    StandInHub.received = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandInHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_push_uploads_every_file_of_the_build_in_one_commit(built: Path, stand_in_hub: str) -> None:
    url = hub.push(built, "user/handoff", private=True, token="hf_test", endpoint=stand_in_hub)
    assert url.endswith("/datasets/user/handoff/commit/" + "a" * 40)
    received = StandInHub.received
    assert received["create"] == {"name": "handoff", "organization": "user", "visibility": "private",
                                  "type": "dataset"}
    assert received["card"] == (built / "README.md").read_text()
    path, lines = received["commit"]
    assert path == "/api/datasets/user/handoff/commit/main"
    uploaded = {line["value"]["path"]: base64.b64decode(line["value"]["content"])
                for line in lines if line["key"] == "file"}
    on_disk = {p.relative_to(built).as_posix(): p.read_bytes() for p in built.rglob("*")
               if p.is_file() and not any(part.startswith(".") for part in p.relative_to(built).parts)}
    assert uploaded == on_disk and "README.md" in uploaded and "train.parquet" in uploaded


def test_push_refuses_a_folder_that_is_not_a_build(tmp_path: Path) -> None:
    with pytest.raises(hub.PushError, match="not a finished build"):
        hub.push(tmp_path, "user/x", token="hf_test", endpoint="http://127.0.0.1:9")


def test_real_multi_turn_chats_survive_the_llama_factory_export(shared_data: Path, tmp_path: Path, write_mix) -> None:
    """FastChat's dummy conversations (500, multi-turn): every turn of every kept record comes back, in order,
    through LLaMA-Factory's alpaca converter over the exported files."""
    source = json.loads((shared_data / "fastchat" / "dummy_conversation.json").read_text())
    path = str(shared_data / "fastchat" / "dummy_conversation.json")
    mix = write_mix({"name": "fastchat", "sources": [{"name": "fc", "path": path, "format": "sharegpt"}],
                     "dedup": {"exact": False, "near": False}})
    out = writer.write(build.run(load_mix(mix)))
    files = export.export(out, "llama-factory")
    kept = pl.read_parquet(out / "train.parquet")["id"].to_list()  # <source>#<item index>, in the export's order
    exported = datasets.load_dataset("parquet", data_files=str(files[0]), split="train")
    multi_turn = 0
    for row, record_id in zip(exported, kept, strict=True):
        original = source[int(record_id.split("#")[1])]
        assert llama_factory_alpaca(row) == expected_turns(original)
        multi_turn += len(row["history"]) > 0
    assert exported.num_rows > 400 and multi_turn > 100


def test_the_export_and_push_commands(built: Path, tmp_path: Path, cli, stand_in_hub: str, monkeypatch) -> None:
    done = cli("export", str(built), "--to", "llama-factory", "--out", str(tmp_path / "lf"))
    assert done.exit_code == 0 and (tmp_path / "lf" / "dataset_info.json").is_file()
    assert cli("export", str(built), "--to", "unsloth").exit_code == 2
    assert cli("export", str(tmp_path / "lf"), "--to", "trl").exit_code == 2  # not a build
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", stand_in_hub)  # what HfApi() reads when no endpoint is given
    pushed = cli("push", str(built), "user/handoff")
    assert pushed.exit_code == 0 and "user/handoff" in StandInHub.received["commit"][0]
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    assert cli("push", str(built), "user/handoff").exit_code == 1


def test_a_build_written_before_messages_exports_the_same(built: Path, tmp_path: Path) -> None:
    """Builds written before the messages column stored history as {user, assistant} structs: the export
    derives both shapes from them and writes what it writes for a build of today."""
    today = json.loads(export.export(built, "sharegpt", tmp_path / "today")[0].read_text())
    for split in ("train", "eval"):
        path = built / f"{split}.parquet"
        chat_format.read_records([path]).drop("messages").write_parquet(path)
    assert "messages" not in pl.read_parquet(built / "train.parquet").columns
    assert json.loads(export.export(built, "sharegpt", tmp_path / "older")[0].read_text()) == today
