"""Validation reasons, normalization repairs and the fate ledger, on real code paths."""

from __future__ import annotations

import json

import polars as pl
import pytest

from pipeline import build, ledger
from pipeline.config import load_mix
from tests.conftest import write_jsonl

GOOD = {"instruction": "Name a prime.", "input": "", "output": "7"}


@pytest.fixture
def build_rows(tmp_path, write_mix):
    def run(rows, fmt="auto", **spec):
        write_jsonl(tmp_path / "rows.jsonl", rows)
        mix = write_mix({"name": "t", "sources": [{"name": "s", "path": "rows.jsonl", "format": fmt}], **spec})
        return build.run(load_mix(mix))
    return run


@pytest.mark.parametrize("row, reason, detail", [
    ({"instruction": "Hi", "input": "", "output": ""}, "empty_output", "output is empty after normalization"),
    ({"instruction": "  \u200b\t", "input": "", "output": "x"}, "empty_instruction",
     "instruction is empty after normalization"),
    ({"instruction": "Hi", "input": "", "output": " \r\n "}, "empty_output", "output is empty after normalization"),
    ({"input": "", "output": "x"}, "missing_field:instruction", "instruction: Field required"),
    ({"instruction": "Hi", "input": "", "output": 42}, "wrong_type:output",
     "output: Input should be a valid string (got int)"),
    ({"instruction": "Hi", "input": "", "output": None}, "wrong_type:output",
     "output: Input should be a valid string (got null)"),
    ({"instruction": "Hi", "input": ["a"], "output": "x"}, "wrong_type:input",
     "input: Input should be a valid string (got list)"),
    ({"instruction": "Hi", "input": "", "output": "x", "history": "earlier"}, "wrong_type:history",
     "history: Input should be a valid list (got str)"),
    ({"instruction": "Hi", "input": "", "output": "x", "history": [["q", ""]]}, "empty_history_turn",
     "history_turn is empty after normalization"),
])
def test_each_reject_reason_with_its_detail(build_rows, row, reason, detail):
    result = build_rows([GOOD, row])
    assert result.train["instruction"].to_list() == ["Name a prime."]
    [rejected] = result.rejected.to_dicts()
    assert (rejected["id"], rejected["stage"], rejected["reason"], rejected["detail"]) == (
        "s#1", "validate" if reason != "malformed_json" else "ingest", reason, detail)
    assert rejected["origin"] == "rows.jsonl:2"
    assert json.loads(rejected["original"]) == row  # the row exactly as written


def test_all_problems_of_a_record_are_listed(build_rows):
    [rejected] = build_rows([{"input": 3, "output": 4}]).rejected.to_dicts()
    assert rejected["reason"] == "missing_field:instruction"
    assert rejected["detail"] == ("instruction: Field required; input: Input should be a valid string (got int); "
                                  "output: Input should be a valid string (got int)")


def test_ingest_reasons(build_rows):
    result = build_rows([GOOD, [1, 2], "text"])
    assert result.rejected.select("id", "stage", "reason").rows() == [
        ("s#1", "ingest", "not_an_object"), ("s#2", "ingest", "not_an_object")]


def test_missing_input_is_filled_unless_required(build_rows):
    row = {"instruction": "Hi", "output": "Hello"}
    result = build_rows([row])
    assert result.train["input"].to_list() == [""]
    assert result.report.sources[0].repairs == {"missing_input": 1}
    strict = build_rows([row], validate={"require_input_key": True})
    assert strict.rejected.select("reason", "detail").rows() == [
        ("missing_field:input", "input: Field required (validate.require_input_key is on)")]


def test_normalization_repairs(build_rows):
    rows = [
        {"instruction": "Cafe\u0301 menu?", "input": "<noinput>", "output": "Line one\r\nLine two\x07"},
        {"instruction": "  Padded  ", "input": "No input.", "output": "def f():\n    return 1\n"},
        {"instruction": "Keep", "input": "N/A is an abbreviation", "output": "\ufeffok"},
    ]
    result = build_rows(rows)
    assert result.train.select("instruction", "input", "output").rows() == [
        ("Café menu?", "", "Line one\nLine two"),
        ("Padded", "", "def f():\n    return 1"),  # inner indentation kept
        ("Keep", "N/A is an abbreviation", "ok"),
    ]
    assert result.report.sources[0].repairs == {
        "newlines": 1, "control_chars": 2, "unicode_normalized": 1, "whitespace_trimmed": 1, "placeholder_input": 2}


def test_self_instruct_ids_and_ledger(build_rows):
    rows = [{"instruction": "Add.", "instances": [{"input": "1 2", "output": "3"}, {"input": "2 2", "output": ""}]}]
    result = build_rows(rows)
    assert result.train["id"].to_list() == ["s#0.0"]
    assert result.rejected.select("id", "reason").rows() == [("s#0.1", "empty_output")]
    assert result.report.ledger[0].model_dump() == {
        "source": "s", "input": 2, "kept": 1, "rejected": 1, "duplicate": 0, "sampled_out": 0, "balanced": True}


def test_ledger_catches_a_lost_and_a_double_fate():
    fates = pl.DataFrame({"id": ["a#0", "a#1", "a#2"], "source": ["a"] * 3, "fate": ["kept", "kept", "rejected"]})
    rows = ledger.reconcile({"a": 3}, fates)
    assert rows[0].balanced
    with pytest.raises(ledger.LedgerError, match=r"a: input 4 != kept 2 \+ rejected 1 \+ duplicate 0"):
        ledger.reconcile({"a": 4}, fates)
    twice = pl.concat([fates, fates.head(1).with_columns(fate=pl.lit("rejected"))])
    with pytest.raises(ledger.LedgerError, match="1 record\\(s\\) have more than one fate"):
        ledger.reconcile({"a": 3}, twice)


def test_funnel_counts_by_stage(build_rows):
    result = build_rows([GOOD, "x", {"instruction": "Hi", "input": "", "output": ""}])
    overall = [f for f in result.report.funnel if f.source is None]
    assert [(f.stage, f.input, f.kept, f.rejected, f.reasons) for f in overall] == [
        ("ingest", 3, 2, 1, {"not_an_object": 1}),
        ("validate", 2, 1, 1, {"empty_output": 1}),
        ("language", 1, 1, 0, {}),
        ("quality", 1, 1, 0, {}),
        ("pii", 1, 1, 0, {}),
        ("dedup", 1, 1, 0, {}),
        ("decontaminate", 1, 1, 0, {}),
        ("mixture", 1, 1, 0, {}),
        ("tokenize", 1, 1, 0, {}),
    ]
