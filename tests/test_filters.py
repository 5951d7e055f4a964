"""Language, quality rules, PII and decontamination, on real examples."""

from __future__ import annotations

import json

import polars as pl
import pytest

from pipeline import build, decontaminate, language, pii, quality, validate
from pipeline.config import load_mix
from schemas.mix import DecontaminateSpec, PiiSpec, QualitySpec
from tests.conftest import write_jsonl


def frame(rows: list[dict[str, str]], source: str = "s") -> pl.DataFrame:
    return pl.DataFrame({
        "id": [f"{source}#{k}" for k in range(len(rows))], "source": source,
        "instruction": [r["instruction"] for r in rows], "input": [r.get("input", "") for r in rows],
        "output": [r["output"] for r in rows], "origin": [f"f:{k + 1}" for k in range(len(rows))],
    }).with_columns(history=pl.lit(None, validate.HISTORY))


def test_script_decides_unambiguous_texts_and_digits_are_undetermined():
    found = language.detect(pl.Series(["把这句话翻译成英文。这是一个测试。", "これは日本語の文章です。",
                                       "이것은 한국어 문장입니다.",
                                       "12 + 35 = 47", "The quick brown fox jumps over the lazy dog."]))
    assert found["lang"].to_list() == ["zh", "ja", "ko", "und", "en"]
    assert found["lang_method"].to_list()[:4] == ["script", "script", "script", "no_letters"]


def test_translation_tasks_are_kept_by_instruction_or_output():
    records = frame([
        {"instruction": "Translate to French: Where is the station?", "output": "Où est la gare ?"},
        {"instruction": "把下面的句子翻译成英文：我喜欢喝茶。", "output": "I like drinking tea."},
        {"instruction": "Quelle est la capitale de l'Italie ?", "output": "La capitale de l'Italie est Rome."},
    ])
    outcome = language.language_filter(records, {"s": ["en", "zh"]})
    kept, rejected = outcome.kept, outcome.rejected
    assert kept["id"].to_list() == ["s#0", "s#1"]
    assert rejected.row(0, named=True)["reason"] == "language:fr"


def test_mislabelled_chinese_files_have_their_english_records_found(shared_data):
    """../shared/data/README.md: alpaca_zh-12345-15323.json has en:2570/zh:408, -18280-21320 zh:1460/en:830."""
    for name, english in (("alpaca_zh-12345-15323.json", 2570), ("alpaca_zh-18280-21320.json", 830)):
        rows = json.loads((shared_data / "alpaca-zh" / name).read_text())
        found = language.detect(pl.Series([f"{r['instruction']}\n{r['output']}" for r in rows]))
        assert abs((found["lang"] == "en").sum() - english) <= english * 0.02, name


def test_arithmetic_without_letters_is_kept(shared_data):
    rows = json.loads((shared_data / "zh-misc" / "integer_arithmetic.json").read_text())[:50]
    records = frame([{"instruction": r["instruction"], "output": r["output"]} for r in rows])
    outcome = language.language_filter(records, {"s": ["zh"]})
    kept, rejected = outcome.kept, outcome.rejected
    assert rejected.is_empty() and set(kept["lang"]) <= {"und", "zh"}


def test_language_cache_detects_each_text_once(tmp_path, monkeypatch):
    texts = pl.Series(["The weather is nice today, let us go for a walk.", "今天天气很好。"])
    cache = tmp_path / "lang.parquet"
    first = language.detect_cached(texts, cache)
    monkeypatch.setattr(language, "detect", lambda _: pytest.fail("detected a cached text again"))
    assert language.detect_cached(texts, cache).equals(first)


