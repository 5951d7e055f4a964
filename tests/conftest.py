"""Shared fixtures: the real data in ../shared/data, mix files written into tmp folders, the CLI runner."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("INSTRUCT_PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data"))
LLAMA2_TOKENIZER = ROOT.parent / "shared" / "tokenizers" / "llama-2"
if LLAMA2_TOKENIZER.is_dir():
    os.environ.setdefault("INSTRUCT_PIPELINE_TOKENIZER", str(LLAMA2_TOKENIZER))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (set INSTRUCT_PIPELINE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def llama_tokenizer() -> Any:
    """The real LLaMA-2 tokenizer from ../shared/tokenizers/llama-2."""
    if not (LLAMA2_TOKENIZER / "tokenizer.json").exists():
        pytest.skip(f"the LLaMA-2 tokenizer folder is not at {LLAMA2_TOKENIZER}")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(LLAMA2_TOKENIZER))
    assert tokenizer("Hello world").input_ids == [1, 15043, 3186]
    return tokenizer


@pytest.fixture
def write_mix(tmp_path: Path) -> Callable[..., Path]:
    """Write a mix.yaml (from a dict) into tmp_path; outputs go to tmp_path/out. Tokenization is off unless
    the spec has a ``tokenize`` section, so tests of other stages need no tokenizer."""

    def write(spec: dict[str, Any], name: str = "mix.yaml") -> Path:
        spec = {"output": {"dir": "out"}, "tokenize": {"enabled": False}, **spec}
        path = tmp_path / name
        path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return path

    return write


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_json(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def cli() -> Callable[..., Any]:
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke
