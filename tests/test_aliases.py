"""Key aliases in a build: ``format: auto`` reads GPTeacher's ``response``, Dolly's ``context``, question/answer
sets... as the canonical fields, says so per source in report.json and report.md, rejects an ambiguous file
instead of guessing, lets explicit ``columns`` win, and leaves ``format: alpaca`` as written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline import build, file_units
from pipeline.config import load_mix
from pipeline.report import markdown
from tests.conftest import write_json, write_jsonl

GPTEACHER = [{"instruction": f"Explain step {k} of making bread.", "input": "" if k % 2 else f"Step {k}",
              "response": f"Step {k} is to knead the dough for {k + 2} minutes until it springs back."}
             for k in range(12)]


def build_source(tmp_path: Path, write_mix, rows: list[dict], **source) -> build.BuildResult:  # type: ignore[no-untyped-def]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    mix = write_mix({"name": "t", "sources": [{"name": "s", "path": "rows.jsonl", **source}]})
    return build.run(load_mix(mix))


def test_gpteacher_response_is_read_as_the_output_and_reported(tmp_path, write_mix):
    result = build_source(tmp_path, write_mix, GPTEACHER)
    [source] = result.report.sources
    assert (source.input, source.rejected, source.format) == (12, 0, "alpaca")
    assert source.aliases == {"output": "response"} and source.repairs["alias:output=response"] == 12
    kept = result.train.vstack(result.eval).sort("id")
    assert kept["output"].to_list()[0] == GPTEACHER[0]["response"]
    assert result.report.model_dump(mode="json")["sources"][0]["aliases"] == {"output": "response"}
    assert ("Read under key aliases (format: auto; a source's columns choose otherwise): s: output <- response "
            "(12 records).") in markdown.render(result.report)


def test_explicit_format_alpaca_reads_no_alias(tmp_path, write_mix):
    result = build_source(tmp_path, write_mix, GPTEACHER, format="alpaca")
    [source] = result.report.sources
    assert source.reasons == {"missing_field:output": 12} and source.aliases == {}
    assert "key aliases" not in markdown.render(result.report)


def test_ambiguous_keys_reject_the_file_and_explicit_columns_win(tmp_path, write_mix):
    rows = [{**row, "answer": f"Knead {k}."} for k, row in enumerate(GPTEACHER)]
    ambiguous = build_source(tmp_path, write_mix, rows)
    assert ambiguous.report.sources[0].reasons == {"ambiguous_field:output": 12}
    detail = ambiguous.rejected["detail"][0]
    assert "'response' and 'answer'" in detail and "columns (output: response)" in detail
    chosen = build_source(tmp_path, write_mix, rows, columns={"output": "answer"})
    [source] = chosen.report.sources
    assert (source.rejected, source.aliases) == (0, {})
    assert sorted(chosen.train.vstack(chosen.eval)["output"].to_list()) == sorted(f"Knead {k}." for k in range(12))


def test_real_lima_under_aliases_reads_exactly_as_under_its_own_keys(tmp_path, write_mix, shared_data):
    """LIMA (llama-factory/lima.json: history, outputs over 17k characters) rewritten as question/context/answer
    gives the same records: every valid one is an exact duplicate of the original's, nothing else differs."""
    rows = json.loads((shared_data / "llama-factory" / "lima.json").read_text(encoding="utf-8"))
    write_json(tmp_path / "aliased.json", [{"question": r["instruction"], "context": r["input"],
                                            "answer": r["output"], "history": r["history"]} for r in rows])
    mix = write_mix({"name": "lima", "sources": [
        {"name": "lima", "path": str(shared_data / "llama-factory" / "lima.json")},
        {"name": "aliased", "path": "aliased.json"}]})
    lima, aliased = build.run(load_mix(mix)).report.sources
    assert aliased.aliases == {"instruction": "question", "input": "context", "output": "answer"}
    assert {k: v for k, v in aliased.repairs.items() if k.startswith("alias:")} == {
        "alias:instruction=question": 1029, "alias:input=context": 1029, "alias:output=answer": 1029}
    assert (aliased.input, aliased.reasons) == (lima.input, lima.reasons) and lima.input == 1029
    assert aliased.kept == 0 and aliased.duplicates == aliased.input - aliased.rejected > 1000
    assert {k: v for k, v in aliased.repairs.items() if not k.startswith("alias:")} == lima.repairs


def test_small_files_of_different_keys_are_never_read_as_one(tmp_path, write_mix):
    """More than 64 small files share work units, whose chunks are merged when they read alike: a `response` file
    and a `completion` file must not be (the merged chunk would be read with the first file's aliases)."""
    for k in range(70):
        key = "response" if k % 2 else "completion"
        write_jsonl(tmp_path / "many" / f"f{k:02d}.jsonl",
                    [{"instruction": f"Question {k}: what is {k} squared?", key: f"{k} squared is {k * k}."}])
    groups = file_units.file_groups(tuple(sorted((tmp_path / "many").iterdir())), tmp_path / "many")
    assert max(len(g) for g in groups) > 1  # some unit mixes both kinds of file
    mix = write_mix({"name": "many", "sources": [{"name": "many", "path": "many"}]})
    [source] = build.run(load_mix(mix)).report.sources
    assert (source.input, source.rejected) == (70, 0)
    assert source.aliases == {"output": "completion+response"}
    assert (source.repairs["alias:output=response"], source.repairs["alias:output=completion"]) == (35, 35)


@pytest.mark.parametrize("fmt", ["sharegpt", "openai"])
def test_aliases_never_apply_to_chat_formats(fmt, tmp_path, write_mix):
    turns = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello there."}]
    row = {"conversations": turns} if fmt == "sharegpt" else {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}]}
    result = build_source(tmp_path, write_mix, [{**row, "response": "ignored", "question": "ignored"}])
    [source] = result.report.sources
    assert (source.format, source.rejected, source.aliases) == (fmt, 0, {})
    assert result.train.vstack(result.eval)["output"].to_list() == ["Hello there."]


def test_an_eval_set_under_question_and_answer_keys_decontaminates(tmp_path, write_mix, shared_data):
    """decontaminate.against reads its sets with format: auto, aliases included: MT-Bench's prompts rewritten as
    GSM8K-style question/answer rows used to give empty instructions, so nothing matched them."""
    questions = [json.loads(line)["turns"][0] for line in
                 (shared_data / "fastchat" / "mt_bench_questions.jsonl").read_text(encoding="utf-8").splitlines()]
    write_jsonl(tmp_path / "eval.jsonl", [{"question": q, "answer": "-"} for q in questions])
    write_jsonl(tmp_path / "train.jsonl", [{"instruction": questions[3], "input": "", "output": "A leaked answer."},
                                           {"instruction": "Name three primary colours.", "input": "",
                                            "output": "Red, yellow and blue."}])
    mix = write_mix({"name": "d", "sources": [{"name": "s", "path": "train.jsonl"}],
                     "decontaminate": {"against": ["eval.jsonl"]}})
    result = build.run(load_mix(mix))
    assert result.rejected.select("id", "stage").rows() == [("s#0", "decontaminate")]
