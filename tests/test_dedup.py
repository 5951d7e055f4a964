"""The dedup stage: exact and near duplicates, keep rule, CJK, short texts, references, and the build around it."""

from __future__ import annotations

import json
import random

import numpy as np
import polars as pl
import pytest
from datasketch import MinHash

from pipeline import build, dedup, minhash, near_dups, validate, writer
from pipeline.config import load_mix
from pipeline.io import signature_index
from pipeline.records import load_reference
from schemas.mix import DedupSpec
from tests.conftest import write_json, write_jsonl

PARAGRAPH = ("The committee met on Tuesday to review the budget for the coming year, and after a long discussion "
             "it agreed to raise the library's funding while holding every other department at last year's level. "
             "Several members argued that the roads needed repairs more urgently, but the chair pointed out that "
             "the state had already promised a grant for them, so the town could afford to invest in books, "
             "computers and longer opening hours for the students who use the reading rooms every evening.")


def distinct_text(seed: int, words: int = 40) -> str:
    rng = random.Random(seed)
    vocabulary = [f"w{k}" for k in range(5000)]
    return " ".join(rng.choice(vocabulary) for _ in range(words))


def records(rows: list[tuple[str, str, str]], source: str = "s") -> pl.DataFrame:
    """A frame of canonical records from (instruction, input, output) triples."""
    return pl.DataFrame(
        {"id": [f"{source}#{k}" for k in range(len(rows))], "source": source,
         "instruction": [r[0] for r in rows], "input": [r[1] for r in rows], "output": [r[2] for r in rows]},
    ).with_columns(history=pl.lit(None, validate.HISTORY))


def run(frame: pl.DataFrame, priority: tuple[str, ...] = ("s",), **settings: object) -> dedup.DedupResult:
    return dedup.deduplicate(frame, DedupSpec(**settings), list(priority))  # type: ignore[arg-type]


def test_permutations_are_datasketchs():
    for num_perm, seed in ((128, 1), (256, 7)):
        a, b = MinHash(num_perm=num_perm, seed=seed).permutations
        ours = minhash.permutations(num_perm, seed)
        assert np.array_equal(ours[0], a) and np.array_equal(ours[1], b)


def test_exact_duplicates_fold_case_punctuation_and_spaces():
    frame = records([("Summarize:", PARAGRAPH, "Budget up for the library."),
                     ("summarize", PARAGRAPH.upper().replace(",", " ,  "), "Budget up for the library!"),
                     ("Summarize:", PARAGRAPH, "Budget up for libraries.")])
    result = run(frame, near=False)
    assert result.kept["id"].to_list() == ["s#0", "s#2"]
    assert result.duplicates.select("id", "kept_id", "kind", "similarity").rows() == [("s#1", "s#0", "exact", 1.0)]


def test_exact_fingerprints_slice_by_slice_equal_the_dedup_keys(monkeypatch):
    monkeypatch.setattr(dedup, "SLICE_ROWS", 2)  # five slices: slices must line up with the records
    frame = records([("Summarize:", PARAGRAPH, "Budget up for the library."),
                     ("summarize", PARAGRAPH.upper().replace(",", " ,  "), "Budget up for the library!"),
                     ("Summarize:", PARAGRAPH, "Budget up for libraries.")]
                    + [(f"Q{k}", "", f"A{k}") for k in range(7)])
    prints = dedup.exact_fingerprints(frame)
    keys, _ = dedup.keys_and_shingles(frame, "record", 5)
    assert prints.equals(keys) and prints.height == 10
    assert prints.row(0) == prints.row(1) != prints.row(2)  # folding as exact dedup does
    assert dedup.exact_fingerprints(frame.head(0)).height == 0


def test_prompt_key_finds_two_answers_to_one_prompt():
    frame = records([("Name a color.", "", "Blue."), ("Name a color.", "", "Red is a color.")])
    assert run(frame).kept.height == 2  # key: record (default): different answers are different records
    result = run(frame, key="prompt")
    assert result.kept["id"].to_list() == ["s#1"]  # the longer output is kept
    assert result.duplicates["kept_id"].to_list() == ["s#1"]


