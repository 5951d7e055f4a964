"""Format adapters: each common layout maps to canonical records the way LLaMA-Factory reads it."""

from __future__ import annotations

import json

import pytest

from pipeline.formats import NO_ALIASES, Aliases, FormatError, adapt_batch, detect_format, find_aliases


def adapt(fmt: str, row: dict, columns: dict | None = None) -> list[dict]:
    """The records of one row; a rejected row raises its FormatError; repairs are listed in each record."""
    out = adapt_batch(fmt, [row], {}, columns or {})
    if out.rejects:
        [(_, reason, detail)] = out.rejects
        raise FormatError(reason, detail)
    return [{**r, "repairs": sorted(out.repairs.elements())} for r in out.records]


def test_alpaca_with_history_and_system():
    row = {"instruction": "And 3+3?", "input": "", "output": "6", "system": "Be brief.",
           "history": [["1+1?", "2"], ["2+2?", "4"]]}
    assert adapt("alpaca", row) == [{
        "instruction": "And 3+3?", "input": "", "output": "6", "system": "Be brief.",
        "history": [{"user": "1+1?", "assistant": "2"}, {"user": "2+2?", "assistant": "4"}], "repairs": [],
    }]
    assert row["history"] == [["1+1?", "2"], ["2+2?", "4"]]  # the source row is never changed


def test_alpaca_empty_history_string_is_a_repair_and_a_missing_input_is_left_for_validate():
    [record] = adapt("alpaca", {"instruction": "Hi", "output": "Hello", "history": ""})
    assert record == {"instruction": "Hi", "output": "Hello", "repairs": ["empty_history_string"]}


def test_field_map_reads_gpteacher_style_keys():
    row = {"prompt": "Name a colour.", "context": "", "response": "Blue."}
    [record] = adapt("alpaca", row, {"instruction": "prompt", "input": "context", "output": "response"})
    assert (record["instruction"], record["input"], record["output"]) == ("Name a colour.", "", "Blue.")


def test_non_objects_and_unparsable_rows_are_rejected_by_position():
    out = adapt_batch("alpaca", [{"instruction": "a", "output": "b"}, [1], None, None], {3: ("{oops", "bad")}, {})
    assert out.positions == [0]
    assert out.rejects == [(1, "not_an_object", "expected a JSON object, got list"),
                           (2, "not_an_object", "expected a JSON object, got null"), (3, "malformed_json", "bad")]


def test_sharegpt_multi_turn_with_system():
    row = {"conversations": [
        {"from": "system", "value": "You are terse."},
        {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"},
        {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Bye!"},
    ]}
    [record] = adapt("sharegpt", row)
    assert record == {"instruction": "Bye", "input": "", "output": "Bye!", "system": "You are terse.",
                      "history": [{"user": "Hi", "assistant": "Hello"}], "repairs": []}


def test_openai_messages_with_content_parts():
    row = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "value": "!"}]},
                        {"role": "assistant", "content": "Hello"}]}
    [record] = adapt("openai", row)
    assert (record["instruction"], record["output"]) == ("Hi\n!", "Hello")
    image = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]},
                          {"role": "assistant", "content": "A cat."}]}
    with pytest.raises(FormatError) as err:
        adapt("openai", image)
    assert err.value.reason == "unsupported_content"


@pytest.mark.parametrize("turns, reason", [
    ([{"from": "human", "value": "Hi"}], "bad_conversation:no_answer"),
    ([{"from": "gpt", "value": "Hi"}, {"from": "human", "value": "?"}], "bad_conversation:not_alternating"),
    ([{"from": "alien", "value": "Hi"}, {"from": "gpt", "value": "?"}], "bad_conversation:unknown_role"),
    ([{"from": "human", "value": "Hi"}, {"from": "system", "value": "x"}], "bad_conversation:late_system"),
    ([], "bad_conversation:empty"),
    ("not a list", "missing_field:conversations"),
])
def test_sharegpt_shape_errors(turns, reason):
    with pytest.raises(FormatError) as err:
        adapt("sharegpt", {"conversations": turns})
    assert err.value.reason == reason


def test_self_instruct_gives_a_record_per_instance():
    row = {"instruction": "Add.", "instances": [{"input": "1 2", "output": "3"}, {"input": "2 2", "output": "4"}]}
    out = adapt_batch("self_instruct", [row], {}, {})
    assert [(r["input"], r["output"]) for r in out.records] == [("1 2", "3"), ("2 2", "4")]
    assert (out.positions, out.subs) == ([0, 0], [0, 1])


@pytest.mark.parametrize("row, fmt", [
    ({"conversations": []}, "sharegpt"), ({"messages": []}, "openai"), ({"instances": []}, "self_instruct"),
    ({"question_id": 81, "turns": ["q"]}, "mt_bench"), ({"instruction": "x", "output": "y"}, "alpaca"),
])
def test_detection_by_keys(row, fmt):
    assert detect_format(row, {}) == fmt


