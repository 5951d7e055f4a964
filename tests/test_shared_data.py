"""Acceptance on the real data: a mix over every file of ../shared/data builds, and the known defects listed in
../shared/data/README.md come out as the right reasons and repairs, with a balanced ledger."""

from __future__ import annotations

import pytest
import yaml

from pipeline import build
from pipeline.config import load_mix
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def report(shared_data, tmp_path_factory):
    spec = yaml.safe_load((ROOT / "bench" / "mixes" / "shared_all.yaml").read_text())
    for source in spec["sources"]:
        source["path"] = source["path"].replace("../../../shared/data", str(shared_data))
    spec["output"]["dir"] = "out"
    spec["tokenize"] = {"enabled": False}  # this test is about reading; tests/test_tokenize.py covers tokens
    mix = tmp_path_factory.mktemp("all") / "mix.yaml"
    mix.write_text(yaml.safe_dump(spec))
    result = build.run(load_mix(mix))
    return {s.name: s for s in result.report.sources}, result


def test_every_file_is_read_with_its_format(report):
    sources, result = report
    assert {name: s.format for name, s in sources.items()} == {
        "alpaca_en": "alpaca", "alpaca_zh_hikariming": "alpaca", "alpaca_zh_carbonz0": "alpaca",
        "fastchat_dummy": "sharegpt", "mt_bench": "mt_bench", "lf_alpaca_en_demo": "alpaca",
        "lf_alpaca_zh_demo": "alpaca", "lf_glaive_en": "sharegpt", "lf_glaive_zh": "sharegpt",
        "lf_identity": "alpaca", "lf_lima": "alpaca", "lf_oaast_sft_zh": "alpaca", "lf_self_cognition": "alpaca",
        "lf_v1_sft_demo": "openai", "self_instruct_seed": "self_instruct", "self_instruct_user": "self_instruct",
        "zh_misc": "alpaca",
    }
    # record counts from ../shared/data/README.md (the hikariming glob is 7 files, the malformed one included)
    assert sources["alpaca_en"].input == 52_002
    assert sources["alpaca_zh_hikariming"].input == 3247 + 2982 + 3022 + 2801 + 2978 + 2957 + 2290
    assert sources["alpaca_zh_carbonz0"].input == 10_021 + 10_444
    assert sources["zh_misc"].input == 213 + 9057 + 500 + 152
    assert sources["lf_lima"].input == 1029 and sources["lf_v1_sft_demo"].input == 500
    assert all(row.balanced for row in result.report.ledger)
    totals = result.report.totals
    assert totals["input"] == totals["train"] + totals["rejected"] + totals["duplicates"]


def test_known_defects_show_up_as_reasons(report):
    sources, _ = report
    reasons = sources["alpaca_en"].reasons
    assert reasons["empty_output"] == 28  # the 28 empty outputs
    assert reasons["unfilled_placeholder"] >= 100  # outputs "<noinput>", "<nooutput>", "<No output>"...
    assert reasons["needs_unseen_content"] >= 10  # "Analyze the following photo...", "Open the following URL..."
    for name in ("lf_identity", "lf_self_cognition"):  # {{name}} / <NAME> slots nobody filled
        assert sources[name].reasons.get("unfilled_placeholder", 0) > 0, sources[name].reasons
    assert sources["alpaca_en"].repairs["placeholder_input"] >= 236  # "No input", "N/A", "<noinput>", ...
    assert sources["mt_bench"].reasons == {"missing_field:output": 80}  # evaluation prompts have no answers
    assert sources["zh_misc"].repairs["missing_input"] == 8084  # code_questions.json: no `input` key
    assert sources["zh_misc"].repairs["empty_history_string"] == 973  # code_questions.json: history ""
    assert sources["alpaca_zh_hikariming"].repairs["missing_input"] == 1  # one record in alpaca_zh-06382-09407
    assert "malformed_json" not in sources["alpaca_zh_hikariming"].reasons  # trailing comma recovered (lenient)
    assert sources["lf_glaive_en"].repairs["tools_in_system"] == 300