def test_near_duplicates_of_varied_edits_are_found_and_verified():
    words = PARAGRAPH.split()
    swapped = words.copy()
    swapped[3], swapped[4] = swapped[4], swapped[3]
    frame = records([
        ("Summarize the text.", PARAGRAPH, "The library gets more money."),
        ("Please summarize the text.", PARAGRAPH, "The library gets more money."),  # prefix
        ("Summarize the text.", " ".join(swapped), "The library gets more money."),  # word swap
        ("Summarize the text.", PARAGRAPH.replace("budget", "budjet"), "The library gets more money."),  # typo
        ("Translate the text to French.", "Le comité s'est réuni mardi pour examiner le budget.", "Done."),
    ])
    result = run(frame)
    assert result.kept["id"].to_list() == ["s#0", "s#4"]
    near = result.duplicates
    assert near["kind"].to_list() == ["near"] * 3 and set(near["kept_id"]) == {"s#0"}
    truth = [len(set(minhash.shingles(a, 5)) & set(minhash.shingles(b, 5)))
             / len(set(minhash.shingles(a, 5)) | set(minhash.shingles(b, 5)))
             for a, b in [(_text(frame, 0), _text(frame, k)) for k in (1, 2, 3)]]
    assert near["similarity"].to_list() == pytest.approx(truth)  # the true Jaccard, not the estimate
    assert all(0.8 <= j < 1 for j in truth)
    assert result.stats["candidate_pairs"] >= result.stats["verified_pairs"] >= 3


def _text(frame: pl.DataFrame, k: int) -> str:
    row = frame.row(k, named=True)
    return f"{row['instruction']}\n{row['input']}\n{row['output']}"


def test_below_threshold_is_kept_and_verification_restores_precision():
    other = PARAGRAPH.replace("library's funding", "park's funding").replace("Tuesday", "Friday")
    frame = records([("Summarize.", PARAGRAPH, "x"), ("Summarize.", other, "x")])
    j = _jaccard(_text(frame, 0), _text(frame, 1))
    assert 0.5 < j < 0.8
    assert run(frame).kept.height == 2
    assert run(frame, threshold=round(j - 0.01, 2)).kept.height == 1


def _jaccard(a: str, b: str) -> float:
    sa, sb = set(minhash.shingles(a, 5)), set(minhash.shingles(b, 5))
    return len(sa & sb) / len(sa | sb)


def test_short_texts_do_not_collapse():
    answers = ["Yes.", "No.", "Maybe.", "Paris.", "42", "Blue", "Seven", "Tokyo", "Red.", "H2O"]
    frame = records([("Answer briefly.", "", a) for a in answers] + [("Hi", "", "Hello!"), ("Hey", "", "Hi!")])
    result = run(frame)
    assert result.kept.height == frame.height and result.duplicates.is_empty()


def test_cjk_near_duplicates_by_characters():
    text = ("春节是中国最重要的传统节日，人们会贴春联、吃年夜饭、放鞭炮，并且走亲访友，互相拜年祝福。"
            "节日期间，城市和乡村都张灯结彩，孩子们穿上新衣服，长辈们给晚辈发红包，寓意平安吉祥。"
            "许多在外地工作的人会在春节前赶回家乡，和家人一起守岁，迎接新的一年。")
    frame = records([("介绍春节。", "", text), ("请介绍一下春节。", "", text.replace("放鞭炮", "放烟花")),
                     ("介绍中秋节。", "", "中秋节人们赏月、吃月饼，家人团聚在一起。")])
    result = run(frame)
    assert result.kept["id"].to_list() == ["s#0", "s#2"]
    assert result.duplicates.row(0, named=True)["kind"] == "near"