def test_real_tool_calls_alternate_and_keep_tools(shared_data):
    rows = json.loads((shared_data / "llama-factory" / "glaive_toolcall_en_demo.json").read_text())
    out = adapt_batch("sharegpt", rows, {}, {})
    records = [{**r, "repairs": list(out.repairs.elements())} for r in out.records]
    assert len(records) == 300 and not out.rejects
    with_tools = [r for r in records if r.get("system", "").startswith("Tools:\n")]
    assert len(with_tools) == records[0]["repairs"].count("tools_in_system") > 0


def test_real_v1_messages_with_parts(shared_data):
    lines = (shared_data / "llama-factory" / "v1_sft_demo.jsonl").read_text().splitlines()
    records = adapt_batch("openai", [json.loads(line) for line in lines], {}, {}).records
    assert len(records) == 500 and records[0]["instruction"] == "hi"
    assert all(isinstance(r["output"], str) for r in records)


def test_tools_nested_past_orjsons_depth_limit_are_folded_into_the_system_prompt():
    """A ShareGPT `tools` value 300 levels deep crashed the build (orjson writes at most 254 levels)."""
    tools: list = []
    for _ in range(300):
        tools = [tools]
    turns = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]
    (record,) = adapt("sharegpt", {"conversations": turns, "tools": tools})
    assert record["system"] == "Tools:\n" + "[" * 301 + "]" * 301


@pytest.mark.parametrize("keys, columns, mapped, ambiguous", [
    (("instruction", "input", "response"), {}, [("output", "response")], []),  # GPTeacher
    (("instruction", "context", "response", "category"), {}, [("input", "context"), ("output", "response")], []),
    (("question", "answer"), {}, [("instruction", "question"), ("output", "answer")], []),
    (("prompt", "completion"), {}, [("instruction", "prompt"), ("output", "completion")], []),
    (("query", "target"), {}, [("instruction", "query"), ("output", "target")], []),
    # LLaMA-Factory names the input `query`: with `prompt` beside it, neither is guessed
    (("prompt", "query", "response"), {}, [("output", "response")], [("instruction", ("prompt", "query"))]),
    (("instruction", "response", "answer"), {}, [], [("output", ("response", "answer"))]),
    (("instruction", "input", "output", "response", "question"), {}, [], []),  # canonical keys are never replaced
    (("instruction", "response", "answer"), {"output": "answer"}, [], []),  # explicit columns win
    (("prompt", "question", "response"), {"input": "question"}, [("instruction", "prompt"), ("output", "response")],
     []),  # a key that columns names is no alias for another field
    (("instruction", "input", "output"), {}, [], []),
])
def test_aliases_from_a_rows_keys(keys, columns, mapped, ambiguous):
    found = find_aliases(dict.fromkeys(keys, "x"), columns)
    assert (list(found.mapped), list(found.ambiguous)) == (mapped, ambiguous)
    assert (found == NO_ALIASES) == (not mapped and not ambiguous)


def test_aliased_rows_are_read_and_counted():
    rows = [{"instruction": "Name a colour.", "input": "", "response": "Blue."},
            {"instruction": "Name a fruit.", "input": "", "output": "Apple."},  # read as the first row says: no output
            "not a row"]
    out = adapt_batch("alpaca", rows, {}, {}, Aliases(mapped=(("output", "response"),)))
    assert out.records == [{"instruction": "Name a colour.", "input": "", "output": "Blue."},
                           {"instruction": "Name a fruit.", "input": ""}]
    assert out.repairs == {"alias:output=response": 1}
    assert out.rejects == [(2, "not_an_object", "expected a JSON object, got str")]
    explicit = adapt_batch("alpaca", rows[:1], {}, {"output": "instruction"}, Aliases(mapped=(("output", "response"),)))
    assert explicit.records[0]["output"] == "Name a colour." and not explicit.repairs  # columns win over an alias


def test_an_ambiguous_field_rejects_every_row_naming_the_keys():
    rows = [{"instruction": "Hi", "response": "Hello", "answer": "Hey"}, {"instruction": "Bye", "response": "Bye"},
            None]
    out = adapt_batch("alpaca", rows, {2: ("{", "bad")}, {}, Aliases(ambiguous=(("output", ("response", "answer")),)))
    assert not out.records
    detail = ("keys 'response' and 'answer' could each be the output: name the one to read in the source's columns "
              "(output: response)")
    assert out.rejects == [(0, "ambiguous_field:output", detail), (1, "ambiguous_field:output", detail),
                           (2, "malformed_json", "bad")]
