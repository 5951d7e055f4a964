"""`pipeline audit`: the known defects of the real Alpaca sets (../shared/data/README.md) are surfaced with their
counts, the verdicts come from the rule table, the JSON validates, the command writes what it is asked for."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from pipeline import audit
from pipeline.audit import rules
from pipeline.audit.reading import strict_json_problem
from pipeline.audit.runner import measure
from pipeline.io.json_stream import MalformedJSONError, iter_json_batches
from pipeline.report import profile
from pipeline.report.memory import memory_report
from schemas.audit import AuditReport, json_schema
from tests.test_report_html import small_dataset

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "audit.schema.json"


@pytest.fixture(scope="module")
def alpaca_en(shared_data) -> AuditReport:
    """Without the tokenizer (the slowest step; alpaca-zh's audit measures tokens): ~15 s instead of ~35 s."""
    return audit.run([str(shared_data / "alpaca-en")])


@pytest.fixture(scope="module")
def alpaca_zh(shared_data, llama_tokenizer) -> AuditReport:
    return audit.run([str(shared_data / "alpaca-zh")], llama_tokenizer)


def verdict(report: AuditReport, code: str):  # type: ignore[no-untyped-def]
    found = {v.code: v for v in report.verdicts}
    assert code in found, sorted(found)
    return found[code]


def test_alpaca_en_defects(alpaca_en):
    """52,002 records: 31,323 empty inputs, placeholder inputs, 28 empty outputs, HTML, near-duplicate instructions."""
    report = alpaca_en
    assert report.totals["items"] == 52_002 and report.totals["files"] == 18
    fields = {f.field: f for f in report.fields}
    assert fields["input"].empty.count == 31_323  # exactly the README's count, rejected records included
    # The README counts 236 of the commonest spellings ("No input", "N/A", ...); the pipeline's rule folds case
    # and punctuation ("<noinput>", "No input.", "noinput", "<No Input>", ...) and finds them all.
    assert fields["input"].placeholder is not None and fields["input"].placeholder.count == 668
    assert fields["output"].empty.count == 28 and report.schema_problems["empty_output"].count == 28
    assert verdict(report, "empty_output").count == 28 and verdict(report, "empty_output").severity == "high"
    assert verdict(report, "placeholder_input").count == 668
    assert verdict(report, "empty_input").count == 31_323
    assert verdict(report, "html").count == report.content["html"].count > 50
    similar = verdict(report, "near_duplicate_instructions")
    assert similar.count >= 40 and report.instruction_duplicates.near >= 40
    assert report.duplicates.exact == 0 and report.duplicates.near == 3  # whole records: Stanford deduplicated them
    assert {v.code for v in report.verdicts} >= {"pii", "quality:unfilled_placeholder", "quality:needs_unseen_content"}
    languages = {g.key: g.records for g in report.profile.languages}
    assert languages["en"] / report.profile.records > 0.99
    assert report.profile.lengths.tokens is None and "over_cutoff" not in {v.code for v in report.verdicts}
    assert report.profile.diversity.top_leading_words[0].key == "generate"


def test_alpaca_zh_defects(alpaca_zh, shared_data):
    """The trailing comma, the English files labelled Chinese, the missing input key, the cross-source copies."""
    report = alpaca_zh
    files = {f.source: f for f in report.files}
    broken = shared_data / "alpaca-zh" / "alpaca_zh-09407-12345.json"
    with pytest.raises(MalformedJSONError) as strict:
        for _ in iter_json_batches(broken, lenient=False):
            pass
    expected = f"line {strict.value.line}, column {strict.value.column}: {strict.value.problem}"
    assert files[broken.name].problem == expected
    assert verdict(report, "not_strict_json").examples == [broken.name]
    english = files["alpaca_zh-12345-15323.json"].languages
    assert english["en"] / sum(english.values()) > 0.8  # README: 2,565 of 2,978 untranslated
    assert 750 < files["alpaca_zh-18280-21320.json"].languages["en"] < 900  # README: 829
    mismatch = verdict(report, "language_mismatch")
    assert mismatch.severity == "high" and 3_200 < mismatch.count < 3_600
    assert "alpaca_zh-12345-15323.json" in mismatch.message and "alpaca_zh-18280-21320.json" in mismatch.message
    assert files["alpaca_zh-06382-09407.json"].repairs["missing_input"] == 1
    assert verdict(report, "missing_input_key").examples == ["alpaca_zh-06382-09407.json"]
    # 14,351 hikariming records are identical to carbonz0's (README); folding case and punctuation finds a few more
    copies = sum(p.count for p in report.duplicates.pairs
                 if p.kind == "exact" and p.file.startswith("zh-data-part") and p.kept_file.startswith("alpaca_zh"))
    assert 14_351 <= copies < 14_500
    cross = verdict(report, "cross_file_duplicates")
    assert cross.severity == "high" and cross.count >= 14_351
    assert files["zh-data-part-00.json"].duplicates + files["zh-data-part-01.json"].duplicates >= 14_351
    tokens = report.profile.lengths.tokens  # LLaMA-2 tokens of every record as an Alpaca-template example
    assert tokens is not None and tokens.count == report.totals["records"] and 120 < tokens.p50 < 200
    assert sum(tokens.counts) == tokens.count and tokens.max > 1024
    assert verdict(report, "over_cutoff").count == report.content["over_1024_tokens"].count == sum(tokens.counts[6:])


def test_real_audit_json_validates_and_renders(alpaca_zh, tmp_path):
    written = audit.write(alpaca_zh, tmp_path, ["json", "md"])
    data = json.loads(written[0].read_text())
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    assert AuditReport.model_validate(data) == alpaca_zh
    text = written[1].read_text()
    assert "## Verdicts" in text and "| high | cross_file_duplicates | 14,803 |" in text


def test_committed_schema_is_current():
    assert json.loads(SCHEMA.read_text()) == json_schema(), (
        "regenerate: python -m schemas.audit > schemas/audit.schema.json")


def test_audit_command_writes_the_formats_asked_for(tmp_path, monkeypatch, cli):
    """`pipeline audit` runs no flow: the ``cli`` fixture starts no Prefect server."""
    paths = small_dataset(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    result = cli("audit", *paths, "--format", "md", "--format", "json", "--out", "report", "--no-tokens")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["audit.json", "audit.md"]
    assert "verdicts, worst first" in result.output and "not_strict_json" in result.output
    report = AuditReport.model_validate_json((tmp_path / "report" / "audit.json").read_text())
    jsonschema.validate(report.model_dump(mode="json"), json.loads(SCHEMA.read_text()))
    assert report.profile.lengths.tokens is None and report.tokenizer is None
    codes = {v.code for v in report.verdicts}
    assert codes >= {"not_strict_json", "empty_output", "cross_file_duplicates", "pii", "html", "missing_input_key",
                     "placeholder_input", "empty_input"}
    assert cli("audit", *paths, "--format", "pdf").exit_code == 2
    assert cli("audit", str(tmp_path / "nowhere")).exit_code == 2


def test_every_verdict_rule_reads_a_finding(tmp_path):
    """The rule table and the findings agree: no rule waits for a fact nobody computes."""
    measured = measure(small_dataset(tmp_path / "data"), None, None, tmp_path)
    found = rules.findings(measured)
    assert {rule.code for rule in rules.VERDICT_RULES} <= set(found)
    ranked = rules.verdicts(found, measured.report.totals["items"])
    assert [rules.SEVERITIES.index(v.severity) for v in ranked] == sorted(rules.SEVERITIES.index(v.severity)
                                                                           for v in ranked)
    assert all(v.count == found[v.code].count and 0 < v.share <= 1 for v in ranked)


def test_strict_json_problem_names_the_trailing_comma(tmp_path):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text('[\n  {"a": 1},\n  {"a": 2}\n]\n')
    bad.write_text('[\n  {"a": 1},\n  {"a": 2},\n]\n')
    assert strict_json_problem(good) is None and strict_json_problem(tmp_path / "x.jsonl") is None
    with pytest.raises(MalformedJSONError) as strict:
        list(iter_json_batches(bad, lenient=False))
    expected = f"line {strict.value.line}, column {strict.value.column}: trailing comma before ']'"
    assert strict_json_problem(bad) == expected


def test_distribution_percentiles_and_bins():
    import polars as pl

    found = profile.distribution(pl.Series([0, 31, 32, 100, 9000]), profile.CHAR_EDGES)
    assert found.counts == [2, 1, 1, 0, 0, 0, 0, 0, 0, 1] and found.max == 9000 and found.p50 == 32
    assert found.p99 == 9000 and found.mean == 1832.6
    assert profile.distribution(pl.Series([], dtype=pl.Int64), profile.TOKEN_EDGES).count == 0


def test_leading_words_of_english_and_chinese():
    import polars as pl

    frame = pl.DataFrame({"instruction": ["Write a poem.", "  \"Generate\" a list", "写一首诗。", "12 plus 3?", "?"]})
    assert frame.select(profile.leading_word()).to_series().to_list() == ["write", "generate", "写一", "12",
                                                                            profile.NO_LEADING_WORD]


def test_build_profile_reads_token_lengths_from_the_index_of_tokenized_rows():
    import polars as pl

    plain = pl.DataFrame({"id": ["a", "b"], "n_tokens": [3, 2]})
    packed = pl.DataFrame({"seq_lengths": [[3, 2], [4]]})
    assert profile.example_lengths(plain).to_list() == [3, 2]
    assert profile.example_lengths(packed).to_list() == [3, 2, 4]


@pytest.mark.parametrize("base_model, model", [
    (None, "7B"), ("NousResearch/Llama-2-13b-hf", "13B"), ("30B", "30B"), ("gpt2", "7B"), ("6.7e9", "6.7E9"),
])
def test_memory_section_resolves_the_base_model(base_model, model):
    from schemas.mix import TrainSpec

    report = memory_report(TrainSpec(base_model=base_model), 2048)
    assert report.model == model and report.seq_len == 2048
    assert [m.method for m in report.methods] == ["full", "lora", "qlora"]
    totals = {m.method: m.total for m in report.methods}
    assert totals["qlora"] < totals["lora"] < totals["full"]
    assert ("assumed" in report.model_from) == (model == "7B" and base_model != "NousResearch/Llama-2-7b-hf")


@pytest.fixture
def gpteacher(tmp_path, shared_data) -> Path:
    """GPTeacher's layout (instruction, input, response) over real GPT-4 answers: LLaMA-Factory's alpaca_en_demo."""
    rows = json.loads((shared_data / "llama-factory" / "alpaca_en_demo.json").read_text(encoding="utf-8"))[:200]
    path = tmp_path / "gpteacher.json"
    path.write_text(json.dumps([{"instruction": r["instruction"], "input": r["input"], "response": r["output"]}
                                for r in rows]), encoding="utf-8")
    return path


def test_audit_reads_aliased_keys_and_says_so(gpteacher, tmp_path):
    """The issue's case: GPTeacher was 0 readable records, every one rejected as missing_field:output."""
    report = audit.run([str(gpteacher)], root=tmp_path)
    assert (report.totals["records"], report.totals["rejected"]) == (200, 0)
    assert report.files[0].repairs["alias:output=response"] == 200
    aliased = verdict(report, "aliased_keys")
    assert aliased.severity == "info" and aliased.count == 200
    assert "gpteacher.json: output <- response 200" in aliased.message
    assert "alias:" not in next((v.message for v in report.verdicts if v.code == "repairs"), "")
    explicit = audit.run([str(gpteacher)], root=tmp_path, columns={"output": "response"})
    assert (explicit.totals["records"], explicit.totals["rejected"]) == (200, 0)
    assert "aliased_keys" not in {v.code for v in explicit.verdicts}
    assert not any(fix.startswith("alias:") for fix in explicit.files[0].repairs)


def test_audit_rejects_an_ambiguous_file_until_columns_choose(gpteacher, tmp_path):
    rows = json.loads(gpteacher.read_text())
    both = tmp_path / "both.jsonl"
    both.write_text("".join(json.dumps({**r, "answer": "Short."}) + "\n" for r in rows))
    report = audit.run([str(both)], root=tmp_path)
    assert report.totals["records"] == 0 and report.schema_problems["ambiguous_field:output"].count == 200
    ambiguous = verdict(report, "ambiguous_keys")
    assert ambiguous.severity == "high" and "--columns FIELD=KEY" in ambiguous.message
    assert "(both.jsonl: keys 'response' and 'answer' could each be the output (200))" in ambiguous.message
    assert "invalid_records" not in {v.code for v in report.verdicts}
    chosen = audit.run([str(both)], root=tmp_path, columns={"output": "answer"})
    assert chosen.totals["records"] == 200 and chosen.profile.lengths.output_chars.max == len("Short.")


def test_audit_names_columns_when_a_field_is_missing(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"Say {k}.", "reply": f"{k}."}) + "\n" for k in range(5)))
    report = audit.run([str(path)], root=tmp_path)
    invalid = verdict(report, "invalid_records")
    assert "missing_field:output 5" in invalid.message and "--columns FIELD=KEY" in invalid.message
    assert audit.run([str(path)], root=tmp_path, columns={"output": "reply"}).totals["records"] == 5


