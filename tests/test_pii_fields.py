"""PII in every text field of a record (system and each history turn, both sides, as well as instruction, input and
output), and ``pii.redact_rejected`` for rejected.parquet: unit checks and a real build of a ShareGPT mix whose
PII hides in system prompts and history, decoded back from tokenized/ with the LLaMA-2 tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import polars as pl
import pytest

from pipeline import build, pii, validate, writer
from pipeline.config import load_mix
from schemas.mix import PiiSpec
from tests.conftest import write_json, write_jsonl

EMAIL, PHONE, CN_ID, CARD = "li.wei@example.org", "13912345678", "11010519491231002X", "4111 1111 1111 1111"
SECRETS = (EMAIL, PHONE, CN_ID, CARD, CARD.replace(" ", ""))


def chat(rows: list[dict]) -> pl.DataFrame:
    """Canonical records with system and history (the shape validate leaves)."""
    return pl.DataFrame({
        "id": [f"c#{k}" for k in range(len(rows))], "source": "c", "task": "general",
        "instruction": [r.get("instruction", "Thanks.") for r in rows], "input": "",
        "output": [r.get("output", "You are welcome.") for r in rows],
        "system": [r.get("system") for r in rows],
        "history": [r.get("history", []) for r in rows],
        "origin": [f"f:{k + 1}" for k in range(len(rows))],
    }, schema_overrides={"history": validate.HISTORY, "system": pl.String})


RECORDS = [
    {"system": f"Escalate to {EMAIL} when unsure."},
    {"history": [{"user": f"My number is {PHONE}, call me.", "assistant": "Noted."},
                 {"user": "And my ID?", "assistant": f"Your ID is\n{CN_ID}."}]},
    {"history": [{"user": "Pay with what?", "assistant": f"The card {CARD}."}]},
    {"system": "Be brief.", "history": [{"user": "Hi", "assistant": "Hello"}]},
]


def no_secret(value: object) -> bool:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return not any(s in text or s in text.replace("\\n", "\n") for s in SECRETS)


def test_system_and_every_history_turn_are_redacted_and_counted():
    records = chat(RECORDS)
    found = pii.find_pii(records, PiiSpec())
    redacted, rejected, counts = found.kept, found.rejected, found.stats
    assert rejected.is_empty() and counts == {"cn_id": 1, "credit_card": 1, "email": 1, "phone": 1}
    assert no_secret(redacted.to_dicts())
    assert redacted["system"].to_list() == ["Escalate to <EMAIL> when unsure.", None, None, "Be brief."]
    assert redacted["history"][1].to_list() == [{"user": "My number is <PHONE>, call me.", "assistant": "Noted."},
                                                {"user": "And my ID?", "assistant": "Your ID is\n<ID>."}]
    assert redacted["history"][2].to_list() == [{"user": "Pay with what?", "assistant": "The card <CARD>."}]
    assert redacted.row(3) == records.row(3)  # clean records untouched, order kept


def test_quarantine_and_flag_see_system_and_history():
    found = pii.find_pii(chat(RECORDS), PiiSpec(action="quarantine"))
    kept, rejected, counts = found.kept, found.rejected, found.stats
    assert kept["id"].to_list() == ["c#3"]
    assert dict(zip(rejected["id"], rejected["reason"], strict=True)) == {"c#0": "pii:email", "c#1": "pii:cn_id",
                                                             "c#2": "pii:credit_card"}
    assert rejected.filter(pl.col("id") == "c#1")["detail"].item() == \
        "found: cn_id (history[1].assistant), phone (history[0].user)"
    assert no_secret(rejected.to_dicts())
    found = pii.find_pii(chat(RECORDS), PiiSpec(action="flag"))
    flagged, rejected, flag_counts = found.kept, found.rejected, found.stats
    assert flagged.equals(chat(RECORDS)) and rejected.is_empty() and flag_counts == counts


def test_redact_serialized_text_treats_json_escapes_as_boundaries():
    line = json.dumps({"conversations": [{"from": "human", "value": f"ID:\n{CN_ID}\tmail {EMAIL}"}]})
    redacted, found = pii.scan_serialized(line, pii.DETECTORS)
    assert CN_ID not in redacted and EMAIL not in redacted and found == {"cn_id": 1, "email": 1}
    assert json.loads(redacted)["conversations"][0]["value"] == "ID:\n<ID>\tmail <EMAIL>"


def test_redact_rejected_rewrites_original_and_detail_only():
    rows = pl.DataFrame({"id": ["a", "b", "c"], "source": "s", "stage": "validate", "reason": "x",
                         "detail": [f"turn 1: unknown speaker '{EMAIL}'", "fine", None], "origin": "f:1",
                         "original": [f'{{"text": "call {PHONE}"}}', '{"text": "v1.2.3"}', f"broken {CARD}"]})
    redacted = pii.redact_rejected(rows, PiiSpec())
    assert redacted["original"].to_list() == ['{"text": "call <PHONE>"}', '{"text": "v1.2.3"}', "broken <CARD>"]
    assert redacted["detail"].to_list() == ["turn 1: unknown speaker '<EMAIL>'", "fine", None]
    assert redacted.drop("original", "detail").equals(rows.drop("original", "detail"))
    assert pii.redact_rejected(rows, PiiSpec(types=["ip"])).equals(rows)


def conversation(system: str | None, turns: list[tuple[str, str]]) -> dict:
    messages = [{"from": "system", "value": system}] if system else []
    for user, assistant in turns:
        messages += [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}]
    return {"conversations": messages}


def pii_mix(tmp_path: Path, write_mix, action: str, redact_rejected: bool) -> Path:
    write_json(tmp_path / "chat.json", [
        conversation(f"You are a support agent; escalate to {EMAIL}.", [("Hello", "Hi, how can I help?"),
                                                                          ("Where is my parcel?", "It ships today.")]),
        conversation(None, [(f"My phone is {PHONE} and my card {CARD}.", "Thanks, noted."),
                            ("And the ID on file?", f"It is\n{CN_ID}."), ("Goodbye", "Goodbye, have a nice day.")]),
        conversation("Be brief.", [("What is the capital of France?", "Paris.")]),
        conversation(None, [(f"Card {CARD}, ok?", "Yes."), ("Write to me", "Dear {{name}}, thank you.")]),  # quality
        conversation(f"Mail {EMAIL}", [("Say nothing", "")]),  # empty output: rejected with its raw text
        {"conversations": [{"from": EMAIL, "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},  # detail names it
    ])
    write_jsonl(tmp_path / "alpaca.jsonl", [
        {"instruction": f"Name a colour number {k}.", "input": "", "output": f"Colour {k} is blue."} for k in range(6)])
    return write_mix({"name": f"pii-{action}", "seed": 3,
                      "sources": [{"name": "chat", "path": "chat.json"}, {"name": "alpaca", "path": "alpaca.jsonl"}],
                      "split": {"eval": 0.0},
                      "pii": {"action": action, **({"redact_rejected": True} if redact_rejected else {})},
                      "tokenize": {"template": "llama2-chat", "cutoff_len": 512}})


def test_build_leaks_no_pii_from_system_or_history(tmp_path, write_mix, llama_tokenizer):
    result = build.run(load_mix(pii_mix(tmp_path, write_mix, "redact", True)), tokenizer=llama_tokenizer)
    out = writer.write(result)
    train = pl.read_parquet(out / "train.parquet")
    assert train.height == 9 and no_secret(train.to_dicts())
    assert {"<EMAIL>", "<PHONE>", "<ID>", "<CARD>"} <= {t for t in ("<EMAIL>", "<PHONE>", "<ID>", "<CARD>")
                                                         if t in json.dumps(train.to_dicts())}
    decoded = [llama_tokenizer.decode(row["input_ids"], skip_special_tokens=True)
               for row in datasets.load_from_disk(str(out / "tokenized"))["train"]]
    assert len(decoded) == 9 and no_secret(decoded) and any("<PHONE>" in text for text in decoded)
    rejected = pl.read_parquet(out / "rejected.parquet")
    assert sorted(rejected["reason"]) == ["bad_conversation:unknown_role", "empty_output", "unfilled_placeholder"]
    assert no_secret(rejected.to_dicts())
    assert rejected.filter(pl.col("reason") == "bad_conversation:unknown_role")["detail"].item() == \
        "turn 0: unknown speaker '<EMAIL>'"
    assert "<CARD>" in rejected.filter(pl.col("reason") == "unfilled_placeholder")["original"].item()
    assert "<EMAIL>" in rejected.filter(pl.col("reason") == "empty_output")["original"].item()
    assert result.report.pii.found == {"cn_id": 1, "credit_card": 1, "email": 1, "phone": 1}
    assert set(pl.read_parquet(out / "duplicates.parquet").columns) <= {
        "id", "source", "kept_id", "kept_source", "kept_in", "kind", "similarity"}  # ids only, never text
    reports = "".join((out / name).read_text(encoding="utf-8") for name in ("report.json", "report.md", "report.html"))
    assert no_secret(reports)


def test_without_redact_rejected_the_originals_keep_their_text(tmp_path, write_mix):
    result = build.run(load_mix(pii_mix(tmp_path, write_mix, "redact", False)))
    assert CARD in result.rejected.filter(pl.col("reason") == "unfilled_placeholder")["original"].item()
    assert no_secret(result.train.to_dicts())


def test_quarantine_sees_history_and_system_and_redacts_the_quarantined(tmp_path, write_mix):
    result = build.run(load_mix(pii_mix(tmp_path, write_mix, "quarantine", True)))
    reasons = dict(zip(result.rejected["reason"], result.rejected["detail"], strict=True))
    assert {"pii:email", "pii:cn_id"} <= set(reasons) and "empty_output" in reasons
    assert reasons["pii:cn_id"] == "found: cn_id (history[1].assistant), credit_card (history[0].user), " \
                                   "phone (history[0].user)"
    assert result.train.height == 7 and no_secret(result.train.to_dicts())
    assert no_secret(result.rejected.to_dicts())
    quarantined = result.rejected.filter(pl.col("stage") == "pii")["original"].to_list()
    assert any("<ID>" in text for text in quarantined) and any("<EMAIL>" in text for text in quarantined)


@pytest.mark.parametrize("action", ["quarantine", "flag"])
def test_quarantine_keeps_originals_unless_told(tmp_path, write_mix, action):
    result = build.run(load_mix(pii_mix(tmp_path, write_mix, action, False)))
    assert not no_secret(result.rejected.to_dicts())  # the default keeps rejected rows as they were read
