"""Mixture and split: exact counts (property tests), caps, guards, seeds, the ledger, and a mix of the real data."""

from __future__ import annotations

import math

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import build, mixture, token_splits, tokenize, validate
from pipeline.config import ConfigError, load_mix
from pipeline.io import token_files
from pipeline.report.stages import split_report
from schemas.mix import MixtureSpec
from tests.conftest import write_jsonl


def pool_of(sizes: dict[str, int], tasks: dict[str, str]) -> pl.DataFrame:
    return pl.DataFrame({
        "id": [f"{s}#{k}" for s, n in sizes.items() for k in range(n)],
        "source": [s for s, n in sizes.items() for _ in range(n)],
        "task": [tasks[s] for s, n in sizes.items() for _ in range(n)],
        "instruction": [f"{['Write', 'List', 'Name', 'Explain'][k % 4]} thing {k}" for s, n in sizes.items()
                        for k in range(n)],
    }, schema={"id": pl.String, "source": pl.String, "task": pl.String, "instruction": pl.String})


@st.composite
def mixtures(draw):  # type: ignore[no-untyped-def]
    n_sources = draw(st.integers(1, 5))
    names = [f"s{k}" for k in range(n_sources)]
    sizes = {n: draw(st.integers(0, 60)) for n in names}
    tasks = {n: draw(st.sampled_from(["t0", "t1", "t2"])) for n in names}
    general = {n: draw(st.booleans()) for n in names}
    mixed = any(general.values()) and not all(general.values())
    share = draw(st.one_of(st.none(), st.floats(0, 1))) if mixed else None
    task_names = sorted({tasks[n] for n in names if not (general[n] and share is not None)})
    weights = {}
    if task_names and draw(st.booleans()):
        weights = {t: draw(st.floats(0, 5)) for t in task_names}
        if not any(w > 0 for w in weights.values()):
            weights[task_names[0]] = 1.0
    spec = MixtureSpec(size=draw(st.integers(1, 400)), weights=weights, general_share=share,
                       max_repeats=draw(st.sampled_from([1.0, 1.5, 2.0, 3.0])),
                       sampling=draw(st.sampled_from(["random", "diverse"])))
    infos = [mixture.SourceInfo(n, tasks[n], general[n]) for n in names]
    return infos, sizes, tasks, spec


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixtures(), st.integers(0, 2**31))
def test_counts_are_exact_capped_deterministic_and_add_up(case, seed):
    infos, sizes, tasks, spec = case
    plan = mixture.plan(infos, sizes, spec)
    if all(n > 0 for n in sizes.values()):  # (a group with nothing and no weights can take no share)
        assert int(plan["target"].sum()) == spec.size  # every count exact
    assert int(plan["target"].sum()) <= spec.size
    for row in plan.iter_rows(named=True):
        cap = math.floor(spec.max_repeats * row["available"])
        assert row["achieved"] == min(row["target"], cap) and row["shortfall"] == row["target"] - row["achieved"]
    pool = pool_of(sizes, tasks)
    rows, left_out = mixture.sample(pool, plan, seed, spec.sampling == "diverse")
    achieved = dict(rows.group_by("source").len().iter_rows())
    assert all(achieved.get(r["source"], 0) == r["achieved"] for r in plan.iter_rows(named=True))
    copies = rows.group_by("id").len()["len"]
    assert copies.is_empty() or copies.max() <= math.ceil(spec.max_repeats)  # never beyond max_repeats
    first = rows.filter(pl.col("repeat") == 0)
    assert sorted(first["id"].to_list() + left_out["id"].to_list()) == sorted(pool["id"].to_list())  # ledger
    again, _ = mixture.sample(pool, plan, seed, spec.sampling == "diverse")
    assert again.equals(rows)  # deterministic for a seed


def test_another_seed_picks_other_records():
    pool = pool_of({"a": 200}, {"a": "t"})
    plan = mixture.plan([mixture.SourceInfo("a", "t", False)], {"a": 200}, MixtureSpec(size=100))
    one, _ = mixture.sample(pool, plan, 1)
    two, _ = mixture.sample(pool, plan, 2)
    assert one.height == two.height == 100 and set(one["id"]) != set(two["id"])


