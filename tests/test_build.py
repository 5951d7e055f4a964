"""`pipeline build` end to end: the demo data, the output folder, determinism, atomicity, parallel runs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from pipeline import build, writer
from pipeline.config import load_mix
from pipeline.records import ROW_SCHEMA
from schemas.manifest import Manifest
from schemas.report import BuildReport
from tests.conftest import ROOT, write_jsonl
from tests.test_cli import shown_steps

OUTPUTS = ["README.md", "dedup_index", "duplicates.parquet", "eval.parquet", "manifest.json", "rejected.parquet",
           "report.html", "report.json", "report.md", "tokenized", "train.parquet"]


@pytest.fixture
def demo(tmp_path) -> Path:
    """The demo mix and its sample data, copied so the build writes into tmp_path/out."""
    shutil.copytree(ROOT / "data", tmp_path / "data", ignore=shutil.ignore_patterns("*.py", "*.md"))
    return tmp_path / "data" / "mix.yaml"


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_demo_build_through_the_cli(demo, flow_cli):
    result = flow_cli("build", "--mix", str(demo))
    assert result.exit_code == 0, result.output
    out = demo.parent.parent / "out" / "demo"
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS
    report = BuildReport.model_validate_json((out / "report.json").read_text())
    counts = {s.name: (s.input, s.kept, s.rejected, s.duplicates) for s in report.sources}
    # data/README.md: 150 Alpaca records, 80 ShareGPT lines, 80 messages lines, with the defects it lists
    assert counts == {"general_en": (150, 140, 5, 5), "summarize": (80, 75, 3, 2), "zh_qa": (80, 74, 4, 2)}
    duplicates = pl.read_parquet(out / "duplicates.parquet")
    assert duplicates.select("id", "kept_id", "kind").rows() == [  # the README's indices and lines (1-based)
        ("general_en#68", "general_en#15", "exact"), ("general_en#94", "general_en#49", "near"),
        ("general_en#132", "general_en#70", "exact"), ("general_en#133", "general_en#53", "exact"),
        ("general_en#135", "general_en#126", "near"),
        ("summarize#61", "summarize#58", "exact"), ("summarize#75", "summarize#26", "exact"),
        ("zh_qa#60", "zh_qa#12", "exact"), ("zh_qa#64", "zh_qa#27", "exact"),
    ]
    reasons = {s.name: s.reasons for s in report.sources}
    assert reasons["general_en"] == {"empty_output": 3, "missing_field:instruction": 1, "wrong_type:output": 1}
    assert reasons["summarize"] == {"bad_conversation:no_answer": 1, "empty_output": 1, "malformed_json": 1}
    assert reasons["zh_qa"] == {"empty_output": 1, "language:en": 3}  # lines 4, 6 and 9 are English
    assert report.pii is not None and report.pii.found == {"email": 1, "phone": 1}  # line 55, redacted
    assert report.sources[0].repairs["placeholder_input"] == 3 and report.sources[0].repairs["missing_input"] == 1
    assert all(row.balanced for row in report.ledger)
    train = pl.read_parquet(out / "train.parquet")
    answer = train.filter(pl.col("id") == "zh_qa#54")["output"][0]
    assert "<PHONE>" in answer and "<EMAIL>" in answer and "13800138000" not in answer
    assert "redacted email 1, phone 1" in result.output
    assert train.height == 289 and train.columns == [*ROW_SCHEMA, "messages"]  # history as [[query, response]]
    rejected = pl.read_parquet(out / "rejected.parquet")
    broken = rejected.filter(pl.col("reason") == "malformed_json").to_dicts()[0]
    assert broken["origin"] == "tasks/summarize_sharegpt.jsonl:40" and broken["detail"].startswith("line 40, column")
    manifest = Manifest.model_validate_json((out / "manifest.json").read_text())
    assert manifest.outputs == {k: v for k, v in _hashes(out).items() if k != "manifest.json"}
    assert [(i.source, i.path) for i in manifest.inputs] == [
        ("general_en", "general/alpaca_general.json"), ("summarize", "tasks/summarize_sharegpt.jsonl"),
        ("zh_qa", "tasks/zh_qa_messages.jsonl")]
    assert manifest.counts == {"input": 310, "train": 289, "eval": 0, "rejected": 12, "duplicates": 9, "sampled_out": 0,
                               "repeats": 0}
    assert "demo: 310 records in, 289 train, 0 eval, 12 rejected, 9 duplicates" in result.output
    # the flow reports each step as it ends, as the direct runner does (tests/test_cli.py)
    assert shown_steps(result.output) == [("read + filter", 310, 298), ("dedup", 298, 289), ("decontaminate", 289, 289),
                                          ("split", 289, 289), ("mixture", 289, 289), ("tokenize", 289, 289),
                                          ("report", 310, 289), ("write", 289, 289)]


def test_validate_command_writes_nothing(demo, cli):
    result = cli("validate", "--mix", str(demo))
    assert result.exit_code == 0 and "is valid and its 3 source(s) are readable" in result.output
    assert not (demo.parent.parent / "out").exists()
    # it stops after the per-record stages: the 9 duplicates a build removes are still counted as kept
    assert "demo: 310 records in, 298 pass the per-record stages, 12 rejected" in result.output


def test_strict_source_with_broken_json_fails_with_line_and_column(demo, flow_cli):
    demo.write_text(demo.read_text().replace("    lenient: true\n", ""))
    result = flow_cli("build", "--mix", str(demo))
    assert result.exit_code == 1
    assert "summarize_sharegpt.jsonl: line 40, column" in result.output and "lenient: true" in result.output
    assert not (demo.parent.parent / "out" / "demo").exists()


def test_two_builds_are_byte_identical_and_parallel_matches_serial(demo):
    mix = load_mix(demo)
    first = writer.write(build.run(mix, workers=1))
    hashes = _hashes(first)
    shutil.rmtree(first)
    again = writer.write(build.run(mix, workers=2))
    assert _hashes(again) == hashes


def test_rebuild_replaces_the_previous_output(demo):
    mix = load_mix(demo)
    out = writer.write(build.run(mix))
    (out / "stale.txt").write_text("from an older build")
    writer.write(build.run(mix))
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS
    assert [p.name for p in out.parent.iterdir()] == ["demo"]  # no temporary folders left


def test_a_killed_build_leaves_no_complete_looking_output(tmp_path, write_mix):
    """SIGKILL while the output is being written: the target keeps the previous build, and the half-written
    folder is hidden, has no manifest, and is not where any reader looks."""
    rows = [{"instruction": f"Repeat {i}", "input": "",
             "output": f"Step {i}: add {i} apples to {i + 1} pears and count {2 * i + 1} fruits in the basket."}
            for i in range(300_000)]
    write_jsonl(tmp_path / "big.jsonl", rows)
    write_jsonl(tmp_path / "small.jsonl", rows[:10])
    mix = write_mix({"name": "t", "sources": [{"name": "s", "path": "small.jsonl"}]})
    previous = writer.write(build.run(load_mix(mix)))
    before = _hashes(previous)
    mix.write_text(mix.read_text().replace("small.jsonl", "big.jsonl"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "build", "--mix", str(mix), "--workers", "1",
                             "--runner", "direct"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmp_out = previous.parent / f".t.tmp-{proc.pid}"
    deadline = time.monotonic() + 120
    while not (tmp_out / "train.parquet").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert proc.poll() is None, "the build finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _hashes(previous) == before
    assert not (tmp_out / "manifest.json").exists()
    assert sorted(p.name for p in previous.parent.iterdir() if not p.name.startswith(".")) == ["t"]


def test_manifest_names_spec_hash_and_versions(demo):
    out = writer.write(build.run(load_mix(demo)))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spec"]["name"] == "demo" and manifest["seed"] == 42
    assert len(manifest["spec_hash"]) == 64 and manifest["packages"]["polars"] == pl.__version__
    assert all(len(i["sha256"]) == 64 and i["bytes"] > 0 for i in manifest["inputs"])


def _split_mix(tmp_path, write_mix, split: dict, strict: bool = False):
    rows = [{"instruction": f"Question number {i} about topic {i * 7}", "input": "", "output": f"Answer {i}"}
            for i in range(20)]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    return write_mix({"name": "t", "sources": [{"name": "s", "path": "rows.jsonl"}], "split": split,
                      "mixture": {"strict": strict}})


@pytest.mark.parametrize("split, warning", [
    ({"eval": 50000}, "split.eval: 50000 puts all 20 records in eval: train is empty"),
    ({"eval": 0.6}, "split.eval: 0.6 leaves 8 records in train, fewer than the 12 in eval"),
])
def test_a_split_that_empties_train_warns_and_stops_under_strict(tmp_path, write_mix, flow_cli, caplog, split,
                                                                 warning):
    """`split.eval: 50000` on 2,000 records used to empty train without a word."""
    result = build.run(load_mix(_split_mix(tmp_path, write_mix, split)))
    assert f"split: {warning}" in [r.getMessage() for r in caplog.records]
    assert result.report.split.note.startswith(f"warning: {warning}. ")
    assert result.report.ledger[0].balanced
    for runner in ("direct", "local"):  # the flow raises the failed stage's own error, not "upstream failed"
        strict = flow_cli("build", "--mix", str(_split_mix(tmp_path, write_mix, split, strict=True)), "--runner",
                          runner)
        assert strict.exit_code == 2, strict.output
        assert "split guard failed (mixture.strict: true)" in strict.output and warning in strict.output
        assert not (tmp_path / "out" / "t").exists()


def test_a_split_that_keeps_train_larger_says_nothing(tmp_path, write_mix, caplog):
    result = build.run(load_mix(_split_mix(tmp_path, write_mix, {"eval": 0.5}, strict=True)))
    assert result.train.height == 10 and result.eval.height == 10
    assert not result.report.split.note.startswith("warning")
    assert not [r for r in caplog.records if "split:" in r.getMessage()]


def test_a_fifo_in_an_hf_dataset_folder_cannot_hang_the_manifest(tmp_path, write_mix):
    """input_files hashes every file of an HF save_to_disk folder: a FIFO there must be passed over."""
    import datasets

    one = datasets.Dataset.from_list([{"instruction": "Say hi.", "input": "", "output": "Hi!"}])
    one.save_to_disk(str(tmp_path / "ds"))
    os.mkfifo(tmp_path / "ds" / "pipe")
    mix = load_mix(write_mix({"name": "t", "sources": [{"name": "s", "path": "ds"}]}))
    assert [Path(f.path).name for f in writer.input_files(mix)] == sorted(
        p.name for p in (tmp_path / "ds").iterdir() if p.name != "pipe")