def test_parse_columns():
    assert audit.parse_columns(["output=response", " instruction = prompt ", "output=response"]) == {
        "output": "response", "instruction": "prompt"}
    assert audit.parse_columns([]) == {}


@pytest.mark.parametrize("items, message", [
    (["outputresponse"], "--columns 'outputresponse': expected FIELD=KEY, e.g. output=response"),
    (["output="], "--columns 'output=': expected FIELD=KEY"),
    (["=response"], "--columns '=response': expected FIELD=KEY"),
    (["outputs=response"], "--columns 'outputs=response': unknown canonical field 'outputs'; did you mean 'output'? "
                           "valid: instruction, input, output, system, history, conversations, messages"),
    (["answer=response"], "--columns 'answer=response': unknown canonical field 'answer'; valid: instruction,"),
    (["output=a", "output=b"], "--columns 'output=b': output is already read from 'a'"),
])
def test_parse_columns_errors_name_the_item(items, message):
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError) as err:
        audit.parse_columns(items)
    assert str(err.value).startswith(message)


def test_resolve_checks_columns_before_reading(tmp_path):
    from pipeline.config import ConfigError

    path = write_rows(tmp_path / "a.jsonl")
    [source] = audit.resolve([str(path)], tmp_path, {"output": "response"})
    assert source.source.spec.columns == {"output": "response"} and source.source.spec.format == "auto"
    with pytest.raises(ConfigError, match="columns: unknown canonical field 'reply'"):
        audit.resolve([str(path)], tmp_path, {"reply": "x"})


def write_rows(path: Path) -> Path:
    path.write_text(json.dumps({"instruction": "Hi", "response": "Hello"}) + "\n")
    return path