def test_largest_remainder_examples():
    assert mixture.largest_remainder(10, [1, 1, 1]).tolist() == [4, 3, 3]
    assert mixture.largest_remainder(7, [0.5, 0.25, 0.25]).tolist() == [3, 2, 2]  # 3.5, 1.75, 1.75
    assert mixture.largest_remainder(5, [0, 0]).tolist() == [0, 0]


def test_temperature_flattens_the_task_sizes():
    infos = [mixture.SourceInfo("big", "big", False), mixture.SourceInfo("small", "small", False)]
    natural = mixture.plan(infos, {"big": 900, "small": 100}, MixtureSpec(size=1000, max_repeats=10))
    flat = mixture.plan(infos, {"big": 900, "small": 100}, MixtureSpec(size=1000, temperature=1e6, max_repeats=10))
    assert natural["target"].to_list() == [900, 100]
    assert flat["target"].to_list() == [500, 500]  # T -> infinity: uniform over tasks


def test_diverse_sampling_spreads_over_leading_words():
    pool = pl.DataFrame({"id": [f"a#{k}" for k in range(40)], "source": "a", "task": "t",
                         "instruction": ["Write a poem."] * 30 + [f"{w} something." for w in
                                                                   ["List", "Name", "Explain", "Give", "Sort",
                                                                    "Find", "Rank", "Tell", "Pick", "Draw"]]})
    plan = mixture.plan([mixture.SourceInfo("a", "t", False)], {"a": 40}, MixtureSpec(size=10))
    diverse, _ = mixture.sample(pool, plan, 0, diverse=True)
    assert diverse["instruction"].str.extract(r"(\w+)").n_unique() == 10  # one of each leading word
    plain, _ = mixture.sample(pool, plan, 0)
    assert plain["instruction"].str.extract(r"(\w+)").n_unique() < 10


def test_split_is_stratified_exact_and_seeded():
    pool = pool_of({"a": 50, "b": 30, "c": 20}, {"a": "x", "b": "y", "c": "z"})
    train, eval_ = mixture.split_eval(pool, 0.1, 0)
    assert dict(eval_.group_by("task").len().iter_rows()) == {"x": 5, "y": 3, "z": 2}
    assert train.height == 90 and set(train["id"]).isdisjoint(eval_["id"])
    assert mixture.split_eval(pool, 7, 0)[1].height == 7
    assert not mixture.split_eval(pool, 0.1, 1)[1].equals(eval_)


def test_guards_warn_and_strict_stops():
    infos = [mixture.SourceInfo("task", "t", False), mixture.SourceInfo("gen", "g", True)]
    spec = MixtureSpec(size=100, general_share=0.05, max_repeats=2)
    plan = mixture.plan(infos, {"task": 30, "gen": 50}, spec)
    warnings = mixture.guards(plan, spec, "records")
    assert any("below min_general_share" in w for w in warnings)
    assert any("'t' is 60.0% of the mix" in w or "task 't'" in w for w in warnings)
    assert any("needs 95 records = 3.17x" in w and "short by 35" in w for w in warnings)
    with pytest.raises(mixture.MixtureError, match="strict"):
        mixture.guards(plan, MixtureSpec(size=100, general_share=0.05, max_repeats=2, strict=True), "records")


@pytest.mark.parametrize("mixture_spec, message", [
    ({"weights": {"nope": 1}}, r"mixture.weights: unknown task\(s\) \['nope'\]"),
    ({"general_share": 0.2}, "no source has 'general: true'"),
    ({"weights": {"a": 1}, "temperature": 2}, "not both"),
    ({"unit": "tokens"}, "set tokenize.enabled: true"),
])
def test_bad_mixture_config_stops_before_work(tmp_path, write_mix, mixture_spec, message):
    write_jsonl(tmp_path / "a.jsonl", [{"instruction": "Q", "input": "", "output": "A"}])
    mix = write_mix({"name": "t", "sources": [{"name": "a", "path": "a.jsonl"}], "mixture": mixture_spec})
    with pytest.raises(ConfigError, match=message):
        load_mix(mix)