def test_keep_rule_source_priority_then_longer_output_then_input_order():
    a = records([("Define gravity.", "", "A force."), ("Define gravity.", "", "A force.")], source="a")
    b = records([("Define gravity.", "", "A force that pulls masses together."),
                 ("Define gravity.", "", "A force.")], source="b")
    frame = pl.concat([b, a])  # input order does not decide between sources
    first_a = run(frame, priority=("a", "b"), key="prompt")
    assert first_a.kept["id"].to_list() == ["a#0"]  # a is first in mix.yaml: wins over b's longer output
    assert set(first_a.duplicates["kept_id"]) == {"a#0"}
    first_b = run(frame, priority=("b", "a"), key="prompt")
    assert first_b.kept["id"].to_list() == ["b#0"]  # within b: the longer output wins over input order
    exact_twins = run(a, priority=("a",))
    assert exact_twins.kept["id"].to_list() == ["a#0"]  # all else equal: input order


def test_across_sources_off_compares_within_each_source():
    frame = pl.concat([records([("Q", PARAGRAPH, "A")], "a"), records([("Q", PARAGRAPH, "A")] * 2, "b")])
    assert run(frame, priority=("a", "b")).kept["id"].to_list() == ["a#0"]
    assert run(frame, priority=("a", "b"), across_sources=False).kept["id"].to_list() == ["a#0", "b#0"]


def test_big_buckets_are_linked_without_all_pairs(monkeypatch):
    monkeypatch.setattr(near_dups, "SMALL_BUCKET", 4)
    rng = random.Random(0)
    words = PARAGRAPH.split()
    family = []
    for _ in range(40):
        copy = words.copy()
        copy[rng.randrange(len(copy))] = rng.choice(["alpha", "beta", "gamma"])
        family.append(("Summarize.", " ".join(copy), "x"))
    result = run(records(family), threshold=0.7)
    assert result.kept.height < 10
    assert result.stats["candidate_pairs"] < 40 * 39 / 2


def test_bucket_pairs_all_pairs_of_small_buckets_and_the_best_member_of_big_ones(monkeypatch):
    """The pairs of one band as flows/partitioned_dedup.py calls it too: members are record ids (ranks)."""
    monkeypatch.setattr(near_dups, "SMALL_BUCKET", 3)
    hashes = np.array([5, 5, 5, 7, 9, 9, 9, 9], dtype=np.uint64)
    members = np.array([2, 4, 8, 1, 3, 6, 10, 11])
    first, second = near_dups.bucket_pairs(hashes, members)
    assert sorted(zip(first.tolist(), second.tolist(), strict=True)) == [
        (2, 4), (2, 8), (3, 6), (3, 10), (3, 11), (4, 8)]  # 9's four: its best (3) with each of the others
    none = near_dups.bucket_pairs(np.array([1, 2], dtype=np.uint64), np.array([0, 1]))
    assert len(none[0]) == len(none[1]) == 0


