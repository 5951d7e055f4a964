"""Shared fixtures: the real data in ../shared/data, mix files written into tmp folders, the CLI runner (``cli``
without a Prefect server, ``flow_cli`` with one), and one real Prefect server for the session."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from pipeline import writer
from pipeline.cli import app

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("INSTRUCT_PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data"))
LLAMA2_TOKENIZER = ROOT.parent / "shared" / "tokenizers" / "llama-2"
# Prefect's home and the flows' cached task results go to a fresh folder per session, never into the checkout.
os.environ.setdefault("INSTRUCT_PIPELINE_STATE", tempfile.mkdtemp(prefix="instruct-pipeline-state-"))
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


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server (``prefect server start`` on 127.0.0.1, its database in a tmp folder) shared by the
    session; PREFECT_API_URL points this process and its children at it. Stopped by its PID at the end."""
    from flows import server as prefect_server

    running = prefect_server.start(tmp_path_factory.mktemp("prefect-server"))
    os.environ["PREFECT_API_URL"] = running.api_url
    from prefect.settings import PREFECT_API_URL, temporary_settings

    try:
        with temporary_settings(updates={PREFECT_API_URL: running.api_url}):
            yield running.api_url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        running.stop()


@pytest.fixture
def cli() -> Callable[..., Any]:
    """The ``pipeline`` command in this process, with no Prefect server: for the commands that run no flow
    (``estimate``, ``validate``, ``audit``, ``train``, ``build --runner direct``, errors found before a flow)."""
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def flow_cli(prefect_api: str, cli: Callable[..., Any]) -> Callable[..., Any]:
    """The ``pipeline`` command for a build that runs its flow (``--runner local`` or ``dask``): against the
    session's Prefect server."""
    return cli


TINY_LLAMA = dict(vocab_size=32000, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=4, max_position_embeddings=512)
RETENTION_TOPICS = ("the moon", "volcanoes", "honey bees", "the piano", "glaciers", "the printing press", "owls",
                    "copper", "the Nile", "chess", "tides", "bamboo", "penguins", "the telescope", "salt", "comets")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialized two-layer LLaMA with LLaMA-2's 32,000-token vocabulary, saved to a folder."""
    torch = pytest.importorskip("torch", reason="the trainer needs the train extra (torch)")
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(LlamaConfig(**TINY_LLAMA)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def trainer_build(tmp_path_factory: pytest.TempPathFactory, llama_tokenizer: Any) -> Path:
    """The demo data built packed (256-token rows) with a 15% eval split, and ``general/held_out.json``: 16
    general records never trained on plus one copied from the train data, as ``train.retention_eval``."""
    from pipeline import build
    from pipeline.config import load_mix

    root = tmp_path_factory.mktemp("trainer-build")
    for folder in ("general", "tasks"):
        (root / "data" / folder).mkdir(parents=True)
        for path in (ROOT / "data" / folder).iterdir():
            (root / "data" / folder / path.name).write_bytes(path.read_bytes())
    general = json.loads((ROOT / "data" / "general" / "alpaca_general.json").read_text())
    held_out = [{"instruction": f"Tell me one interesting fact about {topic}.", "input": "",
                 "output": f"One interesting fact about {topic} is that people have studied it for centuries and "
                           "still find new things to learn about it."} for topic in RETENTION_TOPICS]
    (root / "data" / "general" / "held_out.json").write_text(json.dumps([*held_out, general[0]]))
    spec = yaml.safe_load((ROOT / "data" / "mix.yaml").read_text())
    spec["split"] = {"eval": 0.15}
    spec["tokenize"].update(cutoff_len=256, overflow="truncate", packing=True)
    spec["train"] = {"retention_eval": ["general/held_out.json"]}
    (root / "data" / "mix.yaml").write_text(yaml.safe_dump(spec))
    return writer.write(build.run(load_mix(root / "data" / "mix.yaml"), tokenizer=llama_tokenizer))