def test_split_report_counts_exact_keys_on_both_sides(write_mix, tmp_path):
    """The proof is not vacuous: a train record whose folded text equals an eval record's is counted once, and
    its repeat does not count it again."""
    write_jsonl(tmp_path / "a.jsonl", [{"instruction": "Q", "input": "", "output": "A"}])
    spec = load_mix(write_mix({"name": "t", "sources": [{"name": "a", "path": "a.jsonl"}],
                               "split": {"eval": 0.5}})).spec
    frame = pl.DataFrame({"id": ["a#0", "a#1", "a#2", "a#0"], "source": "a", "task": "a",
                          "instruction": ["Name a fruit.", "Name a tree", "Count to three.", "Name a fruit."],
                          "input": "", "output": ["Apple.", "Oak.", "1 2 3", "Apple."],
                          "repeat": pl.Series([0, 0, 0, 1], dtype=pl.UInt16)}).with_columns(
        history=pl.lit(None, validate.HISTORY))
    eval_ = frame.head(1).with_columns(id=pl.lit("a#9"), instruction=pl.lit("NAME A FRUIT"), output=pl.lit("apple"))
    report = split_report(spec, frame, pl.concat([eval_, frame.slice(2, 1).with_columns(
        id=pl.lit("a#8"), output=pl.lit("1, 2, 3!"))]))
    assert report is not None and report.train_records == 3 and report.eval == 2
    assert report.shared_exact_keys == 2 and report.shared_ids == 0


def test_build_with_split_mixture_and_repeats(tmp_path, write_mix, llama_tokenizer):
    write_jsonl(tmp_path / "task.jsonl", [{"instruction": f"Task question {k} about item {k * 7}?", "input": "",
                                           "output": f"Answer {k} is {k * 3}."} for k in range(20)])
    write_jsonl(tmp_path / "gen.jsonl", [{"instruction": f"General question number {k} on topic {k * 11}.",
                                          "input": "", "output": f"General answer {k}."} for k in range(50)])
    mix = write_mix({"name": "t", "seed": 3, "tokenize": {"enabled": True},
                     "sources": [{"name": "task", "path": "task.jsonl"},
                                 {"name": "gen", "path": "gen.jsonl", "general": True}],
                     "split": {"eval": 0.1},
                     "mixture": {"size": 60, "general_share": 0.5, "max_repeats": 2}})
    result = build.run(load_mix(mix), tokenizer=llama_tokenizer)
    report = result.report
    assert report.split is not None and report.split.eval == 7 and report.split.by_task == {"gen": 5, "task": 2}
    assert report.split.shared_ids == 0 and report.split.shared_exact_keys == 0
    assert report.mixture is not None
    assert [(s.source, s.available, s.target, s.achieved, s.copies) for s in report.mixture.sources] == [
        ("task", 18, 30, 30, 2), ("gen", 45, 30, 30, 1)]
    assert result.train.height == 60 and report.totals["repeats"] == 12 and report.totals["sampled_out"] == 15
    assert set(result.train["id"]).isdisjoint(result.eval["id"])  # no record or repeat on both sides
    assert result.tokenized["train"].height == 60  # repeats are rows of tokenized/ too
    assert all(row.balanced for row in report.ledger)
    assert any("start from a chat" in line for line in report.advice)


def test_mixture_in_tokens(tmp_path, write_mix, llama_tokenizer):
    write_jsonl(tmp_path / "a.jsonl", [{"instruction": f"Question {k}?", "input": "", "output": "word " * (k + 1)}
                                       for k in range(30)])
    mix = write_mix({"name": "t", "tokenize": {"enabled": True}, "sources": [{"name": "a", "path": "a.jsonl"}],
                     "mixture": {"size": 300, "unit": "tokens"}})
    result = build.run(load_mix(mix), tokenizer=llama_tokenizer)
    assert result.report.mixture is not None and result.report.mixture.unit == "tokens"
    tokens = result.report.tokens
    assert tokens is not None and result.report.mixture.achieved == tokens.train_tokens
    longest = max(t.max for t in tokens.by_source)
    assert 300 - longest < tokens.train_tokens <= 300  # whole records, up to the token budget


