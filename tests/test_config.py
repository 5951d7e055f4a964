"""Bad mix files stop before any work, with the message a user sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_mix
from tests.conftest import write_json

ALPACA = [{"instruction": "Say hi.", "input": "", "output": "Hi!"}]


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load_mix(path)
    return str(err.value)


def test_unknown_top_level_key_suggests_the_closest(tmp_path, write_mix):
    write_json(tmp_path / "a.json", ALPACA)
    mix = write_mix({"name": "t", "sources": [{"name": "a", "path": "a.json"}], "dedupe": {"near": False}})
    assert _error(mix) == f"{mix}: invalid mix spec (1 problem)\n  dedupe: unknown key 'dedupe'; did you mean 'dedup'?"


def test_unknown_source_key_names_its_path_and_suggests(tmp_path, write_mix):
    write_json(tmp_path / "a.json", ALPACA)
    mix = write_mix({"name": "t", "sources": [{"name": "a", "path": "a.json", "formt": "alpaca"}]})
    assert _error(mix) == (
        f"{mix}: invalid mix spec (1 problem)\n  sources[0].formt: unknown key 'formt'; did you mean 'format'?"
    )


def test_unknown_nested_section_key(tmp_path, write_mix):
    write_json(tmp_path / "a.json", ALPACA)
    mix = write_mix({"name": "t", "sources": [{"name": "a", "path": "a.json"}],
                     "tokenize": {"cutof_len": 512}})
    assert "tokenize.cutof_len: unknown key 'cutof_len'; did you mean 'cutoff_len'?" in _error(mix)


def test_missing_file(tmp_path, write_mix):
    mix = write_mix({"name": "t", "sources": [{"name": "a", "path": "nope/a.json"}]})
    assert _error(mix) == (
        f"{mix}: sources[0] (a): file not found: nope/a.json (resolved to {tmp_path / 'nope' / 'a.json'})"
    )


def test_glob_matching_nothing(tmp_path, write_mix):
    (tmp_path / "data").mkdir()
    mix = write_mix({"name": "t", "sources": [{"name": "a", "path": "data/*.jsonl"}]})
    assert _error(mix) == f"{mix}: sources[0] (a): glob 'data/*.jsonl' matched no files (looked in {tmp_path / 'data'})"


def test_unreadable_file_type(tmp_path, write_mix):
    (tmp_path / "a.txt").write_text("hello")
    mix = write_mix({"name": "t", "sources": [{"name": "a", "path": "a.txt"}]})
    assert "cannot read 'a.txt'; readable: .json, .jsonl, .parquet, .csv files, or an HF save_to_disk folder" in _error(mix)


def test_bad_values_are_listed_together(tmp_path, write_mix):
    write_json(tmp_path / "a.json", ALPACA)
    mix = write_mix({"name": "t", "sources": [{"name": "a", "path": "a.json", "format": "sharegtp"},
                                              {"name": "a", "path": "a.json"}]})
    message = _error(mix)
    assert "sources[0].format: Input should be 'auto', 'alpaca', 'sharegpt', 'openai', 'self_instruct' or 'mt_bench'" in message
    with pytest.raises(ConfigError, match="source names must be unique; repeated: \\['a'\\]"):
        load_mix(write_mix({"name": "t", "sources": [{"name": "a", "path": "a.json"},
                                                     {"name": "a", "path": "a.json"}]}))


def test_source_needs_exactly_one_location(tmp_path, write_mix):
    mix = write_mix({"name": "t", "sources": [{"name": "a"}]})
    assert "sources[0]: Value error, give exactly one of 'path' or 'hub'" in _error(mix)


def test_paths_resolve_relative_to_the_mix_file(tmp_path, write_mix):
    write_json(tmp_path / "sub" / "a.json", ALPACA)
    write_json(tmp_path / "sub" / "b.json", ALPACA)
    mix = load_mix(write_mix({"name": "t", "sources": [{"name": "one", "path": "sub/a.json"},
                                                      {"name": "all", "path": "sub/*.json"}]}))
    assert mix.sources[0].files == ((tmp_path / "sub" / "a.json").resolve(),)
    assert [p.name for p in mix.sources[1].files] == ["a.json", "b.json"]
    assert mix.out_dir == (tmp_path / "out" / "t").resolve()


def test_not_a_mapping(tmp_path):
    path = tmp_path / "mix.yaml"
    path.write_text("- just\n- a list\n")
    assert _error(path) == f"{path}: expected a mapping at the top level, got list"


def test_cli_shows_the_config_error_and_exits_2(tmp_path, write_mix, cli):
    mix = write_mix({"name": "t", "sources": [{"name": "a", "path": "missing.json"}]})
    result = cli("build", "--mix", str(mix))
    assert result.exit_code == 2
    assert "error: " in result.output and "sources[0] (a): file not found: missing.json" in result.output
    assert not (tmp_path / "out").exists()
