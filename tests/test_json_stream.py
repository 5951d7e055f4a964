"""The streaming JSON reader: values, source text, line numbers, errors with line and column, lenient mode."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.io import json_stream
from pipeline.io.json_stream import MalformedJSONError, iter_json_batches
from tests.conftest import write_json


@dataclass
class Item:
    value: Any
    line: int
    text: str | None = None
    error: str | None = None


def iter_json_items(path: Path, lenient: bool = False, batch_size: int = 7) -> list[Item]:
    """Flatten the reader's batches (small, to cross batch boundaries too) into one item per element."""
    items = []
    for batch in iter_json_batches(path, lenient, batch_size):
        for pos, (value, line) in enumerate(zip(batch.values, batch.lines, strict=True)):
            text, error = batch.bad.get(pos, (batch.original(pos), None))
            items.append(Item(value, line, text, error))
    return items


ROWS = [{"instruction": f"Task {i}", "input": "", "output": "é" * i + "\n}" * (i % 3)} for i in range(40)]


@pytest.fixture(params=[1 << 18, 37], ids=["default-block", "tiny-block"])
def block(request, monkeypatch):
    """Tiny blocks force every element across a buffer boundary: the refill path must give the same items."""
    monkeypatch.setattr(json_stream, "BLOCK_CHARS", request.param)
    return request.param


def test_json_list_items_keep_value_text_and_line(tmp_path, block):
    path = write_json(tmp_path / "a.json", ROWS)
    items = list(iter_json_items(path))
    assert [i.value for i in items] == ROWS
    assert [json.loads(i.text) for i in items] == ROWS
    lines = path.read_text(encoding="utf-8").split("\n")
    assert all(lines[i.line - 1].strip() == "{" for i in items)


def test_compact_and_empty_lists(tmp_path, block):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(ROWS[:3]) + "\n")
    assert [i.value for i in iter_json_items(path)] == ROWS[:3]
    path.write_text("  [ ]  ")
    assert list(iter_json_items(path)) == []


def test_jsonl_skips_blank_lines_and_numbers_by_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\r\n')
    items = list(iter_json_items(path))
    assert [(i.line, i.value) for i in items] == [(1, {"a": 1}), (3, {"a": 2})]


def test_strict_error_names_file_line_and_column(tmp_path, block):
    path = tmp_path / "a.json"
    path.write_text('[\n  {"a": 1},\n  {"a": 2,,}\n]\n')
    with pytest.raises(MalformedJSONError) as err:
        list(iter_json_items(path))
    assert (err.value.line, err.value.column) == (3, 11)
    assert str(err.value) == (
        f"{path}: line 3, column 11: Expecting property name enclosed in double quotes. "
        "Set 'lenient: true' on this source to keep its valid records and quarantine the rest."
    )