def test_a_mixture_in_tokens_tokenizes_each_record_once(tmp_path, write_mix, llama_tokenizer, monkeypatch):
    """The mixture's tokenization of the pool is reused by the tokenize stage (only eval is tokenized there), and
    the rows are those a fresh tokenization of the same records gives."""
    write_jsonl(tmp_path / "a.jsonl", [{"instruction": f"Question {k}?", "input": "",
                                        "output": " ".join(f"w{k}x{j}" for j in range(k + 1))} for k in range(40)])
    mix = load_mix(write_mix({"name": "t", "tokenize": {"enabled": True}, "split": {"eval": 0.1},
                              "sources": [{"name": "a", "path": "a.jsonl"}], "dedup": {"near": False},
                              "mixture": {"size": 300, "unit": "tokens", "max_repeats": 2}}))
    seen: list[str] = []
    real = tokenize.batches

    def counting(frame, *args):  # type: ignore[no-untyped-def]
        seen.extend(frame["id"].to_list())
        return real(frame, *args)

    monkeypatch.setattr(tokenize, "batches", counting)  # what tokenize.tokenize and the tokenize stage call
    result = build.run(mix, tokenizer=llama_tokenizer)
    assert sorted(seen) == sorted(f"a#{k}" for k in range(40))  # once each: the pool in the mixture, eval after
    monkeypatch.setattr(tokenize, "batches", real)
    fresh = token_splits.tokenize_splits(result.train, result.eval, llama_tokenizer, mix.spec, tmp_path / "fresh")
    for split in ("train", "eval"):
        assert fresh.outputs[f"tokenized/{split}"].equals(result.tokenized[split])
        fresh_rows = [token_files.read(p) for p in token_files.shard_paths(tmp_path / "fresh", split)]
        assert pl.concat(fresh_rows).equals(result.token_rows(split))


def test_the_split_report_reuses_dedup_keys_and_agrees_with_computing_them(tmp_path, write_mix):
    write_jsonl(tmp_path / "a.jsonl", [{"instruction": f"Name item {k % 15}.", "input": "", "output": f"Item {k}."}
                                       for k in range(60)])
    mix = load_mix(write_mix({"name": "t", "sources": [{"name": "a", "path": "a.jsonl"}], "split": {"eval": 0.2},
                              "dedup": {"key": "prompt", "near": False}}))
    result = build.run(mix)  # key: prompt, so dedup's keys are not the split report's: computed there
    assert result.report.split is not None and result.report.split.shared_exact_keys == 0
    mix = load_mix(write_mix({"name": "t", "sources": [{"name": "a", "path": "a.jsonl"}], "split": {"eval": 0.2}}))
    result = build.run(mix)
    assert result.report.split == split_report(mix.spec, result.train, result.eval)


def sources_available(report, source: str) -> int:  # type: ignore[no-untyped-def]
    return next(s.available for s in report.sources if s.source == source)


def test_real_data_mixture_target_table(shared_data, tmp_path):
    """alpaca-en as general data, the carbonz0 Chinese Alpaca and the four zh-misc files as tasks."""
    zh = shared_data / "zh-misc"
    spec = {
        "name": "real", "seed": 0, "tokenize": {"enabled": False},
        "sources": [
            {"name": "alpaca_en", "path": str(shared_data / "alpaca-en" / "*.json"), "general": True},
            {"name": "alpaca_zh", "path": str(shared_data / "alpaca-zh" / "zh-data-part-*.json"), "task": "zh"},
            {"name": "code", "path": str(zh / "code_questions.json"), "task": "code"},
            {"name": "academic", "path": str(zh / "academic_questions.json"), "task": "academic"},
            {"name": "arithmetic", "path": str(zh / "integer_arithmetic.json"), "task": "arithmetic"},
            {"name": "terms", "path": str(zh / "term_explanations.json"), "task": "terms"},
        ],
        "split": {"eval": 200},
        "mixture": {"size": 20_000, "general_share": 0.3, "max_repeats": 3,
                    "weights": {"zh": 0.4, "code": 0.3, "academic": 0.1, "arithmetic": 0.1, "terms": 0.1}},
    }
    (tmp_path / "mix.yaml").write_text(yaml.safe_dump(spec))
    result = build.run(load_mix(tmp_path / "mix.yaml"))
    report = result.report.mixture
    assert report is not None
    targets = {s.source: s.target for s in report.sources}
    assert targets == {"alpaca_en": 6000, "alpaca_zh": 5600, "code": 4200, "academic": 1400, "arithmetic": 1400,
                       "terms": 1400}
    rows = dict(result.train.group_by("source").len().iter_rows())
    for s in report.sources:
        assert s.achieved == min(s.target, math.floor(3 * s.available)) == rows[s.source]
    assert {s.source for s in report.sources if s.shortfall} == {"academic", "terms"}  # 213 and 152 records
    tasks = {t.task: (t.target, t.achieved) for t in report.tasks}
    assert tasks == {"alpaca_en": (6000, 6000), "zh": (5600, 5600), "code": (4200, 4200),
                     "academic": (1400, min(1400, 3 * sources_available(report, "academic"))),
                     "arithmetic": (1400, 1400), "terms": (1400, min(1400, 3 * sources_available(report, "terms")))}
    assert result.eval.height == 200 and result.report.split is not None and result.report.split.shared_ids == 0
    assert any("academic" in w and "short by" in w for w in report.warnings)
    assert all(row.balanced for row in result.report.ledger)