@pytest.mark.parametrize("row, reason", [
    ({"instruction": "Write a poem about rain.", "output": "As an AI language model, I cannot write poems."},
     "refusal"),
    ({"instruction": "写一首诗。", "output": "抱歉，我无法完成这个请求。"}, "refusal"),
    ({"instruction": "Greet the user.", "output": "Hello {{name}}, welcome back!"}, "unfilled_placeholder"),
    ({"instruction": "Who are you?", "output": "I am <NAME>, an assistant developed by <AUTHOR>."},
     "unfilled_placeholder"),
    ({"instruction": "Render a 3D model of a house", "output": "<nooutput>"}, "unfilled_placeholder"),
    ({"instruction": "Analyze the following photo and explain what it is depicting.", "output": "A park."},
     "needs_unseen_content"),
    ({"instruction": "Open the following URL and find the title of the article.", "input": "https://example.com/a",
      "output": "The title is X."}, "needs_unseen_content"),
    ({"instruction": "Create a looping GIF of a cat running.", "output": "Create a looping GIF of a cat running."},
     "echoes_prompt"),
    ({"instruction": "Tell a story.", "output": "and then " * 40}, "repetitive_output"),
    ({"instruction": "Say café.", "output": "CafÃ© is spelled with an accent."}, "mojibake"),
])
def test_each_quality_rule_on_an_example(row, reason):
    outcome = quality.quality_filter(frame([row]), QualitySpec())
    kept, rejected = outcome.kept, outcome.rejected
    assert kept.is_empty() and rejected.row(0, named=True)["reason"] == reason


@pytest.mark.parametrize("row", [
    {"instruction": "Write the HTML skeleton of a page.", "output": "<html><head><title>T</title></head></html>"},
    {"instruction": "Fill in the blank: The cat sat on the <mask>.", "output": "mat"},
    {"instruction": "Write a cover letter.", "output": "Dear Hiring Manager, ... Sincerely, [Your Name]"},
    {"instruction": "Generate a URL slug for the title 'Hello World'.", "output": "hello-world"},
    {"instruction": "Add 2 and 2.", "output": "4"},
    {"instruction": "Construct a truth table for P and Q.", "output": "P Q | P∧Q\nT T | T\nT F | F\nF T | F\nF F | F"},
])
def test_quality_rules_leave_good_records_alone(row):
    rejected = quality.quality_filter(frame([row]), QualitySpec()).rejected
    assert rejected.is_empty(), rejected.to_dicts()


def test_a_rule_set_to_null_is_off():
    row = {"instruction": "Tell a story.", "output": "and then " * 40}
    assert quality.quality_filter(frame([row]), QualitySpec(max_repeated_ngram_ratio=None)).rejected.is_empty()


@pytest.mark.parametrize("text, expected", [
    ("Mail me at zhang.san@example.com", "Mail me at <EMAIL>"),
    ("我的手机号是13800138000。", "我的手机号是<PHONE>。"),
    ("Call +44 20 7946 0958 or (555) 123-4567.", "Call <PHONE> or <PHONE>."),
    ("身份证号 11010519491231002X", "身份证号 <ID>"),
    ("Card: 4111 1111 1111 1111", "Card: <CARD>"),
    ("The server is at 192.168.1.30.", "The server is at <IP>."),
])
def test_pii_found_and_redacted(text, expected):
    assert pii.scan(text, pii.DETECTORS)[0] == expected


@pytest.mark.parametrize("text", [
    "The meeting is on 2023-01-15 at 10:30.", "Upgrade to version 1.2.3 or 10.0.1.", "Python 3.11.7 was released.",
    "Order 12345678901 shipped.", "Card 4111 1111 1111 1112 is not valid.", "110105194912310021 fails its checksum",
    "The value 256.1.1.1 is not an address.", "ISBN 978-3-16-148410-0", "pi = 3.14159265358979",
])
def test_pii_false_positives_are_left_alone(text):
    assert pii.scan(text, pii.DETECTORS) == (text, {})