def test_jsonl_error_names_line_and_column(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n{"a": "cut\n{"a": 3}\n')
    with pytest.raises(MalformedJSONError, match=r"a.jsonl: line 2, column 11: unexpected end of data"):
        list(iter_json_items(path))
    items = list(iter_json_items(path, lenient=True))
    assert [i.value for i in items] == [{"a": 1}, None, {"a": 3}]
    assert items[1].text == '{"a": "cut' and items[1].error == "line 2, column 11: unexpected end of data"


def test_trailing_comma_is_an_error_unless_lenient(tmp_path, block):
    path = tmp_path / "a.json"
    path.write_text('[\n  {"a": 1},\n  {"a": 2},\n]\n')
    with pytest.raises(MalformedJSONError, match="line 4, column 1: trailing comma before ']'"):
        list(iter_json_items(path))
    assert [i.value for i in iter_json_items(path, lenient=True)] == [{"a": 1}, {"a": 2}]


def test_lenient_quarantines_a_broken_element_and_reads_on(tmp_path, block):
    text = json.dumps(ROWS[:3], indent=2).replace('"Task 1"', '"Task 1" "oops"')
    path = tmp_path / "a.json"
    path.write_text(text)
    items = list(iter_json_items(path, lenient=True))
    assert [i.value for i in items] == [ROWS[0], None, ROWS[2]]
    bad = items[1]
    assert bad.error == "line 8, column 29: Expecting ',' delimiter"
    assert '"Task 1" "oops"' in bad.text and bad.text.startswith("{") and bad.text.endswith("}")


def test_unclosed_list(tmp_path, block):
    path = tmp_path / "a.json"
    path.write_text('[{"a": 1}, {"a": 2}')
    with pytest.raises(MalformedJSONError, match="the list is not closed"):
        list(iter_json_items(path))


def test_real_file_with_trailing_comma(shared_data: Path):
    path = shared_data / "alpaca-zh" / "alpaca_zh-09407-12345.json"
    with pytest.raises(MalformedJSONError) as err:
        list(iter_json_items(path))
    assert (err.value.line, err.value.column, err.value.problem) == (14007, 1, "trailing comma before ']'")
    items = list(iter_json_items(path, lenient=True))
    assert len(items) == 2801 and all(i.error is None for i in items)


def _reference(text: str) -> tuple[list[Any], list[int]]:
    """Values and start lines of a JSON list's elements, decoded one by one: the oracle for the fast paths."""
    decoder, values, lines = json.JSONDecoder(), [], []
    pos = text.index("[") + 1
    while True:
        while text[pos] in " \t\r\n,":
            pos += 1
        if text[pos] == "]":
            return values, lines
        value, end = decoder.raw_decode(text, pos)
        values.append(value)
        lines.append(text.count("\n", 0, pos) + 1)
        pos = end


texts = st.text(alphabet=st.sampled_from(list('ab }{]["\\,\n\t') + ["é", "中", "😀"]), max_size=12)
elements = st.one_of(
    st.dictionaries(st.sampled_from(["instruction", "input", "output"]), texts, max_size=3),
    st.dictionaries(st.just("history"), st.lists(st.lists(texts, max_size=2), max_size=2), max_size=1),
    texts, st.integers(), st.none(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(elements, max_size=25), indent=st.sampled_from([None, 0, 1, 2, "\t"]),
       block=st.sampled_from([5, 64, 1 << 18]), batch_size=st.sampled_from([1, 3, 50_000]))
def test_any_layout_and_block_size_reads_like_the_reference(tmp_path, monkeypatch, rows, indent, block, batch_size):
    monkeypatch.setattr(json_stream, "BLOCK_CHARS", block)
    text = json.dumps(rows, indent=indent, ensure_ascii=False)
    path = tmp_path / "p.json"
    path.write_text(text, encoding="utf-8")
    batches = list(iter_json_batches(path, batch_size=batch_size))
    assert ([v for b in batches for v in b.values], [n for b in batches for n in b.lines]) == _reference(text)
    assert [b.first_index for b in batches] == [sum(len(b) for b in batches[:i]) for i in range(len(batches))]


def test_error_column_on_a_long_single_line(tmp_path, block):
    text = json.dumps(ROWS, ensure_ascii=False)
    cut = text.rindex("{") + 1
    broken = text[:cut] + "@" + text[cut:]
    path = tmp_path / "a.json"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(MalformedJSONError) as err:
        list(iter_json_batches(path))
    assert err.value.line == 1 and err.value.column == broken.index("@") + 1


def test_invalid_utf8_line_is_a_malformed_line(tmp_path):
    """A line cut inside a multi-byte character: strict names file, line and column; lenient quarantines it."""
    path = tmp_path / "cut.jsonl"
    path.write_bytes(b'{"instruction": "a", "output": "b"}\n{"instruction": "\xe4\xbd", "output": "c"}\n'
                     b'{"instruction": "d", "output": "e"}\n')
    with pytest.raises(MalformedJSONError, match=r"cut.jsonl: line 2, column 18: invalid UTF-8 \(byte 0xe4\)"):
        list(iter_json_batches(path))
    (batch,) = iter_json_batches(path, lenient=True)
    assert batch.values[0]["output"] == "b" and batch.values[1] is None and batch.values[2]["output"] == "e"
    assert batch.lines == [1, 2, 3] and "invalid UTF-8" in batch.bad[1][1]


def test_invalid_utf8_in_a_json_list_names_its_line(tmp_path):
    path = tmp_path / "cut.json"
    path.write_bytes(b'[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "\xff", "output": "c"}\n]\n')
    with pytest.raises(MalformedJSONError, match=r"cut.json: line 3, column 20: invalid UTF-8 \(byte 0xff\)"):
        list(iter_json_batches(path, lenient=True))


def test_malformed_json_error_survives_pickling(tmp_path):
    """Worker processes and Dask workers send the error back pickled; it must arrive whole."""
    import pickle

    error = pickle.loads(pickle.dumps(MalformedJSONError(tmp_path / "a.jsonl", 3, 7, "unexpected end of data")))
    assert (error.line, error.column, error.problem) == (3, 7, "unexpected end of data")
    assert str(error).startswith(f"{tmp_path / 'a.jsonl'}: line 3, column 7: unexpected end of data")


GOOD = ['{"instruction": "Say hi", "input": "", "output": "hi"}',
        '{"instruction": "Say ho", "input": "", "output": "ho"}']


def _nested(depth: int) -> str:
    return '{"instruction": "x", "input": "", "output": ' + "[" * depth + "]" * depth + "}"


SURROGATE = '{"instruction": "a \\ud800 b", "input": "", "output": "c"}'  # a lone surrogate escape


@pytest.mark.parametrize("bad, problem, offset", [
    (SURROGATE, "no low surrogate in string", SURROGATE.index("\\ud800")),
    (_nested(5_000), "depth limit exceeded", 0),
], ids=["lone-surrogate", "nested-5000"])
def test_lone_surrogate_and_deep_nesting_in_a_list_are_malformed_elements(tmp_path, block, bad, problem, offset):
    """The standard library decodes "\\ud800" into a string nothing can encode (UnicodeEncodeError later) and
    recurses once per level (RecursionError): JSON Lines (orjson) already calls both malformed; a list must too."""
    path = tmp_path / "a.json"
    path.write_text("[\n  " + ",\n  ".join([GOOD[0], bad, GOOD[1]]) + "\n]\n", encoding="utf-8")
    with pytest.raises(MalformedJSONError) as err:
        list(iter_json_items(path))
    assert (err.value.line, err.value.column, err.value.problem) == (3, 3 + offset, problem)
    items = list(iter_json_items(path, lenient=True))
    assert [i.value for i in items] == [json.loads(GOOD[0]), None, json.loads(GOOD[1])]
    assert items[1].text == bad and items[1].error == f"line 3, column {3 + offset}: {problem}"


def test_lone_surrogate_in_a_one_line_list_quarantines_only_its_element(tmp_path, block):
    path = tmp_path / "a.json"
    path.write_text("[" + ", ".join([GOOD[0], SURROGATE, GOOD[1]]) + "]", encoding="utf-8")
    items = list(iter_json_items(path, lenient=True))
    assert [i.value for i in items] == [json.loads(GOOD[0]), None, json.loads(GOOD[1])]
    assert items[1].text == SURROGATE


def test_a_surrogate_pair_is_still_read(tmp_path, block):
    path = tmp_path / "a.json"
    path.write_text('[\n  {"output": "\\ud83d\\ude00"},\n  {"output": "\\\\ud800 is text"}\n]\n')
    assert [i.value for i in iter_json_items(path)] == [{"output": "😀"}, {"output": "\\ud800 is text"}]


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_original_text_of_a_value_nested_deeper_than_orjson_writes(tmp_path, suffix):
    """orjson writes at most 254 levels; the quarantine's copy of a 600-deep record must not crash the build."""
    line = _nested(600)
    path = tmp_path / f"deep{suffix}"
    path.write_text(f"[\n  {GOOD[0]},\n  {line}\n]\n" if suffix == ".json" else f"{GOOD[0]}\n{line}\n")
    (batch,) = iter_json_batches(path)
    assert json.loads(batch.original(1)) == json.loads(line)


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
def test_build_and_audit_quarantine_a_lone_surrogate_and_a_100000_deep_element(tmp_path, write_mix, request, strict):
    """Through ``pipeline build`` and ``pipeline audit``: one bad element used to crash the whole run
    (UnicodeEncodeError building the records frame, RecursionError in the decoder)."""
    from pipeline import audit, build
    from pipeline.config import load_mix

    deep = _nested(100_000)
    path = tmp_path / "bad.json"
    path.write_text("[\n  " + ",\n  ".join([GOOD[0], SURROGATE, deep, GOOD[1]]) + "\n]\n", encoding="utf-8")
    mix = write_mix({"name": "t", "sources": [{"name": "s", "path": "bad.json", "lenient": not strict}]})
    if strict:
        result = request.getfixturevalue("flow_cli")("build", "--mix", str(mix))  # the server only when a flow runs
        assert result.exit_code == 1
        assert f"{path}: line 3, column {3 + SURROGATE.index(chr(92))}: no low surrogate in string" in result.output
        return
    result = build.run(load_mix(mix))
    assert result.train.height == 2 and result.report.ledger[0].balanced
    bad = result.rejected.select("reason", "origin", "detail").to_dicts()
    assert bad == [
        {"reason": "malformed_json", "origin": "bad.json:3",
         "detail": f"line 3, column {3 + SURROGATE.index(chr(92))}: no low surrogate in string"},
        {"reason": "malformed_json", "detail": "line 4, column 3: depth limit exceeded", "origin": "bad.json:4"},
    ]
    assert result.rejected["original"].to_list() == [SURROGATE, deep]
    report = audit.run(["bad.json"], None, None, tmp_path)
    assert report.totals["items"] == 4 and report.totals["records"] == 2