def test_advice_quotes_the_retention_experiment_below_a_general_share_of_0_3():
    advice = mixture.base_model_advice(500, 2, None)
    assert any(line.startswith("no general data: in bench/retention") for line in advice)
    assert any(line.startswith("general data is 10% of train") for line in mixture.base_model_advice(500, 2, 0.1))
    assert not any("bench/retention" in line for line in mixture.base_model_advice(500, 2, 0.3))


@pytest.mark.parametrize("sampling, unit", [("diverse", "records"), ("random", "records"), ("diverse", "tokens")])
def test_stages_that_pick_records_pick_the_same_from_their_columns_alone(tmp_path, write_mix, llama_tokenizer,
                                                                         sampling, unit):
    """``plan.Stage.picks_by``: the Dask runner runs the split and the mixture over those columns and each
    record's row only (``plan.picking_input``), then writes the rows they picked from the whole records
    (``plan.picked_rows``): every frame and the report equal the stage's over whole records. A mixture in tokens
    tokenizes the records: it picks by whole records."""
    from polars.testing import assert_frame_equal

    from pipeline import plan
    from pipeline.records import shard_unit, work_units

    write_jsonl(tmp_path / "task.jsonl", [{"instruction": f"{('Explain', 'List', 'Name')[k % 3]} item {k * 7}.",
                                           "input": f"context {k}" * (k % 2), "output": f"Answer {k}."}
                                          for k in range(40)])
    write_jsonl(tmp_path / "gen.jsonl", [{"instruction": f"{('Write', 'Give')[k % 2]} general thing {k * 11}.",
                                          "input": "", "output": f"General answer {k}."} for k in range(90)])
    mix = load_mix(write_mix({
        "name": "t", "seed": 5, "tokenize": {"enabled": True},
        "sources": [{"name": "task", "path": "task.jsonl", "task": "qa"},
                    {"name": "gen", "path": "gen.jsonl", "general": True}],
        "split": {"eval": 0.1},
        "mixture": {"size": 100 if unit == "records" else 1500, "unit": unit, "general_share": 0.4,
                    "max_repeats": 3, "sampling": sampling}}))
    records = build.union([shard_unit(unit) for unit in work_units(mix)])
    context = plan.Context(mix, llama_tokenizer, {}, tmp_path)
    for name in ("split", "mixture"):
        stage = plan.stage(name)
        assert stage.picks_by is not None
        columns = stage.picks_by(mix.spec)
        whole = stage.run(records, context)
        if not columns:
            assert name == "mixture" and unit == "tokens"
            continue
        thin = stage.run(plan.picking_input(records, columns), context)
        assert thin.stats == whole.stats and thin.rejected.height == whole.rejected.height == 0
        assert_frame_equal(plan.picked_rows(records, thin.kept), whole.kept)
        assert thin.outputs.keys() == whole.outputs.keys()
        for output, frame in whole.outputs.items():
            assert_frame_equal(plan.picked_rows(records, thin.outputs[output]), frame)
        assert whole.kept.height > 0
        records = whole.kept if name == "split" else records
    if unit == "records":
        assert (whole.kept["repeat"] > 0).any()  # the mixture repeated records: rows the stage added