def test_pii_actions():
    records = frame([{"instruction": "Contact?", "output": "Write to a@b.com"},
                     {"instruction": "Hi", "output": "Hello"}])
    found = pii.find_pii(records, PiiSpec())
    redacted, rejected, counts = found.kept, found.rejected, found.stats
    assert redacted["output"].to_list() == ["Write to <EMAIL>", "Hello"] and rejected.is_empty()
    assert counts == {"email": 1}
    found = pii.find_pii(records, PiiSpec(action="quarantine"))
    kept, rejected = found.kept, found.rejected
    assert kept["id"].to_list() == ["s#1"] and rejected.row(0, named=True)["reason"] == "pii:email"
    assert "a@b.com" not in rejected.row(0, named=True)["detail"]  # never print the PII itself
    found = pii.find_pii(records, PiiSpec(action="flag"))
    flagged, rejected, counts = found.kept, found.rejected, found.stats
    assert flagged.equals(records) and rejected.is_empty() and counts == {"email": 1}


def test_decontamination_against_real_eval_sets(shared_data, tmp_path, write_mix):
    """MT-Bench and self-instruct's user-oriented prompts planted into a training source are found."""
    mt_bench = [json.loads(line) for line in (shared_data / "fastchat" / "mt_bench_questions.jsonl").open()]
    user = [json.loads(line) for line in (shared_data / "self-instruct" / "user_oriented_instructions.jsonl").open()]
    clean = [{"instruction": f"Explain concept number {k} of basic physics in two sentences.", "input": "",
              "output": f"Concept {k} is explained here."} for k in range(20)]
    planted = [
        {"instruction": mt_bench[0]["turns"][0], "input": "", "output": "A copied benchmark answer."},
        {"instruction": "Please answer: " + mt_bench[5]["turns"][0].replace(".", "!"), "input": "", "output": "x"},
        {"instruction": user[3]["instruction"], "input": user[3]["instances"][0]["input"], "output": "y"},
    ]
    write_jsonl(tmp_path / "train.jsonl", clean + planted)
    mix = write_mix({"name": "t", "sources": [{"name": "train", "path": "train.jsonl"}],
                     "decontaminate": {"against": [str(shared_data / "fastchat" / "mt_bench_questions.jsonl"),
                                                   str(shared_data / "self-instruct"
                                                       / "user_oriented_instructions.jsonl")]}})
    result = build.run(load_mix(mix))
    leaks = result.rejected.filter(pl.col("stage") == "decontaminate")
    assert leaks["id"].to_list() == ["train#20", "train#21", "train#22"]
    assert leaks["reason"].to_list() == ["contaminated:mt_bench_questions"] * 2 + [
        "contaminated:user_oriented_instructions"]
    assert "mt_bench_questions#0" in leaks["detail"][0]
    assert result.train.height == 20 and all(row.balanced for row in result.report.ledger)
    assert result.report.decontamination["contaminated:mt_bench_questions"].count == 2


def test_ngram_window_match_inside_a_longer_prompt():
    prompt = ("Compose an engaging travel blog post about a recent trip to Hawaii, highlighting cultural experiences "
              "and must-see attractions.")
    evals = [("bench", pl.DataFrame({"id": ["bench#0"], "instruction": [prompt], "input": [""]}))]
    records = frame([{"instruction": ("Here is my task. Compose an engaging travel blog post about a recent trip "
                                      "to Hawaii, highlighting cultural experiences, thanks."), "output": "ok"},
                     {"instruction": "Write about Hawaii.", "output": "ok"}])
    found = decontaminate.contaminated(records, evals, DecontaminateSpec())
    assert found["id"].to_list() == ["s#0"] and "bench#0" in found["detail"][0]


def test_alpaca_en_comes_out_english(shared_data):
    rows = json.loads((shared_data / "alpaca-en" / "alpaca_data-00000-03252.json").read_text())
    found = language.detect(pl.Series([f"{r['instruction']}\n{r['output']}" for r in rows]))
    share = (found["lang"] == "en").mean()
    assert share >= 0.99, found.filter(pl.col("lang") != "en").head(5)