def test_true_jaccard_matches_python_sets_on_real_records(shared_data):
    rows = json.loads((shared_data / "alpaca-en" / "alpaca_data-00000-03252.json").read_text())[:400]
    texts = [f"{r['instruction']}\n{r['input']}\n{r['output']}" for r in rows]
    sets = minhash.shingle_sets(pl.Series(texts), 5)
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, len(texts), size=(300, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    ours = near_dups.ShingleIndex(sets).jaccard(pairs)
    assert ours == pytest.approx([_jaccard(texts[i], texts[j]) for i, j in pairs])


def test_bounded_pieces_give_the_same_result(monkeypatch):
    """Slices of key text, index batches of shingles, take passes: memory bounds that never change a result.
    Each bound is set so small that every slice, batch and pass holds one or two records."""
    rows = ([("Summarize:", PARAGRAPH, "Budget up for the library."),
             ("Summarize:", PARAGRAPH.replace("Tuesday", "Monday"), "Budget up for the library."),
             ("summarize", PARAGRAPH.upper(), "Budget up for the library!")]
            + [(f"Q{k}", distinct_text(k), f"A{k}") for k in range(9)]
            + [("Summarize:", PARAGRAPH.replace("books", "maps"), "Budget up for the library.")])
    frame = records(rows)
    expected = run(frame)
    sets = minhash.shingle_sets(frame.select(dedup.key_text("record")).to_series(), 5)
    pairs = np.array([(i, j) for i in range(len(rows)) for j in range(i + 1, len(rows))])
    jaccard = near_dups.ShingleIndex(sets).jaccard(pairs)
    order = np.array([5, 0, 12, 3, 3, 7])
    taken = sets.take(order)
    monkeypatch.setattr(dedup, "SLICE_BYTES", 100)
    monkeypatch.setattr(near_dups, "INDEX_SHINGLES", 50)
    monkeypatch.setattr(minhash, "TAKE_ROWS", 2)
    result = run(frame)
    assert expected.stats["near_removed"] == 2 and expected.stats["exact_removed"] == 1
    assert result.kept.equals(expected.kept) and result.duplicates.equals(expected.duplicates)
    assert np.array_equal(result.signatures, expected.signatures) and result.stats == expected.stats
    assert np.array_equal(near_dups.ShingleIndex(sets).jaccard(pairs), jaccard)
    again = sets.take(order)
    assert np.array_equal(again.hashes, taken.hashes) and np.array_equal(again.starts, taken.starts)
    assert np.array_equal(again.hashes[again.starts[3]:again.starts[4]], sets.hashes[sets.starts[3]:sets.starts[4]])
    parts = [sets.take(np.arange(k, min(k + 4, len(sets)))) for k in range(0, len(sets), 4)]
    whole = minhash.ShingleSets.concat(parts)
    assert not parts and np.array_equal(whole.hashes, sets.hashes) and np.array_equal(whole.starts, sets.starts)
    assert dedup.duplicates_of(frame, DedupSpec(), ["s"]).equals(expected.duplicates)


def test_alpaca_tasks_sharing_one_abstract_are_not_duplicates(shared_data):
    """Five Alpaca tasks ask different things about one long abstract (J 0.56-0.78 as whole records)."""
    rows = [r for path in sorted((shared_data / "alpaca-en").glob("*.json")) for r in json.loads(path.read_text())]
    picked = [rows[k] for k in (15464, 46064, 46065, 46068, 46070)]
    assert len({r["input"] for r in picked}) == 1 and len({r["instruction"] for r in picked}) == 5
    frame = records([(r["instruction"], r["input"], r["output"]) for r in picked])
    assert run(frame).kept.height == 5  # defaults: key record, threshold 0.8
    # Without the answers the shared abstract dominates: as prompts they are near-duplicates. This is why the
    # default key is the whole record.
    assert run(frame, key="prompt").kept.height == 1


def test_chinese_translations_shared_by_two_sources(shared_data, write_mix):
    """../shared/data/README.md: 14,351 hikariming-translated records are identical to carbonz0's."""
    zh = shared_data / "alpaca-zh"
    quality_off = {"min_output_chars": None, "refusals": False, "placeholders": False, "unseen_content": False,
                   "echo": False, "max_repeated_ngram_ratio": None, "mojibake": False}
    mix = write_mix({"name": "zh", "tokenize": {"enabled": False}, "quality": quality_off, "sources": [
        {"name": "carbonz0", "path": str(zh / "zh-data-part-*.json")},
        {"name": "hikariming", "path": str(zh / "alpaca_zh-*.json"), "lenient": True},
    ]})
    result = build.run(load_mix(mix))
    cross = result.duplicates.filter(pl.col("source") != pl.col("kept_source"))
    assert set(cross["source"]) == {"hikariming"}  # the earlier source in mix.yaml keeps its copy
    assert cross.filter(pl.col("kind") == "exact").height >= 14_351
    assert all(row.balanced for row in result.report.ledger)
    assert result.report.dedup is not None and result.report.dedup.cross_source == cross.height


def test_signatures_stay_datasketch_compatible_in_the_index(tmp_path, write_mix):
    write_jsonl(tmp_path / "a.jsonl", [{"instruction": "Summarize.", "input": PARAGRAPH, "output": "x"}])
    result = build.run(load_mix(write_mix({"name": "t", "sources": [{"name": "a", "path": "a.jsonl"}]})))
    assert result.signatures is not None
    stored = result.signatures["signature"].to_numpy()[0]
    m = MinHash(num_perm=128, seed=1, hashfunc=minhash.shingle_hash)
    m.update_batch([s.encode() for s in minhash.shingles(_text(result.train, 0), 5)])
    assert np.array_equal(stored, m.hashvalues)


def test_dedup_against_an_earlier_build_and_a_dataset(tmp_path, write_mix):
    first_rows = [{"instruction": f"Question {k}: {distinct_text(k)}", "input": "", "output": f"Answer {k}."}
                  for k in range(6)]
    write_json(tmp_path / "v1.json", first_rows)
    v1 = write_mix({"name": "v1", "sources": [{"name": "main", "path": "v1.json"}]}, name="v1.yaml")
    writer.write(build.run(load_mix(v1)))
    folder = tmp_path / "out" / "v1"
    before = {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    new_rows = [first_rows[0], {**first_rows[1], "instruction": "Please answer. " + first_rows[1]["instruction"]},
                {"instruction": "Something new entirely.", "input": "", "output": "Yes."}]
    write_jsonl(tmp_path / "v2.jsonl", new_rows)
    write_jsonl(tmp_path / "eval.jsonl", [{"instruction": "Something new entirely.", "input": "", "output": "Yes."}])
    v2 = write_mix({"name": "v2", "sources": [{"name": "main", "path": "v2.jsonl"}],
                    "dedup": {"against": ["out/v1", "eval.jsonl"]}}, name="v2.yaml")
    mix = load_mix(v2)
    assert [(r.build is not None, r.source is not None) for r in mix.references] == [(True, False), (False, True)]
    assert load_reference(mix.references[0], mix).signatures is not None  # the index is reused
    result = build.run(mix)
    assert result.train.is_empty()
    assert result.duplicates.select("id", "kept_id", "kept_in", "kind").rows() == [
        ("main#0", "main#0", "out/v1", "exact"), ("main#1", "main#1", "out/v1", "near"),
        ("main#2", "eval#0", "eval.jsonl", "exact"),
    ]
    assert result.report.dedup is not None and result.report.dedup.against_references == 3
    assert all(row.balanced and row.duplicate == 3 for row in result.report.ledger)
    assert {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before  # reference untouched


def test_the_index_follows_the_output_and_an_incompatible_one_is_not_used(tmp_path):
    """The index is written in the output's order (train then eval, a repeated record once per row) from the
    signatures of the records dedup kept, in dedup's order; a reader with other settings ignores it."""
    folder = tmp_path / "build"
    folder.mkdir()
    kept = pl.DataFrame({"id": ["a#0", "a#1", "a#2"],
                         "signature": np.arange(3 * 128, dtype=np.uint32).reshape(3, 128)})
    signature_index.write(folder / signature_index.FOLDER, pl.Series(["a#2", "a#0", "a#2", "a#1"]), kept,
                          DedupSpec(), "zstd")
    index = signature_index.read(folder, DedupSpec())
    assert index is not None and index["id"].to_list() == ["a#2", "a#0", "a#2", "a#1"]
    assert [row[0] for row in index["signature"].to_list()] == [256, 0, 256, 128]
    assert signature_index.read(folder, DedupSpec(ngram=3)) is None
    assert signature_index.read(folder, DedupSpec(num_perm=64)) is None


def test_bad_reference_stops_before_work(tmp_path, write_mix):
    from pipeline.config import ConfigError
    write_jsonl(tmp_path / "a.jsonl", [{"instruction": "Q", "input": "", "output": "A"}])
    mix = write_mix({"name": "t", "sources": [{"name": "a", "path": "a.jsonl"}], "dedup": {"against": ["nope/"]}})
    with pytest.raises(ConfigError, match=r"dedup.against\[0\].*nope"):
        load_mix(mix)


def test_lsh_params_give_recall_at_the_threshold():
    for threshold in (0.5, 0.7, 0.8, 0.9):
        bands, rows = near_dups.lsh_params(threshold, 128)
        assert bands * rows <= 128 and 1 - (1 - threshold**rows) ** bands >= 0.99
    assert near_dups.lsh_params(0.8, 128) == (21, 6)
