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
    expected = "cannot read 'a.txt'; readable: .json, .jsonl, .parquet, .csv files, or an HF save_to_disk folder"
    assert expected in _error(mix)


def test_bad_values_are_listed_together(tmp_path, write_mix):
    write_json(tmp_path / "a.json", ALPACA)
    mix = write_mix({"name": "t", "sources": [{"name": "a", "path": "a.json", "format": "sharegtp"},
                                              {"name": "a", "path": "a.json"}]})
    message = _error(mix)
    assert ("sources[0].format: Input should be 'auto', 'alpaca', 'sharegpt', 'openai', 'self_instruct' or "
            "'mt_bench'") in message
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


def _mix_text(tmp_path: Path, text: str) -> Path:
    write_json(tmp_path / "a.json", ALPACA)
    path = tmp_path / "mix.yaml"
    path.write_text("name: t\nsources:\n  - name: a\n    path: a.json\n" + text, encoding="utf-8")
    return path


def test_duplicate_key_names_file_line_and_key_path(tmp_path):
    """YAML keeps the last of two equal keys without a word: `quarantine` then `flag` became `flag`."""
    mix = _mix_text(tmp_path, "pii:\n  action: quarantine\n  action: flag\n")
    assert _error(mix) == f"{mix}: line 7: duplicate key 'pii.action' (first given on line 6); give each key once"
    mix = _mix_text(tmp_path, "seed: 1\nseed: 2\n")
    assert _error(mix) == f"{mix}: line 6: duplicate key 'seed' (first given on line 5); give each key once"
    mix.write_text("name: t\nsources:\n  - name: a\n    path: a.json\n    path: b.json\n")
    assert _error(mix) == f"{mix}: line 5: duplicate key 'sources[0].path' (first given on line 4); give each key once"


@pytest.mark.parametrize("setting, expected", [
    ("mixture:\n  size: true\n", "mixture.size: Value error, expected a number, got the boolean true"),
    ("split:\n  eval: true\n", "split.eval: Value error, expected a number, got the boolean true"),
    ("seed: false\n", "seed: Value error, expected a number, got the boolean false"),
    ("dedup:\n  threshold: true\n", "dedup.threshold: Value error, expected a number, got the boolean true"),
    ("mixture:\n  weights: {a: true}\n",
     "mixture.weights: Value error, expected a number for 'a', got the boolean true"),
    ("tokenize:\n  cutoff_len: true\n", "tokenize.cutoff_len: Value error, expected a number, got the boolean true"),
    ("train:\n  learning_rate: true\n", "train.learning_rate: Value error, expected a number, got the boolean true"),
])
def test_a_boolean_is_not_a_number(tmp_path, setting, expected):
    """pydantic reads `true` as 1 in an int or float field: `mixture.size: true` asked for one record."""
    assert f"  {expected}" in _error(_mix_text(tmp_path, setting))


def test_whole_numbers_are_still_accepted_where_floats_are_expected(tmp_path):
    mix = load_mix(_mix_text(tmp_path, "dedup:\n  threshold: 1\nsplit:\n  eval: 1\nmixture:\n  weights: {a: 2}\n"
                                       "train:\n  epochs: 2\n"))
    assert mix.spec.dedup.threshold == 1.0 and mix.spec.split.eval == 1 and mix.spec.mixture.weights == {"a": 2.0}


def _folder_with_links(tmp_path: Path) -> Path:
    """data/ with a real file, a link to a file inside data/, a link out of it (a passwd-like file) and a FIFO."""
    import os

    data = tmp_path / "data"
    write_json(data / "a.json", ALPACA)
    (data / "sub").mkdir()
    write_json(data / "sub" / "b.json", ALPACA)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (data / "inside.json").symlink_to(data / "sub" / "b.json")
    (data / "passwd.jsonl").symlink_to(secret / "passwd")
    (data / "up").symlink_to(secret, target_is_directory=True)
    os.mkfifo(data / "pipe.jsonl")
    return data


@pytest.mark.parametrize("path", ["data", "data/*.json*", "data/**/*.json*"])
def test_links_out_of_a_folder_or_glob_and_fifos_are_skipped_with_a_warning(tmp_path, write_mix, caplog, path):
    """A link that resolves inside the source's folder is read; one that leaves it (`passwd.jsonl ->
    /etc/passwd` copied the file into rejected.parquet) is skipped, and so is a FIFO (reading it hangs)."""
    data = _folder_with_links(tmp_path)
    mix = load_mix(write_mix({"name": "t", "sources": [{"name": "s", "path": path}]}))
    names = [p.relative_to(data).as_posix() for p in mix.sources[0].files]
    assert names == (["a.json", "inside.json", "sub/b.json"] if "**" in path else ["a.json", "inside.json"])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("passwd.jsonl" in w and "a link to" in w and "outside" in w for w in warnings), warnings
    assert any("pipe.jsonl" in w and "a FIFO" in w for w in warnings), warnings
    assert not any("passwd" in m for m in map(str, mix.sources[0].files))


def test_audit_and_references_skip_links_out_of_the_folder_too(tmp_path, write_mix):
    from pipeline import audit

    _folder_with_links(tmp_path)
    assert [s.file for s in audit.resolve(["data"], tmp_path)] == ["data/a.json", "data/inside.json"]
    write_json(tmp_path / "main.json", ALPACA)
    mix = load_mix(write_mix({"name": "t", "sources": [{"name": "m", "path": "main.json"}],
                              "dedup": {"against": ["data/*.json*"]}, "decontaminate": {"against": ["data"]}}))
    assert [p.name for p in mix.references[0].source.files] == ["a.json", "inside.json"]
    assert [p.name for p in mix.evals[0].source.files] == ["a.json", "inside.json"]


def test_a_fifo_named_in_the_mix_is_a_config_error(tmp_path, write_mix):
    """A FIFO source or reference used to hang the build (or the audit) waiting for a writer."""
    import os

    from pipeline import audit

    os.mkfifo(tmp_path / "pipe.jsonl")
    write_json(tmp_path / "main.json", ALPACA)
    mix = write_mix({"name": "t", "sources": [{"name": "a", "path": "pipe.jsonl"}]})
    assert _error(mix) == f"{mix}: sources[0] (a): 'pipe.jsonl' is a FIFO, not a regular file"
    mix = write_mix({"name": "t", "sources": [{"name": "a", "path": "main.json"}],
                     "decontaminate": {"against": ["pipe.jsonl"]}})
    assert _error(mix) == f"{mix}: decontaminate.against[0]: 'pipe.jsonl' is a FIFO, not a regular file"
    (tmp_path / "zero.jsonl").symlink_to("/dev/zero")
    mix = write_mix({"name": "t", "sources": [{"name": "a", "path": "zero.jsonl"}]})
    assert _error(mix) == f"{mix}: sources[0] (a): 'zero.jsonl' is a character device, not a regular file"
    with pytest.raises(ConfigError, match="'pipe.jsonl' is a FIFO, not a regular file"):
        audit.resolve(["pipe.jsonl"], tmp_path)
